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
//	uvarint n, documents in the chunk (chunkDocs)
//	[(n+7)/8] live bitmap, bit i of byte i/8 = doc first+i is live
//	uvarint dictionary size d, then d strings (uvarint len, bytes):
//	        the chunk's distinct folders, threads and keywords
//	then per live document, in doc-number order, the columns one after
//	the other (all of one column, then the next):
//	  [16]    message ID
//	  varint  date minus the previous live document's date (the first
//	          is relative to 0), Unix seconds, 0 = zero time
//	  varint  sent date minus the document's date
//	  uvarint size
//	  uvarint flags
//	  uvarint uid
//	  uvarint modseq
//	  uvarint folder, dictionary index
//	  uvarint thread, dictionary index
//	  uvarint keyword count, then that many dictionary indexes
//
// Dates are mostly increasing with doc numbers, so their deltas take one
// to three bytes; a document costs about 30 bytes plus its ID.

import (
	"encoding/binary"
	"fmt"

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
	defaultChunkDocs   = 4096
	defaultResealAfter = 2048
)

// encodeChunk encodes the doc values of doc numbers [first, first+n) of s.
func encodeChunk(dst []byte, s *userState, first, n uint32) []byte {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(n))
	bm := make([]byte, (n+7)/8)
	dict := map[string]uint64{}
	var words []string
	word := func(w string) uint64 {
		i, ok := dict[w]
		if !ok {
			i = uint64(len(words))
			dict[w] = i
			words = append(words, w)
		}
		return i
	}
	live := make([]uint32, 0, n)
	for i := range n {
		if s.docs[first+i].live {
			bm[i/8] |= 1 << (i % 8)
			d := &s.docs[first+i]
			live = append(live, first+i)
			word(d.v.Folder)
			word(d.v.Thread)
			for _, k := range d.v.Keywords {
				word(k)
			}
		}
	}
	dst = append(dst, bm...)
	dst = binary.AppendUvarint(dst, uint64(len(words)))
	for _, w := range words {
		dst = appendString(dst, w)
	}
	for _, m := range live {
		dst = append(dst, s.docs[m].id[:]...)
	}
	prev := int64(0)
	for _, m := range live {
		dst = binary.AppendVarint(dst, s.docs[m].date-prev)
		prev = s.docs[m].date
	}
	for _, m := range live {
		d := &s.docs[m]
		dst = binary.AppendVarint(dst, index.UnixOrZero(d.v.SentDate)-d.date)
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, uint64(s.docs[m].v.Size))
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, uint64(s.docs[m].v.Flags))
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, uint64(s.docs[m].v.UID))
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, s.docs[m].v.ModSeq)
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, dict[s.docs[m].v.Folder])
	}
	for _, m := range live {
		dst = binary.AppendUvarint(dst, dict[s.docs[m].v.Thread])
	}
	for _, m := range live {
		kw := s.docs[m].v.Keywords
		dst = binary.AppendUvarint(dst, uint64(len(kw)))
		for _, k := range kw {
			dst = binary.AppendUvarint(dst, dict[k])
		}
	}
	return dst
}

// decodeChunk loads the chunk of doc numbers starting at first into s,
// whose arrays must cover them.
func decodeChunk(b []byte, s *userState, first uint32) error {
	bad := func(what string) error { return fmt.Errorf("%w: chunk %d: %s", errCorrupt, first/s.chunk, what) }
	if len(b) < 1 || b[0] != 1 {
		return bad("version")
	}
	r := reader{b: b[1:]}
	n := r.uvarint()
	if r.err != nil || n != uint64(s.chunk) || uint64(first)+n > uint64(len(s.docs)) || uint64(len(r.b)) < (n+7)/8 {
		return bad("header")
	}
	bm := r.b[:(n+7)/8]
	r.b = r.b[(n+7)/8:]
	nd := r.uvarint()
	if nd > uint64(len(r.b)) {
		return bad("dictionary")
	}
	words := make([]string, nd)
	for i := range words {
		words[i] = r.str()
	}
	live := make([]uint32, 0, n)
	for i := range uint32(n) {
		if bm[i/8]&(1<<(i%8)) != 0 {
			live = append(live, first+i)
		}
	}
	if r.err != nil || uint64(len(r.b)) < uint64(len(live))*16 {
		return bad("ids")
	}
	for _, m := range live {
		d := &s.docs[m]
		copy(d.id[:], r.b[:16])
		r.b = r.b[16:]
		d.live = true
	}
	prev := int64(0)
	for _, m := range live {
		prev += r.varint()
		d := &s.docs[m]
		d.date = prev
		d.v.Date = index.TimeOrZero(prev)
	}
	for _, m := range live {
		d := &s.docs[m]
		d.v.SentDate = index.TimeOrZero(d.date + r.varint())
	}
	for _, m := range live {
		s.docs[m].v.Size = int64(r.uvarint())
	}
	for _, m := range live {
		s.docs[m].v.Flags = index.Flag(r.uvarint())
	}
	for _, m := range live {
		s.docs[m].v.UID = uint32(r.uvarint())
	}
	for _, m := range live {
		s.docs[m].v.ModSeq = r.uvarint()
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
	for _, m := range live {
		s.docs[m].v.Folder = str()
	}
	for _, m := range live {
		s.docs[m].v.Thread = str()
	}
	for _, m := range live {
		k := r.uvarint()
		if k > uint64(len(r.b)) {
			return bad("keywords")
		}
		if k > 0 {
			kw := make([]string, k)
			for i := range kw {
				kw[i] = str()
			}
			s.docs[m].v.Keywords = kw
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return bad("columns")
	}
	for _, m := range live {
		d := &s.docs[m]
		s.flags[m] = d.v.Flags
		s.dates[m] = d.date
		s.liveSet.set(m)
		s.live++
		s.strBytes += docStrBytes(&d.v)
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
