package record

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLastRecordCutShort(t *testing.T) {
	rec := encodeRecord(nil, []byte("a version edit of some length"))
	require.True(t, LastRecordCutShort(nil), "an empty tail is a record never started")
	require.True(t, LastRecordCutShort(rec[:HeaderLen-1]), "a partial header is a record cut short")
	for n := HeaderLen; n < len(rec); n++ {
		require.True(t, LastRecordCutShort(rec[:n]), "a valid header with %d of %d bytes is a record cut short", n, len(rec))
	}
	require.True(t, LastRecordCutShort(make([]byte, 3*len(rec))), "a zeroed tail is unwritten space")

	flipped := append([]byte(nil), rec...)
	flipped[len(flipped)-1] ^= 1
	require.False(t, LastRecordCutShort(flipped), "a complete record with a bad checksum is corruption")
	badHeader := append([]byte(nil), rec...)
	badHeader[5] ^= 0x40
	require.False(t, LastRecordCutShort(badHeader), "a damaged header followed by data is corruption")
	two := append(append([]byte(nil), flipped...), rec...)
	require.False(t, LastRecordCutShort(two), "two records of damage cannot be one torn append")
}
