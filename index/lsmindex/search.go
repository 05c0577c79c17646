package lsmindex

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"sync"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/lsm"
)

// Query evaluation works on bitsets over the user's doc numbers. A leaf
// becomes a bitset: a term by decoding its postings' doc numbers, a doc
// value filter by scanning the in-memory doc values; AND, OR and NOT are
// word-wise operations, NOT taken against the live documents. A phrase
// first intersects its terms' doc sets, then decodes positions only for
// the documents left and checks that term i occurs at p+i for some p. The
// final set is masked with the live documents (deleted documents'
// postings stay until a purge), its population count is the total, and
// the page is read off the user's date order of doc numbers (from its
// end for newest first), skipping documents not in the set, so a page
// costs a walk of the order, not a sort.

type bitset []uint64

func (b bitset) set(i uint32)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) has(i uint32) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) clear(i uint32)    { b[i>>6] &^= 1 << (i & 63) }

func (b bitset) and(o bitset) {
	for i := range b {
		b[i] &= o[i]
	}
}

func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

func (b bitset) andNot(o bitset) {
	for i := range b {
		b[i] &^= o[i]
	}
}

// each calls fn for every member in increasing order.
func (b bitset) each(fn func(uint32)) {
	for w, word := range b {
		for word != 0 {
			bit := bits.TrailingZeros64(word)
			word &^= 1 << bit
			fn(uint32(w*64 + bit))
		}
	}
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// evaluator evaluates one query for one user; it holds the user's read
// lock, which excludes every write of the user's keys (writers hold it
// for writing across their commits), so its reads of the DB see one
// state without a snapshot.
type evaluator struct {
	ctx  context.Context
	db   *lsm.DB
	u    mailbricks.UserID
	s    *userState
	live bitset
	key  []byte
	sets []*bitset // taken from setPool, given back by done
}

// setPool holds the bitsets of finished searches, which a small result
// would otherwise allocate (and the GC collect) for every query: one word
// per 64 doc numbers of the user, for each leaf.
var setPool sync.Pool

var evalPool = sync.Pool{New: func() any { return new(evaluator) }}

// newSet returns an empty bitset for doc numbers below n.
func (e *evaluator) newSet(n uint32) bitset {
	w := int((n + 63) / 64)
	var p *bitset
	if v := setPool.Get(); v != nil {
		p = v.(*bitset)
	} else {
		p = new(bitset)
	}
	if cap(*p) < w {
		*p = make(bitset, w)
	} else {
		*p = (*p)[:w]
		clear(*p)
	}
	e.sets = append(e.sets, p)
	return *p
}

// cloneLive returns a copy of the live set.
func (e *evaluator) cloneLive() bitset {
	out := e.newSet(uint32(len(e.live)) * 64)
	copy(out, e.live)
	return out
}

// done gives the bitsets back; none may be used after.
func (e *evaluator) done() {
	for i, p := range e.sets {
		setPool.Put(p)
		e.sets[i] = nil
	}
	e.sets = e.sets[:0]
	e.ctx, e.s, e.live = nil, nil, nil
	evalPool.Put(e)
}

// Search implements [index.Backend].
func (b *Backend) Search(ctx context.Context, u mailbricks.UserID, req *index.Request) (*index.Results, error) {
	s, err := b.user(ctx, u, false)
	if err != nil {
		return nil, err
	}
	defer b.release(s, false)
	if s.stale && s.live > 0 {
		return nil, fmt.Errorf("lsmindex: search %s: analyzer version %d, want %d: %w", u, max(s.analyzer, 1), index.AnalyzerVersion, index.ErrStale)
	}
	e := evalPool.Get().(*evaluator)
	e.ctx, e.db, e.u, e.s, e.live = ctx, b.db, u, s, s.liveSet
	defer e.done()
	set, err := e.eval(req.Query)
	if err != nil {
		return nil, err
	}
	set.and(e.live)
	res := &index.Results{Total: set.count()}
	emit := func(n uint32) error {
		var h index.Hit
		if err := s.hit(n, &h); err != nil {
			return fmt.Errorf("lsmindex: search %s: %w", u, err)
		}
		if req.WithText {
			v, err := b.db.Get(docKey(nil, u, tagText, n))
			if err != nil {
				return fmt.Errorf("lsmindex: search: text of doc %d: %w", n, err)
			}
			h.Subject, h.Snippet, err = decodeText(v)
			if err != nil {
				return err
			}
		}
		res.Hits = append(res.Hits, h)
		return nil
	}
	page := s.page(set, res.Total, req)
	if err := s.takeErr(); err != nil {
		return nil, fmt.Errorf("lsmindex: search %s: %w", u, err)
	}
	res.Hits = make([]index.Hit, 0, len(page))
	for _, n := range page {
		if err := emit(n); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// page returns the doc numbers of the page req asks for among the set of
// total matches. A sparse set is sorted directly; a dense one is read off
// the user's date order.
func (s *userState) page(set bitset, total int, req *index.Request) []uint32 {
	after := func(n uint32) bool {
		if req.After == nil {
			return true
		}
		return s.lessCursor(req.Sort, req.After.Date, req.After.ID, n, true)
	}
	if total*16 < s.live {
		ns := make([]uint32, 0, total)
		set.each(func(n uint32) {
			if after(n) {
				ns = append(ns, n)
			}
		})
		slices.SortFunc(ns, func(a, b uint32) int {
			if s.less(req.Sort, a, b) {
				return -1
			}
			return 1
		})
		return ns[:min(len(ns), req.Limit)]
	}
	// order is oldest first: newest first walks it from the end.
	order := s.order
	var out []uint32
	if req.Sort == index.SortNewest {
		end := len(order)
		if p := req.After; p != nil {
			end = sort.Search(len(order), func(i int) bool {
				n := order[i]
				return !s.lessCursor(index.SortNewest, p.Date, p.ID, n, true)
			})
		}
		for i := end - 1; i >= 0 && len(out) < req.Limit; i-- {
			if n := order[i]; set.has(n) {
				out = append(out, n)
			}
		}
		return out
	}
	start := 0
	if p := req.After; p != nil {
		start = sort.Search(len(order), func(i int) bool {
			n := order[i]
			return s.lessCursor(index.SortNewest, p.Date, p.ID, n, false)
		})
	}
	for i := start; i < len(order) && len(out) < req.Limit; i++ {
		if n := order[i]; set.has(n) {
			out = append(out, n)
		}
	}
	return out
}

func (e *evaluator) eval(q index.Query) (bitset, error) {
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	switch q.Kind {
	case index.KindAll:
		return e.cloneLive(), nil
	case index.KindAnd:
		if len(q.Sub) == 0 {
			return e.cloneLive(), nil
		}
		// Evaluate the other operands first, so an empty one
		// short-circuits, then the doc-value filters over the documents
		// left (a filter alone scans every document of the user).
		var acc bitset
		for pass := range 2 {
			for _, sub := range q.Sub {
				if isFilter(sub) != (pass == 1) {
					continue
				}
				if acc != nil && pass == 1 {
					if err := e.filterIn(sub, acc); err != nil {
						return nil, err
					}
				} else {
					s, err := e.eval(sub)
					if err != nil {
						return nil, err
					}
					if acc == nil {
						acc = s
					} else {
						acc.and(s)
					}
				}
				if acc.empty() {
					return acc, nil
				}
			}
		}
		return acc, nil
	case index.KindOr:
		acc := e.newSet(e.s.next)
		for _, sub := range q.Sub {
			s, err := e.eval(sub)
			if err != nil {
				return nil, err
			}
			acc.or(s)
		}
		return acc, nil
	case index.KindNot:
		s, err := e.eval(q.Sub[0])
		if err != nil {
			return nil, err
		}
		out := e.cloneLive()
		out.andNot(s)
		return out, nil
	case index.KindText:
		if len(q.Terms) == 0 {
			return e.cloneLive(), nil
		}
		if q.Field != index.FieldAny {
			return e.text(q.Field, q.Terms, q.Prefix)
		}
		acc := e.newSet(e.s.next)
		if len(q.Terms) == 1 && !q.Prefix {
			for _, f := range index.ContentFields {
				if err := e.termInto(f, q.Terms[0], acc); err != nil {
					return nil, err
				}
			}
			return acc, nil
		}
		for _, f := range index.ContentFields {
			s, err := e.text(f, q.Terms, q.Prefix)
			if err != nil {
				return nil, err
			}
			acc.or(s)
		}
		return acc, nil
	}
	return e.filter(q)
}

// filter evaluates a doc-value criterion by scanning the doc values of
// the live documents; flags and dates have columns of their own.
func (e *evaluator) filter(q index.Query) (bitset, error) {
	s := e.s
	out := e.newSet(s.next)
	switch {
	case q.Kind == index.KindFlag:
		for n, f := range s.flags {
			if f&q.Flag == q.Flag {
				out.set(uint32(n))
			}
		}
		out.and(e.live)
	case q.Kind == index.KindRange && q.Range == index.RangeDate:
		for n, d := range s.dates {
			if q.Min <= d && d < q.Max {
				out.set(uint32(n))
			}
		}
		out.and(e.live)
	default:
		// Values are read per document anyway: test the live ones.
		copy(out, e.live)
		if err := e.filterIn(q, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isFilter reports whether q is a doc-value criterion, which filter
// evaluates.
func isFilter(q index.Query) bool {
	switch q.Kind {
	case index.KindAll, index.KindAnd, index.KindOr, index.KindNot, index.KindText:
		return false
	}
	return true
}

// filterIn removes from set the documents that are deleted or do not
// match the doc-value criterion q: filter's answer ANDed with set, at the
// cost of set's members.
func (e *evaluator) filterIn(q index.Query, set bitset) error {
	s := e.s
	set.and(e.live)
	var err error
	set.each(func(n uint32) {
		var ok bool
		switch {
		case err != nil:
			return
		case q.Kind == index.KindFlag:
			ok = s.flags[n]&q.Flag == q.Flag
		case q.Kind == index.KindRange && q.Range == index.RangeDate:
			d := s.dates[n]
			ok = q.Min <= d && d < q.Max
		default:
			var v *index.Values
			if v, err = s.value(n); err == nil {
				ok = matchValues(q, v)
			}
		}
		if !ok {
			set.clear(n)
		}
	})
	if err != nil {
		return fmt.Errorf("lsmindex: search %s: %w", e.u, err)
	}
	return nil
}

func matchValues(q index.Query, v *index.Values) bool {
	switch q.Kind {
	case index.KindFlag:
		return v.Flags&q.Flag == q.Flag
	case index.KindKeyword:
		return slices.Contains(v.Keywords, q.Text)
	case index.KindFolder:
		return v.Folder == q.Text
	case index.KindThread:
		return v.Thread == q.Text
	case index.KindUID:
		for _, r := range q.UIDs {
			if r.Start <= v.UID && v.UID <= r.Stop {
				return true
			}
		}
		return false
	case index.KindRange:
		var x int64
		switch q.Range {
		case index.RangeDate:
			x = index.UnixOrZero(v.Date)
		case index.RangeSentDate:
			x = index.UnixOrZero(v.SentDate)
		case index.RangeSize:
			x = v.Size
		case index.RangeModSeq:
			if v.ModSeq > 1<<63-1 {
				return q.Max == 1<<63-1
			}
			x = int64(v.ModSeq)
		}
		return q.Min <= x && x < q.Max
	}
	return false
}

// slot is the postings values of one phrase position: one for a term,
// one per matching term for a prefix.
type slot [][]byte

// text evaluates a term, prefix or phrase in field f.
func (e *evaluator) text(f index.Field, terms []string, prefix bool) (bitset, error) {
	if len(terms) == 1 && !prefix {
		out := e.newSet(e.s.next)
		return out, e.termInto(f, terms[0], out)
	}
	slots := make([]slot, len(terms))
	for i, t := range terms {
		var err error
		if prefix && i == len(terms)-1 {
			slots[i], err = e.prefix(f, t)
		} else {
			slots[i], err = e.term(f, t)
		}
		if err != nil {
			return nil, err
		}
		if len(slots[i]) == 0 {
			return e.newSet(e.s.next), nil
		}
	}
	next := e.s.next
	var acc bitset
	for _, sl := range slots {
		set := e.newSet(next)
		for _, v := range sl {
			if err := eachDoc(v, func(d uint32) {
				if d < next {
					set.set(d)
				}
			}); err != nil {
				return nil, fmt.Errorf("lsmindex: search %q: %w", terms, err)
			}
		}
		if acc == nil {
			acc = set
		} else {
			acc.and(set)
		}
	}
	acc.and(e.live)
	if len(slots) == 1 {
		return acc, nil
	}
	// Check the candidates' positions, walking every postings value once
	// with a cursor: candidates come in increasing doc order.
	curs := make([][]*cursor, len(slots))
	for i, sl := range slots {
		for _, v := range sl {
			curs[i] = append(curs[i], newCursor(v))
		}
	}
	pos := make([][]int, len(slots))
	var err error
	acc.each(func(doc uint32) {
		if err != nil {
			return
		}
		for i, cs := range curs {
			pos[i] = pos[i][:0]
			for _, c := range cs {
				if c.seek(doc) && c.doc == doc {
					pos[i] = c.positions(pos[i])
				}
			}
			if c := cs[0]; c.err != nil {
				err = c.err
				return
			}
			if len(cs) > 1 {
				slices.Sort(pos[i])
			}
		}
		if !phraseAt(pos[0], pos[1:]) {
			acc.clear(doc)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("lsmindex: search %q: %w", terms, err)
	}
	return acc, nil
}

// phraseAt reports whether some p in first has p+i+1 in others[i] for
// every i.
func phraseAt(first []int, others [][]int) bool {
	for _, p := range first {
		ok := true
		for i, o := range others {
			if _, found := slices.BinarySearch(o, p+i+1); !found {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// term returns the postings value of t in field f, if any.
func (e *evaluator) term(f index.Field, t string) (slot, error) {
	e.key = postingsKey(e.key, e.u, f, []byte(t))
	v, err := e.db.Get(e.key)
	if errors.Is(err, lsm.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lsmindex: search: %w", err)
	}
	return slot{v}, nil
}

// maxPrefixTerms bounds the terms a prefix expands to.
const maxPrefixTerms = 100000

func (e *evaluator) prefix(f index.Field, t string) (slot, error) {
	lo := postingsKey(nil, e.u, f, []byte(t))
	it, err := e.db.NewIter(&lsm.IterOptions{LowerBound: lo, UpperBound: lsm.PrefixUpperBound(lo)})
	if err != nil {
		return nil, fmt.Errorf("lsmindex: search: %w", err)
	}
	defer it.Close()
	var out slot
	for ok := it.First(); ok; ok = it.Next() {
		if len(out) >= maxPrefixTerms {
			return nil, fmt.Errorf("%w: prefix %q matches more than %d terms", index.ErrBadQuery, t, maxPrefixTerms)
		}
		// The value is only valid until Next: keep a copy.
		out = append(out, slices.Clone(it.Value()))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lsmindex: search: %w", err)
	}
	return out, nil
}

// termInto adds the documents of term t in field f to dst.
func (e *evaluator) termInto(f index.Field, t string, dst bitset) error {
	e.key = postingsKey(e.key, e.u, f, []byte(t))
	v, err := e.db.Get(e.key)
	if errors.Is(err, lsm.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lsmindex: search: %w", err)
	}
	next := e.s.next
	if err := eachDoc(v, func(d uint32) {
		if d < next {
			dst.set(d)
		}
	}); err != nil {
		return fmt.Errorf("lsmindex: search %q: %w", t, err)
	}
	return nil
}
