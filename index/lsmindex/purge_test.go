package lsmindex

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// TestPurge deletes documents, purges, and checks that no postings value
// still names a deleted document, that no deleted marker remains, and that
// searches are unchanged.
func TestPurge(t *testing.T) {
	ctx := context.Background()
	b, err := Open("db", &Options{FS: vfs.NewMem(), NoSync: true, PurgeAfter: -1})
	require.NoError(t, err)
	x := index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	const u = mailbricks.UserID("purge")
	docs := indextest.RandomDocuments(3, 300)
	brute := indextest.NewBrute()
	for i := 0; i < len(docs); i += 100 {
		require.NoError(t, x.IndexBatch(ctx, u, docs[i:i+100]))
	}
	for _, d := range docs {
		brute.Add(d)
	}
	for i := 0; i < len(docs); i += 3 {
		require.NoError(t, x.Delete(ctx, u, docs[i].ID))
		brute.Delete(docs[i].ID)
	}
	s := b.users[u]
	dead := map[uint32]bool{}
	for _, n := range s.deleted {
		dead[n] = true
	}
	require.Len(t, dead, 100)
	queries := indextest.Queries(docs, 8, 100)
	indextest.Compare(t, x, u, brute, queries)

	require.NoError(t, b.Purge(ctx, u))
	require.Empty(t, s.deleted)
	it, err := b.db.NewPrefixIter(tableKey(u, tagPostings))
	require.NoError(t, err)
	var pl plist
	keys := 0
	for ok := it.First(); ok; ok = it.Next() {
		keys++
		require.NoError(t, decodePostings(it.Value(), true, &pl))
		for _, d := range pl.docs {
			require.False(t, dead[d], "postings of %q still name deleted doc %d", it.Key(), d)
		}
	}
	require.NoError(t, it.Close())
	require.NotZero(t, keys)
	it, err = b.db.NewPrefixIter(tableKey(u, tagDeleted))
	require.NoError(t, err)
	require.False(t, it.First(), "no deleted marker may remain after a purge")
	require.NoError(t, it.Close())
	indextest.Compare(t, x, u, brute, queries)

	// New documents after a purge still append in order.
	more := indextest.RandomDocuments(4, 50)
	require.NoError(t, x.IndexBatch(ctx, u, more))
	for _, d := range more {
		brute.Add(d)
	}
	indextest.Compare(t, x, u, brute, indextest.Queries(append(docs, more...), 9, 100))
}
