package delivery

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/queue"
)

// folderMessages returns the bodies of the messages in a user's folder.
func folderMessages(t *testing.T, env *testEnv, user mailbricks.UserID, folder string) []string {
	t.Helper()
	ctx := context.Background()
	page, err := env.blocks.Mailbox.List(ctx, user, folder, &mailbox.ListOptions{Limit: 100})
	if errors.Is(err, mailbox.ErrNoFolder) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, m := range page.Messages {
		rc, err := env.blocks.Mailbox.Open(ctx, user, m.ID)
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

func (env *testEnv) oneJob(t *testing.T) queue.Job {
	t.Helper()
	jobs := env.jobs(t)
	require.Len(t, jobs, 1)
	return jobs[0]
}

// TestDeliverIdempotent runs with the message in its job (InlineMax
// DefaultInlineMax) and in the blob store (the default).
func TestDeliverIdempotent(t *testing.T) {
	for _, mode := range []struct {
		name      string
		inlineMax int
	}{{"inline", DefaultInlineMax}, {"blob", 0}} {
		t.Run(mode.name, func(t *testing.T) { testDeliverIdempotent(t, mode.inlineMax) })
	}
}

func testDeliverIdempotent(t *testing.T, inlineMax int) {
	env := newEnv(t, &InboundOptions{InlineMax: inlineMax})
	const msg = "Authentication-Results: mx.example.net; dkim=pass header.d=example.org\r\n" +
		"From: Alice <alice@example.org>\r\n" +
		"Authentication-Results: other.example;\r\n\tspf=pass smtp.mailfrom=example.org\r\n" +
		"Subject: quarterly report\r\n\r\nHello.\r\n"
	require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net", "carol@example.net", "BOB@example.net"}, msg))
	job := env.oneJob(t)
	j, err := ParseIncomingJob(job.Payload)
	require.NoError(t, err)

	d, err := NewDeliver(env.blocks.Mailbox, env.blocks.Blobs, nil)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, d.Handle(ctx, job))
	require.NoError(t, d.Handle(ctx, job), "a redelivered job completes again")

	want := j.Header + "From: Alice <alice@example.org>\r\n" +
		"Authentication-Results: other.example;\r\n\tspf=pass smtp.mailfrom=example.org\r\n" +
		"Subject: quarterly report\r\n\r\nHello.\r\n"
	for _, user := range []mailbricks.UserID{"bob@example.net", "carol@example.net"} {
		got := folderMessages(t, env, user, mailbox.Inbox)
		require.Len(t, got, 1, "%s has one copy after two deliveries", user)
		assert.Equal(t, want, got[0], "the forged Authentication-Results of our host is gone, the other stays")
		res, err := env.blocks.Index.SearchString(ctx, user, "quarterly", nil)
		require.NoError(t, err)
		assert.Equal(t, 1, res.Total, "the index follows the mailbox")
	}
	assert.Len(t, j.Drop, 1)
	assert.Equal(t, inlineMax > 0, j.inline(), "the message is in the job or the blob store as asked")
}

func TestDeliverJunkAndFilter(t *testing.T) {
	ctx := context.Background()
	t.Run("quarantine goes to Junk", func(t *testing.T) {
		env := newEnv(t, &InboundOptions{sample: func() int { return 0 }})
		env.dns.setTXT("_dmarc.example.org", "v=DMARC1; p=quarantine")
		require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
		d, err := NewDeliver(env.blocks.Mailbox, env.blocks.Blobs, nil)
		require.NoError(t, err)
		require.NoError(t, d.Handle(ctx, env.oneJob(t)))
		assert.Len(t, folderMessages(t, env, "bob@example.net", "Junk"), 1)
		assert.Empty(t, folderMessages(t, env, "bob@example.net", mailbox.Inbox))
	})
	for _, tc := range []struct {
		name        string
		verdict     Verdict
		inbox, junk int
	}{
		{"inbox", VerdictInbox, 1, 0},
		{"junk", VerdictJunk, 0, 1},
		{"reject", VerdictReject, 0, 0},
	} {
		t.Run("filter "+tc.name, func(t *testing.T) {
			env := newEnv(t, nil)
			require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
			var seen string
			d, err := NewDeliver(env.blocks.Mailbox, env.blocks.Blobs, &DeliverOptions{
				Filter: func(_ context.Context, j *IncomingJob, msg io.Reader) (Verdict, error) {
					b, err := io.ReadAll(msg)
					seen = string(b)
					return tc.verdict, err
				},
			})
			require.NoError(t, err)
			require.NoError(t, d.Handle(ctx, env.oneJob(t)))
			assert.True(t, strings.HasSuffix(seen, testMsg), "the filter reads the message")
			assert.Len(t, folderMessages(t, env, "bob@example.net", mailbox.Inbox), tc.inbox)
			assert.Len(t, folderMessages(t, env, "bob@example.net", "Junk"), tc.junk)
		})
	}
	t.Run("filter error fails the attempt", func(t *testing.T) {
		env := newEnv(t, nil)
		require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
		boom := errors.New("scanner down")
		d, err := NewDeliver(env.blocks.Mailbox, env.blocks.Blobs, &DeliverOptions{
			Filter: func(context.Context, *IncomingJob, io.Reader) (Verdict, error) { return 0, boom },
		})
		require.NoError(t, err)
		require.ErrorIs(t, d.Handle(ctx, env.oneJob(t)), boom)
		assert.Empty(t, folderMessages(t, env, "bob@example.net", mailbox.Inbox))
	})
}

func TestDeliverBadPayload(t *testing.T) {
	env := newEnv(t, nil)
	d, err := NewDeliver(env.blocks.Mailbox, env.blocks.Blobs, nil)
	require.NoError(t, err)
	err = d.Handle(context.Background(), queue.Job{ID: "x", Payload: []byte("{")})
	require.ErrorIs(t, err, ErrInvalidJob)
}

func TestDropReader(t *testing.T) {
	env := newEnv(t, nil)
	ref, err := env.blocks.Blobs.Put(context.Background(), strings.NewReader("0123456789"))
	require.NoError(t, err)
	d, err := NewDeliver(env.blocks.Mailbox, env.blocks.Blobs, nil)
	require.NoError(t, err)
	for _, tc := range []struct {
		drop [][2]int64
		want string
	}{
		{nil, "H0123456789"},
		{[][2]int64{{0, 2}}, "H23456789"},
		{[][2]int64{{2, 4}, {4, 5}, {8, 10}}, "H01567"},
		{[][2]int64{{3, 3}}, "H0123456789"},
	} {
		for _, j := range []*IncomingJob{
			{Version: 1, Header: "H", Blob: ref, Drop: tc.drop},
			{Version: 2, Header: "H", Body: []byte("0123456789"), Drop: tc.drop},
		} {
			rc, err := d.open(context.Background(), j)
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(b), "version %d, drop %v", j.Version, tc.drop)
		}
	}
}

// TestDeliverAfterBodyCollected redelivers a job whose delivery finished
// (its body unlinked and collected by GC): the job completes and nothing
// is stored twice. Before the delivery, GC keeps the linked body even
// past the grace period.
func TestDeliverAfterBodyCollected(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	blocks, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem(), Blobs: &dedup.Options{Now: clock.Now, Grace: time.Hour}})
	require.NoError(t, err)
	defer blocks.Close()
	ctx := context.Background()
	in, err := NewInbound(blocks.Blobs, blocks.Queue, &InboundOptions{Hostname: "mx.example.net", Resolver: newFakeDNS(), InlineMax: -1})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := in.NewServer()
	go srv.Serve(in.Listener(l))
	defer func() { srv.Close(); l.Close() }()
	c, err := smtp.Dial(l.Addr().String())
	require.NoError(t, err)
	require.NoError(t, c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(testMsg)))
	c.Close()
	jobs, err := blocks.Queue.Lease(ctx, DefaultTopic, 1, time.Minute, nil)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)

	clock.Add(2 * time.Hour)
	_, err = blocks.Blobs.GC(ctx, nil)
	require.NoError(t, err)
	_, err = blocks.Blobs.Stat(ctx, j.Blob)
	require.NoError(t, err, "the queued body outlives the grace period: Inbound linked it")

	d, err := NewDeliver(blocks.Mailbox, blocks.Blobs, nil)
	require.NoError(t, err)
	require.NoError(t, d.Handle(ctx, jobs[0]))
	clock.Add(2 * time.Hour)
	_, err = blocks.Blobs.GC(ctx, nil)
	require.NoError(t, err)
	_, err = blocks.Blobs.Stat(ctx, j.Blob)
	require.ErrorIs(t, err, dedup.ErrNotFound, "Deliver released the body")

	require.NoError(t, d.Handle(ctx, jobs[0]), "a redelivery after the body is gone completes")
	page, err := blocks.Mailbox.List(ctx, "bob@example.net", mailbox.Inbox, nil)
	require.NoError(t, err)
	assert.Len(t, page.Messages, 1)
}

func TestInboundTransactions(t *testing.T) {
	env := newEnv(t, nil)
	c, err := smtp.Dial(env.addr)
	require.NoError(t, err)
	defer c.Close()
	for range 2 {
		require.NoError(t, c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(testMsg)))
	}
	jobs := env.jobs(t)
	require.Len(t, jobs, 2, "one job per transaction on one connection")
	assert.NotEqual(t, jobs[0].Key, jobs[1].Key)

	// A client that disconnects in the middle of DATA leaves no job.
	rc := dialRaw(t, env.addr)
	rc.start("alice@example.org", "bob@example.net")
	rc.write("From: alice@example.org\r\n\r\npartial")
	rc.conn.Close()
	c2, err := smtp.Dial(env.addr) // a later session sees the server still serving
	require.NoError(t, err)
	require.NoError(t, c2.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(testMsg)))
	c2.Close()
	assert.Len(t, env.jobs(t), 1, "only the complete message is queued")
}
