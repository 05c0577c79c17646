package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSanitizeHTML(t *testing.T) {
	in := `<html><head><style>body{background:url(http://evil.example/bg.png)}</style><script>alert(1)</script></head>
<body onload="alert(2)"><p style="color:red;background-image:url('https://evil.example/x.png')">Hi <b>there</b></p>
<img src="http://evil.example/pixel.gif"><img src=//evil.example/p2.gif><img src="data:image/png;base64,iVBORw0KGgo=">
<a href="javascript:alert(3)">js</a> <a href="https://example.org/">ok</a>
<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input name=x></form>
<svg onload="alert(4)"></svg><table background="http://evil.example/t.png" bgcolor="#fff"><tr><td>cell</td></tr></table>
<link rel=stylesheet href="http://evil.example/s.css"><object data="http://evil.example/o"></object>
<img src=x onerror=alert(5)><div style="width: 10px">w</div></body></html>`
	out, n := sanitizeHTML(in)
	low := strings.ToLower(out)
	for _, bad := range []string{"<script", "alert(", "onload", "onerror", "javascript:", "evil.example", "<iframe", "<form", "<object", "<link", "<style"} {
		require.NotContains(t, low, bad, "sanitized output: %s", out)
	}
	for _, good := range []string{"<b>there</b>", "https://example.org/", "<table", "cell", "data:image/png;base64", "color:red", "width: 10px"} {
		require.Contains(t, out, good, "sanitized output keeps it: %s", out)
	}
	require.GreaterOrEqual(t, n, 3, "remote resources counted")
}

func TestExtractBody(t *testing.T) {
	msg := "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n" +
		"--b2\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 plain\r\n" +
		"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Caf\xc3\xa9 <script>x()</script>html</p>\r\n--b2--\r\n" +
		"--b1\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nnot the body\r\n--b1--\r\n"
	b := extractBody(strings.NewReader(msg))
	require.Equal(t, "Café plain", strings.TrimSpace(b.Text))
	require.Contains(t, b.HTML, "Café")
	require.NotContains(t, b.HTML, "script")
	require.NotContains(t, b.Text+b.HTML, "not the body")

	// Not MIME at all: shown as text.
	b = extractBody(strings.NewReader("\x00\xff garbage without a header"))
	require.Contains(t, b.Text, "garbage")
}

func FuzzExtractBody(f *testing.F) {
	f.Add([]byte("Content-Type: text/html\r\n\r\n<p onclick=x>hi<img src=http://a/b></p>"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := extractBody(strings.NewReader(string(raw)))
		low := strings.ToLower(b.HTML)
		require.NotContains(t, low, "<script")
		require.NotRegexp(t, `<img[^>]+src\s*=\s*["']?\s*(https?:)?//`, low)
	})
}
