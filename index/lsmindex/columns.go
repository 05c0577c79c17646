package lsmindex

// Doc-value snapshots: what a cold user's first search needs, in a form
// that loads in milliseconds.
//
// The doc records ('D', one per document) stay the source of truth, but
// reading 100,000 of them, decoding each and sorting the user's order
// takes about a hundred milliseconds. So doc numbers are grouped in
// chunks of chunkDocs, and once every doc number of a chunk is allocated
// the chunk is "sealed": the doc values of its documents are written as
// one column-oriented value (below), in the same lsm batch as the write
// that completed it. Later changes to a sealed document (an Update, a
// Delete, a replacement) write an overlay marker 'O' beside the doc
// record; loading a user reads the sealed chunks, then the doc record of
// every overlaid document (a missing one means deleted), then the doc
// records of the unsealed tail. When a user's overlay markers pass
// resealAfter, the chunks they touch are written again from memory and
// the markers removed, in one batch.
//
// Keys (see layout.go for the rest):
//
//	user 0x00 'C' chunk             sealed chunk, chunk = uint32 BE
//	user 0x00 'O' docnum            overlay marker, empty value
//	user 0x00 'V'                   doc-value layout version, uvarint
//
// The layout version key says the chunks are maintained: a user indexed
// before chunks existed (no 'V' key) is loaded from the doc records alone,
// and the load writes its chunks and the version key (a migration); the
// postings and doc records are unchanged, so no rebuild is needed.
//
// Chunk value:
//
//	[1]     version, 1
//	uvarint n, documents in the chunk (the Backend's chunk size, 1024)
//	[(n+7)/8] live bitmap, bit i%8 of byte i/8 set = doc first+i is live
//	then per live document, in doc-number order, the columns one after
//	the other (all of one column, then the next):
//	  [16]    message ID
//	  varint  date minus the previous live document's date (the first
//	          is relative to 0), Unix seconds, 0 = zero time
//	  uvarint flags
//	then the dictionary: uvarint size d, then d strings (uvarint len,
//	bytes), the chunk's distinct folders, threads and keywords
//	then the remaining columns, per live document:
//	  varint  sent date minus the document's date
//	  uvarint size
//	  uvarint uid
//	  uvarint modseq
//	  uvarint folder, dictionary index
//	  uvarint thread, dictionary index
//	  uvarint keyword count, then that many dictionary indexes
//
// Dates are mostly increasing with doc numbers, so their deltas take one
// to three bytes; a document costs about 30 bytes plus its ID. What every
// search needs (live set, IDs, dates, flags) comes first and is decoded
// when the user is loaded; the rest is read and decoded when a call first
// reads a document of the chunk (see docvalues.go).

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

const (
	tagChunk   = 'C'
	tagOverlay = 'O'
	tagLayout  = 'V'

	// layoutVersion is the doc-value layout version this package writes
	// and reads.
	layoutVersion = 2
)

// defaultChunkDocs is the number of doc numbers per sealed chunk;
// defaultResealAfter the number of overlay markers that makes a write
// reseal. A Backend copies them (tests make them small).
const (
	defaultChunkDocs   = 1024
	defaultResealAfter = 1024
)

// encodeChunk encodes the doc values of doc numbers [first, first+n) of s.
func encodeChunk(dst []byte, s *userState, first, n uint32) ([]byte, error) {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(n))
	bm := make([]byte, (n+7)/8)
	live := make([]uint32, 0, n)
	for i := range n {
		if s.liveSet.has(first + i) {
			bm[i/8] |= 1 << (i % 8)
			live = append(live, first+i)
		}
	}
	dst = append(dst, bm...)
	for _, m := range live {
		dst = append(dst, s.ids[m][:]...)
	}
	prev := int64(0)
	for _, m := range live {
		dst = binary.AppendVarint(dst, s.dates[m]-prev)
		prev = s.dates[m]
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, uint64(s.flags[m]))
	}
	dict := map[string]uint64{}
	var words []string
	word := func(w string) {
		if _, ok := dict[w]; !ok {
			dict[w] = uint64(len(words))
			words = append(words, w)
		}
	}
	vals := make([]*index.Values, len(live))
	for i, m := range live {
		v, err := s.value(m)
		if err != nil {
			return nil, err
		}
		vals[i] = v
		word(v.Folder)
		word(v.Thread)
		for _, k := range v.Keywords {
			word(k)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(words)))
	for _, w := range words {
		dst = appendString(dst, w)
	}
	for i, m := range live {
		dst = binary.AppendVarint(dst, index.UnixOrZero(vals[i].SentDate)-s.dates[m])
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, uint64(v.Size))
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, uint64(v.UID))
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, v.ModSeq)
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, dict[v.Folder])
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, dict[v.Thread])
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, uint64(len(v.Keywords)))
		for _, k := range v.Keywords {
			dst = binary.AppendUvarint(dst, dict[k])
		}
	}
	return dst, nil
}

// decodeChunk loads the columns every search needs from chunk c's value
// b into s, whose arrays must cover the chunk. The rest is read again
// from the DB and decoded by decodeRest when a call first needs it.
func decodeChunk(b []byte, s *userState, c uint32) error {
	first := c * s.chunk
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, c, what) }
	if len(b) < 1 || b[0] != 1 {
		return bad("version")
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	if r.err != nil || n != uint64(s.chunk) || uint64(first)+n > uint64(len(s.ids)) || uint64(len(r.b)) < (n+7)/8 {
		return bad("header")
	}
	bm := r.b[:(n+7)/8]
	r.b = r.b[(n+7)/8:]
	live := make([]uint32, 0, n)
	for i := range uint32(n) {
		if bm[i/8]&(1<<(i%8)) != 0 {
			live = append(live, first+i)
		}
	}
	// The hot loops decode from a local slice: a reader on the heap
	// would pay a write barrier per step while the GC runs.
	p := r.b
	if uint64(len(p)) < uint64(len(live))*16 {
		return bad("ids")
	}
	for i, m := range live {
		s.ids[m] = mailbricks.MessageID(p[i*16 : i*16+16])
	}
	p = p[len(live)*16:]
	prev := int64(0)
	for _, m := range live {
		d, k := binary.Varint(p)
		if k <= 0 {
			return bad("dates")
		}
		p = p[k:]
		prev += d
		s.dates[m] = prev
	}
	for _, m := range live {
		f, k := binary.Uvarint(p)
		if k <= 0 {
			return bad("flags")
		}
		p = p[k:]
		s.flags[m] = index.Flag(f)
	}
	for _, m := range live {
		s.liveSet.set(m)
	}
	s.live += len(live)
	return nil
}

// decodeRest decodes the rest of chunk c's value b (the columns
// decodeChunk did not) into seg.
func decodeRest(b []byte, s *userState, c uint32, seg []index.Values) error {
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, c, what) }
	if len(b) < 1 || b[0] != 1 {
		return bad("version")
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	if r.err != nil || n != uint64(s.chunk) || uint64(len(r.b)) < (n+7)/8 {
		return bad("header")
	}
	bm := r.b[:(n+7)/8]
	r.b = r.b[(n+7)/8:]
	live := 0
	for _, x := range bm {
		live += bits.OnesCount8(x)
	}
	if uint64(len(r.b)) < uint64(live)*16 {
		return bad("ids")
	}
	r.b = r.b[live*16:]
	for range 2 * live {
		r.uvarint()
	}
	if r.err != nil {
		return bad("columns")
	}
	return walkRest(bm, r.b, c, s, seg)
}

// walkRest decodes the dictionary and the remaining columns of chunk c
// with live bitmap bm into seg.
func walkRest(bm, b []byte, c uint32, s *userState, seg []index.Values) error {
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, c, what) }
	var live []uint32 // offsets in the chunk
	for i := range s.chunk {
		if bm[i/8]&(1<<(i%8)) != 0 {
			live = append(live, i)
		}
	}
	fill := true
	r := reader{b: b}
	nd := r.uvarint()
	if nd > uint64(len(r.b)) {
		return bad("dictionary")
	}
	words := make([]string, nd)
	for i := range words {
		words[i] = r.str()
	}
	first := c * s.chunk
	for _, i := range live {
		sent := r.varint()
		if fill {
			d := s.dates[first+i]
			seg[i].Date = index.TimeOrZero(d)
			seg[i].SentDate = index.TimeOrZero(d + sent)
			seg[i].Flags = s.flags[first+i]
		}
	}
	for _, i := range live {
		if x := r.uvarint(); fill {
			seg[i].Size = int64(x)
		}
	}
	for _, i := range live {
		if x := r.uvarint(); fill {
			seg[i].UID = uint32(x)
		}
	}
	for _, i := range live {
		if x := r.uvarint(); fill {
			seg[i].ModSeq = x
		}
	}
	str := func() string {
		i := r.uvarint()
		if i >= uint64(len(words)) {
			if r.err == nil {
				r.err = errCorrupt
			}
			return ""
		}
		return words[i]
	}
	for _, i := range live {
		if w := str(); fill {
			seg[i].Folder = w
		}
	}
	for _, i := range live {
		if w := str(); fill {
			seg[i].Thread = w
		}
	}
	for _, i := range live {
		k := r.uvarint()
		if k > uint64(len(r.b)) {
			return bad("keywords")
		}
		if k == 0 {
			continue
		}
		var kw []string
		if fill {
			kw = make([]string, k)
		}
		for j := range int(k) {
			if w := str(); fill {
				kw[j] = w
			}
		}
		if fill {
			seg[i].Keywords = kw
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return bad("columns")
	}
	return nil
}

// docStrBytes is the bytes of v's strings, for the memory estimate.
func docStrBytes(v *index.Values) int64 {
	n := int64(len(v.Folder) + len(v.Thread) + 16*len(v.Keywords))
	for _, k := range v.Keywords {
		n += int64(len(k))
	}
	return n
}

func chunkKey(dst []byte, u mailbricks.UserID, c uint32) []byte {
	return docKey(dst, u, tagChunk, c)
}
