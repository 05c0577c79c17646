package manifest

import (
	"fmt"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// FileMetadata describes one table file of a version: the persisted fields
// that a [VersionEdit] records when the table is added.
//
// The engine shares one *FileMetadata between every version that lists the
// table, so it is handled by pointer only: never copied by value or compared
// with ==, which leaves room for runtime fields such as reference counts.
// The persisted fields are immutable once the table is added; FileMetadata
// is then safe for concurrent reads.
type FileMetadata struct {
	// FileNum is the table's file number, unique within a database.
	FileNum uint64
	// Size is the table file's size in bytes.
	Size uint64
	// Smallest and Largest are the smallest and largest internal keys of the
	// table. Largest may be a range-deletion sentinel (see
	// [base.MakeRangeDeleteSentinel]), an exclusive bound.
	Smallest, Largest base.InternalKey
	// SmallestSeq and LargestSeq bound the sequence numbers of the table's
	// entries.
	SmallestSeq, LargestSeq uint64
	// HasRangeDels reports whether the table holds range tombstones.
	HasRangeDels bool
}

// String formats m for debugging, like "000012:[a#5,SET-z#9,SET]".
func (m *FileMetadata) String() string {
	return fmt.Sprintf("%06d:[%s-%s]", m.FileNum, m.Smallest, m.Largest)
}
