package lsmindex

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"slices"
)

// A termTable is one analysis worker's dictionary of the keys (field
// byte and term) of a batch: it maps each key to a small id and keeps the
// key's postings accumulator by id. It replaces a map[string]*termAcc,
// which costs a string allocation per new key and, per token, a probe
// that reads the key's string from elsewhere in memory. Here a slot holds
// the key's first 8 bytes and a tag of its hash and length, so a probe
// for a key of 8 bytes or less (most words with their field byte) reads
// the slot only; longer keys compare the rest in one arena. A table is
// reset and reused by the next batch (see [Backend].tables), keeping its
// arrays. It is not safe for concurrent use.
type termTable struct {
	seed  maphash.Seed
	slots []termSlot // open addressing, linear probing; len a power of two
	keys  []byte     // the keys, back to back
	ends  []uint32   // ends[id] is the end of key id in keys
	accs  [][]termAcc
	// Most terms of a batch occur in one or two documents: their buffers
	// start in shared slabs of bytes (append moves a buffer that
	// outgrows its share to a heap array of its own). Slabs are reused
	// by the next batch: its postings are copied into the lsm batch by
	// then.
	slabs    [][]byte
	slabNext int
	slab     []byte
}

// termSlot is a slot of the table: the key's first 8 bytes (zero-padded,
// little-endian), a tag of the hash's high 24 bits and the key's length
// (255 for 255 or more), and the key's id plus one (0: empty).
type termSlot struct {
	head    uint64
	tag, id uint32
}

const (
	accPage             = 256  // accumulators allocated at once
	slabSize            = 8192 // bytes of a slab
	docsShare, posShare = 8, 16
)

func newTermTable(hint int) *termTable {
	t := &termTable{seed: maphash.MakeSeed()}
	t.reset(hint)
	return t
}

// reset empties t for a batch of about hint keys.
func (t *termTable) reset(hint int) {
	n := 1 << 12
	for n < 2*hint {
		n <<= 1
	}
	if len(t.slots) < n {
		t.slots = make([]termSlot, n)
	} else {
		clear(t.slots)
	}
	t.keys, t.ends = t.keys[:0], t.ends[:0]
	t.slabNext, t.slab = 0, nil
}

// len returns the number of keys.
func (t *termTable) len() int { return len(t.ends) }

// key returns key id.
func (t *termTable) key(id int) []byte {
	start := uint32(0)
	if id > 0 {
		start = t.ends[id-1]
	}
	return t.keys[start:t.ends[id]:t.ends[id]]
}

// acc returns the accumulator of key id.
func (t *termTable) acc(id int) *termAcc { return &t.accs[id/accPage][id%accPage] }

// keyHead returns the first 8 bytes of k, zero-padded, little-endian.
func keyHead(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.LittleEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.LittleEndian.Uint64(b[:])
}

// get returns the accumulator of key k, adding k if it is new. k is not
// retained.
func (t *termTable) get(k []byte) *termAcc {
	h := maphash.Bytes(t.seed, k)
	tag := uint32(h>>32)&^0xff | uint32(min(len(k), 255))
	head := keyHead(k)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.id == 0 {
			return t.add(i, head, tag, k)
		}
		if s.tag == tag && s.head == head && (len(k) <= 8 || bytes.Equal(t.key(int(s.id-1)), k)) {
			return t.acc(int(s.id - 1))
		}
	}
}

// add adds k as a new key in slot i.
func (t *termTable) add(i, head uint64, tag uint32, k []byte) *termAcc {
	id := len(t.ends)
	t.keys = append(t.keys, k...)
	t.ends = append(t.ends, uint32(len(t.keys)))
	t.slots[i] = termSlot{head: head, tag: tag, id: uint32(id + 1)}
	if id/accPage == len(t.accs) {
		t.accs = append(t.accs, make([]termAcc, accPage))
	}
	if len(t.slab) < docsShare+posShare {
		if t.slabNext == len(t.slabs) {
			t.slabs = append(t.slabs, make([]byte, slabSize))
		}
		t.slab = t.slabs[t.slabNext]
		t.slabNext++
	}
	a := t.acc(id)
	*a = termAcc{docs: t.slab[:0:docsShare], pos: t.slab[docsShare : docsShare : docsShare+posShare]}
	t.slab = t.slab[docsShare+posShare:]
	if 2*len(t.ends) > len(t.slots) {
		t.grow()
	}
	return a
}

// grow doubles the slot array.
func (t *termTable) grow() {
	old := t.slots
	t.slots = make([]termSlot, 2*len(old))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.id == 0 {
			continue
		}
		i := maphash.Bytes(t.seed, t.key(int(s.id-1))) & mask
		for t.slots[i].id != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// termRef names one worker's key: worker w's table, key id.
type termRef struct {
	prefix uint64 // 8 bytes of the key, big-endian, zero-padded
	w, id  uint32
}

// sortedTerms returns the keys of every table sorted by key and then by
// table (worker), so the entries of one key are adjacent in the order
// their chunks concatenate.
func sortedTerms(tables []*termTable) []termRef {
	n := 0
	for _, t := range tables {
		n += t.len()
	}
	refs := make([]termRef, 0, n)
	for w, t := range tables {
		for id := range t.len() {
			refs = append(refs, termRef{w: uint32(w), id: uint32(id)})
		}
	}
	sortTermRefs(tables, refs, make([]termRef, n), 0)
	return refs
}

// sortTermRefs sorts refs, whose keys share their first off bytes, by
// key and then table, stably; tmp is scratch space as long as refs.
//
// It is a most-significant-digit radix sort by 8 bytes at a time: a
// least-significant-digit radix sort on the keys' bytes off to off+8
// (one pass per byte that is not the same in every key) orders refs
// without comparing keys, then each run of keys equal in those bytes is
// sorted by the next 8 bytes the same way. Runs so short that radix
// passes cost more than comparisons, or with a key that ends within the
// 8 bytes (zero padding would tie it with a longer key), are sorted by
// comparing keys. Every step is stable, so equal keys stay in table
// order. Keys of one field often share 8 bytes or more (header terms
// start with the header's name), which is why one radix level is not
// enough.
func sortTermRefs(tables []*termTable, refs, tmp []termRef, off int) {
	n := len(refs)
	if n == 0 {
		return // a batch without terms: nothing to sort
	}
	for i := range refs {
		var b [8]byte
		k := tables[refs[i].w].key(int(refs[i].id))
		if off < len(k) {
			copy(b[:], k[off:])
		}
		refs[i].prefix = binary.BigEndian.Uint64(b[:])
	}
	src, dst := refs, tmp[:n]
	for shift := 0; shift < 64; shift += 8 {
		var count [257]int
		for _, r := range src {
			count[(r.prefix>>shift)&0xff+1]++
		}
		if count[(src[0].prefix>>shift)&0xff+1] == n {
			continue // every key has this byte
		}
		for i := 1; i < 257; i++ {
			count[i] += count[i-1]
		}
		for _, r := range src {
			d := (r.prefix >> shift) & 0xff
			dst[count[d]] = r
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &refs[0] {
		copy(refs, src)
	}
	cmp := func(a, b termRef) int {
		if c := bytes.Compare(tables[a.w].key(int(a.id)), tables[b.w].key(int(b.id))); c != 0 {
			return c
		}
		return int(a.w) - int(b.w)
	}
	for i := 0; i < n; {
		j, short := i+1, false
		for j < n && refs[j].prefix == refs[i].prefix {
			j++
		}
		if j-i > 1 {
			for _, r := range refs[i:j] {
				if len(tables[r.w].key(int(r.id))) < off+8 {
					short = true
					break
				}
			}
			if short || j-i <= 32 {
				slices.SortFunc(refs[i:j], cmp)
			} else {
				sortTermRefs(tables, refs[i:j], tmp[i:j], off+8)
			}
		}
		i = j
	}
}
