package mailparse

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeHeader(t *testing.T) {
	for _, c := range []struct{ name, in, charset, want string }{
		{"ascii", "  hello   world ", "", "hello world"},
		{"encoded word", "=?ISO-8859-1?Q?Gr=FC=DFe?= aus Berlin", "", "Grüße aus Berlin"},
		{"encoded CR LF", "=?utf-8?q?a=0D=0Ab?=", "", "a b"},
		{"encoded NUL", "=?utf-8?b?YQBi?=", "", "a b"},
		{"raw NUL and controls", "a\x00b\x01c\x7fd\u0085e", "", "a b c d e"},
		{"raw UTF-8", "Grüße", "iso-8859-1", "Grüße"},
		{"raw latin-1", "Gr\xfc\xdfe", "", "Grüße"},
		{"raw latin-1, declared", "Gr\xfc\xdfe", "iso-8859-1", "Grüße"},
		{"raw koi8-r, declared", "\xf0\xd2\xc9\xd7\xc5\xd4", "koi8-r", "Привет"},
		{"bad encoded word kept", "=?utf-8?q?=ZZ?= x", "", "=?utf-8?q?=ZZ?= x"},
		{"unknown charset word", "=?x-bogus?q?abc?= =?utf-8?q?d?=", "", "abcd"},
		{"invalid UTF-8 inside a word", "=?utf-8?q?=FCber?=", "", "über"},
		{"windows-1252 quotes", "\x93hi\x94", "", "\u201chi\u201d"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := DecodeHeader(c.in, c.charset)
			assert.Equal(t, c.want, got)
			assert.True(t, utf8.ValidString(got))
		})
	}
	long := DecodeHeader(strings.Repeat("ü", 10000), "")
	require.LessOrEqual(t, len(long), MaxValueBytes)
	require.True(t, utf8.ValidString(long))
}

func TestParseFields(t *testing.T) {
	raw := "From: =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\r\n" +
		"To: Alice <a@example.com>, b@example.org\r\n" +
		"Subject: =?utf-8?q?x=00y=0D=0Az?=\r\n" +
		"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\n" +
		"Message-Id: <id1@x>\r\n" +
		"References: <r1@x>\r\n <r2@x>\r\n" +
		"\r\nhello\r\n"
	m := Parse([]byte(raw), nil)
	require.Equal(t, []Address{{Name: "Jürgen", Addr: "j@example.de"}}, m.From)
	require.Equal(t, []Address{{Name: "Alice", Addr: "a@example.com"}, {Addr: "b@example.org"}}, m.To)
	require.Equal(t, "x y z", m.Subject)
	require.Equal(t, "id1@x", m.MessageID)
	require.Equal(t, []string{"r1@x", "r2@x"}, m.References)
	require.Equal(t, 2024, m.Date.Year())
	require.Equal(t, []Text{{KindPlain, "hello\r\n"}}, m.Texts)
	require.Empty(t, m.Notes)
}

func TestParseControlCharsInNames(t *testing.T) {
	raw := "From: \"Eve\x00\x01 =?utf-8?q?Evil=0D=0ABcc=3A_x?=\" <eve@example.com>\r\n\r\n"
	m := Parse([]byte(raw), nil)
	require.Len(t, m.From, 1)
	require.Equal(t, "eve@example.com", m.From[0].Addr)
	require.NotContains(t, m.From[0].Name, "\x00")
	require.NotContains(t, m.From[0].Name, "\r")
	require.NotContains(t, m.From[0].Name, "\n")
}

func TestParseMboxFromLine(t *testing.T) {
	m := Parse([]byte("From alice@example.com Mon Jan  1 00:00:00 2024\nSubject: hi\n\nbody\n"), nil)
	require.Equal(t, "hi", m.Subject)
	require.Empty(t, m.Notes, "a leading mbox From line is not a parse error")
	require.Equal(t, "body\n", m.Body())
}

func TestParseHugeHeader(t *testing.T) {
	raw := "Subject: " + strings.Repeat("long ", 200000) + "\r\nFrom: a@b\r\n\r\nbody"
	m := Parse([]byte(raw), &Limits{MaxHeaderBytes: 256 << 10})
	require.LessOrEqual(t, len(m.Subject), MaxValueBytes)
	require.True(t, strings.HasPrefix(m.Subject, "long long"))
	require.Contains(t, m.ParseError(), "header longer than")
	total := 0
	for _, f := range m.Header {
		total += len(f.Name) + len(f.Value)
	}
	require.LessOrEqual(t, total, 256<<10, "reading must stop at the header limit")

	// A field cut by the limit keeps what was read; the next one is not read.
	m = Parse([]byte("Subject: a\r\nX-Long: "+strings.Repeat("x", 2000)+"\r\nTo: b@c\r\n\r\n"), &Limits{MaxHeaderBytes: 100})
	require.Equal(t, "a", m.Subject)
	require.Nil(t, m.To)
	require.Len(t, m.Header, 2)
}

func TestParseMultipart(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
		"preamble\r\n--outer\r\n" +
		"Content-Type: multipart/alternative; boundary=alt\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSch=F6n\r\n" +
		"--alt\r\nContent-Type: text/html\r\n\r\n<p>HTML version</p>\r\n--alt--\r\n" +
		"--outer\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Second&nbsp;<b>part</b></p><script>evil()</script>\r\n" +
		"--outer\r\nContent-Type: application/pdf; name=\"=?utf-8?q?r=C3=A9port.pdf?=\"\r\nContent-Disposition: attachment\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n" +
		"--outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text\r\n" +
		"--outer--\r\nepilogue"
	m := Parse([]byte(raw), nil)
	require.Empty(t, m.Notes)
	require.Len(t, m.Texts, 3)
	require.Equal(t, Text{KindPlain, "Schön"}, m.Texts[0])
	require.Equal(t, KindHTML, m.Texts[1].Kind)
	require.Contains(t, m.Texts[1].Text, "Second\u00a0part")
	require.NotContains(t, m.Body(), "evil")
	require.NotContains(t, m.Body(), "HTML version")
	require.Equal(t, "inner text", m.Texts[2].Text)
	require.Equal(t, []string{"réport.pdf"}, m.Filenames)
	require.True(t, m.HasAttachment)
	require.Equal(t, "Schön", m.Snippet(100))
}

func TestParseBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 50 {
		b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("x", 100) + "\r\n")
	}
	b.WriteString("--b--\r\n")
	m := Parse([]byte(b.String()), &Limits{MaxParts: 10, MaxPartTextBytes: 50, MaxTextBytes: 120})
	require.Contains(t, m.ParseError(), "limit reached")
	total := 0
	for _, t := range m.Texts {
		total += len(t.Text)
	}
	require.LessOrEqual(t, total, 120)
	require.LessOrEqual(t, len(m.Texts), 9)
	require.LessOrEqual(t, len(m.Notes), MaxNotes)

	var to strings.Builder
	to.WriteString("To: ")
	for i := range 3000 {
		if i > 0 {
			to.WriteString(", ")
		}
		to.WriteString("u@example.com")
	}
	m = Parse([]byte(to.String()+"\r\n\r\n"), nil)
	require.Len(t, m.To, MaxAddresses)
}

func TestParseBodyCharsets(t *testing.T) {
	m := Parse([]byte("Content-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9 a\x00b"), nil)
	require.Equal(t, "café ab", m.Body())
	require.Contains(t, m.ParseError(), "x-unknown")
	m = Parse([]byte("Content-Type: text/plain; charset=utf-16le\r\nContent-Transfer-Encoding: base64\r\n\r\naABpAA==\r\n"), nil)
	require.Equal(t, "hi", m.Body())
}

func TestHTMLToText(t *testing.T) {
	got := HTMLToText(`<html><head><title>T</title><style>p{color:red}</style><script>var x = "<b>";</script></head>` +
		`<body><p>Hello&nbsp;<b>World</b> &amp; friends</p><!-- hidden --><div>Next&#33;</div><table><tr><td>a</td><td>b</td></tr></table></body></html>`)
	require.Contains(t, got, "Hello\u00a0World & friends")
	require.Contains(t, got, "Next!")
	require.Contains(t, got, "a b")
	for _, s := range []string{"color", "var x", "hidden", "T\n"} {
		require.NotContains(t, got, s)
	}
	require.Equal(t, "a < b", HTMLToText("a < b"))
	require.Equal(t, "x", strings.TrimSpace(HTMLToText("<head><meta charset=utf-8><body>x")))
}

func TestCharsetReader(t *testing.T) {
	r, err := CharsetReader("ISO-8859-1", strings.NewReader("\xe9"))
	require.NoError(t, err)
	b := make([]byte, 8)
	n, _ := r.Read(b)
	require.Equal(t, "é", string(b[:n]))
	_, err = CharsetReader("x-nonsense", strings.NewReader(""))
	require.Error(t, err)
}
