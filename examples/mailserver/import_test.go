package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/examples/mailserver/internal/mailimport"
	"github.com/mailbricks/mailbricks/internal/corpus"
)

// runImport runs `mailserver import` with the server's flags and returns
// its stdout and stderr (a pipe: not a terminal).
func (s *server) runImport(t *testing.T, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(binary, append(append(append([]string{}, s.args...), "import"), args...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	require.NoError(t, err, "import: %s\n%s", out.String(), errOut.String())
	return out.String(), errOut.String()
}

var (
	summaryRE  = regexp.MustCompile(`(\d+) messages read, (\d+) stored, (\d+) already there, (\d+) malformed \(stored as they are\), (\d+) too large \(skipped\), (\d+) failed`)
	progressRE = regexp.MustCompile(`(?m)^import: (\d+)( of \d+)? messages, [\d.]+ (B|KiB|MiB|GiB) of [\d.]+ (B|KiB|MiB|GiB) \(\d+%\), \d+ msg/s, ETA (\?|[0-9hms.]+)$`)
)

type importSummary struct{ read, stored, existing, malformed, tooLarge, failed int }

func parseSummary(t *testing.T, out string) importSummary {
	t.Helper()
	m := summaryRE.FindStringSubmatch(out)
	require.NotNil(t, m, "no summary in %q", out)
	n := make([]int, 6)
	for i := range n {
		fmt.Sscan(m[i+1], &n[i])
	}
	return importSummary{n[0], n[1], n[2], n[3], n[4], n[5]}
}

// TestImportCorpusMbox imports the SpamAssassin corpus (6,046 messages) as
// one mboxrd file, twice: the first run stores every message, byte for byte;
// the second stores nothing.
func TestImportCorpusMbox(t *testing.T) {
	msgs := corpus.ForTest(t)
	require.Len(t, msgs, corpus.Size)
	dir := t.TempDir()
	path := filepath.Join(dir, "corpus.mbox")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := mailimport.NewMboxWriter(f)
	var wantBytes int64
	quoted := 0
	for i, m := range msgs {
		raw := m.Raw
		if len(raw) == 0 || raw[len(raw)-1] != '\n' {
			raw = append(append([]byte{}, raw...), '\n') // the writer adds it
		}
		if strings.Contains("\n"+string(raw), "\nFrom ") {
			quoted++
		}
		wantBytes += int64(len(raw))
		require.NoError(t, w.Write("sender@example.org", time.Date(2002, 1, 1, 0, 0, i, 0, time.UTC), m.Raw))
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	t.Logf("mbox of %d messages (%d with From_ lines quoted), %d message bytes", len(msgs), quoted, wantBytes)
	require.Positive(t, quoted, "the corpus exercises mboxrd quoting")

	s := newServer(t, "")
	const user = "importer@example.test"
	s.user(user, "import-pw-1")

	start := time.Now()
	out, errOut := s.runImport(t, "-user", user, "-progress", "100ms", path)
	el := time.Since(start)
	sum := parseSummary(t, out)
	t.Logf("first run: %+v in %v (%.0f msg/s)\n%s", sum, el, float64(sum.read)/el.Seconds(), out)
	require.Equal(t, importSummary{read: corpus.Size, stored: corpus.Size, malformed: sum.malformed}, sum)
	lines := progressRE.FindAllStringSubmatch(errOut, -1)
	require.NotEmpty(t, lines, "periodic progress lines when not a terminal:\n%s", errOut)
	require.NotContains(t, errOut, "\r", "no terminal redraws in a pipe")
	prev := -1
	for _, l := range lines {
		var n int
		fmt.Sscan(l[1], &n)
		require.GreaterOrEqual(t, n, prev, "progress never goes back")
		prev = n
	}

	out2, _ := s.runImport(t, "-user", user, path)
	sum2 := parseSummary(t, out2)
	t.Logf("second run: %+v", sum2)
	require.Equal(t, importSummary{read: corpus.Size, existing: corpus.Size, malformed: sum.malformed}, sum2)

	s.start()
	c := s.client(user, "import-pw-1")
	inbox := c.folder(t, "INBOX")
	require.EqualValues(t, corpus.Size, inbox.Total, "each message stored once")
	require.Equal(t, wantBytes, inbox.Size, "byte for byte")
	all := c.all(t, "INBOX")
	require.Len(t, all, corpus.Size)
	parseErrors := 0
	for _, m := range all {
		if m.ParseError != "" {
			parseErrors++
		}
	}
	require.Equal(t, sum.malformed, parseErrors, "malformed messages counted and stored as they are")
	require.Positive(t, c.search(t, "from:sender@example.org").Total+c.search(t, "subject:the").Total, "imported mail is indexed")
}

// TestImportMaildir imports a generated Maildir with a subfolder, flags,
// new mail, a malformed message and an empty file, twice.
func TestImportMaildir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	type want struct {
		folder string
		flags  []string
	}
	wants := map[string]want{}
	var wantBytes = map[string]int64{}
	write := func(sub, name, folder, subject string, flags []string, body string) {
		d := filepath.Join(root, sub)
		require.NoError(t, os.MkdirAll(d, 0o755))
		msg := "From: gen@example.org\r\nTo: importer@example.test\r\nSubject: " + subject + "\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\n\r\n" + body
		if subject == "" {
			msg = body
		}
		require.NoError(t, os.WriteFile(filepath.Join(d, name), []byte(msg), 0o600))
		wants[subject] = want{folder, flags}
		wantBytes[folder] += int64(len(msg))
	}
	flagSets := []struct {
		info  string
		flags []string
	}{{"", nil}, {"S", []string{`\Seen`}}, {"FS", []string{`\Flagged`, `\Seen`}}, {"RS", []string{`\Answered`, `\Seen`}}, {"DT", []string{`\Deleted`, `\Draft`}}, {"PS", []string{`$Forwarded`, `\Seen`}}}
	n := 0
	for i := range 240 {
		fs := flagSets[i%len(flagSets)]
		subject := fmt.Sprintf("inbox %03d", i)
		write("cur", fmt.Sprintf("%d.M%dP1.host:2,%s", 1700000000+i, i, fs.info), "INBOX", subject, fs.flags, fmt.Sprintf("body %d\r\n", i))
		n++
	}
	for i := range 30 {
		write("new", fmt.Sprintf("%d.M%dP2.host", 1700001000+i, i), "INBOX", fmt.Sprintf("new %03d", i), nil, "fresh\r\n")
		n++
	}
	for i := range 40 {
		write(".Archive.2024/cur", fmt.Sprintf("%d.M%dP3.host:2,S", 1700002000+i, i), "Archive/2024", fmt.Sprintf("archived %03d", i), []string{`\Seen`}, "old\r\n")
		n++
	}
	// The same message twice in a folder is kept twice.
	write("cur", "1700003000.dup1.host:2,S", "INBOX", "duplicate", []string{`\Seen`}, "same\r\n")
	write("cur", "1700003001.dup2.host:2,S", "INBOX", "duplicate", []string{`\Seen`}, "same\r\n")
	n += 2
	// Malformed: no header, binary junk.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "cur"), 0o755))
	junk := "\x00\x01\xff\xfe not a header\r\n\r\n\x00"
	require.NoError(t, os.WriteFile(filepath.Join(root, "cur", "1700004000.junk.host:2,"), []byte(junk), 0o600))
	wantBytes["INBOX"] += int64(len(junk))
	n++
	require.NoError(t, os.MkdirAll(filepath.Join(root, "tmp"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "tmp", "inflight"), []byte("not delivered yet"), 0o600))

	s := newServer(t, "")
	const user = "importer@example.test"
	s.user(user, "import-pw-2")
	out, errOut := s.runImport(t, "-user", user, "-progress", "1ms", "-parallel", "3", root)
	sum := parseSummary(t, out)
	t.Logf("first run: %+v\n%s", sum, out)
	require.Equal(t, n, sum.read)
	require.Equal(t, n, sum.stored)
	require.Zero(t, sum.failed+sum.tooLarge+sum.existing)
	require.GreaterOrEqual(t, sum.malformed, 1)
	require.Regexp(t, progressRE, errOut)
	require.Contains(t, errOut, fmt.Sprintf(" of %d messages", n), "Maildir progress knows the total")

	out2, _ := s.runImport(t, "-user", user, root)
	sum2 := parseSummary(t, out2)
	require.Equal(t, importSummary{read: n, existing: n, malformed: sum.malformed}, sum2)

	s.start()
	// With embedded stores a running server holds the data directory: a
	// clear error, not a crash.
	cmd := exec.Command(binary, append(append([]string{}, s.args...), "import", "-user", user, root)...)
	busy, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", busy)
	require.Contains(t, string(busy), "is a server running on it?")

	c := s.client(user, "import-pw-2")
	require.EqualValues(t, 240+30+2+1, c.folder(t, "INBOX").Total)
	require.EqualValues(t, 40, c.folder(t, "Archive/2024").Total)
	require.Equal(t, wantBytes["INBOX"], c.folder(t, "INBOX").Size)
	require.Equal(t, wantBytes["Archive/2024"], c.folder(t, "Archive/2024").Size)
	checked := 0
	for _, folder := range []string{"INBOX", "Archive/2024"} {
		for _, m := range c.all(t, folder) {
			w, ok := wants[m.Subject]
			if !ok {
				continue
			}
			require.Equal(t, w.folder, folder, m.Subject)
			got := append([]string{}, m.Flags...)
			sort.Strings(got)
			exp := append([]string{}, w.flags...)
			sort.Strings(exp)
			if len(exp) == 0 {
				exp = []string{}
			}
			require.Equal(t, exp, got, "flags of %q", m.Subject)
			checked++
		}
	}
	require.Equal(t, n-1, checked, "every generated message found with its flags")
}
