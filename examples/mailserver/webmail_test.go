package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// artifactsDir is where browser tests save screenshots: $MAILBRICKS_ARTIFACTS
// (kept after the run) or the test's temporary directory.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("MAILBRICKS_ARTIFACTS"); d != "" {
		d = filepath.Join(d, "webmail")
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// newBrowser starts headless Chromium with a fresh profile.
func newBrowser(t *testing.T) (context.Context, context.CancelFunc) {
	const chromium = "/usr/bin/chromium"
	requireBinary(t, chromium)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	return ctx, func() { cancelT(); cancelC(); cancelA() }
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	p := filepath.Join(dir, name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot %s", p)
}

// poll waits until the JavaScript expression is true.
func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	require.NoError(t, err, "waiting for %s (%s)", what, expr)
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err)
	return v
}

func mailText(from, to, subject, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), from, body)
}

// TestWebmailBrowser drives the webmail in headless Chromium: sign in, the
// list, a message, search, send with an attachment, live delivery without
// reload, and an HTML mail whose script does not run and whose remote image
// is not loaded.
func TestWebmailBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	ctx, cancel := newBrowser(t)
	defer cancel()
	dir := artifactsDir(t)

	// A "remote" server the HTML mail points at: nothing may reach it.
	var remoteHits atomic.Int64
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remoteHits.Add(1)
		w.Header().Set("Content-Type", "image/gif")
		io.WriteString(w, "GIF89a")
	}))
	defer remote.Close()

	s := newServer(t, "")
	const user, pw = "alice@example.test", "webmail-pw-1"
	s.user(user, pw)
	// The compose step writes to bob, a local user: the outbound worker
	// delivers to him in place, so nothing (no DSN for an unreachable
	// remote domain) lands in alice's inbox while the test reads it.
	s.user("bob@example.test", "webmail-pw-2")
	s.start()
	c := s.client(user, pw)

	require.NoError(t, sendPlain(s.smtp, "carol@example.org", user, mailText("Carol <carol@example.org>", user, "Quarterly report", "The numbers are in.\r\nRevenue is up.")))
	html := "From: News <news@example.org>\r\nTo: " + user + "\r\nSubject: Newsletter with tricks\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <news-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
		"<html><body><h1>Big news</h1><p>Hello <b>reader</b>.</p>" +
		"<script>parent.document.title='pwned'; fetch('" + remote.URL + "/script');</script>" +
		"<img src=\"" + remote.URL + "/pixel.gif\" alt=\"tracker\">" +
		"<div style=\"background:url(" + remote.URL + "/bg.png)\">styled</div>" +
		"<img src=x onerror=\"parent.document.title='pwned2'\">" +
		"</body></html>\r\n"
	require.NoError(t, sendPlain(s.smtp, "news@example.org", user, html))
	for i := range 60 {
		require.NoError(t, sendPlain(s.smtp, "bulk@example.org", user, mailText("bulk@example.org", user, fmt.Sprintf("Bulk %02d", i), "filler")))
	}
	waitFor(t, 30*time.Second, "62 messages in the inbox", func() bool { return c.folder(t, "INBOX").Total == 62 })

	base := "http://" + s.httpA + "/"
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.ID("login-user")),
	))
	shot(t, ctx, dir, "01-login")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("login-user"), user),
		chromedp.SendKeys(chromedp.ID("login-pw"), pw),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#msg-list li")),
	))
	// A marker that a reload would lose.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.__noReload = 1`)))
	poll(t, ctx, "inbox unread count", `[...document.querySelectorAll('#folder-list a')].some(a => a.textContent.includes('Inbox') && a.textContent.includes('62'))`)

	// Newest first, unread bold; the first page is 50, scrolling loads the rest by cursor.
	first := eval[string](t, ctx, `document.querySelector('#msg-list li .subject').textContent`)
	require.Equal(t, "Bulk 59", first)
	require.Equal(t, "700", eval[string](t, ctx, `getComputedStyle(document.querySelector('#msg-list li.unread .subject')).fontWeight`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('list-pane').scrollTop = 1e6`)))
	poll(t, ctx, "infinite scroll loads the second page", `document.querySelectorAll('#msg-list li').length === 62`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('list-pane').scrollTop = 0`)))
	shot(t, ctx, dir, "02-inbox")

	// Open the plain-text message: shown as text, marked read.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#msg-list li')].find(li => li.textContent.includes('Quarterly report')).click()`)))
	poll(t, ctx, "the message text", `document.getElementById('msg-text').textContent.includes('Revenue is up.')`)
	poll(t, ctx, "marked read", `!document.querySelector('#msg-list li.selected').classList.contains('unread')`)
	shot(t, ctx, dir, "03-message")
	var qid string
	for _, m := range c.all(t, "INBOX") {
		if m.Subject == "Quarterly report" {
			qid = m.ID
			require.False(t, m.Unread, "opening marks the message read")
		}
	}
	require.NotEmpty(t, qid)

	// Mark unread from the keyboard (Shift+U), then read again with the button.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), chromedp.KeyEvent("U")))
	waitFor(t, 10*time.Second, "marked unread over the API", func() bool {
		var m messageJSON
		c.call(t, "GET", "/api/messages/"+qid, nil, 200, &m)
		return m.Unread
	})
	poll(t, ctx, "the button offers to mark read", `document.getElementById('toggle-read-btn').textContent === 'Mark read'`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("toggle-read-btn"))))
	waitFor(t, 10*time.Second, "marked read over the API", func() bool {
		var m messageJSON
		c.call(t, "GET", "/api/messages/"+qid, nil, 200, &m)
		return !m.Unread
	})

	// The HTML mail: no script runs, nothing remote loads.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#msg-list li')].find(li => li.textContent.includes('Newsletter')).click()`)))
	poll(t, ctx, "the HTML frame", `!document.getElementById('msg-html').hidden && document.getElementById('msg-html').srcdoc.includes('Big news')`)
	time.Sleep(time.Second) // give a script or an image every chance
	require.Equal(t, "", eval[string](t, ctx, `document.getElementById('msg-html').getAttribute('sandbox')`), "the frame is sandboxed with no permissions")
	srcdoc := eval[string](t, ctx, `document.getElementById('msg-html').srcdoc`)
	require.NotContains(t, strings.ToLower(srcdoc), "<script")
	require.NotContains(t, srcdoc, remote.URL)
	require.NotContains(t, strings.ToLower(srcdoc), "onerror")
	require.Equal(t, "mailbricks webmail", eval[string](t, ctx, `document.title`), "a script in the mail changed the page")
	require.Zero(t, remoteHits.Load(), "the HTML mail loaded something remote")
	require.Contains(t, eval[string](t, ctx, `document.getElementById('msg-remote').textContent`), "Remote content blocked")
	shot(t, ctx, dir, "04-html-message")

	// Move it to Archive with the folder menu: it leaves the list, the
	// folder appears with its count.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('move-select'); s.value = 'Archive'; s.dispatchEvent(new Event('change')); })()`)))
	poll(t, ctx, "the message left the inbox list", `![...document.querySelectorAll('#msg-list li')].some(li => li.textContent.includes('Newsletter'))`)
	poll(t, ctx, "the Archive folder listed", `[...document.querySelectorAll('#folder-list a')].some(a => a.dataset.folder === 'Archive')`)
	waitFor(t, 10*time.Second, "moved over the API", func() bool { return c.folder(t, "Archive").Total == 1 })

	// Search with the Gmail-style query.
	require.True(t, eval[bool](t, ctx, `document.getElementById('read-pane').hidden`), "the reading pane closed after the move")
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("search"), "from:carol quarterly\r")))
	poll(t, ctx, "one search hit", `document.getElementById('list-title').textContent.includes('Search') && document.querySelectorAll('#msg-list li').length === 1 && document.querySelector('#msg-list li').textContent.includes('Quarterly report')`)
	shot(t, ctx, dir, "05-search")

	// Compose and send with an attachment.
	att := filepath.Join(t.TempDir(), "notes.txt")
	attBody := "attachment body " + strings.Repeat("x", 3000)
	require.NoError(t, os.WriteFile(att, []byte(attBody), 0o644))
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("compose-btn")),
		chromedp.WaitVisible(chromedp.ID("c-to")),
		chromedp.SendKeys(chromedp.ID("c-to"), "bob@example.test"),
		chromedp.SendKeys(chromedp.ID("c-subject"), "Notes attached"),
		chromedp.SendKeys(chromedp.ID("c-text"), "See the attachment."),
		chromedp.SetUploadFiles(chromedp.ID("c-files"), []string{att}),
	))
	shot(t, ctx, dir, "06-compose")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.ID("c-send"))))
	poll(t, ctx, "the compose dialog closes", `!document.getElementById('compose').open`)
	poll(t, ctx, "the Sent folder listed", `[...document.querySelectorAll('#folder-list a')].some(a => a.dataset.folder === 'Sent')`)
	var sent messageJSON
	waitFor(t, 10*time.Second, "the Sent copy", func() bool {
		for _, m := range c.all(t, "Sent") {
			if m.Subject == "Notes attached" {
				sent = m
				return true
			}
		}
		return false
	})
	var full messageJSON
	c.call(t, "GET", "/api/messages/"+sent.ID, nil, 200, &full)
	require.Len(t, full.Attachments, 1)
	require.Equal(t, "notes.txt", full.Attachments[0].Filename)
	code, got := c.request(t, "GET", full.Attachments[0].URL, nil)
	require.Equal(t, 200, code)
	require.Equal(t, attBody, string(got))

	// Open it in Sent: the attachment link downloads it.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#folder-list a')].find(a => a.dataset.folder === 'Sent').click()`)))
	poll(t, ctx, "the Sent list", `document.getElementById('list-title').textContent === 'Sent' && document.querySelectorAll('#msg-list li').length === 1`)
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#msg-list li').click()`)))
	poll(t, ctx, "the attachment link", `document.querySelector('#msg-attachments a.attachment') !== null`)
	require.Equal(t, "notes.txt", eval[string](t, ctx, `document.querySelector('#msg-attachments a.attachment').getAttribute('download')`))
	dl, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.querySelector('#msg-attachments a.attachment').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Equal(t, attBody, dl, "the attachment link downloads the attachment")

	// Back to the inbox; a message delivered over SMTP appears without reload.
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#folder-list a')].find(a => a.dataset.folder === 'INBOX').click()`)))
	poll(t, ctx, "the inbox again", `document.getElementById('list-title').textContent === 'Inbox' && document.querySelectorAll('#msg-list li').length >= 50`)
	poll(t, ctx, "the event stream is live", `document.body.dataset.live === '1'`)
	require.NoError(t, sendPlain(s.smtp, "erin@example.org", user, mailText("Erin <erin@example.org>", user, "Arrives live", "Pushed by the event stream.")))
	poll(t, ctx, "the new message at the top", `document.querySelector('#msg-list li .subject').textContent === 'Arrives live' && document.querySelector('#msg-list li').classList.contains('unread')`)
	require.Equal(t, 1, eval[int](t, ctx, `window.__noReload || 0`), "the page was reloaded")
	shot(t, ctx, dir, "07-live")

	// Keyboard: j/k move, o opens, # deletes (to Trash).
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), chromedp.KeyEvent("j"), chromedp.KeyEvent("k"), chromedp.KeyEvent("o")))
	poll(t, ctx, "opened by keyboard", `document.getElementById('msg-subject').textContent === 'Arrives live'`)
	require.NoError(t, chromedp.Do(ctx, chromedp.KeyEvent("#")))
	waitFor(t, 10*time.Second, "moved to Trash", func() bool {
		for _, m := range c.all(t, "Trash") {
			if m.Subject == "Arrives live" {
				return true
			}
		}
		return false
	})

	// Phone width: one pane at a time, still readable.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))))
	require.NoError(t, chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#msg-list li')].find(li => li.querySelector('.subject').textContent === 'Bulk 59').click()`)))
	poll(t, ctx, "the message on a phone", `document.getElementById('msg-subject').textContent === 'Bulk 59' && document.getElementById('msg-text').textContent.includes('filler')`)
	require.True(t, eval[bool](t, ctx, `getComputedStyle(document.getElementById('list-pane')).display === 'none'`), "on a phone the list hides while reading")
	require.True(t, eval[bool](t, ctx, `document.documentElement.scrollWidth <= 390`), "no horizontal scrolling at phone width")
	shot(t, ctx, dir, "08-phone")
	require.Zero(t, remoteHits.Load())
}
