package lsmindex

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// TestAnalyzerVersion checks that a user indexed by another analyzer
// version (here: version 1, which recorded none, and a future version 3)
// is reported stale by Search, with writes still accepted, until a
// Reindex rebuilds the user; other users are unaffected.
func TestAnalyzerVersion(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	db, err := lsm.Open("db", &lsm.Options{FS: fs, Merger: Merger})
	require.NoError(t, err)
	defer db.Close()
	const old, cur = mailbricks.UserID("old"), mailbricks.UserID("current")
	docs := indextest.RandomDocuments(1, 20)
	src := index.SourceFunc(func(_ context.Context, _ mailbricks.UserID, fn func(*index.Document) error) error {
		for _, d := range docs {
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	})
	x := index.New(New(db, &Options{NoSync: true}), &index.Options{Now: indextest.Now})
	require.NoError(t, x.IndexBatch(ctx, old, docs))
	require.NoError(t, x.IndexBatch(ctx, cur, docs))
	v, err := db.Get(tableKey(cur, tagAnalyzer))
	require.NoError(t, err, "the first documents record the analyzer version")
	n, _ := binary.Uvarint(v)
	require.EqualValues(t, index.AnalyzerVersion, n)

	for _, setup := range []struct {
		name string
		mod  func()
	}{
		{"version 1, unrecorded", func() { require.NoError(t, db.Delete(tableKey(old, tagAnalyzer), lsm.Sync)) }},
		{"another version", func() {
			require.NoError(t, db.Set(tableKey(old, tagAnalyzer), binary.AppendUvarint(nil, index.AnalyzerVersion+1), lsm.Sync))
		}},
	} {
		setup.mod()
		// A new Backend on the same DB loads the users afresh.
		x := index.New(New(db, &Options{NoSync: true}), &index.Options{Now: indextest.Now})
		_, err := x.SearchString(ctx, old, "", nil)
		require.ErrorIs(t, err, index.ErrStale, "%s: Search of a user indexed by another analyzer must fail with ErrStale", setup.name)
		_, err = x.SearchString(ctx, cur, "", nil)
		require.NoError(t, err, "%s: other users are not stale", setup.name)
		require.NoError(t, x.Index(ctx, old, indextest.RandomDocuments(2, 1)[0]), "%s: writes to a stale user succeed", setup.name)
		_, err = x.SearchString(ctx, old, "", nil)
		require.ErrorIs(t, err, index.ErrStale, "%s: a write does not make a stale user current", setup.name)
		got, err := x.Reindex(ctx, old, src)
		require.NoError(t, err)
		require.Equal(t, len(docs), got)
		res, err := x.SearchString(ctx, old, "", &index.SearchOptions{Limit: 100})
		require.NoError(t, err, "%s: Reindex makes the user current", setup.name)
		require.Equal(t, len(docs), res.Total)
		// And it stays current after a reload.
		x = index.New(New(db, &Options{NoSync: true}), &index.Options{Now: indextest.Now})
		_, err = x.SearchString(ctx, old, "", nil)
		require.NoError(t, err, "%s: the rebuilt user is current after a reload", setup.name)
	}
}
