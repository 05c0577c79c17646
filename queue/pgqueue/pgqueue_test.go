package pgqueue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/internal/killtest"
	"github.com/mailbricks/mailbricks/queue/pgqueue"
	"github.com/mailbricks/mailbricks/queue/queuetest"
)

func pool(t *testing.T) *pgxpool.Pool {
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; set it to a PostgreSQL URL to test pgqueue")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 24
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// newSchema returns a fresh schema name, dropped when the test ends.
func newSchema(t *testing.T, p *pgxpool.Pool) string {
	s := fmt.Sprintf("pgqueue_test_%d", rand.Uint32())
	t.Cleanup(func() {
		_, _ = p.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
	})
	return s
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, _ func() time.Time) queue.Backend {
		p := pool(t)
		b, err := pgqueue.Open(context.Background(), p, &pgqueue.Options{Schema: newSchema(t, p)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, &queuetest.Options{RealClock: true, TTL: 500 * time.Millisecond, Jobs: 5000})
}

// TestKill SIGKILLs worker processes on one schema (MAILBRICKS_LONG=1:
// 100 times) and checks the effects as lsmqueue's TestKill does.
func TestKill(t *testing.T) {
	if killtest.IsChild() {
		killtest.Child(func(ctx context.Context) (queue.Backend, error) {
			p, err := pgxpool.New(ctx, os.Getenv("MAILBRICKS_PG_URL"))
			if err != nil {
				return nil, err
			}
			return pgqueue.Open(ctx, p, &pgqueue.Options{Schema: killtest.Name()})
		})
		return
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	p := pool(t)
	cycles := 8
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		cycles = 100
	}
	killtest.Run(t, cycles, newSchema(t, p))
}
