package lsmindex

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTermTable checks that a termTable finds every key it was given,
// across growth, and that sortedTerms orders the keys of several tables
// by key and then table, whatever prefixes the keys share.
func TestTermTable(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	// Keys from a small alphabet with long shared prefixes, short keys,
	// and NUL bytes, which the radix sort's zero padding must not
	// confuse with a key's end.
	prefixes := []string{"", "\x08message-id:", "\x08message-id:abc", "ab", "ab\x00", "\x06"}
	key := func() []byte {
		k := []byte(prefixes[r.IntN(len(prefixes))])
		for range r.IntN(12) {
			k = append(k, "ab\x00c"[r.IntN(4)])
		}
		return k
	}
	var tables []*termTable
	type want struct {
		key string
		w   int
	}
	var all []want
	for w := range 3 {
		tb := newTermTable(1)
		if w == 1 {
			// A reused table: its slots, arena and slabs hold a batch
			// before.
			for i := range 5000 {
				tb.get(key()).add(uint32(i), i)
			}
			tb.reset(1)
		}
		seen := map[string]*termAcc{}
		for i := range 20000 {
			k := key()
			a := tb.get(k)
			if b, ok := seen[string(k)]; ok {
				require.Same(t, b, a, "key %q", k)
			} else {
				seen[string(k)] = a
				all = append(all, want{string(k), w})
			}
			a.add(uint32(i), 0)
		}
		require.Equal(t, len(seen), tb.len())
		tables = append(tables, tb)
	}
	slices.SortStableFunc(all, func(a, b want) int {
		if c := bytes.Compare([]byte(a.key), []byte(b.key)); c != 0 {
			return c
		}
		return a.w - b.w
	})
	got := sortedTerms(tables)
	require.Len(t, got, len(all))
	for i, ref := range got {
		require.Equal(t, all[i], want{string(tables[ref.w].key(int(ref.id))), int(ref.w)}, "position %d", i)
	}
}
