package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// postfixDovecot is Debian's Postfix in a private config and queue
// directory, relaying example.test over LMTP (loopback TCP) to a private
// Dovecot storing a Maildir, with IMAP on loopback for the probes' SEARCH.
type postfixDovecot struct {
	dir             string
	smtp, imap      string
	postfix, dove   *proc
	pfOut, dvOut    *syncBuffer
	maildir         string
	mailRoot        string
	imapMu          sync.Mutex
	imapConn        *imapClient
	stopOnce        sync.Once
	stopErr         error
	postfixConfDir  string
	dovecotConfPath string
}

// Binaries the postfix_dovecot implementation needs.
var postfixDovecotBins = []string{
	"/usr/sbin/postfix", "/usr/lib/postfix/sbin/master", "/usr/sbin/dovecot",
	"/usr/lib/dovecot/lmtp", "/usr/lib/dovecot/imap",
}

func startPostfixDovecot(ctx context.Context, dir string) (*postfixDovecot, error) {
	for _, b := range postfixDovecotBins {
		if _, err := os.Stat(b); err != nil {
			pkg := "postfix"
			switch {
			case strings.HasSuffix(b, "/lmtp"):
				pkg = "dovecot-lmtpd"
			case strings.Contains(b, "dovecot"):
				pkg = "dovecot-imapd"
			}
			return nil, fmt.Errorf("%w: %s (Debian package %s)", errE2EMissing, b, pkg)
		}
	}
	// Postfix's and Dovecot's unprivileged processes must traverse the
	// temp directory.
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if d != dir {
				return nil, fmt.Errorf("%s is not traversable by other users; pass -dir", d)
			}
			if err := os.Chmod(d, 0o755); err != nil {
				return nil, err
			}
		}
	}
	t := &postfixDovecot{dir: dir, pfOut: &syncBuffer{}, dvOut: &syncBuffer{}}
	var lmtp string
	var err error
	for _, a := range []*string{&t.smtp, &t.imap, &lmtp} {
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	if err := t.startDovecot(ctx, lmtp); err != nil {
		t.stop()
		return nil, err
	}
	if err := t.startPostfix(ctx, lmtp); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func (t *postfixDovecot) startDovecot(ctx context.Context, lmtp string) error {
	d := filepath.Join(t.dir, "dovecot")
	t.mailRoot = filepath.Join(d, "mail")
	for _, sub := range []string{"", "state"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(t.mailRoot, 0o755); err != nil {
		return err
	}
	// The mail user: nobody, whose uid Dovecot accepts (not root).
	if err := os.Chown(t.mailRoot, 65534, 65534); err != nil {
		return err
	}
	t.maildir = filepath.Join(t.mailRoot, "alice", "Maildir")
	users := filepath.Join(d, "users")
	if err := os.WriteFile(users, []byte(e2eRecipient+":{PLAIN}"+oursPassword+":65534:65534::"+filepath.Join(t.mailRoot, "alice")+"::\n"), 0o644); err != nil {
		return err
	}
	lhost, lport, _ := net.SplitHostPort(lmtp)
	ihost, iport, _ := net.SplitHostPort(t.imap)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
first_valid_uid = 1000
last_valid_uid = 0
default_internal_user = dovecot
default_login_user = dovenull
lmtp_save_to_detail_mailbox = no
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[2]s
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[2]s
}
service imap-login {
  inet_listener imap {
    address = %[3]s
    port = %[4]s
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = %[5]s
    port = %[6]s
  }
}
`, d, users, ihost, iport, lhost, lport)
	t.dovecotConfPath = filepath.Join(d, "dovecot.conf")
	if err := os.WriteFile(t.dovecotConfPath, []byte(conf), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("/usr/sbin/dovecot", "-F", "-c", t.dovecotConfPath)
	cmd.Stdout, cmd.Stderr = t.dvOut, t.dvOut
	var err error
	if t.dove, err = startProc("dovecot", cmd); err != nil {
		return err
	}
	for _, a := range []string{lmtp, t.imap} {
		if err := t.waitListen(ctx, t.dove, a, filepath.Join(d, "dovecot.log"), t.dvOut); err != nil {
			return err
		}
	}
	return nil
}

// postfixMaster is Postfix's master.cf for the private instances of the
// e2e and delivery suites: only the services they need, none chrooted;
// %s is the smtpd listen address.
const postfixMaster = `%s inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`

func (t *postfixDovecot) startPostfix(ctx context.Context, lmtp string) error {
	d := filepath.Join(t.dir, "postfix")
	t.postfixConfDir = filepath.Join(d, "etc")
	for _, sub := range []string{"etc", "queue", "data"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	pu, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("%w: user postfix: %v", errE2EMissing, err)
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	if err := os.Chown(filepath.Join(d, "data"), uid, gid); err != nil {
		return err
	}
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = example.test
virtual_transport = lmtp:inet:%[2]s
alias_maps =
alias_database =
local_recipient_maps =
append_dot_mydomain = no
biff = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
default_process_limit = 100
`, d, lmtp)
	if err := os.WriteFile(filepath.Join(t.postfixConfDir, "main.cf"), []byte(main), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(t.postfixConfDir, "master.cf"), []byte(fmt.Sprintf(postfixMaster, t.smtp)), 0o644); err != nil {
		return err
	}
	// postfix check creates the queue's subdirectories with their owners.
	chk := exec.CommandContext(ctx, "/usr/sbin/postfix", "-c", t.postfixConfDir, "check")
	if out, err := chk.CombinedOutput(); err != nil {
		return fmt.Errorf("postfix check: %v: %s", err, out)
	}
	cmd := exec.Command("/usr/lib/postfix/sbin/master", "-c", t.postfixConfDir, "-d")
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+t.postfixConfDir)
	cmd.Stdout, cmd.Stderr = t.pfOut, t.pfOut
	if t.postfix, err = startProc("postfix", cmd); err != nil {
		return err
	}
	return t.waitListen(ctx, t.postfix, t.smtp, filepath.Join(d, "maillog"), t.pfOut)
}

// waitListen waits until addr accepts connections or p exits.
func (t *postfixDovecot) waitListen(ctx context.Context, p *proc, addr, logFile string, out *syncBuffer) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		why := ""
		select {
		case <-p.exited:
			why = "exited"
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				why = "not listening after 30s"
			}
		}
		if why != "" {
			lb, _ := os.ReadFile(logFile)
			return fmt.Errorf("%s %s on %s: %s %s", p.name, why, addr, tail(out.String()), tail(string(lb)))
		}
	}
}

func (t *postfixDovecot) smtpAddr() string { return t.smtp }

// stored counts the files in the Maildir's new and cur.
func (t *postfixDovecot) stored(context.Context) (int, error) {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(t.maildir, sub))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		n += len(ents)
	}
	return n, nil
}

// searchable asks Dovecot's IMAP server: SEARCH SUBJECT word in INBOX.
func (t *postfixDovecot) searchable(ctx context.Context, word string) (bool, error) {
	t.imapMu.Lock()
	defer t.imapMu.Unlock()
	if t.imapConn == nil {
		c, err := dialIMAP(ctx, t.imap, e2eRecipient, oursPassword)
		if err != nil {
			return false, err
		}
		t.imapConn = c
	}
	lines, err := t.imapConn.cmd("NOOP")
	if err == nil {
		lines, err = t.imapConn.cmd("SEARCH SUBJECT " + word)
	}
	if err != nil {
		t.imapConn.close()
		t.imapConn = nil
		return false, err
	}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "* SEARCH"); ok && strings.TrimSpace(rest) != "" {
			return true, nil
		}
	}
	return false, nil
}

func (t *postfixDovecot) pgids() []int {
	var out []int
	for _, p := range []*proc{t.postfix, t.dove} {
		if p != nil {
			out = append(out, p.pgid())
		}
	}
	return out
}

func (t *postfixDovecot) peakRSS(sampled int64) int64 { return sampled }

// stop stops Postfix first (its queue drains into Dovecot), then Dovecot.
func (t *postfixDovecot) stop() error {
	t.stopOnce.Do(func() {
		t.imapMu.Lock()
		if t.imapConn != nil {
			t.imapConn.close()
			t.imapConn = nil
		}
		t.imapMu.Unlock()
		for _, p := range []*proc{t.postfix, t.dove} {
			if p != nil {
				if err := p.stop(30 * time.Second); err != nil && t.stopErr == nil {
					t.stopErr = err
				}
			}
		}
	})
	return t.stopErr
}

// diskBytes is the mail directory: the Maildir and Dovecot's index files.
func (t *postfixDovecot) diskBytes(context.Context) (int64, error) {
	return diskUsage(t.mailRoot)
}

func (t *postfixDovecot) cleanup(context.Context) {}

// imapClient is the few IMAP commands the probes need.
type imapClient struct {
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

func dialIMAP(ctx context.Context, addr, user, pass string) (*imapClient, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &imapClient{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.r.ReadString('\n'); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := c.cmd(fmt.Sprintf("LOGIN %q %q", user, pass)); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := c.cmd("SELECT INBOX"); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// cmd sends one command and returns its untagged responses; a NO or BAD
// is an error.
func (c *imapClient) cmd(command string) ([]string, error) {
	c.tag++
	tag := fmt.Sprintf("a%d", c.tag)
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, command); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return nil, fmt.Errorf("imap %s: %s", strings.Fields(command)[0], rest)
			}
			return lines, nil
		}
		lines = append(lines, l)
	}
}

func (c *imapClient) close() {
	c.cmd("LOGOUT")
	c.conn.Close()
}
