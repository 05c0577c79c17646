package pgqueue_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/pgerr/pgerrtest"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/pgqueue"
)

// TestServerRestart restarts a private PostgreSQL server twice (a fast
// shutdown, then an immediate one, which is a crash followed by WAL
// recovery) while producers enqueue keyed jobs and workers lease and
// acknowledge them through one pool and one backend. Every error must be
// temporary, every acknowledged Enqueue's job must be delivered and
// acknowledged, no job acknowledged without error may be delivered
// again, and the same backend must work after each restart. It runs
// only under MAILBRICKS_LONG=1 (it needs initdb and pg_ctl).
func TestServerRestart(t *testing.T) {
	if os.Getenv("MAILBRICKS_LONG") != "1" {
		t.Skip("MAILBRICKS_LONG is not 1: the PostgreSQL restart test is skipped")
	}
	srv := pgerrtest.StartServer(t)
	p := srv.Pool(16)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	b, err := pgqueue.Open(ctx, p, nil)
	require.NoError(t, err)
	defer b.Close()
	const topic, n = "restart", 3000

	var (
		mu        sync.Mutex
		enqueued  = map[string]bool{}
		acked     = map[string]bool{}
		ackFailed = map[string]bool{}
		again     int // deliveries of a job after an Ack of it returned nil
		tempErrs  = map[string]int{}
		total     atomic.Int64
		upAt      time.Time       // when the server was started again
		recovery  []time.Duration // from upAt to the next successful Ack
	)
	// transient checks that err is temporary and reports whether to retry.
	transient := func(what string, err error) bool {
		if err == nil || ctx.Err() != nil {
			return false
		}
		if !mailbricks.IsTemporary(err) {
			t.Errorf("%s failed with a non-temporary error: %v", what, err)
			return false
		}
		mu.Lock()
		tempErrs[what]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return true
	}
	var pwg, wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		pwg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				for {
					id, err := b.Enqueue(ctx, topic, fmt.Appendf(nil, "job %d", i), queue.EnqueueOptions{Key: fmt.Sprint("job-", i), MaxAttempts: 1000})
					if transient("Enqueue", err) {
						continue
					}
					if err == nil {
						mu.Lock()
						enqueued[id] = true
						mu.Unlock()
					}
					break
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for range 8 {
		wg.Go(func() {
			for wctx.Err() == nil {
				jobs, err := b.Lease(wctx, topic, 8, 30*time.Second, 200*time.Millisecond)
				if wctx.Err() != nil {
					return
				}
				if transient("Lease", err) || err != nil {
					continue
				}
				for _, j := range jobs {
					mu.Lock()
					if acked[j.ID] {
						again++
					}
					mu.Unlock()
					for {
						err := b.Ack(wctx, j)
						if wctx.Err() != nil {
							return
						}
						if transient("Ack", err) {
							// Unknown outcome: retry; the token fences a
							// stale one.
							continue
						}
						mu.Lock()
						if err == nil {
							acked[j.ID] = true
							total.Add(1)
							if !upAt.IsZero() {
								recovery = append(recovery, time.Since(upAt))
								upAt = time.Time{}
							}
						} else {
							ackFailed[j.ID] = true
						}
						mu.Unlock()
						break
					}
				}
			}
		})
	}
	waitFor := func(k int64) {
		for total.Load() < k && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, mode := range []string{"fast", "immediate"} {
		waitFor(int64(n * (i + 1) / 3))
		at := total.Load()
		srv.Stop(mode)
		time.Sleep(time.Second)
		srv.Start()
		mu.Lock()
		upAt = time.Now()
		mu.Unlock()
		t.Logf("restarted (%s shutdown) after %d acknowledgements", mode, at)
	}
	pwg.Wait()
	for ctx.Err() == nil {
		mu.Lock()
		done := len(acked) >= len(enqueued)
		mu.Unlock()
		if done && next.Load() >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	require.NoError(t, ctx.Err(), "every job must be acknowledged within the time limit")

	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for id := range enqueued {
		// A job whose Ack broke and whose retried Ack found it gone was
		// completed by the broken one; Stats below checks none is left.
		if !acked[id] && !ackFailed[id] {
			lost++
		}
	}
	t.Logf("PostgreSQL restart: %d acknowledged Enqueues checked, %d lost, %d acknowledged jobs delivered again, %d failed acks; temporary errors %v; first Ack %v after each start",
		len(enqueued), lost, again, len(ackFailed), tempErrs, recovery)
	require.Len(t, enqueued, n, "every Enqueue must eventually succeed")
	require.Zero(t, lost, "no acknowledged Enqueue may be lost")
	require.Zero(t, again, "a job whose Ack returned nil must not be delivered again")
	st, err := b.Stats(ctx, topic)
	require.NoError(t, err, "the backend must work after the restarts without a new pool")
	require.Zero(t, st.Ready+st.Leased+st.Delayed+st.Dead, "no job may remain: %+v", st)
}
