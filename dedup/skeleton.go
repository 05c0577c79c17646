package dedup

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Skeleton data layout (Skeleton.Data). All integers are unsigned
// varints (encoding/binary.AppendUvarint) unless a width is given:
//
//	magic    4 bytes   "MBSK"
//	version  1 byte    1
//	size     uvarint   length of the original message in bytes
//	nrefs    uvarint   number of distinct blobs
//	refs     nrefs ×   hash[32] | uvarint blob length
//	nsegs    uvarint   number of segments
//	segments nsegs ×   kind[1] | ...
//	           kind 0: uvarint n | n bytes      literal bytes of the message
//	           kind 1: uvarint i                the whole blob refs[i]
//
// The message is the concatenation of the segments in order. A decoder
// checks that the segment lengths add up to size and that every index is
// in range; anything else is ErrCorrupt.
const (
	skelMagic   = "MBSK"
	skelVersion = 1

	segLiteral = 0
	segBlob    = 1
)

// segment is one piece of a skeleton: literal bytes or a blob.
type segment struct {
	lit []byte // literal bytes, when ref < 0
	ref int    // index into refs, or -1
}

type skeleton struct {
	size int64
	refs []Ref
	segs []segment
}

func (k *skeleton) encode() []byte {
	n := len(skelMagic) + 1 + 3*binary.MaxVarintLen64 + len(k.refs)*(32+binary.MaxVarintLen64)
	for _, s := range k.segs {
		n += 1 + binary.MaxVarintLen64 + len(s.lit)
	}
	b := make([]byte, 0, n)
	b = append(b, skelMagic...)
	b = append(b, skelVersion)
	b = binary.AppendUvarint(b, uint64(k.size))
	b = binary.AppendUvarint(b, uint64(len(k.refs)))
	for _, r := range k.refs {
		b = append(b, r.Hash[:]...)
		b = binary.AppendUvarint(b, uint64(r.Size))
	}
	b = binary.AppendUvarint(b, uint64(len(k.segs)))
	for _, s := range k.segs {
		if s.ref < 0 {
			b = append(b, segLiteral)
			b = binary.AppendUvarint(b, uint64(len(s.lit)))
			b = append(b, s.lit...)
		} else {
			b = append(b, segBlob)
			b = binary.AppendUvarint(b, uint64(s.ref))
		}
	}
	return b
}

var errSkel = errors.New("malformed skeleton")

type skelReader struct {
	b []byte
}

func (r *skelReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, errSkel
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *skelReader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)) {
		return nil, errSkel
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, nil
}

// decodeHeader reads the magic, size and refs, leaving r at the segments.
func decodeHeader(data []byte) (*skelReader, int64, []Ref, error) {
	r := &skelReader{b: data}
	m, err := r.bytes(uint64(len(skelMagic)) + 1)
	if err != nil || string(m[:len(skelMagic)]) != skelMagic {
		return nil, 0, nil, errSkel
	}
	if m[len(skelMagic)] != skelVersion {
		return nil, 0, nil, fmt.Errorf("%w: version %d", errSkel, m[len(skelMagic)])
	}
	size, err := r.uvarint()
	if err != nil || size > 1<<62 {
		return nil, 0, nil, errSkel
	}
	nrefs, err := r.uvarint()
	if err != nil || nrefs > uint64(len(r.b))/33 {
		return nil, 0, nil, errSkel
	}
	var refs []Ref
	if nrefs > 0 {
		refs = make([]Ref, nrefs)
	}
	for i := range refs {
		h, err := r.bytes(32)
		if err != nil {
			return nil, 0, nil, err
		}
		copy(refs[i].Hash[:], h)
		sz, err := r.uvarint()
		if err != nil || sz > size {
			return nil, 0, nil, errSkel
		}
		refs[i].Size = int64(sz)
	}
	return r, int64(size), refs, nil
}

func decodeSkeleton(data []byte) (*skeleton, error) {
	r, size, refs, err := decodeHeader(data)
	if err != nil {
		return nil, err
	}
	nsegs, err := r.uvarint()
	if err != nil || nsegs > uint64(len(r.b))/2 {
		return nil, errSkel
	}
	k := &skeleton{size: size, refs: refs, segs: make([]segment, 0, nsegs)}
	var total uint64
	for range nsegs {
		kind, err := r.bytes(1)
		if err != nil {
			return nil, err
		}
		v, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		switch kind[0] {
		case segLiteral:
			lit, err := r.bytes(v)
			if err != nil {
				return nil, err
			}
			k.segs = append(k.segs, segment{lit: lit, ref: -1})
			total += v
		case segBlob:
			if v >= uint64(len(refs)) {
				return nil, errSkel
			}
			k.segs = append(k.segs, segment{ref: int(v)})
			total += uint64(refs[v].Size)
		default:
			return nil, errSkel
		}
		if total > uint64(size) {
			return nil, errSkel
		}
	}
	if total != uint64(size) || len(r.b) != 0 {
		return nil, errSkel
	}
	return k, nil
}

// Refs returns the distinct blobs a skeleton points to, in order of first
// appearance: the refs to Link under a new owner when the message is
// copied, or to Unlink when it is expunged. A malformed skeleton is an
// error matching [ErrCorrupt].
func Refs(skeleton []byte) ([]Ref, error) {
	_, _, refs, err := decodeHeader(skeleton)
	if err != nil {
		return nil, fmt.Errorf("dedup: refs: %w: %v", ErrCorrupt, err)
	}
	return refs, nil
}
