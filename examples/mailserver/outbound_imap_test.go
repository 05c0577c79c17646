package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// imapLogin connects to the server's IMAP port over loopback (no TLS, which
// the server allows there) and logs in.
func imapLogin(t *testing.T, s *server, user, pw string, o *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.imap, o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Login(user, pw).Wait(), "IMAP LOGIN %s", user)
	return c
}

// imapMessages selects folder and returns its messages by UID, with
// their flags and envelopes.
func imapMessages(t *testing.T, c *imapclient.Client, folder string) map[imap.UID]*imapclient.FetchMessageBuffer {
	t.Helper()
	sel, err := c.Select(folder, nil).Wait()
	require.NoError(t, err)
	out := map[imap.UID]*imapclient.FetchMessageBuffer{}
	if sel.NumMessages == 0 {
		return out
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	require.NoError(t, err)
	for _, m := range msgs {
		out[m.UID] = m
	}
	return out
}

func hasFlag(fs []imap.Flag, f imap.Flag) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

// TestIMAP: mail that swaks sends in is seen over IMAP (imapclient and
// mbsync); \Seen set over IMAP changes the API's unread count and marking
// read or unread in the API changes the flags IMAP sees; an IDLE client is
// told of mail delivered over SMTP while it waits.
func TestIMAP(t *testing.T) {
	s := newServer(t, "")
	s.user("alice@example.test", "alice-password")
	s.start()
	alice := s.client("alice@example.test", "alice-password")

	// IDLE first, so the delivery below happens while it waits.
	var mu sync.Mutex
	var exists uint32
	existsCh := make(chan uint32, 16)
	idler := imapLogin(t, s, "alice@example.test", "alice-password", &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				exists = *d.NumMessages
				mu.Unlock()
				existsCh <- *d.NumMessages
			}
		}},
	})
	sel, err := idler.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	require.Zero(t, sel.NumMessages)
	idle, err := idler.Idle()
	require.NoError(t, err)

	token := "zimap" + strings.ToLower(rand.Text()[:8])
	swaks(t, s.smtp, "carol@example.org", "alice@example.test", "--header", "Subject: over imap "+token, "--body", "body "+token)
	select {
	case n := <-existsCh:
		assert.Equal(t, uint32(1), n, "IDLE: * 1 EXISTS")
	case <-time.After(30 * time.Second):
		t.Fatal("the IDLE client was not told of the new message within 30s")
	}
	require.NoError(t, idle.Close())
	require.NoError(t, idle.Wait())

	// A second client fetches it; the API shows the same UID, unread.
	c := imapLogin(t, s, "alice@example.test", "alice-password", nil)
	msgs := imapMessages(t, c, "INBOX")
	require.Len(t, msgs, 1)
	var uid imap.UID
	for u, m := range msgs {
		uid = u
		assert.Equal(t, "over imap "+token, m.Envelope.Subject)
		assert.False(t, hasFlag(m.Flags, imap.FlagSeen))
	}
	api := alice.all(t, "INBOX")
	require.Len(t, api, 1)
	assert.Equal(t, uint32(uid), api[0].UID)
	assert.Equal(t, int64(1), alice.folder(t, "INBOX").Unread)
	hits, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{token}}, nil).Wait()
	require.NoError(t, err)
	assert.Equal(t, []imap.UID{uid}, hits.AllUIDs(), "IMAP SEARCH through the index")

	// \Seen over IMAP: the API's unread count drops.
	require.NoError(t, c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Close())
	waitFor(t, 10*time.Second, "unread 0 in the API", func() bool { return alice.folder(t, "INBOX").Unread == 0 })

	// Unread in the API: IMAP sees \Seen gone.
	alice.call(t, "POST", "/api/messages/"+api[0].ID+"/unread", nil, 200, nil)
	waitFor(t, 10*time.Second, "\\Seen cleared over IMAP", func() bool {
		m := imapMessages(t, c, "INBOX")[uid]
		return m != nil && !hasFlag(m.Flags, imap.FlagSeen)
	})
	alice.call(t, "POST", "/api/messages/"+api[0].ID+"/read", nil, 200, nil)
	waitFor(t, 10*time.Second, "\\Seen set over IMAP", func() bool {
		m := imapMessages(t, c, "INBOX")[uid]
		return m != nil && hasFlag(m.Flags, imap.FlagSeen)
	})
	mu.Lock()
	assert.Equal(t, uint32(1), exists)
	mu.Unlock()

	// mbsync copies the INBOX to a Maildir: the file is the message.
	requireBinary(t, "/usr/bin/mbsync")
	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail") + "/"
	require.NoError(t, os.MkdirAll(maildir, 0o700))
	host, port, _ := net.SplitHostPort(s.imap)
	cfg := filepath.Join(dir, "mbsyncrc")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`IMAPAccount alice
Host %s
Port %s
User alice@example.test
Pass alice-password
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account alice

MaildirStore local
Path %s
Inbox %sINBOX

Channel sync
Far :remote:
Near :local:
Patterns *
Create Near
SyncState *
Sync Pull
`, host, port, maildir, maildir)), 0o600))
	out, err := exec.Command("/usr/bin/mbsync", "-c", cfg, "-a").CombinedOutput()
	require.NoError(t, err, "mbsync: %s", out)
	var files []string
	for _, sub := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(maildir, "INBOX", sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(maildir, "INBOX", sub, e.Name()))
			require.NoError(t, err)
			files = append(files, string(b))
			assert.True(t, strings.Contains(e.Name(), ":2,S"), "the \\Seen flag reached the Maildir name: %s", e.Name())
		}
	}
	require.Len(t, files, 1, "mbsync pulled the one message")
	assert.Contains(t, files[0], "Subject: over imap "+token)
	assert.Contains(t, files[0], "body "+token)
	s.stop()
}

// testIMAPIsolation: bob's IMAP login never shows alice's folders or
// messages (secret is in a message of alice's INBOX), and bob's password
// does not open alice's account over IMAP.
func testIMAPIsolation(t *testing.T, s *server, secret string) {
	alice := imapLogin(t, s, "alice@example.test", "alice-password", nil)
	folder := "Private " + secret
	require.NoError(t, alice.Create(folder, nil).Wait())
	require.NotEmpty(t, imapMessages(t, alice, "INBOX"))

	bob := imapLogin(t, s, "bob@example.test", "bob-password", nil)
	list, err := bob.List("", "*", nil).Collect()
	require.NoError(t, err)
	for _, l := range list {
		assert.NotContains(t, l.Mailbox, secret, "bob's LIST shows alice's folder")
	}
	_, err = bob.Select(folder, nil).Wait()
	assert.Error(t, err, "bob cannot SELECT alice's folder")
	for _, m := range imapMessages(t, bob, "INBOX") {
		assert.NotContains(t, m.Envelope.Subject, secret, "bob's INBOX holds alice's message")
	}
	hits, err := bob.UIDSearch(&imap.SearchCriteria{Text: []string{secret}}, nil).Wait()
	require.NoError(t, err)
	assert.Empty(t, hits.AllUIDs(), "bob's SEARCH finds alice's message")

	c, err := imapclient.DialInsecure(s.imap, nil)
	require.NoError(t, err)
	defer c.Close()
	assert.Error(t, c.Login("alice@example.test", "bob-password").Wait(), "bob's password opens alice's IMAP")
	assert.Error(t, c.Login("alice@example.test\x00", "alice-password").Wait())
}

// TestLocalSend: alice sends to bob through submission and through POST
// /api/send; the outbound worker's same-domain shortcut puts each message
// in bob's Inbox exactly once, and alice keeps a Sent copy of each.
func TestLocalSend(t *testing.T) {
	s := newServer(t, "")
	s.user("alice@example.test", "alice-password")
	s.user("bob@example.test", "bob-password")
	s.start()
	testLocalSend(t, s, s)
	s.stop()
}

func testLocalSend(t *testing.T, via, api *server) {
	alice := api.client("alice@example.test", "alice-password")
	bob := api.client("bob@example.test", "bob-password")
	token := "zlocal" + strings.ToLower(rand.Text()[:8])
	sentBefore := alice.folder(t, "Sent").Total
	swaks(t, via.sub, "alice@example.test", "bob@example.test", "--auth", "PLAIN", "--auth-user", "alice@example.test",
		"--auth-password", "alice-password", "--header", "Subject: submitted "+token)
	via.client("alice@example.test", "alice-password").call(t, "POST", "/api/send", map[string]any{
		"to": []string{"Bob <BOB@example.test>"}, "cc": []string{"bob@example.test"}, "subject": "api " + token, "text": "hello " + token,
	}, 202, nil)

	waitFor(t, 30*time.Second, "both messages in bob's Inbox", func() bool { return bob.search(t, token).Total >= 2 })
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive meanwhile
	subjects := map[string]int{}
	for _, m := range bob.all(t, "INBOX") {
		if strings.Contains(m.Subject, token) {
			subjects[m.Subject]++
			assert.Equal(t, "alice@example.test", m.From[0].Email)
		}
	}
	assert.Equal(t, map[string]int{"submitted " + token: 1, "api " + token: 1}, subjects, "each message once in bob's Inbox")
	waitFor(t, 10*time.Second, "two Sent copies", func() bool { return alice.folder(t, "Sent").Total == sentBefore+2 })
	assert.Empty(t, alice.all(t, "INBOX"), "no DSN or copy in alice's Inbox")
	var sent int
	for _, m := range alice.all(t, "Sent") {
		if strings.Contains(m.Subject, token) {
			sent++
		}
	}
	assert.Equal(t, 2, sent, "alice's Sent copies")
}

// fakeMX is a remote MX host in the test process: it accepts every
// recipient but bad@ (550 5.1.1) and later@ (451 4.2.0 to its first RCPT),
// and keeps each message received.
type fakeMX struct {
	mu       sync.Mutex
	got      []fakeMsg
	attempts map[string]int
	l        net.Listener
}

type fakeMsg struct {
	from  string
	rcpts []string
	data  []byte
}

func newFakeMX(t *testing.T) *fakeMX {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mx := &fakeMX{attempts: map[string]int{}, l: l}
	srv := smtp.NewServer(mx)
	srv.Domain = "mx.remote.test"
	srv.AllowInsecureAuth = true
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return mx
}

func (mx *fakeMX) port() string { _, p, _ := net.SplitHostPort(mx.l.Addr().String()); return p }

func (mx *fakeMX) NewSession(*smtp.Conn) (smtp.Session, error) { return &fakeSession{mx: mx}, nil }

type fakeSession struct {
	mx    *fakeMX
	from  string
	rcpts []string
}

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mx.mu.Lock()
	s.mx.attempts[to]++
	n := s.mx.attempts[to]
	s.mx.mu.Unlock()
	switch local, _, _ := strings.Cut(to, "@"); {
	case local == "bad":
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	case local == "later" && n == 1:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try again later"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mx.mu.Lock()
	s.mx.got = append(s.mx.got, fakeMsg{from: s.from, rcpts: append([]string(nil), s.rcpts...), data: b})
	s.mx.mu.Unlock()
	return nil
}

func (s *fakeSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *fakeSession) Logout() error { return nil }

func (mx *fakeMX) received() []fakeMsg {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return append([]fakeMsg(nil), mx.got...)
}

func (mx *fakeMX) tries(addr string) int {
	mx.mu.Lock()
	defer mx.mu.Unlock()
	return mx.attempts[addr]
}

var dkimRecordRE = regexp.MustCompile(`publish at (\S+)\._domainkey\.<your domain> TXT "([^"]+)"`)

// TestOutbound: a message to a remote domain (pointed at an in-process MX
// by -dns-override) is delivered with a DKIM signature that verifies
// against the key the server printed; the recipient refused with 550 gets
// alice a DSN in her Inbox; the one answered 451 is retried and delivered.
func TestOutbound(t *testing.T) {
	mx := newFakeMX(t)
	s := newServer(t, "", "-dns-override", "remote.test=127.0.0.1", "-mx-port", mx.port(), "-outbound-retry", "1s")
	s.user("alice@example.test", "alice-password")
	s.start()
	m := dkimRecordRE.FindStringSubmatch(s.out.String())
	require.NotNil(t, m, "the banner prints the DKIM record: %s", s.out)
	selector, record := m[1], m[2]
	alice := s.client("alice@example.test", "alice-password")
	token := "zout" + strings.ToLower(rand.Text()[:8])
	alice.call(t, "POST", "/api/send", map[string]any{
		"to": []string{"ok@remote.test", "bad@remote.test", "later@remote.test"}, "subject": "remote " + token, "text": "hello " + token,
	}, 202, nil)

	waitFor(t, 60*time.Second, "delivery to ok@ and, after a retry, later@", func() bool {
		var n int
		for _, g := range mx.received() {
			n += len(g.rcpts)
		}
		return n >= 2
	})
	got := mx.received()
	var rcpts []string
	for _, g := range got {
		rcpts = append(rcpts, g.rcpts...)
		assert.Equal(t, "alice@example.test", g.from)
		assert.Contains(t, string(g.data), "hello "+token)
		verifs, err := dkim.VerifyWithOptions(bytes.NewReader(g.data), &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
			if domain == selector+"._domainkey.example.test" {
				return []string{record}, nil
			}
			return nil, fmt.Errorf("no TXT for %s", domain)
		}})
		require.NoError(t, err)
		require.Len(t, verifs, 1, "one DKIM signature")
		assert.NoError(t, verifs[0].Err, "DKIM verifies")
		assert.Equal(t, "example.test", verifs[0].Domain)
	}
	assert.ElementsMatch(t, []string{"ok@remote.test", "later@remote.test"}, rcpts, "each accepted recipient once")
	assert.Len(t, got, 2, "two transactions: ok@ at once, later@ on the retry")
	assert.GreaterOrEqual(t, mx.tries("later@remote.test"), 2, "later@ was retried after its 451")
	assert.Equal(t, 1, mx.tries("bad@remote.test"), "bad@ is not retried after its 550")

	// The DSN for bad@ in alice's Inbox.
	var dsn messageJSON
	waitFor(t, 30*time.Second, "a DSN in alice's Inbox", func() bool {
		for _, m := range alice.all(t, "INBOX") {
			dsn = m
			return true
		}
		return false
	})
	code, raw := alice.request(t, "GET", "/api/messages/"+dsn.ID+"/raw", nil)
	require.Equal(t, 200, code)
	assert.Contains(t, string(raw), "multipart/report")
	assert.Contains(t, string(raw), "bad@remote.test")
	assert.Contains(t, string(raw), "5.1.1")
	assert.Contains(t, string(raw), "remote "+token, "the DSN holds the original header section")
	assert.NotContains(t, string(raw), "Final-Recipient: rfc822; ok@remote.test")
	time.Sleep(2 * time.Second) // later's retry is done; no second DSN
	assert.Len(t, alice.all(t, "INBOX"), 1, "exactly one DSN")
	assert.Equal(t, int64(1), alice.folder(t, "Sent").Total)
	s.stop()
}

// TestBounceAddress: with -bounce-address, the envelope sender is the
// tagged bounce address; a late bounce sent back to it is taken by the
// incoming side (250), not stored in anyone's mailbox, and recorded: the
// recipient is suppressed, so the next message to it fails at once.
func TestBounceAddress(t *testing.T) {
	mx := newFakeMX(t)
	s := newServer(t, "", "-dns-override", "remote.test=127.0.0.1", "-mx-port", mx.port(), "-bounce-address", "bounces@example.test")
	s.user("alice@example.test", "alice-password")
	s.start()
	alice := s.client("alice@example.test", "alice-password")
	alice.call(t, "POST", "/api/send", map[string]any{"to": []string{"ok@remote.test"}, "subject": "tagged", "text": "x"}, 202, nil)
	waitFor(t, 30*time.Second, "delivery", func() bool { return len(mx.received()) == 1 })
	from := mx.received()[0].from
	require.Regexp(t, `^bounces\+[A-Za-z0-9_-]+@example\.test$`, from)

	report := "From: MAILER-DAEMON@remote.test\r\nTo: " + from + "\r\nSubject: Undelivered\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nlate bounce\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n" +
		"Final-Recipient: rfc822; ok@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 gone\r\n" +
		"--b--\r\n"
	require.NoError(t, sendPlain(s.smtp, "", from, report))
	time.Sleep(2 * time.Second)
	assert.Empty(t, alice.all(t, "INBOX"), "the report is not in the sender's Inbox")

	// Feedback recorded the hard bounce: ok@ is now suppressed, so the
	// next message to it is never attempted and fails at once with a DSN.
	alice.call(t, "POST", "/api/send", map[string]any{"to": []string{"ok@remote.test"}, "subject": "again", "text": "x"}, 202, nil)
	waitFor(t, 30*time.Second, "a DSN for the suppressed recipient", func() bool { return len(alice.all(t, "INBOX")) == 1 })
	dsn := alice.all(t, "INBOX")[0]
	code, raw := alice.request(t, "GET", "/api/messages/"+dsn.ID+"/raw", nil)
	require.Equal(t, 200, code)
	assert.Contains(t, string(raw), "ok@remote.test")
	assert.Contains(t, string(raw), "5.7.1", "suppressed")
	assert.Len(t, mx.received(), 1, "the suppressed recipient was not attempted")
	out, err := execSwaks(s.smtp, "x@remote.test", "bounces@example.test")
	assert.NoError(t, err, "the untagged bounce address is accepted: %s", out)
	s.stop()
	assert.NotContains(t, s.errOut.String(), "level=ERROR")
}

// TestDistributedIMAPAndSend: two instances on the shared PostgreSQL,
// NATS, Redis and S3. An IMAP client of one IDLEs while mail enters the
// other; local mail sent through one lands once in bob's Inbox, seen
// through the other; remote mail sent through one is delivered once, its
// 550 recipient bouncing to alice's Inbox (the delivery state is in Redis,
// shared by both instances' workers).
func TestDistributedIMAPAndSend(t *testing.T) {
	flags := distributedFlags(t)
	mx := newFakeMX(t)
	flags = append(flags, "-dns-override", "remote.test=127.0.0.1", "-mx-port", mx.port())
	dir := t.TempDir()
	a := newServer(t, filepath.Join(dir, "a"), flags...)
	b := newServer(t, filepath.Join(dir, "b"), flags...)
	a.user("alice@example.test", "alice-password")
	a.user("bob@example.test", "bob-password")
	a.start()
	b.start()

	existsCh := make(chan uint32, 16)
	idler := imapLogin(t, b, "bob@example.test", "bob-password", &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				existsCh <- *d.NumMessages
			}
		}},
	})
	_, err := idler.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	idle, err := idler.Idle()
	require.NoError(t, err)
	swaks(t, a.smtp, "carol@example.org", "bob@example.test", "--header", "Subject: via a")
	select {
	case n := <-existsCh:
		assert.Equal(t, uint32(1), n)
	case <-time.After(30 * time.Second):
		t.Fatal("b's IDLE client was not told of mail delivered through a")
	}
	require.NoError(t, idle.Close())
	require.NoError(t, idle.Wait())

	testLocalSend(t, a, b)

	alice := b.client("alice@example.test", "alice-password")
	a.client("alice@example.test", "alice-password").call(t, "POST", "/api/send", map[string]any{
		"to": []string{"ok@remote.test", "bad@remote.test"}, "subject": "remote", "text": "hello",
	}, 202, nil)
	waitFor(t, 60*time.Second, "delivery and the DSN", func() bool {
		return len(mx.received()) >= 1 && len(alice.all(t, "INBOX")) >= 1
	})
	time.Sleep(time.Second)
	require.Len(t, mx.received(), 1)
	assert.Equal(t, []string{"ok@remote.test"}, mx.received()[0].rcpts)
	assert.Len(t, alice.all(t, "INBOX"), 1, "one DSN")
	a.stop()
	b.stop()
}
