package main

// The imap suite: our IMAP front (mailbox/imapsession over the embedded
// mailbox and index) against Dovecot, on the same messages, driven by the
// same go-imap client over loopback.
//
//   - fetch_envelope: FETCH 1:* (FLAGS ENVELOPE); ops are messages.
//   - fetch_body: UID FETCH of 100 random full bodies (BODY.PEEK[]), one
//     command each; ops are messages.
//   - search_rare, search_common: SEARCH BODY <word> for a word in a few
//     messages and for the word in the most messages; ops are searches.
//     (We match whole words through the index; Dovecot without FTS scans
//     the bodies for substrings: hits= shows both counts.)
//   - store_seen: UID STORE +FLAGS (\Seen) on 1,000 random messages, one
//     command each; ops are commands.
//
// Both hold the same messages in one folder: the SpamAssassin corpus
// (6,046 messages, repeated to reach -keys, 10,000 by default, 1,000 with
// -quick). Ours is loaded with Store.Append (synced writes, index
// attached), Dovecot's Maildir is written directly under a private
// configuration on a free loopback port (plaintext auth), in the same
// temporary directory, so on the same disk. Each side gets one untimed
// FETCH 1:* (FLAGS ENVELOPE) first, so that Dovecot has built its index
// and cache files and both have the data in the page cache.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/internal/corpus"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/imapsession"
)

func init() { register("imap", func() suite { return &imapSuite{} }) }

type imapSuite struct {
	dovecot string
}

// Impls: ours and dovecot run every workload with their default
// durability (ours syncs every acknowledged write; Dovecot's
// mail_fsync=optimized does not sync flag changes). ours-nosync and
// dovecot-fsync run only store_seen, to compare flag writes at equal
// durability both ways.
func (s *imapSuite) Impls() []string {
	return []string{"ours", "dovecot", "ours-nosync", "dovecot-fsync"}
}

func (s *imapSuite) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.dovecot, "dovecot", "/usr/sbin/dovecot", "path of the dovecot binary")
}

const imapPassword = "bench-pw"

func (s *imapSuite) Run(impl string, c *config, r *reporter) error {
	n := c.Keys
	if n <= 0 {
		n = 10000
		if c.Quick {
			n = 1000
		}
	}
	msgs, err := corpus.Load(context.Background())
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	base, err := os.MkdirTemp(c.Dir, "mailbricks-bench-imap-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = msgs[i%len(msgs)].Raw
	}
	var addr string
	switch impl {
	case "ours", "ours-nosync":
		a, stop, err := startOurs(base, raws, impl == "ours-nosync")
		if err != nil {
			return err
		}
		defer stop()
		addr = a
	case "dovecot", "dovecot-fsync":
		if _, err := os.Stat(s.dovecot); err != nil {
			return fmt.Errorf("dovecot not installed (%s): %w", s.dovecot, err)
		}
		a, stop, err := startDovecot(s.dovecot, base, raws, impl == "dovecot-fsync")
		if err != nil {
			return err
		}
		defer stop()
		addr = a
	default:
		return fmt.Errorf("unknown impl %q", impl)
	}
	err = imapWorkloads(addr, raws, c, r, strings.Contains(impl, "-"))
	if err != nil && strings.HasPrefix(impl, "dovecot") {
		log, _ := os.ReadFile(filepath.Join(base, "dovecot.log"))
		fmt.Fprintf(os.Stderr, "imap: dovecot log:\n%s", log)
	}
	return err
}

func (s *imapSuite) Ratios(rs *results) []ratio {
	var out []ratio
	for _, w := range []string{"fetch_envelope", "fetch_body", "search_rare", "search_common", "store_seen"} {
		o, ok1 := rs.get(w, "ours")
		d, ok2 := rs.get(w, "dovecot")
		if ok1 && ok2 && d.OpsPerSec > 0 {
			out = append(out, ratio{w, "ours/dovecot", o.OpsPerSec / d.OpsPerSec})
		}
	}
	// Flag writes at equal durability: neither syncs, both sync.
	if o, ok := rs.get("store_seen", "ours-nosync"); ok {
		if d, ok := rs.get("store_seen", "dovecot"); ok && d.OpsPerSec > 0 {
			out = append(out, ratio{"store_seen_nosync", "ours/dovecot", o.OpsPerSec / d.OpsPerSec})
		}
	}
	if o, ok := rs.get("store_seen", "ours"); ok {
		if d, ok := rs.get("store_seen", "dovecot-fsync"); ok && d.OpsPerSec > 0 {
			out = append(out, ratio{"store_seen_fsync", "ours/dovecot", o.OpsPerSec / d.OpsPerSec})
		}
	}
	return out
}

// startOurs loads raws into INBOX of an embedded store and serves it.
func startOurs(base string, raws [][]byte, noSync bool) (string, func(), error) {
	mail, err := embedded.Open(filepath.Join(base, "mail"), &embedded.Options{NoSync: noSync})
	if err != nil {
		return "", nil, err
	}
	ctx := context.Background()
	user := mailbricks.UserID("bench")
	start := time.Now()
	// Appends keep the corpus order, so UIDs follow it as in Dovecot.
	for _, raw := range raws {
		if _, err := mail.Mailbox.Append(ctx, user, mailbox.Inbox, bytes.NewReader(raw), nil); err != nil {
			mail.Close()
			return "", nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "imap: ours: loaded %d messages in %v\n", len(raws), time.Since(start).Round(time.Millisecond))
	auth := func(ctx context.Context, u, p string) (mailbricks.UserID, error) {
		if p != imapPassword {
			return "", imapsession.ErrAuthFailed
		}
		return mailbricks.UserID(u), nil
	}
	srv := imapsession.NewServer(mail.Mailbox, auth, &imapsession.Options{Index: mail.Index, AllowPlaintextLoopback: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		mail.Close()
		return "", nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close(); mail.Close() }, nil
}

// startDovecot writes raws as a Maildir and starts a private Dovecot on a
// free loopback port.
func startDovecot(bin, base string, raws [][]byte, fsync bool) (string, func(), error) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		// Dovecot refuses to run mail processes as root.
		u, err := user.Lookup("dovecot")
		if err != nil {
			return "", nil, fmt.Errorf("dovecot user: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	home := filepath.Join(base, "home", "bench")
	md := filepath.Join(home, "Maildir")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, d), 0o755); err != nil {
			return "", nil, err
		}
	}
	start := time.Now()
	t0 := time.Now().Unix() - int64(len(raws))
	for i, raw := range raws {
		name := fmt.Sprintf("%d.M%dP1.bench:2,", t0+int64(i), i)
		if err := os.WriteFile(filepath.Join(md, "cur", name), raw, 0o644); err != nil {
			return "", nil, err
		}
	}
	if err := filepath.Walk(filepath.Join(base, "home"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(os.Stderr, "imap: dovecot: wrote %d Maildir files in %v\n", len(raws), time.Since(start).Round(time.Millisecond))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, d := range []string{"run", "state"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	os.Chmod(base, 0o755)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = static
  args = password=%[2]s
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/home/%%u
}
mail_location = maildir:~/Maildir
first_valid_uid = 1
mail_fsync = %[6]s
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
`, base, imapPassword, uid, gid, port, map[bool]string{false: "optimized", true: "always"}[fsync])
	cf := filepath.Join(base, "dovecot.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-F", "-c", cf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		// Ready when the greeting is the real one, not "Waiting for
		// authentication process to respond".
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 512)
			k, _ := c.Read(buf)
			c.Close()
			if bytes.HasPrefix(buf[:k], []byte("* OK [CAPABILITY")) {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(base, "dovecot.log"))
			return "", nil, fmt.Errorf("dovecot did not listen on %s: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, stop, nil
}

// benchWords picks the rare and the common search word from the bodies:
// words written as words (between spaces, lowercase letters only, so no
// base64 or encoded text), the common one in the most messages, the rare
// one in 2 to 5 messages (the middle one in alphabetical order, so every
// run and both sides use the same).
func benchWords(raws [][]byte) (rare, common string) {
	df := map[string]int{}
	for _, raw := range raws[:min(len(raws), corpus.Size)] {
		body := raw
		if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
			body = raw[i+2:]
		}
		if bytes.Contains(raw, []byte("base64")) || bytes.Contains(raw, []byte("quoted-printable")) {
			continue
		}
		seen := map[string]bool{}
		for _, f := range strings.Fields(string(body)) {
			w := strings.Trim(f, ".,;:!?\"'()")
			if len(w) < 5 || len(w) > 12 || seen[w] || strings.IndexFunc(w, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
				continue
			}
			seen[w] = true
			df[w]++
		}
	}
	var rares []string
	best := 0
	for w, n := range df {
		if n > best || (n == best && w < common) {
			best, common = n, w
		}
		if n >= 2 && n <= 5 {
			rares = append(rares, w)
		}
	}
	sort.Strings(rares)
	if len(rares) > 0 {
		rare = rares[len(rares)/2]
	}
	return rare, common
}

func imapWorkloads(addr string, raws [][]byte, c *config, r *reporter, storeOnly bool) error {
	cl, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Login("bench", imapPassword).Wait(); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	sd, err := cl.Select("INBOX", nil).Wait()
	if err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if int(sd.NumMessages) != len(raws) {
		return fmt.Errorf("INBOX has %d messages, want %d", sd.NumMessages, len(raws))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	if storeOnly {
		return storeSeen(cl, rnd, len(raws), c, r)
	}
	all := imap.SeqSet{{Start: 1, Stop: 0}}
	envOpts := &imap.FetchOptions{Flags: true, Envelope: true}
	fetchAll := func() (int, error) {
		msgs, err := cl.Fetch(all, envOpts).Collect()
		return len(msgs), err
	}
	if _, err := fetchAll(); err != nil { // warm-up
		return err
	}
	reps := 3
	if c.Quick {
		reps = 1
	}
	start := time.Now()
	total := 0
	for range reps {
		got, err := fetchAll()
		if err != nil {
			return fmt.Errorf("fetch envelope: %w", err)
		}
		total += got
	}
	el := time.Since(start)
	r.result("fetch_envelope", float64(total)/el.Seconds(), kv{"messages", float64(len(raws))}, kv{"ms_per_fetch_all", el.Seconds() * 1000 / float64(reps)})

	nBodies := 100
	start = time.Now()
	var bytesRead int
	for range nBodies {
		uid := imap.UID(rnd.IntN(len(raws)) + 1)
		sec := &imap.FetchItemBodySection{Peek: true}
		msgs, err := cl.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			return fmt.Errorf("fetch body: %w", err)
		}
		if len(msgs) != 1 {
			return fmt.Errorf("fetch body of UID %d: %d messages", uid, len(msgs))
		}
		b := msgs[0].FindBodySection(sec)
		// Dovecot serves a Maildir's LF line ends as CRLF, as IMAP wants;
		// ours serves the bytes as appended: compare line ends aside.
		if crlf := []byte("\r\n"); !bytes.Equal(bytes.ReplaceAll(b, crlf, []byte("\n")), bytes.ReplaceAll(raws[uid-1], crlf, []byte("\n"))) {
			return fmt.Errorf("body of UID %d differs from the original (%d vs %d bytes)", uid, len(b), len(raws[uid-1]))
		}
		bytesRead += len(b)
	}
	el = time.Since(start)
	r.result("fetch_body", float64(nBodies)/el.Seconds(), kv{"bytes", float64(bytesRead)})

	rare, common := benchWords(raws)
	fmt.Fprintf(os.Stderr, "imap: search words: rare %q, common %q\n", rare, common)
	for _, w := range []struct{ name, word string }{{"search_rare", rare}, {"search_common", common}} {
		n := 10
		if c.Quick {
			n = 3
		}
		var hits int
		start := time.Now()
		for range n {
			sr, err := cl.UIDSearch(&imap.SearchCriteria{Body: []string{w.word}}, nil).Wait()
			if err != nil {
				return fmt.Errorf("%s: %w", w.name, err)
			}
			hits = len(sr.AllUIDs())
		}
		el := time.Since(start)
		r.result(w.name, float64(n)/el.Seconds(), kv{"hits", float64(hits)}, kv{"ms_per_search", el.Seconds() * 1000 / float64(n)})
	}

	return storeSeen(cl, rnd, len(raws), c, r)
}

// storeSeen is the store_seen workload.
func storeSeen(cl *imapclient.Client, rnd *rand.Rand, n int, c *config, r *reporter) error {
	nStore := 1000
	if c.Quick {
		nStore = 200
	}
	start := time.Now()
	for range nStore {
		uid := imap.UID(rnd.IntN(n) + 1)
		if _, err := cl.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect(); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	el := time.Since(start)
	r.result("store_seen", float64(nStore)/el.Seconds())
	return cl.Logout().Wait()
}
