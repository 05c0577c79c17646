package lsm

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/manifest"
	"github.com/mailbricks/mailbricks/lsm/internal/memtable"
	"github.com/mailbricks/mailbricks/lsm/internal/sstable"
)

func (d *DB) writerOptions() sstable.WriterOptions {
	return sstable.WriterOptions{
		BlockSize:       d.opts.BlockSize,
		BloomBitsPerKey: d.opts.BloomBitsPerKey,
		Compression:     d.opts.Compression.sstable(),
	}
}

func metaFromTable(num uint64, m sstable.Meta) *fileMeta {
	return &fileMeta{
		FileNum:      num,
		Size:         m.Size,
		Smallest:     m.Smallest,
		Largest:      m.Largest,
		SmallestSeq:  m.SmallestSeq,
		LargestSeq:   m.LargestSeq,
		HasRangeDels: m.NumRangeTombstones > 0,
	}
}

// writeL0 writes a memtable to table num and makes it durable.
func (d *DB) writeL0(num uint64, mem *memtable.Memtable) (*fileMeta, error) {
	f, err := d.fs.Create(d.fs.PathJoin(d.dir, tableFileName(num)))
	if err != nil {
		return nil, fmt.Errorf("lsm: flush: %w", err)
	}
	w := sstable.NewWriter(f, d.writerOptions())
	it := mem.NewIter()
	for ok := it.First(); ok; ok = it.Next() {
		if err = w.Add(it.Key(), it.Value()); err != nil {
			break
		}
	}
	it.Close()
	for _, t := range mem.RangeTombstones() {
		if err != nil {
			break
		}
		err = w.AddRangeTombstone(t)
	}
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("lsm: flush: %w", err)
	}
	m, err := w.Close()
	if err == nil {
		err = d.syncDir()
	}
	if err != nil {
		return nil, fmt.Errorf("lsm: flush: %w", err)
	}
	d.mu.Lock()
	d.stats.flushBytes += int64(m.Size)
	d.mu.Unlock()
	return metaFromTable(num, m), nil
}

// maybeScheduleFlush starts the flush goroutine if a memtable waits. d.mu
// must be held.
func (d *DB) maybeScheduleFlush() {
	if d.flushing || len(d.imm) == 0 || d.bgErr != nil || d.closing {
		return
	}
	d.flushing = true
	d.bgWG.Add(1)
	go d.flushLoop()
}

func (d *DB) flushLoop() {
	defer d.bgWG.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.imm) > 0 && d.bgErr == nil && !d.closing {
		m := d.imm[0]
		var meta *fileMeta
		if !m.mem.Empty() || len(m.mem.RangeTombstones()) > 0 {
			num := d.allocFileNumLocked()
			d.mu.Unlock()
			var err error
			meta, err = d.writeL0(num, m.mem)
			d.mu.Lock()
			if err != nil {
				d.setBGErrorLocked(err)
				break
			}
		}
		next := d.memLog.num
		if len(d.imm) > 1 {
			next = d.imm[1].log.num
		}
		e := &manifest.VersionEdit{HasLogNumber: true, LogNumber: next}
		if meta != nil {
			e.NewFiles = []manifest.NewFileEntry{{Level: 0, Meta: meta}}
		}
		installed := func() {
			d.imm = d.imm[1:]
			d.obsolete.add(logFileName(m.log.num))
		}
		if err := d.logAndApply(e, installed); err != nil {
			d.setBGErrorLocked(err)
			break
		}
		d.stats.flushes++
		if err := m.log.w.Close(); err != nil {
			d.opts.Logger.Warn("lsm: close flushed log", "file", m.log.num, "err", err)
		}
		d.cond.Broadcast()
		d.maybeScheduleCompaction()
	}
	d.flushing = false
	d.cond.Broadcast()
}

// A compaction merges the inputs of one level (inputs[0]) with the tables
// they overlap in the next (inputs[1]) into new tables of the output level.
type compaction struct {
	level, outputLevel int
	inputs             [2][]*fileMeta
	// bottommost is set when no deeper level overlaps the inputs: deletion
	// markers that every reader can see may then be dropped.
	bottommost bool
	v          *version
}

func maxBytesForLevel(o *Options, level int) float64 {
	n := float64(o.LBaseMaxBytes)
	for l := 1; l < level; l++ {
		n *= 10
	}
	return n
}

// needsCompaction reports the level with the highest score >= 1, or -1.
//
// The score of level 0 is its table count over L0CompactionThreshold; the
// score of level n is its size over its target size, LBaseMaxBytes*10^(n-1).
func (d *DB) needsCompaction(v *version) int {
	best, bestScore := -1, 1.0
	if s := float64(len(v.levels[0])) / float64(d.opts.L0CompactionThreshold); s >= bestScore {
		best, bestScore = 0, s
	}
	for l := 1; l < numLevels-1; l++ {
		if s := float64(levelSize(v.levels[l])) / maxBytesForLevel(&d.opts, l); s > bestScore {
			best, bestScore = l, s
		}
	}
	return best
}

// maybeScheduleCompaction starts the compaction goroutine if a level needs
// it. d.mu must be held.
func (d *DB) maybeScheduleCompaction() {
	if d.compacting || d.bgErr != nil || d.closing || d.needsCompaction(d.vs.current) < 0 {
		return
	}
	d.compacting = true
	d.bgWG.Add(1)
	go d.compactionLoop()
}

func (d *DB) compactionLoop() {
	defer d.bgWG.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.bgErr == nil && !d.closing {
		c := d.pickCompaction()
		if c == nil {
			break
		}
		if err := d.runCompaction(c); err != nil {
			d.setBGErrorLocked(err)
			break
		}
	}
	d.compacting = false
	d.cond.Broadcast()
}

func keyRange(files ...[]*fileMeta) (lo, hi []byte) {
	for _, fs := range files {
		for _, m := range fs {
			if lo == nil || bytes.Compare(m.Smallest.UserKey, lo) < 0 {
				lo = m.Smallest.UserKey
			}
			if hi == nil || bytes.Compare(m.Largest.UserKey, hi) > 0 {
				hi = m.Largest.UserKey
			}
		}
	}
	return lo, hi
}

// newCompaction completes a compaction of inputs from level: it adds the
// overlapping tables of the next level and decides whether the output is
// the bottom. d.mu must be held.
func (d *DB) newCompaction(level int, inputs []*fileMeta) *compaction {
	v := d.vs.current
	c := &compaction{level: level, outputLevel: level + 1, v: v}
	c.inputs[0] = inputs
	lo, hi := keyRange(inputs)
	c.inputs[1] = overlapping(v.levels[level+1], lo, hi)
	lo, hi = keyRange(c.inputs[0], c.inputs[1])
	c.bottommost = true
	for l := c.outputLevel + 1; l < numLevels; l++ {
		if len(overlapping(v.levels[l], lo, hi)) > 0 {
			c.bottommost = false
		}
	}
	v.ref()
	return c
}

// pickCompaction chooses the next background compaction. Level 0 compacts
// all its tables at once (they may overlap, and an older L0 table left
// behind could shadow newer data moved down). Deeper levels compact one
// table at a time, round-robin through the key space. d.mu must be held.
func (d *DB) pickCompaction() *compaction {
	v := d.vs.current
	level := d.needsCompaction(v)
	if level < 0 {
		return nil
	}
	if level == 0 {
		return d.newCompaction(0, append([]*fileMeta(nil), v.levels[0]...))
	}
	files := v.levels[level]
	i := 0
	if p := d.compactPointer[level]; p != nil {
		i = sort.Search(len(files), func(i int) bool { return bytes.Compare(files[i].Smallest.UserKey, p) > 0 })
		if i == len(files) {
			i = 0
		}
	}
	d.compactPointer[level] = append([]byte(nil), files[i].Largest.UserKey...)
	return d.newCompaction(level, []*fileMeta{files[i]})
}

// runCompaction performs c and installs its result. d.mu must be held; it
// is released while tables are written.
func (d *DB) runCompaction(c *compaction) error {
	defer c.v.unref()
	e := &manifest.VersionEdit{}
	for i, files := range c.inputs {
		for _, m := range files {
			e.DeletedFiles = append(e.DeletedFiles, manifest.DeletedFileEntry{Level: c.level + i, FileNum: m.FileNum})
		}
	}
	if len(c.inputs[0]) == 1 && len(c.inputs[1]) == 0 {
		// Trivial move: nothing to merge with, so the table changes level
		// without being rewritten.
		e.NewFiles = []manifest.NewFileEntry{{Level: c.outputLevel, Meta: c.inputs[0][0]}}
		if err := d.logAndApply(e, nil); err != nil {
			return err
		}
		d.stats.compactions++
		d.cond.Broadcast()
		return nil
	}
	// Readers without a snapshot read at the visible sequence number;
	// versions above it (committed, not yet published) must not shadow the
	// ones those readers see.
	snaps := d.snaps.seqs()
	snaps = append(snaps, d.visibleSeq.Load())
	sort.Slice(snaps, func(i, j int) bool { return snaps[i] < snaps[j] })
	d.mu.Unlock()
	outputs, read, err := d.compactTables(c, snaps)
	d.mu.Lock()
	if err != nil {
		for _, m := range outputs {
			d.fs.Remove(d.fs.PathJoin(d.dir, tableFileName(m.FileNum)))
		}
		return err
	}
	var written int64
	for _, m := range outputs {
		e.NewFiles = append(e.NewFiles, manifest.NewFileEntry{Level: c.outputLevel, Meta: m})
		written += int64(m.Size)
	}
	if err := d.logAndApply(e, nil); err != nil {
		return err
	}
	d.stats.compactions++
	d.stats.compactBytesRead += read
	d.stats.compactBytesWritten += written
	d.cond.Broadcast()
	return nil
}

// stripes maps sequence numbers to snapshot stripes. Versions of a key in
// the same stripe are seen by exactly the same snapshots, so only the newest
// of them matters (merge operands combine); versions in different stripes
// must all be kept.
type stripes []uint64 // snapshot sequence numbers, ascending

func (s stripes) of(seq uint64) int {
	return sort.Search(len(s), func(i int) bool { return s[i] >= seq })
}

// compactTables merges the inputs of c into new tables.
//
// Entries arrive per user key, newest first. Within one snapshot stripe:
// the first SET or DEL ends the stripe (older versions are shadowed); merge
// operands above it fold into it (onto a DEL or a range tombstone they fold
// with no base and become a SET); operands with nothing below in the stripe
// fold into one operand. A version covered by a range tombstone of the same
// stripe is dropped. At the bottom level, a DEL or range tombstone that every
// reader sees (stripe 0) has nothing left to delete and is dropped too.
//
// Output tables are cut at user-key boundaries once TargetFileSize is
// reached, and each table gets the range tombstones clipped to the key span
// it owns, [first key of this table, first key of the next), so that the
// tables of a level never overlap.
func (d *DB) compactTables(c *compaction, snaps stripes) (outputs []*fileMeta, read int64, err error) {
	var iters []base.InternalIterator
	var tombs []base.RangeTombstone
	defer func() {
		for _, it := range iters {
			if cerr := it.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	for _, files := range c.inputs {
		for _, m := range files {
			it, r, err := newTableIter(d.tables, m, nil, nil, true)
			if err != nil {
				return nil, 0, err
			}
			iters = append(iters, it)
			tombs = append(tombs, r.RangeTombstones()...)
			read += int64(m.Size)
		}
	}
	ts := newTombstoneSet(tombs)
	covered := func(key []byte, seq uint64) bool {
		f := ts.find(key)
		if f == nil {
			return false
		}
		st := snaps.of(seq)
		for _, s := range f.seqs {
			if s <= seq {
				break
			}
			if snaps.of(s) == st {
				return true
			}
		}
		return false
	}
	var keep []base.RangeTombstone
	for _, t := range tombs {
		if !(c.bottommost && snaps.of(t.Seq) == 0) {
			keep = append(keep, t)
		}
	}
	sort.Slice(keep, func(i, j int) bool { return bytes.Compare(keep[i].Start, keep[j].Start) < 0 })

	out := &compactionOutput{d: d, tombs: keep}
	defer func() {
		if err != nil {
			out.abort()
		}
		outputs = out.metas
	}()

	m := newMergingIter(iters)
	iters = nil
	defer m.Close()

	var (
		curKey     []byte
		haveKey    bool
		curStripe  = -1
		stripeDone bool
		topSeq     uint64
		operands   [][]byte
	)
	flushOperands := func(asSet bool) error {
		defer func() { operands = operands[:0] }()
		if len(operands) == 0 {
			return nil
		}
		v, err := fold(d.opts.Merger, curKey, nil, false, operands)
		if err != nil {
			return err
		}
		kind := base.KindMerge
		if asSet {
			kind = base.KindSet
		}
		return out.add(base.MakeInternalKey(curKey, topSeq, kind), v)
	}
	endKey := func() error {
		if !stripeDone && len(operands) > 0 {
			return flushOperands(c.bottommost && curStripe == 0)
		}
		return nil
	}
	for ok := m.First(); ok; ok = m.Next() {
		k := m.Key()
		if !haveKey || !bytes.Equal(k.UserKey, curKey) {
			if haveKey {
				if err := endKey(); err != nil {
					return nil, read, err
				}
			}
			curKey = append(curKey[:0], k.UserKey...)
			haveKey, curStripe, stripeDone = true, -1, false
			operands = operands[:0]
		}
		seq := k.SeqNum()
		st := snaps.of(seq)
		if st != curStripe {
			if !stripeDone && len(operands) > 0 {
				if err := flushOperands(false); err != nil {
					return nil, read, err
				}
			}
			curStripe, stripeDone, topSeq = st, false, seq
		}
		if stripeDone {
			continue
		}
		if covered(k.UserKey, seq) {
			if err := flushOperands(true); err != nil {
				return nil, read, err
			}
			stripeDone = true
			continue
		}
		switch k.Kind() {
		case base.KindSet:
			if len(operands) > 0 {
				v, err := fold(d.opts.Merger, curKey, m.Value(), true, operands)
				if err != nil {
					return nil, read, err
				}
				operands = operands[:0]
				err = out.add(base.MakeInternalKey(curKey, topSeq, base.KindSet), v)
				if err != nil {
					return nil, read, err
				}
			} else if err := out.add(k, m.Value()); err != nil {
				return nil, read, err
			}
			stripeDone = true
		case base.KindMerge:
			operands = append(operands, append([]byte(nil), m.Value()...))
		case base.KindDelete:
			if len(operands) > 0 {
				if err := flushOperands(true); err != nil {
					return nil, read, err
				}
			} else if !(c.bottommost && st == 0) {
				if err := out.add(k, nil); err != nil {
					return nil, read, err
				}
			}
			stripeDone = true
		default:
			return nil, read, base.CorruptionErrorf("table entry %s has a kind that only range tombstones use", k)
		}
	}
	if err := m.Error(); err != nil {
		return nil, read, err
	}
	if haveKey {
		if err := endKey(); err != nil {
			return nil, read, err
		}
	}
	if err := out.finish(nil); err != nil {
		return nil, read, err
	}
	if len(out.metas) > 0 {
		if err := d.syncDir(); err != nil {
			return nil, read, err
		}
	}
	return out.metas, read, nil
}

// compactionOutput writes the tables of one compaction.
type compactionOutput struct {
	d     *DB
	tombs []base.RangeTombstone // sorted by Start
	w     *sstable.Writer
	num   uint64
	lo    []byte // first user key this table owns; nil: unbounded
	last  []byte // last user key added
	metas []*fileMeta
}

func (o *compactionOutput) add(k base.InternalKey, v []byte) error {
	if o.w != nil && !bytes.Equal(k.UserKey, o.last) && o.w.EstimatedSize() >= uint64(o.d.opts.TargetFileSize) {
		if err := o.finish(k.UserKey); err != nil {
			return err
		}
		o.lo = append([]byte(nil), k.UserKey...)
	}
	if o.w == nil {
		if err := o.open(); err != nil {
			return err
		}
	}
	o.last = append(o.last[:0], k.UserKey...)
	return o.w.Add(k, v)
}

func (o *compactionOutput) open() error {
	o.d.mu.Lock()
	o.num = o.d.allocFileNumLocked()
	o.d.mu.Unlock()
	f, err := o.d.fs.Create(o.d.fs.PathJoin(o.d.dir, tableFileName(o.num)))
	if err != nil {
		return fmt.Errorf("lsm: compaction: %w", err)
	}
	o.w = sstable.NewWriter(f, o.d.writerOptions())
	return nil
}

// finish closes the current table, which owns [o.lo, hi), after adding the
// tombstones clipped to that span. With no table open it writes one only if
// tombstones would otherwise be lost (a compaction of nothing but
// tombstones).
func (o *compactionOutput) finish(hi []byte) error {
	if o.w == nil {
		if hi != nil || len(o.metas) > 0 || len(o.tombs) == 0 {
			return nil
		}
		if err := o.open(); err != nil {
			return err
		}
	}
	for _, t := range o.tombs {
		if hi != nil && bytes.Compare(t.Start, hi) >= 0 {
			break
		}
		start, end := t.Start, t.End
		if o.lo != nil && bytes.Compare(start, o.lo) < 0 {
			start = o.lo
		}
		if hi != nil && bytes.Compare(end, hi) > 0 {
			end = hi
		}
		if bytes.Compare(start, end) < 0 {
			if err := o.w.AddRangeTombstone(base.RangeTombstone{Start: start, End: end, Seq: t.Seq}); err != nil {
				return err
			}
		}
	}
	m, err := o.w.Close()
	o.w = nil
	if err != nil {
		return fmt.Errorf("lsm: compaction: %w", err)
	}
	o.metas = append(o.metas, metaFromTable(o.num, m))
	return nil
}

func (o *compactionOutput) abort() {
	if o.w != nil {
		o.w.Close()
		o.w = nil
		o.metas = append(o.metas, &fileMeta{FileNum: o.num})
	}
}

// Compact compacts every table overlapping [start, end] (nil: unbounded)
// down to the deepest level holding data in that range, after flushing the
// memtable. It returns when the compaction is installed.
func (d *DB) Compact(start, end []byte) error {
	if err := d.Flush(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.compacting && d.bgErr == nil && !d.closing {
		d.cond.Wait()
	}
	if d.bgErr != nil {
		return d.bgErr
	}
	if d.closing {
		return ErrClosed
	}
	d.compacting = true
	defer func() {
		d.compacting = false
		d.cond.Broadcast()
		d.maybeScheduleCompaction()
	}()
	v := d.vs.current
	maxLevel := 0
	for l := 1; l < numLevels; l++ {
		if len(overlapping(v.levels[l], start, end)) > 0 {
			maxLevel = l
		}
	}
	if maxLevel == 0 {
		maxLevel = 1
	}
	for level := 0; level < maxLevel; level++ {
		if d.closing {
			return ErrClosed
		}
		v := d.vs.current
		var inputs []*fileMeta
		if level == 0 {
			if len(overlapping(v.levels[0], start, end)) > 0 {
				inputs = append(inputs, v.levels[0]...)
			}
		} else {
			inputs = overlapping(v.levels[level], start, end)
		}
		if len(inputs) == 0 {
			continue
		}
		c := d.newCompaction(level, inputs)
		if err := d.runCompaction(c); err != nil {
			return d.setBGErrorLocked(err)
		}
	}
	return nil
}
