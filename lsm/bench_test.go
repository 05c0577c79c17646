package lsm_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// BenchmarkApplyBatch applies batches of 1,000 small entries (16-byte keys,
// 32-byte values) without sync to a DB on an in-memory file system with
// the default options, so that memtables rotate and flush as they would.
// One op is one batch; ns/key is the time per entry and cpu-ns/key the
// process's CPU time per entry, background flushes and compactions
// included.
//
//   - sorted-existing: merge operands for keys drawn from a fixed set of
//     64k (the posting lists of a full-text index), sorted, as
//     index/lsmindex writes them: most keys already have versions in the
//     memtable, from earlier batches.
//   - sorted-fresh: new random keys, sorted.
//   - random: new random keys in random order.
func BenchmarkApplyBatch(b *testing.B) {
	const (
		batchLen = 1000
		batches  = 64
		terms    = 64 << 10
	)
	for _, kind := range []string{"sorted-existing", "sorted-fresh", "random"} {
		b.Run(kind, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(7, 7))
			newKey := func() []byte {
				k := make([]byte, 16)
				binary.BigEndian.PutUint64(k, rng.Uint64())
				binary.BigEndian.PutUint64(k[8:], rng.Uint64())
				return k
			}
			termKeys := make([][]byte, terms)
			for i := range termKeys {
				termKeys[i] = newKey()
			}
			value := make([]byte, 32)
			all := make([][][]byte, batches)
			for i := range all {
				keys := make([][]byte, batchLen)
				for j := range keys {
					if kind == "sorted-existing" {
						keys[j] = termKeys[rng.IntN(terms)]
					} else {
						keys[j] = newKey()
					}
				}
				if kind != "random" {
					slices.SortFunc(keys, bytes.Compare)
				}
				all[i] = keys
			}
			db, err := lsm.Open("db", &lsm.Options{FS: vfs.NewMem()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			batch := db.NewBatch()
			n := 0
			start := cpuTime()
			for b.Loop() {
				batch.Reset()
				for _, k := range all[n%batches] {
					if kind == "sorted-existing" {
						batch.Merge(k, value)
					} else {
						// Fresh keys for every pass over the batches.
						binary.BigEndian.PutUint32(k[12:], uint32(n))
						batch.Set(k, value)
					}
				}
				if err := db.Apply(batch, lsm.NoSync); err != nil {
					b.Fatal(err)
				}
				n++
			}
			keys := float64(n * batchLen)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/keys, "ns/key")
			b.ReportMetric(float64(cpuTime()-start)/keys, "cpu-ns/key")
		})
	}
}

// BenchmarkRead reads a DB of 200k keys (16-byte keys, 100-byte values),
// compacted into about 25 tables and then one more level-0 table of 20k
// keys over the same range, its blocks and metadata all cached: "get" is a
// random point lookup, half of them for missing keys; "scan" a seek and 20
// steps. cpu-ns/op is the process's CPU time per op.
func BenchmarkRead(b *testing.B) {
	const n = 200_000
	db, err := lsm.Open("db", &lsm.Options{FS: vfs.NewMem(), MemTableSize: 1 << 20, TargetFileSize: 1 << 20, LBaseMaxBytes: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	key := func(i uint64) []byte {
		return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, i*0x9e3779b97f4a7c15), i)
	}
	value := make([]byte, 100)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range uint64(n) {
		binary.BigEndian.PutUint64(value, rng.Uint64())
		if err := db.Set(key(i*2), value, lsm.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Compact(nil, nil); err != nil {
		b.Fatal(err)
	}
	for i := range uint64(n / 10) {
		if err := db.Set(key(i*20), value, lsm.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Run("get", func(b *testing.B) {
		start := cpuTime()
		for b.Loop() {
			i := rng.Uint64N(2 * n)
			_, err := db.Get(key(i))
			if (err == nil) != (i%2 == 0) {
				b.Fatal(i, err)
			}
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
	b.Run("scan", func(b *testing.B) {
		it, err := db.NewIter(nil)
		if err != nil {
			b.Fatal(err)
		}
		defer it.Close()
		start := cpuTime()
		for b.Loop() {
			ok := it.SeekGE(key(rng.Uint64N(2 * n)))
			for j := 0; ok && j < 20; j++ {
				ok = it.Next()
			}
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	})
}
