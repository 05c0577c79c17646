package lsmmailbox

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

func TestRecordRoundTrip(t *testing.T) {
	m := mailbox.Message{
		ID: mailbricks.NewMessageID(), UID: 7, ModSeq: 1 << 40, Flags: []string{mailbox.FlagSeen, "x"},
		InternalDate: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Size: 12345, ThreadID: mailbricks.NewMessageID(),
		From: []mailbox.Address{{Name: "A", Addr: "a@x"}}, To: []mailbox.Address{{Addr: "b@y"}, {Name: "C", Addr: "c@z"}},
		Subject: "héllo", Date: time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("", -7*3600)),
		MessageIDHeader: "id@x", InReplyTo: []string{"p@x"}, References: []string{"q@x", "p@x"},
		HasAttachments: true, Snippet: "snip", ParseError: "bad",
	}
	rec := msgRec{FID: 3, Message: m}
	got, err := decodeRecord(encodeRecord(&rec))
	require.NoError(t, err)
	require.Equal(t, rec.FID, got.FID)
	require.True(t, got.Date.Equal(m.Date))
	_, off := got.Date.Zone()
	require.Equal(t, -7*3600, off, "the Date's zone offset must be kept")
	got.Date, m.Date = time.Time{}, time.Time{}
	got.InternalDate, m.InternalDate = got.InternalDate.UTC(), m.InternalDate.UTC()
	require.Equal(t, m, got.Message)

	empty := msgRec{}
	got, err = decodeRecord(encodeRecord(&empty))
	require.NoError(t, err)
	require.Equal(t, []string{}, got.Flags)
	require.True(t, got.Date.IsZero())

	b := encodeRecord(&rec)
	for i := 0; i < len(b); i++ {
		_, _ = decodeRecord(b[:i]) // must not panic on a truncated record
	}
}

func FuzzDecodeRecord(f *testing.F) {
	rec := msgRec{FID: 1, Message: mailbox.Message{Subject: "s", Flags: []string{"a"}, From: []mailbox.Address{{Addr: "x"}}}}
	f.Add(encodeRecord(&rec))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRecord(b); err == nil {
			if _, err := decodeRecord(encodeRecord(&r)); err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
		}
	})
}
