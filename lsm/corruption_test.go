package lsm_test

// Corruption tests damage one file of a closed DB (a flipped byte or a
// zeroed range) and reopen it: the DB must report an error for which
// errors.Is(err, lsm.ErrCorruption), from Open, Get or an iterator, or
// return exactly the right data. Never different data, never a panic.
//
// The DB image holds every kind of file:
//
//   - tables in level 0 and level 1, written uncompressed, with S2 and with
//     zstd, holding sets, merges, deletions and range tombstones;
//   - the MANIFEST and CURRENT;
//   - two live write-ahead logs: an older one, whose memtable was rotated
//     out and was waiting to be flushed (the image is taken while that
//     flush is held at the creation of its table), and the newest one.
//
// What "right data" means depends on the file:
//
//   - Table, MANIFEST, CURRENT: every write is acknowledged and was durable
//     before the damage, so the only right answer is the full state. A read
//     that touches a damaged block may fail with ErrCorruption instead;
//     other reads must still return the full state's answer. A damaged
//     MANIFEST or CURRENT must fail Open, or leave the data intact.
//   - Older log: it was synced whole before the newer log received its
//     first record, so any damage in it is corruption: Open must fail with
//     ErrCorruption.
//   - Newest log: damage confined to its final records, with no intact
//     record after it, is indistinguishable from a write torn by a crash,
//     and the engine may drop those records: the right answer is then the
//     state after the records before the first damaged one (or
//     ErrCorruption). So is damage that leaves a record's bytes zero from
//     its start to a page boundary, the signature of a page lost in a
//     crash. Other damage followed by an intact record is corruption in
//     the middle of the log (the record reader finds the intact record):
//     Open must fail with ErrCorruption.
//
// Offsets are sampled with a fixed seed; with MAILBRICKS_LONG=1 every Nth
// byte of every file is damaged both ways.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

const corruptDir = "db"

// corruptImage is a closed DB's files and what they hold.
type corruptImage struct {
	files map[string][]byte
	opts  lsm.Options // FS unset
	keys  [][]byte    // every key ever written
	full  map[string]string
	// newestLog and olderLog name the two live logs. newestStates[i] is the
	// state after the first i records of the newest log.
	newestLog, olderLog string
	newestStates        []map[string]string
	// outcomes counts, per subtest, how the cases ended.
	outcomes map[string]map[string]int
}

func (img *corruptImage) note(t *testing.T, outcome string) {
	if img.outcomes == nil {
		img.outcomes = map[string]map[string]int{}
	}
	if img.outcomes[t.Name()] == nil {
		img.outcomes[t.Name()] = map[string]int{}
	}
	img.outcomes[t.Name()][outcome]++
}

// logOutcomes reports how a subtest's cases ended, to show that the damage
// was noticed where it had to be.
func (img *corruptImage) logOutcomes(t *testing.T) {
	t.Logf("outcomes: %v", img.outcomes[t.Name()])
}

// buildCorruptImage writes the DB described at the top of the file and
// returns its files, copied while the flush of the older log is held.
func buildCorruptImage(t *testing.T) *corruptImage {
	rng := rand.New(rand.NewPCG(42, 42))
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem, nil)
	img := &corruptImage{
		opts: lsm.Options{
			MemTableSize:          32 << 10,
			BlockSize:             512,
			CacheSize:             64 << 10,
			L0CompactionThreshold: 8,
			TargetFileSize:        16 << 10,
			LBaseMaxBytes:         64 << 10,
			Merger:                concatMerger,
		},
		full: map[string]string{},
	}
	for i := range 150 {
		img.keys = append(img.keys, []byte(fmt.Sprintf("key/%03d", i)))
	}
	open := func(c lsm.Compression) *lsm.DB {
		o := img.opts
		o.FS = efs
		o.Compression = c
		db, err := lsm.Open(corruptDir, &o)
		require.NoError(t, err)
		return db
	}
	key := func() []byte { return img.keys[rng.IntN(len(img.keys))] }
	value := func() []byte {
		v := make([]byte, 10+rng.IntN(290))
		for i := range v {
			v[i] = 'a' + byte(rng.IntN(26))
		}
		return v
	}
	// write makes one random write, which is one WAL record.
	write := func(db *lsm.DB, o *lsm.WriteOptions) {
		switch r := rng.IntN(20); {
		case r < 13:
			k, v := key(), value()
			require.NoError(t, db.Set(k, v, o))
			img.full[string(k)] = string(v)
		case r < 16:
			k, v := key(), value()
			require.NoError(t, db.Merge(k, v, o))
			require.NoError(t, modelMerge(concatMerger, img.full, k, v))
		case r < 18:
			k := key()
			require.NoError(t, db.Delete(k, o))
			delete(img.full, string(k))
		case r < 19:
			i := rng.IntN(len(img.keys) - 5)
			a, b := img.keys[i], img.keys[i+1+rng.IntN(4)]
			require.NoError(t, db.DeleteRange(a, b, o))
			modelDeleteRange(img.full, a, b)
		default:
			b := db.NewBatch()
			for range 2 + rng.IntN(4) {
				k, v := key(), value()
				if rng.IntN(3) == 0 {
					b.Merge(k, v)
					require.NoError(t, modelMerge(concatMerger, img.full, k, v))
				} else {
					b.Set(k, v)
					img.full[string(k)] = string(v)
				}
			}
			require.NoError(t, b.Commit(o))
		}
	}

	db := open(lsm.NoCompression)
	for range 120 {
		write(db, nil)
	}
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())

	db = open(lsm.S2Compression)
	for range 200 {
		write(db, nil)
	}
	require.NoError(t, db.Compact(nil, nil))
	for range 100 {
		write(db, nil)
	}
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())

	// Several flushes, so that the manifest holds several version edits.
	db = open(lsm.ZstdCompression)
	for range 3 {
		for range 40 {
			write(db, nil)
		}
		require.NoError(t, db.Flush())
	}

	// Hold the next flush at the creation of its table, so that the log of
	// the memtable it flushes stays live next to the newer one.
	reached, release := make(chan struct{}), make(chan struct{})
	held := false
	efs.SetInjector(vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpCreate && strings.HasSuffix(path, ".sst") && !held {
			held = true
			close(reached)
			<-release
		}
		return nil
	}))
	olderWrites := 0
	for {
		before := maps.Clone(img.full)
		write(db, nil)
		if db.Metrics().MemTableCount == 2 {
			// This write rotated the memtable: it is the first record of the
			// newest log.
			img.newestStates = append(img.newestStates, before, maps.Clone(img.full))
			break
		}
		olderWrites++
		require.Less(t, olderWrites, 2000, "the memtable never rotated")
	}
	for i := range 9 {
		o := lsm.NoSync
		if i == 8 {
			o = lsm.Sync // everything appended so far is written out and synced
		}
		write(db, o)
		img.newestStates = append(img.newestStates, maps.Clone(img.full))
	}
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("the flush of the rotated memtable never started")
	}
	img.files = map[string][]byte{}
	names, err := mem.List(corruptDir)
	require.NoError(t, err)
	var logs []string
	for _, n := range names {
		img.files[n] = readFile(t, mem, mem.PathJoin(corruptDir, n))
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, n)
		}
	}
	close(release)
	require.NoError(t, db.Close())

	// Check that the image is what the tests below assume.
	sort.Strings(logs)
	require.Len(t, logs, 2, "the image must hold two live logs: %v", names)
	img.olderLog, img.newestLog = logs[0], logs[1]
	require.Len(t, logRecords(img.files[img.olderLog]), olderWrites, "records of the older log")
	require.Len(t, logRecords(img.files[img.newestLog]), len(img.newestStates)-1, "records of the newest log")
	var tables int
	for n := range img.files {
		if strings.HasSuffix(n, ".sst") {
			tables++
		}
	}
	require.GreaterOrEqual(t, tables, 3, "the image must hold several tables: %v", names)
	return img
}

// logRecords returns the [start, end) offsets of the records of an intact
// log (see lsm/internal/record: a 12-byte header whose bytes 4..8 are the
// payload length).
func logRecords(data []byte) [][2]int {
	var recs [][2]int
	for off := 0; off+12 <= len(data); {
		end := off + 12 + int(binary.LittleEndian.Uint32(data[off+4:off+8]))
		recs = append(recs, [2]int{off, end})
		off = end
	}
	return recs
}

// corruptCase is one damaged copy of the image.
type corruptCase struct {
	file string
	desc string
	data []byte // the damaged file
}

// damage returns the cases for the file at the given offsets: a flipped
// byte and a zeroed range at each.
func damage(rng *rand.Rand, file string, orig []byte, offsets []int) []corruptCase {
	var cases []corruptCase
	for _, off := range offsets {
		x := byte(1 + rng.IntN(255))
		d := slices.Clone(orig)
		d[off] ^= x
		cases = append(cases, corruptCase{file, fmt.Sprintf("%s: byte %d of %d xor %#02x", file, off, len(orig), x), d})

		n := 1 + rng.IntN(32)
		end := min(len(orig), off+n)
		d = slices.Clone(orig)
		clear(d[off:end])
		cases = append(cases, corruptCase{file, fmt.Sprintf("%s: bytes [%d, %d) of %d zeroed", file, off, end, len(orig)), d})
	}
	return cases
}

// zeroPages returns a case for every whole 4 KiB page of the file: the page
// zeroed.
func zeroPages(file string, orig []byte) []corruptCase {
	var cases []corruptCase
	for p := 0; p+4<<10 <= len(orig); p += 4 << 10 {
		d := slices.Clone(orig)
		clear(d[p : p+4<<10])
		cases = append(cases, corruptCase{file, fmt.Sprintf("%s: page [%d, %d) of %d zeroed", file, p, p+4<<10, len(orig)), d})
	}
	return cases
}

// sampleOffsets returns n random offsets of a file of size bytes or, in
// long runs, every stride-th offset with stride chosen for about 1500.
func sampleOffsets(rng *rand.Rand, size, n int) []int {
	if longTests() {
		stride := max(1, size/1500)
		var offs []int
		for o := 0; o < size; o += stride {
			offs = append(offs, o)
		}
		return offs
	}
	offs := make([]int, n)
	for i := range offs {
		offs[i] = rng.IntN(size)
	}
	return offs
}

func TestCorruption(t *testing.T) {
	img := buildCorruptImage(t)
	rng := rand.New(rand.NewPCG(7, 7))
	var tables, manifests []string
	for n := range img.files {
		switch {
		case strings.HasSuffix(n, ".sst"):
			tables = append(tables, n)
		case strings.HasPrefix(n, "MANIFEST-"):
			manifests = append(manifests, n)
		}
	}
	sort.Strings(tables)
	require.Len(t, manifests, 1)

	t.Run("intact", func(t *testing.T) {
		db := img.open(t, "", nil)
		require.NotNil(t, db)
		img.checkReads(t, db, img.full, "the intact image")
		require.NoError(t, db.Close())
	})

	t.Run("table", func(t *testing.T) {
		defer img.logOutcomes(t)
		// Half the samples in one table chosen per sample, the offset
		// uniform in it (in long runs, every table is swept).
		for _, name := range tables {
			n := 30 / len(tables)
			for _, c := range damage(rng, name, img.files[name], sampleOffsets(rng, len(img.files[name]), max(n, 4))) {
				img.runCase(t, c, img.full, false)
			}
		}
	})
	t.Run("newest-log", func(t *testing.T) {
		defer img.logOutcomes(t)
		orig := img.files[img.newestLog]
		for _, c := range damage(rng, img.newestLog, orig, sampleOffsets(rng, len(orig), 30)) {
			img.runNewestLogCase(t, orig, c)
		}
		// The last record, which a crash can tear, gets its own samples.
		recs := logRecords(orig)
		last := recs[len(recs)-1]
		var offs []int
		for range 10 {
			offs = append(offs, last[0]+rng.IntN(last[1]-last[0]))
		}
		for _, c := range damage(rng, img.newestLog, orig, offs) {
			img.runNewestLogCase(t, orig, c)
		}
	})
	t.Run("older-log", func(t *testing.T) {
		defer img.logOutcomes(t)
		orig := img.files[img.olderLog]
		for _, c := range damage(rng, img.olderLog, orig, sampleOffsets(rng, len(orig), 30)) {
			if slices.Equal(c.data, orig) {
				img.runCase(t, c, img.full, false)
				continue
			}
			img.runCase(t, c, nil, true)
		}
		// The older log was synced whole: even a page of zeros, which in
		// the newest log is taken for a page lost in a crash, is corruption.
		pages := zeroPages(img.olderLog, orig)
		require.NotEmpty(t, pages)
		for _, c := range pages {
			img.runCase(t, c, nil, true)
		}
	})
	// Damage that reaches the manifest's last version edit is split from the
	// rest: an engine that takes it for a torn append drops edits that were
	// acknowledged (and whose obsolete files are gone). Elsewhere an intact
	// edit follows the damage, which the record reader reports as
	// corruption.
	name := manifests[0]
	orig := img.files[name]
	recs := logRecords(orig)
	require.GreaterOrEqual(t, len(recs), 3, "the manifest must hold several version edits")
	var earlier, last []corruptCase
	for _, c := range damage(rng, name, orig, sampleOffsets(rng, len(orig), 30)) {
		var damaged []int
		for i, r := range recs {
			if !slices.Equal(orig[r[0]:r[1]], c.data[r[0]:r[1]]) {
				damaged = append(damaged, i)
			}
		}
		if len(damaged) == 0 {
			continue
		}
		c.desc += fmt.Sprintf(" (damages version edits %v of %d)", damaged, len(recs))
		if damaged[len(damaged)-1] == len(recs)-1 {
			last = append(last, c)
		} else {
			earlier = append(earlier, c)
		}
	}
	t.Run("manifest", func(t *testing.T) {
		defer img.logOutcomes(t)
		for _, c := range earlier {
			img.runCase(t, c, img.full, false)
		}
	})
	// Regression: the engine once took any invalid final record for a torn
	// append and recovered the version before it, although that edit had
	// been synced and the files it retired deleted: Open succeeded and Get
	// returned older, overwritten values. Damage over the last two edits
	// (a synced one and the last) did the same.
	t.Run("manifest-last-edit", func(t *testing.T) {
		defer img.logOutcomes(t)
		for _, c := range last {
			img.runCase(t, c, img.full, false)
		}
	})
	t.Run("current", func(t *testing.T) {
		defer img.logOutcomes(t)
		// CURRENT is a few bytes: every one of them, both ways.
		orig := img.files["CURRENT"]
		offs := make([]int, len(orig))
		for i := range offs {
			offs[i] = i
		}
		for _, c := range damage(rng, "CURRENT", orig, offs) {
			img.runCase(t, c, img.full, false)
		}
	})
}

// runNewestLogCase classifies damage to the newest log (see the top of the
// file) and runs the case.
func (img *corruptImage) runNewestLogCase(t *testing.T, orig []byte, c corruptCase) {
	recs := logRecords(orig)
	first := -1
	intactAfter := false
	for i, r := range recs {
		if !slices.Equal(orig[r[0]:r[1]], c.data[r[0]:r[1]]) {
			if first < 0 {
				first = i
			}
		} else if first >= 0 {
			intactAfter = true
		}
	}
	switch {
	case first < 0:
		// Zeroes over zeroes: nothing changed.
		img.runCase(t, c, img.full, false)
	case intactAfter && lostPage(c.data, recs[first]):
		// Zeros from the record's start to a page boundary are what a lost
		// page leaves in the unsynced tail (see WALRecoveryDropDamagedTail).
		c.desc += fmt.Sprintf(" (damages record %d of %d like a lost page: the log may be cut there)", first, len(recs))
		img.runCase(t, c, img.newestStates[first], false)
	case intactAfter:
		c.desc += fmt.Sprintf(" (damages record %d of %d, and an intact record follows)", first, len(recs))
		img.runCase(t, c, nil, true)
	default:
		c.desc += fmt.Sprintf(" (damages record %d of %d and no intact record follows: the log may be cut there)", first, len(recs))
		img.runCase(t, c, img.newestStates[first], false)
	}
}

// lostPage reports whether the record rec of the log data overlaps a page
// that holds only zeros from the record's start (or its own) to its end (or
// the end of the log): the signature of a page lost in a crash.
func lostPage(data []byte, rec [2]int) bool {
	const page = 4 << 10
	for p := rec[0] / page * page; p < rec[1]; p += page {
		if !slices.ContainsFunc(data[max(p, rec[0]):min(p+page, len(data))], func(b byte) bool { return b != 0 }) {
			return true
		}
	}
	return false
}

// open opens a copy of the image in which file (if not "") holds data.
func (img *corruptImage) open(t *testing.T, file string, data []byte) *lsm.DB {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll(corruptDir, 0o755))
	for n, d := range img.files {
		if n == file {
			d = data
		}
		f, err := fs.Create(fs.PathJoin(corruptDir, n))
		require.NoError(t, err)
		_, err = f.Write(d)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	o := img.opts
	o.FS = fs
	db, err := lsm.Open(corruptDir, &o)
	if err != nil {
		require.ErrorIs(t, err, lsm.ErrCorruption, "Open failed with an error that is not ErrCorruption")
		return nil
	}
	return db
}

// runCase opens the damaged copy. If mustFail, Open must fail with
// ErrCorruption; otherwise Open may fail with ErrCorruption, and if it
// succeeds every read must return want's answer or ErrCorruption.
func (img *corruptImage) runCase(t *testing.T, c corruptCase, want map[string]string, mustFail bool) {
	defer func() {
		if r := recover(); r != nil {
			require.Failf(t, "panic", "%s: %v", c.desc, r)
		}
	}()
	var db *lsm.DB
	func() {
		defer func() {
			if t.Failed() {
				t.Logf("case: %s", c.desc)
			}
		}()
		db = img.open(t, c.file, c.data)
	}()
	if db == nil {
		img.note(t, "Open: ErrCorruption")
		return
	}
	if mustFail {
		db.Close()
		require.Failf(t, "damage went unnoticed", "%s: Open succeeded, want ErrCorruption", c.desc)
	}
	if n := img.checkReads(t, db, want, c.desc); n > 0 {
		img.note(t, "some reads: ErrCorruption")
	} else {
		img.note(t, "all reads correct")
	}
	if err := db.Close(); err != nil {
		require.ErrorIs(t, err, lsm.ErrCorruption, "%s: Close", c.desc)
	}
}

// checkReads reads every key and scans both ways: each read must return
// want's answer, or fail with ErrCorruption. It returns the number of reads
// that failed.
func (img *corruptImage) checkReads(t *testing.T, db *lsm.DB, want map[string]string, desc string) (failed int) {
	okErr := func(err error, what string) bool {
		if err == nil {
			return false
		}
		require.ErrorIs(t, err, lsm.ErrCorruption, "%s: %s failed with an error that is not ErrCorruption", desc, what)
		failed++
		return true
	}
	for _, k := range img.keys {
		got, err := db.Get(k)
		w, ok := want[string(k)]
		switch {
		case errors.Is(err, lsm.ErrNotFound):
			require.False(t, ok, "%s: Get(%q) returned ErrNotFound for a key that has a value", desc, k)
		case okErr(err, fmt.Sprintf("Get(%q)", k)):
		case !ok:
			require.Failf(t, "wrong data", "%s: Get(%q) = %q for a key that has no value", desc, k, trunc(got))
		default:
			require.Equal(t, w, string(got), "%s: Get(%q) returned wrong data", desc, k)
		}
	}
	keys := boundedKeys(want, nil, nil)
	for _, forward := range []bool{true, false} {
		it, err := db.NewIter(nil)
		if okErr(err, "NewIter") {
			continue
		}
		exp := slices.Clone(keys)
		if !forward {
			slices.Reverse(exp)
		}
		i := 0
		var ok bool
		if forward {
			ok = it.First()
		} else {
			ok = it.Last()
		}
		for ; ok; i++ {
			require.Less(t, i, len(exp), "%s: scan (forward=%v) returned an extra key %q", desc, forward, it.Key())
			require.Equal(t, exp[i], string(it.Key()), "%s: scan (forward=%v) returned a wrong key at %d", desc, forward, i)
			require.Equal(t, want[exp[i]], string(it.Value()), "%s: scan (forward=%v) returned a wrong value for %q", desc, forward, exp[i])
			if forward {
				ok = it.Next()
			} else {
				ok = it.Prev()
			}
		}
		err = it.Close()
		if !okErr(err, "scan") {
			require.Equal(t, len(exp), i, "%s: scan (forward=%v) stopped early without an error", desc, forward)
		}
	}
	return failed
}
