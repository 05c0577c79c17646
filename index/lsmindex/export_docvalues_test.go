package lsmindex

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// DropSegments forgets the decoded segments of u's sealed chunks, as if
// the user had just been loaded, and returns how many there were.
func DropSegments(b *Backend, u mailbricks.UserID) int {
	s, err := b.user(t0ctx, u, true)
	if err != nil {
		return 0
	}
	defer b.release(s, true)
	n := 0
	s.segMu.Lock()
	defer s.segMu.Unlock()
	for c := range s.sealed {
		if s.segs[c].Load() != nil {
			n++
			s.segs[c].Store(nil)
		}
	}
	s.segStrBytes = 0
	return n
}

// CheckViews reads every sealed chunk of u both ways, as a restView one
// document at a time and decoded whole, and returns the live documents
// compared and the first difference.
func CheckViews(b *Backend, u mailbricks.UserID) (int, error) {
	s, err := b.user(t0ctx, u, false)
	if err != nil {
		return 0, err
	}
	defer b.release(s, false)
	n := 0
	for c := range s.sealed {
		v, err := s.db.Get(docKey(nil, u, tagRest, c))
		if err != nil {
			return n, err
		}
		r, err := newRestView(v, s.chunk, c)
		if err != nil {
			return n, err
		}
		full := &segment{ids: make([]mailbricks.MessageID, s.chunk), vals: make([]index.Values, s.chunk)}
		if err := decodeRest(v, s, c, full); err != nil {
			return n, err
		}
		for i := range s.chunk {
			m := c*s.chunk + i
			if v[0] == 0 || !s.liveSet.has(m) || slices.Contains(s.overlay, m) {
				continue
			}
			var got index.Values
			if err := r.values(i, s.dates[m], s.flags[m], &got); err != nil {
				return n, err
			}
			if id, ok := r.id(i); !ok || id != full.ids[i] {
				return n, fmt.Errorf("doc %d: id %v, decoded %v", m, id, full.ids[i])
			}
			if !reflect.DeepEqual(got, full.vals[i]) {
				return n, fmt.Errorf("doc %d: view %+v, decoded %+v", m, got, full.vals[i])
			}
			n++
		}
	}
	return n, nil
}

// Views returns the number of u's segments that are views and the bytes
// of their 'R' values, without loading u.
func Views(b *Backend, u mailbricks.UserID) (int, int64) {
	b.mu.Lock()
	s := b.users[u]
	b.mu.Unlock()
	if s == nil {
		return 0, 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, size := 0, int64(0)
	for i := range s.segs {
		if p := s.segs[i].Load(); p != nil && p.rest != nil {
			n++
			size += int64(len(p.rest.b))
		}
	}
	return n, size
}
