package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"unsafe"
	"weak"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/bloom"
	"github.com/mailbricks/mailbricks/lsm/internal/cache"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// ReaderOptions configures a [Reader].
type ReaderOptions struct {
	// Cache caches the table's uncompressed data blocks, its parsed index
	// block and its filter block. The default (nil) caches nothing, and the
	// reader then keeps its index and filter in memory from Open to Close.
	Cache *cache.Cache
	// FileNum identifies the table in Cache; tables sharing a cache must
	// have distinct file numbers. When a table is deleted, the engine calls
	// Cache.EvictFile(FileNum). The default is 0.
	FileNum uint64
}

// Reader reads a table.
//
// # Metadata memory
//
// Open reads the footer and the range-del block (usually absent), and keeps
// the range tombstones in memory. With a cache, the index and filter blocks
// live in the cache, charged to its capacity like data blocks: the index
// parsed, the filter as stored. Each is read, verified and cached on the
// first use after it was evicted; an iterator holds the index from NewIter
// to Close, and [Reader.MayContain] the filter for the call. So an open
// table costs little more than its file descriptor and range tombstones,
// and the metadata of every table shares the cache's budget.
//
// The reader keeps a weak pointer to each, so that a hit is an atomic load
// and no lookup in the shared cache: the index is needed by every seek.
// The weak pointer does not keep a block alive: once the cache evicts it
// and no iterator holds it, the collector frees it, and the next use finds
// it gone and goes to the cache. A use through the weak pointer marks the
// block used, which the cache counts as a hit when it looks for blocks to
// evict. Without a cache, Open loads the index and filter and the reader
// keeps them until Close.
//
// A Reader is safe for concurrent use; the iterators it returns are not.
type Reader struct {
	f       vfs.File
	cache   *cache.Cache
	fileNum uint64
	size    uint64
	footer  footer

	// Without a cache, the index and filter loaded by Open; with one, weak
	// references to them in the cache.
	index               []indexEntry
	filter              []byte
	indexRef, filterRef metaRef
	tombstones          []base.RangeTombstone
	numEntries          uint64

	closed atomic.Bool
}

// indexEntrySize is the memory of an indexEntry besides its key bytes, for
// the cache's charge.
const indexEntrySize = int64(unsafe.Sizeof(indexEntry{}))

// indexEntry describes one data block.
type indexEntry struct {
	// userKey is the user key of the block's last key.
	userKey []byte
	h       handle
}

// Open reads the metadata of the table in f and returns a reader for it.
// The reader owns f and closes it in [Reader.Close]; if Open fails, it
// closes f. A malformed table yields an error for which
// errors.Is(err, base.ErrCorruption).
func Open(f vfs.File, opts ReaderOptions) (*Reader, error) {
	r := &Reader{f: f, cache: opts.Cache, fileNum: opts.FileNum}
	if err := r.init(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("sstable: open table %d: %w", opts.FileNum, err)
	}
	return r, nil
}

func (r *Reader) init() error {
	st, err := r.f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < footerLen {
		return base.CorruptionErrorf("sstable: file of %d bytes is too small", st.Size())
	}
	r.size = uint64(st.Size())
	fbuf := make([]byte, footerLen)
	if err := readFull(r.f, fbuf, r.size-footerLen); err != nil {
		return err
	}
	ft, err := decodeFooter(fbuf, r.size)
	if err != nil {
		return err
	}
	r.numEntries = ft.numEntries
	r.footer = ft

	if ft.rangeDel.length > 0 {
		rd, err := r.readMeta(ft.rangeDel)
		if err != nil {
			return fmt.Errorf("range-del block: %w", err)
		}
		if r.tombstones, err = parseRangeDels(rd); err != nil {
			return err
		}
	}
	if uint64(len(r.tombstones)) != ft.numRangeDels {
		return base.CorruptionErrorf("sstable: %d range tombstones, footer says %d", len(r.tombstones), ft.numRangeDels)
	}
	if r.cache == nil {
		if r.index, err = r.readIndex(); err != nil {
			return err
		}
		if ft.filter.length > 0 {
			if r.filter, err = r.readFilter(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readMeta reads and verifies the metadata block at h and returns its
// contents, in memory of its own.
func (r *Reader) readMeta(h handle) ([]byte, error) {
	raw := make([]byte, h.length+blockTrailerLen)
	if err := readFull(r.f, raw, h.offset); err != nil {
		return nil, err
	}
	return decodeStored(raw, nil)
}

// readIndex reads, verifies and parses the index block.
func (r *Reader) readIndex() ([]indexEntry, error) {
	b, err := r.readMeta(r.footer.index)
	if err != nil {
		return nil, fmt.Errorf("index block: %w", err)
	}
	return parseIndex(b, r.size-footerLen)
}

// readFilter reads and verifies the filter block.
func (r *Reader) readFilter() ([]byte, error) {
	b, err := r.readMeta(r.footer.filter)
	if err != nil {
		return nil, fmt.Errorf("filter block: %w", err)
	}
	return b, nil
}

// metaBlock is a table's index or filter as the cache holds it. A reader
// reaches it through a weak pointer, with no lookup in the shared cache,
// until the cache evicts it and the collector frees it.
type metaBlock struct {
	index  []indexEntry // the index block, parsed
	filter []byte       // or the filter block
	// used is set on each use through the weak pointer, so that the
	// cache does not evict a block in use as unused.
	used atomic.Bool
	// self is the weak pointer readers keep; allocated once per block.
	self *weak.Pointer[metaBlock]
}

func newMetaBlock(index []indexEntry, filter []byte) *metaBlock {
	m := &metaBlock{index: index, filter: filter}
	wp := weak.Make(m)
	m.self = &wp
	return m
}

// metaRef is a reader's weak reference to a cached metaBlock.
type metaRef struct {
	p atomic.Pointer[weak.Pointer[metaBlock]]
}

// get returns the block if it is still alive, marking it used.
func (ref *metaRef) get() *metaBlock {
	wp := ref.p.Load()
	if wp == nil {
		return nil
	}
	m := wp.Value()
	if m != nil && !m.used.Load() {
		m.used.Store(true)
	}
	return m
}

func (ref *metaRef) set(m *metaBlock) { ref.p.Store(m.self) }

// loadMeta returns the index or filter block at h, through ref, else from
// the cache, else read from the file (by read) and cached with the given
// charge. The caller may hold the block's contents as long as it likes;
// the cache charges for them only until it evicts them.
func (r *Reader) loadMeta(ref *metaRef, h handle, read func() (*metaBlock, int64, error)) (*metaBlock, error) {
	if m := ref.get(); m != nil {
		return m, nil
	}
	if v, ok := r.cache.GetValue(r.fileNum, h.offset); ok {
		m := v.(*metaBlock)
		ref.set(m)
		return m, nil
	}
	m, size, err := read()
	if err != nil {
		return nil, fmt.Errorf("sstable: table %d: %w", r.fileNum, err)
	}
	r.cache.SetValue(r.fileNum, h.offset, m, size, &m.used)
	ref.set(m)
	return m, nil
}

// loadIndex returns the parsed index: the reader's own without a cache,
// else the cached one (see loadMeta).
func (r *Reader) loadIndex() ([]indexEntry, error) {
	if r.cache == nil {
		return r.index, nil
	}
	m, err := r.loadMeta(&r.indexRef, r.footer.index, func() (*metaBlock, int64, error) {
		index, err := r.readIndex()
		if err != nil {
			return nil, 0, err
		}
		size := int64(len(index)) * (indexEntrySize + base.TrailerLen)
		for i := range index {
			size += int64(len(index[i].userKey))
		}
		return newMetaBlock(index, nil), size, nil
	})
	if err != nil {
		return nil, err
	}
	return m.index, nil
}

// loadFilter returns the filter block, or nil if the table has none: the
// reader's own without a cache, else the cached one (see loadMeta).
func (r *Reader) loadFilter() ([]byte, error) {
	if r.cache == nil || r.footer.filter.length == 0 {
		return r.filter, nil
	}
	m, err := r.loadMeta(&r.filterRef, r.footer.filter, func() (*metaBlock, int64, error) {
		filter, err := r.readFilter()
		if err != nil {
			return nil, 0, err
		}
		return newMetaBlock(nil, filter), int64(len(filter)), nil
	})
	if err != nil {
		return nil, err
	}
	return m.filter, nil
}

// readFull reads len(buf) bytes at off. A short read means the file is
// shorter than its metadata claims: corruption.
func readFull(f vfs.File, buf []byte, off uint64) error {
	n, err := f.ReadAt(buf, int64(off))
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return base.CorruptionErrorf("sstable: short read of %d bytes at offset %d", len(buf), off)
	}
	return fmt.Errorf("sstable: read %d bytes at offset %d: %w", len(buf), off, err)
}

// decodeStored verifies a stored block (contents and trailer) and returns
// its contents, decompressed into dst's storage when compressed.
func decodeStored(raw, dst []byte) ([]byte, error) {
	n := len(raw) - blockTrailerLen
	stored, typ := raw[:n], raw[n]
	if got, want := blockChecksum(stored, typ), binary.LittleEndian.Uint32(raw[n+1:]); got != want {
		return nil, base.CorruptionErrorf("sstable: block checksum mismatch: %#08x, want %#08x", got, want)
	}
	return decompressBlock(typ, stored, dst)
}

// parseIndex decodes the index block into one entry per data block,
// checking that the keys increase and that every handle lies in [0, end).
// The entries' keys are copied into one allocation of their exact size.
func parseIndex(block []byte, end uint64) ([]indexEntry, error) {
	var it blockIter
	if err := it.init(block); err != nil {
		return nil, err
	}
	// A first pass sizes the two allocations the index keeps, so parsing
	// a large index does not grow and copy them as it goes; keys then
	// never moves, and the entries can point into it as they are made.
	count, keyBytes := 0, 0
	for ok := it.first(); ok; ok = it.next() {
		count++
		keyBytes += len(it.userKey()) + base.TrailerLen
	}
	if it.err != nil {
		return nil, it.err
	}
	keys := make([]byte, 0, keyBytes)
	index := make([]indexEntry, 0, count)
	var prev []byte
	for ok := it.first(); ok; ok = it.next() {
		if len(index) == count {
			return nil, base.CorruptionErrorf("sstable: index block changed between passes")
		}
		off, n1 := binary.Uvarint(it.val)
		if n1 <= 0 {
			return nil, base.CorruptionErrorf("sstable: index entry %d: bad block handle", len(index))
		}
		length, n2 := binary.Uvarint(it.val[n1:])
		if n2 <= 0 || n1+n2 != len(it.val) {
			return nil, base.CorruptionErrorf("sstable: index entry %d: bad block handle", len(index))
		}
		h := handle{off, length}
		if !h.within(end) {
			return nil, base.CorruptionErrorf("sstable: index entry %d: block handle (%d, %d) out of bounds", len(index), off, length)
		}
		if len(index) > 0 && base.CompareEncoded(prev, it.key) >= 0 {
			return nil, base.CorruptionErrorf("sstable: index entry %d: keys out of order", len(index))
		}
		uk := it.userKey()
		if len(keys)+len(uk)+base.TrailerLen > cap(keys) {
			return nil, base.CorruptionErrorf("sstable: index block changed between passes")
		}
		start := len(keys)
		keys = append(keys, uk...)
		n := len(keys)
		keys = binary.LittleEndian.AppendUint64(keys, binary.LittleEndian.Uint64(it.key[len(it.key)-base.TrailerLen:]))
		prev = keys[start:]
		index = append(index, indexEntry{userKey: keys[start:n:n], h: h})
	}
	if it.err != nil {
		return nil, it.err
	}
	return index, nil
}

// parseRangeDels decodes the range-del block into owned tombstones.
func parseRangeDels(block []byte) ([]base.RangeTombstone, error) {
	var it blockIter
	if err := it.init(block); err != nil {
		return nil, err
	}
	type pending struct {
		startEnd, end int
		seq           uint64
	}
	var (
		arena   []byte
		entries []pending
	)
	for ok := it.first(); ok; ok = it.next() {
		k := it.ikey()
		if k.Kind() != base.KindRangeDelete {
			return nil, base.CorruptionErrorf("sstable: range tombstone %d has kind %s", len(entries), k.Kind())
		}
		if bytes.Compare(k.UserKey, it.val) >= 0 {
			return nil, base.CorruptionErrorf("sstable: range tombstone %d is empty", len(entries))
		}
		arena = append(arena, k.UserKey...)
		se := len(arena)
		arena = append(arena, it.val...)
		entries = append(entries, pending{startEnd: se, end: len(arena), seq: k.SeqNum()})
	}
	if it.err != nil {
		return nil, it.err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	ts := make([]base.RangeTombstone, len(entries))
	start := 0
	for i, e := range entries {
		ts[i] = base.RangeTombstone{Start: arena[start:e.startEnd:e.startEnd], End: arena[e.startEnd:e.end:e.end], Seq: e.seq}
		start = e.end
	}
	return ts, nil
}

// MayContain reports whether the table may hold a point entry for userKey.
// It returns true when the table has no filter, and an error when the
// filter block cannot be read or is corrupt.
func (r *Reader) MayContain(userKey []byte) (bool, error) {
	if r.closed.Load() {
		return false, ErrClosed
	}
	filter, err := r.loadFilter()
	if err != nil {
		return false, err
	}
	return filter == nil || bloom.MayContain(filter, userKey), nil
}

// RangeTombstones returns the table's range tombstones sorted by Start,
// then by Seq descending. The slice and its keys belong to the reader and
// must not be modified.
func (r *Reader) RangeTombstones() []base.RangeTombstone { return r.tombstones }

// Size returns the size of the table file in bytes.
func (r *Reader) Size() uint64 { return r.size }

// NumEntries returns the number of point entries in the table.
func (r *Reader) NumEntries() uint64 { return r.numEntries }

// NumDataBlocks returns the number of data blocks in the table. It reads
// the index block if it is not cached.
func (r *Reader) NumDataBlocks() (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	index, err := r.loadIndex()
	return len(index), err
}

// Close closes the table file. Iterators must be closed before; iterators
// created afterwards are empty and report [ErrClosed]. Calling Close again
// returns nil. Close does not evict the table's blocks from the cache: the
// table may be reopened.
func (r *Reader) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return r.f.Close()
}

// readDataBlock returns the uncompressed contents of the data block at h,
// from the cache when it is there. Without a cache, or with noFill when the
// block is not in the cache, the contents live in bufs and stay valid until
// the next call with the same bufs; from the cache they are shared and must
// not be modified.
func (r *Reader) readDataBlock(h handle, bufs *blockBufs, noFill bool) ([]byte, error) {
	if r.cache != nil {
		if b, ok := r.cache.Get(r.fileNum, h.offset); ok {
			return b, nil
		}
	}
	n := int(h.length) + blockTrailerLen
	if cap(bufs.read) < n {
		bufs.read = make([]byte, n)
	}
	raw := bufs.read[:n]
	if err := readFull(r.f, raw, h.offset); err != nil {
		return nil, err
	}
	if r.cache == nil || noFill {
		b, err := decodeStored(raw, bufs.decompressed)
		if err != nil {
			return nil, err
		}
		if raw[n-blockTrailerLen] != blockTypeNone {
			bufs.decompressed = b
		}
		return b, nil
	}
	b, err := decodeStored(raw, nil)
	if err != nil {
		return nil, err
	}
	if raw[n-blockTrailerLen] == blockTypeNone {
		b = bytes.Clone(b)
	}
	r.cache.Set(r.fileNum, h.offset, b)
	return b, nil
}

// blockBufs are an iterator's reusable buffers for reading blocks.
type blockBufs struct {
	read, decompressed []byte
}
