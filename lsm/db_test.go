package lsm_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// openMem opens a DB in "db" on fs (a new vfs.NewMem() if nil) with opts
// (nil: small test defaults) and closes it when the test ends.
func openMem(t *testing.T, fs vfs.FS, opts *lsm.Options) (*lsm.DB, vfs.FS) {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	var o lsm.Options
	if opts != nil {
		o = *opts
	} else {
		o = lsm.Options{MemTableSize: 64 << 10, BlockSize: 512, TargetFileSize: 32 << 10, LBaseMaxBytes: 64 << 10}
	}
	o.FS = fs
	db, err := lsm.Open("db", &o)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, fs
}

func mustGet(t *testing.T, r interface{ Get([]byte) ([]byte, error) }, key string) string {
	t.Helper()
	v, err := r.Get([]byte(key))
	require.NoError(t, err, "Get(%q)", key)
	return string(v)
}

func requireNotFound(t *testing.T, r interface{ Get([]byte) ([]byte, error) }, key string) {
	t.Helper()
	v, err := r.Get([]byte(key))
	require.ErrorIs(t, err, lsm.ErrNotFound, "Get(%q) = %q", key, v)
	require.Nil(t, v)
}

// scan returns a function that drains an iterator (as returned by NewIter)
// into "key=value" strings, in order: scan(t)(db.NewIter(nil)).
func scan(t *testing.T) func(*lsm.Iterator, error) []string {
	return func(it *lsm.Iterator, err error) []string {
		t.Helper()
		require.NoError(t, err)
		var out []string
		for ok := it.First(); ok; ok = it.Next() {
			out = append(out, string(it.Key())+"="+string(it.Value()))
		}
		require.NoError(t, it.Close())
		return out
	}
}

// keysOf is scan for keys only.
func keysOf(t *testing.T) func(*lsm.Iterator, error) []string {
	return func(it *lsm.Iterator, err error) []string {
		t.Helper()
		require.NoError(t, err)
		var out []string
		for ok := it.First(); ok; ok = it.Next() {
			out = append(out, string(it.Key()))
		}
		require.NoError(t, it.Close())
		return out
	}
}

func TestSetGetDelete(t *testing.T) {
	db, _ := openMem(t, nil, nil)
	requireNotFound(t, db, "a")
	require.NoError(t, db.Set([]byte("a"), []byte("1"), nil))
	require.NoError(t, db.Set([]byte("b"), []byte(""), lsm.Sync))
	assert.Equal(t, "1", mustGet(t, db, "a"))
	v, err := db.Get([]byte("b"))
	require.NoError(t, err, "an empty value is a value")
	assert.Empty(t, v)

	// Get returns a copy: changing it changes nothing stored.
	v, err = db.Get([]byte("a"))
	require.NoError(t, err)
	v[0] = 'X'
	assert.Equal(t, "1", mustGet(t, db, "a"))
	// Set copies its arguments.
	k, val := []byte("c"), []byte("3")
	require.NoError(t, db.Set(k, val, nil))
	k[0], val[0] = 'z', 'z'
	assert.Equal(t, "3", mustGet(t, db, "c"))
	requireNotFound(t, db, "z")

	require.NoError(t, db.Delete([]byte("a"), nil))
	requireNotFound(t, db, "a")
	require.NoError(t, db.Delete([]byte("never-written"), nil), "deleting a missing key is not an error")
	assert.Equal(t, []string{"b=", "c=3"}, scan(t)(db.NewIter(nil)))
}

func TestOverwrite(t *testing.T) {
	db, _ := openMem(t, nil, nil)
	k := []byte("k")
	for i := range 10 {
		require.NoError(t, db.Set(k, []byte(strconv.Itoa(i)), nil))
		if i%3 == 0 {
			require.NoError(t, db.Flush())
		}
		assert.Equal(t, strconv.Itoa(i), mustGet(t, db, "k"))
	}
	require.NoError(t, db.Compact(nil, nil))
	assert.Equal(t, "9", mustGet(t, db, "k"))
	assert.Equal(t, []string{"k=9"}, scan(t)(db.NewIter(nil)), "only the newest version is visible")
	require.NoError(t, db.Delete(k, nil))
	require.NoError(t, db.Flush())
	requireNotFound(t, db, "k")
	require.NoError(t, db.Set(k, []byte("again"), nil))
	assert.Equal(t, "again", mustGet(t, db, "k"), "a key can be written again after a deletion")
}

func TestDeleteRange(t *testing.T) {
	key := func(i int) string { return fmt.Sprintf("k%03d", i) }
	want := func(deleted func(i int) bool) []string {
		var out []string
		for i := range 100 {
			if !deleted(i) {
				out = append(out, key(i))
			}
		}
		return out
	}
	db, fs := openMem(t, nil, nil)
	for i := range 100 {
		require.NoError(t, db.Set([]byte(key(i)), []byte("v"), nil))
	}
	require.NoError(t, db.Flush()) // the keys are in a table
	require.NoError(t, db.DeleteRange([]byte(key(10)), []byte(key(20)), nil))
	// The tombstone is in the memtable and covers keys in a table.
	in1 := func(i int) bool { return i >= 10 && i < 20 }
	check := func(deleted func(int) bool, when string) {
		t.Helper()
		assert.Equal(t, want(deleted), keysOf(t)(db.NewIter(nil)), when)
		for i := range 100 {
			_, err := db.Get([]byte(key(i)))
			if deleted(i) {
				assert.ErrorIs(t, err, lsm.ErrNotFound, "%s: Get(%q)", when, key(i))
			} else {
				assert.NoError(t, err, "%s: Get(%q)", when, key(i))
			}
		}
	}
	check(in1, "tombstone in the memtable")
	require.NoError(t, db.Flush())
	check(in1, "tombstone in a level-0 table")

	// A tombstone between keys of a table, and one with keys written after
	// it, in the same memtable.
	require.NoError(t, db.DeleteRange([]byte("k049x"), []byte("k060"), nil))
	require.NoError(t, db.Set([]byte(key(55)), []byte("new"), nil))
	in2 := func(i int) bool { return in1(i) || (i >= 50 && i < 60 && i != 55) }
	check(in2, "second tombstone in the memtable")
	assert.Equal(t, "new", mustGet(t, db, key(55)))
	require.NoError(t, db.Compact(nil, nil))
	check(in2, "after Compact")
	assert.Equal(t, "new", mustGet(t, db, key(55)))

	// A range tombstone over a range with nothing in it, and one that
	// covers everything.
	require.NoError(t, db.DeleteRange([]byte("a"), []byte("b"), nil))
	check(in2, "empty range deleted")
	require.NoError(t, db.Close())
	db, _ = openMem(t, fs, nil)
	check(in2, "after reopen")
	require.NoError(t, db.DeleteRange([]byte("k"), []byte("l"), nil))
	check(func(int) bool { return true }, "everything deleted")
	require.NoError(t, db.Compact(nil, nil))
	check(func(int) bool { return true }, "everything deleted, compacted")
	m := db.Metrics()
	for l, lm := range m.Levels {
		// At the bottom, tombstones that no snapshot needs are dropped with
		// what they delete.
		assert.Zero(t, lm.NumFiles, "level %d holds tables after everything was deleted and compacted", l)
	}

	require.Error(t, db.DeleteRange([]byte("b"), []byte("a"), nil), "an inverted range is refused")
	require.Error(t, db.DeleteRange([]byte("a"), []byte("a"), nil), "an empty range is refused")
}

func TestMergeDefaultMerger(t *testing.T) {
	db, fs := openMem(t, nil, nil)
	k := []byte("k")
	require.NoError(t, db.Merge(k, []byte("a"), nil))
	assert.Equal(t, "a", mustGet(t, db, "k"), "a first operand with no value below is the value")
	require.NoError(t, db.Merge(k, []byte("b"), nil))
	require.NoError(t, db.Flush())
	require.NoError(t, db.Merge(k, []byte("c"), nil))
	assert.Equal(t, "abc", mustGet(t, db, "k"), "operands across a flush")
	require.NoError(t, db.Compact(nil, nil))
	require.NoError(t, db.Merge(k, []byte("d"), nil))
	assert.Equal(t, "abcd", mustGet(t, db, "k"), "operands across a compaction")
	require.NoError(t, db.Set(k, []byte("S"), nil))
	require.NoError(t, db.Merge(k, []byte("e"), nil))
	require.NoError(t, db.Flush())
	require.NoError(t, db.Merge(k, []byte("f"), nil))
	assert.Equal(t, "Sef", mustGet(t, db, "k"), "operands fold onto a Set")
	require.NoError(t, db.Compact(nil, nil))
	assert.Equal(t, "Sef", mustGet(t, db, "k"))
	assert.Equal(t, []string{"k=Sef"}, scan(t)(db.NewIter(nil)))
	require.NoError(t, db.Close())
	db, _ = openMem(t, fs, nil)
	assert.Equal(t, "Sef", mustGet(t, db, "k"))
}

// counterMerger adds little-endian int64 counters.
var counterMerger = &lsm.Merger{
	Name: "test.counter",
	Merge: func(key, older, newer []byte) ([]byte, error) {
		if len(older) != 8 || len(newer) != 8 {
			return nil, fmt.Errorf("counter %q: operand is not 8 bytes", key)
		}
		return binary.LittleEndian.AppendUint64(nil, binary.LittleEndian.Uint64(older)+binary.LittleEndian.Uint64(newer)), nil
	},
}

func counter(n int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(n)) }

func TestMergeCustomMerger(t *testing.T) {
	opts := &lsm.Options{MemTableSize: 32 << 10, L0CompactionThreshold: 2, Merger: counterMerger}
	db, fs := openMem(t, nil, opts)
	var want [20]int64
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 3000 {
		k := rng.IntN(20)
		d := rng.Int64N(100) - 30
		require.NoError(t, db.Merge([]byte(fmt.Sprintf("c%02d", k)), counter(d), nil))
		want[k] += d
		if i%700 == 0 {
			require.NoError(t, db.Flush())
		}
		if i == 1500 {
			require.NoError(t, db.Compact(nil, nil))
		}
	}
	check := func(when string) {
		t.Helper()
		for k, w := range want {
			v := mustGet(t, db, fmt.Sprintf("c%02d", k))
			require.Len(t, v, 8, when)
			assert.Equal(t, w, int64(binary.LittleEndian.Uint64([]byte(v))), "%s: counter %d", when, k)
		}
	}
	check("before compaction")
	require.NoError(t, db.Compact(nil, nil))
	check("after compaction")
	assert.Positive(t, db.Metrics().Flushes)
	require.NoError(t, db.Close())

	// The merger is part of the DB: another one is refused.
	o := *opts
	o.FS = fs
	o.Merger = lsm.DefaultMerger
	_, err := lsm.Open("db", &o)
	require.Error(t, err, "opening a DB with another merger than it was written with")
	db, _ = openMem(t, fs, opts)
	check("after reopen")

	// A merger error fails the read, and is not ErrNotFound.
	require.NoError(t, db.Merge([]byte("c00"), []byte("short"), nil))
	_, err = db.Get([]byte("c00"))
	require.Error(t, err)
	require.NotErrorIs(t, err, lsm.ErrNotFound)
}

func TestMergeOverDelete(t *testing.T) {
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("flush=%v", flush), func(t *testing.T) {
			db, _ := openMem(t, nil, nil)
			step := func() {
				if flush {
					require.NoError(t, db.Flush())
				}
			}
			require.NoError(t, db.Set([]byte("k"), []byte("base"), nil))
			require.NoError(t, db.Merge([]byte("k"), []byte("+1"), nil))
			step()
			require.NoError(t, db.Delete([]byte("k"), nil))
			step()
			require.NoError(t, db.Merge([]byte("k"), []byte("+2"), nil))
			assert.Equal(t, "+2", mustGet(t, db, "k"), "operands over a deletion fold with no base")
			step()
			require.NoError(t, db.DeleteRange([]byte("a"), []byte("z"), nil))
			step()
			requireNotFound(t, db, "k")
			require.NoError(t, db.Merge([]byte("k"), []byte("+3"), nil))
			require.NoError(t, db.Merge([]byte("k"), []byte("+4"), nil))
			assert.Equal(t, "+3+4", mustGet(t, db, "k"), "operands over a range deletion fold with no base")
			require.NoError(t, db.Compact(nil, nil))
			assert.Equal(t, "+3+4", mustGet(t, db, "k"))
			assert.Equal(t, []string{"k=+3+4"}, scan(t)(db.NewIter(nil)))
		})
	}
}

func TestIteratorBounds(t *testing.T) {
	db, _ := openMem(t, nil, nil)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		require.NoError(t, db.Set([]byte(k), []byte(k), nil))
	}
	require.NoError(t, db.Flush())
	require.NoError(t, db.Set([]byte("c"), []byte("C"), nil))
	require.NoError(t, db.Delete([]byte("d"), nil))

	it, err := db.NewIter(&lsm.IterOptions{LowerBound: []byte("b"), UpperBound: []byte("e")})
	require.NoError(t, err)
	defer it.Close()
	require.True(t, it.First())
	assert.Equal(t, "b", string(it.Key()))
	require.True(t, it.Next())
	assert.Equal(t, "c", string(it.Key()))
	assert.Equal(t, "C", string(it.Value()))
	assert.False(t, it.Next(), "d is deleted and e is the upper bound")
	assert.False(t, it.Valid())
	require.True(t, it.Last())
	assert.Equal(t, "c", string(it.Key()))
	require.True(t, it.Prev())
	assert.Equal(t, "b", string(it.Key()))
	assert.False(t, it.Prev(), "a is below the lower bound")

	require.True(t, it.SeekGE([]byte("a")), "SeekGE below the lower bound starts at the bound")
	assert.Equal(t, "b", string(it.Key()))
	require.True(t, it.SeekGE([]byte("bb")))
	assert.Equal(t, "c", string(it.Key()))
	assert.False(t, it.SeekGE([]byte("e")))
	require.True(t, it.SeekLT([]byte("z")), "SeekLT above the upper bound starts below the bound")
	assert.Equal(t, "c", string(it.Key()))
	require.True(t, it.SeekLT([]byte("c")))
	assert.Equal(t, "b", string(it.Key()))
	assert.False(t, it.SeekLT([]byte("b")))

	// Direction changes.
	require.True(t, it.SeekGE([]byte("c")))
	require.True(t, it.Prev())
	assert.Equal(t, "b", string(it.Key()))
	require.True(t, it.Next())
	assert.Equal(t, "c", string(it.Key()))
	require.NoError(t, it.Close())

	// Empty ranges.
	assert.Empty(t, keysOf(t)(db.NewIter(&lsm.IterOptions{LowerBound: []byte("c"), UpperBound: []byte("c")})))
	assert.Empty(t, keysOf(t)(db.NewIter(&lsm.IterOptions{LowerBound: []byte("x")})))
	assert.Empty(t, keysOf(t)(db.NewIter(&lsm.IterOptions{UpperBound: []byte("a")})))
	assert.Equal(t, []string{"a", "b", "c", "e"}, keysOf(t)(db.NewIter(nil)))

	// The empty key is a key, not "no key". Regression: the iterator once
	// took an empty SeekLT target or upper bound for none
	// (append([]byte(nil), target...) is nil) and moved to the last key of
	// the DB, past the upper bound.
	it, err = db.NewIter(nil)
	require.NoError(t, err)
	ok := it.SeekLT([]byte{})
	assert.False(t, ok, "SeekLT(\"\") found %q; no key is below the empty key", it.Key())
	require.NoError(t, it.Close())
	it, err = db.NewIter(&lsm.IterOptions{UpperBound: []byte{}})
	require.NoError(t, err)
	ok = it.Last()
	assert.False(t, ok, "Last() with UpperBound \"\" found %q", it.Key())
	require.NoError(t, it.Close())

	// The same bug made a reverse scan over a DB holding the empty key
	// endless: Prev from "" landed on the last key again.
	require.NoError(t, db.Set([]byte{}, []byte("empty key"), nil))
	assert.Equal(t, []string{"", "a", "b", "c", "e"}, keysOf(t)(db.NewIter(nil)))
	it, err = db.NewIter(nil)
	require.NoError(t, err)
	var back []string
	for ok := it.Last(); ok && len(back) < 10; ok = it.Prev() {
		back = append(back, string(it.Key()))
	}
	require.NoError(t, it.Close())
	assert.Equal(t, []string{"e", "c", "b", "a", ""}, back, "reverse scan with the empty key")
}

func TestPrefixUpperBound(t *testing.T) {
	for _, c := range []struct{ prefix, want []byte }{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte("a"), []byte("b")},
		{[]byte("ab"), []byte("ac")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte("a\xff\xff"), []byte("b")},
		{[]byte("\xff"), nil},
		{[]byte("\xff\xff"), nil},
		{[]byte("a\x00"), []byte("a\x01")},
		{[]byte("\xfe\xff"), []byte("\xff")},
	} {
		assert.Equal(t, c.want, lsm.PrefixUpperBound(c.prefix), "PrefixUpperBound(%q)", c.prefix)
	}
	// The argument is not modified.
	p := []byte("a\xff")
	lsm.PrefixUpperBound(p)
	assert.Equal(t, []byte("a\xff"), p)
}

func TestPrefixIter(t *testing.T) {
	db, _ := openMem(t, nil, nil)
	keys := []string{"a", "user/1", "user/1/a", "user/1/b", "user/10", "user/2", "user0", "\xfe", "\xff", "\xff\x00", "\xff\xff\xff"}
	for _, k := range keys {
		require.NoError(t, db.Set([]byte(k), nil, nil))
	}
	require.NoError(t, db.Flush())
	require.NoError(t, db.Set([]byte("user/1/c"), nil, nil))
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"user/1", []string{"user/1", "user/1/a", "user/1/b", "user/1/c", "user/10"}},
		{"user/1/", []string{"user/1/a", "user/1/b", "user/1/c"}},
		{"user/", []string{"user/1", "user/1/a", "user/1/b", "user/1/c", "user/10", "user/2"}},
		{"user/3", nil},
		{"\xff", []string{"\xff", "\xff\x00", "\xff\xff\xff"}},
		{"\xff\xff", []string{"\xff\xff\xff"}},
		{"", []string{"a", "user/1", "user/1/a", "user/1/b", "user/1/c", "user/10", "user/2", "user0", "\xfe", "\xff", "\xff\x00", "\xff\xff\xff"}},
	} {
		got := keysOf(t)(db.NewPrefixIter([]byte(c.prefix)))
		assert.Equal(t, c.want, got, "prefix %q forward", c.prefix)
		it, err := db.NewPrefixIter([]byte(c.prefix))
		require.NoError(t, err)
		var back []string
		for ok := it.Last(); ok; ok = it.Prev() {
			back = append(back, string(it.Key()))
		}
		require.NoError(t, it.Close())
		slices.Reverse(back)
		assert.Equal(t, c.want, back, "prefix %q backward", c.prefix)
	}
}

func TestSnapshot(t *testing.T) {
	db, fs := openMem(t, nil, &lsm.Options{MemTableSize: 32 << 10, L0CompactionThreshold: 2})
	require.NoError(t, db.Set([]byte("a"), []byte("a1"), nil))
	require.NoError(t, db.Set([]byte("b"), []byte("b1"), nil))
	require.NoError(t, db.Set([]byte("c"), []byte("c1"), nil))
	snap := db.NewSnapshot()
	defer snap.Close()
	require.NoError(t, db.Set([]byte("a"), []byte("a2"), nil))
	require.NoError(t, db.Delete([]byte("b"), nil))
	require.NoError(t, db.DeleteRange([]byte("c"), []byte("d"), nil))
	require.NoError(t, db.Set([]byte("d"), []byte("d2"), nil))

	check := func(when string) {
		t.Helper()
		assert.Equal(t, "a1", mustGet(t, snap, "a"), when)
		assert.Equal(t, "b1", mustGet(t, snap, "b"), when)
		assert.Equal(t, "c1", mustGet(t, snap, "c"), when)
		requireNotFound(t, snap, "d")
		assert.Equal(t, []string{"a=a1", "b=b1", "c=c1"}, scan(t)(snap.NewIter(nil)), when)
		assert.Equal(t, []string{"a=a2", "d=d2"}, scan(t)(db.NewIter(nil)), when)
	}
	check("memtable")
	require.NoError(t, db.Flush())
	check("after flush")
	// Push the overwritten versions through compactions: the snapshot keeps
	// them alive.
	for i := range 5 {
		require.NoError(t, db.Set([]byte("a"), []byte(fmt.Sprintf("a%d", i+3)), nil))
		require.NoError(t, db.Flush())
	}
	require.NoError(t, db.Set([]byte("a"), []byte("a2"), nil))
	require.NoError(t, db.Compact(nil, nil))
	check("after compaction")
	require.NoError(t, db.Compact(nil, nil))
	check("after a second compaction")
	assert.Equal(t, 1, db.Metrics().Snapshots)

	require.NoError(t, snap.Close())
	require.NoError(t, snap.Close(), "closing a snapshot twice is allowed")
	_, err := snap.Get([]byte("a"))
	require.ErrorIs(t, err, lsm.ErrClosed)
	_, err = snap.NewIter(nil)
	require.ErrorIs(t, err, lsm.ErrClosed)
	assert.Equal(t, 0, db.Metrics().Snapshots)
	require.NoError(t, db.Compact(nil, nil))
	assert.Equal(t, []string{"a=a2", "d=d2"}, scan(t)(db.NewIter(nil)))

	// A snapshot of a DB that is closed is closed.
	snap2 := db.NewSnapshot()
	require.NoError(t, snap2.Close())
	require.NoError(t, db.Close())
	db, _ = openMem(t, fs, nil)
	assert.Equal(t, "a2", mustGet(t, db, "a"))
}

func TestCloseIdempotent(t *testing.T) {
	db, fs := openMem(t, nil, nil)
	require.NoError(t, db.Set([]byte("k"), []byte("v"), nil))
	b := db.NewBatch()
	b.Set([]byte("x"), []byte("y"))
	snap := db.NewSnapshot()
	require.NoError(t, snap.Close())
	require.NoError(t, db.Close())
	require.NoError(t, db.Close(), "Close is idempotent")

	_, err := db.Get([]byte("k"))
	assert.ErrorIs(t, err, lsm.ErrClosed, "Get")
	assert.ErrorIs(t, db.Set([]byte("k"), nil, nil), lsm.ErrClosed, "Set")
	assert.ErrorIs(t, db.Delete([]byte("k"), nil), lsm.ErrClosed, "Delete")
	assert.ErrorIs(t, db.DeleteRange([]byte("a"), []byte("b"), nil), lsm.ErrClosed, "DeleteRange")
	assert.ErrorIs(t, db.Merge([]byte("k"), nil, nil), lsm.ErrClosed, "Merge")
	assert.ErrorIs(t, b.Commit(nil), lsm.ErrClosed, "Batch.Commit")
	_, err = db.NewIter(nil)
	assert.ErrorIs(t, err, lsm.ErrClosed, "NewIter")
	_, err = db.NewPrefixIter([]byte("k"))
	assert.ErrorIs(t, err, lsm.ErrClosed, "NewPrefixIter")
	assert.ErrorIs(t, db.Flush(), lsm.ErrClosed, "Flush")
	assert.ErrorIs(t, db.Compact(nil, nil), lsm.ErrClosed, "Compact")
	_, err = snap.Get([]byte("k"))
	assert.ErrorIs(t, err, lsm.ErrClosed, "Snapshot.Get")

	// The directory lock is released.
	db2, _ := openMem(t, fs, nil)
	assert.Equal(t, "v", mustGet(t, db2, "k"))
}

func TestOpenLocked(t *testing.T) {
	db, fs := openMem(t, nil, nil)
	_, err := lsm.Open("db", &lsm.Options{FS: fs})
	require.ErrorIs(t, err, vfs.ErrLocked, "a second Open of an open DB")
	require.NoError(t, db.Close())
}

func TestReopen(t *testing.T) {
	fs := vfs.NewMem()
	want := map[string]string{}
	rng := rand.New(rand.NewPCG(2, 2))
	for round := range 5 {
		db, _ := openMem(t, fs, &lsm.Options{MemTableSize: 32 << 10, L0CompactionThreshold: 2, TargetFileSize: 16 << 10})
		for k, v := range want {
			require.Equal(t, v, mustGet(t, db, k), "round %d: %q", round, k)
		}
		for i := range 300 {
			k := fmt.Sprintf("k%03d", rng.IntN(400))
			if i%10 == 0 {
				require.NoError(t, db.Delete([]byte(k), nil))
				delete(want, k)
				continue
			}
			v := fmt.Sprintf("r%d-%d-%s", round, i, make([]byte, rng.IntN(200)))
			require.NoError(t, db.Set([]byte(k), []byte(v), nil))
			want[k] = v
		}
		switch round % 3 {
		case 1:
			require.NoError(t, db.Flush())
		case 2:
			require.NoError(t, db.Compact(nil, nil))
		}
		require.NoError(t, db.Close())
	}
	db, _ := openMem(t, fs, nil)
	got := map[string]string{}
	it, err := db.NewIter(nil)
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		got[string(it.Key())] = string(it.Value())
	}
	require.NoError(t, it.Close())
	require.Equal(t, want, got)
}

func TestMetrics(t *testing.T) {
	db, _ := openMem(t, nil, &lsm.Options{MemTableSize: 32 << 10, L0CompactionThreshold: 100, BlockSize: 512})
	m0 := db.Metrics()
	assert.Equal(t, 1, m0.MemTableCount)
	assert.Zero(t, m0.Flushes)
	for i := range 500 {
		require.NoError(t, db.Set([]byte(fmt.Sprintf("k%04d", i)), make([]byte, 100), nil))
	}
	m1 := db.Metrics()
	assert.Greater(t, m1.SeqNum, m0.SeqNum)
	assert.Positive(t, m1.WALSize)
	require.NoError(t, db.Flush())
	m2 := db.Metrics()
	assert.Greater(t, m2.Flushes, m1.Flushes, "Flushes")
	assert.Greater(t, m2.FlushBytes, int64(0), "FlushBytes")
	assert.Positive(t, m2.Levels[0].NumFiles, "level 0 after a flush")
	assert.Positive(t, m2.Levels[0].Size)
	assert.Positive(t, m2.DiskSize)

	for i := range 500 {
		_, err := db.Get([]byte(fmt.Sprintf("k%04d", i)))
		require.NoError(t, err)
	}
	m3 := db.Metrics()
	assert.Positive(t, m3.BlockCacheHits+m3.BlockCacheMisses, "block cache lookups")

	require.NoError(t, db.Compact(nil, nil))
	m4 := db.Metrics()
	assert.Greater(t, m4.Compactions, m3.Compactions, "Compactions")
	assert.Zero(t, m4.Levels[0].NumFiles, "level 0 after Compact")
	deeper := 0
	for _, l := range m4.Levels[1:] {
		deeper += l.NumFiles
	}
	assert.Positive(t, deeper, "tables below level 0 after Compact")
}

// TestGroupCommit runs 8 concurrent Sync writers: all succeed, all data is
// there, and no commit costs more than one sync.
func TestGroupCommit(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), nil)
	db, _ := openMem(t, efs, nil)
	before := efs.Counts()[vfs.OpSync]
	const writers, perWriter = 8, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if err := db.Set([]byte(fmt.Sprintf("w%d/%03d", w, i)), []byte(strconv.Itoa(i)), lsm.Sync); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := efs.Counts()[vfs.OpSync] - before
	t.Logf("%d synced writes took %d syncs", writers*perWriter, syncs)
	assert.LessOrEqual(t, syncs, int64(writers*perWriter), "more syncs than synced writes")
	for w := range writers {
		for i := range perWriter {
			assert.Equal(t, strconv.Itoa(i), mustGet(t, db, fmt.Sprintf("w%d/%03d", w, i)))
		}
	}
}

// TestWriteStalls fills tiny memtables from 4 writers with level 0 allowed
// only 2 tables, so writers stall behind flushes and compactions; they must
// all finish.
func TestWriteStalls(t *testing.T) {
	db, _ := openMem(t, nil, &lsm.Options{
		MemTableSize:          8 << 10,
		L0CompactionThreshold: 2,
		L0StopWritesThreshold: 2,
		TargetFileSize:        16 << 10,
		LBaseMaxBytes:         32 << 10,
	})
	const writers, perWriter = 4, 400
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				if err := db.Set([]byte(fmt.Sprintf("w%d/%03d", w, i)), make([]byte, 200), nil); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("writers did not finish: stalled writes deadlocked (metrics: %+v)", db.Metrics())
	}
	m := db.Metrics()
	t.Logf("write stalls: %d, flushes: %d, compactions: %d", m.WriteStalls, m.Flushes, m.Compactions)
	assert.Positive(t, m.Flushes)
	n := 0
	it, err := db.NewIter(nil)
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	assert.Equal(t, writers*perWriter, n)
}

// TestErrorDuringFlushAndCompact fails, in turn, each create, write and
// sync that a flush, or a compaction, performs. The call must return the
// injected error, later writes must fail, reads must go on, and a reopen on
// the file system without faults must find every acknowledged write.
//
// Regression: a write whose batch fitted in the mutable memtable once
// succeeded after a failed flush (makeRoomForWrite's fast path did not look
// at the background error).
func TestErrorDuringFlushAndCompact(t *testing.T) {
	opts := func(fs vfs.FS) *lsm.Options {
		return &lsm.Options{FS: fs, MemTableSize: 256 << 10, BlockSize: 512, TargetFileSize: 8 << 10, L0CompactionThreshold: 100}
	}
	type state = map[string]string
	// load writes the acknowledged data, ending with a synced write so that
	// the log holds no unwritten records when the fault is armed. For a
	// compaction, it first flushes two overlapping tables to level 0.
	load := func(t *testing.T, db *lsm.DB, action string) state {
		want := state{}
		for round := range 3 {
			for i := range 300 {
				k, v := fmt.Sprintf("k%03d", (i*7+round)%300), fmt.Sprintf("v%d-%d-%s", round, i, make([]byte, i%50))
				require.NoError(t, db.Set([]byte(k), []byte(v), nil))
				want[k] = v
			}
			if action == "compact" && round < 2 {
				require.NoError(t, db.Flush())
			}
		}
		require.NoError(t, db.Set([]byte("last"), []byte("x"), lsm.Sync))
		want["last"] = "x"
		return want
	}
	do := func(db *lsm.DB, action string) error {
		if action == "compact" {
			return db.Compact(nil, nil)
		}
		return db.Flush()
	}
	checkAll := func(t *testing.T, db *lsm.DB, want state, when string) {
		t.Helper()
		for k, v := range want {
			got, err := db.Get([]byte(k))
			require.NoError(t, err, "%s: Get(%q)", when, k)
			require.Equal(t, v, string(got), "%s: Get(%q)", when, k)
		}
		it, err := db.NewIter(nil)
		require.NoError(t, err, when)
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			require.Equal(t, want[string(it.Key())], string(it.Value()), "%s: scan at %q", when, it.Key())
			n++
		}
		require.NoError(t, it.Close(), when)
		require.Equal(t, len(want), n, "%s: scan", when)
	}

	for _, action := range []string{"flush", "compact"} {
		for _, op := range []vfs.Op{vfs.OpCreate, vfs.OpWrite, vfs.OpSync} {
			// Count the operations of this kind that the action performs.
			efs := vfs.NewErrorFS(vfs.NewMem(), nil)
			db, err := lsm.Open("db", opts(efs))
			require.NoError(t, err)
			load(t, db, action)
			before := efs.Counts()[op]
			require.NoError(t, do(db, action))
			n := efs.Counts()[op] - before
			require.NoError(t, db.Close())
			require.Positive(t, n, "a %s performs no %s", action, op)

			for i := int64(1); i <= n; i++ {
				t.Run(fmt.Sprintf("%s/%s-%d-of-%d", action, op, i, n), func(t *testing.T) {
					mem := vfs.NewMem()
					efs := vfs.NewErrorFS(mem, nil)
					db, err := lsm.Open("db", opts(efs))
					require.NoError(t, err)
					defer db.Close()
					want := load(t, db, action)
					efs.SetInjector(vfs.FailNth(op, i))
					err = do(db, action)
					require.ErrorIs(t, err, vfs.ErrInjected, "%s with the %s %d failing", action, op, i)

					err = db.Set([]byte("after"), []byte("failure"), nil)
					if err == nil {
						want["after"] = "failure" // acknowledged: must survive
					}
					assert.Error(t, err, "a write after a failed %s must fail", action)
					err = db.Set([]byte("after-sync"), []byte("failure"), lsm.Sync)
					if err == nil {
						want["after-sync"] = "failure"
					}
					assert.Error(t, err, "a synced write after a failed %s must fail", action)
					require.Error(t, do(db, action), "a %s after a failed %s must fail", action, action)

					checkAll(t, db, want, "reads after the failure")
					db.Close() // may report the failure again

					db2, err := lsm.Open("db", opts(mem))
					require.NoError(t, err, "reopen without faults")
					defer db2.Close()
					checkAll(t, db2, want, "after reopen")
					require.NoError(t, db2.Set([]byte("new"), []byte("write"), lsm.Sync), "writes work again after reopen")
					want["new"] = "write"
					require.NoError(t, db2.Compact(nil, nil))
					checkAll(t, db2, want, "after reopen and compaction")
				})
			}
		}
	}
}

// TestErrorDuringWALSync fails the sync of a synced write: the write must
// report the error, and later writes must fail too (the log can no longer
// be trusted).
func TestErrorDuringWALSync(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem, nil)
	db, err := lsm.Open("db", &lsm.Options{FS: efs})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Set([]byte("a"), []byte("1"), lsm.Sync))
	efs.SetInjector(vfs.FailNth(vfs.OpSync, 1))
	err = db.Set([]byte("b"), []byte("2"), lsm.Sync)
	require.ErrorIs(t, err, vfs.ErrInjected)
	require.Error(t, db.Set([]byte("c"), []byte("3"), lsm.Sync), "a write after a failed log sync")
	assert.Equal(t, "1", mustGet(t, db, "a"), "reads go on")
	db.Close()
	db2, err := lsm.Open("db", &lsm.Options{FS: mem})
	require.NoError(t, err)
	defer db2.Close()
	assert.Equal(t, "1", mustGet(t, db2, "a"))
}

// TestConcurrentReadersWriters runs writers that commit pairs of keys in
// one batch against readers that check, through Get, iterators and
// snapshots, that they never see half a batch. Run it with -race.
func TestConcurrentReadersWriters(t *testing.T) {
	db, _ := openMem(t, nil, &lsm.Options{MemTableSize: 16 << 10, L0CompactionThreshold: 2, TargetFileSize: 16 << 10, LBaseMaxBytes: 32 << 10})
	const writers, readers, perWriter, keys = 3, 3, 300, 20
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
		rwg  sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range perWriter {
				k := rng.IntN(keys)
				v := []byte(fmt.Sprintf("w%d-%d-%s", w, i, make([]byte, rng.IntN(100))))
				b := db.NewBatch()
				b.Set([]byte(fmt.Sprintf("a/%02d", k)), v)
				b.Set([]byte(fmt.Sprintf("b/%02d", k)), v)
				if err := b.Commit(nil); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if i%100 == 50 {
					if err := db.Flush(); err != nil {
						t.Errorf("flush: %v", err)
						return
					}
				}
			}
		}()
	}
	// checkPairs reads a and b keys through one consistent view.
	checkPairs := func(r int, newIter func() (*lsm.Iterator, error)) {
		it, err := newIter()
		if err != nil {
			t.Errorf("reader %d: %v", r, err)
			return
		}
		vals := map[string]string{}
		for ok := it.First(); ok; ok = it.Next() {
			vals[string(it.Key())] = string(it.Value())
		}
		if err := it.Close(); err != nil {
			t.Errorf("reader %d: %v", r, err)
		}
		for k := range keys {
			a, b := vals[fmt.Sprintf("a/%02d", k)], vals[fmt.Sprintf("b/%02d", k)]
			if a != b {
				t.Errorf("reader %d: half a batch visible: a/%02d=%.10q b/%02d=%.10q", r, k, a, k, b)
			}
		}
	}
	for r := range readers {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				switch n % 3 {
				case 0:
					checkPairs(r, func() (*lsm.Iterator, error) { return db.NewIter(nil) })
				case 1:
					s := db.NewSnapshot()
					checkPairs(r, func() (*lsm.Iterator, error) { return s.NewIter(nil) })
					// Two Gets through the snapshot see the same batch.
					for k := range 3 {
						a, errA := s.Get([]byte(fmt.Sprintf("a/%02d", k)))
						b, errB := s.Get([]byte(fmt.Sprintf("b/%02d", k)))
						if !errors.Is(errA, errB) || string(a) != string(b) {
							t.Errorf("reader %d: snapshot Gets disagree: %q (%v) vs %q (%v)", r, a, errA, b, errB)
						}
					}
					s.Close()
				default:
					if _, err := db.Get([]byte("a/00")); err != nil && !errors.Is(err, lsm.ErrNotFound) {
						t.Errorf("reader %d: %v", r, err)
					}
					_ = db.Metrics()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	require.NoError(t, db.Compact(nil, nil))
	checkPairs(-1, func() (*lsm.Iterator, error) { return db.NewIter(nil) })
}

// TestLargeBatch commits a batch many times larger than a memtable: it must
// stay atomic and survive a reopen (replayed into a memtable big enough).
func TestLargeBatch(t *testing.T) {
	opts := &lsm.Options{MemTableSize: 32 << 10, L0CompactionThreshold: 2}
	db, fs := openMem(t, nil, opts)
	require.NoError(t, db.Set([]byte("before"), []byte("x"), nil))
	b := db.NewBatch()
	for i := range 2000 {
		b.Set([]byte(fmt.Sprintf("big/%04d", i)), make([]byte, 1000))
	}
	require.Equal(t, 2000, b.Len())
	require.NoError(t, b.Commit(lsm.Sync))
	require.NoError(t, db.Set([]byte("after"), []byte("y"), nil))
	count := func(db *lsm.DB) int {
		it, err := db.NewPrefixIter([]byte("big/"))
		require.NoError(t, err)
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
		require.NoError(t, it.Close())
		return n
	}
	require.Equal(t, 2000, count(db))
	require.NoError(t, db.Close())
	db, _ = openMem(t, fs, opts)
	require.Equal(t, 2000, count(db))
	assert.Equal(t, "x", mustGet(t, db, "before"))
	assert.Equal(t, "y", mustGet(t, db, "after"))
	require.NoError(t, db.Compact(nil, nil))
	require.Equal(t, 2000, count(db))
}

// TestMetadataInBlockCache checks that the tables' index and filter blocks
// share the block cache's budget: with many tables and a small cache, the
// cache never holds more than its capacity, and every read is still right,
// with the cache and without one.
func TestMetadataInBlockCache(t *testing.T) {
	for _, cacheSize := range []int64{256 << 10, -1} {
		t.Run(fmt.Sprint("cache=", cacheSize), func(t *testing.T) {
			db, _ := openMem(t, nil, &lsm.Options{
				MemTableSize: 64 << 10, BlockSize: 512, TargetFileSize: 32 << 10,
				LBaseMaxBytes: 64 << 10, CacheSize: cacheSize,
			})
			rng := rand.New(rand.NewPCG(41, 42))
			const n = 20000
			value := make([]byte, 64)
			for i := range n {
				for j := 0; j < len(value); j += 8 {
					binary.BigEndian.PutUint64(value[j:], rng.Uint64())
				}
				require.NoError(t, db.Set(fmt.Appendf(nil, "k%08d", i*3), value, lsm.NoSync))
			}
			require.NoError(t, db.Flush())
			m := db.Metrics()
			tables := 0
			for _, l := range m.Levels {
				tables += l.NumFiles
			}
			t.Logf("%d tables", tables)
			require.Greater(t, tables, 20, "too few tables to exercise the cache")
			for round := range 2 {
				for _, i := range rng.Perm(n)[:4000] {
					_, err := db.Get(fmt.Appendf(nil, "k%08d", i*3))
					require.NoError(t, err, "round %d key %d", round, i)
					requireNotFound(t, db, fmt.Sprintf("k%08d", i*3+1))
				}
				m := db.Metrics()
				require.LessOrEqual(t, m.BlockCacheSize, max(cacheSize, 0))
			}
			got := 0
			it, err := db.NewIter(nil)
			require.NoError(t, err)
			for ok := it.First(); ok; ok = it.Next() {
				require.Equal(t, fmt.Sprintf("k%08d", got*3), string(it.Key()))
				got++
			}
			require.NoError(t, it.Close())
			require.Equal(t, n, got)
		})
	}
}
