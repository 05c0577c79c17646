package mailbox

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseMetadata checks that metadata extraction never panics, stays
// within its limits and returns valid UTF-8, whatever the input.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: hi\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--x--\r\n"))
	lim := parseLimits{maxHeaderBytes: 4 << 10, maxParts: 20, maxDepth: 4, snippetLen: 40}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m Message
		parseMetadata(raw, lim, &m)
		if utf8.RuneCountInString(m.Snippet) > lim.snippetLen {
			t.Fatalf("snippet of %d characters, limit %d", utf8.RuneCountInString(m.Snippet), lim.snippetLen)
		}
		for _, s := range append([]string{m.Subject, m.Snippet}, m.References...) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 %q", s)
			}
		}
		if strings.ContainsAny(m.Snippet, "\r\n\t") {
			t.Fatalf("snippet %q has uncollapsed whitespace", m.Snippet)
		}
		if len(m.References) > maxMsgIDs {
			t.Fatalf("%d references kept, limit %d", len(m.References), maxMsgIDs)
		}
		normalizeSubject(m.Subject)
	})
}
