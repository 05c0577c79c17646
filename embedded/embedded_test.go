package embedded_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
)

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mail, err := embedded.Open(dir, nil)
	require.NoError(t, err)
	m, err := mail.Mailbox.Append(ctx, "dave", mailbox.Inbox, strings.NewReader("Subject: kept\r\n\r\nacross restarts\r\n"), nil)
	require.NoError(t, err)
	_, err = mail.Queue.Enqueue(ctx, "incoming", []byte("job"), nil)
	require.NoError(t, err)
	require.NoError(t, mail.Close())
	require.NoError(t, mail.Close(), "Close must be idempotent")

	mail, err = embedded.Open(dir, nil)
	require.NoError(t, err)
	defer mail.Close()
	got, err := mail.Mailbox.Get(ctx, "dave", m.ID)
	require.NoError(t, err)
	require.Equal(t, "kept", got.Subject)
	res, err := mail.Index.SearchString(ctx, "dave", "restarts", nil)
	require.NoError(t, err)
	require.Equal(t, 1, res.Total, "the index must persist with the mailbox")
	jobs, err := mail.Queue.Lease(ctx, "incoming", 1, time.Minute, nil)
	require.NoError(t, err)
	require.Len(t, jobs, 1, "the queued job must persist")
	require.Equal(t, []byte("job"), jobs[0].Payload)
}

func TestOpenFailureClosesWhatOpened(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("mail", 0o755))
	f, err := fs.Create("mail/queue")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = embedded.Open("mail", &embedded.Options{FS: fs})
	require.Error(t, err, "a file where the queue directory belongs must fail Open")
	// The blocks opened before the failure were closed: their locks are
	// free, so a fixed layout opens.
	require.NoError(t, fs.Remove("mail/queue"))
	mail, err := embedded.Open("mail", &embedded.Options{FS: fs})
	require.NoError(t, err)
	require.NoError(t, mail.Close())
}
