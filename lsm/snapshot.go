package lsm

import (
	"bytes"
	"sort"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// Snapshot is a consistent, read-only view of a DB at one moment: writes
// made after it was taken are invisible to it, while compactions keep every
// version it can see. A Snapshot must be closed to let compaction reclaim
// those versions. It is safe for concurrent use.
type Snapshot struct {
	db     *DB
	seq    uint64
	closed bool // under db.mu
}

type snapshotList struct {
	m map[*Snapshot]struct{}
}

// seqs returns the sequence numbers of the open snapshots, ascending.
func (l *snapshotList) seqs() stripes {
	s := make(stripes, 0, len(l.m))
	for sn := range l.m {
		s = append(s, sn.seq)
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// NewSnapshot returns a snapshot of the DB as it is now.
func (d *DB) NewSnapshot() *Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &Snapshot{db: d, seq: d.visibleSeq.Load()}
	if d.snaps.m == nil {
		d.snaps.m = map[*Snapshot]struct{}{}
	}
	d.snaps.m[s] = struct{}{}
	return s
}

func (s *Snapshot) isClosed() bool {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return s.closed
}

// Get returns a copy of the value key had when the snapshot was taken. If
// it had none, Get returns an error for which errors.Is(err, ErrNotFound).
func (s *Snapshot) Get(key []byte) ([]byte, error) {
	if s.db.closed.Load() || s.isClosed() {
		return nil, ErrClosed
	}
	rs := s.db.loadReadState()
	defer rs.unref()
	return s.db.get(rs, key, s.seq)
}

// NewIter returns an iterator over the snapshot's keys.
func (s *Snapshot) NewIter(o *IterOptions) (*Iterator, error) {
	if s.db.closed.Load() || s.isClosed() {
		return nil, ErrClosed
	}
	return s.db.newIter(o, s.seq)
}

// Close releases the snapshot. Closing twice is allowed.
func (s *Snapshot) Close() error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if !s.closed {
		s.closed = true
		delete(s.db.snaps.m, s)
	}
	return nil
}

// NewIter returns an iterator over the DB's keys as of now.
func (d *DB) NewIter(o *IterOptions) (*Iterator, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	return d.newIter(o, d.visibleSeq.Load())
}

// NewPrefixIter returns an iterator over the keys that start with prefix.
func (d *DB) NewPrefixIter(prefix []byte) (*Iterator, error) {
	return d.NewIter(&IterOptions{LowerBound: prefix, UpperBound: PrefixUpperBound(prefix)})
}

// PrefixUpperBound returns the smallest key greater than every key with the
// given prefix, for use as an exclusive upper bound, or nil if there is none
// (the prefix is empty or all 0xff bytes).
func PrefixUpperBound(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := bytes.Clone(prefix[:i+1])
			end[i]++
			return end
		}
	}
	return nil
}

func (d *DB) newIter(o *IterOptions, seq uint64) (*Iterator, error) {
	var lower, upper []byte
	if o != nil {
		lower, upper = bytes.Clone(o.LowerBound), bytes.Clone(o.UpperBound)
	}
	rs := d.loadReadState()
	it := &Iterator{rs: rs, snap: seq, merger: d.opts.Merger, lower: lower, upper: upper}
	var children []base.InternalIterator
	var tombs []base.RangeTombstone
	addTombs := func(ts []base.RangeTombstone) {
		for _, t := range ts {
			if t.Seq <= seq {
				tombs = append(tombs, t)
			}
		}
	}
	fail := func(err error) (*Iterator, error) {
		for _, c := range children {
			c.Close()
		}
		rs.unref()
		return nil, err
	}
	children = append(children, rs.mem.NewIter())
	addTombs(rs.mem.RangeTombstones())
	for _, m := range rs.imm {
		children = append(children, m.NewIter())
		addTombs(m.RangeTombstones())
	}
	for _, m := range rs.v.levels[0] {
		if !overlaps(m, lower, upper) {
			continue
		}
		c, r, err := newTableIter(d.tables, m, lower, upper, false)
		if err != nil {
			return fail(err)
		}
		children = append(children, c)
		if m.HasRangeDels {
			addTombs(r.RangeTombstones())
		}
	}
	for l := 1; l < numLevels; l++ {
		files := rs.v.levels[l]
		if len(files) == 0 {
			continue
		}
		li := newLevelIter(d.tables, files, lower, upper)
		children = append(children, li)
		for _, m := range li.files {
			if !m.HasRangeDels {
				continue
			}
			e, err := d.tables.get(m.FileNum)
			if err != nil {
				return fail(err)
			}
			addTombs(e.reader.RangeTombstones())
			d.tables.put(e)
		}
	}
	it.iter = newMergingIter(children)
	it.tombs = newTombstoneSet(tombs)
	return it, nil
}
