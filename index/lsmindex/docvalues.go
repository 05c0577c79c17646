package lsmindex

import (
	"fmt"
	"slices"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// The in-memory doc values of a user. What every search needs (the live
// set, dates for the order and pages, flags for the commonest filter,
// IDs for ties and hits) is held in columns indexed by doc number and
// loaded eagerly, costing 27 bytes a document. The rest of the Values is
// held per chunk of doc numbers in a segment of index.Values, read from
// the DB's sealed chunk and decoded the first time a call reads a
// document of the chunk (a hit, a folder or keyword filter, Get, List): a
// cold user's first search decodes a few chunks at most.
//
// Segments are published with an atomic pointer, so searches (which hold
// the user's read lock) can decode one while others read; a writer holds
// the user's write lock and needs no more.

// grow extends the columns to n documents.
func (s *userState) grow(n uint32) {
	if k := int(n) - len(s.ids); k > 0 {
		s.ids = append(slices.Grow(s.ids, k), make([]mailbricks.MessageID, k)...)
		s.flags = append(slices.Grow(s.flags, k), make([]index.Flag, k)...)
		s.dates = append(slices.Grow(s.dates, k), make([]int64, k)...)
	}
	if k := int((n+63)/64) - len(s.liveSet); k > 0 {
		s.liveSet = append(s.liveSet, make(bitset, k)...)
	}
	if k := int((n+s.chunk-1)/s.chunk) - len(s.segs); k > 0 {
		s.segs = append(s.segs, make([]atomicSeg, k)...)
	}
}

// seg returns the segment of doc number n, decoding or allocating it.
func (s *userState) seg(n uint32) ([]index.Values, error) {
	c := n / s.chunk
	if p := s.segs[c].Load(); p != nil {
		return *p, nil
	}
	s.segMu.Lock()
	defer s.segMu.Unlock()
	if p := s.segs[c].Load(); p != nil {
		return *p, nil
	}
	var seg []index.Values
	if c < s.sealed {
		seg = make([]index.Values, s.chunk)
		// Not decoded since the chunk was loaded, so unchanged since:
		// the DB's chunk is what was loaded (a reseal or a seal writes a
		// chunk only from decoded segments).
		b, err := s.db.Get(chunkKey(nil, s.u, c))
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", c, err)
		}
		if err := decodeRest(b, s, c, seg); err != nil {
			return nil, err
		}
		// Shared dictionary strings are counted once per document:
		// the estimate errs on the safe side of the budget.
		for i := range seg {
			s.segStrBytes += docStrBytes(&seg[i])
		}
	}
	s.segs[c].Store(&seg)
	return seg, nil
}

// value returns the Values of live document n; the caller must not
// modify them, nor keep Keywords past the user's lock.
func (s *userState) value(n uint32) (*index.Values, error) {
	seg, err := s.seg(n)
	if err != nil {
		return nil, err
	}
	return &seg[n%s.chunk], nil
}

// put records live document n; the caller holds mu for writing.
func (s *userState) put(n uint32, id mailbricks.MessageID, v index.Values) error {
	if err := s.set(n, v); err != nil {
		return err
	}
	s.ids[n] = id
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
	if i := int(n % s.chunk); i >= len(seg) {
		// The unsealed tail's segment grows with it, so a small user
		// does not pay for a whole chunk.
		if i < cap(seg) {
			seg = seg[:i+1]
		} else {
			grown := make([]index.Values, i+1, min(int(s.chunk), max(2*cap(seg), i+1, 8)))
			copy(grown, seg)
			seg = grown
		}
		s.segs[n/s.chunk].Store(&seg)
	}
	v.Date = index.TimeOrZero(index.UnixOrZero(v.Date))
	v.SentDate = index.TimeOrZero(index.UnixOrZero(v.SentDate))
	s.strBytes += docStrBytes(&v) - docStrBytes(&seg[n%s.chunk])
	seg[n%s.chunk] = v
	s.flags[n] = v.Flags
	s.dates[n] = index.UnixOrZero(v.Date)
	return nil
}

// kill marks document n deleted.
func (s *userState) kill(n uint32) {
	s.liveSet.clear(n)
	s.live--
}

// newer reports whether doc a sorts before doc b newest first.
func (s *userState) newer(a, b uint32) bool {
	return index.Less(index.SortNewest, s.dates[a], s.ids[a], s.dates[b], s.ids[b])
}
