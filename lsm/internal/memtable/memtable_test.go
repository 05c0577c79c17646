package memtable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

type entry struct {
	key   base.InternalKey
	value []byte
}

func cmpEntry(a, b entry) int { return base.CompareInternal(a.key, b.key) }

// genEntries returns n entries in random order over about n/5 user keys, with
// several versions per user key, every kind, unique sequence numbers and
// user keys of 0-24 bytes drawn from a small alphabet so that they share
// prefixes.
func genEntries(rng *rand.Rand, n int) []entry {
	seen := map[string]bool{}
	var users [][]byte
	for len(users) < max(n/5, 1) {
		k := make([]byte, rng.IntN(25))
		for i := range k {
			k[i] = "abcd\x00\xff"[rng.IntN(6)]
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			users = append(users, k)
		}
	}
	seqs := rng.Perm(n)
	es := make([]entry, n)
	for i := range es {
		v := make([]byte, rng.IntN(65))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		kind := base.Kind(rng.IntN(int(base.KindMax) + 1))
		es[i] = entry{
			key:   base.MakeInternalKey(users[rng.IntN(len(users))], uint64(seqs[i]+1), kind),
			value: v,
		}
	}
	return es
}

func arenaFor(es []entry) int {
	n := headSize
	for _, e := range es {
		n += EntrySize(len(e.key.UserKey), len(e.value))
	}
	return n
}

func fill(t testing.TB, es []entry) *Memtable {
	m := New(arenaFor(es))
	for _, e := range es {
		require.NoError(t, m.Add(e.key, e.value))
	}
	return m
}

func scanForward(it base.InternalIterator) []entry {
	var out []entry
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, entry{it.Key().Clone(), bytes.Clone(it.Value())})
	}
	return out
}

func scanBackward(it base.InternalIterator) []entry {
	var out []entry
	for ok := it.Last(); ok; ok = it.Prev() {
		out = append(out, entry{it.Key().Clone(), bytes.Clone(it.Value())})
	}
	return out
}

func requireEntries(t *testing.T, want, got []entry) {
	t.Helper()
	require.Equal(t, len(want), len(got), "entry count")
	for i := range want {
		// Check before calling require: formatting 100k messages is slow.
		if !sameEntry(want[i], got[i]) {
			require.Equal(t, want[i].key.String(), got[i].key.String(), "key %d", i)
			require.Equal(t, want[i].value, got[i].value, "value of %s", want[i].key)
		}
	}
}

func sameEntry(a, b entry) bool {
	return base.CompareInternal(a.key, b.key) == 0 && bytes.Equal(a.value, b.value)
}

// checkStructure verifies the skiplist invariants: every level sorted, every
// node at level i > 0 present at level 0, prev links mirroring level 0, and
// the arena accounting matching the documented layout.
func checkStructure(t *testing.T, m *Memtable) {
	t.Helper()
	a := m.arena
	height := map[uint32]int{}
	prev := uint32(headNode)
	for nd := a.next(headNode, 0); nd != nilNode; nd = a.next(nd, 0) {
		if a.prev(nd) != prev {
			require.Equal(t, prev, a.prev(nd), "prev link of node %d", nd)
		}
		height[nd] = 1
		prev = nd
	}
	require.Equal(t, m.Count(), len(height))
	for level := 1; level < MaxHeight; level++ {
		var last uint32
		for nd := a.next(headNode, level); nd != nilNode; nd = a.next(nd, level) {
			if height[nd] != level {
				require.Fail(t, "tower with a gap", "node %d at level %d not at level %d", nd, level, level-1)
			}
			height[nd]++
			if last != 0 && base.CompareInternal(a.key(last), a.key(nd)) >= 0 {
				require.Fail(t, "level out of order", "level %d: %s then %s", level, a.key(last), a.key(nd))
			}
			last = nd
		}
		if level >= int(m.height.Load()) {
			require.Zero(t, a.next(headNode, level), "link above list height")
		}
	}
	size := headSize
	for nd, h := range height {
		size += nodeSize(h, len(a.userKey(nd))) + len(a.value(nd))
	}
	require.Equal(t, size, m.Size(), "arena bytes used")
	require.Equal(t, len(a), m.Size()+m.Available())
}

func TestRandomModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	es := genEntries(rng, 100_000)
	m := fill(t, es)
	require.Equal(t, len(es), m.Count())
	require.False(t, m.Empty())
	checkStructure(t, m)

	model := slices.Clone(es)
	slices.SortFunc(model, cmpEntry)

	it := m.NewIter()
	defer it.Close()
	requireEntries(t, model, scanForward(it))
	back := scanBackward(it)
	slices.Reverse(back)
	requireEntries(t, model, back)

	// Probes: existing user keys, their immediate successors, random keys.
	probe := func() []byte {
		switch rng.IntN(3) {
		case 0:
			return model[rng.IntN(len(model))].key.UserKey
		case 1:
			return append(bytes.Clone(model[rng.IntN(len(model))].key.UserKey), 0)
		}
		k := make([]byte, rng.IntN(6))
		for i := range k {
			k[i] = "abcd\x00\xff"[rng.IntN(6)]
		}
		return k
	}
	for range 20_000 {
		k := probe()
		ge := sort.Search(len(model), func(i int) bool {
			return bytes.Compare(model[i].key.UserKey, k) >= 0
		})
		var pos int
		if rng.IntN(2) == 0 {
			ok := it.SeekGE(k)
			require.Equal(t, ge < len(model), ok, "SeekGE(%q)", k)
			pos = ge
		} else {
			ok := it.SeekLT(k)
			require.Equal(t, ge > 0, ok, "SeekLT(%q)", k)
			pos = ge - 1
		}
		// Walk a few steps either way from the seek position.
		for range 4 {
			if pos >= 0 && pos < len(model) && !sameEntry(model[pos], entry{it.Key(), it.Value()}) {
				require.Equal(t, model[pos].key.String(), it.Key().String())
				require.Equal(t, model[pos].value, it.Value())
			}
			if rng.IntN(2) == 0 {
				if pos >= len(model) {
					break // Next after the end stays there.
				}
				pos++
				require.Equal(t, pos < len(model), it.Next())
			} else {
				if pos < 0 {
					break // Prev before the start stays there.
				}
				pos--
				require.Equal(t, pos >= 0, it.Prev())
			}
		}
	}
}

// TestInsertOrders inserts in orders that exercise the splice kept from the
// previous Add: ascending, descending, and sorted runs of random length in
// random order, like the batches of an engine.
func TestInsertOrders(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	es := genEntries(rng, 20_000)
	sorted := slices.Clone(es)
	slices.SortFunc(sorted, cmpEntry)
	desc := slices.Clone(sorted)
	slices.Reverse(desc)
	runs := slices.Clone(es)
	for i := 0; i < len(runs); {
		n := min(1+rng.IntN(50), len(runs)-i)
		slices.SortFunc(runs[i:i+n], cmpEntry)
		i += n
	}
	for name, order := range map[string][]entry{"ascending": sorted, "descending": desc, "runs": runs} {
		t.Run(name, func(t *testing.T) {
			m := fill(t, order)
			checkStructure(t, m)
			it := m.NewIter()
			requireEntries(t, sorted, scanForward(it))
			back := scanBackward(it)
			slices.Reverse(back)
			requireEntries(t, sorted, back)
			// Re-adding any entry is a duplicate, whatever the splice.
			for range 100 {
				e := es[rng.IntN(len(es))]
				require.ErrorIs(t, m.Add(e.key, e.value), ErrDuplicate)
			}
			require.Equal(t, len(es), m.Count())
		})
	}
}

// TestSortedBatchesOverExisting adds sorted batches of new versions of
// keys the memtable already holds, mixed with new keys, as a full-text
// index appends to its posting lists: each Add's successor is the older
// version of its own key, and the finger search climbs from there.
func TestSortedBatchesOverExisting(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var users [][]byte
	for i := range 3000 {
		users = append(users, fmt.Appendf(nil, "u1\x00P%06d", i*7))
	}
	var all []entry
	seq := uint64(0)
	for range 40 {
		var batch []entry
		for range 1 + rng.IntN(400) {
			var k []byte
			if rng.IntN(4) == 0 {
				k = fmt.Appendf(nil, "u1\x00P%06d", rng.IntN(21000))
			} else {
				k = users[rng.IntN(len(users))]
			}
			seq++
			batch = append(batch, entry{base.MakeInternalKey(k, seq, base.Kind(rng.IntN(int(base.KindMax)+1))), []byte{byte(seq)}})
		}
		slices.SortFunc(batch, func(a, b entry) int { return bytes.Compare(a.key.UserKey, b.key.UserKey) })
		all = append(all, batch...)
	}
	m := fill(t, all)
	checkStructure(t, m)
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, cmpEntry)
	requireEntries(t, sorted, scanForward(m.NewIter()))
	// Every entry is a duplicate now, wherever the previous Add left the
	// splice.
	for range 200 {
		e := all[rng.IntN(len(all))]
		require.ErrorIs(t, m.Add(e.key, e.value), ErrDuplicate)
	}
	require.Equal(t, len(all), m.Count())
}

func TestIteratorEdges(t *testing.T) {
	m := New(1 << 10)
	require.True(t, m.Empty())
	it := m.NewIter()
	require.False(t, it.Next(), "Next on a new iterator over an empty memtable")
	require.False(t, it.First())
	require.False(t, it.Last())
	require.False(t, it.SeekGE(nil))
	require.False(t, it.SeekLT([]byte("z")))
	require.False(t, it.Prev())
	require.Equal(t, base.InternalKey{}, it.Key())
	require.Nil(t, it.Value())
	require.NoError(t, it.Error())
	require.NoError(t, it.Close())

	for i, k := range []string{"b", "a", "c"} {
		require.NoError(t, m.Add(base.MakeInternalKey([]byte(k), uint64(i+1), base.KindSet), []byte("v"+k)))
	}
	it = m.NewIter()
	require.True(t, it.Next(), "Next on a new iterator moves to the first entry")
	require.Equal(t, "a", string(it.Key().UserKey))
	require.False(t, it.Prev())
	require.True(t, it.Next(), "Next before the first entry moves to the first")
	require.Equal(t, "a", string(it.Key().UserKey))

	require.True(t, it.Last())
	require.False(t, it.Next())
	require.False(t, it.Next())
	require.True(t, it.Prev(), "Prev after the last entry moves to the last")
	require.Equal(t, "c", string(it.Key().UserKey))
	require.Equal(t, "vc", string(it.Value()))

	require.False(t, it.SeekGE([]byte("d")))
	require.True(t, it.Prev())
	require.Equal(t, "c", string(it.Key().UserKey))
	require.False(t, it.SeekLT([]byte("a")))
	require.True(t, it.Next())
	require.Equal(t, "a", string(it.Key().UserKey))

	// Key and Value are capped: appending must not overwrite the arena.
	k := it.Key().UserKey
	require.Equal(t, len(k), cap(k))
	_ = append(k, 'x')
	v := it.Value()
	require.Equal(t, len(v), cap(v))
	_ = append(v, 'x')
	require.True(t, it.Next())
	require.Equal(t, "b", string(it.Key().UserKey))
	require.NoError(t, it.Close())
}

func TestNewPanics(t *testing.T) {
	require.Panics(t, func() { New(headSize - 1) })
	require.NotPanics(t, func() { New(headSize) })
}

func TestDuplicate(t *testing.T) {
	m := New(1 << 10)
	k := base.MakeInternalKey([]byte("k"), 7, base.KindSet)
	require.NoError(t, m.Add(k, []byte("v1")))
	size := m.Size()
	require.ErrorIs(t, m.Add(k, []byte("v2")), ErrDuplicate)
	require.Equal(t, size, m.Size())
	require.Equal(t, 1, m.Count())
	// Other versions and kinds of the same user key are distinct entries.
	require.NoError(t, m.Add(base.MakeInternalKey([]byte("k"), 7, base.KindDelete), nil))
	require.NoError(t, m.Add(base.MakeInternalKey([]byte("k"), 8, base.KindSet), nil))
	require.Equal(t, 3, m.Count())
	checkStructure(t, m)
}

// TestFull fills small memtables with entries of random sizes until they
// refuse even tiny ones, checking that EntrySize is an upper bound, that a
// refused Add changes nothing, and that the memtable stays usable.
func TestFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		arena := headSize + rng.IntN(64<<10)
		m := New(arena)
		var model []entry
		fulls := 0
		for seq := uint64(1); fulls < 200; seq++ {
			k := make([]byte, rng.IntN(40))
			for i := range k {
				k[i] = byte(rng.Uint32())
			}
			v := make([]byte, rng.IntN(300))
			key := base.MakeInternalKey(k, seq, base.KindSet)

			before, count, avail := m.Size(), m.Count(), m.Available()
			require.Equal(t, arena, before+avail)
			fits := avail >= EntrySize(len(k), len(v))
			err := m.Add(key, v)
			if fits {
				require.NoError(t, err, "Add must succeed when Available >= EntrySize")
			}
			if err == nil {
				model = append(model, entry{key, v})
				delta := m.Size() - before
				require.Positive(t, delta)
				require.LessOrEqual(t, delta, EntrySize(len(k), len(v)), "EntrySize bound")
				continue
			}
			require.ErrorIs(t, err, ErrFull)
			fulls++
			require.Equal(t, before, m.Size(), "ErrFull changed Size")
			require.Equal(t, count, m.Count(), "ErrFull changed Count")
		}
		require.LessOrEqual(t, m.Size(), arena)
		if round%10 == 0 {
			checkStructure(t, m)
		}

		// Usable after ErrFull: whatever fits still goes in.
		if m.Available() >= EntrySize(0, 0) {
			key := base.MakeInternalKey(nil, 1<<40, base.KindDelete)
			require.NoError(t, m.Add(key, nil))
			model = append(model, entry{key, nil})
		}
		require.ErrorIs(t, m.Add(base.MakeInternalKey(nil, 1<<41, base.KindSet), make([]byte, arena)), ErrFull)
		slices.SortFunc(model, cmpEntry)
		requireEntries(t, model, scanForward(m.NewIter()))
		checkStructure(t, m)
	}
}

func TestRangeTombstones(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := New(1 << 10)
	require.Empty(t, m.RangeTombstones())

	var want []base.RangeTombstone
	var snapshots [][]base.RangeTombstone
	for seq := uint64(1); seq <= 200; seq++ {
		start := []byte(fmt.Sprintf("k%02d", rng.IntN(30)))
		end := append(bytes.Clone(start), 'z')
		tomb := base.RangeTombstone{Start: start, End: end, Seq: seq}
		m.AddRangeTombstone(tomb)
		want = append(want, base.RangeTombstone{Start: bytes.Clone(start), End: bytes.Clone(end), Seq: seq})
		// The memtable must have copied the keys.
		start[0], end[0] = '!', '!'
		got := m.RangeTombstones()
		snapshots = append(snapshots, got)
		require.Len(t, got, len(want))
	}
	require.True(t, slices.IsSortedFunc(m.RangeTombstones(), func(a, b base.RangeTombstone) int {
		if c := bytes.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return -cmpU64(a.Seq, b.Seq)
	}), "tombstones sorted by Start, then Seq descending")
	slices.SortFunc(want, func(a, b base.RangeTombstone) int {
		if c := bytes.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return -cmpU64(a.Seq, b.Seq)
	})
	require.Equal(t, want, m.RangeTombstones())
	// Earlier results are unchanged by later additions (copy on write).
	for i, s := range snapshots {
		require.Len(t, s, i+1)
		for _, tomb := range s {
			require.LessOrEqual(t, tomb.Seq, uint64(i+1))
			require.NotEqual(t, byte('!'), tomb.Start[0])
		}
	}
	require.False(t, m.Empty(), "a memtable with range tombstones is not empty")
	require.Zero(t, m.Count())
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestConcurrentReaders runs readers that scan forward, scan backward and
// seek while one writer inserts. Every scan must be sorted, see only entries
// whose Add had started, and see every entry whose Add had returned before
// the scan began.
func TestConcurrentReaders(t *testing.T) {
	n := 40_000
	if testing.Short() {
		n = 5_000
	}
	rng := rand.New(rand.NewPCG(7, 8))
	es := genEntries(rng, n)
	// Sorted runs, like batches, so that Add takes both the search and the
	// kept-splice paths.
	for i := 0; i < len(es); {
		k := min(1+rng.IntN(20), len(es)-i)
		slices.SortFunc(es[i:i+k], cmpEntry)
		i += k
	}
	// Each value is the entry's index, so a reader can tell what it saw.
	for i := range es {
		es[i].value = binary.LittleEndian.AppendUint32(nil, uint32(i))
	}
	m := New(arenaFor(es))

	var done atomic.Int64 // entries whose Add has returned
	var wg sync.WaitGroup
	const readers = 4
	scans := make([]int, readers)
	for r := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			seen := make([]bool, n)
			for scan := 0; ; scan++ {
				before := int(done.Load())
				if before == n && scan > 0 && scans[r] > 2 {
					return
				}
				clear(seen)
				it := m.NewIter()
				forward := scan%2 == 0
				var ok bool
				if forward {
					ok = it.First()
				} else {
					ok = it.Last()
				}
				var prev base.InternalKey
				nseen := 0
				for ; ok; nseen++ {
					k := it.Key()
					idx := int(binary.LittleEndian.Uint32(it.Value()))
					after := int(done.Load())
					if idx >= n || idx > after || base.CompareInternal(k, es[idx].key) != 0 {
						t.Errorf("scan saw %s (entry %d) with only %d entries added", k, idx, after)
						return
					}
					if nseen > 0 {
						c := base.CompareInternal(prev, k)
						if (forward && c >= 0) || (!forward && c <= 0) {
							t.Errorf("scan out of order: %s then %s", prev, k)
							return
						}
					}
					if seen[idx] {
						t.Errorf("scan saw %s twice", k)
						return
					}
					seen[idx] = true
					prev = k
					if forward {
						ok = it.Next()
					} else {
						ok = it.Prev()
					}
				}
				for i := range before {
					if !seen[i] {
						t.Errorf("scan missed %s, added before the scan began", es[i].key)
						return
					}
				}
				// A seek lands on an entry no later than every entry added
				// before it that qualifies.
				probe := es[rng.IntN(n)].key.UserKey
				before = int(done.Load())
				ok = it.SeekGE(probe)
				for i := range before {
					uk := es[i].key.UserKey
					if bytes.Compare(uk, probe) >= 0 &&
						(!ok || base.CompareInternal(es[i].key, it.Key()) < 0) {
						t.Errorf("SeekGE(%q) = %v %s skipped %s", probe, ok, it.Key(), es[i].key)
						return
					}
				}
				if ok && bytes.Compare(it.Key().UserKey, probe) < 0 {
					t.Errorf("SeekGE(%q) = %s", probe, it.Key())
					return
				}
				it.Close()
				scans[r]++
			}
		})
	}
	for i, e := range es {
		require.NoError(t, m.Add(e.key, e.value))
		done.Store(int64(i + 1))
	}
	wg.Wait()
	checkStructure(t, m)
	t.Logf("scans per reader: %v", scans)
}

const (
	benchKeyLen   = 16
	benchValueLen = 100
)

var benchArenas = []int{4 << 20, 64 << 20}

// benchKeys returns a key generator: random 16-byte keys, or big-endian
// counters starting at a random offset.
func benchKeys(order string, seed uint64) func([]byte) {
	rng := rand.New(rand.NewPCG(seed, seed))
	if order == "sequential" {
		hi, lo := rng.Uint64(), uint64(0)
		return func(buf []byte) {
			binary.BigEndian.PutUint64(buf, hi)
			binary.BigEndian.PutUint64(buf[8:], lo)
			lo++
		}
	}
	return func(buf []byte) {
		binary.BigEndian.PutUint64(buf, rng.Uint64())
		binary.BigEndian.PutUint64(buf[8:], rng.Uint64())
	}
}

// BenchmarkAdd inserts 16-byte keys with 100-byte values, starting a new
// memtable when one is full (4 MiB holds about 28k entries, 64 MiB about
// 450k). The time includes the page faults of first touching each arena
// that New maps, but not mapping it. Most memtables after the first few get
// the arena of one the benchmark dropped, already faulted in (see
// arena.go).
func BenchmarkAdd(b *testing.B) {
	for _, order := range []string{"random", "sequential"} {
		for _, size := range benchArenas {
			b.Run(fmt.Sprintf("%s/arena=%dMiB", order, size>>20), func(b *testing.B) {
				next := benchKeys(order, 1)
				key := make([]byte, benchKeyLen)
				value := make([]byte, benchValueLen)
				m := New(size)
				b.ReportAllocs()
				b.SetBytes(benchKeyLen + benchValueLen)
				for i := 0; b.Loop(); i++ {
					next(key)
					ikey := base.MakeInternalKey(key, uint64(i+1), base.KindSet)
					err := m.Add(ikey, value)
					if errors.Is(err, ErrFull) {
						b.StopTimer()
						m = New(size)
						b.StartTimer()
						err = m.Add(ikey, value)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchKey writes the i-th key of benchMemtable: 16 random-looking bytes
// computed from i, so that benchmarks can pick existing keys without reading
// a list of them.
func benchKey(buf []byte, i uint64) {
	binary.BigEndian.PutUint64(buf, mix64(i))
	binary.BigEndian.PutUint64(buf[8:], mix64(^i))
}

// mix64 is the splitmix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// benchMemtable returns a full memtable of random 16-byte keys (see
// benchKey) with 100-byte values, and the number of keys.
func benchMemtable(size int) (*Memtable, int) {
	m := New(size)
	key := make([]byte, benchKeyLen)
	value := make([]byte, benchValueLen)
	for i := uint64(0); ; i++ {
		benchKey(key, i)
		if err := m.Add(base.MakeInternalKey(key, i+1, base.KindSet), value); err != nil {
			return m, int(i)
		}
	}
}

// BenchmarkSeekGE seeks to random existing keys of a full memtable.
func BenchmarkSeekGE(b *testing.B) {
	for _, size := range benchArenas {
		b.Run(fmt.Sprintf("arena=%dMiB", size>>20), func(b *testing.B) {
			m, n := benchMemtable(size)
			rng := rand.New(rand.NewPCG(3, 3))
			key := make([]byte, benchKeyLen)
			it := m.NewIter()
			b.ReportAllocs()
			for b.Loop() {
				benchKey(key, uint64(rng.IntN(n)))
				if !it.SeekGE(key) || !bytes.Equal(it.Key().UserKey, key) {
					b.Fatal("SeekGE missed an existing key")
				}
			}
		})
	}
}

// BenchmarkIterNext steps through a full memtable of randomly inserted keys,
// reading each key and value, and wrapping around at the end.
func BenchmarkIterNext(b *testing.B) {
	for _, size := range benchArenas {
		b.Run(fmt.Sprintf("arena=%dMiB", size>>20), func(b *testing.B) {
			m, _ := benchMemtable(size)
			it := m.NewIter()
			it.First()
			b.ReportAllocs()
			for b.Loop() {
				if !it.Next() {
					it.First()
				}
				_, _ = it.Key(), it.Value()
			}
		})
	}
}

// BenchmarkIterPrev is BenchmarkIterNext backward.
func BenchmarkIterPrev(b *testing.B) {
	for _, size := range benchArenas {
		b.Run(fmt.Sprintf("arena=%dMiB", size>>20), func(b *testing.B) {
			m, _ := benchMemtable(size)
			it := m.NewIter()
			it.Last()
			b.ReportAllocs()
			for b.Loop() {
				if !it.Prev() {
					it.Last()
				}
				_, _ = it.Key(), it.Value()
			}
		})
	}
}

// BenchmarkNewIter measures creating and closing an iterator.
func BenchmarkNewIter(b *testing.B) {
	m := New(1 << 10)
	b.ReportAllocs()
	for b.Loop() {
		it := m.NewIter()
		_ = it.Close()
	}
}

// BenchmarkAddSortedBatches inserts sorted batches of 1,000 16-byte keys
// with 32-byte values, as the engine applies a batch written in key order;
// one op is one batch, ns/key is the time per Add and cpu-ns/key the
// process's CPU time per Add. "existing": each
// batch holds new versions of keys already in the memtable (the posting
// lists of a full-text index, say), so that the previous insert's successor
// is the key's own older version and the next key lies past it. "fresh":
// each batch holds new random keys, which interleave with the memtable's.
// The memtable starts with 64k keys and is replaced once full.
func BenchmarkAddSortedBatches(b *testing.B) {
	const (
		batchLen = 1000
		batches  = 64
		users    = 64 << 10
		valueLen = 32
	)
	for _, kind := range []string{"existing", "fresh"} {
		b.Run(kind, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 5))
			value := make([]byte, valueLen)
			keys := make([][]byte, users)
			for i := range keys {
				keys[i] = make([]byte, benchKeyLen)
				benchKey(keys[i], uint64(i))
			}
			var seq uint64
			newMem := func() *Memtable {
				m := New(64 << 20)
				for _, k := range keys {
					seq++
					if err := m.Add(base.MakeInternalKey(k, seq, base.KindSet), value); err != nil {
						b.Fatal(err)
					}
				}
				return m
			}
			all := make([][][]byte, batches)
			for i := range all {
				batch := make([][]byte, batchLen)
				for j := range batch {
					if kind == "existing" {
						batch[j] = keys[rng.IntN(users)]
					} else {
						batch[j] = make([]byte, benchKeyLen)
						binary.BigEndian.PutUint64(batch[j], rng.Uint64())
						binary.BigEndian.PutUint64(batch[j][8:], rng.Uint64())
					}
				}
				slices.SortFunc(batch, bytes.Compare)
				all[i] = batch
			}
			m := newMem()
			b.ReportAllocs()
			n := 0
			var cpu int64
			for b.Loop() {
				if m.Available() < batchLen*EntrySize(benchKeyLen, valueLen) {
					b.StopTimer()
					m = newMem()
					b.StartTimer()
				}
				cpu -= cpuTime()
				for _, k := range all[n%batches] {
					seq++
					if err := m.Add(base.MakeInternalKey(k, seq, base.KindMerge), value); err != nil {
						b.Fatal(err)
					}
				}
				cpu += cpuTime()
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batchLen), "ns/key")
			b.ReportMetric(float64(cpu)/float64(n*batchLen), "cpu-ns/key")
		})
	}
}
