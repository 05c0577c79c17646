package main

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// badgerEngine adapts github.com/dgraph-io/badger/v4.
//
// Settings: badger's defaults (values up to 1 MiB stay in the LSM tree,
// Snappy block compression, 10-bit bloom filters, conflict detection on)
// with a 64 MiB memtable, a 64 MiB block cache, logging off, and
// SyncWrites only for the DBs of the sync workloads, since badger decides
// syncing per DB rather than per write. Each write is one Update
// transaction.
type badgerEngine struct {
	db   *badger.DB
	sync bool
}

func openBadger(dir string, o engineOptions) (engine, error) {
	opts := badger.DefaultOptions(dir).
		WithMemTableSize(o.MemTableSize).
		WithBlockCacheSize(o.CacheSize).
		WithSyncWrites(o.SyncWrites).
		WithLogger(nil)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, err
	}
	return &badgerEngine{db: db, sync: o.SyncWrites}, nil
}

func (e *badgerEngine) set(key, value []byte) error {
	return e.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

func (e *badgerEngine) Set(key, value []byte) error {
	if e.sync {
		return errors.New("badger: Set on a DB opened with SyncWrites")
	}
	return e.set(key, value)
}

func (e *badgerEngine) SetSync(key, value []byte) error {
	if !e.sync {
		return errors.New("badger: SetSync on a DB opened without SyncWrites")
	}
	return e.set(key, value)
}

func (e *badgerEngine) Get(key []byte) (bool, error) {
	found := false
	err := e.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error {
			_ = v[len(v)-1]
			return nil
		})
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return found, err
}

func (e *badgerEngine) ScanPrefix(prefix []byte) (int, error) {
	n := 0
	err := e.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		// Values live in the tree, so reading them inline beats the
		// prefetching goroutines meant for value-log values.
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				sink += len(item.Key()) + len(v)
				return nil
			})
			if err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Settle does nothing: badger has no public memtable flush.
func (e *badgerEngine) Settle() error { return nil }

func (e *badgerEngine) Close() error { return e.db.Close() }

// CompactAll compacts every level into the last one. Badger cannot flush
// its memtables short of closing, so recent writes stay there.
func (e *badgerEngine) CompactAll() error { return e.db.Flatten(2) }

func (e *badgerEngine) Describe() string {
	levels := e.db.Levels()
	return fmt.Sprintf("tables per level %s", levelCounts(levels, func(l badger.LevelInfo) int64 { return int64(l.NumTables) }))
}
