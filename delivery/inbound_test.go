package delivery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
)

const testMsg = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello Bob.\r\n"

func smtpCode(t *testing.T, err error) (int, smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	require.True(t, errors.As(err, &se), "want an SMTP error, got %v", err)
	return se.Code, se.EnhancedCode
}

// readRaw returns the bytes an incoming job names: its Body or its blob.
func readRaw(t *testing.T, s *dedup.Store, j *IncomingJob) string {
	t.Helper()
	rc, err := j.openRaw(context.Background(), s)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

func TestInboundQueuesOneJob(t *testing.T) {
	env := newEnv(t, nil)
	require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net", "Carol@Example.net"}, testMsg))

	jobs := env.jobs(t)
	require.Len(t, jobs, 1, "one job per message, whatever the recipients")
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	assert.Equal(t, j.ID, jobs[0].Key, "the job key is the transaction ID")
	assert.Equal(t, "alice@example.org", j.From)
	assert.Equal(t, []Recipient{{"bob@example.net", "bob@example.net"}, {"Carol@Example.net", "carol@example.net"}}, j.Recipients)
	assert.Equal(t, "127.0.0.1", j.ClientIP)
	assert.Equal(t, "client.example.org", j.Helo)
	assert.Equal(t, testMsg, readRaw(t, env.blocks.Blobs, j), "the blob holds the bytes received")
	assert.True(t, strings.HasPrefix(j.Header, "Received: from client.example.org ([127.0.0.1])\r\n\tby mx.example.net with ESMTP id "+j.ID), j.Header)
	assert.Contains(t, j.Header, "\r\nAuthentication-Results: mx.example.net; spf=none")
	assert.True(t, strings.HasSuffix(j.Header, "\r\n"))
	assert.False(t, j.Junk)
}

func TestInboundUnknownRecipient(t *testing.T) {
	env := newEnv(t, &InboundOptions{Recipient: func(_ context.Context, addr string) (mailbricks.UserID, error) {
		if addr == "bob@example.net" {
			return "bob", nil
		}
		if addr == "tmp@example.net" {
			return "", mailbricks.Temporary(errors.New("directory down"))
		}
		return "", fmt.Errorf("lookup %s: %w", addr, ErrUnknownRecipient)
	}})
	err := env.send(t, "alice@example.org", []string{"nobody@example.net"}, testMsg)
	code, enh := smtpCode(t, err)
	assert.Equal(t, 550, code)
	assert.Equal(t, smtp.EnhancedCode{5, 1, 1}, enh)

	code, enh = smtpCode(t, env.send(t, "alice@example.org", []string{"tmp@example.net"}, testMsg))
	assert.Equal(t, 451, code, "a temporary lookup failure is 451")
	assert.Equal(t, smtp.EnhancedCode{4, 3, 0}, enh)

	require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
	jobs := env.jobs(t)
	require.Len(t, jobs, 1)
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	assert.Equal(t, mailbricks.UserID("bob"), j.Recipients[0].User)
}

func TestInboundMessageSize(t *testing.T) {
	env := newEnv(t, &InboundOptions{MaxMessageBytes: 1000})
	big := testMsg + strings.Repeat("0123456789abcdef\r\n", 100)

	rc := dialRaw(t, env.addr)
	rc.expect(220)
	rc.write("EHLO client.example.org\r\n")
	assert.Contains(t, rc.expect(250), "SIZE 1000", "SIZE is advertised")
	code, msg := rc.cmd("MAIL FROM:<alice@example.org> SIZE=2000\r\n")
	assert.Equal(t, 552, code, msg)
	assert.True(t, strings.HasPrefix(msg, "5.3.4"), msg)

	code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, big))
	assert.Equal(t, 552, code)
	assert.Equal(t, smtp.EnhancedCode{5, 3, 4}, enh)
	assert.Empty(t, env.jobs(t), "nothing is queued for a message over the limit")
}

func TestInboundMaxRecipients(t *testing.T) {
	env := newEnv(t, &InboundOptions{MaxRecipients: 2})
	code, _ := smtpCode(t, env.send(t, "alice@example.org", []string{"a@example.net", "b@example.net", "c@example.net"}, testMsg))
	assert.Equal(t, 452, code)
}

func TestInboundConnectionLimit(t *testing.T) {
	env := newEnv(t, &InboundOptions{MaxConnsPerIP: 1})
	first := dialRaw(t, env.addr)
	first.expect(220)
	second := dialRaw(t, env.addr)
	code, msg := second.reply()
	assert.Equal(t, 421, code)
	assert.True(t, strings.HasPrefix(msg, "4.7.0"), msg)

	first.cmd("QUIT\r\n")
	first.conn.Close()
	require.Eventually(t, func() bool {
		c := dialRaw(t, env.addr)
		code, _ := c.reply()
		c.conn.Close()
		return code == 220
	}, 10*time.Second, 10*time.Millisecond, "a closed connection frees its slot")
}

// fakeClock is a settable clock for the rate limits.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestInboundConnectionRate(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t, &InboundOptions{ConnRatePerIP: 2, Now: clock.Now})
	for i := range 2 {
		c := dialRaw(t, env.addr)
		code, _ := c.reply()
		assert.Equal(t, 220, code, "connection %d is within the rate", i)
	}
	c := dialRaw(t, env.addr)
	code, msg := c.reply()
	assert.Equal(t, 421, code)
	assert.True(t, strings.HasPrefix(msg, "4.7.0"), msg)

	clock.Add(30 * time.Second) // one token back
	c = dialRaw(t, env.addr)
	code, _ = c.reply()
	assert.Equal(t, 220, code, "the bucket refills with time")
}

func TestInboundMessageRate(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	env := newEnv(t, &InboundOptions{MessageRatePerIP: 1, Now: clock.Now})
	require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
	code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
	assert.Equal(t, 450, code)
	assert.Equal(t, smtp.EnhancedCode{4, 7, 1}, enh)
	clock.Add(time.Minute)
	require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
	assert.Len(t, env.jobs(t), 2)
}

func TestInboundReadTimeout(t *testing.T) {
	env := newEnv(t, &InboundOptions{ReadTimeout: 200 * time.Millisecond})
	rc := dialRaw(t, env.addr)
	rc.expect(220)
	// Send nothing: the server's read deadline passes (no sleep here: the
	// reply below blocks until the server gives up).
	code, msg := rc.reply()
	assert.Equal(t, 421, code, msg)
}

func TestInboundEnvelopeControls(t *testing.T) {
	env := newEnv(t, nil)
	for _, tc := range []struct{ name, cmd string }{
		{"NUL in MAIL", "MAIL FROM:<al\x00ice@example.org>\r\n"},
		{"CR in MAIL", "MAIL FROM:<al\rice@example.org>\r\n"},
		{"TAB in MAIL", "MAIL FROM:<al\tice@example.org>\r\n"},
		{"DEL in MAIL", "MAIL FROM:<al\x7fice@example.org>\r\n"},
		{"bad domain", "MAIL FROM:<alice@exa mple.org>\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, env.addr)
			rc.expect(220)
			rc.write("EHLO client.example.org\r\n")
			rc.expect(250)
			code, msg := rc.cmd(tc.cmd)
			assert.Equal(t, 5, code/100, "%d %s", code, msg)
		})
	}
	t.Run("CR in RCPT", func(t *testing.T) {
		rc := dialRaw(t, env.addr)
		rc.expect(220)
		rc.write("EHLO client.example.org\r\n")
		rc.expect(250)
		rc.write("MAIL FROM:<alice@example.org>\r\n")
		rc.expect(250)
		code, msg := rc.cmd("RCPT TO:<bob\r@example.net>\r\n")
		assert.Equal(t, 5, code/100, "%d %s", code, msg)
		code, msg = rc.cmd("RCPT TO:<bob\x00@example.net>\r\n")
		assert.Equal(t, 5, code/100, "%d %s", code, msg)
	})
	for _, helo := range []string{"bad\x00name", "bad\rname", "bad_\x01", "a..b"} {
		t.Run(fmt.Sprintf("EHLO %q", helo), func(t *testing.T) {
			rc := dialRaw(t, env.addr)
			rc.expect(220)
			code, msg := rc.cmd("EHLO " + helo + "\r\n")
			assert.Equal(t, 501, code, msg)
			code, msg = rc.cmd("MAIL FROM:<alice@example.org>\r\n")
			assert.Equal(t, 5, code/100, "no transaction after a bad EHLO: %d %s", code, msg)
		})
	}
	t.Run("bad EHLO repeated", func(t *testing.T) {
		rc := dialRaw(t, env.addr)
		rc.expect(220)
		rc.write("EHLO client.example.org\r\n")
		rc.expect(250)
		rc.cmd("EHLO bad\x00name\r\n")
		code, msg := rc.cmd("MAIL FROM:<alice@example.org>\r\n")
		assert.Equal(t, 5, code/100, "a repeated EHLO is validated too: %d %s", code, msg)
	})
	assert.Empty(t, env.jobs(t))
}

func TestInboundSmuggling(t *testing.T) {
	env := newEnv(t, nil)
	hdr := "From: alice@example.org\r\nSubject: x\r\n\r\n"
	smuggled := "MAIL FROM:<admin@example.net>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\nFrom: admin@example.net\r\n\r\nforged\r\n"
	for _, tc := range []struct {
		name, data string
		code       int
		enh        string
	}{
		{"LF.CRLF", hdr + "hi\n.\r\n" + smuggled, 550, "5.5.2"},
		{"LF.LF", hdr + "hi\n.\n" + smuggled, 550, "5.5.2"},
		{"CRLF.LF", hdr + "hi\r\n.\n" + smuggled, 550, "5.5.2"},
		{"CR.CR", hdr + "hi\r.\r" + smuggled, 550, "5.5.2"},
		{"bare LF in body", hdr + "line one\nline two\r\n", 550, "5.5.2"},
		{"bare CR in body", hdr + "line one\rline two\r\n", 550, "5.5.2"},
		{"bare LF in header", "From: alice@example.org\nSubject: x\r\n\r\nhi\r\n", 550, "5.5.2"},
		{"NUL", hdr + "hi\x00there\r\n", 550, "5.6.0"},
		{"too many fields", strings.Repeat("X-A: b\r\n", DefaultMaxHeaderFields+1) + "\r\nhi\r\n", 552, "5.3.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, env.addr)
			rc.start("alice@example.org", "bob@example.net")
			rc.write(tc.data + ".\r\n")
			code, msg := rc.reply()
			assert.Equal(t, tc.code, code, msg)
			assert.True(t, strings.HasPrefix(msg, tc.enh), msg)
			// The session goes on: a clean message on the same connection
			// is accepted.
			c, m := rc.cmd("MAIL FROM:<alice@example.org>\r\n")
			require.Equal(t, 250, c, m)
			c, m = rc.cmd("RCPT TO:<bob@example.net>\r\n")
			require.Equal(t, 250, c, m)
			c, m = rc.cmd("DATA\r\n")
			require.Equal(t, 354, c, m)
			c, m = rc.cmd(testMsg + ".\r\n")
			require.Equal(t, 250, c, m)

			jobs := env.jobs(t)
			require.Len(t, jobs, 1, "only the clean message is queued")
			j, err := ParseIncomingJob(jobs[0].Payload)
			require.NoError(t, err)
			assert.Equal(t, testMsg, readRaw(t, env.blocks.Blobs, j))
			require.NoError(t, env.blocks.Queue.Ack(context.Background(), jobs[0]))
		})
	}
}

func TestInboundStorageFailure(t *testing.T) {
	t.Run("queue", func(t *testing.T) {
		env := newEnv(t, nil)
		require.NoError(t, env.blocks.Queue.Close())
		code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
		assert.Equal(t, 451, code)
		assert.Equal(t, smtp.EnhancedCode{4, 3, 0}, enh)
	})
	t.Run("blobs", func(t *testing.T) {
		env := newEnv(t, &InboundOptions{InlineMax: -1}) // a small message goes to the blob store too
		require.NoError(t, env.blocks.Blobs.Close())
		code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, testMsg))
		assert.Equal(t, 451, code)
		assert.Equal(t, smtp.EnhancedCode{4, 3, 0}, enh)
		assert.Empty(t, env.jobs(t))
	})
}

func TestInboundLongLines(t *testing.T) {
	env := newEnv(t, &InboundOptions{MaxHeaderLineBytes: 1000})
	rc := dialRaw(t, env.addr)
	rc.start("alice@example.org", "bob@example.net")
	code, msg := rc.cmd("Subject: " + strings.Repeat("x", 1200) + "\r\n\r\nhi\r\n.\r\n")
	assert.Equal(t, 552, code, msg)
	assert.True(t, strings.HasPrefix(msg, "5.3.4"), msg)

	rc = dialRaw(t, env.addr)
	rc.start("alice@example.org", "bob@example.net")
	rc.write("Subject: x\r\n\r\n" + strings.Repeat("y", DefaultMaxLineBytes+10) + "\r\n.\r\n")
	code, msg = rc.reply()
	assert.Equal(t, 5, code/100, "a line over MaxLineBytes in the body: %d %s", code, msg)
	assert.Empty(t, env.jobs(t))
}

// TestInboundBDAT sends with CHUNKING (RFC 3030), which go-smtp
// advertises: the same checks and hand-off apply.
func TestInboundBDAT(t *testing.T) {
	env := newEnv(t, nil)
	rc := dialRaw(t, env.addr)
	rc.expect(220)
	rc.write("EHLO client.example.org\r\n")
	assert.Contains(t, rc.expect(250), "CHUNKING")
	rc.write("MAIL FROM:<alice@example.org>\r\n")
	rc.expect(250)
	rc.write("RCPT TO:<bob@example.net>\r\n")
	rc.expect(250)
	half := len(testMsg) / 2
	rc.write(fmt.Sprintf("BDAT %d\r\n%s", half, testMsg[:half]))
	rc.expect(250)
	rc.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(testMsg)-half, testMsg[half:]))
	rc.expect(250)

	bad := "Subject: x\r\n\r\nbare\nLF\r\n"
	rc.write("MAIL FROM:<alice@example.org>\r\n")
	rc.expect(250)
	rc.write("RCPT TO:<bob@example.net>\r\n")
	rc.expect(250)
	rc.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(bad), bad))
	code, msg := rc.reply()
	assert.Equal(t, 550, code, msg)

	jobs := env.jobs(t)
	require.Len(t, jobs, 1)
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	assert.Equal(t, testMsg, readRaw(t, env.blocks.Blobs, j))
}

// TestInboundInlineMax sends messages around InlineMax: up to it the job
// carries the bytes (version 2, nothing in the blob store), above it the
// blob store holds them (version 1); both read back exactly, also when
// the DATA checks refuse a message after the first InlineMax bytes.
func TestInboundInlineMax(t *testing.T) {
	const max = 200
	env := newEnv(t, &InboundOptions{InlineMax: max})
	msgOf := func(size int) string {
		m := testMsg
		for len(m)+72+2 <= size {
			m += "." + strings.Repeat("a", 69) + "\r\n" // dot-stuffed on the wire
		}
		m += strings.Repeat("b", size-len(m)-2) + "\r\n"
		require.Len(t, m, size)
		return m
	}
	for _, size := range []int{len(testMsg) + 2, max - 1, max, max + 1, max + 2, 3 * max, 20 << 10} {
		msg := msgOf(size)
		require.NoError(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, msg), "size %d", size)
		jobs := env.jobs(t)
		require.Len(t, jobs, 1)
		j, err := ParseIncomingJob(jobs[0].Payload)
		require.NoError(t, err)
		assert.Equal(t, size <= max, j.inline(), "size %d: inline", size)
		assert.Equal(t, int64(size), j.size())
		assert.Regexp(t, `^Received: from client\.example\.org \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.net with ESMTP id `+j.ID+
			`\r\n\tfor <bob@example\.net>;\r\n\t[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [-+]\d{4}\r\nAuthentication-Results: `, j.Header)
		assert.Equal(t, msg, readRaw(t, env.blocks.Blobs, j), "size %d: bytes intact", size)
		_, err = env.blocks.Blobs.Stat(context.Background(), dedup.Ref{Hash: sha256.Sum256([]byte(msg)), Size: int64(size)})
		if size <= max {
			assert.ErrorIs(t, err, dedup.ErrNotFound, "size %d: not in the blob store", size)
		} else {
			assert.NoError(t, err, "size %d: in the blob store", size)
		}
	}
	for _, size := range []int{max / 2, 2 * max} {
		bad := msgOf(size)
		bad = bad[:len(bad)-4] + "\x00" + bad[len(bad)-3:] // a NUL near the end
		code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, bad))
		assert.Equal(t, 550, code, "size %d", size)
		assert.Equal(t, smtp.EnhancedCode{5, 6, 0}, enh, "size %d", size)
		assert.Empty(t, env.jobs(t), "size %d", size)
	}
}

func TestParseIncomingJobVersions(t *testing.T) {
	ref := dedup.Ref{Hash: sha256.Sum256([]byte("x")), Size: 10}
	base := IncomingJob{ID: "tx", Recipients: []Recipient{{"bob@example.net", "bob@example.net"}}}
	for _, tc := range []struct {
		name  string
		edit  func(j *IncomingJob)
		valid bool
	}{
		{"v1 blob", func(j *IncomingJob) { j.Version, j.Blob = 1, ref }, true},
		{"v1 without blob", func(j *IncomingJob) { j.Version, j.Body = 1, []byte("x") }, false},
		{"v1 blob and body", func(j *IncomingJob) { j.Version, j.Blob, j.Body = 1, ref, []byte("x") }, false},
		{"v2 body", func(j *IncomingJob) { j.Version, j.Body = 2, []byte("0123456789") }, true},
		{"v2 empty body", func(j *IncomingJob) { j.Version, j.Body = 2, []byte{} }, true},
		{"v2 with blob", func(j *IncomingJob) { j.Version, j.Blob, j.Body = 2, ref, []byte("x") }, false},
		{"v2 drop in body", func(j *IncomingJob) { j.Version, j.Body, j.Drop = 2, []byte("0123456789"), [][2]int64{{2, 10}} }, true},
		{"v2 drop past body", func(j *IncomingJob) { j.Version, j.Body, j.Drop = 2, []byte("0123456789"), [][2]int64{{2, 11}} }, false},
		{"v3", func(j *IncomingJob) { j.Version, j.Body = 3, []byte("x") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := base
			tc.edit(&j)
			payload, err := j.marshal()
			require.NoError(t, err)
			got, err := ParseIncomingJob(payload)
			if !tc.valid {
				assert.ErrorIs(t, err, ErrInvalidJob)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, string(j.Body), string(got.Body))
			assert.Equal(t, j.Blob, got.Blob)
		})
	}
}
