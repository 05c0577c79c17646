package sstable

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/bloom"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// ErrClosed is returned by the methods of a [Writer] after Close, and by
// iterators created after their [Reader] was closed.
var ErrClosed = errors.New("sstable: closed")

// writeBufferSize is the size of the Writer's write buffer: blocks reach the
// file in large writes rather than one small write each.
const writeBufferSize = 256 << 10

// WriterOptions configures a [Writer]. Every zero field means the default.
type WriterOptions struct {
	// BlockSize is the target uncompressed size of a data block: a block is
	// cut once it reaches it. Values above 256 MiB are treated as 256 MiB.
	// The default is 4096.
	BlockSize int
	// RestartInterval is the number of entries between restart points in
	// data blocks. Values above 128 are treated as 128. The default is 16.
	RestartInterval int
	// BloomBitsPerKey is the number of bloom filter bits per distinct user
	// key; a negative value writes no filter. The default is 10.
	BloomBitsPerKey int
	// Compression is the compression of data, index and range-del blocks.
	// The default is [S2Compression].
	Compression Compression
}

func (o WriterOptions) withDefaults() WriterOptions {
	if o.BlockSize <= 0 {
		o.BlockSize = 4096
	}
	o.BlockSize = min(o.BlockSize, maxTargetBlockSize)
	if o.RestartInterval <= 0 {
		o.RestartInterval = 16
	}
	o.RestartInterval = min(o.RestartInterval, maxRestartInterval)
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = 10
	}
	if o.Compression == DefaultCompression {
		o.Compression = S2Compression
	}
	return o
}

// Meta describes a table written by a [Writer].
type Meta struct {
	// Size is the size of the file in bytes.
	Size uint64
	// Smallest and Largest are the smallest and largest keys of the table
	// under base.CompareInternal, covering point keys and range tombstones:
	// a tombstone contributes (Start, Seq, RANGEDEL) as a candidate smallest
	// key and base.MakeRangeDeleteSentinel(End) as a candidate largest key.
	// Both are zero for an empty table. Their user keys are owned copies.
	Smallest, Largest base.InternalKey
	// SmallestSeq and LargestSeq bound the sequence numbers of the table's
	// point entries and range tombstones.
	SmallestSeq, LargestSeq uint64
	// NumEntries is the number of point entries.
	NumEntries uint64
	// NumRangeTombstones is the number of range tombstones.
	NumRangeTombstones uint64
}

// Writer writes a table. Point entries are added in increasing internal-key
// order with [Writer.Add]; range tombstones in any order with
// [Writer.AddRangeTombstone]; [Writer.Close] finishes the file.
//
// Once a write to the file fails, every later call returns that error;
// Close still closes the file. The caller removes the file of a failed
// table.
//
// A Writer is not safe for concurrent use.
type Writer struct {
	f    vfs.File
	w    *bufio.Writer
	opts WriterOptions
	// offset is the number of bytes written so far, buffered or not.
	offset uint64

	data   blockWriter
	index  blockWriter
	filter *bloom.Builder

	tombstones []base.RangeTombstone

	keyBuf      []byte
	handleBuf   []byte
	compressBuf []byte
	trailer     [blockTrailerLen]byte

	meta Meta
	// err is sticky: the first write error, or ErrClosed after Close.
	err      error
	closed   bool
	closeErr error
}

// NewWriter returns a writer that writes a table to f, which must be empty.
// The writer owns f: Close syncs and closes it.
func NewWriter(f vfs.File, opts WriterOptions) *Writer {
	opts = opts.withDefaults()
	w := &Writer{
		f:     f,
		w:     bufio.NewWriterSize(f, writeBufferSize),
		opts:  opts,
		data:  blockWriter{restartInterval: opts.RestartInterval},
		index: blockWriter{restartInterval: 1},
	}
	if opts.BloomBitsPerKey > 0 {
		w.filter = bloom.NewBuilder(opts.BloomBitsPerKey)
	}
	return w
}

// Add adds a point entry. key must sort strictly after every key added
// before under base.CompareInternal and must not be a range tombstone (use
// [Writer.AddRangeTombstone]); a key + value longer than 512 MiB is
// rejected. Such a rejected call leaves the writer usable. Add copies key and
// value: the caller may reuse them.
func (w *Writer) Add(key base.InternalKey, value []byte) error {
	if w.err != nil {
		return w.err
	}
	if k := key.Kind(); k == base.KindRangeDelete || k > base.KindMax {
		return fmt.Errorf("sstable: add %s: kind %s is not a point entry", key, k)
	}
	if len(key.UserKey)+len(value) > maxEntrySize {
		return fmt.Errorf("sstable: add %q: entry of %d bytes exceeds %d", key.UserKey, len(key.UserKey)+len(value), maxEntrySize)
	}
	sameUserKey := false
	if w.meta.NumEntries > 0 {
		prev := w.data.prevKey
		n := len(prev) - base.TrailerLen
		c := bytes.Compare(key.UserKey, prev[:n])
		if c == 0 {
			sameUserKey = true
			if t := binary.LittleEndian.Uint64(prev[n:]); key.Trailer >= t {
				c = -1
			} else {
				c = 1
			}
		}
		if c <= 0 {
			prevKey, _ := base.DecodeInternalKey(prev)
			return fmt.Errorf("sstable: add %s: keys out of order (previous key %s)", key, prevKey)
		}
	}
	w.keyBuf = key.Append(w.keyBuf[:0])
	if w.filter != nil && !sameUserKey {
		w.filter.AddKey(key.UserKey)
	}
	w.data.add(w.keyBuf, value)
	seq := key.SeqNum()
	if w.meta.NumEntries == 0 {
		w.meta.Smallest = key.Clone()
		w.meta.SmallestSeq, w.meta.LargestSeq = seq, seq
	} else {
		w.meta.SmallestSeq = min(w.meta.SmallestSeq, seq)
		w.meta.LargestSeq = max(w.meta.LargestSeq, seq)
	}
	w.meta.NumEntries++
	if w.data.size() >= w.opts.BlockSize {
		return w.flushData()
	}
	return nil
}

// AddRangeTombstone adds a range tombstone. t.Start must sort before t.End;
// tombstones may be added in any order and may overlap. It copies t's keys.
func (w *Writer) AddRangeTombstone(t base.RangeTombstone) error {
	if w.err != nil {
		return w.err
	}
	if bytes.Compare(t.Start, t.End) >= 0 {
		return fmt.Errorf("sstable: add range tombstone [%q, %q): start must sort before end", t.Start, t.End)
	}
	if t.Seq > base.SeqNumMax {
		return fmt.Errorf("sstable: add range tombstone [%q, %q): sequence number %d out of range", t.Start, t.End, t.Seq)
	}
	if len(t.Start)+len(t.End) > maxEntrySize {
		return fmt.Errorf("sstable: add range tombstone [%q, %q): %d bytes exceeds %d", t.Start, t.End, len(t.Start)+len(t.End), maxEntrySize)
	}
	buf := make([]byte, len(t.Start)+len(t.End))
	n := copy(buf, t.Start)
	copy(buf[n:], t.End)
	w.tombstones = append(w.tombstones, base.RangeTombstone{Start: buf[:n:n], End: buf[n:], Seq: t.Seq})
	return nil
}

// EstimatedSize returns the number of bytes written so far plus the
// uncompressed size of the pending data block.
func (w *Writer) EstimatedSize() uint64 {
	if w.data.empty() {
		return w.offset
	}
	return w.offset + uint64(w.data.size())
}

// Close finishes the table: it writes the pending data block, the filter,
// range-del and index blocks and the footer, syncs the file and closes it.
// It returns the table's [Meta]. Close always closes the file; calling it
// again returns the first call's results.
func (w *Writer) Close() (Meta, error) {
	if w.closed {
		return w.meta, w.closeErr
	}
	w.closed = true
	err := w.finish()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("sstable: close: %w", cerr)
	}
	if err != nil {
		w.meta = Meta{}
		w.err = err
	} else {
		w.err = ErrClosed
	}
	w.closeErr = err
	w.w = nil
	w.tombstones = nil
	return w.meta, err
}

func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	if !w.data.empty() {
		if err := w.flushData(); err != nil {
			return err
		}
	}
	m := &w.meta
	if m.NumEntries > 0 {
		last, _ := base.DecodeInternalKey(w.data.prevKey)
		m.Largest = last.Clone()
	}
	var ft footer
	var err error
	if w.filter != nil && w.filter.NumKeys() > 0 {
		if ft.filter, err = w.writeBlock(w.filter.Finish(), NoCompression); err != nil {
			return err
		}
	}
	if len(w.tombstones) > 0 {
		if ft.rangeDel, err = w.writeRangeDels(); err != nil {
			return err
		}
	}
	if ft.index, err = w.writeBlock(w.index.finish(), w.opts.Compression); err != nil {
		return err
	}
	ft.numEntries = m.NumEntries
	ft.numRangeDels = m.NumRangeTombstones
	if err := w.write(ft.encode()); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil {
		return w.fail("write", err)
	}
	if err := w.f.Sync(); err != nil {
		return w.fail("sync", err)
	}
	m.Size = w.offset
	return nil
}

// writeRangeDels sorts the tombstones, writes the range-del block and folds
// the tombstones into the table's Meta, whose point bounds are already set.
func (w *Writer) writeRangeDels() (handle, error) {
	ts := w.tombstones
	// Start ascending, then seq descending: internal-key order of the
	// tombstones' start keys.
	slices.SortFunc(ts, func(a, b base.RangeTombstone) int {
		if c := bytes.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(b.Seq, a.Seq)
	})
	bw := blockWriter{restartInterval: w.opts.RestartInterval}
	var key []byte
	m := &w.meta
	hasPoints := m.NumEntries > 0
	if !hasPoints {
		m.SmallestSeq, m.LargestSeq = ts[0].Seq, ts[0].Seq
	}
	largestEnd := ts[0].End
	for _, t := range ts {
		key = base.MakeInternalKey(t.Start, t.Seq, base.KindRangeDelete).Append(key[:0])
		bw.add(key, t.End)
		if bytes.Compare(t.End, largestEnd) > 0 {
			largestEnd = t.End
		}
		m.SmallestSeq = min(m.SmallestSeq, t.Seq)
		m.LargestSeq = max(m.LargestSeq, t.Seq)
	}
	smallest := base.MakeInternalKey(ts[0].Start, ts[0].Seq, base.KindRangeDelete)
	if !hasPoints || base.CompareInternal(smallest, m.Smallest) < 0 {
		m.Smallest = smallest.Clone()
	}
	largest := base.MakeRangeDeleteSentinel(largestEnd)
	if !hasPoints || base.CompareInternal(largest, m.Largest) > 0 {
		m.Largest = largest.Clone()
	}
	m.NumRangeTombstones = uint64(len(ts))
	return w.writeBlock(bw.finish(), w.opts.Compression)
}

// flushData writes the pending data block and indexes it by its last key.
func (w *Writer) flushData() error {
	h, err := w.writeBlock(w.data.finish(), w.opts.Compression)
	if err != nil {
		return err
	}
	w.handleBuf = binary.AppendUvarint(w.handleBuf[:0], h.offset)
	w.handleBuf = binary.AppendUvarint(w.handleBuf, h.length)
	w.index.add(w.data.prevKey, w.handleBuf)
	w.data.reset()
	return nil
}

// writeBlock compresses and writes a block with its trailer.
func (w *Writer) writeBlock(contents []byte, c Compression) (handle, error) {
	if len(contents) > maxBlockSize {
		// Only an index or filter of an absurdly large table gets here.
		return handle{}, w.fail("write", fmt.Errorf("block of %d bytes exceeds %d", len(contents), maxBlockSize))
	}
	typ, stored, buf := compressBlock(c, contents, w.compressBuf)
	w.compressBuf = buf
	w.trailer[0] = typ
	binary.LittleEndian.PutUint32(w.trailer[1:], blockChecksum(stored, typ))
	h := handle{offset: w.offset, length: uint64(len(stored))}
	if err := w.write(stored); err != nil {
		return handle{}, err
	}
	if err := w.write(w.trailer[:]); err != nil {
		return handle{}, err
	}
	return h, nil
}

func (w *Writer) write(p []byte) error {
	if _, err := w.w.Write(p); err != nil {
		return w.fail("write", err)
	}
	w.offset += uint64(len(p))
	return nil
}

// fail records the writer's first error, which every later call returns.
func (w *Writer) fail(op string, err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("sstable: %s: %w", op, err)
	}
	return w.err
}
