package delivery

// TestOutboundKill checks the outbound worker under SIGKILL: every
// recipient receives every message at least once, and a recipient receives
// a message twice only when a kill fell between the remote server's 250
// and the save of the delivery state.
//
// The parent stores killMsgs messages, each to three recipients at two
// domains, as Submission would (blob, link, OutgoingJob), and runs a
// counting sink: an in-process go-smtp server on two loopback addresses
// (one per domain) that counts each (message, recipient) it answered 250
// for. Then, again and again, it starts a child process (this test binary
// re-executed) running a queue.Worker with Outbound over the same
// directory (lsmqueue, filededup, lsmreputation as the state store; leases
// of 2 seconds) and SIGKILLs it after a random time. Finally the parent
// itself runs a worker until every message's state is done. Each
// transaction the sink answered 250 for while the child died before
// recording it is resent later: those duplicates are counted and printed,
// and must be at most the transactions that can be in flight at a kill
// (the worker's concurrency) per kill.

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

const (
	envOKillDir  = "MAILBRICKS_OKILL_DIR"
	envOKillPort = "MAILBRICKS_OKILL_PORT"
	// envOKillNoSync selects the unsynced setup: the delivery state in
	// the queue's DB (lsmqueue StateNoSync) and unsynced acks.
	envOKillNoSync = "MAILBRICKS_OKILL_NOSYNC"
	okillConc      = 4
	okillIPA       = "127.0.0.31"
	okillIPB       = "127.0.0.32"
)

func okillMsgs() int {
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		return 2000
	}
	return 300
}

func okillKills() int {
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		return 100
	}
	return 10
}

var okillTokenRE = regexp.MustCompile(`Subject: (okill-[0-9]+)\r\n`)

// okillDNS maps a.okill.test to okillIPA and b.okill.test to okillIPB.
type okillDNS struct{}

func (okillDNS) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	return []*net.MX{{Host: "mx." + strings.TrimSuffix(n, "."), Pref: 10}}, nil
}

func (okillDNS) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	if strings.Contains(n, "a.okill.test") {
		return []net.IPAddr{{IP: net.ParseIP(okillIPA)}}, nil
	}
	return []net.IPAddr{{IP: net.ParseIP(okillIPB)}}, nil
}

type okillStores struct {
	q          *queue.Queue
	blobs      *dedup.Store
	state      StateStore
	closeState func() error
}

// openOKill opens the stores: synced (lsmreputation as the state store),
// or with noSync the delivery state in the queue's DB, unsynced, and
// unsynced acks.
func openOKill(dir string, noSync bool) (*okillStores, error) {
	var qo *lsmqueue.Options
	if noSync {
		qo = &lsmqueue.Options{AckNoSync: true, StateNoSync: true}
	}
	qb, err := lsmqueue.Open(filepath.Join(dir, "queue"), qo)
	if err != nil {
		return nil, err
	}
	q := queue.New(qb, nil)
	blobs, err := filededup.OpenStore(filepath.Join(dir, "blobs"), nil)
	if err != nil {
		q.Close()
		return nil, err
	}
	if noSync {
		return &okillStores{q: q, blobs: blobs, state: qb, closeState: func() error { return nil }}, nil
	}
	st, err := lsmreputation.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		q.Close()
		blobs.Close()
		return nil, err
	}
	return &okillStores{q: q, blobs: blobs, state: st, closeState: st.Close}, nil
}

func (s *okillStores) close() {
	s.q.Close()
	s.blobs.Close()
	s.closeState()
}

func (s *okillStores) outbound(port int) (*Outbound, error) {
	return NewOutbound(s.q, s.blobs, s.state, &OutboundOptions{Hostname: "out.okill.test", Resolver: okillDNS{}, Port: port, DisableTLS: true})
}

// runOKillChild runs the worker until the process is killed.
func runOKillChild() error {
	s, err := openOKill(os.Getenv(envOKillDir), os.Getenv(envOKillNoSync) == "1")
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(os.Getenv(envOKillPort))
	ob, err := s.outbound(port)
	if err != nil {
		return err
	}
	w := queue.NewWorker(s.q, DefaultOutgoingTopic, ob, &queue.WorkerOptions{Concurrency: okillConc, LeaseTTL: 2 * time.Second, PollWait: 100 * time.Millisecond})
	return w.Run(context.Background())
}

// countingSink counts the 250s it gives per message token and recipient.
type countingSink struct {
	mu  sync.Mutex
	got map[string]int // token + " " + rcpt
	tx  int            // transactions answered 250
}

func (c *countingSink) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &sinkSession{c: c}, nil
}

type sinkSession struct {
	c     *countingSink
	rcpts []string
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error {
	// A slow server, so that kills land while deliveries are under way;
	// slow before the data, so that the window between the final dot and
	// the 250 stays as short as a real server's.
	time.Sleep(15 * time.Millisecond)
	s.rcpts = nil
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := okillTokenRE.FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("no token")
	}
	s.c.mu.Lock()
	for _, rc := range s.rcpts {
		s.c.got[string(m[1])+" "+rc]++
	}
	s.c.tx++
	s.c.mu.Unlock()
	return nil
}
func (s *sinkSession) Reset()        { s.rcpts = nil }
func (s *sinkSession) Logout() error { return nil }

func okillRcpts(n int) []string {
	return []string{fmt.Sprintf("u%d@a.okill.test", n), fmt.Sprintf("v%d@a.okill.test", n), fmt.Sprintf("w%d@b.okill.test", n)}
}

func TestOutboundKill(t *testing.T) { testOutboundKill(t, false) }

// TestOutboundKillNoSync is TestOutboundKill with the delivery state and
// the acks written without fsync (lsmqueue's StateNoSync and AckNoSync):
// a SIGKILL still loses no delivery and no record.
func TestOutboundKillNoSync(t *testing.T) { testOutboundKill(t, true) }

func testOutboundKill(t *testing.T, noSync bool) {
	if os.Getenv(envOKillDir) != "" {
		if err := runOKillChild(); err != nil {
			fmt.Fprintln(os.Stderr, "okill child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	port := mxPort(t, okillIPA, okillIPB)
	sink := &countingSink{got: map[string]int{}}
	for _, ip := range []string{okillIPA, okillIPB} {
		srv := smtp.NewServer(sink)
		srv.Domain = "sink.okill.test"
		srv.ErrorLog = log.New(io.Discard, "", 0)
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
		require.NoError(t, err)
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}

	// The messages, as Submission queues them.
	ctx := context.Background()
	s, err := openOKill(dir, noSync)
	require.NoError(t, err)
	msgs := okillMsgs()
	for n := range msgs {
		tok := "okill-" + strconv.Itoa(n)
		body := fmt.Sprintf("From: <s@example.com>\r\nSubject: %s\r\n\r\n%s\r\n.dot line\r\n", tok, strings.Repeat("x", 1000+n%3000))
		ref, err := s.blobs.Put(ctx, strings.NewReader(body))
		require.NoError(t, err)
		require.NoError(t, s.blobs.Link(ctx, ref, OutgoingBlobOwner(tok)))
		j := OutgoingJob{Version: 1, ID: tok, Blob: ref, User: "s@example.com", From: "s@example.com", Recipients: okillRcpts(n), Received: time.Now()}
		p, err := j.marshalForTest()
		require.NoError(t, err)
		_, err = s.q.Enqueue(ctx, DefaultOutgoingTopic, p, &queue.EnqueueOptions{Key: tok})
		require.NoError(t, err)
	}
	s.close()

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := okillKills()
	midKills := 0 // kills that landed while recipients were still undelivered
	for i := range kills {
		cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), envOKillDir+"="+dir, envOKillPort+"="+strconv.Itoa(port))
		if noSync {
			cmd.Env = append(cmd.Env, envOKillNoSync+"=1")
		}
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		// Let it work for a while (real process time, not clock logic).
		time.Sleep(time.Duration(150+r.IntN(600)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		sink.mu.Lock()
		if len(sink.got) < msgs*3 {
			midKills++
		}
		sink.mu.Unlock()
		cmd.Wait()
		_ = i
	}

	sink.mu.Lock()
	during := sink.tx
	sink.mu.Unlock()
	// Counted in distinct recipients, not transactions: the duplicates a
	// kill causes add transactions without adding work done.
	require.Positive(t, midKills, "the kills must land while deliveries are under way")

	// Finish in-process: leases of the dead children run out after 2s.
	s, err = openOKill(dir, noSync)
	require.NoError(t, err)
	defer s.close()
	ob, err := s.outbound(port)
	require.NoError(t, err)
	defer ob.Close()
	wctx, stop := context.WithCancel(ctx)
	w := queue.NewWorker(s.q, DefaultOutgoingTopic, ob, &queue.WorkerOptions{Concurrency: okillConc, LeaseTTL: 2 * time.Second, PollWait: 100 * time.Millisecond})
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx) }()
	deadline := time.Now().Add(90 * time.Second)
	for n := 0; n < msgs; {
		tok := "okill-" + strconv.Itoa(n)
		_, doneA, err := ob.Status(ctx, tok, "a.okill.test")
		require.NoError(t, err)
		_, doneB, err := ob.Status(ctx, tok, "b.okill.test")
		require.NoError(t, err)
		if doneA && doneB {
			n++
			continue
		}
		require.True(t, time.Now().Before(deadline), "message %s not delivered within 90s", tok)
		time.Sleep(20 * time.Millisecond) // polling a real worker
	}
	stop()
	<-wdone

	sink.mu.Lock()
	defer sink.mu.Unlock()
	dups, dupRcpts := 0, 0
	for n := range msgs {
		tok := "okill-" + strconv.Itoa(n)
		for _, rc := range okillRcpts(n) {
			c := sink.got[tok+" "+rc]
			require.GreaterOrEqual(t, c, 1, "%s to %s was never delivered", tok, rc)
			if c > 1 {
				dupRcpts += c - 1
			}
		}
		st, done, err := ob.Status(ctx, tok, "a.okill.test")
		require.NoError(t, err)
		require.True(t, done)
		for _, r := range st {
			require.Equal(t, "sent", r.State)
		}
	}
	// A duplicate transaction resends its (up to two) recipients.
	dups = sink.tx - msgs*2
	t.Logf("outbound kill: %d kills (%d while recipients were undelivered), %d messages, %d recipients checked delivered, %d transactions (%d while children were being killed), %d duplicate transactions (%d duplicate recipient deliveries), all from kills between a 250 and the state save",
		kills, midKills, msgs, msgs*3, sink.tx, during, dups, dupRcpts)
	fmt.Printf("outbound kill: %d kills, %d recipients checked, %d duplicate recipient deliveries\n", kills, msgs*3, dupRcpts)
	require.GreaterOrEqual(t, dups, 0)
	require.LessOrEqual(t, dups, kills*okillConc, "at most the in-flight transactions of each kill are resent")
}
