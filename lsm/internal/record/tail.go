package record

import (
	"fmt"
	"io"
)

// PageSize is the page size that [InspectTail] looks for lost pages in:
// 4 KiB, the unit in which most systems write file data back to disk. A
// system with larger pages loses several aligned 4 KiB pages at once, which
// InspectTail sees as well.
const PageSize = 4 << 10

// Tail describes the tail of a log that [Reader] stopped reading at: the
// bytes after the last good record.
//
// # Lost pages
//
// A crash may leave the data written after the last sync in any state: cut
// short (a disk that writes in order), or with some pages written and
// others not (out-of-order page writeback). A page that was never written
// reads as zeros past the last sync: wholly, or, for the page the last sync
// ended in, from the synced offset (which is a record boundary) to its end.
// Such a hole can have intact records after it, which the Reader reports as
// corruption. But no durable record can follow a hole: a sync persists
// every page before the synced offset, so a lost page is always in the
// unsynced tail.
//
// A lost page is recognized by its content: an aligned page of PageSize
// bytes that overlaps the first bad record and holds only zeros from the
// bad record's offset (or from its own start, if later) to its end (or to
// the end of the log). A healthy record never starts in such a run of
// zeros, and damage that is not a lost page (a flipped bit, garbage, a
// bad sector, which devices report as an error) does not produce one. Two
// things look the same and are taken for lost pages: a device that returns
// zeros for data it once held durably, and damage that zeroes a record's
// bytes exactly from its start to a page boundary.
type Tail struct {
	// Offset is where the tail begins: the end of the last good record.
	Offset int64
	// Size is the length of the tail in bytes.
	Size int64
	// LostPage reports that the first bad record of the tail overlaps a
	// lost page (see above).
	LostPage bool
	// Records is the number of whole valid records in the tail after its
	// first, bad record.
	Records int
	// CutShort reports whether the tail is what a crash leaves of ONE record
	// whose append was in flight: [LastRecordCutShort], or a record with a
	// lost page and no valid record after it. A log whose writer syncs every
	// record before appending the next (the manifest) can only be torn so.
	CutShort bool
}

// InspectTail reads the log r, whose size is size, from the page holding
// offset off to its end, and describes the tail that begins at off.
func InspectTail(r io.ReaderAt, off, size int64) (Tail, error) {
	if off < 0 || off > size {
		return Tail{}, fmt.Errorf("record: inspect tail at offset %d of a log of %d bytes", off, size)
	}
	pageStart := off / PageSize * PageSize
	buf := make([]byte, size-pageStart)
	if n, err := r.ReadAt(buf, pageStart); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Tail{}, fmt.Errorf("record: read tail at offset %d: %w", pageStart, err)
	}
	tail := buf[off-pageStart:]
	t := Tail{Offset: off, Size: int64(len(tail))}
	if len(tail) == 0 {
		return t, nil
	}

	// The extent of the bad record: its whole length if its header is
	// valid (up to the end of the log), else its header.
	extent, skip := min(HeaderLen, len(tail)), 1
	if len(tail) >= HeaderLen {
		if n, ok := parseHeader(tail[:HeaderLen]); ok {
			extent = min(HeaderLen+n, len(tail))
			skip = HeaderLen + n
		}
	}
	rel := off - pageStart
	for p := int64(0); p < rel+int64(extent); p += PageSize {
		if allZero(buf[max(p, rel):min(p+PageSize, int64(len(buf)))]) {
			t.LostPage = true
			break
		}
	}
	for pos := skip; pos < len(tail); {
		i := findRecord(tail[pos:])
		if i < 0 {
			break
		}
		n, _ := parseHeader(tail[pos+i : pos+i+HeaderLen])
		t.Records++
		pos += i + HeaderLen + n
	}
	t.CutShort = LastRecordCutShort(tail) || (t.LostPage && t.Records == 0)
	return t, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
