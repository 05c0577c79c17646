package mailparse

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, keeps within its limits and
// returns only valid UTF-8 metadata without control characters.
func FuzzParse(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: hi\r\n\r\nbody"))
	f.Add([]byte("From x@y Mon Jan  1 00:00:00 2024\nSubject: =?utf-8?q?a=0D=0Ab?=\n\nx"))
	f.Add([]byte("Subject: Gr\xfc\xdfe\r\nFrom: \"N\x00\" <a@b>\r\n\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--x\r\n" +
		"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nin\r\n--x--\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--a\r\n" +
		"Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=F0=D2\r\n--a--"))
	lim := &Limits{MaxHeaderBytes: 4 << 10, MaxParts: 20, MaxDepth: 4, MaxPartTextBytes: 1 << 10, MaxTextBytes: 4 << 10}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := Parse(raw, lim)
		meta := []string{m.Subject, m.MessageID}
		meta = append(meta, m.InReplyTo...)
		meta = append(meta, m.References...)
		meta = append(meta, m.Filenames...)
		for _, l := range [][]Address{m.From, m.Sender, m.ReplyTo, m.To, m.Cc, m.Bcc} {
			if len(l) > MaxAddresses {
				t.Fatalf("%d addresses, limit %d", len(l), MaxAddresses)
			}
			for _, a := range l {
				meta = append(meta, a.Name, a.Addr)
			}
		}
		for _, f := range m.Header {
			meta = append(meta, m.HeaderValues(f.Name)...)
		}
		for _, s := range meta {
			if !utf8.ValidString(s) || len(s) > MaxValueBytes || strings.IndexFunc(s, isCtlOrSpace) >= 0 {
				t.Fatalf("metadata %q: invalid UTF-8, too long or with control characters", s)
			}
		}
		text := 0
		for _, x := range m.Texts {
			if !utf8.ValidString(x.Text) || strings.IndexByte(x.Text, 0) >= 0 {
				t.Fatalf("text %q: invalid UTF-8 or NUL", x.Text)
			}
			text += len(x.Text)
		}
		if int64(text) > lim.MaxTextBytes {
			t.Fatalf("%d bytes of text, limit %d", text, lim.MaxTextBytes)
		}
		if len(m.Notes) > MaxNotes || len(m.Filenames) > MaxFilenames || len(m.References) > MaxMsgIDs {
			t.Fatalf("a list over its bound: %d notes, %d filenames, %d references", len(m.Notes), len(m.Filenames), len(m.References))
		}
		if s := m.Snippet(40); utf8.RuneCountInString(s) > 40 || strings.ContainsAny(s, "\r\n\t\x00") {
			t.Fatalf("snippet %q", s)
		}
	})
}
