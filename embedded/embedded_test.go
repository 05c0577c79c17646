package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm"
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

// TestLSMOptions checks that Options.LSM reaches the blocks' databases (64
// KiB memtables, without compactions, leave a table per 64 KiB where lsm's
// defaults would flush 256 KiB, then 512 KiB and more) and that its Merger
// does not replace the blocks' own.
func TestLSMOptions(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	bogus := &lsm.Merger{Name: "bogus", Merge: func(_, _, _ []byte) ([]byte, error) { return nil, errors.New("bogus merger used") }}
	mail, err := embedded.Open("mail", &embedded.Options{FS: fs, NoSync: true, LSM: &lsm.Options{
		MemTableSize: 64 << 10, CacheSize: 1 << 20, L0CompactionThreshold: 1000, L0StopWritesThreshold: 1000, Merger: bogus,
	}})
	require.NoError(t, err)
	defer mail.Close()
	const n = 120
	for i := range n {
		// Distinct bodies of about 6 KiB, indexed word by word.
		body := fmt.Sprintf("Subject: padding %d\r\n\r\n%s", i, strings.Repeat(fmt.Sprintf("lorem ipsum %d dolor sit amet\r\n", i), 200))
		_, err := mail.Mailbox.Append(ctx, "erin", mailbox.Inbox, strings.NewReader(body), nil)
		require.NoError(t, err)
	}
	st, err := mail.Mailbox.Status(ctx, "erin", mailbox.Inbox)
	require.NoError(t, err, "the mailbox's counters are merges: its own merge operator must read them")
	require.Equal(t, int64(n), st.Total)
	res, err := mail.Index.SearchString(ctx, "erin", "lorem", nil)
	require.NoError(t, err)
	require.Equal(t, n, res.Total)
	tables := func(dir string) int {
		names, err := fs.List(dir)
		require.NoError(t, err)
		c := 0
		for _, name := range names {
			if strings.HasSuffix(name, ".sst") {
				c++
			}
		}
		return c
	}
	for _, block := range []string{"mailbox", "index"} {
		dir := "mail/" + block
		require.Eventually(t, func() bool { return tables(dir) >= 6 }, 10*time.Second, 10*time.Millisecond,
			"the %s block's 64 KiB memtables must make at least 6 tables; it has %d", block, tables(dir))
	}
}
