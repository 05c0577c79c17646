package manifest

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

func meta(num uint64, smallest, largest string, smallestSeq, largestSeq uint64) *FileMetadata {
	return &FileMetadata{
		FileNum:     num,
		Size:        100 * num,
		Smallest:    base.MakeInternalKey([]byte(smallest), smallestSeq, base.KindSet),
		Largest:     base.MakeInternalKey([]byte(largest), largestSeq, base.KindSet),
		SmallestSeq: smallestSeq,
		LargestSeq:  largestSeq,
	}
}

func fileNums(files []*FileMetadata) []uint64 {
	var out []uint64
	for _, m := range files {
		out = append(out, m.FileNum)
	}
	return out
}

// replay encodes and decodes each edit, as a MANIFEST round trip would, and
// applies it.
func replay(t *testing.T, b *Builder, edits ...*VersionEdit) {
	t.Helper()
	for i, e := range edits {
		var d VersionEdit
		require.NoError(t, d.Decode(e.Encode()))
		require.NoError(t, b.Apply(&d), "edit %d", i)
	}
}

func TestBuilderReplay(t *testing.T) {
	var b Builder
	replay(t, &b,
		&VersionEdit{
			ComparerName: "leveldb.BytewiseComparator", MergerName: "m1",
			HasLogNumber: true, LogNumber: 1, HasNextFileNumber: true, NextFileNumber: 2,
			HasLastSeq: true, LastSeq: 0,
		},
		// Three flushes to L0, the second with an older LargestSeq than the first
		// (an ingested table, say) and two with equal LargestSeq.
		&VersionEdit{HasLogNumber: true, LogNumber: 3, NewFiles: []NewFileEntry{{Level: 0, Meta: meta(4, "c", "m", 1, 20)}}},
		&VersionEdit{NewFiles: []NewFileEntry{{Level: 0, Meta: meta(5, "a", "z", 1, 10)}}},
		&VersionEdit{NewFiles: []NewFileEntry{{Level: 0, Meta: meta(7, "b", "d", 21, 30)}, {Level: 0, Meta: meta(6, "e", "f", 22, 30)}}},
	)
	levels := b.Levels()
	require.Equal(t, []uint64{5, 4, 6, 7}, fileNums(levels[0]), "L0 by LargestSeq, then file number")

	// Compact 4 and 5 into L1, as three tables added out of key order; move 7
	// to L2 in the same edit (delete and re-add).
	replay(t, &b, &VersionEdit{
		MergerName: "m2", HasNextFileNumber: true, NextFileNumber: 11, HasLastSeq: true, LastSeq: 30,
		DeletedFiles: []DeletedFileEntry{{Level: 0, FileNum: 4}, {Level: 0, FileNum: 5}, {Level: 0, FileNum: 7}},
		NewFiles: []NewFileEntry{
			{Level: 1, Meta: meta(10, "q", "z", 1, 10)},
			{Level: 1, Meta: meta(8, "a", "f", 1, 20)},
			{Level: 1, Meta: meta(9, "g", "p", 1, 20)},
			{Level: 2, Meta: meta(7, "b", "d", 21, 30)},
		},
	})
	levels = b.Levels()
	require.Equal(t, []uint64{6}, fileNums(levels[0]))
	require.Equal(t, []uint64{8, 9, 10}, fileNums(levels[1]), "L1 by smallest key")
	require.Equal(t, []uint64{7}, fileNums(levels[2]))
	for l := 3; l < NumLevels; l++ {
		require.Empty(t, levels[l])
	}
	requireMetaEqual(t, meta(9, "g", "p", 1, 20), levels[1][1])

	require.Equal(t, "leveldb.BytewiseComparator", b.ComparerName)
	require.Equal(t, "m2", b.MergerName)
	require.True(t, b.HasLogNumber)
	require.Equal(t, uint64(3), b.LogNumber)
	require.True(t, b.HasNextFileNumber)
	require.Equal(t, uint64(11), b.NextFileNumber)
	require.True(t, b.HasLastSeq)
	require.Equal(t, uint64(30), b.LastSeq)
}

func TestBuilderSameSmallestKey(t *testing.T) {
	var b Builder
	replay(t, &b, &VersionEdit{NewFiles: []NewFileEntry{
		{Level: 3, Meta: meta(9, "a", "b", 1, 1)},
		{Level: 3, Meta: meta(2, "a", "c", 1, 1)},
	}})
	require.Equal(t, []uint64{2, 9}, fileNums(b.Levels()[3]), "ties broken by file number")
}

func TestBuilderErrors(t *testing.T) {
	base0 := func() *Builder {
		var b Builder
		require.NoError(t, b.Apply(&VersionEdit{
			ComparerName: "cmp",
			HasLogNumber: true, LogNumber: 1,
			NewFiles: []NewFileEntry{{Level: 0, Meta: meta(1, "a", "b", 1, 1)}, {Level: 2, Meta: meta(2, "c", "d", 1, 1)}},
		}))
		return &b
	}
	for name, e := range map[string]*VersionEdit{
		"delete missing":        {DeletedFiles: []DeletedFileEntry{{Level: 0, FileNum: 3}}},
		"delete at wrong level": {DeletedFiles: []DeletedFileEntry{{Level: 1, FileNum: 2}}},
		"delete twice":          {DeletedFiles: []DeletedFileEntry{{Level: 0, FileNum: 1}, {Level: 0, FileNum: 1}}},
		"delete bad level":      {DeletedFiles: []DeletedFileEntry{{Level: -1, FileNum: 1}}},
		"add live":              {NewFiles: []NewFileEntry{{Level: 1, Meta: meta(2, "x", "y", 1, 1)}}},
		"add twice":             {NewFiles: []NewFileEntry{{Level: 1, Meta: meta(5, "x", "y", 1, 1)}, {Level: 3, Meta: meta(5, "x", "y", 1, 1)}}},
		"add bad level":         {NewFiles: []NewFileEntry{{Level: NumLevels, Meta: meta(5, "x", "y", 1, 1)}}},
		"add nil meta":          {NewFiles: []NewFileEntry{{Level: 1}}},
		"other comparer":        {ComparerName: "other"},
		// Valid changes before an invalid one must not be applied.
		"partly valid": {
			HasLogNumber: true, LogNumber: 9,
			DeletedFiles: []DeletedFileEntry{{Level: 0, FileNum: 1}},
			NewFiles:     []NewFileEntry{{Level: 1, Meta: meta(6, "x", "y", 1, 1)}, {Level: 1, Meta: meta(2, "x", "y", 1, 1)}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := base0()
			require.ErrorIs(t, b.Apply(e), base.ErrCorruption)
			levels := b.Levels()
			require.Equal(t, []uint64{1}, fileNums(levels[0]), "a failed Apply changes nothing")
			require.Equal(t, []uint64{2}, fileNums(levels[2]))
			require.Empty(t, levels[1])
			require.Equal(t, uint64(1), b.LogNumber)
			require.Equal(t, "cmp", b.ComparerName)
		})
	}
}

// TestBuilderRandom replays random valid histories and checks the result
// against a simple model.
func TestBuilderRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var b Builder
		model := map[uint64]int{} // file number to level
		next := uint64(1)
		for range 100 {
			e := &VersionEdit{}
			for num, level := range model {
				if rng.IntN(4) == 0 {
					e.DeletedFiles = append(e.DeletedFiles, DeletedFileEntry{Level: level, FileNum: num})
				}
			}
			for _, df := range e.DeletedFiles {
				delete(model, df.FileNum)
				if rng.IntN(3) == 0 { // move it
					l := rng.IntN(NumLevels)
					e.NewFiles = append(e.NewFiles, NewFileEntry{Level: l, Meta: randMeta(rng, df.FileNum)})
					model[df.FileNum] = l
				}
			}
			for range rng.IntN(4) {
				l := rng.IntN(NumLevels)
				e.NewFiles = append(e.NewFiles, NewFileEntry{Level: l, Meta: randMeta(rng, next)})
				model[next] = l
				next++
			}
			replay(t, &b, e)
		}
		levels := b.Levels()
		n := 0
		for l, files := range levels {
			for i, m := range files {
				require.Equal(t, model[m.FileNum], l)
				if i > 0 && l == 0 {
					require.LessOrEqual(t, files[i-1].LargestSeq, m.LargestSeq)
				}
				if i > 0 && l > 0 {
					require.LessOrEqual(t, base.CompareInternal(files[i-1].Smallest, m.Smallest), 0)
				}
			}
			n += len(files)
		}
		require.Equal(t, len(model), n)
	}
}
