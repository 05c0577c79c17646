package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// pebbleEngine adapts github.com/cockroachdb/pebble/v2.
//
// Settings: 64 MiB memtable, 10-bit bloom filters on every level (pebble's
// default is none), its default Snappy block compression, WAL on, logging
// off, and a 192 MiB cache. Pebble charges its memtables to the block cache,
// so the cache is the 64 MiB for blocks plus room for two full memtables
// (the mutable one and one being flushed). With a 64 MiB cache the
// memtables take all of it and no block is ever cached, which made random
// gets several times slower than pebble really is.
type pebbleEngine struct {
	db *pebble.DB
}

func openPebble(dir string, o engineOptions) (engine, error) {
	opts := &pebble.Options{
		MemTableSize: uint64(o.MemTableSize),
		CacheSize:    o.CacheSize + 2*o.MemTableSize,
		Logger:       quietLogger{},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return &pebbleEngine{db: db}, nil
}

func (e *pebbleEngine) Set(key, value []byte) error { return e.db.Set(key, value, pebble.NoSync) }

func (e *pebbleEngine) SetSync(key, value []byte) error { return e.db.Set(key, value, pebble.Sync) }

func (e *pebbleEngine) Get(key []byte) (bool, error) {
	v, closer, err := e.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = v[len(v)-1]
	return true, closer.Close()
}

func (e *pebbleEngine) ScanPrefix(prefix []byte) (int, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return n, err
		}
		sink += len(it.Key()) + len(v)
		n++
	}
	return n, errors.Join(it.Error(), it.Close())
}

// Settle flushes the memtable and waits for the flush; compactions it
// triggers continue in the background.
func (e *pebbleEngine) Settle() error { return e.db.Flush() }

func (e *pebbleEngine) Close() error { return e.db.Close() }

// quietLogger drops pebble's informational messages and keeps errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

func (e *pebbleEngine) CompactAll() error {
	if err := e.db.Flush(); err != nil {
		return err
	}
	return e.db.Compact(context.Background(), []byte{}, bytes.Repeat([]byte{0xff}, 64), true)
}

func (e *pebbleEngine) Describe() string {
	m := e.db.Metrics()
	return fmt.Sprintf("tables per level %s, L0 sublevels %d, %d compactions (%d running, debt %d MiB)",
		levelCounts(m.Levels[:], func(l pebble.LevelMetrics) int64 { return l.TablesCount }),
		m.Levels[0].Sublevels, m.Compact.Count, m.Compact.NumInProgress, m.Compact.EstimatedDebt>>20)
}
