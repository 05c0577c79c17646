//go:build unix && !race

package memtable

import "syscall"

// offHeapArenas reports whether mapArena allocates outside the Go heap.
const offHeapArenas = true

// mapArena maps size bytes of zeroed anonymous memory, page-aligned. It
// reports false if the mapping fails, and the caller falls back to the Go
// heap.
func mapArena(size int) ([]byte, bool) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, false
	}
	adviseHugePages(b)
	return b, true
}

// unmapArena unmaps an arena from mapArena. Nothing may reference it.
func unmapArena(b []byte) {
	// Munmap fails only for a slice Mmap did not return.
	if err := syscall.Munmap(b); err != nil {
		panic("memtable: munmap arena: " + err.Error())
	}
}
