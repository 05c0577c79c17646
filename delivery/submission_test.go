package delivery

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
)

const (
	subUser = "alice@example.org"
	subPass = "correct horse"
)

// subEnv is a Submission on the embedded blocks in memory with STARTTLS,
// served on a loopback port. The only account is subUser/subPass, user
// "alice".
type subEnv struct {
	blocks *embedded.Blocks
	sub    *Submission
	addr   string
}

func newSubEnv(t *testing.T, mod func(*SubmissionOptions)) *subEnv {
	t.Helper()
	return newSubEnvOn(t, &embedded.Options{FS: vfs.NewMem()}, mod)
}

func newSubEnvOn(t *testing.T, eo *embedded.Options, mod func(*SubmissionOptions)) *subEnv {
	t.Helper()
	blocks, err := embedded.Open("mail", eo)
	require.NoError(t, err)
	t.Cleanup(func() { blocks.Close() })
	cert := selfSigned(t, "smtp.example.net")
	o := &SubmissionOptions{
		InboundOptions: InboundOptions{
			Hostname:  "smtp.example.net",
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		},
		AuthFailureDelay: -1, // TestSubmissionAuthLimits tests the delay
		Authenticate: func(_ context.Context, username, password string) (mailbricks.UserID, error) {
			if username == subUser && password == subPass {
				return "alice", nil
			}
			return "", ErrAuthFailed
		},
	}
	if mod != nil {
		mod(o)
	}
	sub, err := NewSubmission(blocks.Blobs, blocks.Queue, blocks.Mailbox, o)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := sub.NewServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(sub.Listener(l))
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close()
		<-done
	})
	return &subEnv{blocks: blocks, sub: sub, addr: l.Addr().String()}
}

// dialTLS connects with STARTTLS.
func (env *subEnv) dialTLS(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(env.addr, &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func (env *subEnv) outgoing(t *testing.T) []*OutgoingJob {
	t.Helper()
	jobs, err := env.blocks.Queue.Lease(context.Background(), DefaultOutgoingTopic, 100, time.Minute, nil)
	require.NoError(t, err)
	var out []*OutgoingJob
	for _, job := range jobs {
		j, err := ParseOutgoingJob(job.Payload)
		require.NoError(t, err)
		assert.Equal(t, j.ID, job.Key, "job key is the transaction ID")
		out = append(out, j)
	}
	return out
}

func (env *subEnv) blob(t *testing.T, ref dedup.Ref) string {
	t.Helper()
	rc, err := env.blocks.Blobs.Open(context.Background(), ref)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

func (env *subEnv) sent(t *testing.T, user mailbricks.UserID) ([]mailbox.Message, []string) {
	t.Helper()
	ctx := context.Background()
	page, err := env.blocks.Mailbox.List(ctx, user, mailbox.RoleFolder(mailbox.RoleSent), &mailbox.ListOptions{Limit: 100})
	require.NoError(t, err)
	var bodies []string
	for _, m := range page.Messages {
		rc, err := env.blocks.Mailbox.Open(ctx, user, m.ID)
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		bodies = append(bodies, string(b))
	}
	return page.Messages, bodies
}

func TestSubmissionSend(t *testing.T) {
	env := newSubEnv(t, nil)
	const bare = "From: Alice <alice@example.org>\r\nTo: carol@remote.example\r\nSubject: hi\r\n\r\nDate: not a header\r\nHello.\r\n"
	const full = "Message-ID: <own@example.org>\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\nFrom: alice@example.org\r\n\r\nHi.\r\n"

	c := env.dialTLS(t)
	ok, mechs := c.Extension("AUTH")
	require.True(t, ok, "AUTH offered after STARTTLS")
	assert.ElementsMatch(t, []string{"PLAIN", "LOGIN"}, strings.Fields(mechs))
	require.NoError(t, c.Auth(sasl.NewPlainClient("", subUser, subPass)))
	require.NoError(t, c.SendMail("Alice@Example.org", []string{"carol@remote.example", "dave@other.example"}, strings.NewReader(bare)))

	c2 := env.dialTLS(t)
	require.NoError(t, c2.Auth(sasl.NewLoginClient(subUser, subPass)))
	require.NoError(t, c2.SendMail(subUser, []string{"erin@remote.example"}, strings.NewReader(full)))

	jobs := env.outgoing(t)
	require.Len(t, jobs, 2, "one job per message on the outgoing topic")
	j := jobs[0]
	assert.Equal(t, mailbricks.UserID("alice"), j.User)
	assert.Equal(t, "Alice@Example.org", j.From)
	assert.Equal(t, []string{"carol@remote.example", "dave@other.example"}, j.Recipients)
	assert.Equal(t, "127.0.0.1", j.ClientIP)
	assert.Equal(t, bare, env.blob(t, j.Blob), "the blob is the message as received")
	received, added, ok := strings.Cut(j.Header, "Message-ID: ")
	require.True(t, ok, j.Header)
	added = "Message-ID: " + added
	assert.Equal(t, "Received: from localhost ([127.0.0.1])\r\n\t(authenticated user alice)\r\n\tby smtp.example.net with ESMTPSA id "+j.ID+";\r\n\t", received[:len(received)-len("Mon, 07 Dec 2026 01:33:26 +0000\r\n")], "Received field first")
	_, err := time.Parse(time.RFC1123Z, strings.TrimSpace(received[strings.LastIndex(received, ";")+1:]))
	require.NoError(t, err, "Received date in %q", received)
	assert.NotContains(t, j.Header, subPass)
	require.True(t, strings.HasPrefix(added, "Message-ID: <"+j.ID+"@smtp.example.net>\r\nDate: "), j.Header)
	date := strings.TrimSuffix(strings.SplitN(added, "Date: ", 2)[1], "\r\n")
	_, err = time.Parse(time.RFC1123Z, date)
	require.NoError(t, err, "Date field %q", date)
	require.NoError(t, env.blocks.Blobs.Unlink(context.Background(), j.Blob, OutgoingBlobOwner(j.ID)), "the blob is linked for the outbound worker")

	assert.True(t, strings.HasPrefix(jobs[1].Header, "Received: from localhost ([127.0.0.1])\r\n"), jobs[1].Header)
	assert.Contains(t, jobs[1].Header, "\r\n\tfor <erin@remote.example>;\r\n")
	assert.NotContains(t, jobs[1].Header, "Message-ID:", "a message with Message-ID and Date gets neither")
	assert.NotContains(t, jobs[1].Header, "Date:")
	assert.Equal(t, full, env.blob(t, jobs[1].Blob))

	msgs, bodies := env.sent(t, "alice")
	require.Len(t, bodies, 2, "each message has a Sent copy")
	assert.ElementsMatch(t, []string{added + bare, full}, bodies, "the Sent copy has the added fields but no Received")
	for _, m := range msgs {
		assert.Contains(t, m.Flags, mailbox.FlagSeen)
	}
}

func TestSubmissionWrongPassword(t *testing.T) {
	env := newSubEnv(t, nil)
	for _, cl := range []sasl.Client{
		sasl.NewPlainClient("", subUser, "wrong"),
		sasl.NewLoginClient(subUser, "wrong"),
		sasl.NewPlainClient("", "nobody@example.org", subPass),
	} {
		c := env.dialTLS(t)
		err := c.Auth(cl)
		code, enh := smtpCode(t, err)
		assert.Equal(t, 535, code)
		assert.Equal(t, smtp.EnhancedCode{5, 7, 8}, enh)
		code, enh = smtpCode(t, c.Mail(subUser, nil))
		assert.Equal(t, 530, code, "no transaction after a failed AUTH")
		assert.Equal(t, smtp.EnhancedCode{5, 7, 0}, enh)
	}
	assert.Empty(t, env.outgoing(t))
}

func TestSubmissionAuthNeedsTLS(t *testing.T) {
	env := newSubEnv(t, nil)
	rc := dialRaw(t, env.addr)
	rc.expect(220)
	rc.write("EHLO client.example.org\r\n")
	caps := ""
	for {
		line, err := rc.r.ReadLine()
		require.NoError(t, err)
		caps += line + "\n"
		if strings.HasPrefix(line, "250 ") {
			break
		}
	}
	assert.Contains(t, caps, "STARTTLS")
	assert.NotContains(t, caps, "AUTH", "AUTH is not offered before TLS")
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + subUser + "\x00" + subPass))
	code, msg := rc.cmd("AUTH PLAIN " + ir + "\r\n")
	// go-smtp answers this itself: 523 5.7.10 (RFC 5248 "Encryption
	// Needed"), before the session sees the credentials.
	assert.Equal(t, 523, code, msg)
	assert.True(t, strings.HasPrefix(msg, "5.7.10 "), msg)
	code, msg = rc.cmd("MAIL FROM:<" + subUser + ">\r\n")
	assert.Equal(t, 530, code, msg)
	assert.True(t, strings.HasPrefix(msg, "5.7.0 "), msg)
}

func TestSubmissionInsecureAuthLoopback(t *testing.T) {
	env := newSubEnv(t, func(o *SubmissionOptions) { o.AllowInsecureAuth = true })
	c, err := smtp.Dial(env.addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Hello("client.example.org"))
	ok, _ := c.Extension("AUTH")
	require.True(t, ok, "AUTH offered on loopback with AllowInsecureAuth")
	require.NoError(t, c.Auth(sasl.NewPlainClient("", subUser, subPass)))
	require.NoError(t, c.SendMail(subUser, []string{"carol@remote.example"}, strings.NewReader(testMsg)))
	assert.Len(t, env.outgoing(t), 1)
}

func TestSubmissionForeignFrom(t *testing.T) {
	env := newSubEnv(t, nil)
	c := env.dialTLS(t)
	require.NoError(t, c.Auth(sasl.NewPlainClient("", subUser, subPass)))
	for _, from := range []string{"mallory@example.org", "alice@example.org.evil", ""} {
		code, enh := smtpCode(t, c.Mail(from, nil))
		assert.Equal(t, 553, code, "MAIL FROM:<%s>", from)
		assert.Equal(t, smtp.EnhancedCode{5, 7, 1}, enh)
	}

	// A SenderAllowed hook widens the default.
	env2 := newSubEnv(t, func(o *SubmissionOptions) {
		o.SenderAllowed = func(_ context.Context, user mailbricks.UserID, _, from string) bool {
			return user == "alice" && strings.HasSuffix(from, "@example.org")
		}
	})
	c2 := env2.dialTLS(t)
	require.NoError(t, c2.Auth(sasl.NewPlainClient("", subUser, subPass)))
	require.NoError(t, c2.SendMail("alias@example.org", []string{"carol@remote.example"}, strings.NewReader(testMsg)))
	code, enh := smtpCode(t, c2.Mail("alice@elsewhere.example", nil))
	assert.Equal(t, 553, code)
	assert.Equal(t, smtp.EnhancedCode{5, 7, 1}, enh)
	assert.Len(t, env2.outgoing(t), 1)
}

func TestSubmissionUnauthenticatedMail(t *testing.T) {
	env := newSubEnv(t, nil)
	c := env.dialTLS(t)
	code, enh := smtpCode(t, c.Mail(subUser, nil))
	assert.Equal(t, 530, code)
	assert.Equal(t, smtp.EnhancedCode{5, 7, 0}, enh)
	assert.Empty(t, env.outgoing(t))
}

func TestSubmissionRefusesBareLF(t *testing.T) {
	// go-smtp's client turns a bare LF into CRLF, so this one goes raw,
	// with AUTH allowed on loopback.
	env := newSubEnv(t, func(o *SubmissionOptions) { o.AllowInsecureAuth = true })
	rc := dialRaw(t, env.addr)
	rc.expect(220)
	code, msg := rc.cmd("EHLO client.example.org\r\n")
	require.Equal(t, 250, code, msg)
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + subUser + "\x00" + subPass))
	code, msg = rc.cmd("AUTH PLAIN " + ir + "\r\n")
	require.Equal(t, 235, code, msg)
	for _, c := range []string{"MAIL FROM:<" + subUser + ">\r\n", "RCPT TO:<carol@remote.example>\r\n"} {
		code, msg = rc.cmd(c)
		require.Equal(t, 250, code, msg)
	}
	code, msg = rc.cmd("DATA\r\n")
	require.Equal(t, 354, code, msg)
	code, msg = rc.cmd("Subject: x\r\n\r\nbad\n.\nline\r\n.\r\n")
	assert.Equal(t, 550, code, msg)
	assert.True(t, strings.HasPrefix(msg, "5.5.2 "), msg)
	assert.Empty(t, env.outgoing(t))
	_, bodies := env.sent(t, "alice")
	assert.Empty(t, bodies, "no Sent copy of a refused message")
}

func TestSubmissionSentFailure(t *testing.T) {
	// The mailbox refuses messages over 100 bytes; the blob store and the
	// queue take them, so only the Sent append fails.
	env := newSubEnvOn(t, &embedded.Options{FS: vfs.NewMem(), Mailbox: &mailbox.Options{MaxMessageSize: 100}}, nil)
	c := env.dialTLS(t)
	require.NoError(t, c.Auth(sasl.NewPlainClient("", subUser, subPass)))
	big := "Subject: x\r\n\r\n" + strings.Repeat("long line of text\r\n", 20)
	code, enh := smtpCode(t, c.SendMail(subUser, []string{"carol@remote.example"}, strings.NewReader(big)))
	assert.Equal(t, 451, code)
	assert.Equal(t, smtp.EnhancedCode{4, 3, 0}, enh)
	assert.Empty(t, env.outgoing(t), "not sent without its Sent copy")
	_, bodies := env.sent(t, "alice")
	assert.Empty(t, bodies)
}

func TestNewSubmissionOptions(t *testing.T) {
	blocks, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	defer blocks.Close()
	_, err = NewSubmission(blocks.Blobs, blocks.Queue, blocks.Mailbox, nil)
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = NewSubmission(blocks.Blobs, blocks.Queue, nil, &SubmissionOptions{Authenticate: func(context.Context, string, string) (mailbricks.UserID, error) { return "", nil }})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

func TestHeaderScan(t *testing.T) {
	for _, tc := range []struct {
		msg             string
		messageID, date bool
	}{
		{"Subject: x\r\n\r\nMessage-ID: <body>\r\nDate: body\r\n", false, false},
		{"MESSAGE-ID : <a@b>\r\nSubject: x\r\n\tDate: folded\r\n\r\n", true, false},
		{"X-Long-Header-Name-Here: y\r\ndate: Mon, 7 Dec 2026 00:00:00 +0000\r\n\r\nbody\r\n", false, true},
	} {
		for _, chunk := range []int{1, 7, 4096} {
			h := &headerScan{r: &chunkReader{s: tc.msg, n: chunk}}
			b, err := io.ReadAll(h)
			require.NoError(t, err)
			require.Equal(t, tc.msg, string(b))
			assert.Equal(t, tc.messageID, h.messageID, fmt.Sprintf("%q chunk %d", tc.msg, chunk))
			assert.Equal(t, tc.date, h.date, fmt.Sprintf("%q chunk %d", tc.msg, chunk))
		}
	}
}

// chunkReader returns s at most n bytes a Read.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.s))
	copy(p, c.s[:k])
	c.s = c.s[k:]
	return k, nil
}
