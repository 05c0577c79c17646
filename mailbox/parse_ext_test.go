package mailbox_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
	"github.com/mailbricks/mailbricks/mailbox/mailboxtest"
)

func newStore(t *testing.T) *mailbox.Store {
	b, err := lsmmailbox.Open("db", &lsmmailbox.Options{FS: vfs.NewMem(), NoSync: true})
	require.NoError(t, err)
	fb, err := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	blobs := dedup.New(fb, nil)
	t.Cleanup(func() { blobs.Close() })
	s := mailbox.New(b, blobs, nil)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestIndexDocumentMatchesIndex checks that the index.Document mailbox
// builds from its one parse equals what index.DocumentFromMessage makes of
// the same bytes, and that index accepts every message mailbox stores.
func TestIndexDocumentMatchesIndex(t *testing.T) {
	var msgs [][]byte
	for _, s := range mailbox.PolicyMessages {
		msgs = append(msgs, []byte(s))
	}
	msgs = append(msgs, mailboxtest.Malformed()...)
	msgs = append(msgs, mailboxtest.AttachmentMsg("with attachment", 4<<10, 2))
	s := newStore(t)
	for i, raw := range msgs {
		_, err := s.Append(context.Background(), "u", mailbox.Inbox, bytes.NewReader(raw), nil)
		require.NoError(t, err, "mailbox stores message %d", i)
		id := mailbricks.NewMessageID()
		v := index.Values{Folder: "INBOX", Size: int64(len(raw))}
		want, err := index.DocumentFromMessage(id, bytes.NewReader(raw), v)
		require.NoError(t, err, "index must accept message %d, which mailbox stores", i)
		require.Equal(t, want, mailbox.IndexDocument(id, raw, v), "message %d", i)
	}
}

// TestAppendLatin1SameInIndex checks that a raw latin-1 subject is the same
// valid UTF-8 in mailbox and in the index, and can be found there.
func TestAppendLatin1SameInIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	raw := "From: J\xfcrgen <j@example.de>\r\nSubject: Gr\xfc\xdfe aus K\xf6ln\r\n\r\nDas K\xf6lsch ist kalt.\r\n"
	m, err := s.Append(ctx, "u", mailbox.Inbox, strings.NewReader(raw), nil)
	require.NoError(t, err)
	require.Equal(t, "Grüße aus Köln", m.Subject)

	b, err := lsmindex.Open("idx", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true})
	require.NoError(t, err)
	x := index.New(b, nil)
	defer x.Close()
	d, err := index.DocumentFromMessage(m.ID, strings.NewReader(raw), index.Values{Date: m.InternalDate, Folder: mailbox.Inbox})
	require.NoError(t, err)
	require.Equal(t, m.Subject, d.Subject, "mailbox and index must decode the subject the same way")
	require.NoError(t, x.Index(ctx, "u", d))
	for _, q := range []string{"subject:köln", "grüße", "kölsch", "from:jürgen"} {
		res, err := x.SearchString(ctx, "u", q, nil)
		require.NoError(t, err)
		require.Len(t, res.Hits, 1, "query %q must find the latin-1 message", q)
		require.Equal(t, m.Subject, res.Hits[0].Subject)
	}
}

func TestAppendNilReader(t *testing.T) {
	s := newStore(t)
	_, err := s.Append(context.Background(), "u", mailbox.Inbox, nil, nil)
	require.True(t, errors.Is(err, mailbox.ErrInvalidArgument), "a nil reader must be an error, got %v", err)
}

func TestAppendHugeHeaderBoundedMetadata(t *testing.T) {
	s := newStore(t)
	raw := []byte("Subject: " + strings.Repeat("long ", 200000) + "\r\nFrom: a@example.com\r\n\r\nbody\r\n")
	m, err := s.Append(context.Background(), "u", mailbox.Inbox, bytes.NewReader(raw), nil)
	require.NoError(t, err)
	require.LessOrEqual(t, len(m.Subject), 4096, "the subject must be bounded")
	require.NotEmpty(t, m.ParseError)
	rc, err := s.Open(context.Background(), "u", m.ID)
	require.NoError(t, err)
	defer rc.Close()
	var got bytes.Buffer
	_, err = got.ReadFrom(rc)
	require.NoError(t, err)
	require.Equal(t, raw, got.Bytes(), "the raw bytes are stored whole")
}
