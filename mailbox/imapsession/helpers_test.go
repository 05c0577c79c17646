package imapsession_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/imapsession"
)

var ctx = context.Background()

const password = "pw"

func testAuth(ctx context.Context, user, pass string) (mailbricks.UserID, error) {
	if pass != password {
		return "", imapsession.ErrAuthFailed
	}
	return mailbricks.UserID(user), nil
}

// env is a server on loopback over an in-memory embedded store.
type env struct {
	addr  string
	mail  *embedded.Blocks
	store *mailbox.Store
}

// newEnv starts a server; opts nil means loopback plaintext, no login
// delay, and SEARCH on the store's index unless noIndex.
func newEnv(t testing.TB, opts *imapsession.Options, noIndex bool) *env {
	t.Helper()
	mail, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem(), NoSync: true})
	require.NoError(t, err)
	o := imapsession.Options{AllowPlaintextLoopback: true, LoginFailureDelay: -1}
	if opts != nil {
		o = *opts
	}
	if !noIndex {
		o.Index = mail.Index
	}
	srv := imapsession.NewServer(mail.Mailbox, testAuth, &o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		mail.Close()
	})
	return &env{addr: ln.Addr().String(), mail: mail, store: mail.Mailbox}
}

// updates records the unilateral data a client receives.
type updates struct {
	mu       sync.Mutex
	expunges []uint32
	exists   []uint32
	flags    map[uint32][]string // by seq
	notify   chan struct{}
}

func (u *updates) handler() *imapclient.UnilateralDataHandler {
	u.flags = map[uint32][]string{}
	u.notify = make(chan struct{}, 100)
	ping := func() {
		select {
		case u.notify <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) {
			u.mu.Lock()
			u.expunges = append(u.expunges, seq)
			u.mu.Unlock()
			ping()
		},
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				u.mu.Lock()
				u.exists = append(u.exists, *d.NumMessages)
				u.mu.Unlock()
				ping()
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			u.mu.Lock()
			fl := make([]string, len(buf.Flags))
			for i, f := range buf.Flags {
				fl[i] = string(f)
			}
			u.flags[buf.SeqNum] = fl
			u.mu.Unlock()
			ping()
		},
	}
}

func (u *updates) snapshot() (exp, exists []uint32, flags map[uint32][]string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	flags = map[uint32][]string{}
	for k, v := range u.flags {
		flags[k] = v
	}
	return append([]uint32(nil), u.expunges...), append([]uint32(nil), u.exists...), flags
}

func (u *updates) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.expunges, u.exists, u.flags = nil, nil, map[uint32][]string{}
}

// waitFor waits until cond holds on the recorded updates.
func (u *updates) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-u.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (e *env) dial(t testing.TB, user string, u *updates) *imapclient.Client {
	t.Helper()
	o := &imapclient.Options{}
	if os.Getenv("IMAP_DEBUG") != "" {
		o.DebugWriter = os.Stderr
	}
	if u != nil {
		o.UnilateralDataHandler = u.handler()
	}
	c, err := imapclient.DialInsecure(e.addr, o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Login(user, password).Wait())
	return c
}

func msg(subject, body string) string {
	return "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\n\r\n" + body + "\r\n"
}

func appendClient(t testing.TB, c *imapclient.Client, folder, raw string, flags ...string) {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), nil)
	_, err := cmd.Write([]byte(raw))
	require.NoError(t, err)
	require.NoError(t, cmd.Close())
	_, err = cmd.Wait()
	require.NoError(t, err)
}

// rawConn speaks IMAP to the server directly, for what a client library
// would not send.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func (e *env) raw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	r := &rawConn{c: c, r: bufio.NewReader(c)}
	line, err := r.r.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "* OK"), line)
	return r
}

// expect sends cmd and reads lines until one starts with want's tag,
// which must start with want; it returns the lines read.
func (r *rawConn) expect(t testing.TB, cmd, want string) []string {
	t.Helper()
	if cmd != "" {
		_, err := r.c.Write([]byte(cmd + "\r\n"))
		require.NoError(t, err)
	}
	tag, _, _ := strings.Cut(want, " ")
	var lines []string
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.r.ReadString('\n')
		require.NoError(t, err, "reading the answer to %q after %q", cmd, lines)
		lines = append(lines, line)
		if strings.HasPrefix(line, tag+" ") {
			require.True(t, strings.HasPrefix(line, want), "answer to %q: %q", cmd, line)
			return lines
		}
	}
}

func (r *rawConn) login(t testing.TB, user string) {
	t.Helper()
	r.expect(t, "L LOGIN "+user+" "+password, "L OK")
}
