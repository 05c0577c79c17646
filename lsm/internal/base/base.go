// Package base holds the types shared by the lsm engine's internal packages:
// internal keys, key kinds, sequence numbers, the internal iterator interface
// and the corruption error.
//
// # Internal key layout
//
// An internal key is a user key followed by an 8-byte little-endian trailer:
//
//	+-----------------+-------------------------------+
//	| user key (n B)  | trailer (8 B, little-endian)  |
//	+-----------------+-------------------------------+
//	trailer = seqnum<<8 | kind
//
// Internal keys sort by user key ascending (bytewise), then by trailer
// descending, so the newest version of a user key comes first.
package base

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is the kind of an internal key.
type Kind uint8

// The kinds of internal keys. Their values are persisted; never renumber them.
const (
	// KindDelete is a point tombstone.
	KindDelete Kind = 0
	// KindSet is a value.
	KindSet Kind = 1
	// KindMerge is a merge operand.
	KindMerge Kind = 2
	// KindRangeDelete is a range tombstone: the user key is the inclusive
	// start and the value is the exclusive end.
	KindRangeDelete Kind = 3
	// KindMax is the largest kind. Lookup keys use it so that they sort
	// before every real key with the same user key and sequence number.
	KindMax Kind = 3
)

// String returns the name of the kind.
func (k Kind) String() string {
	switch k {
	case KindDelete:
		return "DEL"
	case KindSet:
		return "SET"
	case KindMerge:
		return "MERGE"
	case KindRangeDelete:
		return "RANGEDEL"
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// SeqNumMax is the largest sequence number. It is reserved for sentinel keys
// and never assigned to a write.
const SeqNumMax = uint64(1<<56 - 1)

// TrailerLen is the length of the trailer of an encoded internal key.
const TrailerLen = 8

// MakeTrailer packs a sequence number and a kind.
func MakeTrailer(seq uint64, kind Kind) uint64 { return seq<<8 | uint64(kind) }

// InternalKey is a user key with a sequence number and kind.
type InternalKey struct {
	UserKey []byte
	Trailer uint64
}

// MakeInternalKey returns an internal key.
func MakeInternalKey(userKey []byte, seq uint64, kind Kind) InternalKey {
	return InternalKey{UserKey: userKey, Trailer: MakeTrailer(seq, kind)}
}

// MakeSearchKey returns the smallest internal key for userKey visible at
// sequence number seq: every version of userKey with a sequence number <= seq
// sorts at or after it.
func MakeSearchKey(userKey []byte, seq uint64) InternalKey {
	return MakeInternalKey(userKey, seq, KindMax)
}

// MakeRangeDeleteSentinel returns the key used as the exclusive largest bound
// of a table whose range tombstone ends at end: it sorts before every real
// key whose user key is end.
func MakeRangeDeleteSentinel(end []byte) InternalKey {
	return MakeInternalKey(end, SeqNumMax, KindRangeDelete)
}

// SeqNum returns the key's sequence number.
func (k InternalKey) SeqNum() uint64 { return k.Trailer >> 8 }

// Kind returns the key's kind.
func (k InternalKey) Kind() Kind { return Kind(k.Trailer & 0xff) }

// IsSentinel reports whether k is a range-delete sentinel made by
// [MakeRangeDeleteSentinel].
func (k InternalKey) IsSentinel() bool {
	return k.Trailer == MakeTrailer(SeqNumMax, KindRangeDelete)
}

// Size returns the encoded length of k.
func (k InternalKey) Size() int { return len(k.UserKey) + TrailerLen }

// Encode writes k into buf, which must have room for k.Size() bytes.
func (k InternalKey) Encode(buf []byte) {
	n := copy(buf, k.UserKey)
	binary.LittleEndian.PutUint64(buf[n:], k.Trailer)
}

// Append appends the encoding of k to dst.
func (k InternalKey) Append(dst []byte) []byte {
	dst = append(dst, k.UserKey...)
	return binary.LittleEndian.AppendUint64(dst, k.Trailer)
}

// Clone returns a copy of k that owns its user key.
func (k InternalKey) Clone() InternalKey {
	return InternalKey{UserKey: bytes.Clone(k.UserKey), Trailer: k.Trailer}
}

// String formats k for debugging.
func (k InternalKey) String() string {
	return fmt.Sprintf("%q#%d,%s", k.UserKey, k.SeqNum(), k.Kind())
}

// DecodeInternalKey decodes an encoded internal key. The result aliases buf.
// It returns ok=false when buf is shorter than a trailer or the kind is
// unknown.
func DecodeInternalKey(buf []byte) (k InternalKey, ok bool) {
	n := len(buf) - TrailerLen
	if n < 0 {
		return InternalKey{}, false
	}
	k = InternalKey{UserKey: buf[:n:n], Trailer: binary.LittleEndian.Uint64(buf[n:])}
	if k.Kind() > KindMax {
		return InternalKey{}, false
	}
	return k, true
}

// CompareInternal orders internal keys: user key ascending, then trailer
// descending.
func CompareInternal(a, b InternalKey) int {
	if c := bytes.Compare(a.UserKey, b.UserKey); c != 0 {
		return c
	}
	switch {
	case a.Trailer > b.Trailer:
		return -1
	case a.Trailer < b.Trailer:
		return 1
	}
	return 0
}

// CompareEncoded orders two encoded internal keys like [CompareInternal].
// Both must be at least TrailerLen bytes long.
func CompareEncoded(a, b []byte) int {
	na, nb := len(a)-TrailerLen, len(b)-TrailerLen
	if c := bytes.Compare(a[:na], b[:nb]); c != 0 {
		return c
	}
	ta := binary.LittleEndian.Uint64(a[na:])
	tb := binary.LittleEndian.Uint64(b[nb:])
	switch {
	case ta > tb:
		return -1
	case ta < tb:
		return 1
	}
	return 0
}

// ErrCorruption reports that stored data failed a checksum or could not be
// decoded. The lsm package re-exports it as lsm.ErrCorruption.
var ErrCorruption = errors.New("lsm: corruption")

// CorruptionErrorf returns an error that wraps [ErrCorruption] with detail.
func CorruptionErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruption, fmt.Sprintf(format, args...))
}

// InternalIterator iterates over internal keys in internal-key order. It is
// what memtables, tables and levels expose to the engine's merging iterator.
//
// Positioning methods return whether the iterator is positioned at an entry.
// Key and Value are valid only while positioned, and only until the next
// positioning call; callers copy what they keep. After a positioning method
// returns false, Error reports whether it stopped because of an error.
//
// An InternalIterator is not safe for concurrent use.
type InternalIterator interface {
	// SeekGE moves to the first entry whose user key is >= key.
	SeekGE(key []byte) bool
	// SeekLT moves to the last entry whose user key is < key.
	SeekLT(key []byte) bool
	// First moves to the first entry.
	First() bool
	// Last moves to the last entry.
	Last() bool
	// Next moves to the next entry.
	Next() bool
	// Prev moves to the previous entry.
	Prev() bool
	// Key returns the current entry's key.
	Key() InternalKey
	// Value returns the current entry's value.
	Value() []byte
	// Error returns the first error the iterator met, if any.
	Error() error
	// Close releases the iterator's resources and returns Error.
	Close() error
}

// RangeTombstone deletes every key in [Start, End) whose sequence number is
// below Seq.
type RangeTombstone struct {
	Start, End []byte
	Seq        uint64
}

// Covers reports whether t deletes the version of key with sequence number
// seq, for a reader at snapshot sequence number snap (t is invisible when
// t.Seq > snap).
func (t RangeTombstone) Covers(key []byte, seq, snap uint64) bool {
	return t.Seq <= snap && seq < t.Seq &&
		bytes.Compare(t.Start, key) <= 0 && bytes.Compare(key, t.End) < 0
}
