package lsm

import (
	"bytes"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
	"github.com/mailbricks/mailbricks/lsm/internal/manifest"
	"github.com/mailbricks/mailbricks/lsm/internal/memtable"
)

const numLevels = manifest.NumLevels

type fileMeta = manifest.FileMetadata

// A version is an immutable set of tables per level. Level 0 is ordered by
// LargestSeq ascending (newest last) and its tables may overlap; every deeper
// level is ordered by key and its tables do not overlap.
//
// Versions are reference counted: the current version holds one reference,
// and every read state (and so every iterator and Get in flight) holds one
// on the version it reads. A table file is deleted when the last version that
// lists it is released, so no reader ever loses a file under it.
type version struct {
	levels [numLevels][]*fileMeta
	refs   atomic.Int32
	files  *fileRefs
}

func (v *version) ref() { v.refs.Add(1) }

func (v *version) unref() {
	if v.refs.Add(-1) == 0 {
		v.files.release(v)
	}
}

// fileRefs counts, per table file, the versions that list it.
type fileRefs struct {
	mu     sync.Mutex
	refs   map[uint64]int
	delete func(fileNums []uint64)
}

func (f *fileRefs) newVersion(levels [numLevels][]*fileMeta) *version {
	v := &version{levels: levels, files: f}
	v.refs.Store(1)
	f.mu.Lock()
	for _, lvl := range levels {
		for _, m := range lvl {
			f.refs[m.FileNum]++
		}
	}
	f.mu.Unlock()
	return v
}

func (f *fileRefs) release(v *version) {
	var dead []uint64
	f.mu.Lock()
	del := f.delete
	for _, lvl := range v.levels {
		for _, m := range lvl {
			f.refs[m.FileNum]--
			if f.refs[m.FileNum] == 0 {
				delete(f.refs, m.FileNum)
				dead = append(dead, m.FileNum)
			}
		}
	}
	f.mu.Unlock()
	if len(dead) > 0 && del != nil {
		del(dead)
	}
}

func (f *fileRefs) live(num uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refs[num] > 0
}

// apply returns the levels of v with edit applied.
func (v *version) apply(e *manifest.VersionEdit) [numLevels][]*fileMeta {
	var out [numLevels][]*fileMeta
	deleted := make(map[uint64]bool, len(e.DeletedFiles))
	for _, d := range e.DeletedFiles {
		deleted[d.FileNum] = true
	}
	for l := range numLevels {
		for _, m := range v.levels[l] {
			if !deleted[m.FileNum] {
				out[l] = append(out[l], m)
			}
		}
	}
	for _, nf := range e.NewFiles {
		out[nf.Level] = append(out[nf.Level], nf.Meta)
	}
	sortLevels(&out)
	return out
}

func sortLevels(levels *[numLevels][]*fileMeta) {
	l0 := levels[0]
	sort.Slice(l0, func(i, j int) bool {
		if l0[i].LargestSeq != l0[j].LargestSeq {
			return l0[i].LargestSeq < l0[j].LargestSeq
		}
		return l0[i].FileNum < l0[j].FileNum
	})
	for l := 1; l < numLevels; l++ {
		lvl := levels[l]
		sort.Slice(lvl, func(i, j int) bool {
			return base.CompareInternal(lvl[i].Smallest, lvl[j].Smallest) < 0
		})
	}
}

// checkOrdering reports an error if a level below 0 has overlapping tables.
func checkOrdering(levels *[numLevels][]*fileMeta) error {
	for l := 1; l < numLevels; l++ {
		lvl := levels[l]
		for i := 1; i < len(lvl); i++ {
			if base.CompareInternal(lvl[i-1].Largest, lvl[i].Smallest) >= 0 {
				return base.CorruptionErrorf("L%d tables %06d and %06d overlap", l, lvl[i-1].FileNum, lvl[i].FileNum)
			}
		}
	}
	return nil
}

func levelSize(files []*fileMeta) int64 {
	var n int64
	for _, m := range files {
		n += int64(m.Size)
	}
	return n
}

// overlaps reports whether the user-key range of m intersects [start, end]
// (inclusive; nil means unbounded). A table's largest key that is a range
// deletion sentinel is exclusive; treating it as inclusive only widens the
// set, which is safe wherever overlaps is used.
func overlaps(m *fileMeta, start, end []byte) bool {
	if end != nil && bytes.Compare(m.Smallest.UserKey, end) > 0 {
		return false
	}
	if start != nil && bytes.Compare(m.Largest.UserKey, start) < 0 {
		return false
	}
	return true
}

// containsKey reports whether key may be inside m's bounds.
func containsKey(m *fileMeta, key []byte) bool {
	if bytes.Compare(key, m.Smallest.UserKey) < 0 {
		return false
	}
	c := bytes.Compare(key, m.Largest.UserKey)
	return c < 0 || (c == 0 && !m.Largest.IsSentinel())
}

// overlapping returns the tables of files intersecting [start, end].
func overlapping(files []*fileMeta, start, end []byte) []*fileMeta {
	var out []*fileMeta
	for _, m := range files {
		if overlaps(m, start, end) {
			out = append(out, m)
		}
	}
	return out
}

// findFile returns the index of the table in a sorted, non-overlapping level
// that may contain key, or -1.
func findFile(files []*fileMeta, key []byte) int {
	i := sort.Search(len(files), func(i int) bool {
		return bytes.Compare(files[i].Largest.UserKey, key) >= 0
	})
	for ; i < len(files); i++ {
		if containsKey(files[i], key) {
			return i
		}
		if bytes.Compare(files[i].Smallest.UserKey, key) > 0 {
			break
		}
	}
	return -1
}

// A readState is what a read sees: the mutable memtable, the immutable ones
// waiting for flush (newest first) and the current version. It is swapped as
// a unit whenever one of them changes, so a reader never sees a memtable's
// contents twice or not at all.
type readState struct {
	mem  *memtable.Memtable
	imm  []*memtable.Memtable
	v    *version
	refs atomic.Int32
}

func (s *readState) unref() {
	if s.refs.Add(-1) == 0 {
		s.v.unref()
	}
}
