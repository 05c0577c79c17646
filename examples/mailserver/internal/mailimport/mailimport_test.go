package mailimport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func readAll(t testing.TB, r *MboxReader) ([]*Message, int) {
	var out []*Message
	tooLarge := 0
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, tooLarge
		}
		if errors.Is(err, ErrTooLarge) {
			tooLarge++
			continue
		}
		require.NoError(t, err)
		out = append(out, m)
	}
}

func TestMboxRoundTrip(t *testing.T) {
	msgs := []string{
		"Subject: one\n\nFrom here on\n>From quoted\n>>From twice\nplain\n",
		"Subject: two\r\n\r\nCRLF body\r\nFrom inside\r\n",
		"Subject: blank end\n\nbody\n\n",
		"no header at all\n",
		"Subject: empty body\n\n",
	}
	var buf bytes.Buffer
	w := NewMboxWriter(&buf)
	date := time.Date(2024, 3, 5, 7, 8, 9, 0, time.UTC)
	for _, m := range msgs {
		require.NoError(t, w.Write("a@example.org", date, []byte(m)))
	}
	require.NoError(t, w.Flush())
	require.Contains(t, buf.String(), "\n>From here on\n>>From quoted\n>>>From twice\n")

	got, tl := readAll(t, NewMboxReader(bytes.NewReader(buf.Bytes()), 0))
	require.Zero(t, tl)
	require.Len(t, got, len(msgs))
	for i, m := range got {
		require.Equal(t, msgs[i], string(m.Data), "message %d", i)
		require.True(t, m.Date.Equal(date), "date of message %d: %v", i, m.Date)
	}
}

func TestMboxEdges(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"blank", "\n\n", nil},
		{"no separator", "Subject: x\n\nbody\n", []string{"Subject: x\n\nbody\n"}},
		{"garbage first", "junk\nFrom a b\nS: 1\n\nx\n", []string{"junk\n", "S: 1\n\nx\n"}},
		{"no final newline", "From a b\nS: 1\n\nx", []string{"S: 1\n\nx"}},
		{"empty message", "From a b\nFrom c d\nS: 2\n", []string{"", "S: 2\n"}},
		{"mboxo >From kept if not From", "From a b\n>Fromage\n", []string{">Fromage\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := readAll(t, NewMboxReader(strings.NewReader(c.in), 0))
			var s []string
			for _, m := range got {
				s = append(s, string(m.Data))
			}
			require.Equal(t, c.want, s)
		})
	}
}

func TestMboxTooLargeSkipped(t *testing.T) {
	var buf bytes.Buffer
	w := NewMboxWriter(&buf)
	require.NoError(t, w.Write("", time.Time{}, []byte("Subject: small\n\nx\n")))
	require.NoError(t, w.Write("", time.Time{}, []byte("Subject: big\n\n"+strings.Repeat("y", 5000)+"\n")))
	require.NoError(t, w.Write("", time.Time{}, []byte("Subject: long line\n\n"+strings.Repeat("z", 200000)+"\n")))
	require.NoError(t, w.Write("", time.Time{}, []byte("Subject: after\n\nx\n")))
	require.NoError(t, w.Flush())
	got, tl := readAll(t, NewMboxReader(&buf, 1000))
	require.Equal(t, 2, tl)
	require.Len(t, got, 2)
	require.Contains(t, string(got[1].Data), "Subject: after")
}

func TestMboxFlags(t *testing.T) {
	in := "From a b\nStatus: RO\nX-Status: AF\nSubject: x\n\nStatus: R in the body\n"
	got, _ := readAll(t, NewMboxReader(strings.NewReader(in), 0))
	require.Len(t, got, 1)
	require.ElementsMatch(t, []string{`\Seen`, `\Answered`, `\Flagged`}, got[0].Flags)
}

func TestMaildir(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	for _, d := range []string{"tmp", ".Archive.2024/tmp"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	write("new/1000.a.host", "Subject: new\n\n")
	write("cur/1001.b.host:2,FS", "Subject: seen flagged\n\n")
	write("cur/1002.c.host:2,RTPDa", "Subject: many\n\n")
	write(".Archive.2024/cur/1003.d.host:2,S", "Subject: archived\n\n")
	write("tmp/1004.e.host", "in delivery: not a message yet")

	f, err := Detect(root)
	require.NoError(t, err)
	require.Equal(t, Maildir, f)
	files, err := ScanMaildir(root)
	require.NoError(t, err)
	require.Len(t, files, 4)
	require.Equal(t, "", files[0].Folder)
	require.Empty(t, files[0].Flags) // new/
	require.ElementsMatch(t, []string{`\Flagged`, `\Seen`}, files[1].Flags)
	require.ElementsMatch(t, []string{`\Answered`, `\Deleted`, `$Forwarded`, `\Draft`}, files[2].Flags)
	require.Equal(t, "Archive/2024", files[3].Folder)
	m, err := ReadMaildirFile(files[3], 0)
	require.NoError(t, err)
	require.Equal(t, "Subject: archived\n\n", string(m.Data))
	_, err = ReadMaildirFile(files[3], 5)
	require.ErrorIs(t, err, ErrTooLarge)

	mb := filepath.Join(t.TempDir(), "mbox")
	require.NoError(t, os.WriteFile(mb, nil, 0o644))
	f, err = Detect(mb)
	require.NoError(t, err)
	require.Equal(t, Mbox, f)
	_, err = Detect(t.TempDir())
	require.ErrorIs(t, err, ErrNotMail)
}

// FuzzMboxReader: any input reads without a panic, in bounded messages
// whose bytes all come from the input; and messages written by MboxWriter
// read back as written.
func FuzzMboxReader(f *testing.F) {
	f.Add([]byte("From a b\nS: 1\n\n>From x\n\nFrom c d\nS: 2\n"), []byte("From x\n>From y\nz"))
	f.Add([]byte("junk\r\nFrom \r\n\r\n"), []byte(""))
	f.Add([]byte(strings.Repeat(">", 100)+"From "), []byte("\n\n\n"))
	f.Fuzz(func(t *testing.T, in, msg []byte) {
		r := NewMboxReader(bytes.NewReader(in), 4096)
		n := 0
		for {
			m, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, ErrTooLarge) {
				continue
			}
			require.NoError(t, err)
			require.LessOrEqual(t, len(m.Data), 4096)
			require.LessOrEqual(t, len(m.Data), len(in))
			n++
			require.LessOrEqual(t, n, len(in)+1)
		}
		require.Equal(t, int64(len(in)), r.Offset())

		// Round trip of one message ending in a newline.
		if len(msg) > 0 && msg[len(msg)-1] != '\n' {
			msg = append(msg, '\n')
		}
		var buf bytes.Buffer
		w := NewMboxWriter(&buf)
		require.NoError(t, w.Write("s", time.Unix(0, 0), msg))
		require.NoError(t, w.Write("s", time.Unix(0, 0), []byte("Subject: next\n")))
		require.NoError(t, w.Flush())
		got, _ := readAll(t, NewMboxReader(&buf, 0))
		if len(bytes.TrimSpace(msg)) == 0 && len(msg) > 0 {
			// A blank message is indistinguishable from separator padding.
			return
		}
		require.Len(t, got, 2)
		require.Equal(t, string(msg), string(got[0].Data))
		require.Equal(t, "Subject: next\n", string(got[1].Data))
	})
}
