// Package cache implements the lsm engine's block cache: a sharded LRU cache
// of uncompressed table blocks keyed by table file number and block offset.
// Besides data blocks it holds table metadata (a table's parsed index and
// its bloom filter, see [Cache.SetValue]), charged against the same
// capacity, so that the cache bounds the memory of every table's blocks and
// metadata together.
//
// # Design
//
// The cache is split into 16 shards, each with its own mutex, map and
// intrusive doubly linked LRU list, so that concurrent readers rarely
// contend and a lookup allocates nothing. A key picks its shard by a
// multiplicative hash of the file number and offset. Each shard gets an
// equal part of the capacity and evicts its least recently used blocks when
// the blocks' charges (their length plus a fixed per-entry overhead) exceed
// it. Evicted entries are recycled for the next insertion.
//
// Recency is tracked with lazy promotion (the "second chance" of CLOCK): a
// hit only marks its entry as referenced, and eviction moves a marked entry
// from the tail back to the head, clearing the mark, instead of evicting it.
// This keeps LRU's eviction order for blocks hit once between evictions
// while sparing every hit from relinking its neighbours, which are random
// cache lines when the cache is large; that relinking is most of the cost
// of a hit in a strict LRU.
//
// Blocks are plain byte slices, and values are immutable: an evicted block
// or value stays valid for readers that still hold it (the garbage
// collector frees it), so there is no reference counting. A reader that
// holds one pins its memory, uncharged, until it lets go.
package cache

import (
	"sync"
	"sync/atomic"
)

// numShards is the number of shards; a power of two.
const numShards = 16

// EntryOverhead is the number of bytes charged for each cached block on top
// of its length, an estimate of the entry's bookkeeping (entry struct and
// map slot).
const EntryOverhead = 96

type key struct {
	file, off uint64
}

type entry struct {
	key   key
	block []byte
	// value is set instead of block by SetValue, with used.
	value      any
	used       *atomic.Bool
	charge     int64
	prev, next *entry
	// referenced marks an entry hit since it was last at the head.
	referenced bool
}

type shard struct {
	mu       sync.Mutex
	capacity int64
	size     int64
	hits     int64
	misses   int64
	m        map[key]*entry
	// lru is the sentinel of a circular list: lru.next is the most recently
	// used entry and lru.prev the least recently used one.
	lru entry
	// Pad shards apart so that their mutexes do not share a cache line.
	_ [64]byte
}

// Cache is a block cache. A nil *Cache is valid: it caches nothing, every
// Get and GetValue misses and Set, SetValue, EvictFile and Metrics do
// nothing.
//
// A Cache is safe for concurrent use.
type Cache struct {
	shards [numShards]shard
}

// New returns a cache that holds up to capacity bytes of blocks, split
// evenly across its shards. A capacity of zero or less makes a cache that
// holds nothing; use a nil *Cache to skip even the bookkeeping.
func New(capacity int64) *Cache {
	c := &Cache{}
	per := max(capacity, 0) / numShards
	for i := range c.shards {
		s := &c.shards[i]
		s.capacity = per
		s.m = make(map[key]*entry)
		s.lru.next = &s.lru
		s.lru.prev = &s.lru
	}
	return c
}

func (c *Cache) shard(k key) *shard {
	h := k.file*0x9e3779b97f4a7c15 ^ k.off*0xc2b2ae3d27d4eb4f
	return &c.shards[(h^h>>32)*0x94d049bb133111eb>>60]
}

// Get returns the block cached for the given file number and offset. The
// returned slice is shared and must not be modified; it stays valid after
// the block is evicted. A value cached with SetValue is not a block: Get
// misses it.
func (c *Cache) Get(fileNum, offset uint64) ([]byte, bool) {
	e, s := c.lookup(fileNum, offset)
	if e == nil {
		return nil, false
	}
	b, ok := e.block, e.value == nil
	s.mu.Unlock()
	return b, ok
}

// GetValue returns the value cached with SetValue for the given file number
// and offset. Like a block, the value is shared and stays valid after it is
// evicted.
func (c *Cache) GetValue(fileNum, offset uint64) (any, bool) {
	e, s := c.lookup(fileNum, offset)
	if e == nil {
		return nil, false
	}
	v := e.value
	s.mu.Unlock()
	return v, v != nil
}

// lookup finds the entry for the key, counting a hit or a miss, and
// returns it with its shard locked; or nil, with the shard unlocked.
func (c *Cache) lookup(fileNum, offset uint64) (*entry, *shard) {
	if c == nil {
		return nil, nil
	}
	k := key{fileNum, offset}
	s := c.shard(k)
	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		s.misses++
		s.mu.Unlock()
		return nil, nil
	}
	s.hits++
	if !e.referenced {
		e.referenced = true
	}
	return e, s
}

// Set caches block for the given file number and offset, replacing any
// block or value cached there, and evicts least recently used entries
// beyond the capacity. The cache keeps block: the caller must not modify it
// afterwards. A block larger than a shard's capacity (a sixteenth of the
// cache's) is not cached.
func (c *Cache) Set(fileNum, offset uint64, block []byte) {
	if c == nil {
		return
	}
	c.insert(entry{key: key{fileNum, offset}, block: block, charge: int64(len(block)) + EntryOverhead})
}

// SetValue caches v, a decoded form of the block at the given file number
// and offset that takes size bytes of memory, replacing any block or value
// cached there; it is charged size plus EntryOverhead and evicted like a
// block. v must not be nil, and must not be modified once cached. A value
// larger than a shard's capacity is not cached.
//
// A holder that reaches v without GetValue (through a weak pointer, say)
// should pass used, and set it on each use: eviction counts a set used as a
// hit, and clears it, as it does the mark a GetValue hit leaves. used may
// be nil.
func (c *Cache) SetValue(fileNum, offset uint64, v any, size int64, used *atomic.Bool) {
	if c == nil {
		return
	}
	c.insert(entry{key: key{fileNum, offset}, value: v, used: used, charge: size + EntryOverhead})
}

func (c *Cache) insert(ne entry) {
	s := c.shard(ne.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[ne.key]; e != nil {
		s.remove(e)
	}
	if ne.charge > s.capacity {
		return
	}
	var e *entry
	for s.size+ne.charge > s.capacity {
		tail := s.lru.prev
		if tail.used != nil && tail.used.Load() {
			tail.used.Store(false)
			tail.referenced = true
		}
		if tail.referenced {
			// Second chance: each entry is moved at most once per pass
			// over the list, so the loop ends.
			tail.referenced = false
			s.moveToFront(tail)
			continue
		}
		s.remove(tail)
		e = tail
	}
	if e == nil {
		e = &entry{}
	}
	*e = ne
	s.m[ne.key] = e
	s.size += ne.charge
	s.pushFront(e)
}

// EvictFile drops every block of the given file. It takes time linear in
// the number of cached blocks.
func (c *Cache) EvictFile(fileNum uint64) {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for e := s.lru.next; e != &s.lru; {
			next := e.next
			if e.key.file == fileNum {
				s.remove(e)
			}
			e = next
		}
		s.mu.Unlock()
	}
}

// Metrics returns the number of hits and misses of Get so far and the
// bytes currently charged.
func (c *Cache) Metrics() (hits, misses, size int64) {
	if c == nil {
		return 0, 0, 0
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		hits += s.hits
		misses += s.misses
		size += s.size
		s.mu.Unlock()
	}
	return hits, misses, size
}

func (s *shard) pushFront(e *entry) {
	e.prev = &s.lru
	e.next = s.lru.next
	e.next.prev = e
	s.lru.next = e
}

func (s *shard) moveToFront(e *entry) {
	if s.lru.next == e {
		return
	}
	e.prev.next = e.next
	e.next.prev = e.prev
	s.pushFront(e)
}

// remove unlinks e and forgets it. It clears e's block so that a recycled
// or abandoned entry does not keep the block alive.
func (s *shard) remove(e *entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
	e.block, e.value, e.used = nil, nil, nil
	delete(s.m, e.key)
	s.size -= e.charge
}
