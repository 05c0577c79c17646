package lsm

// # Batch layout
//
// A batch's encoding is also the payload of its WAL record:
//
//	+------------------+-----------------+----------+----------+ ...
//	| seq (8 B, LE)    | count (4 B, LE) | entry 0  | entry 1  |
//	+------------------+-----------------+----------+----------+ ...
//
//	entry = kind (1 B) | keyLen uvarint | key | [valueLen uvarint | value]
//
// The value is present for SET, MERGE and RANGEDEL (where it is the exclusive
// end key) and absent for DEL. Entry i is assigned sequence number seq+i when
// the batch commits, so a batch is applied, and recovered, as a unit.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/memtable"
)

const batchHeaderLen = 12

// maxBatchCount bounds the entries of one batch, so that a corrupt count in a
// WAL record cannot make recovery allocate without bound.
const maxBatchCount = 1 << 30

// Batch is a set of writes applied atomically: after a crash, either all of a
// committed batch is present or none of it. Writes in a batch are not visible
// to reads until the batch is committed.
//
// A Batch is not safe for concurrent use. It may be reused after Commit with
// [Batch.Reset].
type Batch struct {
	db    *DB
	data  []byte
	count uint32
	// memNeed is an upper bound of the memtable arena bytes the point entries
	// need, so that a batch is never split across memtables.
	memNeed int
	// err is the first misuse of the batch (an invalid range), returned by
	// Commit.
	err error
}

// NewBatch returns an empty batch that commits to d.
func (d *DB) NewBatch() *Batch {
	return &Batch{db: d, data: make([]byte, batchHeaderLen, 256)}
}

func (b *Batch) init() {
	if len(b.data) < batchHeaderLen {
		b.data = make([]byte, batchHeaderLen, 256)
	}
}

func (b *Batch) add(kind base.Kind, key, value []byte, hasValue bool) {
	b.init()
	b.data = append(b.data, byte(kind))
	b.data = binary.AppendUvarint(b.data, uint64(len(key)))
	b.data = append(b.data, key...)
	if hasValue {
		b.data = binary.AppendUvarint(b.data, uint64(len(value)))
		b.data = append(b.data, value...)
	}
	b.count++
	if kind != base.KindRangeDelete {
		b.memNeed += memtable.EntrySize(len(key)+base.TrailerLen, len(value))
	}
}

// Set adds a write of value under key. The batch copies key and value.
func (b *Batch) Set(key, value []byte) { b.add(base.KindSet, key, value, true) }

// Delete adds a deletion of key.
func (b *Batch) Delete(key []byte) { b.add(base.KindDelete, key, nil, false) }

// Merge adds a merge operand for key, combined with the key's value by the
// DB's [Merger].
func (b *Batch) Merge(key, operand []byte) { b.add(base.KindMerge, key, operand, true) }

// DeleteRange adds a deletion of every key in [start, end). An empty or
// inverted range makes Commit fail with an error.
func (b *Batch) DeleteRange(start, end []byte) {
	if string(start) >= string(end) {
		if b.err == nil {
			b.err = fmt.Errorf("lsm: delete range: start %q is not before end %q", start, end)
		}
		return
	}
	b.add(base.KindRangeDelete, start, end, true)
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return int(b.count) }

// Empty reports whether the batch has no writes.
func (b *Batch) Empty() bool { return b.count == 0 }

// Reset empties the batch so that it can be reused.
func (b *Batch) Reset() {
	b.init()
	b.data = b.data[:batchHeaderLen]
	clear(b.data)
	b.count = 0
	b.memNeed = 0
	b.err = nil
}

// Commit applies the batch to the DB it was created from. See [DB.Apply].
func (b *Batch) Commit(o *WriteOptions) error {
	if b.db == nil {
		return errors.New("lsm: commit of a batch not created by DB.NewBatch")
	}
	return b.db.Apply(b, o)
}

func (b *Batch) setSeq(seq uint64) {
	binary.LittleEndian.PutUint64(b.data[0:8], seq)
	binary.LittleEndian.PutUint32(b.data[8:12], b.count)
}

// batchReader decodes the entries of an encoded batch.
type batchReader struct {
	data  []byte
	seq   uint64
	count uint32
	i     uint32
}

func newBatchReader(data []byte) (batchReader, error) {
	if len(data) < batchHeaderLen {
		return batchReader{}, base.CorruptionErrorf("batch of %d bytes is shorter than its header", len(data))
	}
	r := batchReader{
		data:  data[batchHeaderLen:],
		seq:   binary.LittleEndian.Uint64(data[0:8]),
		count: binary.LittleEndian.Uint32(data[8:12]),
	}
	if r.count > maxBatchCount || r.seq+uint64(r.count) >= base.SeqNumMax {
		return batchReader{}, base.CorruptionErrorf("batch header seq=%d count=%d out of range", r.seq, r.count)
	}
	return r, nil
}

// next returns the next entry. ok is false at the end; err reports a
// malformed entry or a count that does not match the entries.
func (r *batchReader) next() (kind base.Kind, key, value []byte, ok bool, err error) {
	if r.i == r.count {
		if len(r.data) != 0 {
			return 0, nil, nil, false, base.CorruptionErrorf("batch has %d trailing bytes", len(r.data))
		}
		return 0, nil, nil, false, nil
	}
	if len(r.data) == 0 {
		return 0, nil, nil, false, base.CorruptionErrorf("batch has %d of %d entries", r.i, r.count)
	}
	kind = base.Kind(r.data[0])
	if kind > base.KindMax {
		return 0, nil, nil, false, base.CorruptionErrorf("batch entry %d has kind %d", r.i, kind)
	}
	r.data = r.data[1:]
	if key, err = r.bytes(); err != nil {
		return 0, nil, nil, false, err
	}
	if kind != base.KindDelete {
		if value, err = r.bytes(); err != nil {
			return 0, nil, nil, false, err
		}
	}
	r.i++
	return kind, key, value, true, nil
}

func (r *batchReader) bytes() ([]byte, error) {
	n, w := binary.Uvarint(r.data)
	if w <= 0 || n > uint64(len(r.data)-w) {
		return nil, base.CorruptionErrorf("batch entry %d has a bad length", r.i)
	}
	b := r.data[w : w+int(n) : w+int(n)]
	r.data = r.data[w+int(n):]
	return b, nil
}
