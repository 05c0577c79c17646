package imapsession_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/imapsession"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
)

// TestPostgresOtherProcess: with the PostgreSQL backend, mail appended and
// flags changed through another Store on the same database (another
// server process) reach an idle client of this one.
func TestPostgresOtherProcess(t *testing.T) {
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL not set")
	}
	schema := fmt.Sprintf("imaptest_%x", rand.Uint64())
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		pool.Close()
	})
	fb, err := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	blobs := dedup.New(fb, nil)
	t.Cleanup(func() { blobs.Close() })
	open := func() *mailbox.Store {
		b, err := pgmailbox.Open(ctx, pool, &pgmailbox.Options{Schema: schema, Partitions: 2})
		require.NoError(t, err)
		s := mailbox.New(b, blobs, nil)
		t.Cleanup(func() { s.Close() })
		return s
	}
	here, there := open(), open()
	srv := imapsession.NewServer(here, testAuth, &imapsession.Options{AllowPlaintextLoopback: true, LoginFailureDelay: -1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e := &env{addr: ln.Addr().String(), store: here}

	var u updates
	c := e.dial(t, "alice", &u)
	_, err = there.Append(ctx, "alice", mailbox.Inbox, strings.NewReader(msg("before", "x")), nil)
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	idle, err := c.Idle()
	require.NoError(t, err)
	m, err := there.Append(ctx, "alice", mailbox.Inbox, strings.NewReader(msg("from elsewhere", "y")), nil)
	require.NoError(t, err)
	u.waitFor(t, "EXISTS 2 from the other process", func() bool {
		_, ex, _ := u.snapshot()
		return len(ex) > 0 && ex[len(ex)-1] == 2
	})
	_, err = there.Expunge(ctx, "alice", m.ID)
	require.NoError(t, err)
	u.waitFor(t, "EXPUNGE 2 from the other process", func() bool {
		ex, _, _ := u.snapshot()
		return len(ex) == 1 && ex[0] == 2
	})
	require.NoError(t, idle.Close())
	require.NoError(t, idle.Wait())
}
