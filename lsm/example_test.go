package lsm_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func ExampleOpen() {
	// vfs.NewMem keeps the DB in memory; leave FS unset for the disk.
	db, err := lsm.Open("mail", &lsm.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	if err := db.Set([]byte("user/alice/subject"), []byte("hello"), lsm.Sync); err != nil {
		log.Fatal(err)
	}
	v, err := db.Get([]byte("user/alice/subject"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)

	_, err = db.Get([]byte("user/bob/subject"))
	fmt.Println(errors.Is(err, lsm.ErrNotFound))
	// Output:
	// hello
	// true
}

func ExampleDB_NewPrefixIter() {
	db, err := lsm.Open("mail", &lsm.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, k := range []string{"user/alice/1", "user/alice/2", "user/alicia/1", "user/bob/1"} {
		if err := db.Set([]byte(k), []byte("msg"), nil); err != nil {
			log.Fatal(err)
		}
	}

	it, err := db.NewPrefixIter([]byte("user/alice/"))
	if err != nil {
		log.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Printf("%s\n", it.Key())
	}
	if err := it.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// user/alice/1
	// user/alice/2
}

func ExampleDB_Merge() {
	// A counter: operands are little-endian int64 deltas, added without
	// reading the current value first. Addition is associative, as a Merger
	// must be.
	counter := &lsm.Merger{
		Name: "example.counter",
		Merge: func(key, older, newer []byte) ([]byte, error) {
			if len(older) != 8 || len(newer) != 8 {
				return nil, fmt.Errorf("counter %q: not an int64", key)
			}
			sum := int64(binary.LittleEndian.Uint64(older)) + int64(binary.LittleEndian.Uint64(newer))
			return binary.LittleEndian.AppendUint64(nil, uint64(sum)), nil
		},
	}
	db, err := lsm.Open("counters", &lsm.Options{FS: vfs.NewMem(), Merger: counter})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	for _, delta := range []int64{1, 1, 5, -2} {
		d := binary.LittleEndian.AppendUint64(nil, uint64(delta))
		if err := db.Merge([]byte("unread/alice"), d, nil); err != nil {
			log.Fatal(err)
		}
	}
	v, err := db.Get([]byte("unread/alice"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(int64(binary.LittleEndian.Uint64(v)))
	// Output: 5
}

func ExampleDB_NewSnapshot() {
	db, err := lsm.Open("mail", &lsm.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.Set([]byte("flags"), []byte("unseen"), nil); err != nil {
		log.Fatal(err)
	}

	snap := db.NewSnapshot()
	defer snap.Close()
	if err := db.Set([]byte("flags"), []byte("seen"), nil); err != nil {
		log.Fatal(err)
	}

	before, err := snap.Get([]byte("flags"))
	if err != nil {
		log.Fatal(err)
	}
	now, err := db.Get([]byte("flags"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("snapshot: %s, now: %s\n", before, now)
	// Output: snapshot: unseen, now: seen
}

func ExampleBatch() {
	db, err := lsm.Open("mail", &lsm.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.Set([]byte("inbox/1"), []byte("old message"), nil); err != nil {
		log.Fatal(err)
	}

	// Move message 1 from the inbox to the archive: both writes or neither,
	// even across a crash.
	b := db.NewBatch()
	b.Delete([]byte("inbox/1"))
	b.Set([]byte("archive/1"), []byte("old message"))
	if err := b.Commit(lsm.Sync); err != nil {
		log.Fatal(err)
	}

	it, err := db.NewIter(nil)
	if err != nil {
		log.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Printf("%s = %s\n", it.Key(), it.Value())
	}
	if err := it.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: archive/1 = old message
}
