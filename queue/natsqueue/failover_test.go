package natsqueue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/natsqueue"
)

// TestFailover shuts down the leader of an R3 topic stream on an
// in-process 3-node cluster while producers enqueue and workers lease and
// acknowledge, and checks that no job is lost, that a job is acknowledged
// twice only if an acknowledgement of it failed, and that every error the
// backend returned is temporary. It prints the stall: the time from the
// shutdown to the next successful acknowledgement, and the longest gap
// between two successful acknowledgements after the shutdown. MAILBRICKS_LONG=1: 3 runs of
// 5,000 jobs; otherwise 1 run of 1,500.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	runs, jobs := 1, 1500
	if longRun() {
		runs, jobs = 3, 5000
	}
	for r := range runs {
		t.Run(fmt.Sprint(r), func(t *testing.T) { failover(t, startCluster(t, 3), jobs) })
	}
}

// killable is a 3-node cluster whose servers a test can take down.
type killable interface {
	connect() *nats.Conn
	// kill takes down the server named name.
	kill(name string)
}

// kill shuts the in-process server named name down.
func (c *cluster) kill(name string) {
	for _, s := range c.servers {
		if s.Name() == name {
			s.Shutdown()
			return
		}
	}
	c.t.Fatalf("no server %s", name)
}

// streamLeaderName asks JetStream which server leads stream.
func streamLeaderName(ctx context.Context, t *testing.T, nc *nats.Conn, stream string) string {
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	for {
		s, err := js.Stream(ctx, stream)
		if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader != "" {
			return s.CachedInfo().Cluster.Leader
		}
		require.NoError(t, ctx.Err(), "the stream must have a leader")
		time.Sleep(20 * time.Millisecond)
	}
}

func failover(t *testing.T, c killable, n int) {
	nc := c.connect()
	prefix := fmt.Sprintf("QF%d", rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := natsqueue.Open(ctx, nc, &natsqueue.Options{Prefix: prefix, LeaseTTL: 10 * time.Second, Replicas: 3})
	require.NoError(t, err)
	const topic = "failover"

	var (
		mu         sync.Mutex
		acked      = map[string]int{}
		ackFailed  = map[string]int{}
		enqueued   = map[string]bool{}
		lastAck    time.Time
		longestGap time.Duration
		firstAfter time.Time
		killedAt   time.Time
		tempErrs   atomic.Int64
		total      atomic.Int64
	)
	// transient records err, which must be temporary, and reports whether
	// the caller should retry.
	transient := func(what string, err error) bool {
		if err == nil {
			return false
		}
		if ctx.Err() != nil {
			return false
		}
		require.Truef(t, mailbricks.IsTemporary(err), "%s failed with a non-temporary error: %v", what, err)
		if tempErrs.Add(1)%50 == 1 {
			t.Logf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
		return true
	}
	enqueue := func(i int) {
		for {
			id, err := b.Enqueue(ctx, topic, fmt.Appendf(nil, "job %d", i), queue.EnqueueOptions{Key: fmt.Sprint("job-", i), MaxAttempts: 1000})
			if !transient("Enqueue", err) {
				require.NoError(t, err)
				mu.Lock()
				enqueued[id] = true
				mu.Unlock()
				return
			}
		}
	}
	// Half the jobs before the workers start, half while they run.
	for i := range n / 2 {
		enqueue(i)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for wctx.Err() == nil {
				js, err := b.Lease(wctx, topic, 8, 10*time.Second, 200*time.Millisecond)
				if wctx.Err() != nil {
					return
				}
				if transient("Lease", err) {
					continue
				}
				require.NoError(t, err)
				for _, j := range js {
					err := b.Ack(wctx, j)
					if wctx.Err() != nil {
						return
					}
					now := time.Now()
					mu.Lock()
					if err != nil {
						ackFailed[j.ID]++
					} else {
						acked[j.ID]++
						if !killedAt.IsZero() && !lastAck.IsZero() && now.Sub(lastAck) > longestGap {
							longestGap = now.Sub(lastAck)
						}
						lastAck = now
						if !killedAt.IsZero() && firstAfter.IsZero() {
							firstAfter = now
						}
					}
					mu.Unlock()
					if err == nil {
						if total.Add(1) >= int64(n) {
							mu.Lock()
							done := len(acked) == n
							mu.Unlock()
							if done {
								stop()
							}
						}
					} else {
						transient("Ack", err)
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := n / 2; i < n; i++ {
			enqueue(i)
		}
	})
	// Shut the stream's leader down once a third of the jobs are done.
	for total.Load() < int64(n/3) && wctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	leader := streamLeaderName(ctx, t, nc, prefix+"_"+topic)
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	c.kill(leader)
	t.Logf("took stream leader %s down after %d acknowledgements", leader, total.Load())

	wg.Go(func() {
		for {
			select {
			case <-wctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
			st, err := b.Stats(wctx, topic)
			t.Logf("progress: %d acknowledged, %d temporary errors; stats %+v %v", total.Load(), tempErrs.Load(), st, err)
		}
	})
	wg.Wait()
	require.NoError(t, ctx.Err(), "the jobs must all be acknowledged within the time limit")
	mu.Lock()
	defer mu.Unlock()
	dups, unexplained := 0, 0
	for id, k := range acked {
		if k > 1 {
			dups += k - 1
			if ackFailed[id] == 0 {
				unexplained++
			}
		}
	}
	lost := 0
	for id := range enqueued {
		if acked[id] == 0 {
			lost++
		}
	}
	failedAcks := 0
	for _, k := range ackFailed {
		failedAcks += k
	}
	stall := time.Duration(0)
	if !firstAfter.IsZero() {
		stall = firstAfter.Sub(killedAt)
	}
	t.Logf("failover: %d jobs, %d acknowledged, %d lost, %d duplicates, %d failed acks, %d temporary errors; stall: first ack %v after the leader went down, longest gap between acks after that %v",
		n, len(acked), lost, dups, failedAcks, tempErrs.Load(), stall.Round(time.Millisecond), longestGap.Round(time.Millisecond))
	require.Len(t, enqueued, n)
	require.Zero(t, lost, "no enqueued job may be lost")
	require.Zero(t, unexplained, "a job may be acknowledged twice only after a failed acknowledgement")
}

// TestFailoverKill is TestFailover with the leader SIGKILLed: a 3-node
// cluster of nats-server processes (the binary on PATH), whose stream
// leader dies without stepping down, so the others elect a new one after
// the Raft election timeout. MAILBRICKS_LONG=1 only: 3 runs of 5,000
// jobs.
func TestFailoverKill(t *testing.T) {
	if !longRun() {
		t.Skip("MAILBRICKS_LONG is not 1: the SIGKILL failover test is skipped")
	}
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("nats-server is required under CI=true: %v", err)
		}
		t.Skip("nats-server not found: the SIGKILL failover test is skipped")
	}
	for r := range 3 {
		t.Run(fmt.Sprint(r), func(t *testing.T) { failover(t, startProcCluster(t, bin), 5000) })
	}
}

// procCluster is a 3-node cluster of nats-server processes.
type procCluster struct {
	t     *testing.T
	urls  []string
	procs map[string]*exec.Cmd
}

func startProcCluster(t *testing.T, bin string) *procCluster {
	c := &procCluster{t: t, procs: map[string]*exec.Cmd{}}
	var cports, routes []string
	for range 3 {
		p := strconv.Itoa(freePort(t))
		cports = append(cports, p)
		routes = append(routes, "nats://127.0.0.1:"+p)
	}
	for i := range 3 {
		name := fmt.Sprintf("p%d", i+1)
		port := strconv.Itoa(freePort(t))
		cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", port, "-n", name, "-js", "-sd", t.TempDir(),
			"--cluster_name", "mailbricks", "--cluster", "nats://127.0.0.1:"+cports[i], "--routes", strings.Join(routes, ","))
		require.NoError(t, cmd.Start())
		c.procs[name] = cmd
		c.urls = append(c.urls, "nats://127.0.0.1:"+port)
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	// Wait until JetStream answers through every server.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, u := range c.urls {
		for {
			nc, err := nats.Connect(u)
			if err == nil {
				js, _ := jetstream.New(nc)
				actx, acancel := context.WithTimeout(ctx, 2*time.Second)
				_, err = js.AccountInfo(actx)
				acancel()
				nc.Close()
			}
			if err == nil {
				break
			}
			require.NoError(t, ctx.Err(), "nats-server cluster not ready: %v", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

func (c *procCluster) connect() *nats.Conn {
	nc, err := nats.Connect(strings.Join(c.urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(c.t, err)
	c.t.Cleanup(nc.Close)
	return nc
}

// kill SIGKILLs the server named name.
func (c *procCluster) kill(name string) {
	cmd, ok := c.procs[name]
	require.True(c.t, ok, "no server %s", name)
	require.NoError(c.t, cmd.Process.Kill())
}
