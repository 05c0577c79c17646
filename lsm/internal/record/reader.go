// Package record implements the record log under the lsm engine's
// write-ahead log (WAL) and MANIFEST: an append-only sequence of
// checksummed, length-prefixed records. [Writer] appends records with group
// commit; [Reader] reads them back and tells a torn tail, which a crash
// leaves behind, from corruption in the middle of the file.
//
// # Layout
//
// A file is a sequence of records, back to back, with no file header, no
// padding and no blocks:
//
//	+------------------+------------------+------------------+-----------------+
//	| payloadCRC (4 B) | length (4 B)     | headerCRC (4 B)  | payload         |
//	|                  |                  |                  | (length bytes)  |
//	+------------------+------------------+------------------+-----------------+
//	all integers are little-endian
//	payloadCRC = CRC-32C (Castagnoli) of the payload
//	headerCRC  = CRC-32C of the 8 header bytes before it (payloadCRC, length)
//	length    <= MaxPayload
//
// A record's offset is the offset of its first header byte; a record ends
// HeaderLen+length bytes later. The offsets that [Writer.Append] returns and
// [Reader.Offset] reports are such ends.
//
// headerCRC makes "does a record start here?" an O(1) test on 12 bytes, so a
// reader can probe every offset of a damaged remainder cheaply. An all-zero
// header is never valid (the CRC-32C of eight zero bytes is not zero), so
// zero-filled space never reads as a record, not even an empty one.
//
// # Torn tails and corruption
//
// A crash while the log is being appended leaves at most a damaged tail: the
// last record may be cut short, and file systems may also leave garbage or
// zeros where unsynced data should be. Corruption of data that was written
// whole (a bad sector, a flipped bit, a bug) can sit anywhere. When [Reader]
// meets a record that is not valid (short header, header CRC mismatch,
// length over MaxPayload or past the end of the file, payload CRC mismatch),
// it reads the rest of the file and looks for a whole valid record at any
// later offset:
//
//   - if there is one, data was lost in the middle of the file, and Next
//     returns an error wrapping [base.ErrCorruption] that names both offsets;
//   - if there is none, nothing after the bad record was ever completely
//     written, and Next returns an error matching [ErrTornTail].
//
// Where the search starts depends on how much of the bad record can be
// trusted. If its header is invalid, the search starts one byte after the
// bad record's offset. If its header is valid (so its length is trustworthy)
// and only its payload is damaged or cut short, the search starts after the
// record's end: the bytes inside its payload are payload, and a payload that
// happens to contain an encoded record (a value holding a log file, say) must
// not turn a torn tail into corruption. A torn header in front of such a
// payload can still do so; that needs both a crafted payload and a crash that
// persists a record's payload but not its header.
//
// Each probed offset costs at most one CRC of 8 bytes, and most cost none;
// the payload CRC is computed only where the header CRC matches, which
// random or zeroed data does with probability 2^-32 per offset.
//
// Whether a torn tail is acceptable is the engine's decision, not the
// reader's: it is the expected result of a crash in the newest WAL, and
// corruption anywhere else. [InspectTail] tells the engine more about the
// tail: in particular whether the first bad record overlaps a page of zeros,
// the signature of a page that out-of-order writeback never wrote, after
// which intact records do not make the damage corruption (see [Tail]).
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// HeaderLen is the length of a record header.
const HeaderLen = 12

// MaxPayload is the largest payload a record may carry. A header with a
// larger length is invalid.
const MaxPayload = 1 << 30

// ErrTornTail reports that a log ends in an incomplete or damaged record and
// that no valid record follows it: the signature of a crash during an
// append. It deliberately does not wrap [base.ErrCorruption]; see the
// package documentation.
var ErrTornTail = errors.New("record: torn tail")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends the record carrying p, whose CRC-32C is payloadCRC,
// to dst. It computes the header CRC in place in dst, which keeps the header
// off the stack: hash/crc32 makes its argument escape.
func appendRecord(dst, p []byte, payloadCRC uint32) []byte {
	off := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, payloadCRC)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[off:off+8], castagnoli))
	return append(dst, p...)
}

// parseHeader checks the header CRC and length limit of h, which must be
// HeaderLen bytes long, and returns the payload length.
func parseHeader(h []byte) (length int, ok bool) {
	if binary.LittleEndian.Uint32(h[8:12]) != crc32.Checksum(h[0:8], castagnoli) {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(h[4:8])
	if n > MaxPayload {
		return 0, false
	}
	return int(n), true
}

// zeroHeaderCRC is the header CRC of a record whose first 8 header bytes
// are zero (an empty payload has CRC 0): the only valid header starting with
// 8 zero bytes.
var zeroHeaderCRC = crc32.Checksum(make([]byte, 8), castagnoli)

// findRecord returns the smallest offset in b at which a whole valid record
// starts, or -1. It runs at every offset of a damaged remainder, so it
// rejects most offsets before computing any CRC: the length must fit in what
// is left of b (in random data the length's top byte is then almost always
// too big), and 8 zero bytes, typical of preallocated or zeroed space, can
// only start an empty record with a known header CRC.
func findRecord(b []byte) int {
	for i := 0; i+HeaderLen <= len(b); i++ {
		h := b[i : i+HeaderLen]
		n := binary.LittleEndian.Uint32(h[4:8])
		if n > MaxPayload || int(n) > len(b)-i-HeaderLen {
			continue
		}
		if binary.LittleEndian.Uint64(h[0:8]) == 0 && binary.LittleEndian.Uint32(h[8:12]) != zeroHeaderCRC {
			continue
		}
		if _, ok := parseHeader(h); !ok {
			continue
		}
		p := b[i+HeaderLen : i+HeaderLen+int(n)]
		if crc32.Checksum(p, castagnoli) == binary.LittleEndian.Uint32(h[0:4]) {
			return i
		}
	}
	return -1
}

const (
	// readChunk is the smallest buffer the Reader reads into.
	readChunk = 64 << 10
	// maxEmptyReads bounds the consecutive (0, nil) reads tolerated from the
	// underlying reader, like bufio.
	maxEmptyReads = 100
)

// Reader reads the records of a log written by [Writer]. See the package
// documentation for how it classifies a bad record.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	r   io.Reader
	buf []byte // buf[pos:end] was read from r but not consumed yet
	pos int
	end int
	off int64 // file offset of buf[pos]
	eof bool  // r has returned io.EOF
	err error // returned by every Next call once set
}

// NewReader returns a Reader of the log r, which must be positioned at the
// start of the log.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r}
}

// Next returns the payload of the next record. The payload is valid only
// until the next call to Next; callers copy what they keep.
//
// At a clean end of the log (exactly at the end of a record) Next returns
// io.EOF. When the next record is not valid, Next returns an error wrapping
// [base.ErrCorruption] if a valid record follows it and an error matching
// [ErrTornTail] otherwise; both name the offset of the bad record. Errors
// from the underlying reader are returned wrapped. Once Next has returned an
// error, it returns the same error forever.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.fill(HeaderLen); err != nil {
		return nil, r.fail(err)
	}
	if r.end == r.pos {
		r.err = io.EOF
		return nil, r.err
	}
	if r.end-r.pos < HeaderLen {
		return nil, r.bad("short header", 1)
	}
	n, ok := parseHeader(r.buf[r.pos : r.pos+HeaderLen])
	if !ok {
		return nil, r.bad("bad header", 1)
	}
	if err := r.fill(HeaderLen + n); err != nil {
		return nil, r.fail(err)
	}
	if r.end-r.pos < HeaderLen+n {
		return nil, r.bad("record cut short", HeaderLen+n)
	}
	rec := r.buf[r.pos : r.pos+HeaderLen+n]
	p := rec[HeaderLen:]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(rec[0:4]) {
		return nil, r.bad("payload checksum mismatch", HeaderLen+n)
	}
	r.pos += len(rec)
	r.off += int64(len(rec))
	return p[:n:n], nil
}

// Offset returns the offset of the end of the last record that Next
// returned, which is 0 before the first. After Next has reported a torn tail,
// it is the length to which the log can be truncated to drop the tail.
func (r *Reader) Offset() int64 { return r.off }

// fill reads until buf[pos:end] holds at least n bytes or r is exhausted. It
// grows the buffer at most by doubling, so that a length field claiming more
// bytes than the file holds costs no more than twice the file's size.
func (r *Reader) fill(n int) error {
	empty := 0
	for r.end-r.pos < n && !r.eof {
		if r.end == len(r.buf) {
			if r.pos > 0 {
				r.end = copy(r.buf, r.buf[r.pos:r.end])
				r.pos = 0
			}
			if r.end == len(r.buf) {
				nb := make([]byte, max(2*len(r.buf), readChunk))
				copy(nb, r.buf[:r.end])
				r.buf = nb
			}
		}
		m, err := r.r.Read(r.buf[r.end:])
		r.end += m
		switch {
		case err == io.EOF:
			r.eof = true
		case err != nil:
			return err
		case m == 0:
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		default:
			empty = 0
		}
	}
	return nil
}

// fail records an error of the underlying reader.
func (r *Reader) fail(err error) error {
	r.err = fmt.Errorf("record: read at offset %d: %w", r.off, err)
	return r.err
}

// bad classifies the invalid record at r.off (see the package
// documentation): it reads the rest of the log and searches it for a valid
// record, starting skip bytes after the bad record's offset.
func (r *Reader) bad(reason string, skip int) error {
	if err := r.fill(int(^uint(0) >> 1)); err != nil {
		return r.fail(err)
	}
	rest := r.buf[r.pos:r.end]
	if skip < len(rest) {
		if i := findRecord(rest[skip:]); i >= 0 {
			r.err = base.CorruptionErrorf("record: %s at offset %d, but a valid record starts at offset %d",
				reason, r.off, r.off+int64(skip+i))
			return r.err
		}
	}
	r.err = fmt.Errorf("%w at offset %d: %s; no valid record in the last %d bytes",
		ErrTornTail, r.off, reason, len(rest))
	return r.err
}

// LastRecordCutShort reports whether tail, the bytes of a log after its last
// good record (see [Reader.Offset]), is what a crash leaves of ONE record
// whose append was in flight: fewer bytes than a header, only zero bytes, or
// a valid header whose payload runs past the end.
//
// A log whose writer syncs every record before appending the next (the
// manifest) can only be torn that way; any other damaged tail, such as a
// complete record with a bad checksum, is corruption.
func LastRecordCutShort(tail []byte) bool {
	if len(tail) < HeaderLen || allZero(tail) {
		return true
	}
	n, ok := parseHeader(tail[:HeaderLen])
	return ok && HeaderLen+n > len(tail)
}
