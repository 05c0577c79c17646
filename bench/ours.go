package main

import (
	"errors"
	"fmt"

	"github.com/mailbricks/mailbricks/lsm"
)

// oursEngine adapts the mailbricks lsm engine.
//
// Settings: 64 MiB memtable, 64 MiB block cache, the default S2 block
// compression and 10-bit bloom filters, WAL on.
type oursEngine struct {
	db *lsm.DB
}

func openOurs(dir string, o engineOptions) (engine, error) {
	db, err := lsm.Open(dir, &lsm.Options{
		MemTableSize: int(o.MemTableSize),
		CacheSize:    o.CacheSize,
	})
	if err != nil {
		return nil, err
	}
	return &oursEngine{db: db}, nil
}

func (e *oursEngine) Set(key, value []byte) error { return e.db.Set(key, value, lsm.NoSync) }

func (e *oursEngine) SetSync(key, value []byte) error { return e.db.Set(key, value, lsm.Sync) }

func (e *oursEngine) Get(key []byte) (bool, error) {
	v, err := e.db.Get(key)
	if errors.Is(err, lsm.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = v[len(v)-1]
	return true, nil
}

func (e *oursEngine) ScanPrefix(prefix []byte) (int, error) {
	it, err := e.db.NewPrefixIter(prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		sink += len(it.Key()) + len(it.Value())
		n++
	}
	return n, errors.Join(it.Error(), it.Close())
}

// Settle flushes the memtable and waits for the flush; compactions it
// triggers continue in the background.
func (e *oursEngine) Settle() error { return e.db.Flush() }

func (e *oursEngine) Close() error { return e.db.Close() }

func (e *oursEngine) CompactAll() error { return e.db.Compact(nil, nil) }

func (e *oursEngine) Describe() string {
	m := e.db.Metrics()
	return fmt.Sprintf("tables per level %s, %d compactions, %d write stalls", levelCounts(m.Levels[:], func(l lsm.LevelMetrics) int64 { return int64(l.NumFiles) }), m.Compactions, m.WriteStalls)
}
