package redisreputation_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/redisreputation"
	"github.com/mailbricks/mailbricks/reputation/reputationtest"
)

// redisServer is a private redis-server without persistence (--save ""
// and no AOF) on a free loopback port, so that a restart loses its data.
type redisServer struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is required under CI=true: %v", err)
		}
		t.Skip("redis-server not found: the Redis restart test is skipped")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &redisServer{t: t, dir: t.TempDir(), port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	s.start(bin)
	t.Cleanup(s.kill)
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start(bin string) {
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir)
	require.NoError(s.t, s.cmd.Start())
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		require.Less(s.t, i, 200, "redis-server did not start")
		time.Sleep(25 * time.Millisecond)
	}
}

// kill SIGKILLs the server and waits for it.
func (s *redisServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// TestRedisRestart kills a private Redis that keeps nothing on disk and
// starts it again under a Tracker and its client, and checks what the
// package documentation says under # Losing Redis's data: calls fail
// with temporary errors while Redis is down, the same Tracker works
// again without reopening anything, and the lost state reads as new: the
// suppression list is empty, a pause is forgotten, a warming IP is back
// at its first stage.
func TestRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("Redis restart test skipped in -short mode")
	}
	srv := startRedis(t)
	bin, _ := exec.LookPath("redis-server")
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	b, err := redisreputation.Open(ctx, c, nil)
	require.NoError(t, err)
	const warm, plain = "192.0.2.10", "192.0.2.20"
	tr, err := reputation.New(b, &reputation.Options{
		Resolver: reputationtest.NewResolver(nil),
		Pools: []reputation.Pool{
			{Class: reputation.ClassBulk, IPs: []reputation.IP{{Addr: warm, Warmup: true}}},
			{Class: reputation.ClassTransactional, IPs: []reputation.IP{{Addr: plain}}},
		},
	})
	require.NoError(t, err)
	defer tr.Close()

	prov := tr.Provider(ctx, "example.net")
	require.NoError(t, tr.Suppress(ctx, reputation.Suppression{Address: "jane@example.net", Reason: reputation.ReasonHardBounce}))
	require.NoError(t, tr.Pause(ctx, plain, prov, time.Now().Add(time.Hour), "test"))
	d, err := tr.Decide(ctx, reputation.Send{To: "jane@example.net", Class: reputation.ClassBulk})
	require.NoError(t, err)
	require.False(t, d.Allow, "a suppressed address must be refused")
	require.Zero(t, d.RetryAfter, "a suppressed address must be refused for good: %+v", d)
	// Empty the warming IP's token bucket.
	sent := 0
	for ; sent < 1000; sent++ {
		d, err = tr.Decide(ctx, reputation.Send{To: fmt.Sprintf("user%d@example.net", sent), Class: reputation.ClassBulk})
		require.NoError(t, err)
		if !d.Allow {
			break
		}
	}
	require.False(t, d.Allow, "the token bucket must run out")
	require.Equal(t, "rate limited", d.Reason)
	st, err := tr.Status(ctx, plain, prov)
	require.NoError(t, err)
	require.Equal(t, reputation.StatePaused, st.State)

	// Down: every call fails, with a temporary error.
	srv.kill()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = tr.Decide(dctx, reputation.Send{To: "john@example.net", Class: reputation.ClassBulk})
	cancel()
	require.Error(t, err, "Decide must fail while Redis is down")
	require.True(t, mailbricks.IsTemporary(err), "an error while Redis is down must be temporary: %v", err)
	_, err = tr.Suppressed(ctx, "jane@example.net")
	require.True(t, mailbricks.IsTemporary(err), "an error while Redis is down must be temporary: %v", err)

	// Up again, empty: the same Tracker and client work; the state is new.
	srv.start(bin)
	d, err = tr.Decide(ctx, reputation.Send{To: "jane@example.net", Class: reputation.ClassBulk})
	require.NoError(t, err, "the Tracker must work again after Redis restarts, without reopening")
	require.True(t, d.Allow, "after Redis lost its data the suppression list is empty")
	require.Equal(t, warm, d.IP, "after Redis lost its data the token bucket is full again")
	_, err = tr.Suppressed(ctx, "jane@example.net")
	require.ErrorIs(t, err, reputation.ErrNotFound)
	st, err = tr.Status(ctx, plain, prov)
	require.NoError(t, err)
	require.Equal(t, reputation.StateActive, st.State, "after Redis lost its data a pause is forgotten")
	st, err = tr.Status(ctx, warm, prov)
	require.NoError(t, err)
	require.Equal(t, reputation.StateWarming, st.State, "after Redis lost its data a warming IP warms up again")
	require.Zero(t, st.Stage, "after Redis lost its data a warming IP starts again at its first stage")
	// The scripts are loaded again (EVALSHA falls back to EVAL on NOSCRIPT).
	require.NoError(t, tr.Record(ctx, reputation.Outcome{IP: warm, Recipient: "user1@example.net", Kind: reputation.KindDelivered}))
	cs, err := tr.Counts(ctx, warm, prov, time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, cs.Delivered, "counting starts again from zero")
	t.Logf("Redis restart: suppression, pause, warm-up stage and a token bucket emptied by %d sends were lost and read as new", sent)
}
