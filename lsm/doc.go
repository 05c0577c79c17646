// Package lsm is an embedded, ordered key-value store built as a
// log-structured merge-tree, the storage engine under every embedded
// mailbricks backend (mailbox tables, search postings, queues, reputation
// counters).
//
// Its shape follows pebble and LevelDB: writes go to a write-ahead log and a
// memtable; full memtables are flushed to sorted tables in level 0; leveled
// compaction merges tables down through levels 1 to 6, each about ten times
// larger than the one above. Reads merge the memtables and the levels, and
// see a consistent state as of the moment they began.
//
//	db, err := lsm.Open(dir, nil)
//	...
//	err = db.Set([]byte("user/42/msg/0191..."), body, lsm.Sync)
//	it, err := db.NewPrefixIter([]byte("user/42/"))
//	for ok := it.First(); ok; ok = it.Next() { ... }
//	err = it.Close()
//
// # Writes and durability
//
// Every write ([DB.Set], [DB.Delete], [DB.DeleteRange], [DB.Merge], or a
// [Batch] of them) is atomic and gets the next sequence numbers in one total
// order. A write with [WriteOptions] Sync returns only after its WAL record
// is on stable storage; concurrent synced writers share one fdatasync (group
// commit), so eight writers sync far more writes per second than one.
// Writes without Sync reach the operating system within microseconds, in a
// background flush, and survive a process crash once there.
//
// After a crash, [Open] recovers a prefix of the acknowledged history:
// every synced write, no partial batch, and nothing out of order. What a
// crash leaves of the writes in flight at the end of the newest log (a
// record cut short, or pages that were never written back and read as
// zeros, with perhaps intact records after them) is dropped: none of it was
// acknowledged with Sync. Damage anywhere else, including a checksum
// mismatch in a table block, is reported as [ErrCorruption] and never
// returned as data.
//
// One loss cannot be told from a crash: damage to the last records of the
// newest log after they were synced (a flipped bit on the disk) looks like
// a torn append, and by default those records are dropped although they
// were acknowledged. Every drop is reported, never silent: [Metrics] counts
// the bytes and records dropped (WALTailBytesDropped,
// WALTailRecordsDropped) and Open logs a warning on [Options.Logger]. With
// [Options.WALRecovery] set to [WALRecoveryStrict], Open instead refuses
// any damage that is not what a crash leaves of one record being appended,
// with [ErrCorruption]; see [WALRecoveryMode].
//
// # Merge
//
// [DB.Merge] records an operand that the [Options.Merger] folds onto the
// key's value at read time and during compaction, so counters and posting
// lists are updated without reading first. The merger must be associative.
//
// # Reads
//
// [DB.Get] reads one key; [DB.NewIter] iterates in both directions within
// optional bounds; [DB.NewSnapshot] pins a consistent view for repeated
// reads while writes go on.
//
// # Memory
//
// A DB's memory is bounded by its options, not by the number of keys or
// tables:
//
//   - the block cache, [Options].CacheSize (default 64 MiB), which holds
//     the tables' data blocks and also their metadata, each table's parsed
//     index block and its bloom filter block. Metadata is loaded on demand
//     and evicted least recently used like data blocks, so a DB with
//     thousands of tables does not hold thousands of indexes and filters:
//     what is not in the cache is read again (and verified) when a lookup
//     needs it. An iterator holds its table's index, and a lookup the
//     filter, while they use them, even if the cache evicts them meanwhile
//     (an evicted block is garbage once nothing uses it, freed by the next
//     collection);
//   - the memtables, one being written and at most two waiting for flush,
//     each up to [Options].MemTableSize (default 64 MiB; a young DB's start
//     at 256 KiB and double);
//   - the open tables, at most [Options].MaxOpenFiles (default 1,000), each
//     a file descriptor, a few hundred bytes and its range tombstones;
//   - the write-ahead log's two buffers, records appended and not yet
//     written to the file: about a record's size when the disk keeps up;
//     when it does not, writes wait once 4 MiB are pending, so each buffer
//     stays under 8 MiB.
//
// So the resident size is about CacheSize + 3 × MemTableSize, plus what
// open iterators and snapshots pin: the tables, memtables and blocks they
// read, until they are closed. With the block cache disabled (a negative
// CacheSize) each open table keeps its index and filter in memory instead.
// Compactions read their input tables through the cache without adding to
// it: a block the cache lacks is read into the compaction's own buffer,
// so a compaction neither evicts the blocks readers use nor allocates a
// block for every block it reads.
//
// Memtables live outside the Go heap (on Unix, in anonymous mappings), so
// they do not count toward the collector's heap goal, and the memory of a
// flushed memtable is kept for the next one: the process keeps at most two
// spare memtables of each size, for all its DBs together (up to
// 2 × MemTableSize beyond the DBs' own memtables).
//
// Everything else is on the Go heap, which with the default GOGC=100 may
// grow to twice its live size between collections. A program that must
// stay within a memory budget sets the Go runtime's soft memory limit
// ([runtime/debug.SetMemoryLimit] or GOMEMLIMIT) to it: the collector then
// runs before the heap passes the limit and returns free memory to the
// operating system sooner. The limit counts the Go heap, not the
// memtables; setting it to the sum of the budgets the program configures
// (every DB's CacheSize and memtables, and its own caches) leaves the
// heap the memtables' share as headroom. It must leave room for the live
// heap: a limit below it makes the collector run continuously.
//
// # Files
//
// A DB directory holds CURRENT (the name of the live manifest), LOCK,
// MANIFEST-NNNNNN (the version edits), NNNNNN.log (write-ahead logs) and
// NNNNNN.sst (tables). Each format is documented byte by byte at the top of
// the file that reads it: lsm/internal/record (WAL and manifest framing),
// batch.go (WAL payload), lsm/internal/manifest (version edits) and
// lsm/internal/sstable (tables).
//
// # File systems
//
// All I/O goes through [Options.FS], a [vfs.FS]: the operating system by
// default, or an in-memory, crash-simulating or fault-injecting file system
// for tests.
//
// # Errors
//
// [ErrNotFound] for a missing key, [ErrClosed] after Close, and
// [ErrCorruption] for damaged data; match them with errors.Is. A failure of
// a background flush or compaction (a full disk, an I/O error) makes later
// writes fail with that error while reads go on; reopening the DB retries
// from the durable state.
package lsm
