package lsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/cache"
	"github.com/mailbricks/mailbricks/lsm/internal/manifest"
	"github.com/mailbricks/mailbricks/lsm/internal/memtable"
	"github.com/mailbricks/mailbricks/lsm/internal/record"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// Open opens the DB in dir, creating it if it does not exist, and recovers
// it after a crash: the manifest says which tables are live, and the
// write-ahead logs newer than it are replayed.
//
// A damaged tail of the newest log, the trace of writes in flight at the
// crash, is dropped as [Options.WALRecovery] allows (see [WALRecoveryMode]),
// and the loss is reported in [Metrics] and on [Options.Logger]; any other
// damage in a log, the manifest or CURRENT makes Open fail with an error for
// which errors.Is(err, ErrCorruption), and nothing is changed on disk.
func Open(dir string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if o.WALRecovery != WALRecoveryDropDamagedTail && o.WALRecovery != WALRecoveryStrict {
		return nil, fmt.Errorf("lsm: open %s: unknown Options.WALRecovery %d", dir, int(o.WALRecovery))
	}
	fs := o.FS
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lsm: open %s: %w", dir, err)
	}
	lock, err := fs.Lock(fs.PathJoin(dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("lsm: open %s: lock: %w", dir, err)
	}
	d := &DB{dir: dir, opts: o, fs: fs, lock: lock}
	d.cond.L = &d.mu
	d.pubCond.L = &d.pubMu
	if o.CacheSize > 0 {
		d.blocks = cache.New(o.CacheSize)
	}
	d.tables = newTableCache(fs, dir, d.blocks, o.MaxOpenFiles)
	d.files = &fileRefs{refs: map[uint64]int{}, delete: d.deleteTables}
	d.vs = versionSet{fs: fs, dir: dir, files: d.files, mergerName: o.Merger.Name}
	if err := d.recover(); err != nil {
		d.tables.close()
		lock.Close()
		return nil, fmt.Errorf("lsm: open %s: %w", dir, err)
	}
	d.mu.Lock()
	d.maybeScheduleCompaction()
	d.mu.Unlock()
	return d, nil
}

// deleteTables is called when tables leave the last live version. They are
// queued, not deleted: see obsoleteFiles.
func (d *DB) deleteTables(nums []uint64) {
	names := make([]string, len(nums))
	for i, n := range nums {
		d.tables.evict(n)
		names[i] = tableFileName(n)
	}
	d.obsolete.add(names...)
}

// obsoleteFiles holds files that the latest manifest edit no longer needs
// but the version before it may.
//
// The newest manifest edit is the one record that recovery may drop as a
// torn tail (its append was perhaps never synced). Recovery then rebuilds
// the version before it, so every file that version needs must still exist:
// a file made obsolete by edit k (a flushed WAL, compaction inputs) is
// deleted only after edit k+1 is durable.
type obsoleteFiles struct {
	mu    sync.Mutex
	edits uint64 // manifest edits made durable so far
	queue []obsoleteFile
}

type obsoleteFile struct {
	name  string
	after uint64 // delete once edits > after
}

func (o *obsoleteFiles) add(names ...string) {
	o.mu.Lock()
	for _, n := range names {
		o.queue = append(o.queue, obsoleteFile{name: n, after: o.edits})
	}
	o.mu.Unlock()
}

// pending reports whether files wait for deletion.
func (o *obsoleteFiles) pending() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue) > 0
}

// edited records a durable edit and returns the files it makes safe to
// delete.
func (o *obsoleteFiles) edited() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.edits++
	var ready []string
	keep := o.queue[:0]
	for _, f := range o.queue {
		if o.edits > f.after {
			ready = append(ready, f.name)
		} else {
			keep = append(keep, f)
		}
	}
	o.queue = keep
	return ready
}

func (d *DB) removeFiles(names []string) {
	for _, name := range names {
		if err := d.fs.Remove(d.fs.PathJoin(d.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.opts.Logger.Warn("lsm: remove obsolete file", "file", name, "err", err)
		}
	}
}

func (d *DB) readFile(name string) ([]byte, error) {
	f, err := d.fs.Open(d.fs.PathJoin(d.dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// recover loads the manifest, replays the logs into new level-0 tables, and
// writes a fresh manifest and log. Until the new CURRENT is durable, the old
// files are untouched, so a crash during recovery recovers again.
func (d *DB) recover() error {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return err
	}
	var b manifest.Builder
	haveCurrent := false
	maxFileNum := uint64(0)
	var logs []uint64
	for _, name := range names {
		t, n := parseFileName(name)
		switch t {
		case fileTypeCurrent:
			haveCurrent = true
		case fileTypeLog:
			logs = append(logs, n)
		}
		maxFileNum = max(maxFileNum, n)
	}
	if haveCurrent {
		if err := d.loadManifest(&b); err != nil {
			return err
		}
	}
	if b.MergerName != "" && b.MergerName != d.opts.Merger.Name {
		return fmt.Errorf("lsm: the DB was written with merger %q, not %q", b.MergerName, d.opts.Merger.Name)
	}
	levels := b.Levels()
	sortLevels(&levels)
	if err := checkOrdering(&levels); err != nil {
		return err
	}
	vs := &d.vs
	vs.nextFileNum = max(b.NextFileNumber, maxFileNum+1, 2)
	vs.logNum = b.LogNumber
	vs.current = d.files.newVersion(levels)
	lastSeq := b.LastSeq

	// Replay the live logs, oldest first, flushing whenever a memtable fills.
	sort.Slice(logs, func(i, j int) bool { return logs[i] < logs[j] })
	live := logs[:0]
	for _, n := range logs {
		if n >= vs.logNum {
			live = append(live, n)
		}
	}
	var flushed []*fileMeta
	mem := memtable.New(d.opts.MemTableSize)
	for i, n := range live {
		seq, err := d.replayLog(n, i == len(live)-1, &mem, &flushed)
		if err != nil {
			return err
		}
		lastSeq = max(lastSeq, seq)
	}
	if !mem.Empty() || len(mem.RangeTombstones()) > 0 {
		m, err := d.writeL0(d.allocFileNumLocked(), mem)
		if err != nil {
			return err
		}
		flushed = append(flushed, m)
	}
	for _, files := range levels {
		for _, m := range files {
			lastSeq = max(lastSeq, m.LargestSeq)
		}
	}
	for _, m := range flushed {
		lastSeq = max(lastSeq, m.LargestSeq)
	}
	d.nextSeq = lastSeq + 1
	d.assignedSeq.Store(lastSeq)
	d.visibleSeq.Store(lastSeq)

	// The new manifest names the new log before the log exists: a crash in
	// between leaves a manifest whose recovered tables already hold every
	// old log's data, and no log to replay.
	walNum := d.allocFileNumLocked()
	e := &manifest.VersionEdit{}
	for _, m := range flushed {
		e.NewFiles = append(e.NewFiles, manifest.NewFileEntry{Level: 0, Meta: m})
	}
	newLevels := vs.current.apply(e)
	if err := vs.createManifest(d.allocFileNumLocked(), &newLevels, walNum, lastSeq); err != nil {
		return err
	}
	vs.logNum = walNum
	wal, err := d.createWAL(walNum)
	if err != nil {
		return err
	}
	old := vs.current
	vs.current = d.files.newVersion(newLevels)
	old.unref()
	d.mem = d.newMemtable(0)
	d.memLog = wal
	d.updateReadState()
	d.removeObsolete()
	return nil
}

func (d *DB) allocFileNumLocked() uint64 {
	n := d.vs.nextFileNum
	d.vs.nextFileNum++
	return n
}

func (d *DB) loadManifest(b *manifest.Builder) error {
	data, err := d.readFile(currentFileName)
	if err != nil {
		return fmt.Errorf("read CURRENT: %w", err)
	}
	num, err := parseCurrent(data)
	if err != nil {
		return err
	}
	f, err := d.fs.Open(d.fs.PathJoin(d.dir, manifestFileName(num)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: CURRENT names %s, which does not exist", ErrCorruption, manifestFileName(num))
		}
		return err
	}
	defer f.Close()
	r := record.NewReader(f)
	edits := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, record.ErrTornTail) {
			// Every edit is synced before the next is appended, so a
			// crash can only cut the last edit short; that edit was never
			// acknowledged and the version before it is the truth. Any
			// other damage at the tail is corruption.
			if torn, terr := d.manifestTailTorn(f, r.Offset()); terr != nil {
				return terr
			} else if !torn {
				return fmt.Errorf("%w: manifest %06d: damaged record at offset %d: %v", ErrCorruption, num, r.Offset(), err)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("manifest %06d: %w", num, err)
		}
		var e manifest.VersionEdit
		if err := e.Decode(rec); err != nil {
			return fmt.Errorf("manifest %06d: %w", num, err)
		}
		if err := b.Apply(&e); err != nil {
			return fmt.Errorf("manifest %06d: %w", num, err)
		}
		edits++
	}
	if edits == 0 {
		return fmt.Errorf("%w: manifest %06d has no version", ErrCorruption, num)
	}
	d.vs.manifestNum = num
	return nil
}

// manifestTailTorn reports whether the manifest bytes after offset are a
// single edit cut short by a crash (see record.Tail.CutShort).
func (d *DB) manifestTailTorn(f vfs.File, offset int64) (bool, error) {
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	t, err := record.InspectTail(f, offset, st.Size())
	if err != nil {
		return false, err
	}
	return t.CutShort, nil
}

// replayLog applies the batches of log n to *mem, flushing full memtables to
// level-0 tables, and returns the largest sequence number it saw.
func (d *DB) replayLog(n uint64, newest bool, mem **memtable.Memtable, flushed *[]*fileMeta) (uint64, error) {
	f, err := d.fs.Open(d.fs.PathJoin(d.dir, logFileName(n)))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := record.NewReader(f)
	var maxSeq uint64
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return maxSeq, nil
		}
		if errors.Is(err, record.ErrTornTail) || errors.Is(err, ErrCorruption) {
			if err := d.dropLogTail(f, n, newest, r.Offset(), err); err != nil {
				return 0, err
			}
			return maxSeq, nil
		}
		if err != nil {
			return 0, fmt.Errorf("log %06d: %w", n, err)
		}
		need, seq, count, err := batchMemNeed(rec)
		if err != nil {
			return 0, fmt.Errorf("log %06d: %w", n, err)
		}
		if (*mem).Available() < need {
			if !(*mem).Empty() || len((*mem).RangeTombstones()) > 0 {
				m, err := d.writeL0(d.allocFileNumLocked(), *mem)
				if err != nil {
					return 0, err
				}
				*flushed = append(*flushed, m)
			}
			*mem = memtable.New(max(d.opts.MemTableSize, 2*need))
		}
		if err := d.applyToMemtable(*mem, rec); err != nil {
			return 0, fmt.Errorf("log %06d: %w", n, err)
		}
		if count > 0 {
			maxSeq = max(maxSeq, seq+uint64(count)-1)
		}
	}
}

// dropLogTail decides about the damaged tail of log n, which begins at
// offset off, where the record reader stopped with readErr (a torn tail or
// corruption). Only the newest log may lose a tail, and only the damage that
// Options.WALRecovery accepts (see WALRecoveryMode); then dropLogTail
// records the loss in the metrics and the log and returns nil. Otherwise it
// returns an error matching ErrCorruption.
func (d *DB) dropLogTail(f vfs.File, n uint64, newest bool, off int64, readErr error) error {
	if !newest {
		if errors.Is(readErr, record.ErrTornTail) {
			return fmt.Errorf("%w: log %06d: torn record in a log that is not the newest: %v", ErrCorruption, n, readErr)
		}
		return fmt.Errorf("log %06d: %w", n, readErr)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("log %06d: %w", n, err)
	}
	t, err := record.InspectTail(f, off, st.Size())
	if err != nil {
		return fmt.Errorf("log %06d: %w", n, err)
	}
	switch d.opts.WALRecovery {
	case WALRecoveryStrict:
		if !t.CutShort {
			return fmt.Errorf("%w: log %06d: damaged record at offset %d is not a write cut short by a crash (%s WAL recovery): %v",
				ErrCorruption, n, off, d.opts.WALRecovery, readErr)
		}
	default:
		if !errors.Is(readErr, record.ErrTornTail) && !t.LostPage {
			return fmt.Errorf("log %06d: %w", n, readErr)
		}
	}
	records := 1 + int64(t.Records)
	d.stats.walTailBytesDropped += t.Size
	d.stats.walTailRecordsDropped += records
	d.opts.Logger.Warn("lsm: dropped the damaged tail of the newest write-ahead log; writes after the last recovered one are lost",
		"log", logFileName(n), "offset", off, "bytes", t.Size, "records", records, "lostPage", t.LostPage,
		"mode", d.opts.WALRecovery.String(), "reason", readErr)
	return nil
}

// batchMemNeed validates an encoded batch and returns the memtable bytes it
// needs, its sequence number and its count.
func batchMemNeed(data []byte) (need int, seq uint64, count uint32, err error) {
	r, err := newBatchReader(data)
	if err != nil {
		return 0, 0, 0, err
	}
	for {
		kind, key, value, ok, err := r.next()
		if err != nil {
			return 0, 0, 0, err
		}
		if !ok {
			return need, r.seq, r.count, nil
		}
		if kind != base.KindRangeDelete {
			need += memtable.EntrySize(len(key)+8, len(value))
		}
	}
}

// removeObsolete deletes the files no live state refers to: old logs and
// manifests, tables not in the current version, and temporary files.
func (d *DB) removeObsolete() {
	names, err := d.fs.List(d.dir)
	if err != nil {
		return
	}
	for _, name := range names {
		t, n := parseFileName(name)
		var obsolete bool
		switch t {
		case fileTypeLog:
			obsolete = n < d.vs.logNum
		case fileTypeManifest:
			obsolete = n != d.vs.manifestNum
		case fileTypeTable:
			obsolete = !d.files.live(n)
		case fileTypeTemp:
			obsolete = true
		}
		if obsolete {
			if err := d.fs.Remove(d.fs.PathJoin(d.dir, name)); err != nil {
				d.opts.Logger.Warn("lsm: remove obsolete file", "file", name, "err", err)
			}
		}
	}
}
