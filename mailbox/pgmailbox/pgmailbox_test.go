package pgmailbox_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/pgerr/pgerrtest"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/mailboxtest"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
)

// pgURL returns MAILBRICKS_PG_URL or skips the test.
func pgURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; set it to a PostgreSQL URL to test pgmailbox")
	}
	return url
}

// newPool returns a pool on MAILBRICKS_PG_URL, closed when the test ends.
func newPool(t *testing.T, url string) *pgxpool.Pool {
	p, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// dropSchema drops a test's schema when the test ends.
func dropSchema(t *testing.T, url, schema string) {
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
		require.NoError(t, err)
	})
}

// newBackend opens a backend on a pool and a schema of its own, dropped
// when the test ends.
func newBackend(t *testing.T) mailbox.Backend {
	url := pgURL(t)
	schema := fmt.Sprintf("mbtest_%x", rand.Uint64())
	dropSchema(t, url, schema)
	b, err := pgmailbox.Open(context.Background(), newPool(t, url), &pgmailbox.Options{Schema: schema, Partitions: 2})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	mailboxtest.Run(t, newBackend)
}

// TestCorpusAll appends all 6,046 messages of the SpamAssassin corpus and
// reads every one back byte-exact.
func TestCorpusAll(t *testing.T) {
	if testing.Short() {
		t.Skip("appends the whole corpus")
	}
	if raceEnabled && os.Getenv("MAILBRICKS_LONG") != "1" {
		// A transaction per message under the race detector takes minutes;
		// the conformance suite's corpus subtest covers a tenth of it, and
		// runs without -race (or with MAILBRICKS_LONG=1) cover all of it.
		t.Skip("the whole corpus on PostgreSQL runs without -race or with MAILBRICKS_LONG=1")
	}
	mailboxtest.RunCorpus(t, mailboxtest.NewStore(t, newBackend(t)), 1)
}

// TestWatchAcrossProcesses checks that a second Backend on the same schema
// (standing in for another process) sees the first one's changes.
func TestWatchAcrossProcesses(t *testing.T) {
	url := pgURL(t)
	schema := fmt.Sprintf("mbtest_%x", rand.Uint64())
	ctx := context.Background()
	dropSchema(t, url, schema)
	b1, err := pgmailbox.Open(ctx, newPool(t, url), &pgmailbox.Options{Schema: schema, Partitions: 2})
	require.NoError(t, err)
	b2, err := pgmailbox.Open(ctx, newPool(t, url), &pgmailbox.Options{Schema: schema})
	require.NoError(t, err, "a second Open of a migrated schema must succeed")
	s1 := mailboxtest.NewStore(t, b1)
	s2 := mailboxtest.NewStore(t, b2)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s2.Watch(wctx, "alice")
	require.NoError(t, err)
	m, err := s1.Append(ctx, "alice", mailbox.Inbox, bytesReader(mailboxtest.Msg("hi", "x")), nil)
	require.NoError(t, err)
	for ev := range ch {
		if ev.Kind == mailbox.EventAppend {
			require.Equal(t, m.ID, ev.ID, "a watcher on another backend must see the append")
			require.Equal(t, m.UID, ev.UID)
			return
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// TestTerminatedConnectionIsTemporary terminates the backend's connection
// in the middle of a call, as a failover does: the call must fail with an
// error that mailbricks.IsTemporary reports, and a retry must succeed.
func TestTerminatedConnectionIsTemporary(t *testing.T) {
	url := pgURL(t)
	ctx := context.Background()
	schema := fmt.Sprintf("mbtest_%x", rand.Uint64())
	dropSchema(t, url, schema)
	app := "pgmailbox_test_" + schema
	b, err := pgmailbox.Open(ctx, pgerrtest.Pool(t, url, app), &pgmailbox.Options{Schema: schema, Partitions: 2})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.CreateFolder(ctx, "alice", mailbox.Inbox, mailbox.RoleInbox)
	require.NoError(t, err)
	err = pgerrtest.Terminate(t, newPool(t, url), app, schema+".folders", func() error {
		_, err := b.Folders(ctx, "alice")
		return err
	})
	require.Error(t, err)
	require.True(t, mailbricks.IsTemporary(err), "a terminated connection must be a temporary error, got %v", err)
	_, err = b.Folders(ctx, "alice")
	require.NoError(t, err, "a retry after a terminated connection must succeed")
}

// TestOpenConcurrent opens one fresh schema from several backends at once,
// as processes starting together do: every Open must succeed, the
// migration must apply once, and closing a backend must leave the
// caller's pool open.
func TestOpenConcurrent(t *testing.T) {
	url := pgURL(t)
	ctx := context.Background()
	schema := fmt.Sprintf("mbtest_%x", rand.Uint64())
	dropSchema(t, url, schema)
	p := newPool(t, url)
	const n = 4
	bs := make([]*pgmailbox.Backend, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bs[i], errs[i] = pgmailbox.Open(ctx, p, &pgmailbox.Options{Schema: schema, Partitions: 2})
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "concurrent Open %d of a fresh schema", i)
	}
	var applied int
	require.NoError(t, p.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.mailbricks_migrations WHERE component = 'pgmailbox'`).Scan(&applied))
	require.Equal(t, 2, applied, "each of the two migrations must be recorded once")
	for _, b := range bs {
		require.NoError(t, b.Close())
	}
	require.NoError(t, p.Ping(ctx), "Close must not close the caller's pool")
}

// TestInvalidText checks that text PostgreSQL cannot store is reported as
// an invalid argument, not as a raw SQLSTATE. Folder names are refused
// before they reach PostgreSQL; thread keys are stored as text as given.
func TestInvalidText(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	_, err := b.CreateFolder(ctx, "alice", "a\x00b", "")
	require.ErrorIs(t, err, mailbox.ErrInvalidFolder, "a NUL in a folder name must be an invalid folder")
	_, err = b.CreateFolder(ctx, "alice", "a\xffb", "")
	require.ErrorIs(t, err, mailbox.ErrInvalidFolder, "invalid UTF-8 in a folder name must be an invalid folder")
	_, _, err = b.FindThread(ctx, "alice", []string{"a\x00b"})
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument, "a NUL in a thread key must be an invalid argument")
	require.False(t, mailbricks.IsTemporary(err))
	_, _, err = b.FindThread(ctx, "alice", []string{"a\xffb"})
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument, "invalid UTF-8 in a thread key must be an invalid argument")
}

// TestSetFlagsMaxFlags checks that a SetFlags that would leave a message
// with more than mailbox.MaxFlags flags fails as a whole and changes
// nothing, not even the messages that would stay within the limit.
func TestSetFlagsMaxFlags(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	_, err := b.CreateFolder(ctx, "alice", mailbox.Inbox, mailbox.RoleInbox)
	require.NoError(t, err)
	appendWith := func(flags []string) mailbox.Message {
		r := &mailbox.Record{Skeleton: []byte("skeleton")}
		r.ID = mailbricks.NewMessageID()
		r.ThreadID = r.ID
		r.Folder = mailbox.Inbox
		r.Flags = flags
		r.Size = 8
		m, _, err := b.Append(ctx, "alice", r)
		require.NoError(t, err)
		return m
	}
	kw := func(from, n int) []string {
		var out []string
		for i := from; i < from+n; i++ {
			out = append(out, fmt.Sprintf("k%04d", i))
		}
		return out
	}
	few := appendWith(nil)
	full := appendWith(kw(0, mailbox.MaxFlags-1))
	before, err := b.Folder(ctx, "alice", mailbox.Inbox)
	require.NoError(t, err)

	_, err = b.SetFlags(ctx, "alice", []mailbricks.MessageID{few.ID, full.ID},
		mailbox.FlagChange{Op: mailbox.FlagAdd, Flags: kw(10000, 2)})
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument, "SetFlags leaving a message with more than MaxFlags flags must fail")

	for _, m := range []mailbox.Message{few, full} {
		got, err := b.Get(ctx, "alice", m.ID)
		require.NoError(t, err)
		require.Equal(t, m.Flags, got.Flags, "a failed SetFlags must change no message's flags")
		require.Equal(t, m.ModSeq, got.ModSeq, "a failed SetFlags must change no message's modseq")
	}
	after, err := b.Folder(ctx, "alice", mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, before, after, "a failed SetFlags must not change the folder")

	// Exactly MaxFlags is allowed.
	res, err := b.SetFlags(ctx, "alice", []mailbricks.MessageID{full.ID},
		mailbox.FlagChange{Op: mailbox.FlagAdd, Flags: kw(10000, 1)})
	require.NoError(t, err)
	require.Len(t, res.Updated, 1)
	require.Len(t, res.Updated[0].Flags, mailbox.MaxFlags)
}
