package natsqueue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/internal/killtest"
	"github.com/mailbricks/mailbricks/queue/natsqueue"
	"github.com/mailbricks/mailbricks/queue/queuetest"
)

const testTTL = 3 * time.Second

// serverURL returns MAILBRICKS_NATS_URL, or starts an in-process
// JetStream server in a temporary directory.
func serverURL(t *testing.T) string {
	if u := os.Getenv("MAILBRICKS_NATS_URL"); u != "" {
		return u
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("in-process nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

func connect(t *testing.T, url string) *nats.Conn {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// deleteStreams removes every stream of prefix when the test ends.
func deleteStreams(t *testing.T, nc *nats.Conn, prefix string) {
	t.Cleanup(func() {
		js, err := nc.JetStream()
		if err != nil {
			return
		}
		for name := range js.StreamNames() {
			if len(name) > len(prefix) && name[:len(prefix)+1] == prefix+"_" || name == "KV_"+prefix+"_ERRORS" {
				_ = js.DeleteStream(name)
			}
		}
	})
}

func TestConformance(t *testing.T) {
	url := serverURL(t)
	queuetest.Run(t, func(t *testing.T, _ func() time.Time) queue.Backend {
		nc := connect(t, url)
		prefix := fmt.Sprintf("QT%d", rand.Uint32())
		deleteStreams(t, nc, prefix)
		b, err := natsqueue.Open(context.Background(), nc, &natsqueue.Options{Prefix: prefix, LeaseTTL: testTTL})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, &queuetest.Options{
		RealClock: true, NoFencing: true, FixedTTL: true, NoPriority: true,
		ApproxNotBefore: true, ApproxStats: true, TTL: testTTL,
	})
}

// TestKill SIGKILLs worker processes on one set of streams (MAILBRICKS_LONG=1:
// 100 times) and checks the effects as lsmqueue's TestKill does. The
// server is MAILBRICKS_NATS_URL or an in-process one in this (parent)
// process, which is not killed.
func TestKill(t *testing.T) {
	if killtest.IsChild() {
		killtest.Child(func(ctx context.Context) (queue.Backend, error) {
			nc, err := nats.Connect(os.Getenv("MAILBRICKS_QUEUE_KILLTEST_NATS"))
			if err != nil {
				return nil, err
			}
			return natsqueue.Open(ctx, nc, &natsqueue.Options{Prefix: killtest.Name(), LeaseTTL: killtest.LeaseTTL})
		})
		return
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	url := serverURL(t)
	t.Setenv("MAILBRICKS_QUEUE_KILLTEST_NATS", url)
	prefix := fmt.Sprintf("QK%d", rand.Uint32())
	deleteStreams(t, connect(t, url), prefix)
	cycles := 8
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		cycles = 100
	}
	killtest.Run(t, cycles, prefix)
}
