package lsmreputation_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/stretchr/testify/require"
)

// TestReopen checks that Close persists everything but token buckets.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	now := time.Now()
	b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: fs, FlushInterval: -1})
	require.NoError(t, err)
	require.NoError(t, b.AddCounts(ctx, "c", 7, reputation.Counts{Delivered: 3}, now.Add(time.Hour)))
	require.NoError(t, b.AddCounts(ctx, "c", 7, reputation.Counts{Complaint: 1}, now.Add(time.Hour)))
	require.NoError(t, b.AddCounts(ctx, "old", 7, reputation.Counts{Delivered: 1}, now.Add(-time.Hour)))
	ok, err := b.Reserve(ctx, "r", 2, 2, now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok)
	ok, _, err = b.Take(ctx, "t", 1, 1, 1, now)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = b.SetState(ctx, "s", []byte("v"), 0)
	require.NoError(t, err)
	require.NoError(t, b.PutSuppression(ctx, reputation.Suppression{Address: "a@b.c", Reason: reputation.ReasonManual}))
	require.NoError(t, b.Close())

	b, err = lsmreputation.Open("rep", &lsmreputation.Options{FS: fs, FlushInterval: -1})
	require.NoError(t, err)
	defer b.Close()
	c, err := b.SumCounts(ctx, "c", 0, 10)
	require.NoError(t, err)
	require.Equal(t, reputation.Counts{Delivered: 3, Complaint: 1}, c, "counters survive Close and reopen")
	c, _ = b.SumCounts(ctx, "old", 0, 10)
	require.Zero(t, c, "expired counters are dropped at Open")
	ok, _ = b.Reserve(ctx, "r", 1, 2, now.Add(time.Hour))
	require.False(t, ok, "reservations survive")
	v, ver, _ := b.GetState(ctx, "s")
	require.Equal(t, "v", string(v))
	require.EqualValues(t, 1, ver, "versions survive")
	_, err = b.GetSuppression(ctx, "a@b.c")
	require.NoError(t, err)
	ok, _, _ = b.Take(ctx, "t", 1, 1, 1, now)
	require.True(t, ok, "token buckets start full after Open")
}

// TestCrash runs cycles of concurrent writers, a crash at a random moment
// (CrashClone, after a random number of operations returned, with no
// sleep), and a reopen of the crashed image: every suppression and
// state write that returned must be there, and every counter must hold
// at least what the last completed Flush wrote and at most everything
// added.
func TestCrash(t *testing.T) {
	cycles := 16
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		cycles = 2000
	}
	ctx := context.Background()
	exp := time.Now().Add(24 * time.Hour)
	var checkedAcks int
	var checkedFlushed int64
	for cycle := range cycles {
		rng := rand.New(rand.NewPCG(uint64(cycle), 7))
		fs := vfs.NewCrashable()
		b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: fs, FlushInterval: -1})
		require.NoError(t, err)
		const writers = 4
		var mu sync.Mutex
		acked := map[string]bool{} // suppressions and states that returned
		flushed := map[int]int64{} // per writer: delivered counts covered by a returned Flush
		added := map[int]int64{}
		var wg sync.WaitGroup
		var ops atomic.Int64 // operations returned, the crash moment's clock
		stop := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					key := fmt.Sprintf("w%d", w)
					if b.AddCounts(ctx, key, 1, reputation.Counts{Delivered: 1}, exp) != nil {
						return
					}
					mu.Lock()
					added[w]++
					n := added[w]
					mu.Unlock()
					ops.Add(1)
					switch i % 8 {
					case 3:
						addr := fmt.Sprintf("w%d-%d@example.com", w, i)
						if b.PutSuppression(ctx, reputation.Suppression{Address: addr, Reason: reputation.ReasonManual}) == nil {
							mu.Lock()
							acked["x"+addr] = true
							mu.Unlock()
						}
					case 5:
						k := fmt.Sprintf("s%d-%d", w, i)
						if ok, err := b.SetState(ctx, k, []byte(k), 0); err == nil && ok {
							mu.Lock()
							acked["s"+k] = true
							mu.Unlock()
						}
					case 7:
						if b.Flush() == nil {
							mu.Lock()
							flushed[w] = max(flushed[w], n)
							mu.Unlock()
						}
					}
				}
			})
		}
		// Crash after a random number of operations returned, while the
		// writers keep going.
		for target := int64(100 + rng.IntN(8000)); ops.Load() < target; {
			runtime.Gosched()
		}
		mu.Lock()
		wantAcked := make(map[string]bool, len(acked))
		for k := range acked {
			wantAcked[k] = true
		}
		wantFlushed := map[int]int64{}
		for k, v := range flushed {
			wantFlushed[k] = v
		}
		mu.Unlock()
		crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: int64(cycle), UnsyncedDataPercent: rng.IntN(101)})
		close(stop)
		wg.Wait()
		mu.Lock()
		total := map[int]int64{}
		for k, v := range added {
			total[k] = v
		}
		mu.Unlock()
		require.NoError(t, b.Close())

		r, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: crashed, FlushInterval: -1})
		require.NoError(t, err, "cycle %d: the crashed image must reopen", cycle)
		checkedAcks += len(wantAcked)
		for k := range wantAcked {
			if k[0] == 'x' {
				_, err := r.GetSuppression(ctx, k[1:])
				require.NoError(t, err, "cycle %d: acknowledged suppression %s lost", cycle, k[1:])
			} else {
				v, ver, err := r.GetState(ctx, k[1:])
				require.NoError(t, err)
				require.Equal(t, k[1:], string(v), "cycle %d: acknowledged state %s lost", cycle, k[1:])
				require.EqualValues(t, 1, ver)
			}
		}
		for w := range writers {
			c, err := r.SumCounts(ctx, fmt.Sprintf("w%d", w), 0, 2)
			require.NoError(t, err)
			require.GreaterOrEqual(t, c.Delivered, wantFlushed[w], "cycle %d writer %d: flushed counts lost", cycle, w)
			require.LessOrEqual(t, c.Delivered, total[w], "cycle %d writer %d: counts from nowhere", cycle, w)
			checkedFlushed += wantFlushed[w]
		}
		require.NoError(t, r.Close())
	}
	t.Logf("%d crash cycles: %d acknowledged suppressions and states checked present, %d flushed counter increments checked kept",
		cycles, checkedAcks, checkedFlushed)
}
