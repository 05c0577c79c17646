package lsm_test

// Crash tests run the engine on vfs.NewCrashable(), take a CrashClone (what
// a disk would hold after a power loss at that instant) while writers,
// flushes and compactions are in flight, reopen the clone and check the
// promises of the package documentation:
//
//  1. every batch acknowledged with Sync before the clone was taken is
//     there (or superseded by later batches that are also there);
//  2. no batch is partial;
//  3. the recovered state is the state after some prefix of the commit
//     order, and nothing else.
//
// To know the commit order, every batch also merges its ID into one "log"
// key with a concatenating merger: the engine applies a batch's entries in
// sequence-number order, so the live DB's "log" value lists every committed
// batch in commit order, and the recovered "log" value lists the batches
// that survived. The recovered list must be a prefix of the live one, and
// the recovered state must equal exactly the replay of those batches, in
// that order, from an empty DB. A "batch/<id>" marker key in every batch
// makes a partial batch visible even where the replay check would only
// report a difference.
//
// The crash instant is chosen by counting file system operations through a
// vfs.ErrorFS whose Injector never fails anything: it takes the CrashClone
// just before the Nth operation, whichever goroutine issues it (a WAL
// append, a flush writing a table, a compaction, a manifest update). With
// concurrent writers the interleaving, and so the exact cut, differs
// between runs; the seed fixes the workload, the crash operation number and
// the share of unsynced data the clone keeps. A failure prints the seed:
//
//	go test ./lsm -run 'TestCrash/pages/seed=7$' -v
//	MAILBRICKS_SEED=7 go test ./lsm -run TestCrash -v
//
// Every sweep runs under both disk models of vfs (crashModels): unsynced
// data kept as a prefix, and kept as a random subset of pages with zeros
// for the rest.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// crashMerger joins operands with ','; the "log" key is the comma-separated
// list of batch IDs in commit order.
var crashMerger = &lsm.Merger{
	Name: "test.crash.concat",
	Merge: func(_, older, newer []byte) ([]byte, error) {
		out := make([]byte, 0, len(older)+1+len(newer))
		out = append(out, older...)
		out = append(out, ',')
		return append(out, newer...), nil
	},
}

const crashLogKey = "log"

const crashDataKeys = 48

func crashDataKey(i int) string { return fmt.Sprintf("d/%02d", i) }

func crashMarkerKey(id int) string { return fmt.Sprintf("batch/%06d", id) }

// crashOp is one write of a batch. For a range deletion, key and value are
// the start and end.
type crashOp struct {
	kind  byte // 's'et, 'd'elete, 'm'erge, 'r'ange delete
	key   string
	value string
}

type crashBatch struct {
	id   int
	ops  []crashOp
	sync bool
	// startAcks is the number of acknowledgements of its generation
	// recorded before the batch was written; ackIndex is its own position
	// in that order (1-based), or 0 if its commit never returned.
	startAcks, ackIndex int
}

// newCrashBatch builds batch id: a few writes to the data keys, the marker
// and the log entry. Every value written carries the batch ID.
func newCrashBatch(rng *rand.Rand, id int, sync bool) *crashBatch {
	b := &crashBatch{id: id, sync: sync}
	pad := func() string { return strings.Repeat("x", rng.IntN(300)) }
	for range 1 + rng.IntN(5) {
		k := rng.IntN(crashDataKeys)
		switch r := rng.IntN(10); {
		case r < 6:
			b.ops = append(b.ops, crashOp{'s', crashDataKey(k), fmt.Sprintf("%d:%s", id, pad())})
		case r < 8:
			b.ops = append(b.ops, crashOp{'m', crashDataKey(k), strconv.Itoa(id)})
		case r < 9:
			b.ops = append(b.ops, crashOp{'d', crashDataKey(k), ""})
		default:
			e := min(crashDataKeys, k+1+rng.IntN(4))
			b.ops = append(b.ops, crashOp{'r', crashDataKey(k), crashDataKey(e)})
		}
	}
	b.ops = append(b.ops,
		crashOp{'s', crashMarkerKey(id), fmt.Sprintf("%d:%s", id, pad())},
		crashOp{'m', crashLogKey, strconv.Itoa(id)})
	return b
}

func (b *crashBatch) apply(t *testing.T, db *lsm.DB) error {
	bt := db.NewBatch()
	for _, op := range b.ops {
		switch op.kind {
		case 's':
			bt.Set([]byte(op.key), []byte(op.value))
		case 'm':
			bt.Merge([]byte(op.key), []byte(op.value))
		case 'd':
			bt.Delete([]byte(op.key))
		case 'r':
			bt.DeleteRange([]byte(op.key), []byte(op.value))
		}
	}
	o := lsm.NoSync
	if b.sync {
		o = lsm.Sync
	}
	return bt.Commit(o)
}

// replayCrashBatches is the model: the state after applying batches in
// order to an empty DB.
func replayCrashBatches(t *testing.T, batches map[int]*crashBatch, order []int) map[string]string {
	state := map[string]string{}
	for _, id := range order {
		b := batches[id]
		require.NotNil(t, b, "the recovered log names batch %d, which was never written", id)
		for _, op := range b.ops {
			switch op.kind {
			case 's':
				state[op.key] = op.value
			case 'm':
				require.NoError(t, modelMerge(crashMerger, state, []byte(op.key), []byte(op.value)))
			case 'd':
				delete(state, op.key)
			case 'r':
				modelDeleteRange(state, []byte(op.key), []byte(op.value))
			}
		}
	}
	return state
}

// crashHistory is what the test knows about one round, across the
// generations of crash and reopen.
type crashHistory struct {
	t       *testing.T
	nextID  atomic.Int64
	mu      sync.Mutex
	batches map[int]*crashBatch // every batch ever attempted, recorded before Apply
	// Of the current generation: the batches whose synced commit returned
	// nil, and the acknowledgement count.
	syncAcked []int
	acks      int
	// Set by the crash: the clone, and the batches it must hold.
	clone    *vfs.CrashableFS
	mustHave []int
	// base is what every clone of this generation must hold whatever
	// happens: all that the previous recovery found (the clone it ran on was
	// entirely durable).
	base []int
	// committed is the live DB's log after the workload: the commit order.
	committed []int
	// gen holds the batches of the current generation, in recording order.
	gen []*crashBatch
}

func (h *crashHistory) record(b *crashBatch) {
	h.mu.Lock()
	h.batches[b.id] = b
	h.gen = append(h.gen, b)
	b.startAcks = h.acks
	h.mu.Unlock()
}

// acked notes that b's commit returned nil and reports the acknowledgement
// count.
func (h *crashHistory) acked(b *crashBatch) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b.sync {
		h.syncAcked = append(h.syncAcked, b.id)
	}
	h.acks++
	b.ackIndex = h.acks
	return h.acks
}

// checkAckOrder checks the live DB's commit order against the
// acknowledgements of the generation: every acknowledged batch committed,
// and a batch acknowledged before another began committed before it.
func (h *crashHistory) checkAckOrder(t *testing.T, committed []int, ctx string) {
	pos := make(map[int]int, len(committed))
	for i, id := range committed {
		pos[id] = i
	}
	for _, a := range h.gen {
		if a.ackIndex == 0 {
			continue
		}
		pa, ok := pos[a.id]
		if !ok {
			require.Failf(t, "an acknowledged batch is missing", "%s\nbatch %d was acknowledged, but the live DB's log does not hold it", ctx, a.id)
		}
		for _, b := range h.gen {
			if a.ackIndex <= b.startAcks && pos[b.id] < pa {
				if _, ok := pos[b.id]; ok {
					require.Failf(t, "commit order contradicts real time",
						"%s\nbatch %d was acknowledged before batch %d was written, but committed after it", ctx, a.id, b.id)
				}
			}
		}
	}
}

// crash takes the clone. Holding h.mu, no acknowledgement can be recorded
// meanwhile, so every batch in syncAcked returned before the clone began.
func (h *crashHistory) crash(fs *vfs.CrashableFS, o vfs.CrashCloneOptions) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clone != nil {
		return
	}
	h.mustHave = append(slices.Clone(h.base), h.syncAcked...)
	h.clone = fs.CrashClone(o)
}

// crashAt returns an Injector that fails nothing and calls fire once, just
// before the nth operation it sees (n >= 1). n <= 0 never fires.
func crashAt(n int64, fire func()) vfs.Injector {
	var count atomic.Int64
	return vfs.InjectorFunc(func(vfs.Op, string) error {
		if count.Add(1) == n {
			fire()
		}
		return nil
	})
}

// countOps counts every operation an ErrorFS has seen.
func countOps(e *vfs.ErrorFS) int64 {
	var n int64
	for _, c := range e.Counts() {
		n += c
	}
	return n
}

// readCrashLog returns the batch IDs of the "log" key.
func readCrashLog(t *testing.T, db *lsm.DB) []int {
	v, err := db.Get([]byte(crashLogKey))
	if errors.Is(err, lsm.ErrNotFound) {
		return nil
	}
	require.NoError(t, err, "read the log key")
	var ids []int
	for _, s := range strings.Split(string(v), ",") {
		id, err := strconv.Atoi(s)
		require.NoError(t, err, "the log key %q holds something that is not a batch ID", v)
		ids = append(ids, id)
	}
	return ids
}

// crashWorkload runs writers concurrent batch writers of nbatches each, and
// a goroutine that flushes and compacts as the acknowledgements go by.
func crashWorkload(t *testing.T, db *lsm.DB, h *crashHistory, seed uint64, gen, writers, nbatches int) {
	var wg sync.WaitGroup
	tick := make(chan struct{}, 1)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(gen*100+w)))
			for range nbatches {
				b := newCrashBatch(rng, int(h.nextID.Add(1)), rng.IntN(10) < 3)
				h.record(b)
				if err := b.apply(t, db); err != nil {
					t.Errorf("writer %d: batch %d: %v", w, b.id, err)
					return
				}
				if h.acked(b)%20 == 0 {
					select {
					case tick <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		rng := rand.New(rand.NewPCG(seed, uint64(gen*100+99)))
		for {
			select {
			case <-done:
				return
			case <-tick:
			}
			var err error
			switch rng.IntN(4) {
			case 0, 1:
				err = db.Flush()
			case 2:
				err = db.Compact(nil, nil)
			default:
				a, b := rng.IntN(crashDataKeys), rng.IntN(crashDataKeys)
				err = db.Compact([]byte(crashDataKey(min(a, b))), []byte(crashDataKey(max(a, b))))
			}
			if err != nil {
				t.Errorf("flush/compact during the workload: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	bg.Wait()
}

// checkRecovered checks a DB opened after a crash against the history:
// the recovered log is a prefix of committed (the live DB's log), holds
// every batch of mustHave, and the state is exactly the replay of the
// recovered log. It returns the recovered log.
func checkRecovered(t *testing.T, db *lsm.DB, batches map[int]*crashBatch, committed, mustHave []int, ctx string) []int {
	got := readCrashLog(t, db)
	if len(got) > len(committed) || !slices.Equal(got, committed[:len(got)]) {
		require.Failf(t, "recovered history is not a prefix of the commit order",
			"%s\nrecovered log (%d batches): %v\ncommit order (%d batches): %v", ctx, len(got), got, len(committed), committed)
	}
	in := make(map[int]bool, len(got))
	for _, id := range got {
		in[id] = true
	}
	for _, id := range mustHave {
		if !in[id] {
			require.Failf(t, "a durable batch was lost",
				"%s\nbatch %d was acknowledged as synced (or recovered before) before the crash, but the recovered log of %d batches does not hold it\nrecovered: %v",
				ctx, id, len(got), got)
		}
	}

	want := replayCrashBatches(t, batches, got)
	it, err := db.NewIter(nil)
	require.NoError(t, err, ctx)
	gotState := map[string]string{}
	var keys []string
	for ok := it.First(); ok; ok = it.Next() {
		keys = append(keys, string(it.Key()))
		gotState[string(it.Key())] = string(it.Value())
	}
	require.NoError(t, it.Close(), ctx)
	require.True(t, slices.IsSorted(keys), "%s: iteration out of order: %q", ctx, keys)

	// No partial batch: a marker is there exactly for the batches in the
	// recovered log.
	for _, k := range keys {
		if id, ok := strings.CutPrefix(k, "batch/"); ok {
			n, _ := strconv.Atoi(id)
			if !in[n] {
				require.Failf(t, "partial batch", "%s\nthe marker of batch %d survived, but its log entry did not (recovered log %v)", ctx, n, got)
			}
		}
	}
	for id := range in {
		if _, ok := gotState[crashMarkerKey(id)]; !ok {
			require.Failf(t, "partial batch", "%s\nbatch %d is in the recovered log, but its marker is missing", ctx, id)
		}
	}

	for _, k := range boundedKeys(want, nil, nil) {
		if g, ok := gotState[k]; !ok || g != want[k] {
			require.Failf(t, "recovered state differs from the replay of the recovered log",
				"%s\nkey %q: got %q (present %v), want %q\nrecovered log: %v", ctx, k, trunc([]byte(g)), ok, trunc([]byte(want[k])), got)
		}
	}
	for _, k := range keys {
		if _, ok := want[k]; !ok {
			require.Failf(t, "recovered state differs from the replay of the recovered log",
				"%s\nkey %q = %q is present but the replay has no such key\nrecovered log: %v", ctx, k, trunc([]byte(gotState[k])), got)
		}
	}
	// Point reads agree with the iterator.
	for i := range crashDataKeys {
		k := crashDataKey(i)
		v, err := db.Get([]byte(k))
		if w, ok := want[k]; ok {
			require.NoError(t, err, "%s: Get(%q)", ctx, k)
			require.Equal(t, w, string(v), "%s: Get(%q)", ctx, k)
		} else {
			require.ErrorIs(t, err, lsm.ErrNotFound, "%s: Get(%q)", ctx, k)
		}
	}
	return got
}

func crashOptions(rng *rand.Rand, fs vfs.FS) *lsm.Options {
	o := &lsm.Options{
		FS:                    fs,
		MemTableSize:          8<<10 + rng.IntN(24<<10),
		TargetFileSize:        8<<10 + rng.Int64N(24<<10),
		L0CompactionThreshold: 2,
		LBaseMaxBytes:         32<<10 + rng.Int64N(32<<10),
		BlockSize:             256 + rng.IntN(769),
		CacheSize:             64 << 10,
		Merger:                crashMerger,
	}
	if rng.IntN(3) == 0 {
		o.L0StopWritesThreshold = 3
	}
	return o
}

// crashModels are the disk models every crash sweep runs under: a disk that
// keeps a prefix of each file's unsynced data, and one that keeps a random
// subset of its unsynced pages (zeros for the others), as out-of-order page
// writeback leaves it.
var crashModels = []vfs.UnsyncedModel{vfs.UnsyncedPrefix, vfs.UnsyncedPages}

// crashCounts totals what a sweep checked, for its log line.
type crashCounts struct {
	rounds, clones, acked atomic.Int64
	// tails counts the reopenings that dropped a damaged log tail, and
	// holes those whose tail held whole records after the damage (a lost
	// page).
	tails, holes atomic.Int64
}

// reopened counts a reopening and what its recovery dropped.
func (c *crashCounts) reopened(db *lsm.DB) {
	c.clones.Add(1)
	m := db.Metrics()
	if m.WALTailBytesDropped > 0 {
		c.tails.Add(1)
	}
	if m.WALTailRecordsDropped > 1 {
		c.holes.Add(1)
	}
}

func (c *crashCounts) log(t *testing.T, model vfs.UnsyncedModel) {
	t.Logf("model %s: %d rounds, %d crash clones reopened (%d dropped a damaged log tail, %d of them with whole records after a lost page), %d synced acknowledgements checked",
		model, c.rounds.Load(), c.clones.Load(), c.tails.Load(), c.holes.Load(), c.acked.Load())
}

func TestCrash(t *testing.T) {
	rounds, writers, nbatches := 30, 4, 40
	if longTests() {
		rounds = 2000
	}
	// Calibrate: how many file system operations one workload issues, so
	// that the crash operation can be drawn from the whole workload.
	calib := vfs.NewErrorFS(vfs.NewCrashable(), nil)
	{
		rng := rand.New(rand.NewPCG(0, 0))
		db, err := lsm.Open("db", crashOptions(rng, calib))
		require.NoError(t, err)
		h := &crashHistory{t: t, batches: map[int]*crashBatch{}}
		crashWorkload(t, db, h, 0, 0, writers, nbatches)
		require.NoError(t, db.Close())
	}
	totalOps := countOps(calib)
	t.Logf("one workload issues about %d file system operations", totalOps)

	for _, model := range crashModels {
		var counts crashCounts
		t.Run(model.String(), func(t *testing.T) {
			run := func(t *testing.T, seed uint64) {
				runCrashRound(t, seed, model, writers, nbatches, totalOps, &counts)
			}
			if s, ok := envSeed(t); ok {
				t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { run(t, s) })
				return
			}
			for seed := range rounds {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					t.Parallel()
					run(t, uint64(seed))
				})
			}
		})
		counts.log(t, model)
	}
}

// runCrashRound runs three generations: a workload on a fresh DB crashed at
// a random operation; a reopen of the clone (itself crashed at a random
// operation of the recovery, half the time) followed by a second workload
// crashed again; and a final reopen.
func runCrashRound(t *testing.T, seed uint64, model vfs.UnsyncedModel, writers, nbatches int, totalOps int64, counts *crashCounts) {
	rng := rand.New(rand.NewPCG(seed, 0x63726173))
	h := &crashHistory{t: t, batches: map[int]*crashBatch{}}
	fs := vfs.NewCrashable()
	opts := crashOptions(rng, nil)
	if model == vfs.UnsyncedPrefix && seed%2 == 1 {
		// A disk that keeps a prefix can only cut the last record short,
		// which strict recovery accepts too.
		opts.WALRecovery = lsm.WALRecoveryStrict
	}
	ctx := func(gen int, what string) string {
		return fmt.Sprintf("model=%s wal-recovery=%s seed=%d generation=%d: %s\nreplay: go test ./lsm -run 'TestCrash/%s/seed=%d$' -v (or MAILBRICKS_SEED=%d go test ./lsm -run TestCrash/%s -v)",
			model, opts.WALRecovery, seed, gen, what, model, seed, seed, model)
	}

	const generations = 3
	for gen := range generations {
		efs := vfs.NewErrorFS(fs, nil)
		o := *opts
		o.FS = efs

		var (
			recoveryMu      sync.Mutex // the crash may come from a background compaction
			recoveryClone   *vfs.CrashableFS
			recoveryCrashOp int64
		)
		if gen > 0 && rng.IntN(2) == 0 {
			// Crash during recovery: the clone fs is entirely durable, so a
			// crash at any point of the recovery must lose nothing.
			recoveryCrashOp = 1 + rng.Int64N(60)
			src := fs
			efs.SetInjector(crashAt(recoveryCrashOp, func() {
				c := src.CrashClone(vfs.CrashCloneOptions{Seed: int64(seed), UnsyncedDataPercent: 50, Unsynced: model})
				recoveryMu.Lock()
				recoveryClone = c
				recoveryMu.Unlock()
			}))
		}
		db, err := lsm.Open("db", &o)
		require.NoError(t, err, ctx(gen, "open after the crash"))
		efs.SetInjector(nil)
		recoveryMu.Lock()
		recovered := recoveryClone
		recoveryMu.Unlock()

		if gen > 0 {
			got := checkRecovered(t, db, h.batches, h.committed, h.mustHave, ctx(gen, "state after the crash"))
			counts.reopened(db)
			counts.acked.Add(int64(len(h.mustHave) - len(h.base)))
			if recovered != nil {
				// The recovery may have been cut short at any operation; a
				// second recovery must find exactly the same history.
				o2 := *opts
				o2.FS = recovered
				db2, err := lsm.Open("db", &o2)
				require.NoError(t, err, ctx(gen, fmt.Sprintf("open after a crash at operation %d of the recovery", recoveryCrashOp)))
				got2 := checkRecovered(t, db2, h.batches, got, got,
					ctx(gen, fmt.Sprintf("state after a crash at operation %d of the recovery", recoveryCrashOp)))
				require.Equal(t, got, got2, ctx(gen, "a crash during recovery changed the recovered history"))
				counts.reopened(db2)
				require.NoError(t, db2.Close())
			}
			h.base = got
			if gen == generations-1 {
				require.NoError(t, db.Close())
				counts.rounds.Add(1)
				return
			}
		}

		// The workload, crashed at a random operation (or, if the draw is
		// past its end, right after it).
		h.clone, h.syncAcked, h.acks, h.gen = nil, nil, 0, nil
		pct := []int{0, 100, rng.IntN(101)}[rng.IntN(3)]
		co := vfs.CrashCloneOptions{Seed: int64(seed)*10 + int64(gen), UnsyncedDataPercent: pct, Unsynced: model}
		crashOp := 1 + rng.Int64N(totalOps)
		src := fs
		efs.SetInjector(crashAt(crashOp, func() { h.crash(src, co) }))
		crashWorkload(t, db, h, seed, gen, writers, nbatches)
		efs.SetInjector(nil)
		if t.Failed() {
			db.Close()
			return
		}
		h.crash(fs, co)
		h.committed = readCrashLog(t, db)
		h.checkAckOrder(t, h.committed[len(h.base):], ctx(gen, "the live DB after the workload"))
		require.NoError(t, db.Close())
		fs = h.clone
		t.Logf("generation %d: %d batches committed; crash at operation %d of about %d, keeping %d%% of unsynced data; %d synced acknowledgements before it",
			gen, len(h.committed), crashOp, totalOps, pct, len(h.mustHave)-len(h.base))
	}
}

// TestCrashDuringFlushAndCompact crashes at sampled operations of an
// explicit Flush followed by Compact(nil, nil), with no writes in flight.
// Until Flush returns, the crash may lose unsynced batches (a prefix
// survives); once it has returned, everything is durable, and compaction,
// cut anywhere, must lose nothing.
func TestCrashDuringFlushAndCompact(t *testing.T) {
	rounds := 8
	if longTests() {
		rounds = 400
	}
	run := func(t *testing.T, seed uint64, model vfs.UnsyncedModel, counts *crashCounts) {
		rng := rand.New(rand.NewPCG(seed, 0x666c757368))
		fs := vfs.NewCrashable()
		efs := vfs.NewErrorFS(fs, nil)
		o := crashOptions(rng, efs)
		o.MemTableSize = 64 << 10
		o.L0CompactionThreshold = 8
		o.L0StopWritesThreshold = 0
		db, err := lsm.Open("db", o)
		require.NoError(t, err)
		h := &crashHistory{t: t, batches: map[int]*crashBatch{}}
		write := func(n int) {
			for range n {
				b := newCrashBatch(rng, int(h.nextID.Add(1)), rng.IntN(10) < 2)
				h.record(b)
				require.NoError(t, b.apply(t, db))
				h.acked(b)
			}
		}
		// Tables in level 0 and below, and unflushed batches, some of them
		// unsynced, in the memtable.
		write(60)
		require.NoError(t, db.Flush())
		write(60)
		require.NoError(t, db.Compact(nil, nil))
		write(60)
		require.NoError(t, db.Flush())
		write(40)

		type crashCase struct {
			clone       *vfs.CrashableFS
			op          int64
			flushDone   bool
			mustHave    []int
			unsyncedPct int
		}
		var (
			cases     []crashCase
			op        atomic.Int64
			flushDone atomic.Bool
		)
		every := 1 + rng.IntN(4)
		efs.SetInjector(vfs.InjectorFunc(func(vfs.Op, string) error {
			n := op.Add(1)
			if n%int64(every) != 0 {
				return nil
			}
			pct := []int{0, 100, 50}[n%3]
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(cases) >= 60 {
				return nil
			}
			cases = append(cases, crashCase{
				clone:       fs.CrashClone(vfs.CrashCloneOptions{Seed: int64(seed) + n, UnsyncedDataPercent: pct, Unsynced: model}),
				op:          n,
				flushDone:   flushDone.Load(),
				mustHave:    slices.Clone(h.syncAcked),
				unsyncedPct: pct,
			})
			return nil
		}))
		require.NoError(t, db.Flush())
		flushDone.Store(true)
		require.NoError(t, db.Compact(nil, nil))
		efs.SetInjector(nil)
		committed := readCrashLog(t, db)
		require.Len(t, committed, 220)
		require.NoError(t, db.Close())
		h.mu.Lock()
		cases = slices.Clone(cases)
		h.mu.Unlock()
		require.NotEmpty(t, cases)

		for _, c := range cases {
			what := "during Flush"
			if c.flushDone {
				what = "during Compact, after Flush returned"
			}
			ctx := fmt.Sprintf("model=%s seed=%d: crash at operation %d (%s), keeping %d%% of unsynced data\nreplay: go test ./lsm -run 'TestCrashDuringFlushAndCompact/%s/seed=%d$' -v",
				model, seed, c.op, what, c.unsyncedPct, model, seed)
			o2 := *o
			o2.FS = c.clone
			db2, err := lsm.Open("db", &o2)
			require.NoError(t, err, ctx)
			mustHave := c.mustHave
			if c.flushDone {
				mustHave = committed
			}
			checkRecovered(t, db2, h.batches, committed, mustHave, ctx)
			counts.reopened(db2)
			require.NoError(t, db2.Close(), ctx)
			counts.acked.Add(int64(len(mustHave)))
		}
		counts.rounds.Add(1)
	}
	for _, model := range crashModels {
		var counts crashCounts
		t.Run(model.String(), func(t *testing.T) {
			if s, ok := envSeed(t); ok {
				t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { run(t, s, model, &counts) })
				return
			}
			for seed := range rounds {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					t.Parallel()
					run(t, uint64(seed), model, &counts)
				})
			}
		})
		counts.log(t, model)
	}
}

// crashAtEveryOp runs work on a CrashableFS behind an ErrorFS and takes a
// clone before each of its file system operations that change something,
// keeping, in each clone, a part of every file's unsynced data (a torn
// tail). It returns the clones with the operation each was taken before.
func crashAtEveryOp(fs *vfs.CrashableFS, efs *vfs.ErrorFS, seed int64, model vfs.UnsyncedModel, work func()) (clones []*vfs.CrashableFS, ops []string) {
	var mu sync.Mutex
	efs.SetInjector(vfs.InjectorFunc(func(op vfs.Op, path string) error {
		switch op {
		case vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpRemove:
		default:
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		clones = append(clones, fs.CrashClone(vfs.CrashCloneOptions{Seed: seed + int64(len(clones)), UnsyncedDataPercent: 100, Unsynced: model}))
		ops = append(ops, fmt.Sprintf("%s %s", op, path))
		return nil
	}))
	work()
	efs.SetInjector(nil)
	return clones, ops
}

// commitSerialBatches commits 20 batches one after another (the tenth
// synced) and returns their history.
func commitSerialBatches(t *testing.T, db *lsm.DB, rng *rand.Rand) *crashHistory {
	h := &crashHistory{t: t, batches: map[int]*crashBatch{}}
	for i := range 20 {
		b := newCrashBatch(rng, int(h.nextID.Add(1)), i == 9)
		h.record(b)
		require.NoError(t, b.apply(t, db))
		h.acked(b)
	}
	return h
}

// TestCrashDuringWALRotation crashes before each file system operation of a
// Flush that finds unsynced batches in the memtable's log. Flush rotates the
// log; whatever the cut, the reopened DB must hold a prefix of the batches,
// and the synced ones.
//
// Regression: the engine once created the new log, and synced the
// directory, before syncing the old log. A crash between the two left a
// torn tail in a log that was no longer the newest, and Open refused the DB
// ("torn record in a log that is not the newest") after a plain power loss.
func TestCrashDuringWALRotation(t *testing.T) {
	for _, model := range crashModels {
		t.Run(model.String(), func(t *testing.T) {
			fs := vfs.NewCrashable()
			efs := vfs.NewErrorFS(fs, nil)
			o := &lsm.Options{FS: efs, Merger: crashMerger}
			db, err := lsm.Open("db", o)
			require.NoError(t, err)
			h := commitSerialBatches(t, db, rand.New(rand.NewPCG(1, 2)))
			clones, ops := crashAtEveryOp(fs, efs, 1, model, func() { require.NoError(t, db.Flush()) })
			committed := readCrashLog(t, db)
			require.NoError(t, db.Close())
			for i, c := range clones {
				ctx := fmt.Sprintf("model %s: crash before operation %d of Flush (%s)", model, i+1, ops[i])
				o2 := *o
				o2.FS = c
				db2, err := lsm.Open("db", &o2)
				require.NoError(t, err, ctx)
				checkRecovered(t, db2, h.batches, committed, h.syncAcked, ctx)
				require.NoError(t, db2.Close())
			}
			t.Logf("model %s: %d crash clones reopened, %d synced acknowledgements checked in each", model, len(clones), len(h.syncAcked))
		})
	}
}

// TestCrashDuringRecovery crashes before each file system operation of an
// Open that recovers a log with a torn tail (what a crash during unsynced
// writes leaves). The clone it recovers from is entirely durable, so every
// cut of the recovery must reopen to exactly the same history. (A recovery
// that created its new log before its new manifest was durable left the
// torn log behind a newer, empty one, and the next Open failed.)
func TestCrashDuringRecovery(t *testing.T) {
	for _, model := range crashModels {
		t.Run(model.String(), func(t *testing.T) { testCrashDuringRecovery(t, model) })
	}
}

func testCrashDuringRecovery(t *testing.T, model vfs.UnsyncedModel) {
	fs := vfs.NewCrashable()
	o := &lsm.Options{FS: fs, Merger: crashMerger}
	db, err := lsm.Open("db", o)
	require.NoError(t, err)
	h := commitSerialBatches(t, db, rand.New(rand.NewPCG(3, 4)))
	// A power loss that keeps part of the unsynced tail of the log: cut in
	// the middle of a record, or (pages) with a lost page before intact
	// data.
	damaged := tornTail
	if model == vfs.UnsyncedPages {
		damaged = logHole
	}
	var crashed *vfs.CrashableFS
	for seed := int64(0); crashed == nil; seed++ {
		require.Less(t, seed, int64(1000), "no crash clone with a damaged log tail")
		c := fs.CrashClone(vfs.CrashCloneOptions{Seed: seed, UnsyncedDataPercent: 100, Unsynced: model})
		names, err := c.List("db")
		require.NoError(t, err)
		for _, n := range names {
			if strings.HasSuffix(n, ".log") && damaged(t, c, "db/"+n) {
				crashed = c
			}
		}
	}
	committed := readCrashLog(t, db)
	require.NoError(t, db.Close())

	efs := vfs.NewErrorFS(crashed, nil)
	o1 := *o
	o1.FS = efs
	var db1 *lsm.DB
	clones, ops := crashAtEveryOp(crashed, efs, 6, model, func() {
		db1, err = lsm.Open("db", &o1)
		require.NoError(t, err)
	})
	recovered := checkRecovered(t, db1, h.batches, committed, h.syncAcked, "first recovery")
	m := db1.Metrics()
	require.Positive(t, m.WALTailBytesDropped, "the damaged tail is reported")
	require.Positive(t, m.WALTailRecordsDropped, "the damaged tail is reported")
	require.NoError(t, db1.Close())
	for i, c := range clones {
		ctx := fmt.Sprintf("model %s: crash before operation %d of the recovery (%s)", model, i+1, ops[i])
		o2 := *o
		o2.FS = c
		db2, err := lsm.Open("db", &o2)
		require.NoError(t, err, ctx)
		got := checkRecovered(t, db2, h.batches, recovered, recovered, ctx)
		require.Equal(t, recovered, got, ctx)
		require.NoError(t, db2.Close())
	}
	t.Logf("model %s: %d of %d batches recovered, %d dropped bytes reported; %d crash clones of the recovery reopened",
		model, len(recovered), len(committed), m.WALTailBytesDropped, len(clones))
}

// logHole reports whether the log at path holds a lost page with data after
// it: a run of at least 64 zeros (the workload writes none) that ends at a
// page boundary, followed by non-zero bytes.
func logHole(t *testing.T, fs vfs.FS, path string) bool {
	data := readFile(t, fs, path)
	for p := vfs.CrashPageSize; p < len(data); p += vfs.CrashPageSize {
		if bytes.Count(data[p-64:p], []byte{0}) == 64 && bytes.IndexFunc(data[p:], func(r rune) bool { return r != 0 }) >= 0 {
			return true
		}
	}
	return false
}

// tornTail reports whether the log at path ends inside a record, by walking
// the record headers (see lsm/internal/record: 12-byte header, length in
// bytes 4..8).
func tornTail(t *testing.T, fs vfs.FS, path string) bool {
	data := readFile(t, fs, path)
	off := 0
	for off+12 <= len(data) {
		off += 12 + int(binary.LittleEndian.Uint32(data[off+4:off+8]))
	}
	return off != len(data)
}

func readFile(t *testing.T, fs vfs.FS, path string) []byte {
	f, err := fs.Open(path)
	require.NoError(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	require.NoError(t, err)
	return data
}
