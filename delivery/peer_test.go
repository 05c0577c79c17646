package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// Tests with real SMTP clients: swaks (plain, STARTTLS, AUTH PLAIN and
// LOGIN, attachments, a bare-LF body) and Postfix's smtp-source. They skip
// when the binary is absent, except under CI=true, where they fail.

// needBinary returns the path of a peer program, or skips the test.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI=true: the peer tests must run)", name)
	}
	t.Skipf("%s is not installed (it is required when CI=true)", name)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// peerOpts are Inbound options for peer tests: no per-IP limits (every
// peer connects from 127.0.0.1), STARTTLS with a test certificate.
func peerOpts(t *testing.T) *InboundOptions {
	cert := selfSigned(t, "mx.example.net")
	return &InboundOptions{
		MaxConnsPerIP:    -1,
		ConnRatePerIP:    -1,
		MessageRatePerIP: -1,
		TLSConfig:        &tls.Config{Certificates: []tls.Certificate{cert}},
	}
}

// swaks runs swaks against addr with args and returns its exit code and
// output.
func swaks(t *testing.T, addr string, args ...string) (int, string) {
	t.Helper()
	bin := needBinary(t, "swaks")
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"--server", host, "--port", port, "--helo", "client.example.org", "--timeout", "60"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err, "run swaks: %s", out)
	return -1, ""
}

// swaksData writes a DATA file for swaks --no-data-fixup: msg as sent on
// the wire (the caller dot-stuffs), followed by the end-of-data dot, to
// which swaks appends CRLF.
func swaksData(t *testing.T, msg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.eml")
	require.NoError(t, os.WriteFile(p, []byte(msg+"."), 0o600))
	return "@" + p
}

// peerMsg is a message as swaks sends it: its second body line starts
// with a dot, stuffed on the wire.
const (
	peerMsgWire = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: from swaks\r\n\r\nfirst line\r\n..a line starting with a dot\r\nlast line\r\n"
	peerMsg     = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: from swaks\r\n\r\nfirst line\r\n.a line starting with a dot\r\nlast line\r\n"
)

func TestPeerSwaksInbound(t *testing.T) {
	needBinary(t, "swaks")
	env := newEnv(t, peerOpts(t))

	// Plain: exit 0, one job, the blob is exactly the message (unstuffed).
	code, out := swaks(t, env.addr, "--from", "alice@example.org", "--to", "bob@example.net",
		"--no-data-fixup", "--data", swaksData(t, peerMsgWire))
	require.Equal(t, 0, code, "swaks plain:\n%s", out)
	assert.Contains(t, out, "<-  250 ")
	jobs := env.jobs(t)
	require.Len(t, jobs, 1, "one job for one 250")
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	assert.Equal(t, j.ID, jobs[0].Key)
	assert.False(t, j.TLS)
	assert.Equal(t, "client.example.org", j.Helo)
	assert.Equal(t, "alice@example.org", j.From)
	assert.Equal(t, []Recipient{{Address: "bob@example.net", User: "bob@example.net"}}, j.Recipients)
	assert.Equal(t, peerMsg, readRaw(t, env.blocks.Blobs, j), "blob bytes intact")
	assert.Contains(t, j.Header, "Received: from client.example.org ([127.0.0.1])")
	require.NoError(t, env.blocks.Queue.Ack(context.Background(), jobs[0]))

	// STARTTLS: swaks --tls must negotiate; the job says TLS.
	code, out = swaks(t, env.addr, "--tls", "--from", "alice@example.org", "--to", "bob@example.net",
		"--no-data-fixup", "--data", swaksData(t, peerMsgWire))
	require.Equal(t, 0, code, "swaks STARTTLS:\n%s", out)
	assert.Contains(t, out, "STARTTLS")
	jobs = env.jobs(t)
	require.Len(t, jobs, 1)
	j, err = ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	assert.True(t, j.TLS, "the message came under STARTTLS")
	assert.Contains(t, j.Header, " with ESMTPS id "+j.ID)
	assert.Equal(t, peerMsg, readRaw(t, env.blocks.Blobs, j))
	require.NoError(t, env.blocks.Queue.Ack(context.Background(), jobs[0]))

	// An attachment built by swaks: the MIME part decodes to the file.
	att := make([]byte, 48<<10)
	_, _ = rand.Read(att)
	attPath := filepath.Join(t.TempDir(), "report.bin")
	require.NoError(t, os.WriteFile(attPath, att, 0o600))
	code, out = swaks(t, env.addr, "--from", "alice@example.org", "--to", "bob@example.net",
		"--attach", "@"+attPath, "--hide-all")
	require.Equal(t, 0, code, "swaks attachment:\n%s", out)
	jobs = env.jobs(t)
	require.Len(t, jobs, 1)
	j, err = ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	got := attachment(t, []byte(readRaw(t, env.blocks.Blobs, j)), "report.bin")
	assert.True(t, bytes.Equal(att, got), "attachment bytes intact (%d bytes, got %d)", len(att), len(got))
	require.NoError(t, env.blocks.Queue.Ack(context.Background(), jobs[0]))

	// A bare LF in the body: 550 5.5.2 after the data, swaks exits 26
	// (server did not accept mail following data), nothing queued.
	code, out = swaks(t, env.addr, "--from", "alice@example.org", "--to", "bob@example.net",
		"--no-data-fixup", "--data", swaksData(t, "Subject: smuggle\r\n\r\nline one\nline two\r\n"))
	assert.Equal(t, 26, code, "swaks bare LF:\n%s", out)
	assert.Contains(t, out, "<** 550 5.5.2 ")
	assert.Empty(t, env.jobs(t), "no job for a refused message")

	// An unknown recipient at RCPT: swaks exits 24 (no RCPTs accepted).
	env2 := newEnv(t, &InboundOptions{Recipient: func(context.Context, string) (mailbricks.UserID, error) {
		return "", ErrUnknownRecipient
	}})
	code, out = swaks(t, env2.addr, "--from", "alice@example.org", "--to", "nobody@example.net", "--hide-all")
	assert.Equal(t, 24, code, "swaks unknown recipient:\n%s", out)
	assert.Empty(t, env2.jobs(t))
}

// attachment returns the decoded body of the MIME part named name in msg.
func attachment(t *testing.T, msg []byte, name string) []byte {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/mixed", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		require.NoError(t, err, "no part named %q", name)
		if p.FileName() != name {
			continue
		}
		require.Equal(t, "base64", strings.ToLower(p.Header.Get("Content-Transfer-Encoding")))
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		require.NoError(t, err)
		return b
	}
}

func TestPeerSwaksSubmission(t *testing.T) {
	needBinary(t, "swaks")
	env := newSubEnv(t, nil)

	for _, mech := range []string{"PLAIN", "LOGIN"} {
		code, out := swaks(t, env.addr, "--tls", "--auth", mech, "--auth-user", subUser, "--auth-password", subPass,
			"--from", subUser, "--to", "carol@remote.example",
			"--no-data-fixup", "--data", swaksData(t, peerMsgWire))
		require.Equal(t, 0, code, "swaks AUTH %s:\n%s", mech, out)
		jobs := env.outgoing(t)
		require.Len(t, jobs, 1, "AUTH %s: one outgoing job", mech)
		j := jobs[0]
		assert.Equal(t, mailbricks.UserID("alice"), j.User)
		assert.Equal(t, []string{"carol@remote.example"}, j.Recipients)
		assert.Equal(t, peerMsg, env.blob(t, j.Blob), "blob bytes intact")
		assert.Contains(t, j.Header, "Received: from client.example.org")
		assert.NotContains(t, j.Header, subPass, "the Received field does not leak the password")
		require.NoError(t, env.blocks.Blobs.Unlink(context.Background(), j.Blob, OutgoingBlobOwner(j.ID)))
		completeOutgoing(t, env)
	}
	_, sent := env.sent(t, "alice")
	assert.Len(t, sent, 2, "a Sent copy per message")

	// A wrong password: swaks exits 28 (error in AUTH), nothing queued.
	code, out := swaks(t, env.addr, "--tls", "--auth", "PLAIN", "--auth-user", subUser, "--auth-password", "wrong",
		"--from", subUser, "--to", "carol@remote.example", "--hide-all")
	assert.Equal(t, 28, code, "swaks wrong password:\n%s", out)
	// AUTH without TLS is not offered: swaks cannot authenticate.
	code, out = swaks(t, env.addr, "--auth", "PLAIN", "--auth-user", subUser, "--auth-password", subPass,
		"--from", subUser, "--to", "carol@remote.example", "--hide-all")
	assert.Equal(t, 28, code, "swaks AUTH without TLS:\n%s", out)
	assert.Empty(t, env.outgoing(t))
}

// completeOutgoing completes every leased outgoing job so the next lease
// sees only new ones.
func completeOutgoing(t *testing.T, env *subEnv) {
	t.Helper()
	jobs, err := env.blocks.Queue.Lease(context.Background(), DefaultOutgoingTopic, 100, time.Minute, nil)
	require.NoError(t, err)
	for _, j := range jobs {
		require.NoError(t, env.blocks.Queue.Ack(context.Background(), j))
	}
}

// TestPeerSmtpSource sends messages with Postfix's load generator over 8
// parallel sessions: smtp-source stops at the first non-2xx reply, so a
// clean exit means every message got 250, and there must be exactly one
// job per message, each with the message's bytes.
func TestPeerSmtpSource(t *testing.T) {
	bin := needBinary(t, "smtp-source")
	env := newEnv(t, peerOpts(t))
	const n, size = 64, 5000
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-s", "8", "-m", fmt.Sprint(n), "-l", fmt.Sprint(size),
		"-f", "source@example.org", "-t", "bob@example.net", "-M", "client.example.org", env.addr)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "smtp-source: %s", out)

	seen := map[string]bool{}
	var sizes []int
	for {
		jobs, err := env.blocks.Queue.Lease(context.Background(), DefaultTopic, 100, time.Minute, nil)
		require.NoError(t, err)
		if len(jobs) == 0 {
			break
		}
		for _, job := range jobs {
			j, err := ParseIncomingJob(job.Payload)
			require.NoError(t, err)
			require.False(t, seen[j.ID], "job %s twice", j.ID)
			seen[j.ID] = true
			b := readRaw(t, env.blocks.Blobs, j)
			require.NoError(t, checkData([]byte(b)), "stored bytes keep the rule")
			sizes = append(sizes, len(b))
			require.NoError(t, env.blocks.Queue.Ack(context.Background(), job))
		}
	}
	require.Len(t, seen, n, "exactly one job per message")
	for _, s := range sizes {
		assert.GreaterOrEqual(t, s, size, "message bytes intact")
	}
	t.Logf("smtp-source: %d messages of %d bytes, %d jobs", n, size, len(seen))
}

// checkData runs the smuggling and header rule over a whole message.
func checkData(b []byte) error {
	chk := newDataChecker(bytes.NewReader(b), DefaultMaxHeaderLineBytes, DefaultMaxHeaderBytes, DefaultMaxHeaderFields)
	_, err := io.Copy(io.Discard, chk)
	if err == nil {
		err = chk.err
	}
	return err
}

// TestPeerSwaksImplicitTLS submits over implicit TLS (port 465 style):
// the TLS listener wraps Submission.Listener, so go-smtp sees a *tls.Conn
// and offers AUTH without STARTTLS.
func TestPeerSwaksImplicitTLS(t *testing.T) {
	needBinary(t, "swaks")
	blocks, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	t.Cleanup(func() { blocks.Close() })
	cert := selfSigned(t, "smtp.example.net")
	sub, err := NewSubmission(blocks.Blobs, blocks.Queue, blocks.Mailbox, &SubmissionOptions{
		InboundOptions: InboundOptions{Hostname: "smtp.example.net"},
		Authenticate: func(_ context.Context, username, password string) (mailbricks.UserID, error) {
			if username == subUser && password == subPass {
				return "alice", nil
			}
			return "", ErrAuthFailed
		},
	})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := sub.NewServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(sub.Listener(l), &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close()
		<-done
	})

	code, out := swaks(t, l.Addr().String(), "--tls-on-connect", "--auth", "LOGIN", "--auth-user", subUser, "--auth-password", subPass,
		"--from", subUser, "--to", "carol@remote.example", "--no-data-fixup", "--data", swaksData(t, peerMsgWire))
	require.Equal(t, 0, code, "swaks implicit TLS:\n%s", out)
	env := &subEnv{blocks: blocks, sub: sub}
	jobs := env.outgoing(t)
	require.Len(t, jobs, 1)
	assert.Equal(t, peerMsg, env.blob(t, jobs[0].Blob))
	assert.Contains(t, jobs[0].Header, " with ESMTPSA id ")
}
