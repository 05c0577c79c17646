package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailbricks/mailbricks/internal/corpus"
)

// Workload import: messages per second importing the SpamAssassin corpus
// (6,046 messages; -quick: the first 1,500) written as one mboxrd file,
// each implementation timed as one whole process from its start to its
// exit, with the messages stored counted afterwards (a short count fails
// the run).
//
// Implementations: ours (`mailserver import -user U FILE` into a fresh data
// directory on embedded defaults, the user added first, no server
// running), dovecot (`doveadm import` from the location mbox:DIR:INBOX=FILE
// into a fresh Maildir, with a private dovecot.conf and no userdb: the
// mail user is nobody when the bench runs as root) and mbsync (isync
// pulling INBOX into a fresh Maildir from ours' IMAP server, which serves
// the data directory `mailserver import` filled beforehand, untimed).
// Extras: messages, mbox_mb.

// importQuickMessages is how many corpus messages -quick imports.
const importQuickMessages = 1500

// importUser is the mailbox the corpus is imported into.
const importUser = "importer@example.test"

// e2eImportImpls are the e2e suite's implementations that run only the
// import workload.
var e2eImportImpls = []string{"dovecot", "mbsync"}

// importRatios are ours' import rate over each peer's.
func (s *e2eSuite) importRatios(rs *results) []ratio {
	ours, ok := rs.get("import", "ours")
	if !ok || ours.OpsPerSec == 0 {
		return nil
	}
	var out []ratio
	for _, peer := range e2eImportImpls {
		p, ok := rs.get("import", peer)
		if ok && p.OpsPerSec > 0 {
			out = append(out, ratio{"import", "ours/" + peer, ours.OpsPerSec / p.OpsPerSec})
		}
	}
	return out
}

// runImportFirst runs the import workload for ours and the import peers
// when -workloads selects it; done reports that impl has nothing else to
// run (ingest not selected, or an import-only implementation).
func (s *e2eSuite) runImportFirst(impl string, c *config, r *reporter) (done bool, err error) {
	sel := strings.Split(s.workloads, ",")
	for _, w := range sel {
		if w != "ingest" && w != "import" {
			return true, fmt.Errorf("unknown workload %q (ingest, import)", w)
		}
	}
	importOnly := slices.Contains(e2eImportImpls, impl)
	if slices.Contains(sel, "import") && (impl == "ours" || importOnly) {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = s.runImport(ctx, impl, c, r)
		stop()
		if err != nil {
			return true, err
		}
	}
	return importOnly || !slices.Contains(sel, "ingest"), nil
}

// runImport measures the import workload for impl (ours, dovecot or
// mbsync).
func (s *e2eSuite) runImport(ctx context.Context, impl string, c *config, r *reporter) error {
	n := corpus.Size
	if c.Quick {
		n = importQuickMessages
	}
	switch impl {
	case "dovecot":
		if _, err := os.Stat("/usr/bin/doveadm"); err != nil {
			return skipOrFail(r, impl, "/usr/bin/doveadm (Debian package dovecot-core) not installed")
		}
	case "mbsync":
		if _, err := os.Stat("/usr/bin/mbsync"); err != nil {
			return skipOrFail(r, impl, "/usr/bin/mbsync (Debian package isync) not installed")
		}
	}
	dir, err := os.MkdirTemp(c.Dir, "bench-e2e-import-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	msgs, err := corpus.Load(ctx)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	msgs = msgs[:min(n, len(msgs))]
	n = len(msgs)
	mbox := filepath.Join(dir, "mbox", "inbox")
	size, err := writeCorpusMbox(mbox, msgs)
	if err != nil {
		return err
	}
	logf("e2e: import: %d messages, %.1f MiB mbox, impl %s", n, float64(size)/(1<<20), impl)

	var el time.Duration
	switch impl {
	case "ours":
		el, err = importOurs(ctx, dir, mbox, n, false)
	case "dovecot":
		el, err = importDovecot(ctx, dir, mbox, n)
	case "mbsync":
		el, err = importOurs(ctx, dir, mbox, n, true)
	default:
		return fmt.Errorf("unknown implementation %q", impl)
	}
	if err != nil {
		return err
	}
	logf("e2e: import: %s stored %d messages in %v (%.0f msg/s)", impl, n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	r.result("import", float64(n)/el.Seconds(), kv{"messages", float64(n)}, kv{"mbox_mb", float64(size) / (1 << 20)})
	return nil
}

// writeCorpusMbox writes msgs as one mboxrd file (">*From " lines quoted
// with one more '>'), each with a "From " line and a blank line after it.
func writeCorpusMbox(path string, msgs []corpus.Message) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	for i, m := range msgs {
		date := time.Date(2002, 1, 1, 0, 0, i, 0, time.UTC)
		fmt.Fprintf(w, "From sender@example.org %s\n", date.Format(time.ANSIC))
		data := m.Raw
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i+1], data[i+1:]
			} else {
				data = nil
			}
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				w.WriteByte('>')
			}
			w.Write(line)
			if line[len(line)-1] != '\n' {
				w.WriteByte('\n')
			}
		}
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), f.Close()
}

// importSummaryRE is the last line `mailserver import` prints.
var importSummaryRE = regexp.MustCompile(`(\d+) messages read, (\d+) stored, (\d+) already there, (\d+) malformed \(stored as they are\), (\d+) too large \(skipped\), (\d+) failed`)

// importOurs builds the mailserver, adds the user and times `mailserver
// import` of mbox into a fresh data directory, checking its summary. With
// viaMbsync the import is untimed: the server then starts on the data
// directory and what is timed is mbsync pulling INBOX into a Maildir.
func importOurs(ctx context.Context, dir, mbox string, n int, viaMbsync bool) (time.Duration, error) {
	src, err := mailserverDir()
	if err != nil {
		return 0, err
	}
	bin := filepath.Join(dir, "mailserver")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build mailserver: %v\n%s", err, out)
	}
	base := []string{"-data", filepath.Join(dir, "data"), "-demo=false", "-log-level", "warn", "-hostname", "bench.test"}
	add := exec.CommandContext(ctx, bin, append(append([]string{}, base...), "user", "add", importUser, "-password", oursPassword)...)
	if out, err := add.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("mailserver user add: %v\n%s", err, out)
	}
	imp := exec.CommandContext(ctx, bin, append(append([]string{}, base...), "import", "-user", importUser, mbox)...)
	var out, errOut bytes.Buffer
	imp.Stdout, imp.Stderr = &out, &errOut
	start := time.Now()
	err = imp.Run()
	el := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("mailserver import: %v\n%s%s", err, out.String(), tail(errOut.String()))
	}
	m := importSummaryRE.FindStringSubmatch(out.String())
	if m == nil {
		return 0, fmt.Errorf("mailserver import: no summary in %q", out.String())
	}
	read, _ := strconv.Atoi(m[1])
	stored, _ := strconv.Atoi(m[2])
	if read != n || stored != n {
		return 0, fmt.Errorf("mailserver import: %d messages in the mbox but %s", n, m[0])
	}
	if !viaMbsync {
		return el, nil
	}
	return mbsyncFromOurs(ctx, dir, bin, base, n)
}

// mbsyncFromOurs starts the server on the imported data directory and
// times mbsync pulling its INBOX into a fresh Maildir.
func mbsyncFromOurs(ctx context.Context, dir, bin string, base []string, n int) (time.Duration, error) {
	addrs := make([]string, 4)
	for i := range addrs {
		a, err := freeAddr()
		if err != nil {
			return 0, err
		}
		addrs[i] = a
	}
	imap, web := addrs[2], addrs[3]
	args := append(append([]string{}, base...), "-smtp", addrs[0], "-submission", addrs[1], "-imap", imap, "-http", web)
	cmd := exec.Command(bin, args...)
	sout := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = sout, sout
	p, err := startProc("mailserver", cmd)
	if err != nil {
		return 0, err
	}
	defer p.stop(30 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + web + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-p.exited:
			return 0, fmt.Errorf("mailserver exited: %s", tail(sout.String()))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("mailserver not healthy after 60s: %s", tail(sout.String()))
		}
	}
	host, port, _ := net.SplitHostPort(imap)
	maildir := filepath.Join(dir, "mbsync") + "/"
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		return 0, err
	}
	rc := filepath.Join(dir, "mbsyncrc")
	conf := fmt.Sprintf(`IMAPAccount bench
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path %s
Inbox %sINBOX

Channel pull
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
`, host, port, importUser, oursPassword, maildir, maildir)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		return 0, err
	}
	mb := exec.CommandContext(ctx, "/usr/bin/mbsync", "-q", "-c", rc, "pull")
	start := time.Now()
	out, err := mb.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("mbsync: %v: %s", err, tail(string(out)))
	}
	got, err := countMaildir(filepath.Join(maildir, "INBOX"))
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("mbsync: %d messages in the Maildir, %d imported: %s", got, n, tail(string(out)))
	}
	if err := p.stop(30 * time.Second); err != nil {
		return 0, err
	}
	return el, nil
}

// importDovecot times `doveadm import` of mbox into a fresh Maildir with a
// private configuration and no userdb (no Dovecot server runs): doveadm
// acts for the user of its own process, nobody when the bench is root.
func importDovecot(ctx context.Context, dir, mbox string, n int) (time.Duration, error) {
	d := filepath.Join(dir, "dovecot")
	home := filepath.Join(d, "home")
	for _, sub := range []string{home, filepath.Join(d, "run"), filepath.Join(d, "state")} {
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return 0, err
		}
	}
	maildir := filepath.Join(home, "Maildir")
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
mail_location = maildir:%[2]s
first_valid_uid = 1000
last_valid_uid = 0
ssl = no
`, d, maildir)
	confPath := filepath.Join(d, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/doveadm", "-c", confPath, "import",
		"mbox:"+filepath.Dir(mbox)+":INBOX="+mbox, "", "all")
	cmd.Env = append(os.Environ(), "HOME="+home, "USER=bench")
	if os.Getuid() == 0 {
		// Dovecot refuses mail access as root: run it as nobody, who must
		// traverse the temp directory and own what it writes.
		for p := dir; p != "/" && p != "."; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err != nil {
				return 0, err
			}
			if fi.Mode().Perm()&0o001 == 0 {
				if p != dir {
					return 0, fmt.Errorf("%s is not traversable by other users; pass -dir", p)
				}
				if err := os.Chmod(p, 0o755); err != nil {
					return 0, err
				}
			}
		}
		for _, p := range []string{filepath.Dir(mbox), mbox, home, filepath.Join(d, "run"), filepath.Join(d, "state")} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				return 0, err
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		lb, _ := os.ReadFile(filepath.Join(d, "dovecot.log"))
		return 0, fmt.Errorf("doveadm import: %v: %s %s", err, tail(string(out)), tail(string(lb)))
	}
	got, err := countMaildir(maildir)
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("doveadm import: %d messages in the Maildir, %d in the mbox: %s", got, n, tail(string(out)))
	}
	return el, nil
}

// countMaildir counts the files in a Maildir's new and cur.
func countMaildir(maildir string) (int, error) {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(maildir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
	}
	return n, nil
}
