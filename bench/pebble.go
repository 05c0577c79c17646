package main

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// pebbleEngine adapts github.com/cockroachdb/pebble/v2.
//
// Settings: 64 MiB memtable, 64 MiB block cache, 10-bit bloom filters on
// every level (pebble's default is none), its default Snappy block
// compression, WAL on, logging off.
type pebbleEngine struct {
	db *pebble.DB
}

func openPebble(dir string, o engineOptions) (engine, error) {
	opts := &pebble.Options{
		MemTableSize: uint64(o.MemTableSize),
		CacheSize:    o.CacheSize,
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
