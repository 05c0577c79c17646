package lsm

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/mailbricks/mailbricks/lsm/internal/cache"
	"github.com/mailbricks/mailbricks/lsm/internal/sstable"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// tableCache keeps up to capacity table readers open, least recently used
// first out. A reader in use by an iterator is closed only when the iterator
// lets it go, even if the cache evicted it meanwhile.
type tableCache struct {
	fs       vfs.FS
	dir      string
	blocks   *cache.Cache
	capacity int

	mu      sync.Mutex
	entries map[uint64]*tableEntry
	lru     list.List // of *tableEntry, most recent at front
}

type tableEntry struct {
	fileNum uint64
	reader  *sstable.Reader
	err     error
	ready   chan struct{}
	refs    int // the cache's own reference counts as one while cached
	elem    *list.Element
}

func newTableCache(fs vfs.FS, dir string, blocks *cache.Cache, capacity int) *tableCache {
	return &tableCache{fs: fs, dir: dir, blocks: blocks, capacity: capacity, entries: map[uint64]*tableEntry{}}
}

// get returns the reader of a table with a reference the caller must drop
// with put.
func (c *tableCache) get(fileNum uint64) (*tableEntry, error) {
	c.mu.Lock()
	e, ok := c.entries[fileNum]
	if ok {
		e.refs++
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		<-e.ready
		if e.err != nil {
			c.put(e)
			return nil, e.err
		}
		return e, nil
	}
	e = &tableEntry{fileNum: fileNum, ready: make(chan struct{}), refs: 2}
	e.elem = c.lru.PushFront(e)
	c.entries[fileNum] = e
	var evicted []*tableEntry
	for c.lru.Len() > c.capacity {
		old := c.lru.Back().Value.(*tableEntry)
		c.removeLocked(old)
		evicted = append(evicted, old)
	}
	c.mu.Unlock()
	for _, old := range evicted {
		c.put(old)
	}

	e.reader, e.err = c.open(fileNum)
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[fileNum] == e {
			c.removeLocked(e)
			e.refs--
		}
		c.mu.Unlock()
		c.put(e)
		return nil, e.err
	}
	return e, nil
}

func (c *tableCache) open(fileNum uint64) (*sstable.Reader, error) {
	name := c.fs.PathJoin(c.dir, tableFileName(fileNum))
	f, err := c.fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("lsm: open table %06d: %w", fileNum, err)
	}
	r, err := sstable.Open(f, sstable.ReaderOptions{Cache: c.blocks, FileNum: fileNum})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lsm: open table %06d: %w", fileNum, err)
	}
	return r, nil
}

func (c *tableCache) removeLocked(e *tableEntry) {
	c.lru.Remove(e.elem)
	delete(c.entries, e.fileNum)
}

// put drops a reference taken by get.
func (c *tableCache) put(e *tableEntry) {
	c.mu.Lock()
	e.refs--
	last := e.refs == 0
	c.mu.Unlock()
	if last {
		<-e.ready
		if e.reader != nil {
			e.reader.Close()
		}
	}
}

// evict drops a deleted table from the cache and its blocks from the block
// cache.
func (c *tableCache) evict(fileNum uint64) {
	c.mu.Lock()
	e, ok := c.entries[fileNum]
	if ok {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	if ok {
		c.put(e)
	}
	c.blocks.EvictFile(fileNum)
}

// close drops every cached reader.
func (c *tableCache) close() {
	c.mu.Lock()
	var all []*tableEntry
	for _, e := range c.entries {
		all = append(all, e)
	}
	c.entries = map[uint64]*tableEntry{}
	c.lru.Init()
	c.mu.Unlock()
	for _, e := range all {
		c.put(e)
	}
}
