package lsmindex_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// openSmall opens a backend with tiny chunks and the given memory budget,
// so sealing, overlays, reseals and evictions all happen in small tests.
func openSmall(t *testing.T, fs vfs.FS, budget int64) *lsmindex.Backend {
	b, err := lsmindex.Open("db", &lsmindex.Options{FS: fs, NoSync: true, MemoryBudget: budget})
	require.NoError(t, err)
	lsmindex.SetChunking(b, 16, 5)
	return b
}

// TestConformanceEvictEverything runs the conformance suite with a budget
// of one byte, so every user is unloaded after every call and loaded
// again from its chunks, overlays and doc records on the next.
func TestConformanceEvictEverything(t *testing.T) {
	indextest.Run(t, func(t *testing.T) index.Backend {
		b := openSmall(t, vfs.NewMem(), 1)
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

// TestGoldenEvictEverything is TestGolden with every call loading the
// user again.
func TestGoldenEvictEverything(t *testing.T) {
	docs := indextest.CorpusDocuments(t, 2000)
	b := openSmall(t, vfs.NewMem(), 1)
	x := index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	indextest.Golden(t, x, indextest.NewBrute(), docs, 5, 200)
	require.Equal(t, 0, b.CachedUsers())
}

// TestMemoryBudget fills many users and requires the cached bytes to stay
// within the budget while each user's answers stay right. Without
// eviction the cache grows with every user.
func TestMemoryBudget(t *testing.T) {
	const budget = 64 << 10
	ctx := context.Background()
	b := openSmall(t, vfs.NewMem(), budget)
	x := index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	const users, per = 200, 30
	docs := indextest.RandomDocuments(7, users*per)
	brutes := make([]*indextest.Brute, users)
	user := func(i int) mailbricks.UserID { return mailbricks.UserID(fmt.Sprintf("user%03d@example.com", i)) }
	peak := int64(0)
	for i := range users {
		brutes[i] = indextest.NewBrute()
		batch := docs[i*per : (i+1)*per]
		require.NoError(t, x.IndexBatch(ctx, user(i), batch))
		for _, d := range batch {
			brutes[i].Add(d)
		}
		// Touch an earlier user too, so the LRU order is not just
		// insertion order.
		j := rand.IntN(i + 1)
		_, err := x.Search(ctx, user(j), index.All(), nil)
		require.NoError(t, err)
		peak = max(peak, b.CacheBytes())
		require.LessOrEqual(t, b.CacheBytes(), int64(budget), "after user %d", i)
	}
	require.Less(t, b.CachedUsers(), users, "some users were evicted")
	t.Logf("%d users × %d docs: peak cache %d bytes (budget %d), %d users cached", users, per, peak, budget, b.CachedUsers())
	r := rand.New(rand.NewPCG(1, 1))
	for i := range users {
		// Change some documents of every user, then compare every
		// user with its reference.
		d := docs[i*per+r.IntN(per)]
		v := d.Values
		v.Flags ^= index.FlagSeen
		require.NoError(t, x.Update(ctx, user(i), d.ID, v))
		require.True(t, brutes[i].Update(d.ID, v))
		gone := docs[i*per+r.IntN(per)]
		require.NoError(t, x.Delete(ctx, user(i), gone.ID))
		brutes[i].Delete(gone.ID)
		require.LessOrEqual(t, b.CacheBytes(), int64(budget))
	}
	for i := range users {
		indextest.Compare(t, x, user(i), brutes[i], indextest.Queries(docs[i*per:(i+1)*per], uint64(i), 10))
	}
}

// TestColdStartChunks writes, updates, deletes and replaces documents
// across many sealed chunks (with reseals), reopens the index and
// requires the same answers, loaded from the chunks.
func TestColdStartChunks(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	x := index.New(b, &index.Options{Now: indextest.Now})
	docs := indextest.RandomDocuments(11, 600)
	brute := indextest.NewBrute()
	u := mailbricks.UserID("cold@example.com")
	for i := 0; i < len(docs); i += 37 {
		batch := docs[i:min(i+37, len(docs))]
		require.NoError(t, x.IndexBatch(ctx, u, batch))
		for _, d := range batch {
			brute.Add(d)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	gone := map[mailbricks.MessageID]bool{}
	for range 120 {
		d := docs[r.IntN(len(docs))]
		if gone[d.ID] {
			continue
		}
		switch r.IntN(3) {
		case 0:
			v := d.Values
			v.Flags ^= index.FlagSeen | index.FlagFlagged
			v.Keywords = append(v.Keywords, fmt.Sprintf("kw%d", r.IntN(5)))
			v.Folder = fmt.Sprintf("F%d", r.IntN(3))
			require.NoError(t, x.Update(ctx, u, d.ID, v))
			require.True(t, brute.Update(d.ID, v))
		case 1:
			require.NoError(t, x.Delete(ctx, u, d.ID))
			brute.Delete(d.ID)
			gone[d.ID] = true
		case 2:
			c := *d
			c.Subject = "replaced " + c.Subject
			require.NoError(t, x.Index(ctx, u, &c))
			brute.Delete(d.ID)
			brute.Add(&c)
		}
	}
	queries := indextest.Queries(docs, 9, 150)
	indextest.Compare(t, x, u, brute, queries)
	require.NoError(t, x.Close())

	b = openSmall(t, fs, 0)
	x = index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	require.GreaterOrEqual(t, lsmindex.Sealed(b, u), uint32(600/16))
	indextest.Compare(t, x, u, brute, queries)
	n := 0
	require.NoError(t, x.Backend().List(ctx, u, func(mailbricks.MessageID, index.Values) error { n++; return nil }))
	require.Equal(t, brute.Len(), n)
}

// TestLegacyMigration removes the chunks and the layout version, as an
// index written before them has, and requires the reopened index to
// answer the same and to write them on its first load.
func TestLegacyMigration(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	x := index.New(b, &index.Options{Now: indextest.Now})
	docs := indextest.RandomDocuments(5, 200)
	brute := indextest.NewBrute()
	u := mailbricks.UserID("old@example.com")
	require.NoError(t, x.IndexBatch(ctx, u, docs))
	for _, d := range docs {
		brute.Add(d)
	}
	p := append([]byte(u), 0)
	db := b.DB()
	for _, tag := range []byte{'C', 'O', 'V'} {
		k := append(append([]byte{}, p...), tag)
		require.NoError(t, db.DeleteRange(k, append(k, 0xff), nil))
	}
	require.NoError(t, x.Close())

	b = openSmall(t, fs, 0)
	x = index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	queries := indextest.Queries(docs, 2, 100)
	indextest.Compare(t, x, u, brute, queries)
	_, err := b.DB().Get(append(append([]byte{}, p...), 'V'))
	require.NoError(t, err, "the load migrated the user")
	require.Equal(t, uint32(200/16), lsmindex.Sealed(b, u))
}

// TestLayoutV2Migration rewrites a user's chunks in layout version 2 (one
// 'C' value with the IDs and every column) and requires the reopened
// index to answer the same, to migrate the user to version 3 ('C' values
// with the live set, dates and flags, 'R' values with the rest) on its
// first load, and to answer the same from them.
func TestLayoutV2Migration(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	x := index.New(b, &index.Options{Now: indextest.Now})
	docs := indextest.RandomDocuments(7, 300)
	brute := indextest.NewBrute()
	u := mailbricks.UserID("v2@example.com")
	require.NoError(t, x.IndexBatch(ctx, u, docs))
	for _, d := range docs {
		brute.Add(d)
	}
	// Two overlays (fewer than a reseal's 5) stay across the migration.
	v := docs[3].Values
	v.Flags ^= index.FlagSeen
	require.NoError(t, x.Update(ctx, u, docs[3].ID, v))
	require.True(t, brute.Update(docs[3].ID, v))
	require.NoError(t, x.Delete(ctx, u, docs[40].ID))
	brute.Delete(docs[40].ID)

	p := append([]byte(u), 0)
	key := func(tag byte, c uint32) []byte {
		return binary.BigEndian.AppendUint32(append(append([]byte{}, p...), tag), c)
	}
	db := b.DB()
	for c := uint32(0); ; c++ {
		hot, err := db.Get(key('C', c))
		if errors.Is(err, lsm.ErrNotFound) {
			require.Equal(t, uint32(300/16), c)
			break
		}
		require.NoError(t, err)
		rest, err := db.Get(key('R', c))
		require.NoError(t, err)
		require.Equal(t, byte(2), hot[0])
		require.Equal(t, byte(1), rest[0])
		n, k := binary.Uvarint(hot[1:])
		head := 1 + k + int(n+7)/8
		live := 0
		for _, x := range hot[1+k : head] {
			live += bits.OnesCount8(x)
		}
		old := append([]byte{1}, hot[1:head]...)
		old = append(old, rest[head:head+16*live]...) // IDs
		old = append(old, hot[head:]...)              // dates, flags
		old = append(old, rest[head+16*live:]...)     // the rest
		require.NoError(t, db.Set(key('C', c), old, nil))
		require.NoError(t, db.Delete(key('R', c), nil))
	}
	require.NoError(t, db.Set(append(append([]byte{}, p...), 'V'), []byte{2}, nil))
	require.NoError(t, x.Close())

	queries := indextest.Queries(docs, 4, 100)
	for range 2 {
		b = openSmall(t, fs, 0)
		x = index.New(b, &index.Options{Now: indextest.Now})
		indextest.Compare(t, x, u, brute, queries)
		ver, err := b.DB().Get(append(append([]byte{}, p...), 'V'))
		require.NoError(t, err)
		require.Equal(t, []byte{3}, ver, "the load migrated the user")
		hot, err := b.DB().Get(key('C', 0))
		require.NoError(t, err)
		require.Equal(t, byte(2), hot[0])
		_, err = b.DB().Get(key('R', 0))
		require.NoError(t, err)
		require.Equal(t, uint32(300/16), lsmindex.Sealed(b, u))
		n := 0
		require.NoError(t, b.List(ctx, u, func(mailbricks.MessageID, index.Values) error { n++; return nil }))
		require.Equal(t, brute.Len(), n)
		require.NoError(t, x.Close())
	}
}

// TestSmallUserCost appends documents one at a time, as a mailbox does,
// and requires a small user to cost memory in proportion to its
// documents, not a whole chunk of doc numbers.
func TestSmallUserCost(t *testing.T) {
	b, err := lsmindex.Open("db", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true})
	require.NoError(t, err)
	defer b.Close()
	ctx := context.Background()
	require.NoError(t, b.Index(ctx, "u", nil), "an empty batch is a no-op")
	docs := indextest.RandomDocuments(1, 100)
	for _, d := range docs {
		require.NoError(t, b.Index(ctx, "u", []*index.Document{d}))
	}
	require.Less(t, b.CacheBytes(), int64(100*500), "about 300 bytes a document")
}

// TestLSMOptions passes engine options through: tiny memtables make many
// tables and MaxOpenFiles 2 makes the table cache close and reopen them
// under the queries, whose answers must not change.
func TestLSMOptions(t *testing.T) {
	docs := indextest.CorpusDocuments(t, 1500)
	b, err := lsmindex.Open("db", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true, MemTableSize: 64 << 10,
		LSM: &lsm.Options{MaxOpenFiles: 2, MemTableSize: 1 << 30}})
	require.NoError(t, err)
	x := index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	indextest.Golden(t, x, indextest.NewBrute(), docs, 8, 150)
	require.GreaterOrEqual(t, b.DB().Metrics().Flushes, int64(2), "MemTableSize overrides LSM's (1 GiB would flush nothing)")
}
