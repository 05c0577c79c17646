package lsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm"
)

// TestMergeAll checks that a Merger's MergeAll, called for runs of three
// or more values, gives what folding Merge gives, in Get, iteration,
// flushes and compactions, over sets and deletes, against a model.
func TestMergeAll(t *testing.T) {
	var calls atomic.Int64
	m := &lsm.Merger{
		Name: "test.concat.all",
		Merge: func(_, older, newer []byte) ([]byte, error) {
			out := make([]byte, 0, len(older)+1+len(newer))
			return append(append(append(out, older...), '|'), newer...), nil
		},
		MergeAll: func(_ []byte, values [][]byte) ([]byte, error) {
			calls.Add(1)
			if len(values) < 3 {
				return nil, fmt.Errorf("MergeAll with %d values", len(values))
			}
			return bytes.Join(values, []byte("|")), nil
		},
	}
	db, _ := openMem(t, nil, &lsm.Options{MemTableSize: 32 << 10, L0CompactionThreshold: 2, Merger: m})
	model := map[string]string{}
	rng := rand.New(rand.NewPCG(7, 7))
	check := func(when string) {
		t.Helper()
		for k := range 30 {
			key := fmt.Sprintf("k%02d", k)
			want, ok := model[key]
			v, err := db.Get([]byte(key))
			if !ok {
				require.ErrorIs(t, err, lsm.ErrNotFound, "%s: %s", when, key)
				continue
			}
			require.NoError(t, err, "%s: %s", when, key)
			require.Equal(t, want, string(v), "%s: %s", when, key)
		}
		it, err := db.NewIter(nil)
		require.NoError(t, err)
		n := 0
		for it.First(); it.Valid(); it.Next() {
			require.Equal(t, model[string(it.Key())], string(it.Value()), "%s: iterating %s", when, it.Key())
			n++
		}
		require.NoError(t, it.Close())
		require.Equal(t, len(model), n, when)
	}
	for i := range 4000 {
		key := fmt.Sprintf("k%02d", rng.IntN(30))
		val := fmt.Sprintf("v%d", i)
		switch r := rng.IntN(20); {
		case r == 0:
			require.NoError(t, db.Delete([]byte(key), nil))
			delete(model, key)
		case r == 1:
			require.NoError(t, db.Set([]byte(key), []byte(val), nil))
			model[key] = val
		default:
			require.NoError(t, db.Merge([]byte(key), []byte(val), nil))
			if old, ok := model[key]; ok {
				model[key] = old + "|" + val
			} else {
				model[key] = val
			}
		}
		if i%900 == 0 {
			check(fmt.Sprintf("op %d", i))
			require.NoError(t, db.Flush())
		}
	}
	check("before compaction")
	require.NoError(t, db.Compact(nil, nil))
	check("after compaction")
	assert.Positive(t, calls.Load(), "MergeAll was used")
}
