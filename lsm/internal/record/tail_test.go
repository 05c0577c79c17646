package record

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// pagedLog returns a log of records of about 300 bytes, spanning pages
// pages, and the end offset of each record.
func pagedLog(pages int) (log []byte, ends []int) {
	for i := 0; len(log) < pages*PageSize; i++ {
		log = encodeRecord(log, bytes.Repeat([]byte{byte('a' + i%26)}, 250+i%100))
		ends = append(ends, len(log))
	}
	return log, ends
}

// readToDamage reads log to its first error and returns the offset of the
// tail and the error.
func readToDamage(t *testing.T, log []byte) (int64, error) {
	r := NewReader(bytes.NewReader(log))
	for {
		if _, err := r.Next(); err != nil {
			return r.Offset(), err
		}
	}
}

func inspect(t *testing.T, log []byte, off int64) Tail {
	tail, err := InspectTail(bytes.NewReader(log), off, int64(len(log)))
	require.NoError(t, err)
	return tail
}

// TestInspectTailLostPage zeroes one page in the middle of a log with
// intact records after it, as out-of-order writeback leaves it: the Reader
// reports corruption, and InspectTail recognizes the lost page and counts
// the records after it.
func TestInspectTailLostPage(t *testing.T) {
	log, ends := pagedLog(6)
	for page := range 5 {
		t.Run(fmt.Sprintf("page=%d", page), func(t *testing.T) {
			d := bytes.Clone(log)
			clear(d[page*PageSize : (page+1)*PageSize])
			off, err := readToDamage(t, d)
			require.ErrorIs(t, err, base.ErrCorruption, "intact records follow the hole")
			// The tail begins at the end of the last record wholly before
			// the page.
			want := 0
			for _, e := range ends {
				if e <= page*PageSize {
					want = e
				}
			}
			require.Equal(t, int64(want), off)
			tail := inspect(t, d, off)
			require.True(t, tail.LostPage, "a page of zeros overlaps the first bad record")
			require.False(t, tail.CutShort, "records follow the hole")
			require.Equal(t, int64(len(d))-off, tail.Size)
			whole := 0
			for _, e := range ends {
				if e-300 > (page+1)*PageSize { // surely after the hole
					whole++
				}
			}
			require.GreaterOrEqual(t, tail.Records, whole, "the records after the hole are counted")
			require.Less(t, tail.Records, len(ends))
		})
	}
}

// TestInspectTailLostPageAfterSync loses the part of a page written after a
// sync that ended inside it: zeros from a record boundary to the page end,
// intact records after it.
func TestInspectTailLostPageAfterSync(t *testing.T) {
	log, ends := pagedLog(4)
	for _, e := range ends {
		if e <= PageSize || e >= 2*PageSize {
			continue
		}
		d := bytes.Clone(log)
		clear(d[e : 2*PageSize])
		off, err := readToDamage(t, d)
		require.ErrorIs(t, err, base.ErrCorruption)
		require.Equal(t, int64(e), off)
		tail := inspect(t, d, off)
		require.True(t, tail.LostPage, "zeros from the sync point at %d to the end of its page", e)
		require.Positive(t, tail.Records)
	}
	// Zeros that do not reach the end of the page are no lost page.
	e := ends[len(ends)/2]
	d := bytes.Clone(log)
	clear(d[e : e+100])
	off, err := readToDamage(t, d)
	require.ErrorIs(t, err, base.ErrCorruption)
	require.False(t, inspect(t, d, off).LostPage)
}

// TestInspectTailLostLastPages: a lost page with only zeros or lost pages
// after it is a record cut short.
func TestInspectTailLostLastPages(t *testing.T) {
	log, _ := pagedLog(3)
	d := bytes.Clone(log)
	clear(d[PageSize : 2*PageSize])
	clear(d[2*PageSize:])
	off, err := readToDamage(t, d)
	require.ErrorIs(t, err, ErrTornTail)
	tail := inspect(t, d, off)
	require.True(t, tail.LostPage)
	require.Zero(t, tail.Records)
	require.True(t, tail.CutShort)

	// The last record with a lost last page of its own (the log ends
	// inside that page).
	d = encodeRecord(nil, bytes.Repeat([]byte{'x'}, PageSize+100))
	clear(d[PageSize:])
	tail = inspect(t, d, 0)
	require.True(t, tail.LostPage, "the partial last page, zeroed, is a lost page")
	require.True(t, tail.CutShort)
}

// TestInspectTailBitRot: damage that is not a page of zeros is no lost
// page, whether records follow or not.
func TestInspectTailBitRot(t *testing.T) {
	log, ends := pagedLog(4)
	for _, i := range []int{0, 5, ends[3] + 7, len(log) - 1} {
		d := bytes.Clone(log)
		d[i] ^= 0x10
		off, err := readToDamage(t, d)
		require.Error(t, err)
		tail := inspect(t, d, off)
		require.False(t, tail.LostPage, "flip at %d", i)
		require.False(t, tail.CutShort, "flip at %d: a complete record with a bad checksum", i)
		if i == len(log)-1 {
			require.ErrorIs(t, err, ErrTornTail, "damage in the last record")
			require.Zero(t, tail.Records)
			require.Equal(t, int64(ends[len(ends)-1]-ends[len(ends)-2]), tail.Size)
		} else {
			require.ErrorIs(t, err, base.ErrCorruption)
			require.Positive(t, tail.Records)
		}
	}
	// A few zeroed bytes are not a page.
	d := bytes.Clone(log)
	clear(d[PageSize : PageSize+32])
	off, err := readToDamage(t, d)
	require.ErrorIs(t, err, base.ErrCorruption)
	require.False(t, inspect(t, d, off).LostPage)
}

func TestInspectTailEdges(t *testing.T) {
	log, ends := pagedLog(1)
	tail := inspect(t, log, int64(len(log)))
	require.Equal(t, Tail{Offset: int64(len(log))}, tail, "an empty tail")
	tail = inspect(t, log[:ends[2]+5], int64(ends[2]))
	require.True(t, tail.CutShort, "a partial header")
	_, err := InspectTail(bytes.NewReader(log), int64(len(log))+1, int64(len(log)))
	require.Error(t, err)
	_, err = InspectTail(bytes.NewReader(log[:10]), 0, int64(len(log)))
	require.True(t, err != nil && !errors.Is(err, base.ErrCorruption), "a short read is an I/O error: %v", err)
}
