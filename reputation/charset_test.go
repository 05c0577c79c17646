package reputation_test

import (
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/reputation"
)

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

// TestParseDSNCharsetsWithoutIndex parses a DSN whose returned header is
// UTF-16 (base64) and whose diagnostic is raw latin-1, in this test binary,
// which does not link package index. The charsets used to be decoded only
// when something in the binary imported go-message/charset (index did),
// which sets a go-message global; now reputation decodes them explicitly.
func TestParseDSNCharsetsWithoutIndex(t *testing.T) {
	orig := base64.StdEncoding.EncodeToString(utf16le("From: news@sender.example\r\nMessage-ID: <m1@sender.example>\r\nSubject: Gr\u00fc\u00dfe\r\n\r\n"))
	raw := "From: MAILER-DAEMON@mx.example\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSorry.\r\n" +
		"--B\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mx.example\r\n\r\n" +
		"Final-Recipient: rfc822; m\xfcller@example.de\r\nAction: failed\r\nStatus: 5.1.1\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 Benutzer M\xfcller unbekannt\r\n\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers; charset=utf-16le\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		orig + "\r\n--B--\r\n"
	out, err := reputation.ParseDSN(strings.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, "m1@sender.example", out[0].MessageID, "the UTF-16 original header must be decoded")
	require.Equal(t, "müller@example.de", out[0].Recipient, "a raw 8-bit recipient must become valid UTF-8")
	require.Equal(t, 550, out[0].Code)
	require.True(t, utf8.ValidString(out[0].Text))
	require.Contains(t, out[0].Text, "Benutzer Müller unbekannt", "raw latin-1 diagnostic text must be decoded")
}

// TestARFLatin1To finds the recipient in the original's To header even when
// its display name is raw 8-bit.
func TestARFLatin1To(t *testing.T) {
	raw := "Content-Type: multipart/report; report-type=feedback-report; boundary=XYZ\r\n\r\n" +
		"--XYZ\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nSource-IP: 198.51.100.7\r\n\r\n" +
		"--XYZ\r\nContent-Type: text/rfc822-headers; charset=iso-8859-1\r\n\r\n" +
		"To: J\xfcrgen <j@example.de>\r\nMessage-ID: <x@sender.example>\r\n\r\n--XYZ--\r\n"
	out, err := reputation.ParseARF(strings.NewReader(raw))
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, "j@example.de", out[0].Recipient)
}

// TestNoCharsetGlobal checks that no package of the library links
// go-message/charset, which sets a go-message global in init.
func TestNoCharsetGlobal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "-test", "github.com/mailbricks/mailbricks/...").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	require.NotContains(t, string(out), "github.com/emersion/go-message/charset")
}
