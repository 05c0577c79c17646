package lsmindex_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func open(t *testing.T) index.Backend {
	b, err := lsmindex.Open("db", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	indextest.Run(t, open)
}

// TestGolden indexes the whole SpamAssassin corpus and checks every
// operator against the brute-force evaluator.
func TestGolden(t *testing.T) {
	docs := indextest.CorpusDocuments(t, 0)
	x := index.New(open(t), &index.Options{Now: indextest.Now})
	indextest.Golden(t, x, indextest.NewBrute(), docs, 3, 600)
}
