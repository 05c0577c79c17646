package mailbox

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// PolicyMessages exercise the header-decoding policy and acceptance rules
// mailbox and index share.
var PolicyMessages = []string{
	"Subject: nul\x00here\r\nFrom: \"Ann\x00Lee\" <ann@example.com>\r\n\r\nbody\x00text\r\n",
	"Subject: =?utf-8?q?a=0D=0Ab?=\r\nFrom: =?utf-8?q?Eve=0D=0ABcc=3A?= <eve@example.com>\r\n\r\nx\r\n",
	"Subject: Gr\xfc\xdfe aus K\xf6ln\r\nFrom: J\xfcrgen <j@example.de>\r\n\r\nk\xf6lsch\r\n",
	"From alice@example.com Mon Jan  1 00:00:00 2024\r\nSubject: from mbox\r\nFrom: alice@example.com\r\n\r\nhello\r\n",
	"Subject: " + strings.Repeat("long ", 200000) + "\r\nFrom: a@example.com\r\n\r\nhuge header\r\n",
	"Content-Type: multipart/mixed; boundary=b\r\nList-Id: <l.example.com>\r\n\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n" +
		"<p>caf\xe9 <b>noir</b></p>\r\n--b\r\nContent-Type: image/png; name=\"a\x00.png\"\r\n\r\nPNG\r\n--b--\r\n",
}

func TestFillMetadataPolicy(t *testing.T) {
	meta := func(raw string) Message {
		var m Message
		fillMetadata(mailparse.Parse([]byte(raw), nil), 200, &m)
		return m
	}
	m := meta(PolicyMessages[0])
	require.Equal(t, "nul here", m.Subject, "a NUL in a header becomes a space")
	require.Equal(t, []Address{{Name: "Ann Lee", Addr: "ann@example.com"}}, m.From)
	require.Equal(t, "bodytext", m.Snippet, "NUL is removed from body text")

	m = meta(PolicyMessages[1])
	require.Equal(t, "a b", m.Subject, "CR and LF from encoded words must not reach the subject")
	require.Equal(t, "Eve Bcc:", m.From[0].Name)

	m = meta(PolicyMessages[2])
	require.Equal(t, "Grüße aus Köln", m.Subject, "raw latin-1 is decoded, not turned into U+FFFD")
	require.Equal(t, "Jürgen", m.From[0].Name)
	require.Equal(t, "kölsch", m.Snippet)

	m = meta(PolicyMessages[3])
	require.Equal(t, "from mbox", m.Subject)
	require.Equal(t, "alice@example.com", m.From[0].Addr)

	m = meta(PolicyMessages[4])
	require.LessOrEqual(t, len(m.Subject), mailparse.MaxValueBytes, "metadata must stay bounded whatever the header size")
	require.Contains(t, m.ParseError, "header longer than")

	m = meta(PolicyMessages[5])
	require.Equal(t, "café noir", m.Snippet)
	require.True(t, m.HasAttachments)
}
