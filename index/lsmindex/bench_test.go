package lsmindex_test

import (
	"context"
	"testing"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// memIndex opens a backend on an in-memory FS, without syncs, and an
// Index on it, closed when the benchmark ends.
func memIndex(b *testing.B) (*lsmindex.Backend, *index.Index) {
	be, err := lsmindex.Open("db", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	x := index.New(be, nil)
	b.Cleanup(func() { x.Close() })
	return be, x
}

// corpusIndex indexes the corpus three times over (new IDs each time) on
// an in-memory FS.
func corpusIndex(b *testing.B) (*index.Index, []*index.Document) {
	docs := indextest.CorpusDocuments(b, 0)
	_, x := memIndex(b)
	for rep := range 3 {
		batch := make([]*index.Document, 0, 1000)
		for i, d := range docs {
			c := *d
			c.ID = mailbricks.NewMessageIDAt(d.Date.AddDate(rep, 0, 0))
			c.Date = d.Date.AddDate(rep, 0, 0)
			batch = append(batch, &c)
			if len(batch) == 1000 || i == len(docs)-1 {
				if err := x.IndexBatch(context.Background(), "u", batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	return x, docs
}

func BenchmarkIndexBatch(b *testing.B) {
	docs := indextest.CorpusDocuments(b, 3000)
	b.ResetTimer()
	for range b.N {
		be, err := lsmindex.Open("db", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(docs); i += 1000 {
			if err := be.Index(context.Background(), "u", docs[i:i+1000]); err != nil {
				b.Fatal(err)
			}
		}
		be.Close()
	}
	b.ReportMetric(float64(b.N*len(docs))/b.Elapsed().Seconds(), "docs/s")
}

func BenchmarkSearch(b *testing.B) {
	x, _ := corpusIndex(b)
	for _, q := range []string{"money", "click here", `"to be removed"`, "remov*", "from:bill", "from:bill has:attachment after:2002/03/01", "free software"} {
		pq, err := index.Parse(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(q, func(b *testing.B) {
			for range b.N {
				if _, err := x.Search(context.Background(), "u", pq, &index.SearchOptions{NoSnippets: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIndexCorpusDisk indexes the corpus five times over into a
// directory on disk, with flushes and compactions, as the bench suite
// does.
func BenchmarkIndexCorpusDisk(b *testing.B) {
	docs := indextest.CorpusDocuments(b, 0)
	var flushed, compacted int64
	b.ResetTimer()
	for range b.N {
		be, err := lsmindex.Open(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		for rep := range 5 {
			for i := 0; i < len(docs); i += 1000 {
				batch := make([]*index.Document, 0, 1000)
				for _, d := range docs[i:min(i+1000, len(docs))] {
					c := *d
					c.ID = mailbricks.NewMessageIDAt(d.Date.AddDate(rep, 0, 0))
					batch = append(batch, &c)
				}
				if err := be.Index(context.Background(), "u", batch); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := be.DB().Compact(nil, nil); err != nil {
			b.Fatal(err)
		}
		m := be.DB().Metrics()
		flushed += m.FlushBytes
		compacted += m.CompactionBytesWritten
		be.Close()
	}
	n := float64(b.N * 5 * len(docs))
	b.ReportMetric(n/b.Elapsed().Seconds(), "docs/s")
	// The bytes the lsm wrote per document, which its CPU follows.
	b.ReportMetric(float64(flushed)/n, "flushB/doc")
	b.ReportMetric(float64(compacted)/n, "compactB/doc")
}
