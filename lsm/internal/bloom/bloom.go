// Package bloom implements the bloom filters that the lsm engine stores in
// its tables so that point lookups can skip tables that cannot hold a key.
//
// # Filter layout
//
// An encoded filter is a bit array followed by one byte, the number of
// probes k:
//
//	+--------------------------+-------+
//	| bit array (m/8 bytes)    | k (1) |
//	+--------------------------+-------+
//
// Bit i of the array is bit i%8 of byte i/8. A key sets (and a lookup tests)
// the k bits chosen by double hashing (Kirsch and Mitzenmacher, "Less
// Hashing, Same Performance"): with h = [Hash](key) and d = h rotated right
// by 33 bits, probe j (0 <= j < k) tests bit hi64((h + j*d) * m), where hi64
// is the high 64 bits of the 128-bit product (Lemire's multiply-shift range
// reduction) and the additions wrap modulo 2^64. Both the hash and the probe
// sequence are part of the on-disk format and must never change.
//
// With 10 bits per key and 6 probes the false-positive rate is about 0.85%.
package bloom

import (
	"encoding/binary"
	"math/bits"
)

// The constants of [Hash]. They are persisted through the filters built
// with them; never change them.
const (
	hashM1 = 0x9e3779b97f4a7c15 // 2^64 / golden ratio
	hashM2 = 0xbf58476d1ce4e5b9 // splitmix64 multipliers
	hashM3 = 0x94d049bb133111eb
)

// maxProbes bounds k. Larger values in a filter are reserved: such a filter
// matches every key.
const maxProbes = 30

// Hash returns the 64-bit hash of b that filters use. It is part of the
// table format and must never change. Its definition:
//
//	h = M3 ^ (len(b) * M1)
//	for each 8-byte little-endian word w of b, the last one zero-padded:
//		w = rotl(w*M2, 31) * M1
//		h = rotl(h^w, 27)*M1 + M3
//	h ^= h >> 30; h *= M2; h ^= h >> 27; h *= M3; h ^= h >> 31
//
// with M1 = 0x9e3779b97f4a7c15, M2 = 0xbf58476d1ce4e5b9,
// M3 = 0x94d049bb133111eb and arithmetic modulo 2^64. The final step is the
// splitmix64 finalizer, so every input bit affects every output bit.
func Hash(b []byte) uint64 {
	h := hashM3 ^ uint64(len(b))*hashM1
	for len(b) >= 8 {
		h = hashRound(h, binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) > 0 {
		var w uint64
		for i, c := range b {
			w |= uint64(c) << (8 * i)
		}
		h = hashRound(h, w)
	}
	h ^= h >> 30
	h *= hashM2
	h ^= h >> 27
	h *= hashM3
	h ^= h >> 31
	return h
}

func hashRound(h, w uint64) uint64 {
	w = bits.RotateLeft64(w*hashM2, 31) * hashM1
	return bits.RotateLeft64(h^w, 27)*hashM1 + hashM3
}

// Builder accumulates the keys of one filter. The zero value is not usable;
// call [NewBuilder].
//
// A Builder is not safe for concurrent use.
type Builder struct {
	bitsPerKey int
	hashes     []uint64
}

// NewBuilder returns a builder for filters with bitsPerKey bits per key.
// Values below 1 are treated as 1.
func NewBuilder(bitsPerKey int) *Builder {
	return &Builder{bitsPerKey: max(bitsPerKey, 1)}
}

// AddKey adds key to the filter. The builder keeps only its hash, so the
// caller may reuse key. Adding the same key twice in a row costs nothing.
func (b *Builder) AddKey(key []byte) {
	h := Hash(key)
	if n := len(b.hashes); n > 0 && b.hashes[n-1] == h {
		return
	}
	b.hashes = append(b.hashes, h)
}

// NumKeys returns the number of hashes added since the last [Builder.Finish]
// (consecutive duplicates count once).
func (b *Builder) NumKeys() int { return len(b.hashes) }

// Finish returns the encoded filter of the keys added so far and resets the
// builder for a new filter. The result is owned by the caller.
func (b *Builder) Finish() []byte {
	k := min(max(b.bitsPerKey*69/100, 1), maxProbes)
	nbits := max(len(b.hashes)*b.bitsPerKey, 64)
	nbytes := (nbits + 7) / 8
	filter := make([]byte, nbytes+1)
	filter[nbytes] = byte(k)
	m := uint64(nbytes) * 8
	array := filter[:nbytes]
	for _, h := range b.hashes {
		d := bits.RotateLeft64(h, -33)
		for range k {
			i, _ := bits.Mul64(h, m)
			array[i>>3] |= 1 << (i & 7)
			h += d
		}
	}
	b.hashes = b.hashes[:0]
	return filter
}

// MayContain reports whether key may have been added to filter. It never
// returns false for a key that was added. An empty or malformed filter, or
// one with a reserved probe count, returns true for every key.
func MayContain(filter, key []byte) bool {
	if len(filter) < 2 {
		return true
	}
	nbytes := len(filter) - 1
	k := int(filter[nbytes])
	if k == 0 || k > maxProbes {
		return true
	}
	array := filter[:nbytes]
	m := uint64(nbytes) * 8
	h := Hash(key)
	d := bits.RotateLeft64(h, -33)
	for range k {
		i, _ := bits.Mul64(h, m)
		if array[i>>3]&(1<<(i&7)) == 0 {
			return false
		}
		h += d
	}
	return true
}
