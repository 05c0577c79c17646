package lsmindex_test

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

var ctx = context.Background()

// modelOp applies one random write to x and to the model.
func modelOp(t *testing.T, r *rand.Rand, x *index.Index, u mailbricks.UserID, brute *indextest.Brute, pool []*index.Document, indexed *[]mailbricks.MessageID) {
	t.Helper()
	switch k := r.IntN(10); {
	case k < 5 || len(*indexed) == 0:
		n := 1 + r.IntN(20)
		batch := make([]*index.Document, 0, n)
		for range n {
			d := *pool[r.IntN(len(pool))]
			if r.IntN(3) == 0 && len(*indexed) > 0 {
				d.ID = (*indexed)[r.IntN(len(*indexed))] // a replacement
			} else {
				d.ID = mailbricks.NewMessageIDAt(d.Date)
				*indexed = append(*indexed, d.ID)
			}
			batch = append(batch, &d)
		}
		require.NoError(t, x.IndexBatch(ctx, u, batch))
		for _, d := range batch {
			brute.Add(d)
		}
	case k < 8:
		id := (*indexed)[r.IntN(len(*indexed))]
		require.NoError(t, x.Delete(ctx, u, id))
		brute.Delete(id)
	default:
		id := (*indexed)[r.IntN(len(*indexed))]
		v := pool[r.IntN(len(pool))].Values
		err := x.Update(ctx, u, id, v)
		if brute.Update(id, v) {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, index.ErrNotFound)
		}
	}
}

// TestCrash runs one random write per cycle and takes a crash image from
// another goroutine at a random moment: before, during or after the
// write. The reopened image must answer exactly like the model of every
// write acknowledged before the image (all earlier cycles' writes, and this
// cycle's if it had returned when the image was taken); a write in flight
// may be there entirely or not at all, never torn apart (its doc values,
// postings and deleted-doc markers go together): the image's documents
// must equal the live index's before or after the write, and when they
// equal the after state, every query must answer as the model.
//
// The small variant seals a chunk of doc values every 8 doc numbers and
// reseals after 4 overlay markers, so images are also taken across seals
// and reseals (separate batches after the write's own).
func TestCrash(t *testing.T) {
	t.Run("default", func(t *testing.T) { testCrash(t, 0, 0) })
	t.Run("small-chunks", func(t *testing.T) { testCrash(t, 8, 4) })
}

func testCrash(t *testing.T, chunk uint32, reseal int) {
	setChunking := func(b *lsmindex.Backend) {
		if chunk > 0 {
			lsmindex.SetChunking(b, chunk, reseal)
		}
	}
	cycles := 60
	if os.Getenv("MAILBRICKS_LONG") != "" {
		cycles = 1000
	}
	pool := indextest.RandomDocuments(5, 200)
	fs := vfs.NewCrashable()
	b, err := lsmindex.Open("db", &lsmindex.Options{FS: fs, PurgeAfter: 15})
	require.NoError(t, err)
	setChunking(b)
	x := index.New(b, &index.Options{Now: indextest.Now})
	defer x.Close()
	brute := indextest.NewBrute()
	var indexed []mailbricks.MessageID
	r := rand.New(rand.NewPCG(9, 9))
	const u = mailbricks.UserID("crash")
	queries := indextest.Queries(pool, 4, 30)
	docs := func(b index.Backend) map[mailbricks.MessageID]index.Values {
		m := map[mailbricks.MessageID]index.Values{}
		require.NoError(t, b.List(ctx, u, func(id mailbricks.MessageID, v index.Values) error { m[id] = v; return nil }))
		return m
	}
	var acked, inFlightIn, inFlightOut, docsChecked int
	for cycle := range cycles {
		before := docs(b)
		var (
			img        *vfs.CrashableFS
			ackedFirst bool
			opDone     atomic.Bool
			cloned     = make(chan struct{})
			spins      = r.IntN(3000)
		)
		go func() {
			defer close(cloned)
			for range spins {
				runtime.Gosched()
			}
			ackedFirst = opDone.Load()
			img = fs.CrashClone(vfs.CrashCloneOptions{Seed: int64(cycle), UnsyncedDataPercent: 50})
		}()
		modelOp(t, r, x, u, brute, pool, &indexed)
		opDone.Store(true)
		<-cloned
		after := docs(b)

		rb, err := lsmindex.Open("db", &lsmindex.Options{FS: img})
		require.NoError(t, err, "cycle %d: the crash image must reopen", cycle)
		setChunking(rb)
		rx := index.New(rb, &index.Options{Now: indextest.Now})
		got := docs(rb)
		switch {
		case assert.ObjectsAreEqual(after, got):
			indextest.Compare(t, rx, u, brute, queries)
			if !ackedFirst {
				inFlightIn++
			}
		case ackedFirst:
			require.Equal(t, after, got, "cycle %d: every write acknowledged before the image must be in it", cycle)
		default:
			require.Equal(t, before, got, "cycle %d: a write in flight must be in the image entirely or not at all", cycle)
			inFlightOut++
		}
		acked += cycle
		if ackedFirst {
			acked++
		}
		docsChecked += len(got)
		require.NoError(t, rx.Close())
	}
	t.Logf("%d crash images: %d acknowledged writes checked (cumulative), %d documents compared; writes in flight at the image: %d in it, %d not",
		cycles, acked, docsChecked, inFlightIn, inFlightOut)
}

// TestReopen checks that a reopened index continues where it stopped:
// doc numbers are not reused and deletions stay deleted.
func TestReopen(t *testing.T) {
	fs := vfs.NewMem()
	pool := indextest.RandomDocuments(6, 200)
	brute := indextest.NewBrute()
	var indexed []mailbricks.MessageID
	r := rand.New(rand.NewPCG(1, 1))
	const u = mailbricks.UserID("reopen")
	for round := range 4 {
		b, err := lsmindex.Open("db", &lsmindex.Options{FS: fs, NoSync: true, PurgeAfter: 20})
		require.NoError(t, err)
		x := index.New(b, &index.Options{Now: indextest.Now})
		indextest.Compare(t, x, u, brute, indextest.Queries(pool, uint64(round), 40))
		for range 30 {
			modelOp(t, r, x, u, brute, pool, &indexed)
		}
		indextest.Compare(t, x, u, brute, indextest.Queries(pool, uint64(round+10), 40))
		require.NoError(t, x.Close())
	}
}
