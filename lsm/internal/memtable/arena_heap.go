//go:build !unix || race

package memtable

// offHeapArenas reports whether mapArena allocates outside the Go heap. In
// race-enabled builds arenas stay on the Go heap so that the race detector
// sees every access to them.
const offHeapArenas = false

func mapArena(size int) ([]byte, bool) { return nil, false }

func unmapArena(b []byte) {}
