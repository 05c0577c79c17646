package lsmreputation

import "time"

// GC runs the minute's garbage collection as of now.
func GC(b *Backend, now time.Time) error { return b.gc(now) }

// Buckets returns the number of token buckets in memory.
func Buckets(b *Backend) int {
	n := 0
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
