package reputation

import "sync"

// pairKeys are the backend keys of one (IP, provider) pair, built once:
// the sending path would otherwise concatenate them on every call.
type pairKeys struct {
	state, count, bucket, byteBucket string
}

// keyCache maps (provider, IP) to its keys. Providers include every
// domain no provider claims, so the cache is bounded: a shard that fills
// is emptied.
type keyCache struct {
	// static holds the keys of every pool IP at every named provider,
	// built by New and read without locks afterwards.
	static map[string]map[string]*pairKeys
	shards [16]keyShard
}

func newPairKeys(ip, prov string) *pairKeys {
	k := &pairKeys{
		state:  "s/" + ip + "/" + prov,
		count:  "c/" + ip + "/" + prov,
		bucket: "t/" + ip + "/" + prov,
	}
	k.byteBucket = "b" + k.bucket
	return k
}

func (c *keyCache) init(ips []IP, providers []Provider) {
	c.static = map[string]map[string]*pairKeys{}
	for _, p := range providers {
		m := map[string]*pairKeys{}
		for _, ip := range ips {
			m[ip.Addr] = newPairKeys(ip.Addr, p.Name)
		}
		c.static[p.Name] = m
	}
}

type keyShard struct {
	mu sync.RWMutex
	m  map[string]map[string]*pairKeys // provider → IP → keys
	n  int
	_  [24]byte // one shard per 64-byte cache line: no false sharing
}

const keyShardMax = 1 << 14

func strHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (c *keyCache) get(ip, prov string) *pairKeys {
	if k := c.static[prov][ip]; k != nil {
		return k
	}
	s := &c.shards[strHash(prov)%uint32(len(c.shards))]
	s.mu.RLock()
	k := s.m[prov][ip]
	s.mu.RUnlock()
	if k != nil {
		return k
	}
	k = newPairKeys(ip, prov)
	s.mu.Lock()
	if s.m == nil || s.n >= keyShardMax {
		s.m, s.n = map[string]map[string]*pairKeys{}, 0
	}
	byIP := s.m[prov]
	if byIP == nil {
		byIP = map[string]*pairKeys{}
		s.m[prov] = byIP
	}
	if old := byIP[ip]; old != nil {
		k = old
	} else {
		byIP[ip] = k
		s.n++
	}
	s.mu.Unlock()
	return k
}
