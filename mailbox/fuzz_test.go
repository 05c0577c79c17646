package mailbox

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// FuzzParseMetadata checks that metadata extraction never panics, stays
// within its limits and returns valid UTF-8 without control characters,
// whatever the input.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: hi\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--x--\r\n"))
	f.Add([]byte("From x@y Mon Jan  1 00:00:00 2024\r\nSubject: =?utf-8?q?a=0D=0A=00b?=\r\nFrom: \"N\x00\xe9\" <a@b>\r\n\r\nx"))
	lim := &mailparse.Limits{MaxHeaderBytes: 4 << 10, MaxParts: 20, MaxDepth: 4}
	const snippetLen = 40
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m Message
		fillMetadata(mailparse.Parse(raw, lim), snippetLen, &m)
		if utf8.RuneCountInString(m.Snippet) > snippetLen {
			t.Fatalf("snippet of %d characters, limit %d", utf8.RuneCountInString(m.Snippet), snippetLen)
		}
		meta := []string{m.Subject, m.MessageIDHeader}
		meta = append(meta, m.References...)
		meta = append(meta, m.InReplyTo...)
		for _, l := range [][]Address{m.From, m.Sender, m.ReplyTo, m.To, m.Cc, m.Bcc} {
			for _, a := range l {
				meta = append(meta, a.Name, a.Addr)
			}
		}
		for _, s := range meta {
			if !utf8.ValidString(s) || len(s) > mailparse.MaxValueBytes {
				t.Fatalf("invalid UTF-8 or too long: %q", s)
			}
			if strings.ContainsAny(s, "\x00\r\n\t") {
				t.Fatalf("control characters in metadata %q", s)
			}
		}
		if strings.ContainsAny(m.Snippet, "\r\n\t\x00") {
			t.Fatalf("snippet %q has uncollapsed whitespace", m.Snippet)
		}
		if len(m.References) > mailparse.MaxMsgIDs {
			t.Fatalf("%d references kept, limit %d", len(m.References), mailparse.MaxMsgIDs)
		}
		normalizeSubject(m.Subject)
	})
}
