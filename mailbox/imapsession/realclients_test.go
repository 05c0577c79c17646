package imapsession_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// needBinary returns the path of a binary, skipping the test when it is
// missing, except under CI=true, where it fails (CI installs it).
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// TestPythonImaplib drives the server with Python's imaplib.
func TestPythonImaplib(t *testing.T) {
	py := needBinary(t, "python3")
	e := newEnv(t, nil, false)
	host, port, _ := net.SplitHostPort(e.addr)
	out, err := exec.Command(py, "testdata/imaplib_client.py", host, port, "alice", password).CombinedOutput()
	require.NoError(t, err, "imaplib script: %s", out)
	require.Contains(t, string(out), "checks passed")
	t.Log(strings.TrimSpace(string(out)))
}

// TestMbsync syncs a folder to a local Maildir and back with mbsync
// (isync): the Maildir files are the stored messages, a flag changed
// locally reaches the server, and a message deleted on the server
// disappears locally.
func TestMbsync(t *testing.T) {
	bin := needBinary(t, "mbsync")
	e := newEnv(t, nil, false)
	host, port, _ := net.SplitHostPort(e.addr)
	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail") + "/"
	require.NoError(t, os.MkdirAll(maildir, 0o700))
	cfg := filepath.Join(dir, "mbsyncrc")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`IMAPAccount test
Host %s
Port %s
User alice
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path %s
Inbox %sINBOX

Channel sync
Far :remote:
Near :local:
Patterns INBOX Work
Create Both
Expunge Both
SyncState *
Sync All
`, host, port, password, maildir, maildir)), 0o600))
	run := func() {
		t.Helper()
		out, err := exec.Command(bin, "-c", cfg, "-a").CombinedOutput()
		require.NoError(t, err, "mbsync: %s", out)
	}
	user := mailbricks.UserID("alice")
	// Maildir files are written with LF line ends (mbsync converts CRLF,
	// as Maildir readers expect); store originals with LF so that the
	// files can be compared byte for byte.
	var originals []string
	var ids []mailbricks.MessageID
	for i := range 5 {
		raw := strings.ReplaceAll(msg(fmt.Sprintf("sync %d", i), fmt.Sprintf("body %d\nline two", i)), "\r\n", "\n")
		m, err := e.store.Append(ctx, user, mailbox.Inbox, strings.NewReader(raw), nil)
		require.NoError(t, err)
		originals = append(originals, raw)
		ids = append(ids, m.ID)
	}
	_, err := e.store.CreateFolder(ctx, user, "Work")
	require.NoError(t, err)
	run()

	files := func(folder string) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, sub := range []string{"cur", "new"} {
			ents, _ := os.ReadDir(filepath.Join(maildir, folder, sub))
			for _, ent := range ents {
				p := filepath.Join(maildir, folder, sub, ent.Name())
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				out[p] = string(b)
			}
		}
		return out
	}
	local := files("INBOX")
	var got []string
	for _, b := range local {
		got = append(got, stripTUID(b))
	}
	sort.Strings(got)
	want := append([]string(nil), originals...)
	sort.Strings(want)
	require.Equal(t, want, got, "the Maildir files equal the stored messages byte for byte (but for mbsync's own X-TUID line)")

	// Flag a message locally (Maildir info ":2,F" and "S"); the next sync
	// sets \Flagged and \Seen on the server.
	var flagged string
	for p, b := range local {
		if stripTUID(b) == originals[1] {
			flagged = p
		}
	}
	require.NotEmpty(t, flagged)
	base := filepath.Base(flagged)
	name, _, _ := strings.Cut(base, ":2,")
	require.NoError(t, os.Rename(flagged, filepath.Join(maildir, "INBOX", "cur", name+":2,FS")))
	run()
	m, err := e.store.Get(ctx, user, ids[1])
	require.NoError(t, err)
	require.Contains(t, m.Flags, mailbox.FlagFlagged, "a local flag reached the server")
	require.Contains(t, m.Flags, mailbox.FlagSeen)

	// Delete on the server; the next sync removes the local file.
	_, err = e.store.Expunge(ctx, user, ids[3])
	require.NoError(t, err)
	run()
	local = files("INBOX")
	require.Len(t, local, 4)
	for _, b := range local {
		require.NotEqual(t, originals[3], stripTUID(b), "the message deleted on the server is gone locally")
	}

	// A message written locally is uploaded.
	newMsg := strings.ReplaceAll(msg("local new", "written in the maildir"), "\r\n", "\n")
	require.NoError(t, os.WriteFile(filepath.Join(maildir, "Work", "new", "1700000000.1_1.host"), []byte(newMsg), 0o600))
	run()
	work, err := e.store.FetchUIDs(ctx, user, "Work", 1, 0)
	require.NoError(t, err)
	require.Len(t, work, 1, "the local message reached the server")
	rc, err := e.store.Open(ctx, user, work[0].ID)
	require.NoError(t, err)
	var buf bytes.Buffer
	buf.ReadFrom(rc)
	rc.Close()
	require.Contains(t, buf.String(), "written in the maildir")

	// A second sync with nothing changed changes nothing.
	run()
	require.Len(t, files("INBOX"), 4)
	t.Logf("mbsync: %d messages synced down, 1 flag up, 1 delete down, 1 upload", len(originals))
}

// stripTUID removes the X-TUID header line mbsync inserts into the
// messages it stores, to find them again if it is interrupted.
func stripTUID(s string) string {
	i := strings.Index(s, "\nX-TUID: ")
	if i < 0 {
		return s
	}
	j := strings.IndexByte(s[i+1:], '\n')
	return s[:i] + s[i+1+j:]
}
