package lsmindex

// On-disk layout. Every key starts with the user ID and a NUL byte (a
// UserID never contains NUL), so a user's data is one contiguous key range
// that [Backend.DeleteUser] removes with one range tombstone and no scan of
// one user can reach another's keys. After the user comes a one-byte table
// tag:
//
//	user 0x00 'P' field term        postings of term in field
//	user 0x00 'D' docnum            doc record (ID and doc values)
//	user 0x00 'T' docnum            stored text (subject, body) for snippets
//	user 0x00 'X' docnum            deleted-doc marker, empty value
//	user 0x00 'N'                   next doc number
//	user 0x00 'A'                   analyzer version
//	user 0x00 'C' chunk             sealed doc-value chunk (columns.go)
//	user 0x00 'R' chunk             the rest of a sealed chunk (columns.go)
//	user 0x00 'O' docnum            overlay marker (columns.go)
//	user 0x00 'V'                   doc-value layout version (columns.go)
//
// field is one byte, the [index.Field] value (1 to 8); term is the folded
// term's UTF-8 bytes, not terminated: the key ends with it, so a prefix
// query is a range scan from "user 0x00 'P' field prefix" to the prefix's
// successor. docnum is a uint32, big-endian, so doc records sort by doc
// number.
//
// Postings value: a sequence of chunks, each written as one merge operand
// (the merge operator is concatenation, so appending a chunk never reads
// the value it extends). Within a key, chunks hold increasing doc numbers.
//
//	chunk:
//	  uvarint n         number of documents in the chunk
//	  uvarint docsLen   length of the docs section in bytes
//	  uvarint posLen    length of the positions section in bytes
//	  docs section, per document:
//	    uvarint delta   doc number minus the previous one in the chunk
//	                    (the first is the doc number itself)
//	    uvarint plen    bytes of this document's positions
//	  positions section, per document in the same order, plen bytes:
//	    uvarint delta   position minus the previous one (the first is the
//	                    position itself), positions strictly increasing
//
// A term-only query decodes the docs sections and skips the positions with
// posLen; a phrase query reaches one document's positions through the
// plen prefix sums.
//
// Doc record value:
//
//	[1]  version, 1
//	[16] message ID
//	varint  date (Unix seconds, 0 = zero time)
//	varint  sent date (Unix seconds, 0 = zero time)
//	uvarint size
//	uvarint flags
//	uvarint uid
//	uvarint modseq
//	uvarint len, folder bytes
//	uvarint len, thread bytes
//	uvarint count, then per keyword: uvarint len, keyword bytes
//
// Stored text value: uvarint len, subject bytes, then the body bytes to
// the end of the value.
//
// Analyzer version value: uvarint, the [index.AnalyzerVersion] of the
// tokenizer that wrote the user's postings. It is written with the first
// documents of a user (and again after [Backend.DeleteUser]); a user with
// documents and no such key was indexed by version 1, which did not
// record it.
//
// Next doc number value: uint32 big-endian. Doc numbers are allocated per
// user in increasing order and never reused, so postings written for a
// deleted document can never be mistaken for a later one.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

const (
	tagPostings = 'P'
	tagDoc      = 'D'
	tagText     = 'T'
	tagDeleted  = 'X'
	tagNext     = 'N'
	tagAnalyzer = 'A'
)

var errCorrupt = errors.New("lsmindex: corrupt record")

// userPrefix returns "user 0x00".
func userPrefix(u mailbricks.UserID) []byte {
	b := make([]byte, 0, len(u)+1)
	return append(append(b, u...), 0)
}

func tableKey(u mailbricks.UserID, tag byte) []byte {
	return append(userPrefix(u), tag)
}

func docKey(dst []byte, u mailbricks.UserID, tag byte, n uint32) []byte {
	dst = append(append(append(dst[:0], u...), 0, tag), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], n)
	return dst
}

func postingsKey(dst []byte, u mailbricks.UserID, f index.Field, term []byte) []byte {
	return append(append(append(dst[:0], u...), 0, tagPostings, byte(f)), term...)
}

func encodeDoc(dst []byte, id mailbricks.MessageID, v *index.Values) []byte {
	dst = append(dst, 1)
	dst = append(dst, id[:]...)
	dst = binary.AppendVarint(dst, index.UnixOrZero(v.Date))
	dst = binary.AppendVarint(dst, index.UnixOrZero(v.SentDate))
	dst = binary.AppendUvarint(dst, uint64(v.Size))
	dst = binary.AppendUvarint(dst, uint64(v.Flags))
	dst = binary.AppendUvarint(dst, uint64(v.UID))
	dst = binary.AppendUvarint(dst, v.ModSeq)
	dst = appendString(dst, v.Folder)
	dst = appendString(dst, v.Thread)
	dst = binary.AppendUvarint(dst, uint64(len(v.Keywords)))
	for _, k := range v.Keywords {
		dst = appendString(dst, k)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// reader decodes varints, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		r.b = nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func decodeDoc(b []byte) (mailbricks.MessageID, index.Values, error) {
	var id mailbricks.MessageID
	var v index.Values
	if len(b) < 17 || b[0] != 1 {
		return id, v, fmt.Errorf("%w: doc record", errCorrupt)
	}
	copy(id[:], b[1:17])
	r := reader{b: b[17:]}
	v.Date = index.TimeOrZero(r.varint())
	v.SentDate = index.TimeOrZero(r.varint())
	v.Size = int64(r.uvarint())
	v.Flags = index.Flag(r.uvarint())
	v.UID = uint32(r.uvarint())
	v.ModSeq = r.uvarint()
	v.Folder = r.str()
	v.Thread = r.str()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return id, v, fmt.Errorf("%w: doc record keywords", errCorrupt)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		v.Keywords = append(v.Keywords, r.str())
	}
	if r.err != nil {
		return id, v, fmt.Errorf("%w: doc record", r.err)
	}
	return id, v, nil
}

func encodeText(dst []byte, subject, body string) []byte {
	dst = appendString(dst, subject)
	return append(dst, body...)
}

func decodeText(b []byte) (subject, body string, err error) {
	r := reader{b: b}
	subject = r.str()
	if r.err != nil {
		return "", "", fmt.Errorf("%w: stored text", errCorrupt)
	}
	return subject, string(r.b), nil
}
