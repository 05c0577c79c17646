package sstable

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// maxRestartInterval bounds the restart interval. Writers clamp their
// option to it and readers reject blocks with longer intervals, which bounds
// the memory that reverse iteration spends on one interval.
const maxRestartInterval = 128

// blockWriter builds the contents of one block (see the package comment for
// the format).
type blockWriter struct {
	restartInterval int
	buf             []byte
	restarts        []uint32
	// counter counts the entries since the last restart point.
	counter int
	// prevKey is the last key added. It survives reset, so that the writer
	// can use it as the last key of the block just finished.
	prevKey []byte
}

func (w *blockWriter) empty() bool { return len(w.buf) == 0 }

// add appends an entry. The caller guarantees that the block stays below
// maxBlockSize.
func (w *blockWriter) add(key, value []byte) {
	shared := 0
	if w.counter == 0 {
		w.restarts = append(w.restarts, uint32(len(w.buf)))
	} else {
		shared = commonPrefix(w.prevKey, key)
	}
	if w.counter++; w.counter >= w.restartInterval {
		w.counter = 0
	}
	unshared := len(key) - shared
	if shared < 0x80 && unshared < 0x80 && len(value) < 0x80 {
		w.buf = append(w.buf, byte(shared), byte(unshared), byte(len(value)))
	} else {
		w.buf = binary.AppendUvarint(w.buf, uint64(shared))
		w.buf = binary.AppendUvarint(w.buf, uint64(unshared))
		w.buf = binary.AppendUvarint(w.buf, uint64(len(value)))
	}
	w.buf = append(w.buf, key[shared:]...)
	w.buf = append(w.buf, value...)
	w.prevKey = append(w.prevKey[:0], key...)
}

// size returns the size the block would have if finished now.
func (w *blockWriter) size() int { return len(w.buf) + 4*len(w.restarts) + 4 }

// finish appends the restart array and returns the block contents, which
// stay valid until the next reset.
func (w *blockWriter) finish() []byte {
	for _, r := range w.restarts {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, r)
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(w.restarts)))
	return w.buf
}

func (w *blockWriter) reset() {
	w.buf = w.buf[:0]
	w.restarts = w.restarts[:0]
	w.counter = 0
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// blockIter iterates over the entries of one block.
//
// Forward steps decode the next entry in place. Backward steps cannot
// decode in place (an entry's key depends on the entries before it), so a
// backward step decodes the restart interval holding the previous entry
// forward once, remembering every entry and its key, and then serves
// further backward steps through that interval from memory.
//
// Every offset, length and varint read from the block is bounds-checked: a
// malformed block sets err (wrapping base.ErrCorruption) and makes the
// moving method return false.
//
// A blockIter is not safe for concurrent use; several may share one block.
type blockIter struct {
	data []byte
	// entriesEnd is the end of the entries and the start of the restart
	// array.
	entriesEnd  int
	numRestarts int

	// off and nextOff are the offsets of the current entry and of the one
	// after it.
	off, nextOff int
	// key is the current entry's encoded internal key. It aliases data
	// (entries stored whole), keyBuf (keyInBuf) or cacheBuf.
	key      []byte
	keyInBuf bool
	keyBuf   []byte
	val      []byte
	err      error

	// cache holds the entries of the interval decoded by the last backward
	// positioning, with their keys in cacheBuf; cacheIdx is the current
	// entry's index in it, or -1 when the iterator is not on a cached entry.
	cache    []cachedEntry
	cacheBuf []byte
	cacheIdx int
}

type cachedEntry struct {
	off, nextOff, valStart int
	keyStart, keyEnd       int
}

// init makes the iterator iterate over data, unpositioned. It checks the
// restart array's framing; entries are checked as they are decoded.
func (b *blockIter) init(data []byte) error {
	*b = blockIter{keyBuf: b.keyBuf[:0], cache: b.cache[:0], cacheBuf: b.cacheBuf[:0], cacheIdx: -1}
	if len(data) < 4 || len(data) > maxBlockSize {
		return base.CorruptionErrorf("sstable: block of %d bytes", len(data))
	}
	n := uint64(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if n > uint64(len(data)-4)/4 {
		return base.CorruptionErrorf("sstable: block of %d bytes claims %d restart points", len(data), n)
	}
	end := len(data) - 4 - 4*int(n)
	if (n == 0) != (end == 0) {
		return base.CorruptionErrorf("sstable: block has %d entry bytes and %d restart points", end, n)
	}
	if n > 0 && binary.LittleEndian.Uint32(data[end:]) != 0 {
		return base.CorruptionErrorf("sstable: block's first restart point is not 0")
	}
	b.data = data
	b.entriesEnd = end
	b.numRestarts = int(n)
	return nil
}

func (b *blockIter) corrupt(what string, off int) bool {
	if b.err == nil {
		b.err = base.CorruptionErrorf("sstable: block: %s at offset %d", what, off)
	}
	return false
}

// restart returns the offset of restart point i, which must be below
// numRestarts.
func (b *blockIter) restart(i int) (int, bool) {
	off := int(binary.LittleEndian.Uint32(b.data[b.entriesEnd+4*i:]))
	if off >= b.entriesEnd {
		return 0, b.corrupt("restart point out of range", b.entriesEnd+4*i)
	}
	return off, true
}

// restartKey returns the key of the entry at restart point i without
// moving the iterator.
func (b *blockIter) restartKey(i int) ([]byte, bool) {
	off, ok := b.restart(i)
	if !ok {
		return nil, false
	}
	d := b.data[:b.entriesEnd]
	p := off
	var shared, unshared uint64
	if p+3 <= len(d) && d[p]|d[p+1]|d[p+2] < 0x80 {
		shared, unshared = uint64(d[p]), uint64(d[p+1])
		p += 3
	} else {
		var n1, n2, n3 int
		shared, n1 = binary.Uvarint(d[p:])
		if n1 > 0 {
			unshared, n2 = binary.Uvarint(d[p+n1:])
			if n2 > 0 {
				_, n3 = binary.Uvarint(d[p+n1+n2:])
			}
		}
		if n1 <= 0 || n2 <= 0 || n3 <= 0 {
			return nil, b.corrupt("bad entry header", off)
		}
		p += n1 + n2 + n3
	}
	if shared != 0 || unshared < base.TrailerLen || unshared > uint64(len(d)-p) {
		return nil, b.corrupt("bad restart entry", off)
	}
	return d[p : p+int(unshared)], true
}

// decode decodes the entry at off, taking its shared prefix from b.key (nil
// at a restart point). It returns false at the end of the entries and on
// corruption.
func (b *blockIter) decode(off int) bool {
	d := b.data[:b.entriesEnd]
	if off >= len(d) {
		return false
	}
	p := off
	var shared, unshared, vlen uint64
	if p+3 <= len(d) && d[p]|d[p+1]|d[p+2] < 0x80 {
		shared, unshared, vlen = uint64(d[p]), uint64(d[p+1]), uint64(d[p+2])
		p += 3
	} else {
		var n1, n2, n3 int
		shared, n1 = binary.Uvarint(d[p:])
		if n1 > 0 {
			unshared, n2 = binary.Uvarint(d[p+n1:])
			if n2 > 0 {
				vlen, n3 = binary.Uvarint(d[p+n1+n2:])
			}
		}
		if n1 <= 0 || n2 <= 0 || n3 <= 0 {
			return b.corrupt("bad entry header", off)
		}
		p += n1 + n2 + n3
	}
	if shared > uint64(len(b.key)) || unshared > uint64(len(d)-p) {
		return b.corrupt("bad key length", off)
	}
	keyEnd := p + int(unshared)
	if vlen > uint64(len(d)-keyEnd) {
		return b.corrupt("bad value length", off)
	}
	valEnd := keyEnd + int(vlen)
	if shared == 0 {
		b.key = d[p:keyEnd:keyEnd]
		b.keyInBuf = false
	} else {
		if b.keyInBuf {
			b.keyBuf = b.keyBuf[:shared]
		} else {
			b.keyBuf = append(b.keyBuf[:0], b.key[:shared]...)
		}
		b.keyBuf = append(b.keyBuf, d[p:keyEnd]...)
		b.key = b.keyBuf
		b.keyInBuf = true
	}
	if n := len(b.key); n < base.TrailerLen || base.Kind(b.key[n-base.TrailerLen]) > base.KindMax {
		return b.corrupt("bad internal key", off)
	}
	b.val = d[keyEnd:valEnd:valEnd]
	b.off, b.nextOff = off, valEnd
	return true
}

// userKey returns the user key of the current entry.
func (b *blockIter) userKey() []byte {
	n := len(b.key) - base.TrailerLen
	return b.key[:n:n]
}

// ikey returns the current entry's key as an internal key aliasing b.
func (b *blockIter) ikey() base.InternalKey {
	n := len(b.key) - base.TrailerLen
	return base.InternalKey{UserKey: b.key[:n:n], Trailer: binary.LittleEndian.Uint64(b.key[n:])}
}

// reposition prepares an absolute positioning: it forgets the current entry
// and any error.
func (b *blockIter) reposition() {
	b.err = nil
	b.key = nil
	b.keyInBuf = false
	b.cacheIdx = -1
}

// first moves to the first entry.
func (b *blockIter) first() bool {
	b.reposition()
	return b.decode(0)
}

// last moves to the last entry.
func (b *blockIter) last() bool {
	b.reposition()
	if b.numRestarts == 0 {
		return false
	}
	start, ok := b.restart(b.numRestarts - 1)
	if !ok {
		return false
	}
	return b.fillBackward(start, b.entriesEnd, nil)
}

// next moves to the next entry.
func (b *blockIter) next() bool {
	if b.cacheIdx >= 0 {
		if b.cacheIdx+1 < len(b.cache) {
			b.cacheIdx++
			b.setCached()
			return true
		}
		// Leave the cache; b.key (in cacheBuf) supplies the next entry's
		// shared prefix.
		b.cacheIdx = -1
	}
	return b.decode(b.nextOff)
}

// prev moves to the previous entry.
func (b *blockIter) prev() bool {
	if b.cacheIdx > 0 {
		b.cacheIdx--
		b.setCached()
		return true
	}
	target := b.off
	if target <= 0 {
		return false
	}
	// Find the last restart point before the current entry: restart 0 is
	// offset 0 (checked by init), so there is one.
	lo, hi := 0, b.numRestarts
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		off, ok := b.restart(m)
		if !ok {
			return false
		}
		if off < target {
			lo = m + 1
		} else {
			hi = m
		}
	}
	start, ok := b.restart(max(lo-1, 0))
	if !ok {
		return false
	}
	b.reposition()
	return b.fillBackward(start, target, nil)
}

// seekGE moves to the first entry whose user key is >= key.
func (b *blockIter) seekGE(key []byte) bool {
	b.reposition()
	i, ok := b.searchRestarts(key)
	if !ok {
		return false
	}
	off := 0
	if i > 0 {
		if off, ok = b.restart(i - 1); !ok {
			return false
		}
	}
	for b.decode(off) {
		if bytes.Compare(b.userKey(), key) >= 0 {
			return true
		}
		off = b.nextOff
	}
	return false
}

// seekLT moves to the last entry whose user key is < key.
func (b *blockIter) seekLT(key []byte) bool {
	b.reposition()
	i, ok := b.searchRestarts(key)
	if !ok || i == 0 {
		// The first entry's user key is >= key.
		return false
	}
	start, ok := b.restart(i - 1)
	if !ok {
		return false
	}
	end := b.entriesEnd
	if i < b.numRestarts {
		if end, ok = b.restart(i); !ok {
			return false
		}
	}
	return b.fillBackward(start, end, key)
}

// searchRestarts returns the index of the first restart point whose user
// key is >= key, or numRestarts if there is none.
func (b *blockIter) searchRestarts(key []byte) (int, bool) {
	lo, hi := 0, b.numRestarts
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		k, ok := b.restartKey(m)
		if !ok {
			return 0, false
		}
		if bytes.Compare(k[:len(k)-base.TrailerLen], key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, true
}

// fillBackward decodes the entries from the restart point at start up to
// end (exclusive), stopping early at the first entry whose user key is >=
// stopKey when stopKey is not nil, remembers them in the cache and moves to
// the last one. b.key must be nil.
func (b *blockIter) fillBackward(start, end int, stopKey []byte) bool {
	b.cache = b.cache[:0]
	b.cacheBuf = b.cacheBuf[:0]
	off := start
	for off < end {
		if !b.decode(off) {
			return b.corrupt("entry overruns its restart interval", off)
		}
		if stopKey != nil && bytes.Compare(b.userKey(), stopKey) >= 0 {
			break
		}
		if len(b.cache) == maxRestartInterval {
			return b.corrupt("restart interval too long", start)
		}
		ks := len(b.cacheBuf)
		b.cacheBuf = append(b.cacheBuf, b.key...)
		b.cache = append(b.cache, cachedEntry{
			off:      b.off,
			nextOff:  b.nextOff,
			valStart: b.nextOff - len(b.val),
			keyStart: ks,
			keyEnd:   len(b.cacheBuf),
		})
		off = b.nextOff
	}
	if off > end {
		return b.corrupt("entry overruns its restart interval", start)
	}
	if len(b.cache) == 0 {
		return false
	}
	b.cacheIdx = len(b.cache) - 1
	b.setCached()
	return true
}

// setCached makes the cached entry cacheIdx current.
func (b *blockIter) setCached() {
	e := &b.cache[b.cacheIdx]
	b.off, b.nextOff = e.off, e.nextOff
	b.key = b.cacheBuf[e.keyStart:e.keyEnd:e.keyEnd]
	b.keyInBuf = false
	b.val = b.data[e.valStart:e.nextOff:e.nextOff]
}
