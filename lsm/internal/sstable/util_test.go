package sstable

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// memFile is a vfs.File in memory, so that these tests do not depend on
// the vfs package's implementations.
type memFile struct {
	mu     sync.RWMutex
	data   []byte
	rpos   int
	closed bool
	synced bool
	// failWriteAfter makes writes fail once the file would exceed it (when
	// positive).
	failWriteAfter int
	writes         int
}

var _ vfs.File = (*memFile)(nil)

var errInjected = errors.New("injected write failure")

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	if f.failWriteAfter > 0 && len(f.data)+len(p) > f.failWriteAfter {
		return 0, errInjected
	}
	f.writes++
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rpos >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.rpos:])
	f.rpos += n
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = true
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return memInfo(len(f.data)), nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	return nil
}

// reopen returns a fresh readable file with the same contents.
func (f *memFile) reopen() *memFile {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &memFile{data: f.data}
}

type memInfo int64

func (m memInfo) Name() string       { return "table" }
func (m memInfo) Size() int64        { return int64(m) }
func (m memInfo) Mode() fs.FileMode  { return 0o644 }
func (m memInfo) ModTime() time.Time { return time.Time{} }
func (m memInfo) IsDir() bool        { return false }
func (m memInfo) Sys() any           { return nil }

// kv is a point entry of the test model.
type kv struct {
	key   base.InternalKey
	value []byte
}

// genEntries returns about n entries in internal-key order: user keys with
// shared prefixes and 1-5 versions each, of every point kind, with values
// of 0-300 bytes.
func genEntries(rng *rand.Rand, n int) []kv {
	var out []kv
	seen := map[string]bool{}
	for len(out) < n {
		var uk []byte
		switch rng.IntN(4) {
		case 0:
			uk = fmt.Appendf(nil, "user%04d/INBOX/%08d", rng.IntN(500), rng.IntN(1e8))
		case 1:
			uk = fmt.Appendf(nil, "u%d", rng.IntN(1e9))
		case 2:
			uk = make([]byte, rng.IntN(20))
			for i := range uk {
				uk[i] = byte(rng.IntN(256))
			}
		default:
			uk = fmt.Appendf(nil, "user%04d/Sent/%08d/%s", rng.IntN(500), rng.IntN(1e8), bytes.Repeat([]byte("x"), rng.IntN(100)))
		}
		if seen[string(uk)] {
			continue
		}
		seen[string(uk)] = true
		versions := 1 + rng.IntN(5)
		seq := uint64(rng.Int64N(1 << 40))
		for v := range versions {
			kind := []base.Kind{base.KindSet, base.KindDelete, base.KindMerge}[rng.IntN(3)]
			var val []byte
			if kind != base.KindDelete || rng.IntN(4) == 0 {
				val = make([]byte, rng.IntN(301))
				for i := range val {
					val[i] = byte('a' + rng.IntN(4)) // compressible
				}
			}
			out = append(out, kv{base.MakeInternalKey(uk, seq+uint64(versions-v)*7, kind), val})
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return base.CompareInternal(a.key, b.key) })
	return out
}

// writeTable writes entries and tombstones to a new memFile.
func writeTable(t testing.TB, entries []kv, tombstones []base.RangeTombstone, opts WriterOptions) (*memFile, Meta) {
	t.Helper()
	f := &memFile{}
	w := NewWriter(f, opts)
	for _, e := range entries {
		if err := w.Add(e.key, e.value); err != nil {
			t.Fatalf("Add(%s): %v", e.key, err)
		}
	}
	for _, ts := range tombstones {
		if err := w.AddRangeTombstone(ts); err != nil {
			t.Fatalf("AddRangeTombstone: %v", err)
		}
	}
	m, err := w.Close()
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !f.synced || !f.closed {
		t.Fatalf("Close left the file synced=%v closed=%v, want both", f.synced, f.closed)
	}
	return f.reopen(), m
}

func openTable(t testing.TB, f *memFile, opts ReaderOptions) *Reader {
	t.Helper()
	r, err := Open(f, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func sameEntry(it base.InternalIterator, e kv) bool {
	k := it.Key()
	return bytes.Equal(k.UserKey, e.key.UserKey) && k.Trailer == e.key.Trailer && bytes.Equal(it.Value(), e.value)
}

func describe(it base.InternalIterator) string {
	return fmt.Sprintf("%s=%.20q", it.Key(), it.Value())
}

// boundedModel returns the entries with user keys in [lower, upper).
func boundedModel(entries []kv, lower, upper []byte) []kv {
	lo, hi := 0, len(entries)
	if lower != nil {
		lo = seekGEModel(entries, lower)
	}
	if upper != nil {
		hi = seekGEModel(entries, upper)
	}
	if hi < lo {
		hi = lo
	}
	return entries[lo:hi]
}

// seekGEModel returns the index of the first entry whose user key >= key.
func seekGEModel(entries []kv, key []byte) int {
	i, _ := slices.BinarySearchFunc(entries, key, func(e kv, k []byte) int {
		if bytes.Compare(e.key.UserKey, k) < 0 {
			return -1
		}
		return 1
	})
	return i
}

// scaled returns n, or a fifth of it under -short or the race detector,
// which slows these tests about fifteenfold.
func scaled(n int) int {
	if raceEnabled || testing.Short() {
		return max(n/5, 1)
	}
	return n
}
