// Package sstable implements the lsm engine's immutable sorted tables: a
// [Writer] that builds a table from keys added in order and a [Reader] that
// serves filtered point lookups, range tombstones and bounded iteration.
//
// # Table layout
//
// All integers are little-endian. A table is a sequence of blocks followed
// by a fixed-size footer:
//
//	+---------------------+
//	| data block 0        |  sorted point entries
//	| ...                 |
//	| data block n-1      |
//	| filter block        |  optional: bloom filter over user keys
//	| range-del block     |  optional: range tombstones
//	| index block         |  one entry per data block
//	| footer (80 bytes)   |
//	+---------------------+
//
// Each block is stored as its (possibly compressed) contents followed by a
// 5-byte trailer:
//
//	+-------------------+----------+-----------+
//	| contents (len B)  | type (1) | crc32c (4)|
//	+-------------------+----------+-----------+
//
// type is 0 for none, 1 for S2, 2 for zstd; crc32c is the CRC-32C
// (Castagnoli) of the stored contents followed by the type byte. A block
// handle (offset, length) addresses the stored contents; length excludes
// the trailer. Blocks are compressed only when that saves at least 1/8 of
// their size; the filter block is never compressed.
//
// # Block contents
//
// Data, index and range-del blocks share one format, prefix-compressed
// key/value entries followed by restart offsets:
//
//	+---------+-----+-----------+----------------------+-----------------+
//	| entry 0 | ... | entry m-1 | restart[r] (4 B each)| num restarts (4)|
//	+---------+-----+-----------+----------------------+-----------------+
//
//	entry = shared uvarint | unshared uvarint | valueLen uvarint
//	        | key[shared:] (unshared B) | value (valueLen B)
//
// An entry's key is its first shared bytes taken from the previous entry's
// key followed by the unshared bytes it stores. Every restart interval
// entries (16 in data blocks, 1 in the index block) an entry is stored with
// shared = 0 and its offset in the block is recorded in the restart array,
// so that a seek binary-searches the restarts and then decodes at most one
// interval. Keys are encoded internal keys (user key followed by an 8-byte
// trailer, see package base) in increasing internal-key order.
//
//   - Data block values are the entries' values. A data block is cut once
//     its uncompressed size reaches the target block size.
//   - Index block: key = the last key of a data block, value = its handle
//     as offset uvarint | length uvarint.
//   - Range-del block: key = (start, seq, RANGEDEL), value = end user key;
//     sorted by start then by seq descending.
//
// This is the LevelDB/Pebble block format: prefix compression shrinks the
// long shared prefixes of mail keys (user/mailbox/uid) severalfold, and the
// restart points keep seeks logarithmic without a per-key index.
//
// # Footer
//
// The footer is the last 80 bytes of the file:
//
//	offset  size  field
//	     0     8  index block offset
//	     8     8  index block length
//	    16     8  filter block offset
//	    24     8  filter block length (0: no filter)
//	    32     8  range-del block offset
//	    40     8  range-del block length (0: no range tombstones)
//	    48     8  number of point entries
//	    56     8  number of range tombstones
//	    64     4  format version (1)
//	    68     4  crc32c of footer bytes [0, 68)
//	    72     8  magic number: the bytes "mbrk.sst"
//
// A reader checks the magic, checksum and version before anything else, and
// every handle against the file size, so that a truncated or overwritten
// file is reported as corruption.
//
// # Errors
//
// Every checksum, bounds or decoding failure is reported as an error that
// satisfies errors.Is(err, base.ErrCorruption); malformed input never causes
// a panic.
package sstable

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

const (
	// footerLen is the size of the footer.
	footerLen = 80
	// formatVersion is the only format version so far.
	formatVersion = 1
	// tableMagic ends every table: the bytes "mbrk.sst" read as a
	// little-endian uint64.
	tableMagic = 0x7473732e6b72626d
	// blockTrailerLen is the size of the trailer after each stored block.
	blockTrailerLen = 5
	// maxBlockSize bounds the uncompressed size of any block. Readers reject
	// larger blocks as corrupt, and writers never produce them.
	maxBlockSize = 1 << 30
	// maxEntrySize bounds key plus value of one entry, so that a data block
	// (cut below maxTargetBlockSize, plus one entry) fits in maxBlockSize.
	maxEntrySize = 1 << 29
	// maxTargetBlockSize bounds WriterOptions.BlockSize.
	maxTargetBlockSize = 1 << 28
)

// Block types stored in the trailer. Persisted; never renumber them.
const (
	blockTypeNone byte = 0
	blockTypeS2   byte = 1
	blockTypeZstd byte = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum returns the CRC-32C of contents followed by typ.
func blockChecksum(contents []byte, typ byte) uint32 {
	c := crc32.Update(0, castagnoli, contents)
	// Fold in the type byte by hand (the table-driven step that Update
	// performs per byte) rather than pass Update a one-byte slice, which
	// would be allocated on every call.
	c = ^c
	c = castagnoli[byte(c)^typ] ^ c>>8
	return ^c
}

// handle locates a block's stored contents in the file.
type handle struct {
	offset, length uint64
}

// footer is the decoded footer.
type footer struct {
	index, filter, rangeDel handle
	numEntries              uint64
	numRangeDels            uint64
}

func (f *footer) encode() []byte {
	buf := make([]byte, footerLen)
	le := binary.LittleEndian
	le.PutUint64(buf[0:], f.index.offset)
	le.PutUint64(buf[8:], f.index.length)
	le.PutUint64(buf[16:], f.filter.offset)
	le.PutUint64(buf[24:], f.filter.length)
	le.PutUint64(buf[32:], f.rangeDel.offset)
	le.PutUint64(buf[40:], f.rangeDel.length)
	le.PutUint64(buf[48:], f.numEntries)
	le.PutUint64(buf[56:], f.numRangeDels)
	le.PutUint32(buf[64:], formatVersion)
	le.PutUint32(buf[68:], crc32.Checksum(buf[:68], castagnoli))
	le.PutUint64(buf[72:], tableMagic)
	return buf
}

// decodeFooter decodes and verifies buf, the last footerLen bytes of a file
// of the given size, including that every present block lies inside the
// file before the footer.
func decodeFooter(buf []byte, size uint64) (footer, error) {
	var f footer
	if len(buf) != footerLen {
		return f, base.CorruptionErrorf("sstable: footer is %d bytes, want %d", len(buf), footerLen)
	}
	le := binary.LittleEndian
	if m := le.Uint64(buf[72:]); m != tableMagic {
		return f, base.CorruptionErrorf("sstable: bad magic number %#x", m)
	}
	if got, want := crc32.Checksum(buf[:68], castagnoli), le.Uint32(buf[68:]); got != want {
		return f, base.CorruptionErrorf("sstable: footer checksum mismatch")
	}
	if v := le.Uint32(buf[64:]); v != formatVersion {
		return f, base.CorruptionErrorf("sstable: unknown format version %d", v)
	}
	f.index = handle{le.Uint64(buf[0:]), le.Uint64(buf[8:])}
	f.filter = handle{le.Uint64(buf[16:]), le.Uint64(buf[24:])}
	f.rangeDel = handle{le.Uint64(buf[32:]), le.Uint64(buf[40:])}
	f.numEntries = le.Uint64(buf[48:])
	f.numRangeDels = le.Uint64(buf[56:])
	end := size - footerLen
	for _, h := range []struct {
		name     string
		h        handle
		optional bool
	}{{"index", f.index, false}, {"filter", f.filter, true}, {"range-del", f.rangeDel, true}} {
		if h.optional && h.h.length == 0 {
			continue
		}
		if !h.h.within(end) {
			return f, base.CorruptionErrorf("sstable: %s block handle (%d, %d) out of bounds", h.name, h.h.offset, h.h.length)
		}
	}
	return f, nil
}

// within reports whether the block and its trailer lie in [0, end) and its
// contents are not larger than maxBlockSize.
func (h handle) within(end uint64) bool {
	return h.length <= maxBlockSize && h.offset <= end &&
		h.length+blockTrailerLen <= end-h.offset
}
