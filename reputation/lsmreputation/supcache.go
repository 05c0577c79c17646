package lsmreputation

import (
	"container/list"

	"github.com/mailbricks/mailbricks/reputation"
)

// supCache is one shard's cache of suppression lookups: an address's
// entry, or the fact that it has none, least recently used first out
// once the cached bytes pass the shard's share of the budget. It is
// guarded by the shard's mu.
type supCache struct {
	budget, bytes int64
	m             map[string]*list.Element
	lru           list.List // of *supEntry, most recent first
}

type supEntry struct {
	addr  string
	sp    reputation.Suppression
	found bool
	size  int64
}

func (c *supCache) init(budget int64) {
	c.budget = max(budget, 1)
	c.m = map[string]*list.Element{}
}

// get returns the cached answer for addr, cached false if there is none.
func (c *supCache) get(addr string) (sp reputation.Suppression, found, cached bool) {
	e := c.m[addr]
	if e == nil {
		return sp, false, false
	}
	c.lru.MoveToFront(e)
	en := e.Value.(*supEntry)
	return en.sp, en.found, true
}

// put caches the answer for addr and evicts past the budget.
func (c *supCache) put(addr string, sp reputation.Suppression, found bool) {
	// An entry costs its strings, the map slot and list element, and the
	// Suppression's fixed fields.
	size := int64(2*len(addr)+len(sp.Detail)) + 200
	if e := c.m[addr]; e != nil {
		en := e.Value.(*supEntry)
		c.bytes += size - en.size
		en.sp, en.found, en.size = sp, found, size
		c.lru.MoveToFront(e)
	} else {
		c.m[addr] = c.lru.PushFront(&supEntry{addr: addr, sp: sp, found: found, size: size})
		c.bytes += size
	}
	for c.bytes > c.budget && c.lru.Len() > 0 {
		e := c.lru.Back()
		en := e.Value.(*supEntry)
		c.lru.Remove(e)
		delete(c.m, en.addr)
		c.bytes -= en.size
	}
}
