package lsm

import (
	"fmt"
	"log/slog"

	"github.com/mailbricks/mailbricks/lsm/internal/sstable"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// Compression selects the block compression of new tables. Tables written
// with any compression stay readable whatever the option says later.
type Compression int

// The block compressions.
const (
	// DefaultCompression is S2.
	DefaultCompression Compression = iota
	// NoCompression stores blocks as they are.
	NoCompression
	// S2Compression uses S2 (a faster Snappy extension); cheap on CPU.
	S2Compression
	// ZstdCompression uses zstd at its fastest level; smaller on disk.
	ZstdCompression
)

// Merger combines merge operands written with [DB.Merge] and [Batch.Merge].
//
// Merge must be associative: Merge(k, Merge(k, a, b), c) must equal
// Merge(k, a, Merge(k, b, c)). The engine folds operands from oldest to
// newest onto the value they were written over (or onto the oldest operand
// when there is none), and may combine runs of operands early during
// compaction, before the value below them is known.
//
// Merge must not modify or retain older or newer; it may return one of them.
// An error fails the read or compaction that needed the result.
type Merger struct {
	// Name identifies the merge function.
	Name string
	// Merge combines an older value or operand with a newer operand.
	Merge func(key, older, newer []byte) ([]byte, error)
	// MergeAll, if set, combines three or more values at once, oldest
	// first (the value the operands were written over, if any, then the
	// operands): the engine calls it instead of folding Merge over them,
	// so that a concatenating operator copies each byte once rather than
	// once per operand after it. Its result must equal that fold. Like
	// Merge, it must not modify or retain its arguments. The default, nil,
	// folds Merge.
	MergeAll func(key []byte, values [][]byte) ([]byte, error)
}

// WALRecoveryMode selects what [Open] accepts at the end of the newest
// write-ahead log, the one a crash may have left damaged. Damage in an older
// log (which was synced whole before the next one began) always fails Open
// with [ErrCorruption], in every mode.
//
// Whatever the mode, each record carries a checksum, so a damaged record is
// never replayed as data, and every record Open drops is reported: in
// [Metrics] (WALTailBytesDropped, WALTailRecordsDropped) and as a warning
// on [Options.Logger].
type WALRecoveryMode int

// The WAL recovery modes.
const (
	// WALRecoveryDropDamagedTail, the default, recovers every record before
	// the first bad one in the newest log, and drops the rest when the
	// damage is what a crash can leave of writes in flight:
	//
	//   - the bad record has no valid record after it (a torn append); or
	//   - the bad record overlaps an aligned 4 KiB page of zeros: a page that
	//     out-of-order writeback never wrote, after which intact records may
	//     follow but no synced one can (a sync persists every page before
	//     it).
	//
	// Other damage with a valid record after it is corruption in the middle
	// of the log, and Open fails with [ErrCorruption].
	//
	// What this mode can lose: damage to the last records of the newest log
	// after they were synced (a flipped bit on the disk, say) looks exactly
	// like a torn append, and those records, though acknowledged with
	// [Sync], are dropped. The loss is reported, not silent. So is a page of
	// synced data that the device later returns as zeros.
	WALRecoveryDropDamagedTail WALRecoveryMode = iota
	// WALRecoveryStrict accepts at the end of the newest log only what a
	// crash leaves of ONE record being appended: fewer bytes than a header,
	// only zeros, a valid header whose payload runs past the end of the
	// file, or a record with a lost page and nothing valid after it. Any
	// other checksum failure, including a complete final record that fails
	// its checksum and a lost page with valid records after it, fails Open
	// with [ErrCorruption] and changes nothing on disk, as RocksDB's
	// absolute-consistency recovery mode does.
	//
	// A power loss during a stream of unsynced writes can leave a lost page
	// with intact records after it; then Open refuses the DB in this mode.
	// Opening it once in the default mode accepts (and reports) the loss of
	// those unsynced writes.
	WALRecoveryStrict
)

// String returns the mode's name.
func (m WALRecoveryMode) String() string {
	switch m {
	case WALRecoveryDropDamagedTail:
		return "drop-damaged-tail"
	case WALRecoveryStrict:
		return "strict"
	}
	return fmt.Sprintf("WALRecoveryMode(%d)", int(m))
}

// Options configures a [DB]. A nil *Options and every zero field mean the
// default. Options are copied by [Open]; later changes have no effect.
type Options struct {
	// FS is the file system the DB lives on. The default is [vfs.Default].
	FS vfs.FS
	// MemTableSize is the size in bytes of a memtable; a full memtable is
	// rotated and flushed to level 0. The default is 64 MiB.
	MemTableSize int
	// BlockSize is the target uncompressed size of a table's data blocks.
	// The default is 4 KiB.
	BlockSize int
	// CacheSize is the capacity in bytes of the block cache, which holds
	// the tables' uncompressed data blocks and their metadata: each table's
	// parsed index block and its bloom filter block, loaded on demand and
	// evicted like data blocks. So the memory of the tables' blocks and
	// metadata together stays within CacheSize however many tables the DB
	// has (see "Memory" in the package doc). A block, index or filter
	// larger than a sixteenth of CacheSize (a shard of the cache) is not
	// cached and is read again when next needed: a table's index takes
	// about TargetFileSize / BlockSize × (60 + key size) bytes. The default
	// is 64 MiB; a negative value disables the cache, and then each open
	// table keeps its index and filter in memory while it is open.
	CacheSize int64
	// Compression is the block compression of new tables. The default is
	// [S2Compression].
	Compression Compression
	// BloomBitsPerKey is the number of bloom filter bits per key in a table.
	// The default is 10 (about 1% false positives); a negative value
	// disables filters.
	BloomBitsPerKey int
	// L0CompactionThreshold is the number of level-0 tables that triggers a
	// compaction into level 1. The default is 4.
	L0CompactionThreshold int
	// L0StopWritesThreshold is the number of level-0 tables at which writes
	// stall until compaction catches up. The default is 12.
	L0StopWritesThreshold int
	// LBaseMaxBytes is the target size of level 1; each deeper level is ten
	// times larger. The default is 64 MiB.
	LBaseMaxBytes int64
	// TargetFileSize is the target size of tables written by compaction. The
	// default is 8 MiB.
	TargetFileSize int64
	// MaxOpenFiles bounds the number of open table files. An open table
	// holds a file descriptor, a few hundred bytes and its range tombstones;
	// its index and filter are in the block cache. The default is 1000.
	MaxOpenFiles int
	// Merger resolves merge operands. The default concatenates operands,
	// which is associative.
	Merger *Merger
	// Logger receives background events (flushes, compactions, errors) and
	// the warnings of recovery (a dropped write-ahead log tail). The default
	// discards them.
	Logger *slog.Logger
	// WALRecovery selects what Open accepts at the end of the newest
	// write-ahead log. The default is [WALRecoveryDropDamagedTail].
	WALRecovery WALRecoveryMode
}

// WriteOptions configures a write. A nil *WriteOptions means Sync is false.
type WriteOptions struct {
	// Sync makes the write durable before it returns: it survives a crash of
	// the process or the machine. Concurrent synced writes share one
	// fdatasync (group commit). Without Sync a write survives a process
	// crash once flushed to the OS, usually within microseconds, but may be
	// lost with the machine.
	Sync bool
}

// Sync is a *WriteOptions with Sync set.
var Sync = &WriteOptions{Sync: true}

// NoSync is a *WriteOptions without Sync.
var NoSync = &WriteOptions{}

// IterOptions configures an [Iterator]. A nil *IterOptions means no bounds.
type IterOptions struct {
	// LowerBound is the inclusive lower bound; nil means none.
	LowerBound []byte
	// UpperBound is the exclusive upper bound; nil means none.
	UpperBound []byte
}

// DefaultMerger concatenates operands: the value of a key is its base value
// followed by every operand in write order.
var DefaultMerger = &Merger{
	Name: "lsm.concatenate",
	Merge: func(_, older, newer []byte) ([]byte, error) {
		out := make([]byte, 0, len(older)+len(newer))
		out = append(out, older...)
		return append(out, newer...), nil
	},
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.FS == nil {
		r.FS = vfs.Default
	}
	if r.MemTableSize <= 0 {
		r.MemTableSize = 64 << 20
	}
	if r.BlockSize <= 0 {
		r.BlockSize = 4 << 10
	}
	if r.CacheSize == 0 {
		r.CacheSize = 64 << 20
	}
	if r.BloomBitsPerKey == 0 {
		r.BloomBitsPerKey = 10
	}
	if r.L0CompactionThreshold <= 0 {
		r.L0CompactionThreshold = 4
	}
	if r.L0StopWritesThreshold <= 0 {
		r.L0StopWritesThreshold = 12
	}
	if r.L0StopWritesThreshold < r.L0CompactionThreshold {
		r.L0StopWritesThreshold = r.L0CompactionThreshold
	}
	if r.LBaseMaxBytes <= 0 {
		r.LBaseMaxBytes = 64 << 20
	}
	if r.TargetFileSize <= 0 {
		r.TargetFileSize = 8 << 20
	}
	if r.MaxOpenFiles <= 0 {
		r.MaxOpenFiles = 1000
	}
	if r.Merger == nil {
		r.Merger = DefaultMerger
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

func (c Compression) sstable() sstable.Compression {
	switch c {
	case NoCompression:
		return sstable.NoCompression
	case ZstdCompression:
		return sstable.ZstdCompression
	}
	return sstable.S2Compression
}
