package sstable

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// maxPooledBuf bounds the buffers an iterator keeps when it returns to the
// pool, so that one huge block does not pin memory forever.
const maxPooledBuf = 1 << 20

var iterPool = sync.Pool{New: func() any { return new(iterator) }}

type position int8

const (
	// posNone: not positioned yet, or stopped by an error.
	posNone position = iota
	posValid
	// posAfter: exhausted forward; Prev moves to the last entry.
	posAfter
	// posBefore: exhausted backward; Next moves to the first entry.
	posBefore
)

// iterator is a table iterator. It walks the index entries (held from
// NewIter to Close) and one data block at a time through a blockIter.
//
// Bounds are checked per entry only near their edges: when a block's last
// user key is below upper, no entry of the block can pass upper, and when
// the previous block's last user key is at or above lower, no entry of the
// block can precede lower.
type iterator struct {
	r            *Reader
	lower, upper []byte
	// index is the table's parsed index, held from NewIter to Close.
	index []indexEntry

	// blockIdx is the index entry of the block loaded in blk, or -1.
	blockIdx int
	blk      blockIter
	bufs     blockBufs
	// noFill: blocks not in the cache are read into bufs and not added to
	// it (see NewScanIter).
	noFill bool
	// blockBelowUpper: every entry of the loaded block is below upper.
	blockBelowUpper bool
	// blockAboveLower: every entry of the loaded block is at or above lower.
	blockAboveLower bool

	pos  position
	ikey base.InternalKey
	err  error
}

var _ base.InternalIterator = (*iterator)(nil)

// NewIter returns an iterator over the table's point entries whose user keys
// lie in [lower, upper); a nil bound means unbounded. The iterator keeps
// lower and upper: the caller must not modify them while using it. Range
// tombstones are not returned; see [Reader.RangeTombstones].
//
// Iterators come from a pool: Close returns one to it, and the iterator
// must not be used after Close. The iterator must be closed before the
// Reader.
//
// NewIter loads the index block if it is not cached; if that fails, the
// iterator is empty and reports the error.
func (r *Reader) NewIter(lower, upper []byte) base.InternalIterator {
	if r.closed.Load() {
		return closedIter{}
	}
	index, err := r.loadIndex()
	if err != nil {
		return errIter{err}
	}
	it := iterPool.Get().(*iterator)
	it.r = r
	it.index = index
	it.lower, it.upper = lower, upper
	it.blockIdx = -1
	it.pos = posNone
	it.err = nil
	return it
}

// NewScanIter is [Reader.NewIter] for one pass over the table that should
// not displace what readers use, such as a compaction's: a data block the
// cache holds is used from it, and one it does not is read into the
// iterator's own buffers, reused from block to block, instead of being
// allocated and added to the cache. So a scan neither evicts the cache's
// blocks nor leaves a garbage block behind for each block it reads. The
// keys and values it returns are valid until the iterator moves to
// another block.
func (r *Reader) NewScanIter(lower, upper []byte) base.InternalIterator {
	it := r.NewIter(lower, upper)
	if i, ok := it.(*iterator); ok {
		i.noFill = true
	}
	return it
}

// Close returns the iterator to the pool and returns Error.
func (it *iterator) Close() error {
	if it.r == nil {
		return nil
	}
	err := it.err
	keyBuf, cache, cacheBuf := it.blk.keyBuf[:0], it.blk.cache[:0], it.blk.cacheBuf[:0]
	if cap(keyBuf) > maxPooledBuf {
		keyBuf = nil
	}
	if cap(cacheBuf) > maxPooledBuf {
		cacheBuf = nil
	}
	bufs := it.bufs
	if cap(bufs.read) > maxPooledBuf {
		bufs.read = nil
	}
	if cap(bufs.decompressed) > maxPooledBuf {
		bufs.decompressed = nil
	}
	*it = iterator{blockIdx: -1, bufs: bufs}
	it.blk.keyBuf, it.blk.cache, it.blk.cacheBuf = keyBuf, cache, cacheBuf
	iterPool.Put(it)
	return err
}

// Error returns the error that stopped the iterator, if any.
func (it *iterator) Error() error { return it.err }

// Key returns the current key, or the zero key when the iterator is not
// positioned. Its user key aliases the iterator's buffers or a block shared
// through the cache: it must not be modified, and it is valid until the
// next positioning call.
func (it *iterator) Key() base.InternalKey { return it.ikey }

// Value returns the current value, or nil when the iterator is not
// positioned. Like Key, it must not be modified and is valid until the next
// positioning call.
func (it *iterator) Value() []byte {
	if it.pos != posValid {
		return nil
	}
	return it.blk.val
}

// SeekGE moves to the first entry whose user key is >= key (and >= lower).
func (it *iterator) SeekGE(key []byte) bool {
	it.err = nil
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	if it.upper != nil && bytes.Compare(key, it.upper) >= 0 {
		return it.exhaustForward()
	}
	i := it.searchIndex(key)
	if i == len(it.index) {
		return it.exhaustForward()
	}
	if !it.loadBlock(i) {
		return false
	}
	if it.blk.seekGE(key) {
		return it.forwardValid()
	}
	return it.skipForward()
}

// SeekLT moves to the last entry whose user key is < key (and < upper).
func (it *iterator) SeekLT(key []byte) bool {
	it.err = nil
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	if it.lower != nil && bytes.Compare(key, it.lower) <= 0 {
		return it.exhaustBackward()
	}
	i := it.searchIndex(key)
	if i == len(it.index) {
		// Every entry is below key.
		return it.lastEntry()
	}
	if !it.loadBlock(i) {
		return false
	}
	if it.blk.seekLT(key) {
		return it.backwardValid()
	}
	return it.skipBackward()
}

// First moves to the first entry (at or above lower).
func (it *iterator) First() bool {
	if it.lower != nil {
		return it.SeekGE(it.lower)
	}
	it.err = nil
	if len(it.index) == 0 {
		return it.exhaustForward()
	}
	if !it.loadBlock(0) {
		return false
	}
	if it.blk.first() {
		return it.forwardValid()
	}
	return it.skipForward()
}

// Last moves to the last entry (below upper).
func (it *iterator) Last() bool {
	if it.upper != nil {
		return it.SeekLT(it.upper)
	}
	it.err = nil
	return it.lastEntry()
}

func (it *iterator) lastEntry() bool {
	if len(it.index) == 0 {
		return it.exhaustBackward()
	}
	if !it.loadBlock(len(it.index) - 1) {
		return false
	}
	if it.blk.last() {
		return it.backwardValid()
	}
	return it.skipBackward()
}

// Next moves to the next entry. After the iterator is exhausted backward (or
// before it is positioned) it moves to the first entry.
func (it *iterator) Next() bool {
	switch {
	case it.err != nil:
		return false
	case it.pos == posAfter:
		return false
	case it.pos != posValid:
		return it.First()
	}
	if it.blk.next() {
		return it.forwardValid()
	}
	return it.skipForward()
}

// Prev moves to the previous entry. After the iterator is exhausted forward
// (or before it is positioned) it moves to the last entry.
func (it *iterator) Prev() bool {
	switch {
	case it.err != nil:
		return false
	case it.pos == posBefore:
		return false
	case it.pos != posValid:
		return it.Last()
	}
	if it.blk.prev() {
		return it.backwardValid()
	}
	return it.skipBackward()
}

// searchIndex returns the index of the first data block whose last user key
// is >= key, or len(index) if there is none. That block holds the first
// entry whose user key is >= key.
func searchIndex(index []indexEntry, key []byte) int {
	lo, hi := 0, len(index)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(index[m].userKey, key) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// searchIndex is searchIndex over the iterator's index, answered with two
// comparisons when key falls in the loaded block, as it does for seeks to
// nearby keys.
func (it *iterator) searchIndex(key []byte) int {
	if i := it.blockIdx; i >= 0 {
		idx := it.index
		if bytes.Compare(idx[i].userKey, key) >= 0 && (i == 0 || bytes.Compare(idx[i-1].userKey, key) < 0) {
			return i
		}
	}
	return searchIndex(it.index, key)
}

// loadBlock makes block i current, reusing it when it already is.
func (it *iterator) loadBlock(i int) bool {
	if it.blockIdx == i {
		return true
	}
	it.blockIdx = -1
	e := &it.index[i]
	data, err := it.r.readDataBlock(e.h, &it.bufs, it.noFill)
	if err == nil {
		err = it.blk.init(data)
	}
	if err != nil {
		return it.fail(e.h, err)
	}
	it.blockIdx = i
	it.blockBelowUpper = it.upper == nil || bytes.Compare(e.userKey, it.upper) < 0
	it.blockAboveLower = it.lower == nil ||
		(i > 0 && bytes.Compare(it.index[i-1].userKey, it.lower) >= 0)
	return true
}

// skipForward moves to the first entry of the blocks after the current one,
// which is exhausted.
func (it *iterator) skipForward() bool {
	for {
		if it.blk.err != nil {
			return it.fail(it.index[it.blockIdx].h, it.blk.err)
		}
		// The current block's last key reaches upper: so do all later ones.
		if !it.blockBelowUpper || it.blockIdx+1 >= len(it.index) {
			return it.exhaustForward()
		}
		if !it.loadBlock(it.blockIdx + 1) {
			return false
		}
		if it.blk.first() {
			return it.forwardValid()
		}
	}
}

// skipBackward moves to the last entry of the blocks before the current
// one, which is exhausted.
func (it *iterator) skipBackward() bool {
	for {
		if it.blk.err != nil {
			return it.fail(it.index[it.blockIdx].h, it.blk.err)
		}
		// The previous block ends below lower: so does everything before.
		if !it.blockAboveLower || it.blockIdx == 0 {
			return it.exhaustBackward()
		}
		if !it.loadBlock(it.blockIdx - 1) {
			return false
		}
		if it.blk.last() {
			return it.backwardValid()
		}
	}
}

// forwardValid publishes the block iterator's entry after a forward move,
// unless it is at or past upper.
func (it *iterator) forwardValid() bool {
	k := it.blk.ikey()
	if !it.blockBelowUpper && bytes.Compare(k.UserKey, it.upper) >= 0 {
		return it.exhaustForward()
	}
	it.ikey = k
	it.pos = posValid
	return true
}

// backwardValid publishes the block iterator's entry after a backward move,
// unless it is below lower.
func (it *iterator) backwardValid() bool {
	k := it.blk.ikey()
	if !it.blockAboveLower && bytes.Compare(k.UserKey, it.lower) < 0 {
		return it.exhaustBackward()
	}
	it.ikey = k
	it.pos = posValid
	return true
}

func (it *iterator) exhaustForward() bool {
	it.pos = posAfter
	it.ikey = base.InternalKey{}
	return false
}

func (it *iterator) exhaustBackward() bool {
	it.pos = posBefore
	it.ikey = base.InternalKey{}
	return false
}

func (it *iterator) fail(h handle, err error) bool {
	it.err = fmt.Errorf("sstable: table %d: block at offset %d: %w", it.r.fileNum, h.offset, err)
	it.pos = posNone
	it.ikey = base.InternalKey{}
	return false
}

// closedIter is the iterator of a closed Reader: empty, with ErrClosed.
type closedIter struct{}

func (closedIter) SeekGE([]byte) bool    { return false }
func (closedIter) SeekLT([]byte) bool    { return false }
func (closedIter) First() bool           { return false }
func (closedIter) Last() bool            { return false }
func (closedIter) Next() bool            { return false }
func (closedIter) Prev() bool            { return false }
func (closedIter) Key() base.InternalKey { return base.InternalKey{} }
func (closedIter) Value() []byte         { return nil }
func (closedIter) Error() error          { return ErrClosed }
func (closedIter) Close() error          { return ErrClosed }

// errIter is the iterator of a Reader whose index could not be loaded:
// empty, with the error.
type errIter struct{ err error }

func (errIter) SeekGE([]byte) bool    { return false }
func (errIter) SeekLT([]byte) bool    { return false }
func (errIter) First() bool           { return false }
func (errIter) Last() bool            { return false }
func (errIter) Next() bool            { return false }
func (errIter) Prev() bool            { return false }
func (errIter) Key() base.InternalKey { return base.InternalKey{} }
func (errIter) Value() []byte         { return nil }
func (it errIter) Error() error       { return it.err }
func (it errIter) Close() error       { return it.err }
