package memtable

import (
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"unsafe"
)

// Arena memory
//
// A 64 MiB arena allocated with make would be live Go heap: with GOGC=100
// the collector lets the heap grow to about twice the live arenas before it
// runs, and every memtable rotation would allocate, and first touch, a fresh
// arena. So on Unix New maps its arena with an anonymous private mmap,
// outside the Go heap: the kernel zero-fills it, the collector neither
// counts nor scans it, and pages the memtable never touches cost no memory.
// Where mmap is unavailable, and in race-enabled builds (the race detector
// does not see accesses to memory outside the Go heap, and this package's
// lock-free readers are what it must check), the arena is a Go allocation.
//
// Arenas under minRecycledSize (1 MiB) are plain Go allocations that are
// neither mapped nor recycled: they weigh little in the heap, the collector
// frees them as it does any garbage, and a mapping each would multiply the
// process's memory mappings (the engine's tests use memtables of 8-256 KiB
// in odd sizes).
//
// Lifetime. The arena must outlive every use of the bytes it holds: keys and
// values returned by iterators alias it, and are documented valid as long as
// the memtable is alive. So the arena is released only once the *Memtable is
// unreachable, by a cleanup attached with runtime.AddCleanup. Every iterator
// holds its *Memtable, so an open iterator keeps the arena too. The cleanup's
// argument is the arenaMem, which holds the arena slice and no pointer back
// to the Memtable; otherwise the Memtable would stay reachable from its own
// cleanup and never be collected.
//
// Recycling. The cleanup does not unmap the arena: it returns it to a pool
// of spare arenas keyed by size, and New takes a spare of the size it needs
// before mapping a new one, so a rotating memtable reuses pages that are
// already mapped and faulted in instead of faulting in 64 MiB of fresh
// zeroed memory. The pool keeps at most maxSparesPerSize arenas per size,
// maxSpares and maxSpareBytes in all (but always room for one arena), and
// unmaps the rest. Spares stay resident: that is the point, and their cost.
// So the pool keeps no arena smaller than one of the last recentNews that
// New asked for, and drops those it holds when New asks for a larger one:
// the engine ramps its memtable sizes up, doubling from 256 KiB to
// Options.MemTableSize, and no later New would take the arenas the ramp
// leaves behind (pebble likewise recycles only full-size arenas).
//
// A recycled arena is not cleared: it still holds its previous memtable's
// nodes and values, and nothing reads them. New clears the head node
// (headSize bytes); every other byte is read only after Add wrote it, since
// Add fills in all of a node that is ever read (its tower links up to its
// height, prev, key length, key, trailer, value offset and length) and its
// value before it publishes the node, and nothing reads a node's padding or
// its links above its height. Clearing the used part of the arena instead
// would rewrite most of 64 MiB on every rotation, for nothing. A test
// poisons recycled arenas to hold this invariant.
//
// Off-heap memory does not pace the collector: a program that rotates
// memtables while allocating little on the Go heap would map arena after
// arena, since no collection would find the dead memtables. So when New
// leaves the pool with no spare of its size and no collection has ended
// since the previous New, it starts one in the background (runtime.GC in a
// new goroutine, one at a time): the memtable it replaces is likely dead by
// the time the collector marks, and its arena back in the pool for the next
// New. New does not wait for it, which would stall the writer for a whole
// cycle. An engine that allocates as it writes seldom gets there: the
// collector runs on its own between rotations.

// arenaMem is an arena's memory and how it was obtained. It is the argument
// of the Memtable's cleanup, so it must not point to the Memtable.
type arenaMem struct {
	buf    []byte
	mapped bool // from mapArena: give back with unmapArena
}

const (
	minRecycledSize  = 1 << 20
	maxSparesPerSize = 2
	maxSpares        = 8
	maxSpareBytes    = 256 << 20
	recentNews       = 4
)

// arenaPool is the process-wide pool of spare arenas, shared by every
// memtable of every DB in the process.
var arenaPool struct {
	mu     sync.Mutex
	spares map[int][]arenaMem
	count  int // number of spares
	bytes  int // total size of spares

	// recent is a ring of the sizes of the last recentNews arenas of
	// recycled sizes that New asked for; the next goes at
	// recent[next%recentNews].
	recent [recentNews]int
	next   int

	// newCycle is 1 + the number of GC cycles that had ended at the
	// last New (0 before the first); collecting is set while a collection
	// New started runs.
	newCycle   uint64
	collecting bool

	stats poolStats
}

// poolStats counts pool events, for tests.
type poolStats struct {
	hits      int // arenas New took from the pool
	fresh     int // arenas New allocated
	recycled  int // arenas a cleanup returned to the pool
	dropped   int // arenas the pool unmapped or left to the collector
	kickedGCs int // collections New started
}

// newArena returns a size-byte arena, 8-byte aligned so that every 4-byte
// aligned offset is a valid *uint32 for sync/atomic. A spare from the pool
// still holds its previous contents; a fresh arena is zeroed. If
// recycled(size), the caller must pass the arena to releaseArena once
// nothing references it.
func newArena(size int) arenaMem {
	if !recycled(size) {
		return arenaMem{buf: heapArena(size)}
	}
	for _, mem := range noteNew(size) {
		freeArena(mem)
	}
	mem, ok := takeSpare(size)
	if !ok {
		mem = allocArena(size)
	}
	if offHeapArenas {
		maybeCollect(size)
	}
	return mem
}

// noteNew records that New asks for an arena of size, and removes from the
// pool and returns the spares that are now too small to keep.
func noteNew(size int) (evicted []arenaMem) {
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recent[p.next%recentNews] = size
	p.next++
	for sz, s := range p.spares {
		if sz < size {
			evicted = append(evicted, s...)
			p.count -= len(s)
			p.bytes -= sz * len(s)
			p.stats.dropped += len(s)
			delete(p.spares, sz)
		}
	}
	return evicted
}

func takeSpare(size int) (arenaMem, bool) {
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.spares[size]
	if len(s) == 0 {
		return arenaMem{}, false
	}
	mem := s[len(s)-1]
	s[len(s)-1] = arenaMem{}
	p.spares[size] = s[:len(s)-1]
	p.count--
	p.bytes -= size
	p.stats.hits++
	return mem, true
}

func allocArena(size int) arenaMem {
	mem := arenaMem{}
	if offHeapArenas {
		mem.buf, mem.mapped = mapArena(size)
	}
	if !mem.mapped {
		mem.buf = heapArena(size)
	}
	p := &arenaPool
	p.mu.Lock()
	p.stats.fresh++
	p.mu.Unlock()
	return mem
}

// recycled reports whether arenas of size are recycled.
func recycled(size int) bool { return size >= minRecycledSize }

// heapArena allocates an arena on the Go heap.
func heapArena(size int) []byte {
	// Allocate as []uint64 for alignment.
	words := make([]uint64, (size+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)
}

// maybeCollect starts a collection in the background if no spare of size
// is left and none ended since the previous New.
func maybeCollect(size int) {
	sample := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(sample)
	var cycle uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		cycle = sample[0].Value.Uint64()
	}
	p := &arenaPool
	p.mu.Lock()
	defer p.mu.Unlock()
	same := p.newCycle == cycle+1
	p.newCycle = cycle + 1
	if !same || len(p.spares[size]) > 0 || p.collecting {
		return
	}
	p.collecting = true
	p.stats.kickedGCs++
	go func() {
		runtime.GC()
		p.mu.Lock()
		p.collecting = false
		p.mu.Unlock()
	}()
}

// releaseArena is the Memtable cleanup: it keeps mem as a spare if the pool
// has room, and frees it otherwise.
func releaseArena(mem arenaMem) {
	size := len(mem.buf)
	p := &arenaPool
	p.mu.Lock()
	keep := len(p.spares[size]) < maxSparesPerSize &&
		(p.count == 0 || p.count < maxSpares && p.bytes+size <= maxSpareBytes) &&
		size >= slices.Max(p.recent[:])
	if keep {
		if p.spares == nil {
			p.spares = map[int][]arenaMem{}
		}
		p.spares[size] = append(p.spares[size], mem)
		p.count++
		p.bytes += size
		p.stats.recycled++
	} else {
		p.stats.dropped++
	}
	p.mu.Unlock()
	if !keep {
		freeArena(mem)
	}
}

// freeArena gives an arena out of the pool back to the system.
func freeArena(mem arenaMem) {
	if mem.mapped {
		unmapArena(mem.buf)
	}
}
