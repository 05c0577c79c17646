package lsm_test

// The model test drives the engine with random operation sequences and
// checks every read against an in-memory model: a map from key to value,
// sorted on demand. Each sequence is derived from one seed, so a failure is
// replayed by running that seed alone:
//
//	go test ./lsm -run 'TestModel/seed=17$'
//	MAILBRICKS_SEED=17 go test ./lsm -run TestModel -v
//
// (add MAILBRICKS_LONG=1 if the failure came from a long run: the number of
// operations per seed is part of the sequence).
//
// The options are small so that every code path runs within a few hundred
// operations: memtable rotation and background flushes, level-0 compaction,
// multi-table levels, blocks split across restart points, the block cache and
// bloom filters on and off, every compression, and WAL replay at reopen.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// longTests reports whether the long sweeps were asked for.
func longTests() bool { return os.Getenv("MAILBRICKS_LONG") == "1" }

// envSeed returns the seed in MAILBRICKS_SEED, if set.
func envSeed(t *testing.T) (uint64, bool) {
	s := os.Getenv("MAILBRICKS_SEED")
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, "MAILBRICKS_SEED must be a non-negative integer")
	return n, true
}

// concatMerger joins operands with '|'. String concatenation is associative,
// so every grouping the engine may choose gives the same value.
var concatMerger = &lsm.Merger{
	Name: "test.concat",
	Merge: func(_, older, newer []byte) ([]byte, error) {
		out := make([]byte, 0, len(older)+1+len(newer))
		out = append(out, older...)
		out = append(out, '|')
		return append(out, newer...), nil
	},
}

// adderMerger reads the first 8 bytes of each side as a little-endian int64
// and returns their sum as exactly 8 bytes; anything after the first 8 bytes
// is padding, dropped by the first merge. Any grouping of a run of merges
// returns the 8-byte sum of all the leading integers, so it is associative.
var adderMerger = &lsm.Merger{
	Name: "test.adder",
	Merge: func(key, older, newer []byte) ([]byte, error) {
		if len(older) < 8 || len(newer) < 8 {
			return nil, fmt.Errorf("adder: key %q: operand shorter than 8 bytes (%d, %d)", key, len(older), len(newer))
		}
		s := binary.LittleEndian.Uint64(older) + binary.LittleEndian.Uint64(newer)
		return binary.LittleEndian.AppendUint64(make([]byte, 0, 8), s), nil
	},
}

// modelMerge applies a merge operand to the model the way the engine folds
// it: onto the existing value, or, when there is none, the operand itself.
func modelMerge(m *lsm.Merger, state map[string]string, key, operand []byte) error {
	old, ok := state[string(key)]
	if !ok {
		state[string(key)] = string(operand)
		return nil
	}
	v, err := m.Merge(key, []byte(old), operand)
	if err != nil {
		return err
	}
	state[string(key)] = string(v)
	return nil
}

// modelDeleteRange deletes [start, end) from the model.
func modelDeleteRange(state map[string]string, start, end []byte) {
	for k := range state {
		if k >= string(start) && k < string(end) {
			delete(state, k)
		}
	}
}

// boundedKeys returns the keys of state in [lower, upper), sorted. A nil
// bound is no bound.
func boundedKeys(state map[string]string, lower, upper []byte) []string {
	keys := make([]string, 0, len(state))
	for k := range state {
		if (lower == nil || k >= string(lower)) && (upper == nil || k < string(upper)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

type modelSnap struct {
	s     *lsm.Snapshot
	state map[string]string
	op    int // the operation that took it
}

// modelRun is one seeded sequence.
type modelRun struct {
	t      *testing.T
	seed   uint64
	nops   int
	rng    *rand.Rand
	op     int
	trace  []string
	fs     vfs.FS
	opts   lsm.Options
	db     *lsm.DB
	merger *lsm.Merger
	adder  bool
	keys   [][]byte
	state  map[string]string
	snaps  []*modelSnap
	batch  *lsm.Batch // reused across batch operations, to test Reset
	stats  modelStats
}

// String is the failure context: seed, operation and the recent history.
// It is passed to require as a format argument, so it is only built when an
// assertion fails.
func (m *modelRun) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed=%d op=%d/%d merger=%s\n", m.seed, m.op, m.nops, m.merger.Name)
	long := ""
	if longTests() {
		long = "MAILBRICKS_LONG=1 "
	}
	fmt.Fprintf(&b, "replay: %sgo test ./lsm -run 'TestModel/seed=%d$' -v   (or %sMAILBRICKS_SEED=%d go test ./lsm -run TestModel -v)\n",
		long, m.seed, long, m.seed)
	fmt.Fprintf(&b, "options: MemTableSize=%d TargetFileSize=%d LBaseMaxBytes=%d BlockSize=%d CacheSize=%d Compression=%d BloomBitsPerKey=%d\n",
		m.opts.MemTableSize, m.opts.TargetFileSize, m.opts.LBaseMaxBytes, m.opts.BlockSize, m.opts.CacheSize, m.opts.Compression, m.opts.BloomBitsPerKey)
	from := max(0, len(m.trace)-40)
	fmt.Fprintf(&b, "operations %d..%d:\n", from, len(m.trace)-1)
	for i := from; i < len(m.trace); i++ {
		fmt.Fprintf(&b, "  %4d %s\n", i, m.trace[i])
	}
	return b.String()
}

func (m *modelRun) logf(format string, args ...any) {
	m.trace = append(m.trace, fmt.Sprintf(format, args...))
	if os.Getenv("MAILBRICKS_SEED") != "" && testing.Verbose() {
		m.t.Logf("op %d: %s", m.op, m.trace[len(m.trace)-1])
	}
}

func TestModel(t *testing.T) {
	seeds, nops := 200, 300
	if longTests() {
		seeds, nops = 10000, 1000
	}
	if s, ok := envSeed(t); ok {
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { runModel(t, s, nops) })
		return
	}
	var cov modelCoverage
	// Cleanup runs once the parallel subtests are done. The sequences are
	// only worth something if they reach the code paths the options were
	// chosen for.
	t.Cleanup(func() {
		if t.Failed() || seeds < 50 {
			return
		}
		t.Logf("coverage over %d seeds: %+v", seeds, cov.m)
		assert.Positive(t, cov.m.Flushes, "no memtable was ever flushed")
		assert.Positive(t, cov.m.Compactions, "no compaction ever ran")
		assert.GreaterOrEqual(t, cov.m.DeepestLevel, 2, "no table ever reached level 2")
		assert.Positive(t, cov.m.MultiTableLevels, "no level below 0 ever held two tables")
	})
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			cov.add(runModel(t, uint64(seed), nops))
		})
	}
}

// modelCoverage sums what the sequences exercised.
type modelCoverage struct {
	mu sync.Mutex
	m  modelStats
}

type modelStats struct {
	Flushes, Compactions, WriteStalls int64
	DeepestLevel                      int
	SeedsBelowLevel1                  int // sequences that put a table below level 1
	MultiTableLevels                  int
}

func (c *modelCoverage) add(s modelStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.Flushes += s.Flushes
	c.m.Compactions += s.Compactions
	c.m.WriteStalls += s.WriteStalls
	c.m.DeepestLevel = max(c.m.DeepestLevel, s.DeepestLevel)
	if s.DeepestLevel >= 2 {
		c.m.SeedsBelowLevel1++
	}
	c.m.MultiTableLevels += s.MultiTableLevels
}

// noteMetrics records what one open of the DB did, before it is closed.
func (m *modelRun) noteMetrics() {
	mt := m.db.Metrics()
	m.stats.Flushes += mt.Flushes
	m.stats.Compactions += mt.Compactions
	m.stats.WriteStalls += mt.WriteStalls
	m.noteShape(mt)
}

// noteShape records the shape of the tree.
func (m *modelRun) noteShape(mt lsm.Metrics) {
	for l, lm := range mt.Levels {
		if lm.NumFiles > 0 {
			m.stats.DeepestLevel = max(m.stats.DeepestLevel, l)
		}
		if l > 0 && lm.NumFiles > 1 {
			m.stats.MultiTableLevels++
		}
	}
}

func runModel(t *testing.T, seed uint64, nops int) modelStats {
	m := &modelRun{
		t:     t,
		seed:  seed,
		nops:  nops,
		rng:   rand.New(rand.NewPCG(seed, 0x6d6f64656c)),
		fs:    vfs.NewMem(),
		state: map[string]string{},
	}
	// Half the seeds use each merger.
	m.adder = seed%2 == 1
	m.merger = concatMerger
	if m.adder {
		m.merger = adderMerger
	}
	rng := m.rng
	m.opts = lsm.Options{
		FS:                    m.fs,
		MemTableSize:          32<<10 + rng.IntN(224<<10),
		TargetFileSize:        16<<10 + rng.Int64N(48<<10),
		L0CompactionThreshold: 2,
		LBaseMaxBytes:         []int64{16 << 10, 32 << 10, 64 << 10}[rng.IntN(3)],
		BlockSize:             256 + rng.IntN(769),
		Merger:                m.merger,
	}
	m.randomizeOpenOptions()

	// A small key space, so that versions of a key pile up across the
	// memtables and levels. Some seeds add keys made of 0xff bytes, the
	// edge of PrefixUpperBound and of "no upper bound".
	nkeys := 16 + rng.IntN(240)
	for i := range nkeys {
		m.keys = append(m.keys, []byte(fmt.Sprintf("key/%04d", i)))
	}
	if rng.IntN(4) == 0 {
		m.keys = append(m.keys, []byte("\xff"), []byte("\xff\xff\x00"), []byte("\xff\xff\xff"))
	}

	var err error
	m.db, err = lsm.Open("db", &m.opts)
	require.NoError(t, err, "open: %v", m)
	defer func() {
		for _, s := range m.snaps {
			s.s.Close()
		}
		if m.db != nil {
			m.db.Close()
		}
	}()

	for m.op = 0; m.op < nops; m.op++ {
		m.step()
		if m.op%100 == 99 {
			m.logf("full check")
			m.checkAll(m.db, nil, m.state)
		}
	}
	m.logf("final full check")
	m.checkAll(m.db, nil, m.state)
	for _, s := range m.snaps {
		m.checkAll(nil, s.s, s.state)
	}
	m.logf("final reopen")
	m.reopen()
	m.checkAll(m.db, nil, m.state)
	m.noteMetrics()
	if os.Getenv("MAILBRICKS_SEED") != "" {
		t.Logf("what the sequence exercised: %+v", m.stats)
	}
	return m.stats
}

// randomizeOpenOptions picks the options that may differ between opens of
// the same DB: tables written with one compression or filter setting must
// stay readable with another.
func (m *modelRun) randomizeOpenOptions() {
	rng := m.rng
	m.opts.CacheSize = []int64{-1, 16 << 10, 256 << 10}[rng.IntN(3)]
	m.opts.Compression = []lsm.Compression{lsm.DefaultCompression, lsm.NoCompression, lsm.S2Compression, lsm.ZstdCompression}[rng.IntN(4)]
	m.opts.BloomBitsPerKey = []int{0, -1, 4}[rng.IntN(3)]
}

func (m *modelRun) randKey() []byte { return m.keys[m.rng.IntN(len(m.keys))] }

// randBound returns a key to seek to or bound by: usually one of the key
// space, sometimes one between two keys (never written), sometimes an
// extreme.
func (m *modelRun) randBound() []byte {
	switch r := m.rng.IntN(10); {
	case r < 6:
		return m.randKey()
	case r < 9:
		return append(bytes.Clone(m.randKey()), "/x"...)
	default:
		// The empty key as a target or bound: once taken for "none" by
		// SeekLT and Last (see TestIteratorBounds).
		return [][]byte{{}, {0}, []byte("key/"), []byte("kez"), []byte("\xff\xff\xff\xff")}[m.rng.IntN(5)]
	}
}

// randRange returns start < end for a range deletion: mostly a few keys
// wide, sometimes wide.
func (m *modelRun) randRange() ([]byte, []byte) {
	for {
		a, b := m.randBound(), m.randBound()
		if m.rng.IntN(4) != 0 {
			// Narrow: a key and the key a few places after it.
			i := m.rng.IntN(len(m.keys))
			j := min(len(m.keys)-1, i+1+m.rng.IntN(6))
			a, b = m.keys[i], m.keys[j]
			if i == j {
				b = append(bytes.Clone(a), 0)
			}
		}
		switch bytes.Compare(a, b) {
		case -1:
			return a, b
		case 1:
			return b, a
		}
	}
}

func (m *modelRun) randValue() []byte {
	var n int
	switch r := m.rng.IntN(100); {
	case r < 70:
		n = m.rng.IntN(64)
	case r < 95:
		n = 64 + m.rng.IntN(960)
	default:
		n = 1024 + m.rng.IntN(7168)
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(m.rng.Uint32())
	}
	return v
}

// randSetValue and randOperand return values for Set and Merge. With the
// adder merger, every value starts with an 8-byte integer.
func (m *modelRun) randSetValue() []byte {
	if m.adder {
		// An integer followed by padding; see adderMerger.
		return append(binary.LittleEndian.AppendUint64(nil, m.rng.Uint64()%1000), m.randPad()...)
	}
	return m.randValue()
}

func (m *modelRun) randOperand() []byte {
	if m.adder {
		n := m.rng.Int64N(2000) - 1000
		v := binary.LittleEndian.AppendUint64(nil, uint64(n))
		if m.rng.IntN(4) == 0 {
			v = append(v, m.randPad()...)
		}
		return v
	}
	return m.randValue()
}

func (m *modelRun) randPad() []byte {
	n := m.rng.IntN(64)
	if m.rng.IntN(10) == 0 {
		n = 64 + m.rng.IntN(2000)
	}
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(m.rng.Uint32())
	}
	return p
}

func (m *modelRun) randWriteOptions() *lsm.WriteOptions {
	switch m.rng.IntN(10) {
	case 0:
		return lsm.Sync
	case 1:
		return nil
	}
	return lsm.NoSync
}

func (m *modelRun) step() {
	t, db, rng := m.t, m.db, m.rng
	switch r := rng.IntN(100); {
	case r < 22:
		k, v := m.randKey(), m.randSetValue()
		m.logf("set %q (%d bytes)", k, len(v))
		require.NoError(t, db.Set(k, v, m.randWriteOptions()), "%v", m)
		m.state[string(k)] = string(v)
	case r < 28:
		k := m.randKey()
		m.logf("delete %q", k)
		require.NoError(t, db.Delete(k, m.randWriteOptions()), "%v", m)
		delete(m.state, string(k))
	case r < 31:
		a, b := m.randRange()
		m.logf("delete-range [%s, %s)", fk(a), fk(b))
		require.NoError(t, db.DeleteRange(a, b, m.randWriteOptions()), "%v", m)
		modelDeleteRange(m.state, a, b)
	case r < 42:
		k, v := m.randKey(), m.randOperand()
		m.logf("merge %q (%d bytes)", k, len(v))
		require.NoError(t, db.Merge(k, v, m.randWriteOptions()), "%v", m)
		require.NoError(t, modelMerge(m.merger, m.state, k, v), "%v", m)
	case r < 50:
		m.stepBatch()
	case r < 62:
		k := m.randKey()
		if rng.IntN(5) == 0 {
			k = m.randBound()
		}
		m.logf("get %q", k)
		m.checkGet(db, nil, m.state, k)
	case r < 65:
		if len(m.snaps) < 4 && rng.IntN(3) != 0 {
			m.logf("new snapshot #%d", len(m.snaps))
			m.snaps = append(m.snaps, &modelSnap{s: db.NewSnapshot(), state: maps.Clone(m.state), op: m.op})
		} else if len(m.snaps) > 0 {
			i := rng.IntN(len(m.snaps))
			m.logf("close snapshot #%d (taken at op %d)", i, m.snaps[i].op)
			require.NoError(t, m.snaps[i].s.Close(), "%v", m)
			m.snaps = slices.Delete(m.snaps, i, i+1)
		}
	case r < 70:
		if len(m.snaps) == 0 {
			return
		}
		i := rng.IntN(len(m.snaps))
		s := m.snaps[i]
		m.logf("check snapshot #%d (taken at op %d)", i, s.op)
		for range 5 {
			m.checkGet(nil, s.s, s.state, m.randKey())
		}
		m.checkScan(nil, s.s, s.state, nil, nil, rng.IntN(2) == 0)
		lower, upper := m.randBounds()
		it, err := s.s.NewIter(&lsm.IterOptions{LowerBound: lower, UpperBound: upper})
		require.NoError(t, err, "%v", m)
		m.walk(it, s.state, lower, upper, 1+rng.IntN(30))
	case r < 80:
		lower, upper := m.randBounds()
		m.logf("iterate [%s, %s)", fk(lower), fk(upper))
		it, err := db.NewIter(&lsm.IterOptions{LowerBound: lower, UpperBound: upper})
		require.NoError(t, err, "%v", m)
		m.walk(it, m.state, lower, upper, 1+rng.IntN(40))
	case r < 83:
		// An iterator sees the DB as of its creation, whatever is written,
		// flushed or compacted while it is open.
		lower, upper := m.randBounds()
		it, err := db.NewIter(&lsm.IterOptions{LowerBound: lower, UpperBound: upper})
		require.NoError(t, err, "%v", m)
		before := maps.Clone(m.state)
		m.logf("iterate [%s, %s) across writes", fk(lower), fk(upper))
		for range 1 + rng.IntN(3) {
			k := m.randKey()
			if rng.IntN(2) == 0 {
				v := m.randSetValue()
				require.NoError(t, db.Set(k, v, nil), "%v", m)
				m.state[string(k)] = string(v)
			} else {
				a, b := m.randRange()
				require.NoError(t, db.DeleteRange(a, b, nil), "%v", m)
				modelDeleteRange(m.state, a, b)
			}
		}
		switch rng.IntN(5) {
		case 0:
			m.logf("  ... and a flush")
			require.NoError(t, db.Flush(), "%v", m)
		case 1:
			m.logf("  ... and a compaction")
			require.NoError(t, db.Compact(nil, nil), "%v", m)
		}
		m.walk(it, before, lower, upper, 1+rng.IntN(40))
	case r < 87:
		m.logf("flush")
		require.NoError(t, db.Flush(), "%v", m)
		m.noteShape(db.Metrics())
	case r < 89:
		var a, b []byte
		if rng.IntN(2) == 0 {
			a, b = m.randBounds()
		}
		m.logf("compact [%s, %s]", fk(a), fk(b))
		require.NoError(t, db.Compact(a, b), "%v", m)
		m.noteShape(db.Metrics())
	case r < 91:
		m.reopen()
	case r < 92:
		m.logf("full check")
		m.checkAll(db, nil, m.state)
	case r < 93:
		// An invalid range fails the whole batch, which changes nothing.
		k, v := m.randKey(), m.randSetValue()
		a, b := m.randRange()
		m.logf("batch with inverted range [%q, %q)", b, a)
		bt := db.NewBatch()
		bt.Set(k, v)
		bt.DeleteRange(b, a)
		require.Error(t, bt.Commit(nil), "a batch holding an inverted range must not commit: %v", m)
		require.Error(t, db.DeleteRange(a, a, nil), "an empty range must be refused: %v", m)
		m.checkGet(db, nil, m.state, k)
	default:
		m.logf("metrics")
		mt := db.Metrics()
		require.Equal(t, len(m.snaps), mt.Snapshots, "Metrics.Snapshots: %v", m)
	}
}

// randBounds returns iterator bounds, each nil about a third of the time,
// with lower <= upper.
func (m *modelRun) randBounds() (lower, upper []byte) {
	if m.rng.IntN(3) != 0 {
		lower = m.randBound()
	}
	if m.rng.IntN(3) != 0 {
		upper = m.randBound()
	}
	if lower != nil && upper != nil && bytes.Compare(lower, upper) > 0 {
		lower, upper = upper, lower
	}
	return lower, upper
}

func (m *modelRun) stepBatch() {
	t, rng := m.t, m.rng
	b := m.batch
	if b == nil || rng.IntN(3) == 0 {
		b = m.db.NewBatch()
		m.batch = b
	} else {
		b.Reset()
	}
	n := 1 + rng.IntN(10)
	next := maps.Clone(m.state)
	var desc []string
	var touched [][]byte
	for range n {
		switch r := rng.IntN(10); {
		case r < 5:
			k, v := m.randKey(), m.randSetValue()
			b.Set(k, v)
			next[string(k)] = string(v)
			desc = append(desc, fmt.Sprintf("set %q", k))
			touched = append(touched, k)
		case r < 7:
			k := m.randKey()
			b.Delete(k)
			delete(next, string(k))
			desc = append(desc, fmt.Sprintf("del %q", k))
			touched = append(touched, k)
		case r < 9:
			k, v := m.randKey(), m.randOperand()
			b.Merge(k, v)
			require.NoError(t, modelMerge(m.merger, next, k, v), "%v", m)
			desc = append(desc, fmt.Sprintf("merge %q", k))
			touched = append(touched, k)
		default:
			a, e := m.randRange()
			b.DeleteRange(a, e)
			modelDeleteRange(next, a, e)
			desc = append(desc, fmt.Sprintf("delrange [%s, %s)", fk(a), fk(e)))
			touched = append(touched, a)
		}
	}
	m.logf("batch: %s", strings.Join(desc, "; "))
	require.Equal(t, n, b.Len(), "Batch.Len: %v", m)
	// Nothing of a batch is visible before it commits.
	for _, k := range touched[:min(3, len(touched))] {
		m.checkGet(m.db, nil, m.state, k)
	}
	if rng.IntN(2) == 0 {
		require.NoError(t, b.Commit(m.randWriteOptions()), "%v", m)
	} else {
		require.NoError(t, m.db.Apply(b, m.randWriteOptions()), "%v", m)
	}
	m.state = next
	for _, k := range touched[:min(3, len(touched))] {
		m.checkGet(m.db, nil, m.state, k)
	}
}

// reopen closes the DB (and the snapshots, which must be closed first) and
// opens it again on the same file system.
func (m *modelRun) reopen() {
	t := m.t
	m.logf("close and reopen")
	for _, s := range m.snaps {
		require.NoError(t, s.s.Close(), "%v", m)
	}
	m.snaps = nil
	m.batch = nil
	m.noteMetrics()
	require.NoError(t, m.db.Close(), "%v", m)
	require.NoError(t, m.db.Close(), "a second Close must succeed: %v", m)
	_, err := m.db.Get(m.randKey())
	require.ErrorIs(t, err, lsm.ErrClosed, "Get after Close: %v", m)
	m.db = nil
	m.randomizeOpenOptions()
	db, err := lsm.Open("db", &m.opts)
	require.NoError(t, err, "reopen: %v", m)
	m.db = db
}

// reader is what a DB and a Snapshot have in common; exactly one of db and
// snap is non-nil in the helpers below.
func (m *modelRun) get(db *lsm.DB, snap *lsm.Snapshot, k []byte) ([]byte, error) {
	if db != nil {
		return db.Get(k)
	}
	return snap.Get(k)
}

func (m *modelRun) newIter(db *lsm.DB, snap *lsm.Snapshot, o *lsm.IterOptions) *lsm.Iterator {
	var it *lsm.Iterator
	var err error
	if db != nil {
		it, err = db.NewIter(o)
	} else {
		it, err = snap.NewIter(o)
	}
	require.NoError(m.t, err, "%v", m)
	return it
}

func (m *modelRun) checkGet(db *lsm.DB, snap *lsm.Snapshot, state map[string]string, k []byte) {
	got, err := m.get(db, snap, k)
	want, ok := state[string(k)]
	if !ok {
		require.True(m.t, errors.Is(err, lsm.ErrNotFound),
			"Get(%q) of a missing key must return ErrNotFound, got value %q (%d bytes), err %v\n%v", k, trunc(got), len(got), err, m)
		require.Nil(m.t, got, "Get(%q) of a missing key returned a value\n%v", k, m)
		return
	}
	require.NoError(m.t, err, "Get(%q)\n%v", k, m)
	if string(got) != want {
		require.Failf(m.t, "Get returned a wrong value", "Get(%q) = %q (%d bytes), want %q (%d bytes)\n%v",
			k, trunc(got), len(got), trunc([]byte(want)), len(want), m)
	}
}

// checkAll reads every key of the key space and scans the whole DB both
// ways.
func (m *modelRun) checkAll(db *lsm.DB, snap *lsm.Snapshot, state map[string]string) {
	for _, k := range m.keys {
		m.checkGet(db, snap, state, k)
	}
	m.checkScan(db, snap, state, nil, nil, true)
	m.checkScan(db, snap, state, nil, nil, false)
}

// checkScan iterates within bounds in one direction and compares the whole
// sequence of keys and values.
func (m *modelRun) checkScan(db *lsm.DB, snap *lsm.Snapshot, state map[string]string, lower, upper []byte, forward bool) {
	it := m.newIter(db, snap, &lsm.IterOptions{LowerBound: lower, UpperBound: upper})
	want := boundedKeys(state, lower, upper)
	var got []string
	if forward {
		for ok := it.First(); ok && len(got) <= len(want); ok = it.Next() {
			got = append(got, string(it.Key()))
			m.checkValue(it, state, "scan")
		}
	} else {
		slices.Reverse(want)
		for ok := it.Last(); ok && len(got) <= len(want); ok = it.Prev() {
			got = append(got, string(it.Key()))
			m.checkValue(it, state, "reverse scan")
		}
	}
	require.NoError(m.t, it.Error(), "%v", m)
	require.NoError(m.t, it.Close(), "%v", m)
	if !slices.Equal(got, want) {
		dir := "forward"
		if !forward {
			dir = "backward"
		}
		require.Failf(m.t, "scan returned wrong keys", "%s scan of [%s, %s): %s\n%v", dir, fk(lower), fk(upper), diffKeys(want, got), m)
	}
}

func (m *modelRun) checkValue(it *lsm.Iterator, state map[string]string, what string) {
	k := it.Key()
	want, ok := state[string(k)]
	if !ok {
		return // reported by the key comparison
	}
	if string(it.Value()) != want {
		require.Failf(m.t, "iterator returned a wrong value", "%s at %q: value %q (%d bytes), want %q (%d bytes)\n%v",
			what, k, trunc(it.Value()), len(it.Value()), trunc([]byte(want)), len(want), m)
	}
}

// walk moves the iterator randomly, mixing seeks, direction changes and
// steps, and checks every position against the model.
func (m *modelRun) walk(it *lsm.Iterator, state map[string]string, lower, upper []byte, steps int) {
	keys := boundedKeys(state, lower, upper)
	pos := -1
	var hist []string
	for range steps {
		c := m.rng.IntN(10)
		if pos < 0 && c >= 4 {
			// Next and Prev on an exhausted iterator are not specified;
			// reposition instead.
			c = m.rng.IntN(4)
		}
		var ok bool
		switch c {
		case 0:
			hist = append(hist, "First")
			ok = it.First()
			pos = 0
		case 1:
			hist = append(hist, "Last")
			ok = it.Last()
			pos = len(keys) - 1
		case 2:
			k := m.randBound()
			hist = append(hist, fmt.Sprintf("SeekGE(%q)", k))
			ok = it.SeekGE(k)
			pos = sort.SearchStrings(keys, string(k))
		case 3:
			k := m.randBound()
			hist = append(hist, fmt.Sprintf("SeekLT(%q)", k))
			ok = it.SeekLT(k)
			pos = sort.SearchStrings(keys, string(k)) - 1
		case 4, 5, 6:
			hist = append(hist, "Next")
			ok = it.Next()
			pos++
		default:
			hist = append(hist, "Prev")
			ok = it.Prev()
			pos--
		}
		if pos >= len(keys) {
			pos = -1
		}
		wantOK := pos >= 0
		if ok != wantOK || it.Valid() != ok {
			var at string
			if ok {
				at = fmt.Sprintf(" at %q", it.Key())
			}
			want := "exhausted"
			if wantOK {
				want = fmt.Sprintf("at %q", keys[pos])
			}
			require.Failf(m.t, "iterator position", "bounds [%s, %s): after %s the iterator reports ok=%v valid=%v%s, want %s (err %v)\n%v",
				fk(lower), fk(upper), strings.Join(hist, ", "), ok, it.Valid(), at, want, it.Error(), m)
		}
		if ok {
			if string(it.Key()) != keys[pos] {
				require.Failf(m.t, "iterator key", "bounds [%s, %s): after %s the key is %q, want %q\n%v",
					fk(lower), fk(upper), strings.Join(hist, ", "), it.Key(), keys[pos], m)
			}
			m.checkValue(it, state, "after "+strings.Join(hist, ", "))
		}
	}
	require.NoError(m.t, it.Error(), "%v", m)
	require.NoError(m.t, it.Close(), "%v", m)
	require.NoError(m.t, it.Close(), "closing an iterator twice is allowed: %v", m)
}

// fk formats a key or bound, telling nil (no bound) from empty.
func fk(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", b)
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return append(bytes.Clone(b[:40]), "..."...)
	}
	return b
}

// diffKeys describes the first difference between two key lists.
func diffKeys(want, got []string) string {
	for i := 0; i < max(len(want), len(got)); i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("got %d keys, want %d: key %d %q is missing", len(got), len(want), i, want[i])
		case i >= len(want):
			return fmt.Sprintf("got %d keys, want %d: extra key %q at %d", len(got), len(want), got[i], i)
		case got[i] != want[i]:
			return fmt.Sprintf("at %d got %q, want %q (got %d keys, want %d)", i, got[i], want[i], len(got), len(want))
		}
	}
	return "no difference"
}
