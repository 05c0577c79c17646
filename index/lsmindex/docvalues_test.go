package lsmindex_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// TestViewsDecodeAsChunks requires every document read one at a time from
// a chunk's view to equal the chunk decoded whole: ID, dates, sent date,
// size, UID, MODSEQ, folder, thread and keywords (random documents have
// all of them, some empty).
func TestViewsDecodeAsChunks(t *testing.T) {
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	u := mailbricks.UserID("views@example.com")
	docs := indextest.RandomDocuments(21, 700)
	require.NoError(t, b.Index(context.Background(), u, docs))
	require.NoError(t, b.Delete(context.Background(), u, []mailbricks.MessageID{docs[5].ID, docs[300].ID}))
	require.NoError(t, b.Close())
	b = openSmall(t, fs, 0)
	defer b.Close()
	n, err := lsmindex.CheckViews(b, u)
	require.NoError(t, err)
	require.Equal(t, 700/16*16-2, n)
}

// TestViewsCharged requires a search whose hits lie in chunks not decoded
// yet to read them through views, whose bytes the memory budget is
// charged, and answers to stay right when later calls decode the chunks
// whole (a folder filter) and when the budget unloads the user.
func TestViewsCharged(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	u := mailbricks.UserID("charged@example.com")
	docs := indextest.RandomDocuments(8, 500)
	x := index.New(b, &index.Options{Now: indextest.Now})
	require.NoError(t, x.IndexBatch(ctx, u, docs))
	require.NoError(t, x.Close())
	brute := indextest.NewBrute()
	for _, d := range docs {
		brute.Add(d)
	}

	b = openSmall(t, fs, 0)
	x = index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	_, err := x.Search(ctx, u, index.Text(index.FieldAny, "nosuchwordanywhere"), nil)
	require.NoError(t, err)
	before := b.CacheBytes()
	// The load reads IDs only where dates tie (the order sorts by
	// them).
	views0, bytes0 := lsmindex.Views(b, u)
	res, err := x.Search(ctx, u, index.All(), &index.SearchOptions{Limit: 40, NoSnippets: true})
	require.NoError(t, err)
	require.Len(t, res.Hits, 40)
	views, bytes := lsmindex.Views(b, u)
	require.Greater(t, views, views0, "the hits were read through views")
	require.GreaterOrEqual(t, b.CacheBytes()-before, bytes-bytes0, "every byte of the views is charged")
	for _, h := range res.Hits {
		v, err := x.Get(ctx, u, h.ID)
		require.NoError(t, err)
		require.Equal(t, v, h.Values, "a hit read from a view has the values Get reads")
	}
	indextest.Compare(t, x, u, brute, indextest.Queries(docs, 3, 120))
	views, _ = lsmindex.Views(b, u)
	require.Zero(t, views, "the filters decoded every chunk, replacing the views")

	// A budget of one byte unloads the user after every call.
	tiny := lsmindex.New(b.DB(), &lsmindex.Options{MemoryBudget: 1})
	lsmindex.SetChunking(tiny, 16, 5)
	y := index.New(tiny, &index.Options{Now: indextest.Now})
	res2, err := y.Search(ctx, u, index.All(), &index.SearchOptions{Limit: 40, NoSnippets: true})
	require.NoError(t, err)
	require.Equal(t, res.Hits, res2.Hits)
	require.Zero(t, tiny.CachedUsers())
	require.Zero(t, tiny.CacheBytes())
	require.NoError(t, tiny.Close())
}

// TestViewsConcurrent runs searches of a cold user from several
// goroutines, so views of the same chunks are built and read at once,
// while a writer updates documents (decoding their chunks whole and
// replacing the views); run with -race. Every search must answer as the
// reference does for the state before or after each update, which the
// final comparison checks for the settled state.
func TestViewsConcurrent(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	u := mailbricks.UserID("concurrent@example.com")
	docs := indextest.RandomDocuments(13, 400)
	require.NoError(t, b.Index(ctx, u, docs))
	require.NoError(t, b.Close())
	brute := indextest.NewBrute()
	for _, d := range docs {
		brute.Add(d)
	}

	b = openSmall(t, fs, 0)
	x := index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	errs := make(chan error, 5)
	for g := range 4 {
		go func() {
			for i := range 30 {
				res, err := x.Search(ctx, u, index.All(), &index.SearchOptions{Limit: 50, NoSnippets: true, Sort: index.Sort(i % 2)})
				if err == nil && len(res.Hits) != 50 {
					err = fmt.Errorf("goroutine %d: %d hits", g, len(res.Hits))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	go func() {
		for i := range 20 {
			d := docs[i*17]
			v := d.Values
			v.Flags ^= index.FlagFlagged
			if err := x.Update(ctx, u, d.ID, v); err != nil {
				errs <- err
				return
			}
			brute.Update(d.ID, v)
		}
		errs <- nil
	}()
	for range 5 {
		require.NoError(t, <-errs)
	}
	indextest.Compare(t, x, u, brute, indextest.Queries(docs, 5, 60))
}

// TestChunkDates requires dates whose deltas take one to ten bytes (zero
// times, negative and huge steps among them) to load from the chunks as
// they were written.
func TestChunkDates(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	u := mailbricks.UserID("dates@example.com")
	steps := []int64{0, 1, -1, 63, -64, 64, 300, -300, 8191, 8192, 1 << 20, -(1 << 20), 1 << 21, 1 << 35, -(1 << 40)}
	want := map[mailbricks.MessageID]int64{}
	var docs []*index.Document
	d := int64(1_000_000_000)
	for i := range 160 {
		if i%23 == 7 {
			d = 0 // the zero time
		} else {
			d += steps[i%len(steps)] * int64(1+i/len(steps))
		}
		doc := indextest.RandomDocuments(uint64(i), 1)[0]
		doc.Date = index.TimeOrZero(d)
		docs = append(docs, doc)
		want[doc.ID] = index.UnixOrZero(doc.Date)
	}
	require.NoError(t, b.Index(ctx, u, docs))
	require.NoError(t, b.Close())
	b = openSmall(t, fs, 0)
	defer b.Close()
	require.Equal(t, uint32(160/16), lsmindex.Sealed(b, u))
	n := 0
	require.NoError(t, b.List(ctx, u, func(id mailbricks.MessageID, v index.Values) error {
		n++
		require.Equal(t, want[id], index.UnixOrZero(v.Date), "doc %v", id)
		return nil
	}))
	require.Equal(t, len(docs), n)
}

// TestViewCorrupt damages a chunk's 'R' value (truncated, bitmap bits
// flipped, bytes changed) and requires searches whose hits read it to
// return an error or an answer, never to panic.
func TestViewCorrupt(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b := openSmall(t, fs, 0)
	u := mailbricks.UserID("corrupt@example.com")
	require.NoError(t, b.Index(ctx, u, indextest.RandomDocuments(17, 64)))
	key := append(append([]byte(u), 0, 'R'), 0, 0, 0, 1)
	orig, err := b.DB().Get(key)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	damage := []func([]byte) []byte{
		func(v []byte) []byte { return v[:len(v)/2] },
		func(v []byte) []byte { return v[:len(v)-1] },
		func(v []byte) []byte { v[2] ^= 0x01; return v },
		func(v []byte) []byte { v[3] ^= 0x80; return v },
		func(v []byte) []byte { v[len(v)-3] = 0xff; return v },
		func(v []byte) []byte { return append(v, 0x80) },
	}
	errs := 0
	for i, f := range damage {
		b = openSmall(t, fs, 0)
		require.NoError(t, b.DB().Set(key, f(append([]byte(nil), orig...)), nil))
		x := index.New(b, &index.Options{Now: indextest.Now})
		_, err := x.Search(ctx, u, index.All(), &index.SearchOptions{Limit: 64, NoSnippets: true})
		if err != nil {
			errs++
			require.ErrorContains(t, err, "corrupt", "damage %d", i)
		}
		require.NoError(t, b.DB().Set(key, orig, nil))
		require.NoError(t, x.Close())
	}
	require.GreaterOrEqual(t, errs, 4, "most damage is detected")
}
