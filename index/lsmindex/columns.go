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
//	user 0x00 'C' chunk             sealed chunk, what loading reads
//	user 0x00 'R' chunk             the rest of the sealed chunk
//	user 0x00 'O' docnum            overlay marker, empty value
//	user 0x00 'V'                   doc-value layout version, uvarint
//
// chunk is a uint32 BE. The layout version key says the chunks are
// maintained: a user indexed before chunks existed (no 'V' key) is loaded
// from the doc records alone, and the load writes its chunks and the
// version key (a migration); the postings and doc records are unchanged,
// so no rebuild is needed. Layout version 2 kept a chunk in one 'C' value
// (version 1 below), which loading read whole; a user of version 2 is
// loaded from it and migrated to version 3 by the same load.
//
// 'C' value (version 2), what a cold user's first search needs:
//
//	[1]     version, 2
//	uvarint n, documents in the chunk (the Backend's chunk size, 1024)
//	[(n+7)/8] live bitmap, bit i%8 of byte i/8 set = doc first+i is live
//	then per live document, in doc-number order, the columns one after
//	the other (all of one column, then the next):
//	  varint  date minus the previous live document's date (the first
//	          is relative to 0), Unix seconds, 0 = zero time
//	  uvarint flags
//
// 'R' value, read when a call first needs a document of the chunk:
//
//	[1]     version, 1
//	uvarint n and the live bitmap, as in the 'C' value
//	per live document: [16] message ID
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
// 'C' value version 1 (layout version 2): version 1, n, the live bitmap,
// the IDs, the dates and the flags, then the dictionary and the remaining
// columns as in the 'R' value.
//
// Dates are mostly increasing with doc numbers, so their deltas take one
// to three bytes: a 'C' value costs about three bytes a document, which
// makes loading 100,000 documents read about 300 KB; the IDs and the rest
// cost about 30 bytes plus the ID (see docvalues.go).

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

const (
	tagChunk   = 'C'
	tagRest    = 'R'
	tagOverlay = 'O'
	tagLayout  = 'V'

	// layoutVersion is the doc-value layout version this package writes;
	// layoutV2 the previous one, which it reads and migrates.
	layoutVersion = 3
	layoutV2      = 2
)

// defaultChunkDocs is the number of doc numbers per sealed chunk;
// defaultResealAfter the number of overlay markers that makes a write
// reseal. A Backend copies them (tests make them small).
const (
	defaultChunkDocs   = 1024
	defaultResealAfter = 1024
)

// encodeChunk appends the 'C' and 'R' values of doc numbers [first,
// first+n) of s to hot and rest.
func encodeChunk(hot, rest []byte, s *userState, first, n uint32) ([]byte, []byte, error) {
	bm := make([]byte, (n+7)/8)
	live := make([]uint32, 0, n)
	for i := range n {
		if s.liveSet.has(first + i) {
			bm[i/8] |= 1 << (i % 8)
			live = append(live, first+i)
		}
	}
	hot = append(hot, 2)
	hot = binary.AppendUvarint(hot, uint64(n))
	hot = append(hot, bm...)
	prev := int64(0)
	for _, m := range live {
		hot = binary.AppendVarint(hot, s.dates[m]-prev)
		prev = s.dates[m]
	}
	for _, m := range live {
		hot = binary.AppendUvarint(hot, uint64(s.flags[m]))
	}
	rest = append(rest, 1)
	rest = binary.AppendUvarint(rest, uint64(n))
	rest = append(rest, bm...)
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
		seg, err := s.seg(m)
		if err != nil {
			return nil, nil, err
		}
		rest = append(rest, seg.ids[m%s.chunk][:]...)
		v := &seg.vals[m%s.chunk]
		vals[i] = v
		word(v.Folder)
		word(v.Thread)
		for _, k := range v.Keywords {
			word(k)
		}
	}
	rest = binary.AppendUvarint(rest, uint64(len(words)))
	for _, w := range words {
		rest = appendString(rest, w)
	}
	for i, m := range live {
		rest = binary.AppendVarint(rest, index.UnixOrZero(vals[i].SentDate)-s.dates[m])
	}
	for _, v := range vals {
		rest = binary.AppendUvarint(rest, uint64(v.Size))
	}
	for _, v := range vals {
		rest = binary.AppendUvarint(rest, uint64(v.UID))
	}
	for _, v := range vals {
		rest = binary.AppendUvarint(rest, v.ModSeq)
	}
	for _, v := range vals {
		rest = binary.AppendUvarint(rest, dict[v.Folder])
	}
	for _, v := range vals {
		rest = binary.AppendUvarint(rest, dict[v.Thread])
	}
	for _, v := range vals {
		rest = binary.AppendUvarint(rest, uint64(len(v.Keywords)))
		for _, k := range v.Keywords {
			rest = binary.AppendUvarint(rest, dict[k])
		}
	}
	return hot, rest, nil
}

// chunkHeader checks the version and size of a chunk value and returns
// its live bitmap and what follows it.
func chunkHeader(b []byte, version byte, chunk uint32) (bm, p []byte, ok bool) {
	if len(b) < 1 || b[0] != version {
		return nil, nil, false
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n != uint64(chunk) || uint64(len(b)-1-k) < (n+7)/8 {
		return nil, nil, false
	}
	b = b[1+k:]
	return b[:(n+7)/8], b[(n+7)/8:], true
}

// decodeChunk loads the columns every search needs (live set, dates,
// flags) from chunk c's 'C' value b into s, whose arrays must cover the
// chunk. The rest is read from the DB and decoded by decodeRest when a
// call first needs it. live is scratch space, kept across calls.
func decodeChunk(b []byte, s *userState, c uint32, scratch *[]uint32) error {
	first := c * s.chunk
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, c, what) }
	version := byte(2)
	if s.layout == layoutV2 {
		version = 1
	}
	bm, p, ok := chunkHeader(b, version, s.chunk)
	if !ok || uint64(first)+uint64(s.chunk) > uint64(len(s.dates)) {
		return bad("header")
	}
	live := (*scratch)[:0]
	defer func() { *scratch = live }()
	for i, x := range bm {
		for x != 0 {
			j := bits.TrailingZeros8(x)
			x &^= 1 << j
			live = append(live, first+uint32(i*8+j))
		}
	}
	if version == 1 {
		if uint64(len(p)) < uint64(len(live))*16 {
			return bad("ids")
		}
		p = p[len(live)*16:]
	}
	// The hot loops decode from a local slice: a reader on the heap
	// would pay a write barrier per step while the GC runs.
	dates := s.dates
	prev := int64(0)
	for _, m := range live {
		// Deltas of mail arriving minutes to days apart take two or
		// three bytes: decode those inline.
		var u uint64
		switch {
		case len(p) >= 3 && p[0] >= 0x80 && p[1] >= 0x80 && p[2] < 0x80:
			u, p = uint64(p[0]&0x7f)|uint64(p[1]&0x7f)<<7|uint64(p[2])<<14, p[3:]
		case len(p) >= 2 && p[0] >= 0x80 && p[1] < 0x80:
			u, p = uint64(p[0]&0x7f)|uint64(p[1])<<7, p[2:]
		case len(p) >= 1 && p[0] < 0x80:
			u, p = uint64(p[0]), p[1:]
		default:
			var k int
			if u, k = binary.Uvarint(p); k <= 0 {
				return bad("dates")
			}
			p = p[k:]
		}
		prev += unzigzag(u)
		dates[m] = prev
	}
	flags := s.flags
	for _, m := range live {
		var f uint64
		if len(p) > 0 && p[0] < 0x80 {
			f, p = uint64(p[0]), p[1:]
		} else {
			var k int
			if f, k = binary.Uvarint(p); k <= 0 {
				return bad("flags")
			}
			p = p[k:]
		}
		flags[m] = index.Flag(f)
	}
	if version == 2 && len(p) != 0 {
		return bad("trailing bytes")
	}
	// first is a multiple of the chunk size; whole words where it is a
	// multiple of 64.
	if first%64 == 0 && s.chunk%64 == 0 {
		for i := 0; i < len(bm); i += 8 {
			s.liveSet[(first+uint32(i)*8)/64] = binary.LittleEndian.Uint64(bm[i : i+8])
		}
	} else {
		for _, m := range live {
			s.liveSet.set(m)
		}
	}
	s.live += len(live)
	return nil
}

// decodeRest decodes chunk c's 'R' value b into seg.
func decodeRest(b []byte, s *userState, c uint32, seg *segment) error {
	bm, p, ok := chunkHeader(b, 1, s.chunk)
	if !ok {
		return fmt.Errorf("%w: chunk %d: rest header", errCorrupt, c)
	}
	return walkRest(bm, p, c, s, seg, false)
}

// decodeRestV2 decodes the IDs and the rest of chunk c's 'C' value of
// version 1 (layout version 2) into seg.
func decodeRestV2(b []byte, s *userState, c uint32, seg *segment) error {
	bm, p, ok := chunkHeader(b, 1, s.chunk)
	if !ok {
		return fmt.Errorf("%w: chunk %d: header", errCorrupt, c)
	}
	return walkRest(bm, p, c, s, seg, true)
}

// walkRest decodes the IDs, the dictionary and the remaining columns of
// chunk c with live bitmap bm from b into seg. With skipDates, the dates
// and flags (a version 1 'C' value's) follow the IDs and are skipped.
func walkRest(bm, b []byte, c uint32, s *userState, seg *segment, skipDates bool) error {
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, c, what) }
	var live []uint32 // offsets in the chunk
	for i := range s.chunk {
		if bm[i/8]&(1<<(i%8)) != 0 {
			live = append(live, i)
		}
	}
	if uint64(len(b)) < uint64(len(live))*16 {
		return bad("ids")
	}
	for j, i := range live {
		seg.ids[i] = mailbricks.MessageID(b[j*16 : j*16+16])
	}
	b = b[len(live)*16:]
	fill := true
	r := reader{b: b}
	if skipDates {
		for range 2 * len(live) {
			r.uvarint()
		}
		if r.err != nil {
			return bad("columns")
		}
	}
	nd := r.uvarint()
	if nd > uint64(len(r.b)) {
		return bad("dictionary")
	}
	// The words share one allocation: a chunk's dictionary holds a
	// thread ID per message, and a string each made decoding a chunk
	// cost a thousand allocations.
	words := make([]string, nd)
	start := r.b
	type span struct{ at, n int }
	spans := make([]span, nd)
	for i := range spans {
		n := r.uvarint()
		if r.err != nil || n > uint64(len(r.b)) {
			return bad("dictionary")
		}
		spans[i] = span{len(start) - len(r.b), int(n)}
		r.b = r.b[n:]
	}
	all := string(start[:len(start)-len(r.b)])
	for i, sp := range spans {
		words[i] = all[sp.at : sp.at+sp.n]
	}
	first := c * s.chunk
	for _, i := range live {
		sent := r.varint()
		if fill {
			d := s.dates[first+i]
			seg.vals[i].Date = index.TimeOrZero(d)
			seg.vals[i].SentDate = index.TimeOrZero(d + sent)
			seg.vals[i].Flags = s.flags[first+i]
		}
	}
	for _, i := range live {
		if x := r.uvarint(); fill {
			seg.vals[i].Size = int64(x)
		}
	}
	for _, i := range live {
		if x := r.uvarint(); fill {
			seg.vals[i].UID = uint32(x)
		}
	}
	for _, i := range live {
		if x := r.uvarint(); fill {
			seg.vals[i].ModSeq = x
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
			seg.vals[i].Folder = w
		}
	}
	for _, i := range live {
		if w := str(); fill {
			seg.vals[i].Thread = w
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
			seg.vals[i].Keywords = kw
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

// A restView reads single documents from a chunk's 'R' value without
// decoding the chunk. The IDs have a fixed width, so a document's ID is at
// its rank among the chunk's live documents (rank holds the count before
// each bitmap byte). The other columns hold one varint a document (but
// the keywords, which come last), so the j-th document's entry of a
// column follows the column's j-th varint terminator (a byte below 0x80),
// which skipVarints counts eight bytes at a time. Building the view
// walks the dictionary and counts each column's terminators once,
// marking where every viewStride-th document's entry starts; reading a
// document then skips fewer than viewStride entries a column, and
// nothing is allocated per document of the chunk. Entries are checked as they are read (walkRest
// checks the whole value when a call decodes the chunk).
type restView struct {
	b    []byte // the 'R' value
	bm   []byte // its live bitmap
	rank []uint32
	ids  int // offset of the IDs in b
	// words holds the offset in b of each dictionary word's length
	// prefix: a hit's strings are copied out of b, not the dictionary.
	words []uint32
	// marks[col][k] is the offset in b of the entry of live document
	// k*viewStride in column col.
	marks [restColumns][]uint32
	size  int64 // bytes charged to the memory budget
}

const (
	// restColumns is the number of per-document columns after the
	// dictionary, in their order.
	restColumns = 7
	colSent     = 0
	colSize     = 1
	colUID      = 2
	colModSeq   = 3
	colFolder   = 4
	colThread   = 5
	colKeywords = 6
	viewStride  = 64
)

// newRestView checks the header and dictionary of chunk c's 'R' value b
// (of a chunk of n doc numbers) and returns a view of it, which keeps b.
func newRestView(b []byte, n, c uint32) (*restView, error) {
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, c, what) }
	bm, p, ok := chunkHeader(b, 1, n)
	if !ok {
		return nil, bad("rest header")
	}
	r := &restView{b: b, bm: bm, rank: make([]uint32, len(bm))}
	live := 0
	for i, x := range bm {
		r.rank[i] = uint32(live)
		live += bits.OnesCount8(x)
	}
	r.ids = len(b) - len(p)
	if uint64(len(p)) < uint64(live)*16 {
		return nil, bad("ids")
	}
	at := r.ids + 16*live
	nd, k := binary.Uvarint(b[at:])
	if k <= 0 || nd > uint64(len(b)-at) {
		return nil, bad("dictionary")
	}
	at += k
	r.words = make([]uint32, nd)
	for i := range r.words {
		r.words[i] = uint32(at)
		w, k := binary.Uvarint(b[at:])
		if k <= 0 || w > uint64(len(b)-at-k) {
			return nil, bad("dictionary")
		}
		at += k + int(w)
	}
	nm := (live + viewStride - 1) / viewStride
	marks := make([]uint32, restColumns*nm)
	for col := range restColumns {
		r.marks[col] = marks[col*nm : (col+1)*nm : (col+1)*nm]
		for j := 0; j < live; j += viewStride {
			r.marks[col][j/viewStride] = uint32(at)
			k := min(viewStride, live-j)
			if col < colKeywords {
				at = skipVarints(b, at, k)
			} else {
				at = skipKeywords(b, at, k)
			}
			if at < 0 {
				return nil, bad("columns")
			}
		}
	}
	if at != len(b) {
		return nil, bad("trailing bytes")
	}
	r.size = int64(cap(b)+4*len(r.words)+4*len(r.rank)+4*len(marks)) + 256
	return r, nil
}

// skipVarints returns the offset in b after the n varints at at, or -1
// if b ends first.
func skipVarints(b []byte, at, n int) int {
	// A word holding fewer than n terminators is skipped whole.
	for n > 8 && at+8 <= len(b) {
		t := ^binary.LittleEndian.Uint64(b[at:]) & 0x8080808080808080
		n -= bits.OnesCount64(t)
		at += 8
	}
	for ; n > 0; at++ {
		if at >= len(b) {
			return -1
		}
		if b[at] < 0x80 {
			n--
		}
	}
	return at
}

// skipKeywords returns the offset in b after the n keyword entries (a
// count and that many varints) at at, or -1 if b ends first.
func skipKeywords(b []byte, at, n int) int {
	for ; n > 0; n-- {
		// No keywords is the common case: eight at a time.
		for n >= 8 && at+8 <= len(b) && binary.LittleEndian.Uint64(b[at:]) == 0 {
			at += 8
			n -= 8
		}
		if n == 0 {
			break
		}
		if at < len(b) && b[at] == 0 {
			at++
			continue
		}
		k, w := binary.Uvarint(b[min(at, len(b)):])
		if w <= 0 || k > uint64(len(b)) {
			return -1
		}
		if at = skipVarints(b, at+w, int(k)); at < 0 {
			return -1
		}
	}
	return at
}

// rankOf returns the rank among the live documents of the live document
// at offset i of the chunk.
func (r *restView) rankOf(i uint32) int {
	return int(r.rank[i/8]) + bits.OnesCount8(r.bm[i/8]&(1<<(i%8)-1))
}

// id returns the ID of the document at offset i, which must be live in
// the chunk (the eager columns loaded from its 'C' value say so, and the
// 'R' value was written in the same batch); ok is false if the 'R'
// value's bitmap disagrees.
func (r *restView) id(i uint32) (id mailbricks.MessageID, ok bool) {
	if r.bm[i/8]&(1<<(i%8)) == 0 {
		return id, false
	}
	at := r.ids + 16*r.rankOf(i)
	return mailbricks.MessageID(r.b[at : at+16]), true
}

// restReader reads one document's entries of a restView, remembering the
// first error.
type restReader struct {
	r   *restView
	err error
}

// entry returns the uvarint entry of the j-th live document in column
// col (a column of one varint a document).
func (rr *restReader) entry(col, j int) uint64 {
	at := skipVarints(rr.r.b, int(rr.r.marks[col][j/viewStride]), j%viewStride)
	return rr.uvarint(&at)
}

// uvarint reads the uvarint at *at and advances *at past it.
func (rr *restReader) uvarint(at *int) uint64 {
	if *at < 0 || *at >= len(rr.r.b) {
		rr.err = errCorrupt
		return 0
	}
	x, n := binary.Uvarint(rr.r.b[*at:])
	if n <= 0 {
		rr.err = errCorrupt
		return 0
	}
	*at += n
	return x
}

// word returns dictionary word i.
func (rr *restReader) word(i uint64) string {
	r := rr.r
	if i >= uint64(len(r.words)) {
		rr.err = errCorrupt
		return ""
	}
	at := int(r.words[i])
	n, k := binary.Uvarint(r.b[at:]) // checked by newRestView
	return string(r.b[at+k : at+k+int(n)])
}

// values decodes the Values of the live document at offset i, whose date
// and flags (held in the eager columns) are date and flags, into v as
// walkRest would, Keywords in a slice of their own.
func (r *restView) values(i uint32, date int64, flags index.Flag, v *index.Values) error {
	if r.bm[i/8]&(1<<(i%8)) == 0 {
		return fmt.Errorf("%w: chunk rest: document %d not live", errCorrupt, i)
	}
	j := r.rankOf(i)
	rr := restReader{r: r}
	sent := rr.entry(colSent, j)
	v.Date = index.TimeOrZero(date)
	v.SentDate = index.TimeOrZero(date + unzigzag(sent))
	v.Flags = flags
	v.Size = int64(rr.entry(colSize, j))
	v.UID = uint32(rr.entry(colUID, j))
	v.ModSeq = rr.entry(colModSeq, j)
	v.Folder = rr.word(rr.entry(colFolder, j))
	v.Thread = rr.word(rr.entry(colThread, j))
	at := skipKeywords(r.b, int(r.marks[colKeywords][j/viewStride]), j%viewStride)
	k := rr.uvarint(&at)
	v.Keywords = nil
	if rr.err == nil && k > 0 {
		if k > uint64(len(r.b)) {
			return fmt.Errorf("%w: chunk rest: keywords", errCorrupt)
		}
		v.Keywords = make([]string, k)
		for m := range v.Keywords {
			v.Keywords[m] = rr.word(rr.uvarint(&at))
		}
	}
	if rr.err != nil {
		return fmt.Errorf("%w: chunk rest: document %d", rr.err, i)
	}
	return nil
}

// unzigzag returns the signed value of a zigzag-encoded uvarint, as
// binary.Varint decodes it.
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }
