package lsm

// LevelMetrics describes one level of the tree.
type LevelMetrics struct {
	// NumFiles is the number of tables in the level.
	NumFiles int
	// Size is the total size of the level's tables in bytes.
	Size int64
}

// Metrics is a point-in-time description of a DB, for monitoring.
type Metrics struct {
	// Levels describes each level, 0 to 6.
	Levels [numLevels]LevelMetrics
	// MemTableSize is the bytes used by the mutable and immutable memtables.
	MemTableSize int64
	// MemTableCount is the number of memtables (1 + those waiting for flush).
	MemTableCount int
	// WALSize is the size in bytes of the live write-ahead logs.
	WALSize int64
	// DiskSize is the size in bytes of the live tables and logs.
	DiskSize int64
	// Flushes is the number of memtables flushed since Open.
	Flushes int64
	// FlushBytes is the bytes of tables written by flushes since Open.
	FlushBytes int64
	// Compactions is the number of compactions since Open, trivial moves
	// included.
	Compactions int64
	// CompactionBytesRead and CompactionBytesWritten count the table bytes
	// compactions read and wrote since Open.
	CompactionBytesRead, CompactionBytesWritten int64
	// WriteStalls counts the times a write waited for a flush or for
	// level-0 compaction.
	WriteStalls int64
	// BlockCacheHits, BlockCacheMisses and BlockCacheSize describe the block
	// cache; they count the tables' index and filter blocks as well as their
	// data blocks.
	BlockCacheHits, BlockCacheMisses, BlockCacheSize int64
	// Snapshots is the number of open snapshots.
	Snapshots int
	// SeqNum is the sequence number of the latest visible write.
	SeqNum uint64
	// WALTailBytesDropped is the number of bytes Open dropped from the end
	// of the newest write-ahead log because they did not hold valid
	// records: what a crash leaves of writes in flight, or, looking exactly
	// the same, damage to the last records after they were synced (see
	// [WALRecoveryDropDamagedTail]). Zero when the log ended cleanly.
	WALTailBytesDropped int64
	// WALTailRecordsDropped is the number of records in that dropped tail:
	// the first bad record, counted as one, and every whole valid record
	// found after it (behind a lost page). Zero when no byte was dropped.
	WALTailRecordsDropped int64
}

// Metrics returns the DB's current metrics.
func (d *DB) Metrics() Metrics {
	var m Metrics
	d.mu.Lock()
	v := d.vs.current
	for l := range numLevels {
		m.Levels[l] = LevelMetrics{NumFiles: len(v.levels[l]), Size: levelSize(v.levels[l])}
		m.DiskSize += m.Levels[l].Size
	}
	m.MemTableSize = int64(d.mem.Size())
	m.MemTableCount = 1 + len(d.imm)
	if d.memLog != nil {
		m.WALSize = d.memLog.w.Size()
	}
	for _, im := range d.imm {
		m.MemTableSize += int64(im.mem.Size())
		m.WALSize += im.log.w.Size()
	}
	m.DiskSize += m.WALSize
	m.Flushes = d.stats.flushes
	m.FlushBytes = d.stats.flushBytes
	m.Compactions = d.stats.compactions
	m.CompactionBytesRead = d.stats.compactBytesRead
	m.CompactionBytesWritten = d.stats.compactBytesWritten
	m.WriteStalls = d.stats.writeStalls
	m.Snapshots = len(d.snaps.m)
	m.WALTailBytesDropped = d.stats.walTailBytesDropped
	m.WALTailRecordsDropped = d.stats.walTailRecordsDropped
	d.mu.Unlock()
	m.BlockCacheHits, m.BlockCacheMisses, m.BlockCacheSize = d.blocks.Metrics()
	m.SeqNum = d.visibleSeq.Load()
	return m
}
