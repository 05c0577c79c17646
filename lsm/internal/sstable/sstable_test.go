package sstable

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/cache"
)

var compressions = []Compression{NoCompression, S2Compression, ZstdCompression}

func checkScan(t *testing.T, it base.InternalIterator, want []kv) {
	t.Helper()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(want) {
			t.Fatalf("forward scan: extra entry %s", describe(it))
		}
		if !sameEntry(it, want[i]) {
			t.Fatalf("forward scan: entry %d = %s, want %s", i, describe(it), want[i].key)
		}
		i++
	}
	if err := it.Error(); err != nil {
		t.Fatalf("forward scan: %v", err)
	}
	if i != len(want) {
		t.Fatalf("forward scan: %d entries, want %d", i, len(want))
	}
	i = len(want) - 1
	for ok := it.Last(); ok; ok = it.Prev() {
		if i < 0 {
			t.Fatalf("backward scan: extra entry %s", describe(it))
		}
		if !sameEntry(it, want[i]) {
			t.Fatalf("backward scan: entry %d = %s, want %s", i, describe(it), want[i].key)
		}
		i--
	}
	if err := it.Error(); err != nil {
		t.Fatalf("backward scan: %v", err)
	}
	if i != -1 {
		t.Fatalf("backward scan stopped at entry %d, want all", i)
	}
}

// seekKeys returns keys to seek to: existing user keys, their neighbours
// and random keys.
func seekKey(rng *rand.Rand, entries []kv) []byte {
	e := entries[rng.IntN(len(entries))].key.UserKey
	switch rng.IntN(5) {
	case 0:
		return append(slices.Clone(e), 0)
	case 1:
		if len(e) > 0 {
			return e[:len(e)-1]
		}
		return e
	case 2:
		return fmt.Appendf(nil, "user%04d", rng.IntN(600))
	case 3:
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	return e
}

// checkSeeks compares random seeks and short walks from them against the
// model of the entries in bounds.
func checkSeeks(t *testing.T, rng *rand.Rand, it base.InternalIterator, all, want []kv, n int) {
	t.Helper()
	for range n {
		key := seekKey(rng, all)
		var pos int
		var ok bool
		if rng.IntN(2) == 0 {
			pos = seekGEModel(want, key)
			ok = it.SeekGE(key)
		} else {
			pos = seekGEModel(want, key) - 1
			ok = it.SeekLT(key)
		}
		if ok != (pos >= 0 && pos < len(want)) {
			t.Fatalf("seek %q: ok = %v, model position %d of %d", key, ok, pos, len(want))
		}
		if ok && !sameEntry(it, want[pos]) {
			t.Fatalf("seek %q: at %s, want %s", key, describe(it), want[pos].key)
		}
		// Walk a few steps in random directions, through block and
		// restart boundaries and direction switches.
		for range rng.IntN(40) {
			if !ok {
				break
			}
			if rng.IntN(2) == 0 {
				pos++
				ok = it.Next()
			} else {
				pos--
				ok = it.Prev()
			}
			if ok != (pos >= 0 && pos < len(want)) {
				t.Fatalf("walk after seek %q: ok = %v at model position %d of %d", key, ok, pos, len(want))
			}
			if ok && !sameEntry(it, want[pos]) {
				t.Fatalf("walk after seek %q: at %s, want %s", key, describe(it), want[pos].key)
			}
		}
		if err := it.Error(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	entries := genEntries(rng, scaled(100_000))
	for _, c := range compressions {
		t.Run(c.String(), func(t *testing.T) {
			f, m := writeTable(t, entries, nil, WriterOptions{Compression: c})
			if m.NumEntries != uint64(len(entries)) {
				t.Fatalf("Meta.NumEntries = %d, want %d", m.NumEntries, len(entries))
			}
			if base.CompareInternal(m.Smallest, entries[0].key) != 0 || base.CompareInternal(m.Largest, entries[len(entries)-1].key) != 0 {
				t.Fatalf("Meta bounds = %s, %s, want %s, %s", m.Smallest, m.Largest, entries[0].key, entries[len(entries)-1].key)
			}
			if m.Size != uint64(len(f.data)) {
				t.Fatalf("Meta.Size = %d, file has %d bytes", m.Size, len(f.data))
			}
			t.Logf("%s: %d entries, %d bytes", c, len(entries), m.Size)
			r := openTable(t, f, ReaderOptions{})
			defer r.Close()
			if r.NumEntries() != uint64(len(entries)) {
				t.Fatalf("NumEntries = %d, want %d", r.NumEntries(), len(entries))
			}
			it := r.NewIter(nil, nil)
			checkScan(t, it, entries)
			checkSeeks(t, rng, it, entries, entries, scaled(3000))
			if err := it.Close(); err != nil {
				t.Fatal(err)
			}
			for _, e := range entries[:1000] {
				if ok, err := r.MayContain(e.key.UserKey); !ok || err != nil {
					t.Fatalf("MayContain(%q) = false for a present key", e.key.UserKey)
				}
			}
		})
	}
}

func TestBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	entries := genEntries(rng, 5000)
	for _, opts := range []WriterOptions{
		{Compression: S2Compression},
		{BlockSize: 64, RestartInterval: 3, Compression: NoCompression},
		{BlockSize: 1, RestartInterval: 1, Compression: NoCompression},
	} {
		t.Run(fmt.Sprintf("block%d-restart%d", opts.BlockSize, opts.RestartInterval), func(t *testing.T) {
			f, _ := writeTable(t, entries, nil, opts)
			r := openTable(t, f, ReaderOptions{})
			defer r.Close()
			for range scaled(60) {
				var lower, upper []byte
				if rng.IntN(4) != 0 {
					lower = seekKey(rng, entries)
				}
				if rng.IntN(4) != 0 {
					upper = seekKey(rng, entries)
				}
				if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
					lower, upper = upper, lower
				}
				want := boundedModel(entries, lower, upper)
				it := r.NewIter(lower, upper)
				checkScan(t, it, want)
				checkSeeks(t, rng, it, entries, want, 50)
				if err := it.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestRandomWalk checks every positioning method, including moves after
// the iterator is exhausted in either direction, against a model.
func TestRandomWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	entries := genEntries(rng, 3000)
	f, _ := writeTable(t, entries, nil, WriterOptions{BlockSize: 256, RestartInterval: 4})
	r := openTable(t, f, ReaderOptions{Cache: cache.New(1 << 20)})
	defer r.Close()
	for range 20 {
		lower, upper := seekKey(rng, entries), seekKey(rng, entries)
		if bytes.Compare(lower, upper) > 0 {
			lower, upper = upper, lower
		}
		want := boundedModel(entries, lower, upper)
		it := r.NewIter(lower, upper)
		// pos -1 is before the first entry and len(want) after the last.
		it.First()
		pos := 0
		for step := range 2000 {
			var ok bool
			var op string
			switch rng.IntN(10) {
			case 0:
				op, ok, pos = "First", it.First(), 0
			case 1:
				op, ok, pos = "Last", it.Last(), len(want)-1
			case 2:
				k := seekKey(rng, entries)
				op, ok, pos = fmt.Sprintf("SeekGE(%q)", k), it.SeekGE(k), seekGEModel(want, k)
			case 3:
				k := seekKey(rng, entries)
				op, ok, pos = fmt.Sprintf("SeekLT(%q)", k), it.SeekLT(k), seekGEModel(want, k)-1
			case 4, 5, 6:
				op, ok = "Next", it.Next()
				pos = min(pos+1, len(want))
			default:
				op, ok = "Prev", it.Prev()
				pos = max(pos-1, -1)
			}
			if ok != (pos >= 0 && pos < len(want)) {
				t.Fatalf("step %d %s: ok = %v at model position %d of %d", step, op, ok, pos, len(want))
			}
			if ok && !sameEntry(it, want[pos]) {
				t.Fatalf("step %d %s: at %s, want %s", step, op, describe(it), want[pos].key)
			}
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRangeTombstones(t *testing.T) {
	points := []kv{
		{base.MakeInternalKey([]byte("c"), 10, base.KindSet), []byte("1")},
		{base.MakeInternalKey([]byte("m"), 12, base.KindSet), []byte("2")},
	}
	for _, tc := range []struct {
		name                string
		points              []kv
		ts                  []base.RangeTombstone
		smallest, largest   base.InternalKey
		smallSeq, largeSeq  uint64
		wantTombstoneStarts []string
	}{
		{
			name:     "inside points",
			points:   points,
			ts:       []base.RangeTombstone{{Start: []byte("d"), End: []byte("f"), Seq: 20}},
			smallest: points[0].key, largest: points[1].key,
			smallSeq: 10, largeSeq: 20,
			wantTombstoneStarts: []string{"d"},
		},
		{
			name:   "extends both ends",
			points: points,
			ts: []base.RangeTombstone{
				{Start: []byte("x"), End: []byte("z"), Seq: 3},
				{Start: []byte("a"), End: []byte("b"), Seq: 5},
				{Start: []byte("a"), End: []byte("e"), Seq: 9},
				{Start: []byte("k"), End: []byte("y"), Seq: 4},
			},
			smallest: base.MakeInternalKey([]byte("a"), 9, base.KindRangeDelete),
			largest:  base.MakeRangeDeleteSentinel([]byte("z")),
			smallSeq: 3, largeSeq: 12,
			wantTombstoneStarts: []string{"a", "a", "k", "x"},
		},
		{
			name:     "same user key as points",
			points:   points,
			ts:       []base.RangeTombstone{{Start: []byte("c"), End: []byte("m"), Seq: 11}},
			smallest: base.MakeInternalKey([]byte("c"), 11, base.KindRangeDelete),
			largest:  points[1].key,
			smallSeq: 10, largeSeq: 12,
			wantTombstoneStarts: []string{"c"},
		},
		{
			name:     "tombstones only",
			ts:       []base.RangeTombstone{{Start: []byte("b"), End: []byte("c"), Seq: 7}, {Start: []byte("a"), End: []byte("bb"), Seq: 8}},
			smallest: base.MakeInternalKey([]byte("a"), 8, base.KindRangeDelete),
			largest:  base.MakeRangeDeleteSentinel([]byte("c")),
			smallSeq: 7, largeSeq: 8,
			wantTombstoneStarts: []string{"a", "b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := make([]base.RangeTombstone, len(tc.ts))
			for i, x := range tc.ts {
				// The writer must copy: hand it buffers that are then
				// overwritten.
				ts[i] = base.RangeTombstone{Start: slices.Clone(x.Start), End: slices.Clone(x.End), Seq: x.Seq}
			}
			f := &memFile{}
			w := NewWriter(f, WriterOptions{})
			for _, p := range tc.points {
				if err := w.Add(p.key, p.value); err != nil {
					t.Fatal(err)
				}
			}
			for _, x := range ts {
				if err := w.AddRangeTombstone(x); err != nil {
					t.Fatal(err)
				}
				clear(x.Start)
				clear(x.End)
			}
			m, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if base.CompareInternal(m.Smallest, tc.smallest) != 0 || m.Smallest.Trailer != tc.smallest.Trailer {
				t.Errorf("Meta.Smallest = %s, want %s", m.Smallest, tc.smallest)
			}
			if base.CompareInternal(m.Largest, tc.largest) != 0 {
				t.Errorf("Meta.Largest = %s, want %s", m.Largest, tc.largest)
			}
			if m.SmallestSeq != tc.smallSeq || m.LargestSeq != tc.largeSeq {
				t.Errorf("Meta seqs = %d..%d, want %d..%d", m.SmallestSeq, m.LargestSeq, tc.smallSeq, tc.largeSeq)
			}
			if m.NumRangeTombstones != uint64(len(tc.ts)) {
				t.Errorf("Meta.NumRangeTombstones = %d, want %d", m.NumRangeTombstones, len(tc.ts))
			}
			r := openTable(t, f.reopen(), ReaderOptions{})
			defer r.Close()
			got := r.RangeTombstones()
			var starts []string
			for _, x := range got {
				starts = append(starts, string(x.Start))
			}
			if !slices.Equal(starts, tc.wantTombstoneStarts) {
				t.Fatalf("tombstone starts = %q, want %q", starts, tc.wantTombstoneStarts)
			}
			for _, want := range tc.ts {
				if !slices.ContainsFunc(got, func(g base.RangeTombstone) bool {
					return bytes.Equal(g.Start, want.Start) && bytes.Equal(g.End, want.End) && g.Seq == want.Seq
				}) {
					t.Errorf("tombstone %q-%q#%d missing from %v", want.Start, want.End, want.Seq, got)
				}
			}
			for i := 1; i < len(got); i++ {
				if c := bytes.Compare(got[i-1].Start, got[i].Start); c > 0 || c == 0 && got[i-1].Seq < got[i].Seq {
					t.Errorf("tombstones out of order at %d", i)
				}
			}
			checkScan(t, r.NewIter(nil, nil), tc.points)
		})
	}
}

func TestEmptyTable(t *testing.T) {
	f, m := writeTable(t, nil, nil, WriterOptions{})
	if m.NumEntries != 0 || m.Smallest.UserKey != nil || m.Largest.UserKey != nil {
		t.Fatalf("empty table Meta = %+v", m)
	}
	r := openTable(t, f, ReaderOptions{})
	defer r.Close()
	it := r.NewIter(nil, nil)
	defer it.Close()
	if it.First() || it.Last() || it.SeekGE([]byte("a")) || it.SeekLT([]byte("z")) || it.Next() || it.Prev() {
		t.Fatal("an empty table has an entry")
	}
	if it.Error() != nil {
		t.Fatal(it.Error())
	}
}

func TestCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	entries := genEntries(rng, scaled(20000))
	for _, c := range compressions {
		t.Run(c.String(), func(t *testing.T) {
			f, _ := writeTable(t, entries, nil, WriterOptions{Compression: c})
			bc := cache.New(64 << 20)
			r := openTable(t, f, ReaderOptions{Cache: bc, FileNum: 42})
			defer r.Close()
			it := r.NewIter(nil, nil)
			checkScan(t, it, entries)
			hits1, misses1, size := bc.Metrics()
			blocks, err := r.NumDataBlocks()
			if err != nil {
				t.Fatal(err)
			}
			if misses1 != int64(blocks)+1 || size == 0 {
				t.Fatalf("after a scan: %d misses (want one per block and the index: %d), size %d", misses1, blocks+1, size)
			}
			checkScan(t, it, entries)
			checkSeeks(t, rng, it, entries, entries, 500)
			it.Close()
			hits2, misses2, _ := bc.Metrics()
			if misses2 != misses1 || hits2 <= hits1 {
				t.Fatalf("second pass: misses %d -> %d, hits %d -> %d; want no new misses", misses1, misses2, hits1, hits2)
			}
			// A second table in the same cache must not see the first
			// one's blocks.
			f2, _ := writeTable(t, entries[:100], nil, WriterOptions{Compression: c})
			r2 := openTable(t, f2, ReaderOptions{Cache: bc, FileNum: 43})
			defer r2.Close()
			checkScan(t, r2.NewIter(nil, nil), entries[:100])
			bc.EvictFile(42)
			it = r.NewIter(nil, nil)
			checkScan(t, it, entries)
			it.Close()
		})
	}
}

// TestSeekSameBlock checks that seeks within the loaded block do not read
// it again.
func TestSeekSameBlock(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	entries := genEntries(rng, 2000)
	f, _ := writeTable(t, entries, nil, WriterOptions{BlockSize: 64 << 10})
	bc := cache.New(1 << 20)
	r := openTable(t, f, ReaderOptions{Cache: bc})
	defer r.Close()
	it := r.NewIter(nil, nil)
	defer it.Close()
	index, err := r.loadIndex()
	if err != nil {
		t.Fatal(err)
	}
	if searchIndex(index, entries[99].key.UserKey) != 0 {
		t.Fatal("the first 100 entries span blocks; use larger blocks")
	}
	it.First()
	h0, m0, _ := bc.Metrics()
	for range 100 {
		k := entries[rng.IntN(100)].key.UserKey
		if !it.SeekGE(k) {
			t.Fatal("seek failed")
		}
	}
	if h, m, _ := bc.Metrics(); h != h0 || m != m0 {
		t.Fatalf("seeks within the current block consulted the cache: hits %d -> %d, misses %d -> %d", h0, h, m0, m)
	}
}

func TestConcurrentIterators(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	entries := genEntries(rng, 10000)
	f, _ := writeTable(t, entries, nil, WriterOptions{})
	r := openTable(t, f, ReaderOptions{Cache: cache.New(256 << 10)})
	defer r.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			it := r.NewIter(nil, nil)
			defer it.Close()
			for range 300 {
				key := seekKey(rng, entries)
				pos := seekGEModel(entries, key)
				ok := it.SeekGE(key)
				if ok != (pos < len(entries)) || ok && !sameEntry(it, entries[pos]) {
					panic(fmt.Sprintf("concurrent SeekGE(%q) wrong", key))
				}
				for range 20 {
					pos++
					if it.Next() != (pos < len(entries)) {
						panic("concurrent Next wrong")
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestWriterErrors(t *testing.T) {
	k := func(s string, seq uint64, kind base.Kind) base.InternalKey {
		return base.MakeInternalKey([]byte(s), seq, kind)
	}
	w := NewWriter(&memFile{}, WriterOptions{})
	if err := w.Add(k("b", 5, base.KindSet), nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []base.InternalKey{
		k("b", 5, base.KindSet), // duplicate
		k("b", 6, base.KindSet), // newer version after older
		k("a", 1, base.KindSet), // smaller user key
		k("c", 1, base.KindRangeDelete),
		{UserKey: []byte("d"), Trailer: 1<<8 | 9}, // unknown kind
	} {
		if err := w.Add(bad, nil); err == nil {
			t.Errorf("Add(%s) succeeded, want an error", bad)
		}
	}
	if err := w.Add(k("b", 4, base.KindDelete), nil); err != nil {
		t.Fatalf("Add after rejected keys: %v", err)
	}
	if err := w.AddRangeTombstone(base.RangeTombstone{Start: []byte("b"), End: []byte("b"), Seq: 1}); err == nil {
		t.Error("empty range tombstone accepted")
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(k("z", 1, base.KindSet), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
	if _, err := w.Close(); err != nil {
		t.Errorf("second Close = %v, want the first Close's nil", err)
	}
}

func TestWriteFailure(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	entries := genEntries(rng, 5000)
	f := &memFile{failWriteAfter: 100 << 10}
	w := NewWriter(f, WriterOptions{Compression: NoCompression})
	var err error
	for _, e := range entries {
		if err = w.Add(e.key, e.value); err != nil {
			break
		}
	}
	if _, cerr := w.Close(); cerr == nil || !errors.Is(cerr, errInjected) {
		t.Fatalf("Close = %v, want the injected write error", cerr)
	}
	if !errors.Is(err, errInjected) {
		t.Fatalf("Add = %v, want the injected write error", err)
	}
	if !f.closed {
		t.Fatal("Close after a write failure left the file open")
	}
}

func TestWriterBuffersWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	entries := genEntries(rng, 20000)
	f := &memFile{}
	w := NewWriter(f, WriterOptions{})
	for _, e := range entries {
		if err := w.Add(e.key, e.value); err != nil {
			t.Fatal(err)
		}
	}
	if est := w.EstimatedSize(); est == 0 {
		t.Fatal("EstimatedSize = 0")
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if maxWrites := int(m.Size/writeBufferSize) + 2; f.writes > maxWrites {
		t.Fatalf("%d writes for %d bytes, want at most %d", f.writes, m.Size, maxWrites)
	}
}

func TestEstimatedSize(t *testing.T) {
	f := &memFile{}
	w := NewWriter(f, WriterOptions{Compression: NoCompression})
	prev := uint64(0)
	for i := range 10000 {
		if err := w.Add(base.MakeInternalKey(fmt.Appendf(nil, "k%06d", i), 1, base.KindSet), make([]byte, 50)); err != nil {
			t.Fatal(err)
		}
		est := w.EstimatedSize()
		if est < prev {
			t.Fatalf("EstimatedSize went down: %d -> %d", prev, est)
		}
		prev = est
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if prev > m.Size || prev < m.Size*8/10 {
		t.Fatalf("EstimatedSize before Close = %d, final size %d", prev, m.Size)
	}
}

func TestIteratorAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops objects under the race detector")
	}
	rng := rand.New(rand.NewPCG(17, 18))
	entries := genEntries(rng, 20000)
	f, _ := writeTable(t, entries, nil, WriterOptions{})
	r := openTable(t, f, ReaderOptions{Cache: cache.New(64 << 20)})
	defer r.Close()
	keys := make([][]byte, 64)
	for i := range keys {
		keys[i] = seekKey(rng, entries)
	}
	checkScan(t, r.NewIter(nil, nil), entries) // warm the cache
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		it := r.NewIter(nil, nil)
		it.SeekGE(keys[i%len(keys)])
		it.Next()
		it.Prev()
		it.Prev()
		it.SeekLT(keys[(i+1)%len(keys)])
		it.Close()
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per iterator use, want 0", allocs)
	}
}

func TestReaderClose(t *testing.T) {
	entries := genEntries(rand.New(rand.NewPCG(19, 20)), 100)
	f, _ := writeTable(t, entries, nil, WriterOptions{})
	r := openTable(t, f, ReaderOptions{})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if !f.closed {
		t.Fatal("Close did not close the file")
	}
	it := r.NewIter(nil, nil)
	if it.First() || !errors.Is(it.Error(), ErrClosed) {
		t.Fatalf("iterator of a closed reader: First true or error %v, want ErrClosed", it.Error())
	}
	it.Close()
}

func TestOpenClosesFileOnError(t *testing.T) {
	f := &memFile{data: []byte("not a table")}
	if _, err := Open(f, ReaderOptions{}); !errors.Is(err, base.ErrCorruption) {
		t.Fatalf("Open = %v, want ErrCorruption", err)
	}
	if !f.closed {
		t.Fatal("a failed Open left the file open")
	}
}

// TestMetadataInCache checks that a reader with a cache keeps neither its
// index nor its filter, that both are charged to the cache, and that
// reads reload them after the cache dropped them and the collector freed
// them.
func TestMetadataInCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	entries := genEntries(rng, 3000)
	f, _ := writeTable(t, entries, nil, WriterOptions{BlockSize: 1024})
	bc := cache.New(64 << 20)
	r := openTable(t, f, ReaderOptions{Cache: bc, FileNum: 7})
	defer r.Close()
	if r.index != nil || r.filter != nil {
		t.Fatal("a reader with a cache holds its index or filter")
	}
	if _, _, size := bc.Metrics(); size != 0 {
		t.Fatalf("Open charged %d bytes to the cache", size)
	}
	for round := range 3 {
		for _, e := range entries[:200] {
			if ok, err := r.MayContain(e.key.UserKey); !ok || err != nil {
				t.Fatalf("round %d: MayContain(%q) = %v, %v", round, e.key.UserKey, ok, err)
			}
		}
		_, _, size := bc.Metrics()
		if want := int64(r.footer.filter.length) + cache.EntryOverhead; size != want {
			t.Fatalf("round %d: cache holds %d bytes after filter lookups, want the filter's %d", round, size, want)
		}
		it := r.NewIter(nil, nil)
		checkScan(t, it, entries)
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		n, err := r.NumDataBlocks()
		if err != nil || n < 10 {
			t.Fatalf("NumDataBlocks = %d, %v", n, err)
		}
		// Evicted, the blocks stay reachable through the reader's weak
		// pointers until the collector frees them.
		bc.EvictFile(7)
		if _, err := r.MayContain(entries[0].key.UserKey); err != nil {
			t.Fatal(err)
		}
		if _, _, size := bc.Metrics(); size != 0 {
			t.Fatalf("round %d: a use of an evicted filter cached it again", round)
		}
		runtime.GC()
	}
	// An iterator keeps its index when the cache drops it.
	it := r.NewIter(nil, nil)
	bc.EvictFile(7)
	checkScan(t, it, entries)
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	// Without a cache the reader keeps both, read once by Open.
	r2 := openTable(t, f, ReaderOptions{})
	defer r2.Close()
	if r2.index == nil || r2.filter == nil {
		t.Fatal("a reader without a cache does not hold its index and filter")
	}
	// A closed reader refuses to load them.
	r3 := openTable(t, f, ReaderOptions{Cache: bc, FileNum: 8})
	r3.Close()
	if _, err := r3.MayContain(entries[0].key.UserKey); !errors.Is(err, ErrClosed) {
		t.Fatalf("MayContain on a closed reader: %v", err)
	}
}

// TestScanIterNoFill checks that a scan iterator returns every entry, uses
// the blocks the cache holds, and adds none of those it reads.
func TestScanIterNoFill(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	entries := genEntries(rng, scaled(20000))
	for _, c := range compressions {
		t.Run(c.String(), func(t *testing.T) {
			f, _ := writeTable(t, entries, nil, WriterOptions{Compression: c})
			bc := cache.New(64 << 20)
			r := openTable(t, f, ReaderOptions{Cache: bc, FileNum: 42})
			defer r.Close()
			it := r.NewScanIter(nil, nil)
			checkScan(t, it, entries)
			it.Close()
			_, misses1, size1 := bc.Metrics()
			blocks, err := r.NumDataBlocks()
			if err != nil {
				t.Fatal(err)
			}
			// Only the index went into the cache: a second scan misses
			// every data block again.
			it = r.NewScanIter(nil, nil)
			checkScan(t, it, entries)
			it.Close()
			hits2, misses2, size2 := bc.Metrics()
			if size2 != size1 || misses2-misses1 < int64(blocks) {
				t.Fatalf("second scan: size %d -> %d, misses %d -> %d; want the same size and at least %d misses", size1, size2, misses1, misses2, blocks)
			}
			// Blocks a normal iterator cached are used from the cache.
			it = r.NewIter(nil, nil)
			checkScan(t, it, entries)
			it.Close()
			hits3, misses3, _ := bc.Metrics()
			it = r.NewScanIter(nil, nil)
			checkScan(t, it, entries)
			it.Close()
			hits4, misses4, _ := bc.Metrics()
			if misses4 != misses3 || hits4-hits3 < int64(blocks) {
				t.Fatalf("scan over a cached table: misses %d -> %d, hits %d -> %d (before: %d); want no misses", misses3, misses4, hits3, hits4, hits2)
			}
		})
	}
}
