package sstable

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/cache"
)

// benchEntries returns n entries shaped like mail index keys, with 100-byte
// values of moderately compressible text.
func benchEntries(n int) []kv {
	rng := rand.New(rand.NewPCG(41, 42))
	entries := make([]kv, n)
	for i := range entries {
		val := make([]byte, 100)
		for j := range val {
			val[j] = "abcdefghijklmnopqrstuvwxyz0123456789 "[rng.IntN(16+j%20)]
		}
		uk := fmt.Appendf(nil, "user%04d/INBOX/%010d", i/1000, i%1000*7919)
		entries[i] = kv{base.MakeInternalKey(uk, uint64(n-i), base.KindSet), val}
	}
	return entries
}

func BenchmarkWriter(b *testing.B) {
	entries := benchEntries(100_000)
	for _, c := range compressions {
		b.Run(c.String(), func(b *testing.B) {
			var size uint64
			for b.Loop() {
				f := &memFile{data: make([]byte, 0, 16<<20)}
				w := NewWriter(f, WriterOptions{Compression: c})
				for _, e := range entries {
					if err := w.Add(e.key, e.value); err != nil {
						b.Fatal(err)
					}
				}
				m, err := w.Close()
				if err != nil {
					b.Fatal(err)
				}
				size = m.Size
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
			b.ReportMetric(float64(size), "table-bytes")
		})
	}
}

func benchReader(b *testing.B, entries []kv, c Compression, bc *cache.Cache) *Reader {
	b.Helper()
	f, _ := writeTable(b, entries, nil, WriterOptions{Compression: c})
	r := openTable(b, f, ReaderOptions{Cache: bc, FileNum: 1})
	b.Cleanup(func() { r.Close() })
	if bc != nil {
		it := r.NewIter(nil, nil)
		for ok := it.First(); ok; ok = it.Next() {
		}
		it.Close()
	}
	return r
}

// BenchmarkSeekGE seeks to random existing keys of a 1M-entry table whose
// blocks are all cached.
func BenchmarkSeekGE(b *testing.B) {
	entries := benchEntries(1_000_000)
	r := benchReader(b, entries, S2Compression, cache.New(1<<30))
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = entries[rng.IntN(len(entries))].key.UserKey
	}
	b.Run("iter", func(b *testing.B) {
		it := r.NewIter(nil, nil)
		defer it.Close()
		i := 0
		for b.Loop() {
			if !it.SeekGE(keys[i&(len(keys)-1)]) {
				b.Fatal("not found")
			}
			i++
		}
	})
	b.Run("newiter", func(b *testing.B) {
		// A point lookup: filter, iterator from the pool, seek, close.
		i := 0
		for b.Loop() {
			k := keys[i&(len(keys)-1)]
			if !r.MayContain(k) {
				b.Fatal("filter miss")
			}
			it := r.NewIter(nil, nil)
			if !it.SeekGE(k) {
				b.Fatal("not found")
			}
			it.Close()
			i++
		}
	})
	b.Run("seeklt", func(b *testing.B) {
		it := r.NewIter(nil, nil)
		defer it.Close()
		i := 0
		for b.Loop() {
			it.SeekLT(keys[i&(len(keys)-1)])
			i++
		}
	})
}

// BenchmarkScan scans a 1M-entry table forward (and backward), reporting
// the cost per entry.
func BenchmarkScan(b *testing.B) {
	entries := benchEntries(1_000_000)
	for _, tc := range []struct {
		name  string
		c     Compression
		cache bool
	}{
		{"cached", S2Compression, true},
		{"none-uncached", NoCompression, false},
		{"s2-uncached", S2Compression, false},
		{"zstd-uncached", ZstdCompression, false},
	} {
		var bc *cache.Cache
		if tc.cache {
			bc = cache.New(1 << 30)
		}
		r := benchReader(b, entries, tc.c, bc)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				it := r.NewIter(nil, nil)
				n := 0
				for ok := it.First(); ok; ok = it.Next() {
					n++
				}
				if n != len(entries) {
					b.Fatalf("scanned %d entries, want %d", n, len(entries))
				}
				it.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
		})
		if tc.cache {
			b.Run(tc.name+"-reverse", func(b *testing.B) {
				for b.Loop() {
					it := r.NewIter(nil, nil)
					for ok := it.Last(); ok; ok = it.Prev() {
					}
					it.Close()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/entry")
			})
		}
	}
}
