package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/mailbox"
)

// fuzzAPI is the API handler over embedded blocks in a temporary
// directory, with one user who has one message.
func fuzzAPI(t testing.TB) (http.Handler, string, string) {
	fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
	cfg := flags(fs)
	require.NoError(t, fs.Parse([]string{"-data", filepath.Join(t.TempDir(), "data"), "-hostname", "fuzz.example.test"}))
	require.NoError(t, cfg.check())
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	b, err := openBlocks(ctx, cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	// The cheapest bcrypt cost, so inputs with wrong passwords do not slow
	// the fuzzer down.
	hash, err := bcrypt.GenerateFromPassword([]byte("fuzz-password"), bcrypt.MinCost)
	require.NoError(t, err)
	require.NoError(t, b.Users.Add(ctx, "fuzz@example.test", string(hash)))
	a := &app{cfg: cfg, b: b, accounts: newAccounts(b.Users, bcrypt.MinCost), log: log}
	a.submission, err = delivery.NewSubmission(b.Blobs, b.Queue, b.Mailbox, &delivery.SubmissionOptions{
		InboundOptions: delivery.InboundOptions{Hostname: cfg.Hostname, Logger: log},
		Authenticate:   a.accounts.Verify,
	})
	require.NoError(t, err)
	msg := "From: a@example.org\r\nTo: fuzz@example.test\r\nSubject: seed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" +
		"Content-Type: text/plain\r\n\r\nhello\r\n--x\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nAAAA\r\n--x--\r\n"
	m, err := b.Mailbox.Append(ctx, "fuzz@example.test", mailbox.Inbox, strings.NewReader(msg), nil)
	require.NoError(t, err)
	tok, _, err := a.accounts.Token(ctx, "fuzz@example.test", time.Now())
	require.NoError(t, err)
	return (&api{a: a, log: log}).handler(), m.ID.String(), tok
}

var fuzzMethods = []string{"GET", "POST", "DELETE", "PUT", "HEAD", "PATCH"}

// FuzzAPI sends arbitrary methods, paths, queries, bodies and credentials
// to the API: no input may cause a 500 or a panic, and every error is a
// JSON error object.
func FuzzAPI(f *testing.F) {
	h, id, tok := fuzzAPI(f)
	seeds := []struct {
		method uint8
		path   string
		query  string
		body   string
		auth   uint8
	}{
		{0, "/api/folders", "", "", 0},
		{1, "/api/folders", "", `{"folder":"Projects/2025"}`, 0},
		{1, "/api/folders", "", `{"folder":"a//b"}`, 1},
		{0, "/api/messages", "folder=INBOX&unread=true&limit=5", "", 0},
		{0, "/api/messages", "folder=%00&limit=-1&cursor=zz", "", 1},
		{0, "/api/messages", "cursor=AAAAAAAAAAAAAAAAAAAAAA&unread=maybe", "", 0},
		{0, "/api/messages/" + id, "", "", 0},
		{0, "/api/messages/" + id + "/raw", "", "", 1},
		{0, "/api/messages/" + id + "/attachments/0", "", "", 0},
		{0, "/api/messages/" + id + "/attachments/99999999999999999999", "", "", 0},
		{1, "/api/messages/" + id + "/flags", "", `{"add":["\\Flagged","work"],"remove":["\\Seen"]}`, 0},
		{1, "/api/messages/" + id + "/flags", "", `{"add":["bad flag("]}`, 0},
		{1, "/api/messages/" + id + "/move", "", `{"folder":"Archive"}`, 0},
		{1, "/api/messages/" + id + "/move", "", `{"folder":""}`, 1},
		{1, "/api/messages/" + id + "/read", "", "", 0},
		{2, "/api/messages/" + id, "", "", 1},
		{2, "/api/messages/not-an-id", "", "", 0},
		{0, "/api/search", "q=from:a+has:attachment+(x+OR+y)", "", 0},
		{0, "/api/search", "q=%22unterminated&cursor=%FF", "", 0},
		{0, "/api/search", "q=before:2024/13/45+larger:99999999999G", "", 1},
		{1, "/api/send", "", `{"to":["x@example.org"],"subject":"s","text":"t","attachments":[{"filename":"a","content":"QUJD"}]}`, 0},
		{1, "/api/send", "", `{"to":["bad"],"subject":"s\r\nBcc: x"}`, 0},
		{1, "/api/send", "", `{"to":["x@example.org"],"attachments":[{"content":"***","content_type":"a/b; x="}]}`, 1},
		{1, "/api/login", "", `{"username":"fuzz@example.test","password":"fuzz-password"}`, 2},
		{1, "/api/login", "", `{"username":"\u0000","password":1}`, 2},
		{0, "/api/me", "", "", 3},
		{3, "/api/folders", "", "", 0},
		{0, "/nope", "", "", 0},
		{0, "/healthz", "", "", 2},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, []byte(s.body), s.auth)
	}
	f.Fuzz(func(t *testing.T, method uint8, path, query string, body []byte, auth uint8) {
		if strings.Contains(path, "events") || len(body) > 1<<20 {
			return // the event stream does not end by itself
		}
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], "http://api.test"+path, bytes.NewReader(body))
		if err != nil || req.URL.Path == "" || strings.Contains(req.URL.Path, "events") {
			return
		}
		req.URL.RawQuery = query
		if len(body) > 0 && auth%2 == 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		switch auth % 4 {
		case 0:
			req.SetBasicAuth("fuzz@example.test", "fuzz-password")
		case 1:
			req.Header.Set("Authorization", "Bearer "+tok)
		case 3:
			req.Header.Set("Authorization", "Bearer "+string(body))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(8 * time.Second):
				panic(fmt.Sprintf("%s %s?%s %q: no answer within 8s", req.Method, req.URL.Path, query, body))
			}
		}()
		h.ServeHTTP(rec, req.WithContext(ctx))
		res := rec.Result()
		out, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 500 {
			t.Fatalf("%s %s?%s %q: %d %s", req.Method, req.URL.Path, query, body, res.StatusCode, out)
		}
		if res.StatusCode >= 400 && req.Method != "HEAD" {
			var e struct {
				Error apiError `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%s %s: %d, not a JSON error: %q", req.Method, req.URL.Path, res.StatusCode, out)
			}
		}
	})
}
