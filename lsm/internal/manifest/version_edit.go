// Package manifest holds the lsm engine's version edits, the records of its
// MANIFEST file, and [Builder], which replays them into the set of tables
// per level.
//
// A MANIFEST is a record log (see package record) whose every record is one
// encoded [VersionEdit]. The first edit of a MANIFEST is a snapshot: it adds
// every live table and sets every scalar field. Each later edit describes
// one change (a flush, a compaction, a new WAL). Replaying the edits in order
// with a [Builder] yields the current version.
//
// # Version edit layout
//
// An encoded version edit is a sequence of tagged fields ended by a zero
// tag. Tags and integers are uvarints (encoding/binary); "bytes" is a uvarint
// length followed by that many bytes; keys are encoded internal keys (see
// [base.InternalKey.Append]).
//
//	tag  field             contents
//	  0  end               nothing; must be the last byte of the encoding
//	  1  comparer name     bytes (non-empty)
//	  2  log number        uvarint
//	  3  next file number  uvarint
//	  4  last sequence     uvarint (<= base.SeqNumMax)
//	  5  deleted file      uvarint level, uvarint file number
//	  6  new file          uvarint level, uvarint file number, uvarint size,
//	                       bytes smallest key, bytes largest key,
//	                       uvarint smallest seq, uvarint largest seq,
//	                       uvarint flags (bit 0: has range deletions)
//	  7  merger name       bytes (non-empty)
//
// Tags 1 to 4 and 7 appear at most once per edit; tags 5 and 6 repeat, once
// per file. Encode writes them in the order 1, 7, 2, 3, 4, 5..., 6..., 0;
// Decode accepts any order. The end tag makes every proper prefix of an
// encoding invalid, so a truncated edit cannot pass for a shorter one.
//
// Decode is strict: an unknown tag, a repeated scalar tag, a level outside
// [0, NumLevels), a key that does not decode, smallest > largest, smallest
// seq > largest seq, a sequence number above base.SeqNumMax, unknown flag
// bits, an overlong or overflowing uvarint, a length past the end or bytes
// after the end tag are all corruption.
package manifest

import (
	"encoding/binary"
	"fmt"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// NumLevels is the number of levels of the LSM tree: L0 to L6.
const NumLevels = 7

// The tags of the fields of an encoded version edit. Their values are
// persisted; never renumber them.
const (
	tagEnd            = 0
	tagComparer       = 1
	tagLogNumber      = 2
	tagNextFileNumber = 3
	tagLastSeq        = 4
	tagDeletedFile    = 5
	tagNewFile        = 6
	tagMerger         = 7
)

// flagHasRangeDels is bit 0 of a new file's flags.
const (
	flagHasRangeDels = 1 << iota
	knownFlags       = flagHasRangeDels
)

// NewFileEntry is a table that a [VersionEdit] adds to a level.
type NewFileEntry struct {
	// Level is the level of the table, in [0, NumLevels).
	Level int
	// Meta describes the table. It must not be nil.
	Meta *FileMetadata
}

// DeletedFileEntry is a table that a [VersionEdit] removes from a level.
type DeletedFileEntry struct {
	// Level is the level the table is removed from, in [0, NumLevels).
	Level int
	// FileNum is the table's file number.
	FileNum uint64
}

// VersionEdit is one record of a MANIFEST: a change to the set of tables
// per level and to the database's scalar state. A scalar field is part of
// the edit only if its Has flag is set (the names only if non-empty), so
// that zero stays a value an edit can record.
//
// Within one edit, deletions apply before additions, so an edit can move a
// table between levels by deleting and re-adding it.
//
// A VersionEdit is not safe for concurrent use.
type VersionEdit struct {
	// ComparerName names the user-key comparer. The first edit of a MANIFEST
	// sets it; empty means unset.
	ComparerName string
	// MergerName names the merge operator; empty means unset.
	MergerName string

	// LogNumber is the number of the oldest WAL whose data is not yet in
	// tables: older WALs can be deleted. Set if HasLogNumber.
	LogNumber uint64
	// NextFileNumber is the next file number to allocate. Set if
	// HasNextFileNumber.
	NextFileNumber uint64
	// LastSeq is the largest sequence number in use. Set if HasLastSeq.
	LastSeq uint64

	// HasLogNumber reports whether the edit sets LogNumber.
	HasLogNumber bool
	// HasNextFileNumber reports whether the edit sets NextFileNumber.
	HasNextFileNumber bool
	// HasLastSeq reports whether the edit sets LastSeq.
	HasLastSeq bool

	// NewFiles are the tables the edit adds.
	NewFiles []NewFileEntry
	// DeletedFiles are the tables the edit removes.
	DeletedFiles []DeletedFileEntry
}

// Encode returns the encoding of e (see the package documentation).
//
// Encode panics if an entry's level is outside [0, NumLevels) or a new
// file's Meta is nil: both are programming errors, and encoding them would
// write a MANIFEST that cannot be read back.
func (e *VersionEdit) Encode() []byte {
	n := 64 + len(e.ComparerName) + len(e.MergerName) + 24*len(e.DeletedFiles)
	for _, nf := range e.NewFiles {
		if nf.Meta != nil {
			n += 64 + nf.Meta.Smallest.Size() + nf.Meta.Largest.Size()
		}
	}
	b := make([]byte, 0, n)
	if e.ComparerName != "" {
		b = binary.AppendUvarint(b, tagComparer)
		b = appendString(b, e.ComparerName)
	}
	if e.MergerName != "" {
		b = binary.AppendUvarint(b, tagMerger)
		b = appendString(b, e.MergerName)
	}
	if e.HasLogNumber {
		b = binary.AppendUvarint(b, tagLogNumber)
		b = binary.AppendUvarint(b, e.LogNumber)
	}
	if e.HasNextFileNumber {
		b = binary.AppendUvarint(b, tagNextFileNumber)
		b = binary.AppendUvarint(b, e.NextFileNumber)
	}
	if e.HasLastSeq {
		b = binary.AppendUvarint(b, tagLastSeq)
		b = binary.AppendUvarint(b, e.LastSeq)
	}
	for _, df := range e.DeletedFiles {
		mustLevel(df.Level)
		b = binary.AppendUvarint(b, tagDeletedFile)
		b = binary.AppendUvarint(b, uint64(df.Level))
		b = binary.AppendUvarint(b, df.FileNum)
	}
	for _, nf := range e.NewFiles {
		mustLevel(nf.Level)
		if nf.Meta == nil {
			panic("manifest: encode: new file with nil Meta")
		}
		m := nf.Meta
		b = binary.AppendUvarint(b, tagNewFile)
		b = binary.AppendUvarint(b, uint64(nf.Level))
		b = binary.AppendUvarint(b, m.FileNum)
		b = binary.AppendUvarint(b, m.Size)
		b = binary.AppendUvarint(b, uint64(m.Smallest.Size()))
		b = m.Smallest.Append(b)
		b = binary.AppendUvarint(b, uint64(m.Largest.Size()))
		b = m.Largest.Append(b)
		b = binary.AppendUvarint(b, m.SmallestSeq)
		b = binary.AppendUvarint(b, m.LargestSeq)
		var flags uint64
		if m.HasRangeDels {
			flags |= flagHasRangeDels
		}
		b = binary.AppendUvarint(b, flags)
	}
	return binary.AppendUvarint(b, tagEnd)
}

func mustLevel(level int) {
	if level < 0 || level >= NumLevels {
		panic(fmt.Sprintf("manifest: encode: level %d outside [0, %d)", level, NumLevels))
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode replaces e with the edit encoded in b. It copies what it keeps, so
// the caller may reuse b afterwards. Every error wraps [base.ErrCorruption];
// on error, e is left zero.
func (e *VersionEdit) Decode(b []byte) error {
	*e = VersionEdit{}
	d := decoder{b: b}
	if err := d.edit(e); err != nil {
		*e = VersionEdit{}
		return err
	}
	return nil
}

// decoder reads the fields of an encoded version edit; b[off:] is unread.
type decoder struct {
	b   []byte
	off int
}

// errorf reports corruption in the field that starts at byte off.
func (d *decoder) errorf(off int, format string, args ...any) error {
	return base.CorruptionErrorf("manifest: version edit at byte %d: %s", off, fmt.Sprintf(format, args...))
}

func (d *decoder) edit(e *VersionEdit) error {
	var seen uint64 // bit t is set once scalar tag t has been read
	for {
		tagOff := d.off
		tag, err := d.uvarint("tag")
		if err != nil {
			return err
		}
		switch tag {
		case tagComparer, tagLogNumber, tagNextFileNumber, tagLastSeq, tagMerger:
			if seen&(1<<tag) != 0 {
				return d.errorf(tagOff, "tag %d repeated", tag)
			}
			seen |= 1 << tag
		}
		switch tag {
		case tagEnd:
			if d.off != len(d.b) {
				return d.errorf(d.off, "%d bytes after the end tag", len(d.b)-d.off)
			}
			return nil
		case tagComparer:
			s, err := d.name("comparer name")
			if err != nil {
				return err
			}
			e.ComparerName = s
		case tagMerger:
			s, err := d.name("merger name")
			if err != nil {
				return err
			}
			e.MergerName = s
		case tagLogNumber:
			if e.LogNumber, err = d.uvarint("log number"); err != nil {
				return err
			}
			e.HasLogNumber = true
		case tagNextFileNumber:
			if e.NextFileNumber, err = d.uvarint("next file number"); err != nil {
				return err
			}
			e.HasNextFileNumber = true
		case tagLastSeq:
			if e.LastSeq, err = d.seq("last sequence number"); err != nil {
				return err
			}
			e.HasLastSeq = true
		case tagDeletedFile:
			level, err := d.level()
			if err != nil {
				return err
			}
			num, err := d.uvarint("deleted file number")
			if err != nil {
				return err
			}
			e.DeletedFiles = append(e.DeletedFiles, DeletedFileEntry{Level: level, FileNum: num})
		case tagNewFile:
			nf, err := d.newFile(tagOff)
			if err != nil {
				return err
			}
			e.NewFiles = append(e.NewFiles, nf)
		default:
			return d.errorf(tagOff, "unknown tag %d", tag)
		}
	}
}

// newFile reads a new-file field whose tag starts at byte tagOff.
func (d *decoder) newFile(tagOff int) (NewFileEntry, error) {
	level, err := d.level()
	if err != nil {
		return NewFileEntry{}, err
	}
	num, err := d.uvarint("file number")
	if err != nil {
		return NewFileEntry{}, err
	}
	size, err := d.uvarint("file size")
	if err != nil {
		return NewFileEntry{}, err
	}
	smallest, err := d.bytes("smallest key")
	if err != nil {
		return NewFileEntry{}, err
	}
	largest, err := d.bytes("largest key")
	if err != nil {
		return NewFileEntry{}, err
	}
	smallestSeq, err := d.seq("smallest sequence number")
	if err != nil {
		return NewFileEntry{}, err
	}
	largestSeq, err := d.seq("largest sequence number")
	if err != nil {
		return NewFileEntry{}, err
	}
	flags, err := d.uvarint("flags")
	if err != nil {
		return NewFileEntry{}, err
	}
	if flags&^knownFlags != 0 {
		return NewFileEntry{}, d.errorf(tagOff, "file %06d: unknown flags %#x", num, flags)
	}
	if smallestSeq > largestSeq {
		return NewFileEntry{}, d.errorf(tagOff, "file %06d: smallest sequence number %d > largest %d", num, smallestSeq, largestSeq)
	}

	// One allocation for both keys: it is the file's for as long as it lives.
	keys := make([]byte, len(smallest)+len(largest))
	copy(keys, smallest)
	copy(keys[len(smallest):], largest)
	sk, ok := base.DecodeInternalKey(keys[:len(smallest):len(smallest)])
	if !ok {
		return NewFileEntry{}, d.errorf(tagOff, "file %06d: bad smallest key %x", num, smallest)
	}
	lk, ok := base.DecodeInternalKey(keys[len(smallest):])
	if !ok {
		return NewFileEntry{}, d.errorf(tagOff, "file %06d: bad largest key %x", num, largest)
	}
	if base.CompareInternal(sk, lk) > 0 {
		return NewFileEntry{}, d.errorf(tagOff, "file %06d: smallest key %s > largest key %s", num, sk, lk)
	}
	return NewFileEntry{Level: level, Meta: &FileMetadata{
		FileNum:      num,
		Size:         size,
		Smallest:     sk,
		Largest:      lk,
		SmallestSeq:  smallestSeq,
		LargestSeq:   largestSeq,
		HasRangeDels: flags&flagHasRangeDels != 0,
	}}, nil
}

// uvarint reads a uvarint, rejecting overlong encodings (a final zero byte
// after the first), so that every value has one encoding.
func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		return 0, d.errorf(d.off, "truncated %s", what)
	case n < 0:
		return 0, d.errorf(d.off, "%s overflows 64 bits", what)
	case n > 1 && d.b[d.off+n-1] == 0:
		return 0, d.errorf(d.off, "overlong encoding of %s", what)
	}
	d.off += n
	return v, nil
}

func (d *decoder) bytes(what string) ([]byte, error) {
	start := d.off
	n, err := d.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, d.errorf(start, "%s of %d bytes runs past the end", what, n)
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *decoder) name(what string) (string, error) {
	start := d.off
	b, err := d.bytes(what)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", d.errorf(start, "empty %s", what)
	}
	return string(b), nil
}

func (d *decoder) level() (int, error) {
	start := d.off
	l, err := d.uvarint("level")
	if err != nil {
		return 0, err
	}
	if l >= NumLevels {
		return 0, d.errorf(start, "level %d outside [0, %d)", l, NumLevels)
	}
	return int(l), nil
}

func (d *decoder) seq(what string) (uint64, error) {
	start := d.off
	s, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if s > base.SeqNumMax {
		return 0, d.errorf(start, "%s %d above the maximum %d", what, s, base.SeqNumMax)
	}
	return s, nil
}
