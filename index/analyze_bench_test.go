package index_test

import (
	"testing"

	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
)

// BenchmarkAnalyzeCorpus analyzes the corpus documents, the analysis a
// backend's Index runs, with a callback that only counts terms.
func BenchmarkAnalyzeCorpus(b *testing.B) {
	docs := indextest.CorpusDocuments(b, 0)
	var n, bytes int
	for _, d := range docs {
		bytes += len(d.Subject) + len(d.Body)
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for b.Loop() {
		for _, d := range docs {
			d.Analyze(func(index.Field, []byte, int) { n++ })
		}
	}
	b.ReportMetric(float64(n)/float64(b.N)/float64(len(docs)), "terms/doc")
}
