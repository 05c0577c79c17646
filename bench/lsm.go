package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/mailbricks/mailbricks"
)

// The lsm suite compares the lsm engine with pebble, badger and goleveldb.
//
// Each implementation runs, in its own process and each phase on a fresh
// directory:
//
//   - fill_random: Keys sets of 16-byte random keys and 100-byte random
//     values, one Set per operation, one writer, WAL on, no sync. Then
//     settle (see [engine.Settle]) and get_random: as many point gets, half
//     of them for keys that exist and half for keys that do not. Then
//     Close and disk_bytes: the space the directory takes.
//   - fill_seq: Keys sets shaped like mailbox appends, an 8-byte user
//     prefix and a 16-byte UUIDv7 from [mailbricks.NewMessageID], in time
//     order, for a random user each (about -per-user keys per user). Then
//     settle and scan_prefix: full bounded scans of random users' key
//     ranges.
//   - fill_sync1 and fill_sync8: -sync-ops sets with a sync on every write,
//     from one writer and from eight concurrent writers; the ratio shows
//     whether concurrent syncs share fdatasyncs (group commit).
//   - peak_rss: the child process's peak resident set size.
type lsmSuite struct {
	settle    string
	syncOps   int
	perUser   int
	valueSize int
	workloads string
}

func init() { register("lsm", newLSMSuite) }

func newLSMSuite() suite { return &lsmSuite{} }

// lsmPhases lists the workloads in report order, grouped by the phase that
// measures them.
var lsmPhases = []struct {
	name      string
	workloads []string
}{
	{"random", []string{"fill_random", "get_random", "disk_bytes"}},
	{"seq", []string{"fill_seq", "scan_prefix"}},
	{"sync", []string{"fill_sync1", "fill_sync8"}},
	{"rss", []string{"peak_rss"}},
}

// engineOptions are the settings every engine gets.
type engineOptions struct {
	// SyncWrites marks a DB used only with SetSync; badger needs to know at
	// open time.
	SyncWrites bool
	// MemTableSize and CacheSize are the memtable (write buffer) and block
	// cache sizes in bytes.
	MemTableSize int64
	CacheSize    int64
}

// engine is the small surface the workloads need. Adapters copy key and
// value if they keep them: callers reuse the buffers.
type engine interface {
	// Set writes without waiting for a sync.
	Set(key, value []byte) error
	// SetSync writes and syncs the WAL before returning. It may be called
	// concurrently.
	SetSync(key, value []byte) error
	// Get reports whether key exists; the adapter touches the value.
	Get(key []byte) (bool, error)
	// ScanPrefix iterates over every key with the prefix, reading keys and
	// values, and returns how many there were.
	ScanPrefix(prefix []byte) (int, error)
	// Settle brings the DB to the state reads are measured in: it flushes
	// the memtable where the engine offers that (ours, pebble) and does
	// nothing otherwise (badger, goleveldb). Compactions it triggers go on
	// in the background during the reads.
	Settle() error
	// CompactAll compacts the whole key space and waits, for -settle
	// compact: reads then meet each engine's fully compacted tree.
	CompactAll() error
	// Describe summarizes the tree's shape (tables per level, compactions
	// running) for the progress log.
	Describe() string
	Close() error
}

// lsmEngines opens each implementation.
var lsmEngines = map[string]func(dir string, o engineOptions) (engine, error){
	"ours":      openOurs,
	"pebble":    openPebble,
	"badger":    openBadger,
	"goleveldb": openGoleveldb,
}

func (s *lsmSuite) Impls() []string { return []string{"ours", "pebble", "badger", "goleveldb"} }

func (s *lsmSuite) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.settle, "settle", "flush", "before get_random and scan_prefix: flush (flush the memtable where the engine can; compactions continue during reads) or compact (also compact everything and wait)")
	fs.IntVar(&s.syncOps, "sync-ops", 0, "writes in each fill_sync workload (0: 2000, or 1000 with -quick)")
	fs.IntVar(&s.perUser, "per-user", 250, "average keys per user in fill_seq, and so per scan_prefix")
	fs.IntVar(&s.valueSize, "value-size", 100, "value size in bytes")
	fs.StringVar(&s.workloads, "workloads", "", "comma-separated workloads to report (default all); phases run when any of their workloads is selected")
}

func (s *lsmSuite) selected() (map[string]bool, error) {
	sel := map[string]bool{}
	if strings.TrimSpace(s.workloads) == "" {
		for _, p := range lsmPhases {
			for _, w := range p.workloads {
				sel[w] = true
			}
		}
		return sel, nil
	}
	for _, w := range strings.Split(s.workloads, ",") {
		w = strings.TrimSpace(w)
		known := false
		for _, p := range lsmPhases {
			known = known || slices.Contains(p.workloads, w)
		}
		if !known {
			return nil, fmt.Errorf("unknown workload %q", w)
		}
		sel[w] = true
	}
	return sel, nil
}

// lsmRun is one implementation's run.
type lsmRun struct {
	*lsmSuite
	impl    string
	open    func(dir string, o engineOptions) (engine, error)
	keys    int
	syncOps int
	base    string
	sel     map[string]bool
	r       *reporter
	vals    *valueSource
}

func (s *lsmSuite) Run(impl string, c *config, r *reporter) error {
	open, ok := lsmEngines[impl]
	if !ok {
		return fmt.Errorf("unknown implementation %q", impl)
	}
	sel, err := s.selected()
	if err != nil {
		return err
	}
	run := &lsmRun{lsmSuite: s, impl: impl, open: open, sel: sel, r: r, keys: c.Keys, syncOps: s.syncOps}
	if run.keys <= 0 {
		run.keys = 1_000_000
		if c.Quick {
			run.keys = 200_000
		}
	}
	if run.syncOps <= 0 {
		run.syncOps = 2000
		if c.Quick {
			run.syncOps = 1000
		}
	}
	if s.settle != "flush" && s.settle != "compact" {
		return fmt.Errorf("-settle must be flush or compact, not %q", s.settle)
	}
	if s.perUser <= 0 || s.valueSize <= 0 {
		return errors.New("-per-user and -value-size must be positive")
	}
	run.vals = newValueSource(s.valueSize)
	// NewMessageID reads 16 random bytes per ID; the pool makes that cheap
	// so fill_seq measures the engine rather than crypto/rand.
	uuid.EnableRandPool()

	run.base, err = os.MkdirTemp(c.Dir, "mailbricks-bench-lsm-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(run.base)

	phases := map[string]func() error{
		"random": run.phaseRandom,
		"seq":    run.phaseSeq,
		"sync":   run.phaseSync,
		"rss":    run.phaseRSS,
	}
	for _, p := range lsmPhases {
		if !slices.ContainsFunc(p.workloads, func(w string) bool { return sel[w] }) {
			continue
		}
		if err := phases[p.name](); err != nil {
			return fmt.Errorf("%s phase: %w", p.name, err)
		}
	}
	return nil
}

func (run *lsmRun) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lsm %-9s "+format+"\n", append([]any{run.impl}, args...)...)
}

func (run *lsmRun) report(workload string, ops int, d time.Duration, extra ...kv) {
	opsPerSec := 0.0
	if d > 0 {
		opsPerSec = float64(ops) / d.Seconds()
	}
	if d > 0 {
		run.logf("%-12s %9d ops in %8.3fs", workload, ops, d.Seconds())
	}
	if run.sel[workload] {
		run.r.result(workload, opsPerSec, extra...)
	}
}

func (run *lsmRun) openFresh(name string, o engineOptions) (engine, string, error) {
	dir := filepath.Join(run.base, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	o.MemTableSize = 64 << 20
	o.CacheSize = 64 << 20
	e, err := run.open(dir, o)
	if err != nil {
		return nil, "", fmt.Errorf("open: %w", err)
	}
	return &closeOnce{engine: e}, dir, nil
}

// closeOnce makes Close idempotent, which pebble's is not.
type closeOnce struct {
	engine
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.engine.Close() })
	return c.err
}

func (run *lsmRun) settle(e engine) error {
	start := time.Now()
	if err := e.Settle(); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	if run.lsmSuite.settle == "compact" {
		if err := e.CompactAll(); err != nil {
			return fmt.Errorf("settle: compact: %w", err)
		}
	}
	run.logf("%-12s %8.3fs (%s): %s", "settle", time.Since(start).Seconds(), run.lsmSuite.settle, e.Describe())
	return nil
}

// phaseRandom measures fill_random, get_random and disk_bytes.
func (run *lsmRun) phaseRandom() error {
	e, dir, err := run.openFresh("random", engineOptions{})
	if err != nil {
		return err
	}
	defer e.Close()
	n := run.keys
	key := make([]byte, 16)

	start := time.Now()
	for i := range n {
		randomKey(key, uint64(i))
		if err := e.Set(key, run.vals.value(uint64(i))); err != nil {
			return fmt.Errorf("fill_random: set %d: %w", i, err)
		}
	}
	run.report("fill_random", n, time.Since(start))

	if err := run.settle(e); err != nil {
		return err
	}

	rng := rand.New(rand.NewPCG(1, 2))
	found := 0
	start = time.Now()
	for range n {
		hit := rng.IntN(2) == 0
		if hit {
			randomKey(key, rng.Uint64N(uint64(n)))
		} else {
			// Keys generated from indexes far past n: none was written.
			randomKey(key, uint64(n)+1<<40+rng.Uint64N(1<<40))
		}
		ok, err := e.Get(key)
		if err != nil {
			return fmt.Errorf("get_random: get %x: %w", key, err)
		}
		if ok != hit {
			return fmt.Errorf("get_random: get %x: found=%v, want %v", key, ok, hit)
		}
		if ok {
			found++
		}
	}
	run.report("get_random", n, time.Since(start), kv{"hit_rate", float64(found) / float64(n)})
	run.logf("%-12s %s", "after gets", e.Describe())

	if err := e.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	size, alloc, byExt, err := dirBytes(dir)
	if err != nil {
		return err
	}
	run.logf("%-12s %9d bytes (%.1f MiB; %.1f MiB allocated; %s)", "disk_bytes", size, float64(size)/(1<<20), float64(alloc)/(1<<20), byExt)
	run.report("disk_bytes", 0, 0, kv{"bytes", float64(size)}, kv{"allocated", float64(alloc)})
	return nil
}

// phaseSeq measures fill_seq and scan_prefix.
func (run *lsmRun) phaseSeq() error {
	e, _, err := run.openFresh("seq", engineOptions{})
	if err != nil {
		return err
	}
	defer e.Close()
	n := run.keys
	users := max(n/run.perUser, 1)
	key := make([]byte, 24)

	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Now()
	for i := range n {
		userPrefix(key, rng.IntN(users))
		id := mailbricks.NewMessageID()
		copy(key[8:], id[:])
		if err := e.Set(key, run.vals.value(uint64(i))); err != nil {
			return fmt.Errorf("fill_seq: set %d: %w", i, err)
		}
	}
	run.report("fill_seq", n, time.Since(start))

	if err := run.settle(e); err != nil {
		return err
	}

	scans := max(n/20, 100)
	prefix := make([]byte, 8)
	total := 0
	start = time.Now()
	for range scans {
		userPrefix(prefix, rng.IntN(users))
		c, err := e.ScanPrefix(prefix)
		if err != nil {
			return fmt.Errorf("scan_prefix %x: %w", prefix, err)
		}
		total += c
	}
	d := time.Since(start)
	if total == 0 {
		return errors.New("scan_prefix: every scan was empty")
	}
	// Users hold perUser keys on average; far more means the scans ran
	// past their bounds.
	if avg := float64(total) / float64(scans); avg > 4*float64(run.perUser) {
		return fmt.Errorf("scan_prefix: %.0f keys per scan, want about %d: bounds are not honored", avg, run.perUser)
	}
	run.logf("%-12s %9d keys, %d key and value bytes read", "scan_prefix", total, sink)
	run.report("scan_prefix", scans, d, kv{"keys_per_scan", float64(total) / float64(scans)})
	return e.Close()
}

// phaseSync measures fill_sync1 and fill_sync8, each on a fresh DB.
func (run *lsmRun) phaseSync() error {
	for _, w := range []struct {
		name    string
		writers int
	}{{"fill_sync1", 1}, {"fill_sync8", 8}} {
		e, _, err := run.openFresh(w.name, engineOptions{SyncWrites: true})
		if err != nil {
			return err
		}
		per := run.syncOps / w.writers
		total := per * w.writers
		errs := make(chan error, w.writers)
		var wg sync.WaitGroup
		start := time.Now()
		for g := range w.writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := make([]byte, 16)
				for i := range per {
					idx := uint64(g*per + i)
					randomKey(key, idx)
					if err := e.SetSync(key, run.vals.value(idx)); err != nil {
						errs <- fmt.Errorf("%s: set %d: %w", w.name, idx, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		d := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			e.Close()
			return err
		}
		run.report(w.name, total, d)
		if err := e.Close(); err != nil {
			return fmt.Errorf("%s: close: %w", w.name, err)
		}
	}
	return nil
}

// phaseRSS reports the peak resident set size of this process, which has
// run only this implementation.
func (run *lsmRun) phaseRSS() error {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	rss := ru.Maxrss * 1024 // kilobytes on Linux
	run.logf("%-12s %9d bytes (%.1f MiB)", "peak_rss", rss, float64(rss)/(1<<20))
	run.report("peak_rss", 0, 0, kv{"bytes", float64(rss)})
	return nil
}

func (s *lsmSuite) Ratios(rs *results) []ratio {
	var out []ratio
	peers := []string{"pebble", "badger", "goleveldb"}
	for _, w := range []string{"fill_random", "fill_seq", "get_random", "scan_prefix"} {
		ours, ok := rs.get(w, "ours")
		if !ok || ours.OpsPerSec <= 0 {
			continue
		}
		for _, p := range peers {
			if pr, ok := rs.get(w, p); ok && pr.OpsPerSec > 0 {
				out = append(out, ratio{w, "ours/" + p, ours.OpsPerSec / pr.OpsPerSec})
			}
		}
	}
	for _, impl := range s.Impls() {
		s1, ok1 := rs.get("fill_sync1", impl)
		s8, ok8 := rs.get("fill_sync8", impl)
		if !ok1 || !ok8 || s1.OpsPerSec <= 0 {
			continue
		}
		label := "sync8/sync1"
		if impl != "ours" {
			label = impl + "_" + label
		}
		out = append(out, ratio{"group_commit", label, s8.OpsPerSec / s1.OpsPerSec})
	}
	for _, w := range []string{"peak_rss", "disk_bytes"} {
		ours, ok := rs.get(w, "ours")
		if !ok {
			continue
		}
		ob, _ := ours.ExtraValue("bytes")
		if ob <= 0 {
			continue
		}
		for _, p := range peers {
			if pr, ok := rs.get(w, p); ok {
				if pb, ok := pr.ExtraValue("bytes"); ok && pb > 0 {
					out = append(out, ratio{w, p + "/ours", pb / ob})
				}
			}
		}
	}
	return out
}

// randomKey fills the 16-byte dst with the key of index i: two splitmix64
// outputs, so a key can be recomputed from its index without storing it
// (get_random draws hits by index).
func randomKey(dst []byte, i uint64) {
	binary.BigEndian.PutUint64(dst[0:8], splitmix64(2*i))
	binary.BigEndian.PutUint64(dst[8:16], splitmix64(2*i+1))
}

// userPrefix fills dst[:8] with the key prefix of user u, spread over the
// key space as a hashed user ID would be.
func userPrefix(dst []byte, u int) {
	binary.BigEndian.PutUint64(dst[:8], splitmix64(uint64(u)^0x5bd1e995))
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// valueSource hands out incompressible values: windows of a random buffer
// at offsets that differ for neighboring indexes.
type valueSource struct {
	buf  []byte
	size int
}

func newValueSource(size int) *valueSource {
	buf := make([]byte, 4<<20+size)
	r := rand.NewChaCha8([32]byte{'m', 'a', 'i', 'l', 'b', 'r', 'i', 'c', 'k', 's'})
	r.Read(buf)
	return &valueSource{buf: buf, size: size}
}

func (v *valueSource) value(i uint64) []byte {
	off := int(splitmix64(i^0xabcdef) % uint64(len(v.buf)-v.size))
	return v.buf[off : off+v.size : off+v.size]
}

// dirBytes returns the bytes the files under dir hold and the bytes the
// file system allocated to them (as du reports), and a breakdown of the
// held bytes by file extension for the log. For each file the held bytes
// are the smaller of its length and its allocation, so neither sparse
// files (badger's memory-mapped tables and logs) nor space preallocated
// past the end of a file (pebble's WALs, with FALLOC_FL_KEEP_SIZE) count as
// data.
func dirBytes(dir string) (data, allocated int64, byExt string, err error) {
	exts := map[string]int64{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		size, alloc := info.Size(), info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			alloc = st.Blocks * 512
		}
		data += min(size, alloc)
		allocated += alloc
		ext := filepath.Ext(path)
		if ext == "" || strings.ContainsFunc(ext[1:], func(r rune) bool { return r < 'a' || r > 'z' }) {
			ext = "other" // MANIFEST-000001, marker.format-version.000013.013, ...
		}
		exts[ext] += min(size, alloc)
		return nil
	})
	var parts []string
	for _, ext := range slices.Sorted(maps.Keys(exts)) {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", ext, float64(exts[ext])/(1<<20)))
	}
	return data, allocated, strings.Join(parts, ", "), err
}

// sink counts the key and value bytes scans read, so that adapters read
// values the way an application would.
var sink int

// prefixEnd returns the smallest key greater than every key with the
// prefix, or nil if there is none.
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// levelCounts formats one number per level, down to the deepest level
// that holds tables.
func levelCounts[L any](levels []L, count func(L) int64) string {
	n := make([]string, len(levels))
	last := 0
	for i, l := range levels {
		c := count(l)
		n[i] = fmt.Sprint(c)
		if c > 0 {
			last = i
		}
	}
	return "[" + strings.Join(n[:last+1], " ") + "]"
}
