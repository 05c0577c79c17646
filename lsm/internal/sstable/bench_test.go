package sstable

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

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

// benchTableEntries is the size of the tables read by the benchmarks: about
// the 8 MiB of a compacted table with 100-byte values.
const benchTableEntries = 100_000

func perEntry(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// cpuTime returns the CPU time the process has used. Benchmarks report it
// next to wall time because shared machines make wall time noisy.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op (per entry when n > 1) since start.
func reportCPU(b *testing.B, start time.Duration, n int) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N*n), "cpu-ns/"+map[bool]string{true: "entry", false: "op"}[n > 1])
}

func BenchmarkWriter(b *testing.B) {
	entries := benchEntries(benchTableEntries)
	for _, c := range compressions {
		b.Run(c.String(), func(b *testing.B) {
			var size uint64
			start := cpuTime()
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
			reportCPU(b, start, len(entries))
			perEntry(b, len(entries))
			b.ReportMetric(float64(size), "table-bytes")
		})
	}
}

// benchReader writes entries and opens them, warming bc with a scan.
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

// BenchmarkSeekGE seeks to random existing keys of a table whose blocks are
// all cached.
func BenchmarkSeekGE(b *testing.B) {
	entries := benchEntries(benchTableEntries)
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, 1<<16)
	for i := range keys {
		keys[i] = entries[rng.IntN(len(entries))].key.UserKey
	}
	b.Run("iter", func(b *testing.B) {
		r := benchReader(b, entries, S2Compression, cache.New(1<<30))
		it := r.NewIter(nil, nil)
		defer it.Close()
		i := 0
		start := cpuTime()
		for b.Loop() {
			if !it.SeekGE(keys[i&(len(keys)-1)]) {
				b.Fatal("not found")
			}
			i++
		}
		reportCPU(b, start, 1)
	})
	b.Run("sequential", func(b *testing.B) {
		// Seeks to every 3rd key in order, as a merging iterator does.
		r := benchReader(b, entries, S2Compression, cache.New(1<<30))
		it := r.NewIter(nil, nil)
		defer it.Close()
		i := 0
		start := cpuTime()
		for b.Loop() {
			if !it.SeekGE(entries[i%len(entries)].key.UserKey) {
				b.Fatal("not found")
			}
			i += 3
		}
		reportCPU(b, start, 1)
	})
	b.Run("point-lookup", func(b *testing.B) {
		// Filter, iterator from the pool, seek, close.
		r := benchReader(b, entries, S2Compression, cache.New(1<<30))
		i := 0
		start := cpuTime()
		for b.Loop() {
			k := keys[i&(len(keys)-1)]
			if ok, err := r.MayContain(k); !ok || err != nil {
				b.Fatal("filter miss", err)
			}
			it := r.NewIter(nil, nil)
			if !it.SeekGE(k) {
				b.Fatal("not found")
			}
			it.Close()
			i++
		}
		reportCPU(b, start, 1)
	})
	b.Run("seeklt", func(b *testing.B) {
		r := benchReader(b, entries, S2Compression, cache.New(1<<30))
		it := r.NewIter(nil, nil)
		defer it.Close()
		i := 0
		start := cpuTime()
		for b.Loop() {
			it.SeekLT(keys[i&(len(keys)-1)])
			i++
		}
		reportCPU(b, start, 1)
	})
}

// BenchmarkScan scans a table forward (and, cached, backward), reporting
// the cost per entry.
func BenchmarkScan(b *testing.B) {
	entries := benchEntries(benchTableEntries)
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
		b.Run(tc.name, func(b *testing.B) {
			var bc *cache.Cache
			if tc.cache {
				bc = cache.New(1 << 30)
			}
			r := benchReader(b, entries, tc.c, bc)
			start := cpuTime()
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
			reportCPU(b, start, len(entries))
			perEntry(b, len(entries))
		})
	}
	b.Run("cached-reverse", func(b *testing.B) {
		r := benchReader(b, entries, S2Compression, cache.New(1<<30))
		start := cpuTime()
		for b.Loop() {
			it := r.NewIter(nil, nil)
			for ok := it.Last(); ok; ok = it.Prev() {
			}
			it.Close()
		}
		reportCPU(b, start, len(entries))
		perEntry(b, len(entries))
	})
}
