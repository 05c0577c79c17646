// Package memtable implements the lsm engine's memtable: an arena-backed
// skiplist of internal keys that one writer fills while any number of readers
// iterate it without locks.
//
// # Arena layout
//
// A memtable owns one fixed-size byte arena, allocated once by [New] and
// 8-byte aligned. Everything the skiplist stores lives in it: nodes, user keys
// and values. Nothing in the arena is a Go pointer, so the garbage collector
// never scans it. Offsets into the arena are uint32s, which bounds the arena
// at 4 GiB - 1.
//
// On Unix an arena of 1 MiB or more is mapped outside the Go heap, and once
// the memtable is unreachable it is recycled for a later memtable of the
// same size; see "Arena memory" in arena.go.
//
// Nodes, each with its user key, are bump-allocated upward from offset 0, at
// 4-byte aligned offsets; values are bump-allocated downward from the end of
// the arena, unaligned. The arena is full when the two meet:
//
//	0                 nodeTop        valueTop              len
//	| head | node | node | ... free ... | value | value | value |
//
// Keeping values out of the node region packs the nodes, which are all a
// search reads, into about a third of the memory, so more of them stay in
// the CPU caches: on a 64 MiB memtable of 16-byte keys and 100-byte values,
// searches visit about 20 MiB instead of 64 MiB.
//
// A node is referenced by the offset of its fixed header; its tower of next
// links precedes the header, so that the level-0 link, the header and the
// user key, which a search step and an iteration step read, are contiguous:
//
//	offset        size  field
//	-4*h          4     next[h-1]  successor at level h-1 (atomic)
//	...
//	-4            4     next[0]    successor at level 0; 0 = none (atomic)
//	+0            4     prev       predecessor at level 0 (atomic)
//	+4            4     keyLen     length of the user key
//	+8            kl    user key
//	+8+kl         8     trailer    seqnum<<8 | kind, little-endian
//	+16+kl        4     valueOff   arena offset of the value, little-endian
//	+20+kl        4     valueLen   length of the value, little-endian
//	+24+kl        0-3   padding to the next 4-byte boundary
//
// prev and keyLen are in host byte order (they never leave the process) and
// 4-byte aligned, as sync/atomic requires of prev. The height h is not
// stored; nothing needs it once the node is linked.
//
// The head node comes first: a tower of [MaxHeight] links at offsets 0-79,
// then a header with an empty key at offset 80. Since every node offset is at
// least 80, a next link of 0 means "none"; the first node's prev link points
// at the head. Only level 0 keeps prev links: Prev is one atomic load, and
// the single writer never needs predecessors at higher levels.
//
// Heights are drawn with p = 1/4 up to [MaxHeight] = 20, which keeps search
// O(log n) far beyond what a 4 GiB arena can hold, at an average tower of
// 4/3 links: 29.3 bytes of node overhead per entry on average, plus up to 3
// bytes of padding, and 104 bytes at most (see [EntrySize]).
//
// # Concurrency: one writer, lock-free readers
//
// Add and AddRangeTombstone must be serialized by the caller (the engine
// calls them under its commit mutex). Every other method may run concurrently
// with them and with each other.
//
// The writer never modifies a published node except its links. Add first
// allocates the new node and its value and fills in every field with plain
// stores: key and value bytes, lengths, trailer, its prev link and its next
// link at every level. None of this is reachable yet. It then publishes the
// node bottom-up with atomic stores: pred[0].next[0] = node, then
// succ[0].prev = node, then pred[i].next[i] = node for i = 1..h-1, and
// finally raises the list height.
//
// Readers load links only with atomic loads. Under the Go memory model an
// atomic load that observes the store publishing a node happens after that
// store, hence after every plain write the writer made to the node before it;
// so a reader that reaches a node through any link sees it complete, and its
// key and value bytes never change again. Publishing level 0 first keeps the
// level-0 list the source of truth: a node reachable at level i > 0 is already
// in the level-0 list, so a search that descends through it stays correct, and
// a reader that runs while a node is half-linked either sees the node or does
// not, but always walks a sorted list. An Add that has returned is fully
// linked, so an iteration that starts after it sees the entry.
//
// The prev link of the successor is stored after the level-0 next link, so a
// reader moving backward may, during an Add, step over the entry being
// inserted; it never visits a node that is not in the level-0 list.
//
// # Finger search
//
// The engine applies a batch in key order, and its writers (the full-text
// index, mailbox appends) write their batches sorted, so most Adds land a
// little after the previous one. Add keeps the splice of the previous Add:
// at each level, the last node before its key (the node it inserted, at the
// levels of its tower) and that node's successor. Because there is one
// writer, nothing is linked between them until the next Add, so the splice
// stays exact. A key past the previous one starts at level 0 and climbs
// while the successor at a level is still before the key; the first level
// whose successor is past it brackets the key, as do all levels above (their
// predecessors are no later and their successors no earlier), and the
// search descends from there only. A key k nodes past the previous one costs
// O(log k) comparisons instead of O(log n), and a key that falls right
// after the previous one, even when the memtable holds its older versions
// (the posting lists that every batch of an index appends to), costs one or
// two: the bare "does it fall in the level-0 splice" test it replaces
// failed on those, since the successor of a new version is the key's own
// older version. A key before the previous one searches from the head.
package memtable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// MaxHeight is the maximum height of a skiplist tower.
const MaxHeight = 20

// Node layout; see the package comment. Field offsets are relative to the
// node's header; those after the key are also relative to its length.
const (
	offPrev     = 0
	offKeyLen   = 4
	offKey      = 8
	offTrailer  = 8  // + keyLen
	offValueOff = 16 // + keyLen
	offValueLen = 20 // + keyLen
	headerSize  = 24 // + keyLen

	nodeAlign = 4

	// nilNode is the value of a next link that points nowhere.
	nilNode = 0
	// headNode is the head's header offset.
	headNode = MaxHeight * 4
	headSize = headNode + headerSize

	maxArenaSize = math.MaxUint32
)

// ErrFull is returned by [Memtable.Add] when the arena has no room for the
// entry. The memtable is unchanged and remains usable.
var ErrFull = errors.New("memtable: arena full")

// ErrDuplicate is returned by [Memtable.Add] when the memtable already holds
// the same internal key (user key, sequence number and kind). Adding it is a
// caller bug; the memtable is unchanged.
var ErrDuplicate = errors.New("memtable: duplicate internal key")

// Memtable is an arena-backed skiplist of internal keys in
// [base.CompareInternal] order, plus a list of range tombstones.
//
// Add and AddRangeTombstone must not be called concurrently with each other
// (one writer at a time). All other methods, including iteration, are safe
// for concurrent use with each other and with the writer.
type Memtable struct {
	// What every reader reads. height is the height of the tallest tower
	// published so far.
	arena      arena
	height     atomic.Uint32
	tombstones atomic.Pointer[[]base.RangeTombstone]

	// Keep the writer's stores below off the readers' cache line.
	_ [64]byte

	// used is the number of arena bytes allocated: nodeTop plus the value
	// region. Only the writer stores it, and count.
	used  atomic.Uint32
	count atomic.Int64

	// Writer-only state: the end of the node region, the start of the value
	// region, the splitmix64 state that draws tower heights, and the splice
	// of the last Add (see Add).
	nodeTop, valueTop uint32
	rng               uint64
	splPrev, splNext  [MaxHeight]uint32
}

// New returns an empty memtable whose arena holds arenaSize bytes. About 100
// bytes of it go to the skiplist head. New panics if arenaSize is smaller than
// that or larger than 4 GiB - 1.
//
// The arena is released when the memtable becomes unreachable, and may then
// be reused by a later New: keys and values that alias it must not be used
// after that (see [Memtable.NewIter]).
func New(arenaSize int) *Memtable {
	if arenaSize < headSize || uint64(arenaSize) > maxArenaSize {
		panic("memtable: arena size out of range")
	}
	mem := newArena(arenaSize)
	m := &Memtable{
		arena:    mem.buf,
		nodeTop:  headSize,
		valueTop: uint32(arenaSize),
		rng:      rand.Uint64(),
	}
	if recycled(arenaSize) {
		runtime.AddCleanup(m, releaseArena, mem)
	}
	// A recycled arena holds an old memtable: clear the head, the only
	// part of it that Add does not write before it is read. The zeroed head
	// has no links, an empty key and an empty value.
	clear(m.arena[:headSize])
	for i := range MaxHeight {
		m.splPrev[i] = headNode
	}
	m.used.Store(headSize)
	m.height.Store(1)
	return m
}

// EntrySize returns an upper bound of the arena bytes that one
// [Memtable.Add] of a key with a user key of keyLen bytes (the trailer is
// accounted for) and a value of valueLen bytes consumes. If the sum of
// EntrySize over a batch is at most [Memtable.Available], every Add of the
// batch succeeds. The bound assumes the tallest tower; an average Add uses
// about 75 bytes less.
func EntrySize(keyLen, valueLen int) int {
	return nodeSize(MaxHeight, keyLen) + valueLen
}

// nodeSize returns the arena bytes of a node, aligned.
func nodeSize(height, keyLen int) int {
	return (height*4 + headerSize + keyLen + nodeAlign - 1) &^ (nodeAlign - 1)
}

// Size returns the number of arena bytes in use, including the skiplist head
// and alignment padding.
func (m *Memtable) Size() int { return int(m.used.Load()) }

// Available returns the number of arena bytes still free.
func (m *Memtable) Available() int { return len(m.arena) - int(m.used.Load()) }

// Count returns the number of entries added with [Memtable.Add].
func (m *Memtable) Count() int { return int(m.count.Load()) }

// Empty reports whether the memtable holds no entries and no range
// tombstones.
func (m *Memtable) Empty() bool {
	if m.count.Load() != 0 {
		return false
	}
	p := m.tombstones.Load()
	return p == nil || len(*p) == 0
}

// arena is the memtable's memory, with accessors for the node layout. Hot
// loops copy the slice header into a local so that it stays in registers
// across atomic loads. Offsets come from the skiplist itself, so they are in
// bounds and aligned; the index expressions still bounds-check them.
type arena []byte

func (a arena) u32(off uint32) *uint32 {
	return (*uint32)(unsafe.Pointer(&a[off]))
}

func (a arena) next(nd uint32, level int) uint32 {
	return atomic.LoadUint32(a.u32(nd - 4 - uint32(level)*4))
}

func (a arena) prev(nd uint32) uint32 {
	return atomic.LoadUint32(a.u32(nd + offPrev))
}

// userKey returns the node's user key, capped so that appending to it cannot
// overwrite the arena.
func (a arena) userKey(nd uint32) []byte {
	end := nd + offKey + *a.u32(nd + offKeyLen)
	return a[nd+offKey : end : end]
}

func (a arena) trailer(nd uint32) uint64 {
	return binary.LittleEndian.Uint64(a[nd+offTrailer+*a.u32(nd + offKeyLen):])
}

func (a arena) key(nd uint32) base.InternalKey {
	end := nd + offKey + *a.u32(nd + offKeyLen)
	return base.InternalKey{
		UserKey: a[nd+offKey : end : end],
		Trailer: binary.LittleEndian.Uint64(a[end:]),
	}
}

func (a arena) value(nd uint32) []byte {
	meta := a[nd+offValueOff+*a.u32(nd + offKeyLen):]
	off := binary.LittleEndian.Uint32(meta)
	end := off + binary.LittleEndian.Uint32(meta[4:])
	return a[off:end:end]
}

// compare compares the node's internal key with key. It returns 0 only for
// an identical internal key.
func (a arena) compare(nd uint32, key base.InternalKey) int {
	if c := bytes.Compare(a.userKey(nd), key.UserKey); c != 0 {
		return c
	}
	switch t := a.trailer(nd); {
	case t > key.Trailer:
		return -1
	case t < key.Trailer:
		return 1
	}
	return 0
}

// randomHeight draws a tower height with P(h > k) = 4^-k, capped at
// MaxHeight, and returns the advanced generator state.
func randomHeight(state uint64) (int, uint64) {
	// splitmix64.
	state += 0x9e3779b97f4a7c15
	z := state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	h := 1 + bits.TrailingZeros64(z)/2
	return min(h, MaxHeight), state
}

// Add inserts key with value. Add copies both; the caller may reuse them
// after Add returns.
//
// If the arena has no room, Add returns [ErrFull]; if the memtable already
// holds key, it returns [ErrDuplicate]. In both cases the memtable is
// unchanged. Keys of every kind, including [base.KindRangeDelete], are
// stored as ordinary entries.
//
// Add must not be called concurrently with Add or AddRangeTombstone; it may
// run concurrently with readers.
func (m *Memtable) Add(key base.InternalKey, value []byte) error {
	a := m.arena
	h, rng := randomHeight(m.rng)
	// 64-bit arithmetic: a huge key or value must not wrap around.
	size := uint64(h)*4 + headerSize + uint64(len(key.UserKey))
	size = (size + nodeAlign - 1) &^ (nodeAlign - 1)
	if size+uint64(len(value)) > uint64(m.valueTop-m.nodeTop) {
		return ErrFull
	}

	// Find the splice for key: at each level, the last node before key and
	// its successor. See "Finger search" in the package comment.
	listHeight := int(m.height.Load())
	preds, succs := m.splPrev, m.splNext
	// Descend from level top-1, from pred, which is before key.
	pred, top := uint32(headNode), listHeight
	if p := preds[0]; p == headNode || a.compare(p, key) < 0 {
		// key is past the previous Add's key: climb to the lowest level
		// whose splice still brackets it. A tower taller than one level
		// is the successor at several levels: compare it once.
		pred = preds[listHeight-1]
		last := uint32(headNode) // never a successor
		for level := range listHeight {
			n := succs[level]
			if n == last {
				continue
			}
			if n == nilNode {
				top, pred = level, preds[level]
				break
			}
			c := a.compare(n, key)
			if c == 0 {
				return ErrDuplicate
			}
			if c > 0 {
				top, pred = level, preds[level]
				break
			}
			last = n
		}
	} else if p != headNode && a.compare(p, key) == 0 {
		return ErrDuplicate
	}
	stop := uint32(nilNode)
	if top < listHeight {
		stop = succs[top]
	}
	// Descend from level top-1, below the bracketing splice (or the head).
	// stop is the successor found at the level above: reaching it again one
	// level down needs no comparison.
	for level := top - 1; level >= 0; level-- {
		succ := a.next(pred, level)
		for succ != nilNode && succ != stop {
			c := a.compare(succ, key)
			if c > 0 {
				break
			}
			if c == 0 {
				return ErrDuplicate
			}
			pred = succ
			succ = a.next(pred, level)
		}
		preds[level], succs[level], stop = pred, succ, succ
	}

	// Build the node and the value. They are unreachable until linked
	// below, so plain stores suffice; the atomic stores that link the node
	// publish them.
	nd := m.nodeTop + uint32(h)*4
	vo := m.valueTop - uint32(len(value))
	kl := uint32(len(key.UserKey))
	for i := range h {
		*a.u32(nd - 4 - uint32(i)*4) = succs[i]
	}
	*a.u32(nd + offPrev) = preds[0]
	*a.u32(nd + offKeyLen) = kl
	copy(a[nd+offKey:], key.UserKey)
	binary.LittleEndian.PutUint64(a[nd+offTrailer+kl:], key.Trailer)
	binary.LittleEndian.PutUint32(a[nd+offValueOff+kl:], vo)
	binary.LittleEndian.PutUint32(a[nd+offValueLen+kl:], uint32(len(value)))
	copy(a[vo:], value)

	// Publish bottom-up. Level 0 first makes the entry visible to
	// iteration; the successor's prev link follows so that Prev finds it.
	atomic.StoreUint32(a.u32(preds[0]-4), nd)
	if succs[0] != nilNode {
		atomic.StoreUint32(a.u32(succs[0]+offPrev), nd)
	}
	for i := 1; i < h; i++ {
		atomic.StoreUint32(a.u32(preds[i]-4-uint32(i)*4), nd)
	}
	if h > listHeight {
		m.height.Store(uint32(h))
	}
	for i := range h {
		preds[i] = nd
	}
	m.splPrev, m.splNext = preds, succs
	m.rng = rng
	m.nodeTop += uint32(size)
	m.valueTop = vo
	m.used.Store(m.nodeTop + (uint32(len(a)) - vo))
	m.count.Add(1)
	return nil
}

// AddRangeTombstone records t in the memtable's range tombstone list. It
// copies t's keys; the caller may reuse them after AddRangeTombstone returns.
// The tombstone does not consume arena space.
//
// AddRangeTombstone must not be called concurrently with Add or
// AddRangeTombstone; it may run concurrently with readers.
func (m *Memtable) AddRangeTombstone(t base.RangeTombstone) {
	buf := make([]byte, len(t.Start)+len(t.End))
	n := copy(buf, t.Start)
	copy(buf[n:], t.End)
	t.Start, t.End = buf[:n:n], buf[n:]

	var old []base.RangeTombstone
	if p := m.tombstones.Load(); p != nil {
		old = *p
	}
	// Sorted by Start, then newest first, like internal keys.
	i, _ := slices.BinarySearchFunc(old, t, func(e, t base.RangeTombstone) int {
		if c := bytes.Compare(e.Start, t.Start); c != 0 {
			return c
		}
		switch {
		case e.Seq > t.Seq:
			return -1
		case e.Seq < t.Seq:
			return 1
		}
		return 0
	})
	list := make([]base.RangeTombstone, 0, len(old)+1)
	list = append(list, old[:i]...)
	list = append(list, t)
	list = append(list, old[i:]...)
	m.tombstones.Store(&list)
}

// RangeTombstones returns the range tombstones added so far, sorted by Start
// and then by Seq descending. The slice and the keys it references are shared
// and must not be modified; later calls to AddRangeTombstone do not change it.
// It is safe to call concurrently with the writer.
func (m *Memtable) RangeTombstones() []base.RangeTombstone {
	if p := m.tombstones.Load(); p != nil {
		return *p
	}
	return nil
}

// seekLT returns the last node whose user key is < key (headNode if there is
// none) and its level-0 successor (nilNode if none).
func (m *Memtable) seekLT(key []byte) (pred, succ uint32) {
	a := m.arena
	pred, stop := uint32(headNode), uint32(nilNode)
	for level := int(m.height.Load()) - 1; level >= 0; level-- {
		succ = a.next(pred, level)
		for succ != nilNode && succ != stop && bytes.Compare(a.userKey(succ), key) < 0 {
			pred = succ
			succ = a.next(pred, level)
		}
		stop = succ
	}
	return pred, succ
}

// last returns the last node, or headNode if the memtable is empty.
func (m *Memtable) last() uint32 {
	a := m.arena
	nd := uint32(headNode)
	for level := int(m.height.Load()) - 1; level >= 0; level-- {
		for n := a.next(nd, level); n != nilNode; n = a.next(nd, level) {
			nd = n
		}
	}
	return nd
}

// Iterator positions besides nodes. The head doubles as the position before
// the first entry.
const (
	beforeFirst = headNode
	afterLast   = math.MaxUint32
)

// NewIter returns an iterator over the memtable's entries in internal-key
// order. Keys and values it returns alias the arena: they stay valid, and
// never change, for as long as the memtable is alive, beyond the next
// positioning call that [base.InternalIterator] promises. The caller must
// keep the memtable, or an iterator over it, referenced while it uses them,
// and must not modify them: once both are unreachable, the arena goes to
// another memtable or back to the operating system.
//
// The iterator may be used concurrently with the writer, and always walks a
// consistent sorted list: a positioning call finds every entry whose Add
// returned before the call began, and may or may not find an entry being
// added concurrently. The iterator itself is not safe for concurrent use.
//
// Next on an iterator positioned after the last entry, and Prev before the
// first, return false; Next before the first entry (including on a new
// iterator) moves to the first entry, and Prev after the last moves to the
// last, as in pebble.
func (m *Memtable) NewIter() base.InternalIterator {
	return &iter{m: m, nd: beforeFirst}
}

// iter implements base.InternalIterator. nd is the current node, or
// beforeFirst or afterLast. Holding m, not just its arena, keeps the
// memtable reachable and so its arena from being recycled while the
// iterator is in use.
type iter struct {
	m  *Memtable
	nd uint32
}

// set positions the iterator at nd, or at ifNone if nd is the head or nil.
func (it *iter) set(nd, ifNone uint32) bool {
	if nd == nilNode || nd == headNode {
		it.nd = ifNone
		return false
	}
	it.nd = nd
	return true
}

func (it *iter) SeekGE(key []byte) bool {
	_, succ := it.m.seekLT(key)
	return it.set(succ, afterLast)
}

func (it *iter) SeekLT(key []byte) bool {
	pred, _ := it.m.seekLT(key)
	return it.set(pred, beforeFirst)
}

func (it *iter) First() bool { return it.set(it.m.arena.next(headNode, 0), afterLast) }

func (it *iter) Last() bool { return it.set(it.m.last(), beforeFirst) }

func (it *iter) Next() bool {
	if it.nd == afterLast {
		return false
	}
	// From beforeFirst, the head, this is First.
	return it.set(it.m.arena.next(it.nd, 0), afterLast)
}

func (it *iter) Prev() bool {
	switch it.nd {
	case beforeFirst:
		return false
	case afterLast:
		return it.Last()
	}
	return it.set(it.m.arena.prev(it.nd), beforeFirst)
}

func (it *iter) valid() bool { return it.nd != beforeFirst && it.nd != afterLast }

func (it *iter) Key() base.InternalKey {
	if !it.valid() {
		return base.InternalKey{}
	}
	return it.m.arena.key(it.nd)
}

func (it *iter) Value() []byte {
	if !it.valid() {
		return nil
	}
	return it.m.arena.value(it.nd)
}

func (it *iter) Error() error { return nil }

func (it *iter) Close() error {
	it.nd = afterLast
	return nil
}
