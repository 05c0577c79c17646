package delivery

// TestInboundKill checks the durable hand-off under SIGKILL: a message
// that got 250 is queued exactly once, its bytes intact, whatever instant
// the server dies at.
//
// A child process (this test binary re-executed) runs an Inbound on the
// embedded lsm backends in a directory and serves it on 127.0.0.1 port 0,
// writing the port to a file. The parent sends messages from several
// concurrent go-smtp clients, each message carrying a unique token in its
// Subject and body, of random sizes (some above 16 KiB, some with lines
// that need dot-stuffing), records which got 250, and SIGKILLs the child
// at a random moment; again and again, with a new child each time. Then
// the parent opens the directory itself and leases every job on the
// incoming topic: each job must decode, its key must be its transaction
// ID, its message (carried in the job, or its blob read back through
// dedup) must be byte for byte the message its token names; every message
// that got 250 must have exactly one job, and no message may have two (a
// message without 250 may have one or none). Messages above InlineMax go
// to the blob store, the others travel in their jobs: both paths are
// checked.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/embedded"
)

const (
	envKillDir = "MAILBRICKS_IKILL_DIR"
	envKillInc = "MAILBRICKS_IKILL_INC"
	// killSenders is the number of concurrent SMTP clients.
	killSenders = 4
	// killBigShare is the share (in percent) of messages above 16 KiB.
	killBigShare = 30
)

// killCount returns the number of kills: 15, 1000 under
// MAILBRICKS_LONG=1, or MAILBRICKS_IKILL_KILLS when set.
func killCount() int {
	if v, err := strconv.Atoi(os.Getenv("MAILBRICKS_IKILL_KILLS")); err == nil && v > 0 {
		return v
	}
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		return 1000
	}
	return 15
}

// killToken is the text that identifies message n.
func killToken(n int) string { return fmt.Sprintf("ikill-%07d", n) }

var killTokenRE = regexp.MustCompile(`\r\nSubject: (ikill-[0-9]{7})\r\n`)

// killMessage returns message n, the same bytes every time: a header
// with its token in the Subject, then lines of random printable text
// (some starting with a dot) holding the token, CRLF-terminated. About
// killBigShare percent are between 16 and 96 KiB, the rest up to 8 KiB.
func killMessage(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 0x1c1)) // deterministic per n
	tok := killToken(n)
	size := 200 + r.IntN(8<<10)
	if r.IntN(100) < killBigShare {
		size = 16<<10 + 1 + r.IntN(80<<10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@example.org\r\nTo: user@example.net\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\nToken: %s\r\n", tok, tok, tok)
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_=+!?()<>@"
	for b.Len() < size {
		line := make([]byte, 1+r.IntN(120))
		for i := range line {
			line[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(10) == 0 {
			line[0] = '.' // the client dot-stuffs it, the server must unstuff it
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "End of %s.\r\n", tok)
	return []byte(b.String())
}

// killChild runs an Inbound in the child process until it is killed.
func killChild() {
	if err := runKillChild(); err != nil {
		fmt.Fprintln(os.Stderr, "ikill child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runKillChild() error {
	dir, inc := os.Getenv(envKillDir), os.Getenv(envKillInc)
	blocks, err := embedded.Open(filepath.Join(dir, "mail"), nil)
	if err != nil {
		return err
	}
	defer blocks.Close()
	in, err := NewInbound(blocks.Blobs, blocks.Queue, &InboundOptions{
		Hostname:         "mx.example.net",
		Resolver:         newFakeDNS(),
		MaxConnsPerIP:    -1,
		ConnRatePerIP:    -1,
		MessageRatePerIP: -1,
		ReadTimeout:      30 * time.Second,
		WriteTimeout:     30 * time.Second,
		InlineMax:        DefaultInlineMax,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	tmp := filepath.Join(dir, "port.tmp."+inc)
	if err := os.WriteFile(tmp, []byte(port), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "port."+inc)); err != nil {
		return err
	}
	// A safety net should the parent die without killing this process.
	time.AfterFunc(5*time.Minute, func() { os.Exit(4) })
	return in.NewServer().Serve(in.Listener(l))
}

// killSender sends messages on one connection after another until stop
// is closed or the server is gone; got250 is called for each 250.
func killSender(addr string, next func() int, stop <-chan struct{}, attempted *atomic.Int64, got250 func(int)) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return // the child is dead
		}
		c := smtp.NewClient(conn)
		c.CommandTimeout = 10 * time.Second
		c.SubmissionTimeout = 10 * time.Second
		if err := c.Hello("client.example.org"); err != nil {
			c.Close()
			return
		}
		for {
			select {
			case <-stop:
				c.Close()
				return
			default:
			}
			n := next()
			attempted.Add(1)
			err := c.SendMail("sender@example.org", []string{"user@example.net"}, strings.NewReader(string(killMessage(n))))
			if err != nil {
				c.Close()
				var se *smtp.SMTPError
				if errors.As(err, &se) {
					break // a refusal (not expected): a new connection
				}
				return // the connection died with the child
			}
			got250(n)
		}
	}
}

func TestInboundKill(t *testing.T) {
	if os.Getenv(envKillDir) != "" {
		killChild()
		return
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	kills := killCount()

	var (
		mu        sync.Mutex
		acked     = map[int]bool{} // message n → got 250
		counter   atomic.Int64
		attempted atomic.Int64
	)
	next := func() int { return int(counter.Add(1) - 1) }
	got250 := func(n int) {
		mu.Lock()
		acked[n] = true
		mu.Unlock()
	}

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	began := time.Now()
	for i := range kills {
		inc := strconv.Itoa(i)
		cmd := exec.Command(exe, "-test.run=^TestInboundKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), envKillDir+"="+dir, envKillInc+"="+inc)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
		kill := func() {
			if !killed {
				killed = true
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
			}
		}

		// Wait for the child's port.
		var port []byte
		deadline := time.Now().Add(30 * time.Second)
		for {
			port, err = os.ReadFile(filepath.Join(dir, "port."+inc))
			if err == nil {
				break
			}
			select {
			case err := <-done:
				killed = true
				t.Fatalf("child %d exited before listening: %v", i, err)
			default:
			}
			if time.Now().After(deadline) {
				kill()
				t.Fatalf("child %d did not listen within 30s", i)
			}
			time.Sleep(5 * time.Millisecond) // polling a real process, not clock logic
		}
		addr := "127.0.0.1:" + string(port)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range killSenders {
			wg.Go(func() { killSender(addr, next, stop, &attempted, got250) })
		}
		select {
		case err := <-done:
			killed = true
			close(stop)
			wg.Wait()
			t.Fatalf("child %d exited on its own: %v", i, err)
		case <-time.After(time.Duration(200+r.IntN(1200)) * time.Millisecond):
		}
		kill()
		close(stop)
		wg.Wait()
	}
	elapsed := time.Since(began)

	// Open the directory the children left and check every job.
	blocks, err := embedded.Open(filepath.Join(dir, "mail"), nil)
	require.NoError(t, err)
	defer blocks.Close()
	ctx := context.Background()
	byToken := map[int]int{}
	byKey := map[string]int{}
	var jobs, damaged, inline int
	for {
		batch, err := blocks.Queue.Lease(ctx, DefaultTopic, 1000, time.Hour, nil)
		require.NoError(t, err)
		if len(batch) == 0 {
			break
		}
		for _, job := range batch {
			jobs++
			byKey[job.Key]++
			bad := func(format string, args ...any) {
				damaged++
				if damaged <= 10 {
					t.Errorf("job %s (key %q): "+format, append([]any{job.ID, job.Key}, args...)...)
				}
			}
			ij, err := ParseIncomingJob(job.Payload)
			if err != nil {
				bad("payload: %v", err)
				continue
			}
			if job.Key != ij.ID {
				bad("key is not the transaction ID %q", ij.ID)
			}
			if ij.inline() {
				inline++
			}
			rc, err := ij.openRaw(ctx, blocks.Blobs)
			if err != nil {
				bad("open blob: %v", err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				bad("read blob: %v", err)
				continue
			}
			m := killTokenRE.FindSubmatch(got)
			if m == nil {
				bad("no token in %d bytes", len(got))
				continue
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(string(m[1]), "ikill-"))
			if want := killMessage(n); string(got) != string(want) || int64(len(got)) != ij.size() {
				bad("%s: %d bytes read back (size %d), %d sent, not equal", m[1], len(got), ij.size(), len(want))
				continue
			}
			byToken[n]++
		}
	}
	var dupKeys int
	for k, c := range byKey {
		if c > 1 {
			dupKeys += c - 1
			t.Errorf("transaction key %q has %d jobs", k, c)
		}
	}
	var missing, dups, unackedStored int
	for n, c := range byToken {
		if c > 1 {
			dups += c - 1
			if dups <= 10 {
				t.Errorf("%s: %d jobs (250: %v)", killToken(n), c, acked[n])
			}
		}
		if !acked[n] {
			unackedStored++
		}
	}
	for n := range acked {
		if byToken[n] == 0 {
			missing++
			if missing <= 10 {
				t.Errorf("%s got 250 but has no job", killToken(n))
			}
		}
	}
	t.Logf("%d kills in %v: %d messages sent, %d got 250, %d jobs checked (%d without a 250, %d carrying their message), %d duplicates, %d missing, %d damaged",
		kills, elapsed.Round(time.Second), attempted.Load(), len(acked), jobs, unackedStored, inline, dups+dupKeys, missing, damaged)
	require.Positive(t, len(acked), "no message got 250: the test checked nothing")
	require.Positive(t, inline, "no job carried its message: the test missed the inline path")
	require.Less(t, inline, jobs, "every job carried its message: the test missed the blob store")
	require.Zero(t, damaged, "every job must name its message's exact bytes")
	require.Zero(t, dups+dupKeys, "no message may be queued twice")
	require.Zero(t, missing, "no message that got 250 may be lost")
}
