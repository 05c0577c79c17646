package lsmindex

import (
	"fmt"
	"slices"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// The in-memory doc values of a user. What every search needs (the live
// set, dates for the order and pages, flags for the commonest filter) is
// held in columns indexed by doc number and loaded eagerly, costing 11
// bytes a document. The IDs and the rest of the Values are held per chunk
// of doc numbers in a segment, read from the DB's sealed chunk the first
// time a call reads a document of the chunk. A search's hits and ties of
// dates need a few documents of a chunk: for them the segment keeps the
// chunk's 'R' value as it is and decodes one document at a time from it
// (a restView, columns.go), which costs a fifth of the memory of decoded
// Values (about 30 bytes a document against 150) and no decoding of the
// other documents. A call that reads every
// document (a folder or keyword filter, Get, List, a write) decodes the
// whole chunk into Values once and replaces the view. The bytes of views
// are charged to segStrBytes, so the memory budget sees them.
//
// Segments are published with an atomic pointer, so searches (which hold
// the user's read lock) can decode one while others read; a writer holds
// the user's write lock and needs no more.

// segment is the IDs and Values of one chunk of doc numbers, indexed by
// doc number minus the chunk's first. The unsealed tail's segment grows
// with it.
type segment struct {
	ids  []mailbricks.MessageID
	vals []index.Values
	// rest, if set, is the undecoded chunk the segment reads its
	// documents from; ids and vals are nil.
	rest *restView
}

// grow extends the columns to n documents.
func (s *userState) grow(n uint32) {
	if k := int(n) - len(s.dates); k > 0 {
		s.flags = growZero(s.flags, k)
		s.dates = growZero(s.dates, k)
	}
	if k := int((n+63)/64) - len(s.liveSet); k > 0 {
		s.liveSet = append(s.liveSet, make(bitset, k)...)
	}
	if k := int((n+s.chunk-1)/s.chunk) - len(s.segs); k > 0 {
		s.segs = append(s.segs, make([]atomicSeg, k)...)
	}
}

// growZero extends x by k zero elements. A load grows empty columns to
// the user's whole size at once: one allocation of exactly that size, not
// a zeroed temporary copied into another (which doubled the fresh memory
// a cold start touches).
func growZero[E any](x []E, k int) []E {
	if len(x) == 0 {
		return make([]E, k)
	}
	n := len(x)
	x = slices.Grow(x, k)[:n+k]
	clear(x[n:])
	return x
}

// seg returns the decoded segment of doc number n, decoding or
// allocating it.
func (s *userState) seg(n uint32) (*segment, error) {
	c := n / s.chunk
	if p := s.segs[c].Load(); p != nil && p.rest == nil {
		return p, nil
	}
	s.segMu.Lock()
	defer s.segMu.Unlock()
	p := s.segs[c].Load()
	if p != nil && p.rest == nil {
		return p, nil
	}
	seg := &segment{}
	if c < s.sealed {
		seg.ids = make([]mailbricks.MessageID, s.chunk)
		seg.vals = make([]index.Values, s.chunk)
		// Not decoded since the chunk was loaded, so unchanged since:
		// the DB's chunk is what was loaded (a reseal or a seal writes a
		// chunk only from decoded segments), and a view holds it.
		var err error
		if p != nil {
			if err = decodeRest(p.rest.b, s, c, seg); err == nil {
				s.segStrBytes -= p.rest.size
			}
		} else if s.layout == layoutV2 {
			var b []byte
			if b, err = s.db.Get(chunkKey(nil, s.u, c)); err == nil {
				err = decodeRestV2(b, s, c, seg)
			}
		} else {
			var b []byte
			if b, err = s.db.Get(docKey(nil, s.u, tagRest, c)); err == nil {
				err = decodeRest(b, s, c, seg)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", c, err)
		}
		// Shared dictionary strings are counted once per document:
		// the estimate errs on the safe side of the budget.
		for i := range seg.vals {
			s.segStrBytes += docStrBytes(&seg.vals[i])
		}
	}
	s.segs[c].Store(seg)
	return seg, nil
}

// view returns the segment of doc number n, decoded or a view of its
// sealed chunk, reading the chunk if neither is in memory.
func (s *userState) view(n uint32) (*segment, error) {
	c := n / s.chunk
	if p := s.segs[c].Load(); p != nil {
		return p, nil
	}
	if c >= s.sealed || s.layout == layoutV2 {
		return s.seg(n)
	}
	s.segMu.Lock()
	defer s.segMu.Unlock()
	if p := s.segs[c].Load(); p != nil {
		return p, nil
	}
	b, err := s.db.Get(docKey(nil, s.u, tagRest, c))
	if err != nil {
		return nil, fmt.Errorf("chunk %d: %w", c, err)
	}
	r, err := newRestView(b, s.chunk, c)
	if err != nil {
		return nil, err
	}
	s.segStrBytes += r.size
	seg := &segment{rest: r}
	s.segs[c].Store(seg)
	return seg, nil
}

// value returns the Values of live document n; the caller must not
// modify them, nor keep Keywords past the user's lock.
func (s *userState) value(n uint32) (*index.Values, error) {
	seg, err := s.seg(n)
	if err != nil {
		return nil, err
	}
	return &seg.vals[n%s.chunk], nil
}

// hit sets h's ID and Values to those of live document n, with Keywords
// of their own, without decoding the rest of n's chunk.
func (s *userState) hit(n uint32, h *index.Hit) error {
	seg, err := s.view(n)
	if err != nil {
		return err
	}
	if seg.rest != nil {
		h.ID, _ = seg.rest.id(n % s.chunk) // values checks it too
		return seg.rest.values(n%s.chunk, s.dates[n], s.flags[n], &h.Values)
	}
	v := &seg.vals[n%s.chunk]
	h.ID, h.Values = seg.ids[n%s.chunk], *v
	h.Values.Keywords = slices.Clone(v.Keywords)
	return nil
}

// idOf returns the ID of live document n.
func (s *userState) idOf(n uint32) (mailbricks.MessageID, error) {
	seg, err := s.view(n)
	if err != nil {
		return mailbricks.MessageID{}, err
	}
	if seg.rest != nil {
		id, ok := seg.rest.id(n % s.chunk)
		if !ok {
			return id, fmt.Errorf("%w: chunk %d: document %d not live", errCorrupt, n/s.chunk, n)
		}
		return id, nil
	}
	return seg.ids[n%s.chunk], nil
}

// id returns the ID of live document n for a comparison that cannot
// return an error: on a read error it returns the zero ID and records the
// error, which takeErr returns.
func (s *userState) id(n uint32) mailbricks.MessageID {
	id, err := s.idOf(n)
	if err != nil {
		s.errMu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.errMu.Unlock()
	}
	return id
}

// takeErr returns and clears the error id recorded.
func (s *userState) takeErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	err := s.err
	s.err = nil
	return err
}

// put records live document n; the caller holds mu for writing.
func (s *userState) put(n uint32, id mailbricks.MessageID, v index.Values) error {
	if err := s.set(n, v); err != nil {
		return err
	}
	s.segs[n/s.chunk].Load().ids[n%s.chunk] = id
	s.liveSet.set(n)
	if s.byID != nil {
		s.byID[id] = n
	}
	s.live++
	return nil
}

// set replaces the Values of document n; the caller holds mu for writing.
func (s *userState) set(n uint32, v index.Values) error {
	seg, err := s.seg(n)
	if err != nil {
		return err
	}
	if i := int(n % s.chunk); i >= len(seg.vals) {
		// The unsealed tail's segment grows with it, so a small user
		// does not pay for a whole chunk.
		grown := &segment{}
		if i < cap(seg.vals) {
			grown.vals, grown.ids = seg.vals[:i+1], seg.ids[:i+1]
		} else {
			c := min(int(s.chunk), max(2*cap(seg.vals), i+1, 8))
			grown.vals = make([]index.Values, i+1, c)
			grown.ids = make([]mailbricks.MessageID, i+1, c)
			copy(grown.vals, seg.vals)
			copy(grown.ids, seg.ids)
		}
		seg = grown
		s.segs[n/s.chunk].Store(seg)
	}
	v.Date = index.TimeOrZero(index.UnixOrZero(v.Date))
	v.SentDate = index.TimeOrZero(index.UnixOrZero(v.SentDate))
	s.strBytes += docStrBytes(&v) - docStrBytes(&seg.vals[n%s.chunk])
	seg.vals[n%s.chunk] = v
	s.flags[n] = v.Flags
	s.dates[n] = index.UnixOrZero(v.Date)
	return nil
}

// kill marks document n deleted.
func (s *userState) kill(n uint32) {
	s.liveSet.clear(n)
	s.live--
}

// newer reports whether doc a sorts before doc b newest first. The IDs
// are read only for equal dates.
func (s *userState) newer(a, b uint32) bool {
	if da, db := s.dates[a], s.dates[b]; da != db {
		return da > db
	}
	return index.Less(index.SortNewest, 0, s.id(a), 0, s.id(b))
}

// less is index.Less for documents a and b of s.
func (s *userState) less(o index.Sort, a, b uint32) bool {
	if da, db := s.dates[a], s.dates[b]; da != db {
		return index.Less(o, da, mailbricks.MessageID{}, db, mailbricks.MessageID{})
	}
	return index.Less(o, 0, s.id(a), 0, s.id(b))
}

// lessCursor is index.Less(o, date, id, dates[n], id of n) (cursorFirst)
// or index.Less(o, dates[n], id of n, date, id).
func (s *userState) lessCursor(o index.Sort, date int64, id mailbricks.MessageID, n uint32, cursorFirst bool) bool {
	d := s.dates[n]
	var nid mailbricks.MessageID
	if d == date {
		nid = s.id(n)
	}
	if cursorFirst {
		return index.Less(o, date, id, d, nid)
	}
	return index.Less(o, d, nid, date, id)
}
