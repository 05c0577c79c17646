package manifest

import (
	"cmp"
	"slices"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// Builder replays the edits of a MANIFEST, in order, into the final set of
// tables per level and the latest scalar state.
//
// Each Apply is all or nothing: it checks the whole edit against the tables
// so far (a deleted table must be in the level the edit names; an added
// table must not be live already, unless the same edit deletes it) and
// changes nothing if the edit does not fit. The Builder keeps the edits'
// *FileMetadata pointers.
//
// The zero Builder is empty and ready to use. A Builder is not safe for
// concurrent use.
type Builder struct {
	// ComparerName is the comparer name set by the edits, or empty. Once
	// set, an edit naming another comparer is corruption.
	ComparerName string
	// MergerName is the latest merger name set by an edit, or empty.
	MergerName string
	// LogNumber is the latest log number set by an edit, if HasLogNumber.
	LogNumber uint64
	// NextFileNumber is the latest next file number set by an edit, if
	// HasNextFileNumber.
	NextFileNumber uint64
	// LastSeq is the latest last sequence number set by an edit, if
	// HasLastSeq.
	LastSeq uint64
	// HasLogNumber reports whether an edit has set LogNumber.
	HasLogNumber bool
	// HasNextFileNumber reports whether an edit has set NextFileNumber.
	HasNextFileNumber bool
	// HasLastSeq reports whether an edit has set LastSeq.
	HasLastSeq bool

	files map[uint64]liveFile // by file number
}

type liveFile struct {
	level int
	meta  *FileMetadata
}

// Apply applies e: first its deletions, then its additions, then its scalar
// fields. If e does not fit the tables so far, Apply returns an error
// wrapping [base.ErrCorruption] and leaves b unchanged.
func (b *Builder) Apply(e *VersionEdit) error {
	if e.ComparerName != "" && b.ComparerName != "" && e.ComparerName != b.ComparerName {
		return base.CorruptionErrorf("manifest: edit names comparer %q, but the manifest uses %q", e.ComparerName, b.ComparerName)
	}
	deleted := make(map[uint64]bool, len(e.DeletedFiles))
	for _, df := range e.DeletedFiles {
		f, ok := b.files[df.FileNum]
		if !ok || f.level != df.Level || deleted[df.FileNum] {
			return base.CorruptionErrorf("manifest: edit deletes table %06d from L%d, where it is not", df.FileNum, df.Level)
		}
		deleted[df.FileNum] = true
	}
	added := make(map[uint64]bool, len(e.NewFiles))
	for _, nf := range e.NewFiles {
		if nf.Meta == nil {
			return base.CorruptionErrorf("manifest: edit adds a table without metadata to L%d", nf.Level)
		}
		num := nf.Meta.FileNum
		if nf.Level < 0 || nf.Level >= NumLevels {
			return base.CorruptionErrorf("manifest: edit adds table %06d to L%d, outside [0, %d)", num, nf.Level, NumLevels)
		}
		if f, ok := b.files[num]; ok && !deleted[num] {
			return base.CorruptionErrorf("manifest: edit adds table %06d to L%d, but it is already in L%d", num, nf.Level, f.level)
		}
		if added[num] {
			return base.CorruptionErrorf("manifest: edit adds table %06d twice", num)
		}
		added[num] = true
	}

	for num := range deleted {
		delete(b.files, num)
	}
	if b.files == nil && len(e.NewFiles) > 0 {
		b.files = make(map[uint64]liveFile, len(e.NewFiles))
	}
	for _, nf := range e.NewFiles {
		b.files[nf.Meta.FileNum] = liveFile{level: nf.Level, meta: nf.Meta}
	}
	if e.ComparerName != "" {
		b.ComparerName = e.ComparerName
	}
	if e.MergerName != "" {
		b.MergerName = e.MergerName
	}
	if e.HasLogNumber {
		b.LogNumber, b.HasLogNumber = e.LogNumber, true
	}
	if e.HasNextFileNumber {
		b.NextFileNumber, b.HasNextFileNumber = e.NextFileNumber, true
	}
	if e.HasLastSeq {
		b.LastSeq, b.HasLastSeq = e.LastSeq, true
	}
	return nil
}

// Levels returns the live tables per level, in the order the engine keeps
// them: L0 by LargestSeq ascending (newest last), then by file number; the
// other levels by smallest key (base.CompareInternal), then by file number.
// The slices are new on every call; the *FileMetadata are shared.
func (b *Builder) Levels() [NumLevels][]*FileMetadata {
	var levels [NumLevels][]*FileMetadata
	for _, f := range b.files {
		levels[f.level] = append(levels[f.level], f.meta)
	}
	slices.SortFunc(levels[0], func(x, y *FileMetadata) int {
		return cmp.Or(cmp.Compare(x.LargestSeq, y.LargestSeq), cmp.Compare(x.FileNum, y.FileNum))
	})
	for l := 1; l < NumLevels; l++ {
		slices.SortFunc(levels[l], func(x, y *FileMetadata) int {
			return cmp.Or(base.CompareInternal(x.Smallest, y.Smallest), cmp.Compare(x.FileNum, y.FileNum))
		})
	}
	return levels
}
