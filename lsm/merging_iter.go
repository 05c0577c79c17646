package lsm

import (
	"bytes"
	"sort"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/sstable"
)

// mergingIter merges child iterators into one stream in internal-key order.
//
// Forward movement keeps the children in a min-heap. Backward movement is
// only used to find a key: SeekLT and Last position every child and expose
// the largest key; the user-level iterator then re-seeks forward to resolve
// that key's versions (see Iterator.Prev). So after SeekLT or Last, only Key,
// Value and a new SeekGE, SeekLT, First or Last are valid.
type mergingIter struct {
	children []base.InternalIterator
	h        []mergeItem // min-heap by key in forward mode
	reverse  bool
	cur      int // child index in reverse mode
	err      error
}

// mergeItem caches a child's current key so that heap comparisons make no
// interface calls.
type mergeItem struct {
	key base.InternalKey
	idx int
}

func newMergingIter(children []base.InternalIterator) *mergingIter {
	return &mergingIter{children: children, h: make([]mergeItem, 0, len(children))}
}

func (m *mergingIter) noteErr(it base.InternalIterator) {
	if err := it.Error(); err != nil && m.err == nil {
		m.err = err
	}
}

func (m *mergingIter) less(i, j int) bool {
	return base.CompareInternal(m.h[i].key, m.h[j].key) < 0
}

func (m *mergingIter) down(i int) {
	n := len(m.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && m.less(r, l) {
			j = r
		}
		if !m.less(j, i) {
			return
		}
		m.h[i], m.h[j] = m.h[j], m.h[i]
		i = j
	}
}

func (m *mergingIter) initHeap(pos func(base.InternalIterator) bool) bool {
	m.reverse = false
	m.h = m.h[:0]
	for i, c := range m.children {
		if pos(c) {
			m.h = append(m.h, mergeItem{key: c.Key(), idx: i})
		} else {
			m.noteErr(c)
		}
	}
	for i := len(m.h)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
	return m.err == nil && len(m.h) > 0
}

func (m *mergingIter) SeekGE(key []byte) bool {
	return m.initHeap(func(c base.InternalIterator) bool { return c.SeekGE(key) })
}

func (m *mergingIter) First() bool {
	return m.initHeap(base.InternalIterator.First)
}

// Next moves to the next entry. It must not follow SeekLT or Last.
func (m *mergingIter) Next() bool {
	if len(m.h) == 0 {
		return false
	}
	c := m.children[m.h[0].idx]
	if c.Next() {
		m.h[0].key = c.Key()
	} else {
		m.noteErr(c)
		n := len(m.h) - 1
		m.h[0] = m.h[n]
		m.h = m.h[:n]
	}
	m.down(0)
	return m.err == nil && len(m.h) > 0
}

func (m *mergingIter) pickMax(pos func(base.InternalIterator) bool) bool {
	m.reverse = true
	m.h = m.h[:0]
	m.cur = -1
	var best base.InternalKey
	for i, c := range m.children {
		if !pos(c) {
			m.noteErr(c)
			continue
		}
		if k := c.Key(); m.cur < 0 || base.CompareInternal(k, best) > 0 {
			m.cur, best = i, k
		}
	}
	return m.err == nil && m.cur >= 0
}

func (m *mergingIter) SeekLT(key []byte) bool {
	return m.pickMax(func(c base.InternalIterator) bool { return c.SeekLT(key) })
}

func (m *mergingIter) Last() bool {
	return m.pickMax(base.InternalIterator.Last)
}

func (m *mergingIter) Key() base.InternalKey {
	if m.reverse {
		return m.children[m.cur].Key()
	}
	return m.h[0].key
}

func (m *mergingIter) Value() []byte {
	if m.reverse {
		return m.children[m.cur].Value()
	}
	return m.children[m.h[0].idx].Value()
}

func (m *mergingIter) Error() error { return m.err }

func (m *mergingIter) Close() error {
	for _, c := range m.children {
		if err := c.Close(); err != nil && m.err == nil {
			m.err = err
		}
	}
	return m.err
}

// levelIter iterates over the tables of a sorted, non-overlapping level,
// opening them one at a time through the table cache.
type levelIter struct {
	tc           *tableCache
	files        []*fileMeta
	lower, upper []byte
	idx          int
	entry        *tableEntry
	it           base.InternalIterator
	err          error
}

func newLevelIter(tc *tableCache, files []*fileMeta, lower, upper []byte) *levelIter {
	// Drop the tables outside the bounds up front.
	lo := 0
	if lower != nil {
		lo = sort.Search(len(files), func(i int) bool {
			return bytes.Compare(files[i].Largest.UserKey, lower) >= 0
		})
	}
	hi := len(files)
	if upper != nil {
		hi = sort.Search(len(files), func(i int) bool {
			return bytes.Compare(files[i].Smallest.UserKey, upper) >= 0
		})
	}
	if hi < lo {
		hi = lo
	}
	return &levelIter{tc: tc, files: files[lo:hi], lower: lower, upper: upper, idx: -1}
}

func (l *levelIter) closeTable() {
	if l.it != nil {
		if err := l.it.Close(); err != nil && l.err == nil {
			l.err = err
		}
		l.it = nil
	}
	if l.entry != nil {
		l.tc.put(l.entry)
		l.entry = nil
	}
}

func (l *levelIter) open(idx int) bool {
	if idx == l.idx && l.it != nil {
		return true
	}
	l.closeTable()
	l.idx = idx
	if idx < 0 || idx >= len(l.files) {
		return false
	}
	e, err := l.tc.get(l.files[idx].FileNum)
	if err != nil {
		l.err = err
		return false
	}
	l.entry = e
	l.it = e.reader.NewIter(l.lower, l.upper)
	return true
}

// tableErr records the error of the current table's iterator, if any.
func (l *levelIter) tableErr() bool {
	if err := l.it.Error(); err != nil {
		l.err = err
		return true
	}
	return false
}

func (l *levelIter) forward(idx int, pos func(base.InternalIterator) bool) bool {
	for ; idx < len(l.files); idx++ {
		if !l.open(idx) {
			return false
		}
		if pos(l.it) {
			return true
		}
		if l.tableErr() {
			return false
		}
		pos = base.InternalIterator.First
	}
	l.closeTable()
	l.idx = len(l.files)
	return false
}

func (l *levelIter) backward(idx int, pos func(base.InternalIterator) bool) bool {
	for ; idx >= 0; idx-- {
		if !l.open(idx) {
			return false
		}
		if pos(l.it) {
			return true
		}
		if l.tableErr() {
			return false
		}
		pos = base.InternalIterator.Last
	}
	l.closeTable()
	l.idx = -1
	return false
}

func (l *levelIter) SeekGE(key []byte) bool {
	if l.err != nil {
		return false
	}
	i := sort.Search(len(l.files), func(i int) bool {
		return bytes.Compare(l.files[i].Largest.UserKey, key) >= 0
	})
	return l.forward(i, func(it base.InternalIterator) bool { return it.SeekGE(key) })
}

func (l *levelIter) SeekLT(key []byte) bool {
	if l.err != nil {
		return false
	}
	i := sort.Search(len(l.files), func(i int) bool {
		return bytes.Compare(l.files[i].Smallest.UserKey, key) >= 0
	})
	return l.backward(i-1, func(it base.InternalIterator) bool { return it.SeekLT(key) })
}

func (l *levelIter) First() bool {
	if l.err != nil {
		return false
	}
	return l.forward(0, base.InternalIterator.First)
}

func (l *levelIter) Last() bool {
	if l.err != nil {
		return false
	}
	return l.backward(len(l.files)-1, base.InternalIterator.Last)
}

func (l *levelIter) Next() bool {
	if l.err != nil || l.it == nil {
		return false
	}
	if l.it.Next() {
		return true
	}
	if l.tableErr() {
		return false
	}
	return l.forward(l.idx+1, base.InternalIterator.First)
}

func (l *levelIter) Prev() bool {
	if l.err != nil || l.it == nil {
		return false
	}
	if l.it.Prev() {
		return true
	}
	if l.tableErr() {
		return false
	}
	return l.backward(l.idx-1, base.InternalIterator.Last)
}

func (l *levelIter) Key() base.InternalKey { return l.it.Key() }
func (l *levelIter) Value() []byte         { return l.it.Value() }
func (l *levelIter) Error() error          { return l.err }

func (l *levelIter) Close() error {
	l.closeTable()
	return l.err
}

// tableIter wraps one table's iterator so that closing it also drops the
// table cache reference.
type tableIter struct {
	base.InternalIterator
	tc    *tableCache
	entry *tableEntry
}

func (t *tableIter) Close() error {
	err := t.InternalIterator.Close()
	t.tc.put(t.entry)
	return err
}

// newTableIter opens m's iterator between lower and upper. scan makes it
// an iterator for one pass, such as a compaction's: blocks missing from the
// block cache are read into the iterator's buffers rather than added to
// the cache (see sstable.Reader.NewScanIter), so compactions keep the
// cache for reads and allocate no block per block they read.
func newTableIter(tc *tableCache, m *fileMeta, lower, upper []byte, scan bool) (base.InternalIterator, *sstable.Reader, error) {
	e, err := tc.get(m.FileNum)
	if err != nil {
		return nil, nil, err
	}
	var it base.InternalIterator
	if scan {
		it = e.reader.NewScanIter(lower, upper)
	} else {
		it = e.reader.NewIter(lower, upper)
	}
	return &tableIter{InternalIterator: it, tc: tc, entry: e}, e.reader, nil
}

// tombstoneSet answers "is this version of a key deleted by a range
// tombstone?" for a fixed set of tombstones. The tombstones are cut into
// non-overlapping fragments, each with the sequence numbers of the
// tombstones that cover it, sorted descending.
type tombstoneSet struct {
	frags []fragment
	last  int // fragment of the previous lookup, for sequential scans
}

type fragment struct {
	start, end []byte
	seqs       []uint64 // descending
}

func newTombstoneSet(ts []base.RangeTombstone) *tombstoneSet {
	if len(ts) == 0 {
		return nil
	}
	bounds := make([][]byte, 0, 2*len(ts))
	for _, t := range ts {
		bounds = append(bounds, t.Start, t.End)
	}
	sort.Slice(bounds, func(i, j int) bool { return bytes.Compare(bounds[i], bounds[j]) < 0 })
	uniq := bounds[:1]
	for _, b := range bounds[1:] {
		if !bytes.Equal(b, uniq[len(uniq)-1]) {
			uniq = append(uniq, b)
		}
	}
	// Sweep the boundaries in order, keeping the tombstones that cover the
	// current fragment: those that started at or before it and end after it.
	byStart := append([]base.RangeTombstone(nil), ts...)
	sort.Slice(byStart, func(i, j int) bool { return bytes.Compare(byStart[i].Start, byStart[j].Start) < 0 })
	s := &tombstoneSet{}
	var active []base.RangeTombstone
	next := 0
	for i := 0; i+1 < len(uniq); i++ {
		f := fragment{start: uniq[i], end: uniq[i+1]}
		for next < len(byStart) && bytes.Compare(byStart[next].Start, f.start) <= 0 {
			active = append(active, byStart[next])
			next++
		}
		live := active[:0]
		for _, t := range active {
			if bytes.Compare(t.End, f.start) > 0 {
				live = append(live, t)
				f.seqs = append(f.seqs, t.Seq)
			}
		}
		active = live
		if len(f.seqs) > 0 {
			sort.Slice(f.seqs, func(a, b int) bool { return f.seqs[a] > f.seqs[b] })
			s.frags = append(s.frags, f)
		}
	}
	return s
}

// find returns the fragment containing key, or nil.
func (s *tombstoneSet) find(key []byte) *fragment {
	if s == nil || len(s.frags) == 0 {
		return nil
	}
	if f := &s.frags[s.last]; bytes.Compare(f.start, key) <= 0 && bytes.Compare(key, f.end) < 0 {
		return f
	}
	i := sort.Search(len(s.frags), func(i int) bool { return bytes.Compare(s.frags[i].end, key) > 0 })
	if i == len(s.frags) || bytes.Compare(s.frags[i].start, key) > 0 {
		return nil
	}
	s.last = i
	return &s.frags[i]
}

// deleted reports whether the version (key, seq) is covered by a tombstone
// with a sequence number in (seq, snap].
func (s *tombstoneSet) deleted(key []byte, seq, snap uint64) bool {
	f := s.find(key)
	if f == nil {
		return false
	}
	for _, ts := range f.seqs {
		if ts <= snap {
			return ts > seq
		}
	}
	return false
}
