package pgqueue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/pgerr/pgerrtest"
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

// TestAckBatch acknowledges many jobs at once, so that Acks share batches:
// each job acknowledged twice with its token and once with a stale token
// must commit exactly once, and the stale and repeated Acks must fail
// with ErrLeaseLost without touching the other jobs.
func TestAckBatch(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	b, err := pgqueue.Open(ctx, p, &pgqueue.Options{Schema: newSchema(t, p)})
	require.NoError(t, err)
	defer b.Close()
	const n = 64
	for i := range n {
		_, err := b.Enqueue(ctx, "t", []byte{byte(i)}, queue.EnqueueOptions{MaxAttempts: 3})
		require.NoError(t, err)
	}
	jobs, err := b.Lease(ctx, "t", n, time.Minute, 0)
	require.NoError(t, err)
	require.Len(t, jobs, n)

	keep := jobs[n-8:] // these are only acked with a stale token
	var wg sync.WaitGroup
	var okCount, lostCount atomic.Int32
	try := func(j queue.Job) {
		defer wg.Done()
		switch err := b.Ack(ctx, j); {
		case err == nil:
			okCount.Add(1)
		case errors.Is(err, queue.ErrLeaseLost):
			lostCount.Add(1)
		default:
			t.Error(err)
		}
	}
	for i, j := range jobs {
		stale := j
		stale.Token--
		if i >= n-8 {
			wg.Add(1)
			go try(stale)
			continue
		}
		wg.Add(3)
		go try(j)
		go try(stale)
		go try(j)
	}
	wg.Wait()
	assert.Equal(t, int32(n-8), okCount.Load())
	assert.Equal(t, int32(2*(n-8)+8), lostCount.Load())
	st, err := b.Stats(ctx, "t")
	require.NoError(t, err)
	assert.Equal(t, int64(8), st.Leased)
	for _, j := range keep {
		require.NoError(t, b.Ack(ctx, j))
	}
}

// TestTerminatedConnectionIsTemporary terminates the backend's connection
// in the middle of a call, as a failover does: the call must fail with an
// error that mailbricks.IsTemporary reports, and a retry must succeed.
func TestTerminatedConnectionIsTemporary(t *testing.T) {
	admin := pool(t)
	ctx := context.Background()
	schema := newSchema(t, admin)
	app := "pgqueue_test_" + schema
	b, err := pgqueue.Open(ctx, pgerrtest.Pool(t, os.Getenv("MAILBRICKS_PG_URL"), app), &pgqueue.Options{Schema: schema})
	require.NoError(t, err)
	defer b.Close()
	stats := func() error {
		_, err := b.Stats(ctx, "t")
		return err
	}
	err = pgerrtest.Terminate(t, admin, app, schema+".jobs", stats)
	require.Error(t, err)
	require.True(t, mailbricks.IsTemporary(err), "a terminated connection must be a temporary error, got %v", err)
	require.NoError(t, stats(), "a retry after a terminated connection must succeed")
}

// TestOpenConcurrent opens one fresh schema from several backends at once,
// as processes starting together do: every Open must succeed, and closing
// a backend must leave the caller's pool open.
func TestOpenConcurrent(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	schema := newSchema(t, p)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			b, err := pgqueue.Open(ctx, p, &pgqueue.Options{Schema: schema})
			if err == nil {
				err = b.Close()
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs, "concurrent Opens of a fresh schema must all succeed")
	}
	require.NoError(t, p.Ping(ctx), "Close must not close the caller's pool")
}

// TestPoolExhaustedIsTemporary fills the caller's pool (MaxConns 1) and
// calls with a short deadline: waiting for a connection that never comes
// must be a temporary error.
func TestPoolExhaustedIsTemporary(t *testing.T) {
	admin := pool(t)
	ctx := context.Background()
	schema := newSchema(t, admin)
	cfg, err := pgxpool.ParseConfig(os.Getenv("MAILBRICKS_PG_URL"))
	require.NoError(t, err)
	cfg.MaxConns = 1
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer p.Close()
	b, err := pgqueue.Open(ctx, p, &pgqueue.Options{Schema: schema})
	require.NoError(t, err)
	defer b.Close()
	held, err := p.Acquire(ctx)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = b.Stats(short, "t")
	held.Release()
	require.Error(t, err)
	require.True(t, mailbricks.IsTemporary(err), "a full pool must be a temporary error, got %v", err)
	_, err = b.Stats(ctx, "t")
	require.NoError(t, err, "a retry once a connection is free must succeed")
}

// TestAdoptsUnversionedSchema opens a schema made by a release before
// versioned migrations (keys as text) that holds a keyed job: Open must
// adopt it, convert the keys, and keep the job and its key.
func TestAdoptsUnversionedSchema(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	schema := newSchema(t, p)
	s := pgx.Identifier{schema}.Sanitize()
	_, err := p.Exec(ctx, `CREATE SCHEMA `+s+`;
CREATE TABLE `+s+`.jobs (id bigserial PRIMARY KEY, topic text NOT NULL, payload bytea NOT NULL, key text,
	state smallint NOT NULL, attempt int NOT NULL DEFAULT 0, max_attempts int NOT NULL, priority int NOT NULL DEFAULT 0,
	token bigint NOT NULL DEFAULT 0, run_at timestamptz NOT NULL, not_before timestamptz,
	enqueued_at timestamptz NOT NULL DEFAULT now(), last_error text NOT NULL DEFAULT '');
CREATE INDEX jobs_due ON `+s+`.jobs (topic, priority DESC, run_at, id) WHERE state IN (1, 2);
CREATE INDEX jobs_dead ON `+s+`.jobs (topic, run_at, id) WHERE state = 3;
CREATE TABLE `+s+`.keys (topic text NOT NULL, key text NOT NULL, job_id bigint NOT NULL, done_at timestamptz, PRIMARY KEY (topic, key));
CREATE INDEX keys_done ON `+s+`.keys (done_at) WHERE done_at IS NOT NULL;
INSERT INTO `+s+`.jobs (topic, payload, key, state, max_attempts, run_at) VALUES ('t', 'old', 'k-é', 1, 3, now());
INSERT INTO `+s+`.keys (topic, key, job_id) SELECT 't', 'k-é', id FROM `+s+`.jobs`)
	require.NoError(t, err)
	b, err := pgqueue.Open(ctx, p, &pgqueue.Options{Schema: schema})
	require.NoError(t, err, "Open must adopt a schema of an earlier release")
	defer b.Close()
	jobs, err := b.Lease(ctx, "t", 10, time.Minute, 0)
	require.NoError(t, err)
	require.Len(t, jobs, 1, "the earlier release's job must survive the migration")
	assert.Equal(t, "k-é", jobs[0].Key, "a text key must keep its bytes as bytea")
	assert.Equal(t, "old", string(jobs[0].Payload))
	id, err := b.Enqueue(ctx, "t", []byte("new"), queue.EnqueueOptions{Key: "k-é", MaxAttempts: 3})
	require.NoError(t, err)
	assert.Equal(t, jobs[0].ID, id, "the converted key must still deduplicate")
}
