package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// goleveldbEngine adapts github.com/syndtr/goleveldb.
//
// Settings: 64 MiB write buffer (memtable), 64 MiB block cache, 10-bit
// bloom filters (goleveldb's default is none), its default Snappy block
// compression and write merging, WAL on.
type goleveldbEngine struct {
	db *leveldb.DB
}

var goleveldbSync = &opt.WriteOptions{Sync: true}

func openGoleveldb(dir string, o engineOptions) (engine, error) {
	db, err := leveldb.OpenFile(dir, &opt.Options{
		WriteBuffer:        int(o.MemTableSize),
		BlockCacheCapacity: int(o.CacheSize),
		Filter:             filter.NewBloomFilter(10),
	})
	if err != nil {
		return nil, err
	}
	return &goleveldbEngine{db: db}, nil
}

func (e *goleveldbEngine) Set(key, value []byte) error { return e.db.Put(key, value, nil) }

func (e *goleveldbEngine) SetSync(key, value []byte) error {
	return e.db.Put(key, value, goleveldbSync)
}

func (e *goleveldbEngine) Get(key []byte) (bool, error) {
	v, err := e.db.Get(key, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_ = v[len(v)-1]
	return true, nil
}

func (e *goleveldbEngine) ScanPrefix(prefix []byte) (int, error) {
	it := e.db.NewIterator(util.BytesPrefix(prefix), nil)
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		sink += len(it.Key()) + len(it.Value())
		n++
	}
	it.Release()
	return n, it.Error()
}

// Settle does nothing: goleveldb has no public memtable flush.
func (e *goleveldbEngine) Settle() error { return nil }

func (e *goleveldbEngine) Close() error { return e.db.Close() }

func (e *goleveldbEngine) CompactAll() error { return e.db.CompactRange(util.Range{}) }

func (e *goleveldbEngine) Describe() string {
	counts := make([]int64, 7) // goleveldb's default number of levels
	for l := range counts {
		v, err := e.db.GetProperty(fmt.Sprintf("leveldb.num-files-at-level%d", l))
		if err != nil {
			return err.Error()
		}
		counts[l], _ = strconv.ParseInt(v, 10, 64)
	}
	return "tables per level " + levelCounts(counts, func(c int64) int64 { return c })
}
