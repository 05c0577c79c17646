package index

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
)

const mimeMessage = "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\r\n" +
	"To: Alice <alice@example.com>, bob@example.org\r\n" +
	"Cc: carol@example.net\r\n" +
	"Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= aus Berlin\r\n" +
	"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\n" +
	"Message-Id: <abc123@example.de>\r\n" +
	"List-Id: Travel <travel.example.de>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"alt\"\r\n" +
	"\r\n" +
	"--alt\r\n" +
	"Content-Type: text/plain; charset=iso-8859-1\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Sch=F6ne Gr=FC=DFe, the quarterly report is attached.\r\n" +
	"--alt\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>HTML version only</p>\r\n" +
	"--alt--\r\n" +
	"--outer\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<html><body><p>Second&nbsp;part <b>bold</b></p><script>evil()</script></body></html>\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"report-q4.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"report-q4.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--outer--\r\n"

func TestDocumentFromMessage(t *testing.T) {
	id := mailbricks.NewMessageID()
	d, err := DocumentFromMessage(id, strings.NewReader(mimeMessage), Values{Folder: "INBOX"})
	require.NoError(t, err)
	require.Equal(t, id, d.ID)
	require.Equal(t, []Address{{Name: "Jürgen Müller", Addr: "juergen@example.de"}}, d.From)
	require.Equal(t, []Address{{Name: "Alice", Addr: "alice@example.com"}, {Addr: "bob@example.org"}}, d.To)
	require.Equal(t, []Address{{Addr: "carol@example.net"}}, d.Cc)
	require.Equal(t, "Grüße aus Berlin", d.Subject)
	require.Contains(t, d.Body, "Schöne Grüße, the quarterly report is attached.")
	require.NotContains(t, d.Body, "HTML version only", "multipart/alternative keeps the text/plain part")
	require.Contains(t, d.Body, "Second\u00a0part bold")
	require.NotContains(t, d.Body, "evil")
	require.Equal(t, []string{"report-q4.pdf"}, d.Filenames)
	require.NotZero(t, d.Flags&FlagAttachment)
	require.Equal(t, int64(len(mimeMessage)), d.Size)
	require.Equal(t, time.Date(2024, 1, 2, 9, 0, 0, 0, time.UTC), d.SentDate.UTC())
	require.Equal(t, "INBOX", d.Folder)
	var names []string
	for _, h := range d.Headers {
		names = append(names, h.Name)
	}
	require.Equal(t, []string{"Message-Id", "List-Id"}, names)
}

func TestDocumentFromMessageLenient(t *testing.T) {
	// Unknown charset, broken base64, no MIME header: still indexed.
	raw := "Subject: hi\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nplain words here\r\n"
	d, err := DocumentFromMessage(mailbricks.NewMessageID(), strings.NewReader(raw), Values{})
	require.NoError(t, err)
	require.Equal(t, "hi", d.Subject)
	require.Contains(t, d.Body, "plain words")

	raw = "Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
	_, err = DocumentFromMessage(mailbricks.NewMessageID(), strings.NewReader(raw), Values{})
	require.NoError(t, err)

	// Not a message at all: indexed as far as it goes, never rejected
	// (mailbox stores it).
	_, err = DocumentFromMessage(mailbricks.NewMessageID(), strings.NewReader("\x00\x01 not a header line\r\n"), Values{})
	require.NoError(t, err)
}

func TestDocumentFromMessageNilReader(t *testing.T) {
	_, err := DocumentFromMessage(mailbricks.NewMessageID(), nil, Values{})
	require.True(t, errors.Is(err, ErrInvalidDocument), "a nil reader must be an error, got %v", err)
}

func TestDocumentFromMessagePolicy(t *testing.T) {
	doc := func(t *testing.T, raw string) *Document {
		d, err := DocumentFromMessage(mailbricks.NewMessageID(), strings.NewReader(raw), Values{})
		require.NoError(t, err)
		return d
	}
	t.Run("NUL", func(t *testing.T) {
		d := doc(t, "Subject: nul\x00here\r\nFrom: \"Ann\x00Lee\" <ann@example.com>\r\nX-Mailer: m\x00x\r\n\r\nbody\x00text\r\n")
		require.Equal(t, "nul here", d.Subject)
		require.Equal(t, []Address{{Name: "Ann Lee", Addr: "ann@example.com"}}, d.From)
		require.Equal(t, []Header{{Name: "X-Mailer", Value: "m x"}}, d.Headers)
		require.Equal(t, "bodytext\r\n", d.Body)
	})
	t.Run("encoded CR LF", func(t *testing.T) {
		d := doc(t, "Subject: =?utf-8?q?a=0D=0Ab?=\r\n\r\n")
		require.Equal(t, "a b", d.Subject, "CR and LF from encoded words must not reach the subject")
	})
	t.Run("raw latin-1", func(t *testing.T) {
		d := doc(t, "Subject: Gr\xfc\xdfe\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: inline; filename=\"K\xf6ln.txt\"\r\n\r\nK\xf6lsch\r\n")
		require.Equal(t, "Grüße", d.Subject, "raw latin-1 must become valid UTF-8, not stay invalid")
		require.Equal(t, "Kölsch\r\n", d.Body)
		require.Equal(t, []string{"Köln.txt"}, d.Filenames)
	})
	t.Run("mbox From line", func(t *testing.T) {
		raw := "From alice@example.com Mon Jan  1 00:00:00 2024\r\nSubject: mbox\r\n\r\nhello\r\n"
		d := doc(t, raw)
		require.Equal(t, "mbox", d.Subject, "a leading mbox From line is skipped, not rejected")
		require.Equal(t, int64(len(raw)), d.Size)
	})
	t.Run("1 MB header", func(t *testing.T) {
		d := doc(t, "Subject: "+strings.Repeat("long ", 200000)+"\r\nX-Mailer: "+strings.Repeat("m", 1<<20)+"\r\n\r\nbody")
		require.LessOrEqual(t, len(d.Subject), 4096)
		for _, h := range d.Headers {
			require.LessOrEqual(t, len(h.Value), 4096)
		}
	})
}
