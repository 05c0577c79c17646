package memtable

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// Each test uses its own arena size, so that the pool's spares of that size
// are its own whatever cleanups of other tests' memtables run meanwhile.
const (
	recycleSize    = 8<<20 + 1*4096
	concurrentSize = 4<<20 + 2*4096
	keepAliveSize  = 1<<20 + 3*4096
	kickGCSize     = 1<<20 + 4*4096
)

func currentStats() poolStats {
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// released returns the number of arenas cleanups have released.
func (s poolStats) released() int { return s.recycled + s.dropped }

// arenaAddr identifies an arena without keeping it reachable.
func arenaAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// spareAddrs returns the addresses of the spares of size.
func spareAddrs(size int) []uintptr {
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uintptr
	for _, mem := range p.spares[size] {
		out = append(out, arenaAddr(mem.buf))
	}
	return out
}

// poisonSpares fills the spares of size with garbage, so that a memtable
// that reads a byte it did not write sees neither zeros nor a plausible
// old node.
func poisonSpares(size int) {
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, mem := range p.spares[size] {
		mem.buf[0] = 0xa5
		for n := 1; n < len(mem.buf); n *= 2 {
			copy(mem.buf[n:], mem.buf[:n])
		}
	}
}

// prime makes size the only size New recently asked for, as in a test that
// uses one size throughout, so that the pool keeps arenas of that size.
func prime(size int) {
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.recent {
		p.recent[i] = size
	}
}

// drainSpares frees the spares of size.
func drainSpares(size int) {
	for {
		mem, ok := takeSpare(size)
		if !ok {
			return
		}
		freeArena(mem)
	}
}

// collectUntil runs the collector, and lets the cleanups it queues run,
// until cond holds. Cleanups run on another goroutine some time after the
// cycle that finds their object dead, so there is nothing to wait on.
func collectUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("no %s after collecting for 10s", what)
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// checkModel requires m to hold exactly model (sorted), scanning both ways
// and seeking to every tenth entry.
func checkModel(t *testing.T, m *Memtable, model []entry) {
	t.Helper()
	checkStructure(t, m)
	it := m.NewIter()
	requireEntries(t, model, scanForward(it))
	back := scanBackward(it)
	slices.Reverse(back)
	requireEntries(t, model, back)
	for i := 0; i < len(model); i += 10 {
		uk := model[i].key.UserKey
		j := i
		for j > 0 && bytes.Equal(model[j-1].key.UserKey, uk) {
			j--
		}
		require.True(t, it.SeekGE(uk), "SeekGE(%q)", uk)
		require.True(t, sameEntry(model[j], entry{it.Key(), it.Value()}), "SeekGE(%q) = %s, want %s", uk, it.Key(), model[j].key)
	}
	require.NoError(t, it.Close())
}

// TestArenaRecycling creates and drops memtables in a loop: their arenas
// must come back through the pool, and a memtable on a recycled arena, be it
// poisoned or full of an old memtable's nodes, must behave like a fresh one.
func TestArenaRecycling(t *testing.T) {
	const rounds = 50
	rng := rand.New(rand.NewPCG(21, 22))
	prime(recycleSize)
	start := currentStats()
	seen := map[uintptr]bool{}
	reused := 0
	for round := range rounds {
		if round%2 == 0 {
			poisonSpares(recycleSize)
		}
		m := New(recycleSize)
		if seen[arenaAddr(m.arena)] {
			reused++
		}
		seen[arenaAddr(m.arena)] = true
		es := genEntries(rng, 2_000+rng.IntN(8_000))
		for _, e := range es {
			require.NoError(t, m.Add(e.key, e.value))
		}
		model := slices.Clone(es)
		slices.SortFunc(model, cmpEntry)
		checkModel(t, m, model)
		runtime.KeepAlive(m)
		// Let the memtable just dropped come back before the next round
		// most of the time, as the engine's own garbage would.
		if round%5 != 4 {
			runtime.GC()
			runtime.Gosched()
		}
	}
	s := currentStats()
	t.Logf("%d rounds: %d arenas reused; pool: %d hits, %d fresh, %d recycled, %d dropped",
		rounds, reused, s.hits-start.hits, s.fresh-start.fresh, s.recycled-start.recycled, s.dropped-start.dropped)
	require.Positive(t, s.hits-start.hits, "New took no arena from the pool")
	require.Positive(t, reused, "no memtable got an arena a dropped memtable had")
	require.LessOrEqual(t, len(spareAddrs(recycleSize)), maxSparesPerSize)
}

// TestSmallArenasNotRecycled checks that arenas under minRecycledSize stay
// out of the pool.
func TestSmallArenasNotRecycled(t *testing.T) {
	before := currentStats()
	m := New(minRecycledSize - 8)
	require.NoError(t, m.Add(base.MakeInternalKey([]byte("k"), 1, base.KindSet), []byte("v")))
	after := currentStats()
	require.Equal(t, before.hits, after.hits)
	require.Equal(t, before.fresh, after.fresh)
	require.Zero(t, len(spareAddrs(minRecycledSize-8)))
}

// TestRampedSizesNotKept checks that the pool drops arenas smaller than
// those New recently asked for, as a ramp of memtable sizes leaves behind.
// It releases arenas itself, as the cleanups would.
func TestRampedSizesNotKept(t *testing.T) {
	const small, large = 1 << 20, 2 << 20
	prime(small)
	drainSpares(small)
	releaseArena(allocArena(small))
	require.Len(t, spareAddrs(small), 1, "arena of the recent size")
	// Asking for a larger arena drops the smaller spares...
	m := New(large)
	require.Empty(t, spareAddrs(small), "spare smaller than the last New")
	// ...and the pool does not keep smaller arenas released later.
	releaseArena(allocArena(small))
	require.Empty(t, spareAddrs(small), "spare smaller than a recent New")
	runtime.KeepAlive(m)
}

// TestRecycledConcurrent iterates a memtable on a recycled arena while other
// memtables of the same size are created, filled and dropped: they must
// never get its arena, and its contents must never change.
func TestRecycledConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	// Get a recycled arena, poisoned, for the memtable under test.
	prime(concurrentSize)
	drainSpares(concurrentSize)
	New(concurrentSize)
	collectUntil(t, "recycled arena", func() bool { return len(spareAddrs(concurrentSize)) > 0 })
	poisonSpares(concurrentSize)
	hits := currentStats().hits
	m := New(concurrentSize)
	require.Equal(t, hits+1, currentStats().hits, "New did not take the spare")
	es := genEntries(rng, 10_000)
	for _, e := range es {
		require.NoError(t, m.Add(e.key, e.value))
	}
	model := slices.Clone(es)
	slices.SortFunc(model, cmpEntry)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	scans := 0
	wg.Go(func() {
		it := m.NewIter()
		defer it.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := 0
			for ok := it.First(); ok; ok = it.Next() {
				if i >= len(model) || !sameEntry(model[i], entry{it.Key(), it.Value()}) {
					t.Errorf("scan %d: entry %d is %s, want %d entries", scans, i, it.Key(), len(model))
					return
				}
				i++
			}
			if i != len(model) {
				t.Errorf("scan %d: %d entries, want %d", scans, i, len(model))
				return
			}
			scans++
		}
	})
	start := currentStats()
	for round := range 30 {
		o := New(concurrentSize)
		require.NotEqual(t, arenaAddr(m.arena), arenaAddr(o.arena), "round %d: a live memtable's arena was handed out", round)
		other := genEntries(rng, 5_000)
		for _, e := range other {
			require.NoError(t, o.Add(e.key, e.value))
		}
		if round%3 == 0 {
			slices.SortFunc(other, cmpEntry)
			checkModel(t, o, other)
		}
		runtime.KeepAlive(o)
		runtime.GC()
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	require.Positive(t, currentStats().hits-start.hits, "no memtable got a recycled arena")
	t.Logf("%d scans", scans)
	checkModel(t, m, model)
}

// TestIteratorKeepsMemtableAlive drops a memtable but keeps an iterator over
// it: the memtable must stay reachable and its arena must not be recycled
// until the iterator is dropped too, and then the memtable must be collected
// (nothing its cleanup references points back to it).
func TestIteratorKeepsMemtableAlive(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	prime(keepAliveSize)
	collected := make(chan struct{})
	// Variables scoped in function literals are dead once they return.
	func() {
		var model []entry
		var addr uintptr
		it := func() base.InternalIterator {
			es := genEntries(rng, 5_000)
			m := New(keepAliveSize)
			for _, e := range es {
				require.NoError(t, m.Add(e.key, e.value))
			}
			model = slices.Clone(es)
			slices.SortFunc(model, cmpEntry)
			addr = arenaAddr(m.arena)
			runtime.AddCleanup(m, func(ch chan struct{}) { close(ch) }, collected)
			return m.NewIter()
		}()
		for range 5 {
			runtime.GC()
			runtime.Gosched()
			// Memtables that would get the arena if it were in the pool.
			for range 3 {
				o := New(keepAliveSize)
				require.NotEqual(t, addr, arenaAddr(o.arena), "an iterated memtable's arena was handed out")
				for _, e := range genEntries(rng, 1_000) {
					require.NoError(t, o.Add(e.key, e.value))
				}
			}
		}
		select {
		case <-collected:
			require.Fail(t, "memtable collected while an iterator over it is reachable")
		default:
		}
		require.NotContains(t, spareAddrs(keepAliveSize), addr)
		requireEntries(t, model, scanForward(it))
		require.NoError(t, it.Close())
	}()

	collectUntil(t, "collected memtable", func() bool {
		select {
		case <-collected:
			return true
		default:
			return false
		}
	})
}

// TestNewKicksGC checks that New starts a collection when it leaves no
// spare and none ended since the previous New, so that dead memtables come
// back even if the program allocates nothing on the Go heap.
func TestNewKicksGC(t *testing.T) {
	if !offHeapArenas {
		t.Skip("arenas are on the Go heap, which paces the collector")
	}
	notCollecting := func() bool {
		p := &arenaPool
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.collecting
	}
	// A collection that starts on its own spoils an attempt; retry.
	for attempt := 0; ; attempt++ {
		prime(kickGCSize)
		drainSpares(kickGCSize)
		waitFor(t, "the end of a kicked collection", notCollecting)
		runtime.GC()
		New(kickGCSize).Add(base.MakeInternalKey([]byte("k"), 1, base.KindSet), nil)

		before := currentStats()
		m := New(kickGCSize)
		after := currentStats()
		if after.kickedGCs == before.kickedGCs && attempt < 5 {
			continue
		}
		require.Equal(t, before.kickedGCs+1, after.kickedGCs, "New did not start a collection")
		// That collection finds the first memtable dead, without help.
		waitFor(t, "released arena", func() bool { return currentStats().released() > before.released() })
		runtime.KeepAlive(m)
		return
	}
}

// waitFor yields until cond holds.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("no %s after 10s", what)
		}
		runtime.Gosched()
	}
}
