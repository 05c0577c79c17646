package delivery

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

// received is one message an mxServer accepted.
type received struct {
	From  string
	Rcpts []string
	Data  []byte
	TLS   bool
}

// mxBehavior decides an mxServer's replies; a nil func accepts.
type mxBehavior struct {
	mail func(from string) error
	rcpt func(to string) error
	// data is called with the message; dropAfter > 0 closes the
	// connection after that many bytes of DATA instead.
	data      func(msg []byte) error
	dropAfter int
}

// mxServer is an in-process go-smtp server playing a remote MX on a
// 127.0.0.x address.
type mxServer struct {
	mu        sync.Mutex
	addr      string
	ip        string
	got       []received
	conns     map[string]bool // client addresses: one per connection
	active    int             // sessions open now
	maxActive int
	beh       mxBehavior
	srv       *smtp.Server
}

func (m *mxServer) set(b mxBehavior) {
	m.mu.Lock()
	m.beh = b
	m.mu.Unlock()
}

func (m *mxServer) messages() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.got...)
}

func (m *mxServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	m.mu.Lock()
	if m.conns == nil {
		m.conns = map[string]bool{}
	}
	m.conns[c.Conn().RemoteAddr().String()] = true
	m.active++
	m.maxActive = max(m.maxActive, m.active)
	m.mu.Unlock()
	_, isTLS := c.TLSConnectionState()
	return &mxSession{m: m, c: c, tls: isTLS}, nil
}

type mxSession struct {
	m     *mxServer
	c     *smtp.Conn
	tls   bool
	from  string
	rcpts []string
}

func (s *mxSession) beh() mxBehavior {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.beh
}

func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	if f := s.beh().mail; f != nil {
		if err := f(from); err != nil {
			return err
		}
	}
	s.from, s.rcpts = from, nil
	return nil
}

func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := s.beh().rcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	b := s.beh()
	if b.dropAfter > 0 {
		io.ReadFull(r, make([]byte, b.dropAfter))
		s.c.Conn().Close()
		return errors.New("dropped")
	}
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if b.data != nil {
		if err := b.data(msg); err != nil {
			return err
		}
	}
	_, isTLS := s.c.TLSConnectionState()
	s.m.mu.Lock()
	s.m.got = append(s.m.got, received{From: s.from, Rcpts: s.rcpts, Data: msg, TLS: isTLS || s.tls})
	s.m.mu.Unlock()
	return nil
}

func (s *mxSession) Reset() { s.from, s.rcpts = "", nil }
func (s *mxSession) Logout() error {
	s.m.mu.Lock()
	s.m.active--
	s.m.mu.Unlock()
	return nil
}

// smtpErr builds a go-smtp reply error.
func smtpErr(code int, enh [3]int, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: msg}
}

// mxPort finds a port free on the loopback addresses the tests use.
func mxPort(t *testing.T, ips ...string) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", ips[0]+":0")
		require.NoError(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, ip := range ips {
			l2, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no common free port")
	return 0
}

// startMX serves an mxServer on ip:port; tlsConf offers STARTTLS.
func startMX(t *testing.T, ip string, port int, tlsConf *tls.Config) *mxServer {
	t.Helper()
	m := &mxServer{ip: ip, addr: fmt.Sprintf("%s:%d", ip, port)}
	srv := smtp.NewServer(m)
	srv.Domain = "mx-" + ip
	srv.AllowInsecureAuth = true
	srv.TLSConfig = tlsConf
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	l, err := net.Listen("tcp", m.addr)
	require.NoError(t, err)
	m.srv = srv
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); l.Close(); <-done })
	return m
}

// outClock is a settable clock (the outbound tests' own).
type outClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *outClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *outClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// outEnv is an Outbound over in-memory stores, with a fake DNS and a
// fake clock shared by the queue and the Outbound.
type outEnv struct {
	t     *testing.T
	clock *outClock
	dns   *fakeDNS
	q     *queue.Queue
	blobs *dedup.Store
	mail  *mailbox.Store
	state *lsmreputation.Backend
	ob    *Outbound
	port  int
	// firstBlob is the blob of the first submitted message.
	firstBlob dedup.Ref
}

func newOutEnv(t *testing.T, port int, configure func(o *OutboundOptions)) *outEnv {
	t.Helper()
	fs := vfs.NewMem()
	env := &outEnv{t: t, clock: &outClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, dns: newFakeDNS(), port: port}
	var err error
	env.q, err = lsmqueue.OpenQueue("queue", &lsmqueue.Options{FS: fs, Now: env.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { env.q.Close() })
	env.blobs, err = filededup.OpenStore("blobs", &filededup.Options{FS: fs})
	require.NoError(t, err)
	env.mail, err = lsmmailbox.OpenStore("mail", env.blobs, &lsmmailbox.Options{FS: fs})
	require.NoError(t, err)
	t.Cleanup(func() { env.mail.Close(); env.blobs.Close() })
	env.state, err = lsmreputation.Open("state", &lsmreputation.Options{FS: fs})
	require.NoError(t, err)
	t.Cleanup(func() { env.state.Close() })
	o := OutboundOptions{
		Hostname:    "out.example.com",
		Resolver:    env.dns,
		Port:        port,
		Now:         env.clock.Now,
		Mail:        env.mail,
		LocalDomain: func(d string) bool { return d == "example.com" },
		Timeouts:    Timeouts{Connect: 5 * time.Second, Greeting: 10 * time.Second, Mail: 10 * time.Second, Rcpt: 10 * time.Second, DataInit: 10 * time.Second, DataBlock: 10 * time.Second, DataTerm: 10 * time.Second},
	}
	if configure != nil {
		configure(&o)
	}
	env.ob, err = NewOutbound(env.q, env.blobs, env.state, &o)
	require.NoError(t, err)
	t.Cleanup(func() { env.ob.Close() })
	return env
}

// mx points domain at hosts (preference 10, 20, …), each host at ip.
func (env *outEnv) mx(domain string, hostIPs ...string) {
	env.dns.mu.Lock()
	defer env.dns.mu.Unlock()
	var recs []*net.MX
	for i := 0; i+1 < len(hostIPs); i += 2 {
		h, ip := hostIPs[i], hostIPs[i+1]
		recs = append(recs, &net.MX{Host: h + ".", Pref: uint16(10 * (i/2 + 1))})
		env.dns.ip[canon(h)] = []net.IPAddr{{IP: net.ParseIP(ip)}}
	}
	env.dns.mx[canon(domain)] = recs
}

// submit stores msg and enqueues an OutgoingJob as Submission does.
func (env *outEnv) submit(id, from string, rcpts []string, msg string) {
	t := env.t
	t.Helper()
	ctx := context.Background()
	ref, err := env.blobs.Put(ctx, strings.NewReader(msg))
	require.NoError(t, err)
	require.NoError(t, env.blobs.Link(ctx, ref, OutgoingBlobOwner(id)))
	if env.firstBlob.IsZero() {
		env.firstBlob = ref
	}
	user := mailbricks.UserID(from)
	if user == "" {
		user = "postmaster"
	}
	j := OutgoingJob{Version: 1, ID: id, Blob: ref, User: user, From: from, Recipients: rcpts, Received: env.clock.Now()}
	payload, err := j.marshalForTest()
	require.NoError(t, err)
	_, err = env.q.Enqueue(ctx, DefaultOutgoingTopic, payload, &queue.EnqueueOptions{Key: id})
	require.NoError(t, err)
}

// drain handles every job that is ready now, until none is; it returns
// how many it handled.
func (env *outEnv) drain() int {
	t := env.t
	t.Helper()
	ctx := context.Background()
	n := 0
	for {
		jobs, err := env.q.Lease(ctx, DefaultOutgoingTopic, 10, time.Minute, nil)
		require.NoError(t, err)
		if len(jobs) == 0 {
			return n
		}
		for _, j := range jobs {
			require.NoError(t, env.ob.Handle(ctx, j), "job %s", j.ID)
			require.NoError(t, env.q.Ack(ctx, j))
			n++
		}
	}
}

// inbox returns the messages in user's Inbox, bodies read.
func (env *outEnv) inbox(user string) []string {
	t := env.t
	t.Helper()
	ctx := context.Background()
	var out []string
	page, err := env.mail.List(ctx, mailbricks.UserID(user), mailbox.Inbox, &mailbox.ListOptions{Limit: 1000})
	require.NoError(t, err)
	for _, m := range page.Messages {
		rc, err := env.mail.Open(ctx, mailbricks.UserID(user), m.ID)
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

// status returns the delivery state of a message to domain.
func (env *outEnv) status(id, domain string) ([]RecipientStatus, bool) {
	env.t.Helper()
	st, done, err := env.ob.Status(context.Background(), id, domain)
	require.NoError(env.t, err)
	return st, done
}

func testMessage(from, to, subject string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\nDate: Sun, 1 Mar 2026 12:00:00 +0000\r\nMessage-ID: <" + subject + "@example.com>\r\n\r\nHello,\r\n.this line starts with a dot\r\nbare LF here\nand end.\r\n"
}

func (j *OutgoingJob) marshalForTest() ([]byte, error) { return json.Marshal(j) }
