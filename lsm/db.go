package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/cache"
	"github.com/mailbricks/mailbricks/lsm/internal/memtable"
	"github.com/mailbricks/mailbricks/lsm/internal/record"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// Errors returned by the DB. Callers match them with errors.Is.
var (
	// ErrNotFound is returned by Get when a key has no live value.
	ErrNotFound = errors.New("lsm: not found")
	// ErrClosed is returned by every method of a closed DB or snapshot.
	ErrClosed = errors.New("lsm: closed")
	// ErrCorruption reports stored data that failed a checksum or could not
	// be decoded. The DB never returns corrupt data as if it were valid.
	ErrCorruption = base.ErrCorruption
)

// maxImmutable is the number of full memtables that may wait for flush
// before writes stall.
const maxImmutable = 2

// DB is a log-structured merge-tree key-value store in one directory.
//
// A DB is safe for concurrent use by multiple goroutines. Writes are applied
// in one total order; a read sees every write that returned before the read
// began.
type DB struct {
	dir    string
	opts   Options
	fs     vfs.FS
	lock   io.Closer
	blocks *cache.Cache
	tables *tableCache
	files  *fileRefs

	closed atomic.Bool

	// commitMu serializes writers: sequence numbers, WAL appends and
	// memtable inserts happen in one order.
	commitMu    sync.Mutex
	nextSeq     uint64 // under commitMu
	assignedSeq atomic.Uint64
	visibleSeq  atomic.Uint64
	l0Count     atomic.Int32
	// failed is set with bgErr, so that the write fast path sees it.
	failed atomic.Bool

	// pubMu guards pending, the commits not yet visible, in sequence order.
	// pubCond is broadcast when visibleSeq advances.
	pubMu   sync.Mutex
	pubCond sync.Cond
	pending []*commitRec

	// mu guards the fields below and is the lock of cond.
	mu      sync.Mutex
	cond    sync.Cond
	mem     *memtable.Memtable
	memLog  *walFile
	imm     []immMemtable // oldest first
	vs      versionSet
	snaps   snapshotList
	bgErr   error
	closing bool
	// flushing and compacting are set while a background flush or a
	// compaction (background or manual) runs.
	flushing, compacting bool
	bgWG                 sync.WaitGroup
	compactPointer       [numLevels][]byte
	memSize              int // size of the next memtable
	obsolete             obsoleteFiles
	stats                dbStats

	rsMu sync.Mutex
	rs   *readState
}

type walFile struct {
	num uint64
	w   *record.Writer
}

type immMemtable struct {
	mem *memtable.Memtable
	log *walFile
}

type dbStats struct {
	flushes, compactions, writeStalls     int64
	compactBytesRead, compactBytesWritten int64
	flushBytes                            int64
	// Set by Open: the damaged tail it dropped from the newest log.
	walTailBytesDropped, walTailRecordsDropped int64
}

// loadReadState returns the current read state with a reference.
func (d *DB) loadReadState() *readState {
	d.rsMu.Lock()
	rs := d.rs
	rs.refs.Add(1)
	d.rsMu.Unlock()
	return rs
}

// updateReadState publishes the current memtables and version. d.mu must be
// held.
func (d *DB) updateReadState() {
	rs := &readState{mem: d.mem, v: d.vs.current}
	for i := len(d.imm) - 1; i >= 0; i-- {
		rs.imm = append(rs.imm, d.imm[i].mem)
	}
	rs.v.ref()
	rs.refs.Store(1)
	d.rsMu.Lock()
	old := d.rs
	d.rs = rs
	d.rsMu.Unlock()
	if old != nil {
		old.unref()
	}
	d.l0Count.Store(int32(len(rs.v.levels[0])))
}

// Get returns a copy of the value of key. If the key has no live value, Get
// returns an error for which errors.Is(err, ErrNotFound).
func (d *DB) Get(key []byte) ([]byte, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	seq := d.visibleSeq.Load()
	rs := d.loadReadState()
	defer rs.unref()
	return d.get(rs, key, seq)
}

// getState carries a point lookup from the newest source to the oldest.
type getState struct {
	d        *DB
	key      []byte
	snap     uint64
	tombSeq  uint64   // newest visible range tombstone covering key so far
	operands [][]byte // merge operands, newest first
	done     bool
	value    []byte
	found    bool
	err      error
}

func (g *getState) finish(val []byte, hasBase bool) {
	g.done = true
	if !hasBase && len(g.operands) == 0 {
		return
	}
	v, err := fold(g.d.opts.Merger, g.key, val, hasBase, g.operands)
	if err != nil {
		g.err = err
		return
	}
	g.value = bytes.Clone(v)
	if g.value == nil {
		g.value = []byte{}
	}
	g.found = true
}

// visit consults one source: its range tombstones, then its versions of the
// key (it may be nil when a filter rules the key out).
func (g *getState) visit(it base.InternalIterator, tombs []base.RangeTombstone) {
	for _, t := range tombs {
		if t.Seq <= g.snap && t.Seq > g.tombSeq &&
			bytes.Compare(t.Start, g.key) <= 0 && bytes.Compare(g.key, t.End) < 0 {
			g.tombSeq = t.Seq
		}
	}
	if it != nil {
		for ok := it.SeekGE(g.key); ok; ok = it.Next() {
			k := it.Key()
			if !bytes.Equal(k.UserKey, g.key) {
				break
			}
			seq := k.SeqNum()
			if seq > g.snap {
				continue
			}
			if seq < g.tombSeq {
				g.finish(nil, false)
				return
			}
			switch k.Kind() {
			case base.KindSet:
				g.finish(it.Value(), true)
				return
			case base.KindMerge:
				g.operands = append(g.operands, bytes.Clone(it.Value()))
			default:
				g.finish(nil, false)
				return
			}
		}
		if err := it.Error(); err != nil {
			g.err, g.done = err, true
			return
		}
	}
	// Sources are visited newest first, and every version in an older
	// source is older than a tombstone seen here.
	if g.tombSeq > 0 {
		g.finish(nil, false)
	}
}

func (d *DB) get(rs *readState, key []byte, snap uint64) ([]byte, error) {
	g := getState{d: d, key: key, snap: snap}
	for i := -1; i < len(rs.imm); i++ {
		m := rs.mem
		if i >= 0 {
			m = rs.imm[i]
		}
		it := m.NewIter()
		g.visit(it, m.RangeTombstones())
		it.Close()
		if g.done {
			return g.result()
		}
	}
	l0 := rs.v.levels[0]
	for i := len(l0) - 1; i >= 0 && !g.done; i-- {
		if containsKey(l0[i], key) || (l0[i].HasRangeDels && overlaps(l0[i], key, key)) {
			d.getTable(&g, l0[i])
		}
	}
	for l := 1; l < numLevels && !g.done; l++ {
		if i := findFile(rs.v.levels[l], key); i >= 0 {
			d.getTable(&g, rs.v.levels[l][i])
		}
	}
	if !g.done {
		g.finish(nil, false)
	}
	return g.result()
}

func (d *DB) getTable(g *getState, m *fileMeta) {
	e, err := d.tables.get(m.FileNum)
	if err != nil {
		g.err, g.done = err, true
		return
	}
	defer d.tables.put(e)
	r := e.reader
	may, err := r.MayContain(g.key)
	if err != nil {
		g.err, g.done = err, true
		return
	}
	if !may {
		g.visit(nil, r.RangeTombstones())
		return
	}
	it := r.NewIter(nil, nil)
	g.visit(it, r.RangeTombstones())
	if err := it.Close(); err != nil && g.err == nil {
		g.err, g.done = err, true
	}
}

func (g *getState) result() ([]byte, error) {
	if g.err != nil {
		return nil, fmt.Errorf("lsm: get %q: %w", g.key, g.err)
	}
	if !g.found {
		return nil, ErrNotFound
	}
	return g.value, nil
}

var batchPool = sync.Pool{New: func() any { return &Batch{data: make([]byte, batchHeaderLen, 256)} }}

func getBatch() *Batch {
	b := batchPool.Get().(*Batch)
	b.Reset()
	return b
}

func (d *DB) applyPooled(b *Batch, o *WriteOptions) error {
	err := d.Apply(b, o)
	if cap(b.data) <= 64<<10 {
		batchPool.Put(b)
	}
	return err
}

// Set writes value under key. The DB copies key and value.
func (d *DB) Set(key, value []byte, o *WriteOptions) error {
	b := getBatch()
	b.Set(key, value)
	return d.applyPooled(b, o)
}

// Delete deletes key. Deleting a missing key is not an error.
func (d *DB) Delete(key []byte, o *WriteOptions) error {
	b := getBatch()
	b.Delete(key)
	return d.applyPooled(b, o)
}

// DeleteRange deletes every key in [start, end).
func (d *DB) DeleteRange(start, end []byte, o *WriteOptions) error {
	b := getBatch()
	b.DeleteRange(start, end)
	return d.applyPooled(b, o)
}

// Merge adds a merge operand to key; reads return the operands folded by the
// [Options.Merger] onto the key's value, with no read before the write.
func (d *DB) Merge(key, operand []byte, o *WriteOptions) error {
	b := getBatch()
	b.Merge(key, operand)
	return d.applyPooled(b, o)
}

// Apply commits a batch atomically: once Apply returns nil the whole batch
// is visible to reads, and after a crash either all of it is recovered or
// none (with Sync, all of it). The batch may be reused after Apply returns.
func (d *DB) Apply(b *Batch, o *WriteOptions) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if b.err != nil {
		return b.err
	}
	if b.count == 0 {
		return nil
	}
	d.commitMu.Lock()
	log, err := d.makeRoomForWrite(b.memNeed)
	if err != nil {
		d.commitMu.Unlock()
		return err
	}
	seq := d.nextSeq
	b.setSeq(seq)
	end, err := log.w.Append(b.data)
	if err != nil {
		d.commitMu.Unlock()
		return d.setBGError(fmt.Errorf("lsm: write-ahead log: %w", err))
	}
	if err := d.applyToMemtable(d.mem, b.data); err != nil {
		d.commitMu.Unlock()
		return d.setBGError(err)
	}
	d.nextSeq += uint64(b.count)
	last := d.nextSeq - 1
	d.assignedSeq.Store(last)
	sync := o != nil && o.Sync
	d.pubMu.Lock()
	if !sync && len(d.pending) == 0 {
		// Nothing earlier is waiting: publish at once.
		d.visibleSeq.Store(last)
		d.pubMu.Unlock()
		d.commitMu.Unlock()
		return nil
	}
	c := &commitRec{last: last, done: !sync}
	d.pending = append(d.pending, c)
	d.pubMu.Unlock()
	d.commitMu.Unlock()
	err = nil
	if sync {
		if serr := log.w.SyncTo(end); serr != nil {
			err = d.setBGError(fmt.Errorf("lsm: sync write-ahead log: %w", serr))
		}
	}
	d.publish(c)
	return err
}

// commitRec is a commit waiting to become visible.
type commitRec struct {
	last uint64 // its last sequence number
	done bool   // written (and synced, if asked)
}

// publish marks c done, makes every done commit at the head of the queue
// visible, and waits until c itself is visible. Commits become visible in
// sequence order, and a synced commit only once it is durable, so no reader
// ever sees a synced write that a crash could take back.
func (d *DB) publish(c *commitRec) {
	d.pubMu.Lock()
	c.done = true
	advanced := false
	for len(d.pending) > 0 && d.pending[0].done {
		d.visibleSeq.Store(d.pending[0].last)
		d.pending[0] = nil
		d.pending = d.pending[1:]
		advanced = true
	}
	if advanced {
		d.pubCond.Broadcast()
	}
	for d.visibleSeq.Load() < c.last {
		d.pubCond.Wait()
	}
	d.pubMu.Unlock()
}

// applyToMemtable inserts an encoded, sequenced batch into mem.
func (d *DB) applyToMemtable(mem *memtable.Memtable, data []byte) error {
	r, err := newBatchReader(data)
	if err != nil {
		return err
	}
	seq := r.seq
	for {
		kind, key, value, ok, err := r.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if kind == base.KindRangeDelete {
			mem.AddRangeTombstone(base.RangeTombstone{Start: key, End: value, Seq: seq})
		} else if err := mem.Add(base.MakeInternalKey(key, seq, kind), value); err != nil {
			return fmt.Errorf("lsm: memtable insert: %w", err)
		}
		seq++
	}
}

// setBGError records a failure that leaves the DB unable to accept writes.
// Reads go on; Close still works.
func (d *DB) setBGError(err error) error {
	d.mu.Lock()
	if d.bgErr == nil {
		d.bgErr = err
		d.failed.Store(true)
		d.opts.Logger.Error("lsm: background error; writes are refused from now on", "err", err)
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	return err
}

// makeRoomForWrite makes sure the mutable memtable can hold need bytes,
// rotating it (and the WAL) when it cannot, and stalls while flushes or
// level 0 are too far behind. It returns the WAL to append to. commitMu must
// be held.
func (d *DB) makeRoomForWrite(need int) (*walFile, error) {
	if d.mem.Available() >= need && int(d.l0Count.Load()) < d.opts.L0StopWritesThreshold && !d.failed.Load() {
		return d.memLog, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.bgErr != nil {
			return nil, d.bgErr
		}
		if d.closing {
			return nil, ErrClosed
		}
		switch {
		case len(d.vs.current.levels[0]) >= d.opts.L0StopWritesThreshold:
			d.stats.writeStalls++
			d.maybeScheduleCompaction()
			d.cond.Wait()
		case d.mem.Available() >= need:
			return d.memLog, nil
		case len(d.imm) >= maxImmutable:
			d.stats.writeStalls++
			d.cond.Wait()
		default:
			if err := d.rotateMemtable(need); err != nil {
				return nil, err
			}
		}
	}
}

// rotateMemtable makes the mutable memtable immutable, starts a new WAL and
// memtable, and schedules a flush. d.mu and commitMu must be held.
func (d *DB) rotateMemtable(need int) error {
	// Everything in the old WAL must be durable before the new one exists,
	// so that only the newest log can have a torn tail and recovery always
	// replays a prefix of the history.
	if err := d.memLog.w.SyncTo(d.memLog.w.Size()); err != nil {
		return d.setBGErrorLocked(fmt.Errorf("lsm: sync write-ahead log: %w", err))
	}
	num := d.vs.nextFileNum
	d.vs.nextFileNum++
	w, err := d.createWAL(num)
	if err != nil {
		return d.setBGErrorLocked(err)
	}
	d.imm = append(d.imm, immMemtable{mem: d.mem, log: d.memLog})
	d.mem = d.newMemtable(need)
	d.memLog = w
	d.updateReadState()
	d.maybeScheduleFlush()
	return nil
}

// minMemTableSize is the size of the first memtable after Open.
const minMemTableSize = 256 << 10

// newMemtable returns the next mutable memtable, large enough for need
// bytes. Memtable sizes start at minMemTableSize and double with every
// rotation up to Options.MemTableSize (as in pebble): a small or young DB
// does not pay for a large arena it does not fill, and inserts into a small
// skiplist stay in the CPU caches. d.mu must be held, or Open be running.
func (d *DB) newMemtable(need int) *memtable.Memtable {
	size := d.memSize
	if size == 0 {
		size = min(minMemTableSize, d.opts.MemTableSize)
	}
	d.memSize = min(2*size, d.opts.MemTableSize)
	if need*2 > size {
		size = need * 2
	}
	return memtable.New(size)
}

func (d *DB) setBGErrorLocked(err error) error {
	if d.bgErr == nil {
		d.bgErr = err
		d.failed.Store(true)
		d.opts.Logger.Error("lsm: background error; writes are refused from now on", "err", err)
	}
	d.cond.Broadcast()
	return err
}

func (d *DB) createWAL(num uint64) (*walFile, error) {
	f, err := d.fs.Create(d.fs.PathJoin(d.dir, logFileName(num)))
	if err != nil {
		return nil, fmt.Errorf("lsm: create write-ahead log: %w", err)
	}
	if err := d.syncDir(); err != nil {
		f.Close()
		return nil, err
	}
	return &walFile{num: num, w: record.NewWriter(f)}, nil
}

func (d *DB) syncDir() error { return syncDir(d.fs, d.dir) }

// Flush writes the mutable memtable to a level-0 table and waits until every
// memtable written before the call is flushed.
func (d *DB) Flush() error {
	if d.closed.Load() {
		return ErrClosed
	}
	d.commitMu.Lock()
	d.mu.Lock()
	var err error
	if !d.mem.Empty() || len(d.mem.RangeTombstones()) > 0 {
		for len(d.imm) >= maxImmutable && d.bgErr == nil && !d.closing {
			d.cond.Wait()
		}
		if d.bgErr != nil {
			err = d.bgErr
		} else if d.closing {
			err = ErrClosed
		} else {
			err = d.rotateMemtable(0)
		}
	}
	d.commitMu.Unlock()
	for err == nil && len(d.imm) > 0 && d.bgErr == nil && !d.closing {
		d.cond.Wait()
	}
	if err == nil {
		err = d.bgErr
	}
	d.mu.Unlock()
	return err
}

// Close flushes the WAL, stops background work and releases the directory.
// Data in memtables stays in the WAL and is recovered by the next Open.
// Iterators and snapshots must be closed first. Close is idempotent; after
// it, methods return ErrClosed.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.commitMu.Lock()
	d.mu.Lock()
	d.closing = true
	d.cond.Broadcast()
	for d.flushing || d.compacting {
		d.cond.Wait()
	}
	d.mu.Unlock()
	d.bgWG.Wait()

	var errs []error
	if err := d.memLog.w.Close(); err != nil {
		errs = append(errs, err)
	}
	for _, m := range d.imm {
		if err := m.log.w.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.vs.close(); err != nil {
		errs = append(errs, err)
	}
	d.commitMu.Unlock()
	d.rsMu.Lock()
	rs := d.rs
	d.rsMu.Unlock()
	// Releasing the last versions must not delete their tables: they are
	// still live on disk for the next Open.
	d.files.mu.Lock()
	d.files.delete = nil
	d.files.mu.Unlock()
	rs.unref()
	d.vs.current.unref()
	d.tables.close()
	if err := d.lock.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
