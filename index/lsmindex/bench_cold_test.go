package lsmindex_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/lsmindex"
)

// rareIndex indexes the corpus reps times over (as the bench suite
// expands it, dates increasing with the doc number) and returns the
// backend and words found in 2 to 10 of the corpus bodies.
func rareIndex(b *testing.B, reps int) (*lsmindex.Backend, *index.Index, []string) {
	docs := indextest.CorpusDocuments(b, 0)
	be, x := memIndex(b)
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]*index.Document, 0, 1000)
	for j := range reps * len(docs) {
		c := *docs[j%len(docs)]
		c.Date = start.Add(time.Duration(j) * 5 * time.Minute)
		c.ID = mailbricks.NewMessageIDAt(c.Date)
		batch = append(batch, &c)
		if len(batch) == cap(batch) || j == reps*len(docs)-1 {
			if err := x.IndexBatch(context.Background(), "u", batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := be.DB().Compact(nil, nil); err != nil {
		b.Fatal(err)
	}
	df := map[string]int{}
	for _, d := range docs {
		seen := map[string]bool{}
		for _, t := range index.Tokenize(d.Body) {
			if !seen[t.Term] && len(t.Term) >= 4 {
				seen[t.Term] = true
				df[t.Term]++
			}
		}
	}
	var rare []string
	for w, n := range df {
		if n >= 2 && n <= 10 {
			rare = append(rare, w)
		}
	}
	slices.Sort(rare)
	return be, x, rare
}

// BenchmarkSearchRareCold runs rare-term queries of a 60,000-document
// user whose sealed chunks' IDs and values are not decoded yet (as after
// a load): the p99 of the bench suite's term_rare.
func BenchmarkSearchRareCold(b *testing.B) {
	be, x, rare := rareIndex(b, 10)
	ctx := context.Background()
	opts := &index.SearchOptions{Limit: 20, NoSnippets: true}
	b.Run("cold", func(b *testing.B) {
		for i := range b.N {
			b.StopTimer()
			lsmindex.DropSegments(be, "u")
			b.StartTimer()
			if _, err := x.Search(ctx, "u", index.Text(index.FieldAny, rare[i*7919%len(rare)]), opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		for i := range b.N {
			if _, err := x.Search(ctx, "u", index.Text(index.FieldAny, rare[i*7919%len(rare)]), opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("colduser", func(b *testing.B) {
		for i := range b.N {
			cold := index.New(lsmindex.New(be.DB(), nil), nil)
			if _, err := cold.Search(ctx, "u", index.Text(index.FieldAny, rare[i*7919%len(rare)]), opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
