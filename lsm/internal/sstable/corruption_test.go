package sstable

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/cache"
)

// errInconsistent reports that a backward scan disagreed with a forward
// scan. Only tables crafted to pass the checksums can do that.
var errInconsistent = errors.New("backward scan differs from forward scan")

// readAll opens data as a table and reads everything it can: a forward and
// a backward scan, seeks and the metadata accessors. It returns the first
// error and, when there is none, the forward scan's entries.
func readAll(data []byte, bc *cache.Cache) ([]kv, error) {
	r, err := Open(&memFile{data: data}, ReaderOptions{Cache: bc, FileNum: 1})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := r.MayContain([]byte("user0001")); err != nil {
		return nil, err
	}
	r.RangeTombstones()
	it := r.NewIter(nil, nil)
	defer it.Close()
	var got []kv
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key().Clone()
		got = append(got, kv{k, append([]byte(nil), it.Value()...)})
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	i := len(got)
	for ok := it.Last(); ok; ok = it.Prev() {
		i--
		if i < 0 || !sameEntry(it, got[i]) {
			return nil, errInconsistent
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if i != 0 {
		return nil, errInconsistent
	}
	for _, k := range [][]byte{nil, []byte("user0250"), []byte("u5"), []byte("\xff")} {
		it.SeekGE(k)
		it.Next()
		it.SeekLT(k)
		it.Prev()
		if err := it.Error(); err != nil {
			return nil, err
		}
	}
	return got, nil
}

func equalEntries(a, b []kv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if base.CompareInternal(a[i].key, b[i].key) != 0 || a[i].key.Trailer != b[i].key.Trailer || string(a[i].value) != string(b[i].value) {
			return false
		}
	}
	return true
}

// TestCorruption flips bytes of written tables and checks that reading
// either reports corruption or returns exactly the original data; it must
// never return other data or panic.
func TestCorruption(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	entries := genEntries(rng, 1500)
	tombstones := []base.RangeTombstone{
		{Start: []byte("user0100"), End: []byte("user0200"), Seq: 1 << 41},
		{Start: []byte("u1"), End: []byte("u2"), Seq: 3},
	}
	for _, c := range compressions {
		t.Run(c.String(), func(t *testing.T) {
			f, _ := writeTable(t, entries, tombstones, WriterOptions{Compression: c, BlockSize: 2048})
			orig := f.data
			if got, err := readAll(orig, nil); err != nil || !equalEntries(got, entries) {
				t.Fatalf("intact table: err %v, equal %v", err, equalEntries(got, entries))
			}
			// Sample offsets through the file, and every byte of the last
			// few blocks and the footer.
			var offsets []int
			step := len(orig) / scaled(100)
			for off := 0; off < len(orig); off += 1 + rng.IntN(step) {
				offsets = append(offsets, off)
			}
			for off := max(len(orig)-scaled(200), 0); off < len(orig); off++ {
				offsets = append(offsets, off)
			}
			detected := 0
			for _, off := range offsets {
				data := append([]byte(nil), orig...)
				data[off] ^= byte(1 + rng.IntN(255))
				var bc *cache.Cache
				if off%2 == 0 {
					bc = cache.New(1 << 20)
				}
				got, err := readAll(data, bc)
				switch {
				case err != nil && !errors.Is(err, base.ErrCorruption):
					t.Fatalf("flip at %d: error %v does not wrap ErrCorruption", off, err)
				case err != nil:
					detected++
				case !equalEntries(got, entries):
					t.Fatalf("flip at %d: read different data without an error", off)
				}
			}
			t.Logf("%d of %d flips detected", detected, len(offsets))
			// Truncations.
			for _, n := range []int{0, 1, footerLen - 1, footerLen, len(orig) / 2, len(orig) - footerLen, len(orig) - 1} {
				if _, err := readAll(orig[:n], nil); !errors.Is(err, base.ErrCorruption) {
					t.Fatalf("table truncated to %d bytes: error %v, want ErrCorruption", n, err)
				}
			}
		})
	}
}
