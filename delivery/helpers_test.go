package delivery

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
)

// fakeDNS is a Resolver answering from maps; a missing name is NXDOMAIN.
type fakeDNS struct {
	mu  sync.Mutex
	txt map[string][]string
	ip  map[string][]net.IPAddr
	mx  map[string][]*net.MX
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{txt: map[string][]string{}, ip: map[string][]net.IPAddr{}, mx: map[string][]*net.MX{}}
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func canon(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

func (f *fakeDNS) setTXT(name string, v ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txt[canon(name)] = v
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.txt[canon(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

func (f *fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.mx[canon(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

func (f *fakeDNS) LookupIPAddr(_ context.Context, name string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.ip[canon(name)]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

func (f *fakeDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, notFound(addr)
}

// testEnv is an Inbound on the embedded blocks in memory, served on a
// loopback port.
type testEnv struct {
	blocks *embedded.Blocks
	in     *Inbound
	srv    *smtp.Server
	addr   string
	dns    *fakeDNS
}

func newEnv(t testing.TB, opts *InboundOptions) *testEnv {
	t.Helper()
	blocks, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	t.Cleanup(func() { blocks.Close() })
	env := &testEnv{blocks: blocks, dns: newFakeDNS()}
	var o InboundOptions
	if opts != nil {
		o = *opts
	}
	if o.Hostname == "" {
		o.Hostname = "mx.example.net"
	}
	if o.Resolver == nil {
		o.Resolver = env.dns
	}
	env.in, err = NewInbound(blocks.Blobs, blocks.Queue, &o)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	env.addr = l.Addr().String()
	env.srv = env.in.NewServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		env.srv.Serve(env.in.Listener(l))
	}()
	t.Cleanup(func() {
		env.srv.Close()
		l.Close() // in case Serve had not registered l yet
		<-done
	})
	return env
}

// send sends msg from one envelope with go-smtp's client and returns the
// error of the first failing step.
func (env *testEnv) send(t *testing.T, from string, to []string, msg string) error {
	t.Helper()
	c, err := smtp.Dial(env.addr)
	require.NoError(t, err)
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// jobs leases every job on the incoming topic.
func (env *testEnv) jobs(t *testing.T) []queue.Job {
	t.Helper()
	jobs, err := env.blocks.Queue.Lease(context.Background(), DefaultTopic, 100, time.Minute, nil)
	require.NoError(t, err)
	return jobs
}

// rawConn is a raw SMTP session for what go-smtp's client will not send.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *textproto.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	rc := &rawConn{t: t, conn: conn, r: textproto.NewReader(bufio.NewReader(conn))}
	return rc
}

// reply reads one (possibly multi-line) reply and returns its code and
// the text of the last line.
func (rc *rawConn) reply() (int, string) {
	rc.t.Helper()
	code, msg, err := rc.r.ReadResponse(0)
	if err != nil {
		if te, ok := err.(*textproto.Error); ok {
			return te.Code, te.Msg
		}
		require.NoError(rc.t, err)
	}
	return code, msg
}

// cmd writes s verbatim (the caller adds line endings) and reads a reply.
func (rc *rawConn) cmd(s string) (int, string) {
	rc.t.Helper()
	rc.write(s)
	return rc.reply()
}

func (rc *rawConn) write(s string) {
	rc.t.Helper()
	_, err := rc.conn.Write([]byte(s))
	require.NoError(rc.t, err)
}

// expect reads a reply and requires its code.
func (rc *rawConn) expect(code int) string {
	rc.t.Helper()
	got, msg := rc.reply()
	require.Equal(rc.t, code, got, "reply %d %s", got, msg)
	return msg
}

// start greets, sends EHLO, MAIL and one RCPT, and DATA.
func (rc *rawConn) start(from, to string) {
	rc.t.Helper()
	rc.expect(220)
	c, m := rc.cmd("EHLO client.example.org\r\n")
	require.Equal(rc.t, 250, c, m)
	c, m = rc.cmd(fmt.Sprintf("MAIL FROM:<%s>\r\n", from))
	require.Equal(rc.t, 250, c, m)
	c, m = rc.cmd(fmt.Sprintf("RCPT TO:<%s>\r\n", to))
	require.Equal(rc.t, 250, c, m)
	c, m = rc.cmd("DATA\r\n")
	require.Equal(rc.t, 354, c, m)
}
