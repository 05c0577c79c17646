package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
)

// TestMailFlow: a message sent in with swaks appears in the event stream,
// in the folder listing and in search; marking it read changes the unread
// count (and is pushed as a flags event); sending through the API and
// through submission leaves copies in Sent.
func TestMailFlow(t *testing.T) {
	s := newServer(t, "")
	s.user("alice@example.test", "alice-password")
	s.user("bob@example.test", "bob-password")
	s.start()
	alice := s.client("alice@example.test", "alice-password")
	testMailFlow(t, s, s, alice)

	// API send: 202, copy in Sent at once, queued for the outbound worker
	// (which delivers it to bob in place: TestLocalSend).
	var sent struct {
		ID     string      `json:"id"`
		Status string      `json:"status"`
		Sent   messageJSON `json:"sent"`
	}
	alice.call(t, "POST", "/api/send", map[string]any{
		"to": []string{"Bob <bob@example.test>"}, "subject": "Lunch?", "text": "At noon?\nBring the slides.",
		"attachments": []map[string]string{{"filename": "slides.txt", "content_type": "text/plain", "content": base64.StdEncoding.EncodeToString([]byte("slide 1\r\n"))}},
	}, 202, &sent)
	assert.Equal(t, "queued", sent.Status)
	assert.Equal(t, "Sent", sent.Sent.Folder)
	assert.False(t, sent.Sent.Unread)
	var full messageJSON
	alice.call(t, "GET", "/api/messages/"+sent.Sent.ID, nil, 200, &full)
	require.Len(t, full.Attachments, 1)
	assert.Equal(t, "slides.txt", full.Attachments[0].Filename)
	code, body := alice.request(t, "GET", full.Attachments[0].URL, nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, "slide 1\r\n", string(body))

	// Submission with AUTH: a Sent copy, and the wrong password is 535.
	swaks(t, s.sub, "alice@example.test", "bob@example.test", "--auth", "PLAIN", "--auth-user", "alice@example.test",
		"--auth-password", "alice-password", "--header", "Subject: via submission")
	waitFor(t, 10*time.Second, "Sent copy of the submission", func() bool { return alice.folder(t, "Sent").Total == 2 })
	out, err := execSwaks(s.sub, "alice@example.test", "bob@example.test", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "wrong")
	assert.Error(t, err)
	assert.Contains(t, out, "535")

	s.stop()
	// Restart: everything is still there.
	s.start()
	assert.Equal(t, int64(2), alice.folder(t, "Sent").Total)
	assert.Len(t, alice.all(t, "INBOX"), 1)
}

// testMailFlow sends a message in through in's SMTP port and checks it
// through api's HTTP API as c (in and api may be two instances).
func testMailFlow(t *testing.T, in, api *server, c *client) {
	ev := c.events(t)
	token := "zq" + strings.ToLower(rand.Text()[:10])
	swaks(t, in.smtp, "carol@example.org", c.user, "--header", "Subject: Quarterly report "+token,
		"--body", "The numbers for "+token+" are in.", "--attach", "@"+writeFile(t, "report.csv", "a,b\r\n1,2\r\n"))

	got := ev.next(t, 30*time.Second, func(e eventJSON) bool { return e.Kind == "append" && e.Folder == "INBOX" })
	require.NotNil(t, got.Message)
	assert.Equal(t, "Quarterly report "+token, got.Message.Subject)
	assert.True(t, got.Message.Unread)

	var lr listResp
	c.call(t, "GET", "/api/messages?folder=INBOX&unread=true", nil, 200, &lr)
	require.Len(t, lr.Messages, 1)
	m := lr.Messages[0]
	assert.Equal(t, got.ID, m.ID)
	assert.Equal(t, "carol@example.org", m.From[0].Email)
	assert.True(t, m.HasAttachments)
	assert.Equal(t, int64(1), c.folder(t, "INBOX").Unread)

	// The append event reports the mailbox commit; the index write follows
	// it inside the same Append (mailbox.Store.Watch), so a search right on
	// the event may miss the message for a moment, most visibly when the
	// event crossed instances through PostgreSQL.
	var sr searchResp
	waitFor(t, 10*time.Second, "search finds "+token, func() bool {
		sr = c.search(t, token)
		return sr.Total == 1
	})
	require.Equal(t, 1, sr.Total, "search %s", token)
	assert.Equal(t, m.ID, sr.Hits[0].ID)
	assert.Equal(t, 1, c.search(t, "from:carol has:attachment is:unread "+token).Total)
	assert.Equal(t, 0, c.search(t, "from:dave "+token).Total)

	var full messageJSON
	c.call(t, "GET", "/api/messages/"+m.ID, nil, 200, &full)
	require.Len(t, full.Attachments, 1)
	assert.Equal(t, "report.csv", full.Attachments[0].Filename)
	code, body := c.request(t, "GET", full.Attachments[0].URL, nil)
	assert.Equal(t, 200, code)
	assert.Equal(t, "a,b\r\n1,2\r\n", string(body))
	code, body = c.request(t, "GET", "/api/messages/"+m.ID+"/raw", nil)
	assert.Equal(t, 200, code)
	assert.Contains(t, string(body), "Subject: Quarterly report "+token)

	// Mark read: unread count 0, a flags event, is:unread no longer matches.
	var after messageJSON
	c.call(t, "POST", "/api/messages/"+m.ID+"/read", nil, 200, &after)
	assert.False(t, after.Unread)
	assert.Equal(t, int64(0), c.folder(t, "INBOX").Unread)
	fl := ev.next(t, 30*time.Second, func(e eventJSON) bool { return e.Kind == "flags" && e.ID == m.ID })
	assert.Contains(t, fl.Flags, `\Seen`)
	assert.Equal(t, 0, c.search(t, "is:unread "+token).Total)
	c.call(t, "POST", "/api/messages/"+m.ID+"/unread", nil, 200, &after)
	assert.True(t, after.Unread)
	assert.Equal(t, int64(1), c.folder(t, "INBOX").Unread)
	c.call(t, "POST", "/api/messages/"+m.ID+"/read", nil, 200, nil)

	// Flags, move and back.
	c.call(t, "POST", "/api/messages/"+m.ID+"/flags", map[string]any{"add": []string{`\Flagged`, "work"}}, 200, &after)
	assert.Contains(t, after.Flags, `\Flagged`)
	assert.Contains(t, after.Flags, "work")
	assert.Equal(t, 1, c.search(t, "is:starred label:work "+token).Total)
	c.call(t, "POST", "/api/messages/"+m.ID+"/move", map[string]any{"folder": "Archive"}, 200, &after)
	assert.Equal(t, "Archive", after.Folder)
	assert.Equal(t, 1, c.search(t, "in:Archive "+token).Total)
	c.call(t, "POST", "/api/messages/"+m.ID+"/move", map[string]any{"folder": "INBOX"}, 200, &after)
	assert.Equal(t, "INBOX", after.Folder)
}

func writeFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestBearerToken: POST /api/login gives a token that works instead of the
// password; a tampered token, and a token after a password change, do not.
func TestBearerToken(t *testing.T) {
	s := newServer(t, "")
	s.user("alice@example.test", "alice-password")
	s.user("bob@example.test", "bob-password")
	s.start()
	var login struct {
		Token string `json:"token"`
	}
	anon := s.client("", "")
	anon.call(t, "POST", "/api/login", map[string]string{"username": "alice@example.test", "password": "wrong-password"}, 401, nil)
	anon.call(t, "POST", "/api/login", map[string]string{"username": "Alice@Example.test", "password": "alice-password"}, 200, &login)
	c := &client{base: anon.base, token: login.Token}
	var me map[string]string
	c.call(t, "GET", "/api/me", nil, 200, &me)
	assert.Equal(t, "alice@example.test", me["user"])
	// Swap in bob's name: the MAC no longer matches.
	parts := strings.Split(login.Token, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte("bob@example.test"))
	(&client{base: anon.base, token: strings.Join(parts, ".")}).call(t, "GET", "/api/me", nil, 401, nil)
	// A password change revokes the token (user passwd while serving).
	out, err := execCmd(binary, append(append([]string{}, s.args...), "user", "passwd", "alice@example.test", "-password", "new-password")...)
	require.NoError(t, err, out)
	c.call(t, "GET", "/api/me", nil, 401, nil)
	s.client("alice@example.test", "new-password").call(t, "GET", "/api/me", nil, 200, nil)
}

// TestAttachmentStoredOnce: 50 different messages carrying the same 1 MB
// attachment, one to each of 50 users, leave that attachment's bytes on
// disk once.
func TestAttachmentStoredOnce(t *testing.T) {
	const users = 50
	s := newServer(t, "", "-gc-interval", "500ms", "-blob-grace", "2s")
	for i := range users {
		s.user(fmt.Sprintf("u%02d@example.test", i), "password-"+fmt.Sprint(i))
	}
	s.start()
	attachment := make([]byte, 1<<20)
	_, _ = rand.Read(attachment)
	enc := base64.StdEncoding.EncodeToString(attachment)
	var b64 strings.Builder
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc + "\r\n")
	before := dirBytes(t, filepath.Join(s.data, "blobs"))
	for i := range users {
		to := fmt.Sprintf("u%02d@example.test", i)
		msg := "From: carol@example.org\r\nTo: " + to + "\r\nSubject: the deck, copy " + fmt.Sprint(i) + "\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello " + to + ", here is the deck.\r\n" +
			"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=deck.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			b64.String() + "--b--\r\n"
		require.NoError(t, sendPlain(s.smtp, "carol@example.org", to, msg))
	}
	for i := range users {
		c := s.client(fmt.Sprintf("u%02d@example.test", i), "password-"+fmt.Sprint(i))
		waitFor(t, 60*time.Second, "delivery to "+c.user, func() bool { return c.folder(t, "INBOX").Total == 1 })
		if i == users-1 || i == 0 {
			var m messageJSON
			lr := c.all(t, "INBOX")
			c.call(t, "GET", "/api/messages/"+lr[0].ID, nil, 200, &m)
			require.Len(t, m.Attachments, 1)
			code, body := c.request(t, "GET", m.Attachments[0].URL, nil)
			require.Equal(t, 200, code)
			require.True(t, bytes.Equal(attachment, body), "attachment bytes of %s", c.user)
		}
	}
	// The incoming bodies are unlinked after delivery and collected after
	// the grace period; what stays is one copy of the attachment plus the
	// small parts.
	encodedSize := int64(b64.Len())
	var after int64
	deadline := time.Now().Add(90 * time.Second)
	for {
		after = dirBytes(t, filepath.Join(s.data, "blobs", "blobs"))
		if after < 2*encodedSize || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("50 messages x %d-byte attachment (%d bytes encoded): blob files %d bytes on disk (blobs dir before %d); without dedup >= %d",
		len(attachment), encodedSize, after, before, users*encodedSize)
	assert.Less(t, after, 2*encodedSize, "the attachment is stored once")
	assert.GreaterOrEqual(t, after, int64(len(attachment)), "the attachment is stored")
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	require.NoError(t, err)
	return n
}

// TestIsolation: bob's credentials never reach alice's messages,
// attachments, search hits or events, whatever IDs he guesses, over HTTP
// and SMTP AUTH.
func TestIsolation(t *testing.T) {
	s := newServer(t, "")
	s.user("alice@example.test", "alice-password")
	s.user("bob@example.test", "bob-password")
	s.start()
	testIsolation(t, s, s)
}

func testIsolation(t *testing.T, in, api *server) {
	alice := api.client("alice@example.test", "alice-password")
	bob := api.client("bob@example.test", "bob-password")
	bobEvents := bob.events(t)
	aliceEvents := alice.events(t)
	secret := "zsecret" + strings.ToLower(rand.Text()[:8])
	swaks(t, in.smtp, "carol@example.org", "alice@example.test", "--header", "Subject: "+secret,
		"--body", secret+" body", "--attach", "@"+writeFile(t, "secret.txt", secret))
	ev := aliceEvents.next(t, 30*time.Second, func(e eventJSON) bool { return e.Kind == "append" })
	id := ev.ID

	// Every route with alice's message ID answers bob 404, changing nothing.
	for _, rq := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/messages/" + id, nil},
		{"GET", "/api/messages/" + id + "/raw", nil},
		{"GET", "/api/messages/" + id + "/attachments/0", nil},
		{"POST", "/api/messages/" + id + "/read", nil},
		{"POST", "/api/messages/" + id + "/unread", nil},
		{"POST", "/api/messages/" + id + "/flags", map[string]any{"add": []string{`\Deleted`}}},
		{"POST", "/api/messages/" + id + "/move", map[string]any{"folder": "Trash"}},
		{"DELETE", "/api/messages/" + id, nil},
	} {
		code, body := bob.request(t, rq.method, rq.path, rq.body)
		assert.Equal(t, 404, code, "bob %s %s: %s", rq.method, rq.path, body)
		assert.NotContains(t, string(body), secret)
	}
	var m messageJSON
	alice.call(t, "GET", "/api/messages/"+id, nil, 200, &m)
	assert.True(t, m.Unread)
	assert.Equal(t, "INBOX", m.Folder)
	assert.Empty(t, m.Flags)

	// Guessed IDs: a fresh UUIDv7, IDs next to alice's, a malformed one.
	guesses := []string{mailbricks.NewMessageID().String(), mailbricks.NewMessageIDAt(time.Now().Add(-time.Second)).String()}
	if b := []byte(id); len(b) > 0 {
		// The neighbour ID: another hex digit at the end.
		if b[len(b)-1] == '0' {
			b[len(b)-1] = '1'
		} else {
			b[len(b)-1] = '0'
		}
		guesses = append(guesses, string(b))
	}
	for _, g := range guesses {
		code, _ := bob.request(t, "GET", "/api/messages/"+g, nil)
		assert.Equal(t, 404, code)
	}
	code, _ := bob.request(t, "GET", "/api/messages/../../messages/"+id, nil)
	assert.NotEqual(t, 200, code)
	code, _ = bob.request(t, "GET", "/api/messages/not-an-id", nil)
	assert.Equal(t, 400, code)

	// Search, listing and folders show bob nothing of alice's.
	assert.Equal(t, 0, bob.search(t, secret).Total)
	assert.Equal(t, 0, bob.search(t, "in:anywhere").Total)
	for _, f := range []string{"INBOX", "Archive", "Trash"} {
		code, body := bob.request(t, "GET", "/api/messages?folder="+f, nil)
		assert.NotContains(t, string(body), secret, "bob lists %s (%d)", f, code)
	}
	assert.Equal(t, 1, alice.search(t, secret).Total)
	testIMAPIsolation(t, api, secret)

	// Alice's change after all of bob's attempts; then bob's stream must
	// not have carried any of alice's events.
	alice.call(t, "POST", "/api/messages/"+id+"/read", nil, 200, nil)
	aliceEvents.next(t, 30*time.Second, func(e eventJSON) bool { return e.Kind == "flags" && e.ID == id })
	swaks(t, in.smtp, "carol@example.org", "bob@example.test", "--header", "Subject: for bob")
	var seen []eventJSON
	bobEvents.next(t, 30*time.Second, func(e eventJSON) bool {
		seen = append(seen, e)
		return e.Kind == "append"
	})
	for _, e := range seen {
		assert.NotEqual(t, id, e.ID, "bob's stream carried alice's event %+v", e)
		if e.Message != nil {
			assert.Equal(t, "for bob", e.Message.Subject)
		}
	}

	// Credentials: bob's password does not open alice's account, and bob
	// cannot send as alice over submission.
	(&client{base: alice.base, user: "alice@example.test", pw: "bob-password"}).call(t, "GET", "/api/messages", nil, 401, nil)
	out, err := execSwaks(in.sub, "bob@example.test", "carol@example.org", "--auth", "PLAIN", "--auth-user", "alice@example.test", "--auth-password", "bob-password")
	assert.Error(t, err)
	assert.Contains(t, out, "535")
	out, err = execSwaks(in.sub, "alice@example.test", "carol@example.org", "--auth", "PLAIN", "--auth-user", "bob@example.test", "--auth-password", "bob-password")
	assert.Error(t, err)
	assert.Contains(t, out, "553")
}

func execSwaks(server, from, to string, args ...string) (string, error) {
	all := append([]string{"--server", server, "--from", from, "--to", to, "--helo", "client.example.org", "--timeout", "30"}, args...)
	return execCmd("/usr/bin/swaks", all...)
}
