package embedded

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
)

// BenchmarkSharedDB measures the choice the package doc states: blocks
// in separate lsm databases versus one shared database. Each operation is
// what an indexed append commits: a mailbox-shaped batch (a 1 KiB record
// written under three keys and a counter merge) and an index-shaped batch
// (40 postings merges and a doc record), both synced, from parallel
// writers. In "shared" both batches go to one database, in "separate" each
// to its own. Run with -cpu 8 (writers) on a real disk:
//
//	go test ./embedded -run - -bench SharedDB -cpu 8 -benchtime 5s
func BenchmarkSharedDB(b *testing.B) {
	concat := &lsm.Merger{Name: "bench.concat", Merge: func(_, older, newer []byte) ([]byte, error) {
		return append(append([]byte{}, older...), newer...), nil
	}}
	open := func(b *testing.B, name string) *lsm.DB {
		db, err := lsm.Open(b.TempDir()+"/"+name, &lsm.Options{Merger: concat})
		require.NoError(b, err)
		b.Cleanup(func() { _ = db.Close() })
		return db
	}
	var seq atomic.Uint64
	op := func(b *testing.B, mdb, xdb *lsm.DB) {
		n := seq.Add(1)
		var id [8]byte
		binary.BigEndian.PutUint64(id[:], n)
		rec := make([]byte, 1024)
		mb := mdb.NewBatch()
		for _, t := range []byte{'m', 'u', 'x'} {
			mb.Set(fmt.Appendf(nil, "M\x05alice%c%s", t, id), rec)
		}
		mb.Merge([]byte("M\x05alicec"), []byte{1})
		require.NoError(b, mdb.Apply(mb, lsm.Sync))
		xb := xdb.NewBatch()
		for i := range 40 {
			xb.Merge(fmt.Appendf(nil, "X\x05alice\x00P%03d", (int(n)*7+i)%500), id[:])
		}
		xb.Set(fmt.Appendf(nil, "X\x05alice\x00D%s", id), rec[:100])
		require.NoError(b, xdb.Apply(xb, lsm.Sync))
	}
	b.Run("separate", func(b *testing.B) {
		mdb, xdb := open(b, "mailbox"), open(b, "index")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op(b, mdb, xdb)
			}
		})
	})
	b.Run("shared", func(b *testing.B) {
		db := open(b, "shared")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op(b, db, db)
			}
		})
	})
}
