package record

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

var _ vfs.File = (*memFile)(nil)

// memFile is an in-memory vfs.File that records what a Writer does to it:
// how many Writes and Syncs, and how much data each Sync made durable. It
// fails the test run (via misuse) if two of its methods overlap, since a
// vfs.File is not safe for concurrent use.
type memFile struct {
	syncDelay time.Duration // how long each Sync takes
	writeErr  func(n int) error
	syncErr   func(n int) error
	gate      chan struct{} // if non-nil, each Write first receives from it

	busy   atomic.Bool
	misuse atomic.Bool

	mu      sync.Mutex
	data    []byte
	durable int // len(data) when the last successful Sync started
	writes  int
	syncs   int
	closed  bool
}

func (f *memFile) enter() {
	if !f.busy.CompareAndSwap(false, true) {
		f.misuse.Store(true)
	}
}

func (f *memFile) leave() { f.busy.Store(false) }

func (f *memFile) Write(p []byte) (int, error) {
	if f.gate != nil {
		<-f.gate
	}
	f.enter()
	defer f.leave()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	f.writes++
	if f.writeErr != nil {
		if err := f.writeErr(f.writes); err != nil {
			return 0, err
		}
	}
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return os.ErrClosed
	}
	f.syncs++
	n, start := f.syncs, len(f.data)
	f.mu.Unlock()
	if f.syncDelay > 0 {
		time.Sleep(f.syncDelay) // the device is slow; this is not a wait for an event
	}
	if f.syncErr != nil {
		if err := f.syncErr(n); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.durable = start
	f.mu.Unlock()
	return nil
}

func (f *memFile) Close() error {
	f.enter()
	defer f.leave()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	return nil
}

func (f *memFile) Read([]byte) (int, error) { return 0, errors.New("memFile: write-only") }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return memFileInfo{size: int64(len(f.data))}, nil
}

// snapshot returns a copy of the data and the durable length.
func (f *memFile) snapshot() (data []byte, durable int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...), f.durable
}

func (f *memFile) counts() (writes, syncs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes, f.syncs
}

type memFileInfo struct{ size int64 }

func (i memFileInfo) Name() string       { return "mem" }
func (i memFileInfo) Size() int64        { return i.size }
func (i memFileInfo) Mode() fs.FileMode  { return 0o644 }
func (i memFileInfo) ModTime() time.Time { return time.Time{} }
func (i memFileInfo) IsDir() bool        { return false }
func (i memFileInfo) Sys() any           { return nil }
