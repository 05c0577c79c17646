package e2ekill_test

// TestKill checks, per pair of backends, the guarantee users care about:
// no email processed twice. The queue alone promises at-least-once
// delivery (queue/internal/killtest counts re-executions after kills and
// allows them); the mailbox's idempotent Append, keyed by the job, must
// turn that into exactly one message per job.
//
// The parent enqueues a batch of jobs, starts a child (this test binary
// re-executed) running a queue.Worker whose handler appends the job's
// message to user e2e's INBOX with AppendOptions{Key: job.ID} and
// returns (the Worker then acks), and SIGKILLs the child at a random
// moment; again and again. A kill can land anywhere: before the append,
// between the append and the ack (the job is redelivered and the append
// must find its key), or inside either. Then a last child drains the
// queue, and the parent scans the folder: each job's message, found by
// its token in the Subject and checked in the body, must be there exactly
// once, and no job's missing.
//
// The handler also writes, with fsync, "start <job> <incarnation>" before
// the append and "done <job> <incarnation> <message ID>" after it, so the
// test can count redeliveries and the appends that found their key.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/queue/pgqueue"
)

const (
	envDir    = "MAILBRICKS_E2EKILL_DIR"
	envInc    = "MAILBRICKS_E2EKILL_INC"
	envMode   = "MAILBRICKS_E2EKILL_MODE"
	envSchema = "MAILBRICKS_E2EKILL_SCHEMA"
	topic     = "inbound"
	user      = mailbricks.UserID("e2e@example.com")
	leaseTTL  = time.Second
)

// stack is the queue and mailbox one process works on.
type stack struct {
	q     *queue.Queue
	s     *mailbox.Store
	close func()
}

// opener opens the stack of one backend pair in dir; schema names the
// server-side state of the pair, shared by parent and children.
type opener func(ctx context.Context, dir, schema string) (*stack, error)

func newStack(qb queue.Backend, mb mailbox.Backend, dir string) (*stack, error) {
	fb, err := filededup.Open(filepath.Join(dir, "blobs"), nil)
	if err != nil {
		return nil, err
	}
	blobs := dedup.New(fb, nil)
	q := queue.New(qb, nil)
	s := mailbox.New(mb, blobs, nil)
	return &stack{q: q, s: s, close: func() {
		s.Close()
		blobs.Close()
		q.Close()
	}}, nil
}

func openLSM(ctx context.Context, dir, _ string) (*stack, error) {
	qb, err := lsmqueue.Open(filepath.Join(dir, "queue"), nil)
	if err != nil {
		return nil, err
	}
	mb, err := lsmmailbox.Open(filepath.Join(dir, "mailbox"), nil)
	if err != nil {
		qb.Close()
		return nil, err
	}
	return newStack(qb, mb, dir)
}

func openPG(ctx context.Context, dir, schema string) (*stack, error) {
	url := os.Getenv("MAILBRICKS_PG_URL")
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	qb, err := pgqueue.Open(ctx, pool, &pgqueue.Options{Schema: schema + "_q"})
	if err != nil {
		pool.Close()
		return nil, err
	}
	mb, err := pgmailbox.Open(ctx, pool, &pgmailbox.Options{Schema: schema + "_m", Partitions: 2})
	if err != nil {
		qb.Close()
		pool.Close()
		return nil, err
	}
	st, err := newStack(qb, mb, dir)
	if err != nil {
		return nil, err
	}
	c := st.close
	st.close = func() { c(); pool.Close() }
	return st, nil
}

func long() bool { return os.Getenv("MAILBRICKS_LONG") == "1" }

// kills returns the number of kills: def, or under MAILBRICKS_LONG=1
// longDef, or MAILBRICKS_E2EKILL_KILLS when set.
func kills(def, longDef int) int {
	if v, err := strconv.Atoi(os.Getenv("MAILBRICKS_E2EKILL_KILLS")); err == nil && v > 0 {
		return v
	}
	if long() {
		return longDef
	}
	return def
}

func TestKillLSM(t *testing.T) {
	if os.Getenv(envDir) != "" {
		child(openLSM)
		return
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	run(t, openLSM, "", kills(30, 2000))
}

func TestKillPG(t *testing.T) {
	if os.Getenv(envDir) != "" {
		child(openPG)
		return
	}
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; set it to a PostgreSQL URL to run the pgqueue+pgmailbox kill test")
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	schema := fmt.Sprintf("e2ekill_%x", rand.Uint32())
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Log(err)
			return
		}
		defer conn.Close(ctx)
		for _, s := range []string{schema + "_q", schema + "_m"} {
			_, _ = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
		}
	})
	run(t, openPG, schema, kills(20, 1000))
}

// token is the text that identifies job n's message.
func token(n int) string { return fmt.Sprintf("e2e-job-%06d", n) }

func message(tok string) []byte {
	return fmt.Appendf(nil, "From: sender@example.com\r\nTo: e2e@example.com\r\nSubject: %s\r\nX-E2E-Job: %s\r\n\r\nThe body of %s.\r\n", tok, tok, tok)
}

// child runs a child process until killed ("work") or until the queue is
// empty ("drain").
func child(open opener) {
	if err := runChild(open); err != nil {
		fmt.Fprintln(os.Stderr, "e2ekill child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runChild(open opener) error {
	dir, inc, mode := os.Getenv(envDir), os.Getenv(envInc), os.Getenv(envMode)
	ctx := context.Background()
	st, err := open(ctx, dir, os.Getenv(envSchema))
	if err != nil {
		return err
	}
	defer st.close()
	log, err := os.OpenFile(filepath.Join(dir, "log."+inc), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	line := func(s string) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := log.WriteString(s + "\n"); err != nil {
			return err
		}
		return log.Sync()
	}
	h := queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		if err := line("start " + j.ID + " " + inc); err != nil {
			return err
		}
		m, err := st.s.Append(ctx, user, mailbox.Inbox, bytes.NewReader(message(string(j.Payload))), &mailbox.AppendOptions{Key: j.ID})
		if err != nil {
			return err
		}
		return line("done " + j.ID + " " + inc + " " + m.ID.String())
	})
	w := queue.NewWorker(st.q, topic, h, &queue.WorkerOptions{
		Concurrency: 4, LeaseTTL: leaseTTL, PollWait: 100 * time.Millisecond,
		Backoff: queue.Schedule{20 * time.Millisecond}, StopGrace: time.Second,
	})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	if mode == "work" {
		return <-werr // the parent kills this process first
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := st.q.Stats(ctx, topic)
		if err != nil {
			return err
		}
		if s.Ready == 0 && s.Leased == 0 && s.Delayed == 0 {
			if s.Dead != 0 {
				return fmt.Errorf("%d dead letters", s.Dead)
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue not drained: %+v", s)
		}
		time.Sleep(50 * time.Millisecond) // polling a real process, not clock logic
	}
	stop()
	return <-werr
}

// run enqueues jobs, runs cycles children each SIGKILLed at a random
// moment, drains, and checks the mailbox.
func run(t *testing.T, open opener, schema string, cycles int) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	ctx := context.Background()
	start := func(inc int, mode string) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), envDir+"="+dir, envInc+"="+strconv.Itoa(inc), envMode+"="+mode, envSchema+"="+schema)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	jobs := map[string]int{} // job ID → n
	enqueue := func(count int) {
		st, err := open(ctx, dir, schema)
		require.NoError(t, err)
		defer st.close()
		for range count {
			n := len(jobs)
			id, err := st.q.Enqueue(ctx, topic, []byte(token(n)), nil)
			require.NoError(t, err)
			jobs[id] = n
		}
	}
	const perCycle = 150
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	began := time.Now()
	for i := range cycles {
		enqueue(perCycle)
		cmd := start(i, "work")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("work child %d exited on its own: %v", i, err)
		case <-time.After(time.Duration(150+r.IntN(450)) * time.Millisecond):
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		<-done
	}
	cmd := start(cycles, "drain")
	require.NoError(t, cmd.Wait(), "drain child")
	elapsed := time.Since(began)

	// The log: executions started, and appends that returned.
	starts := map[string]int{}
	dones := map[string]map[string]int{} // job → message ID → appends that returned it
	for i := 0; i <= cycles; i++ {
		data, err := os.ReadFile(filepath.Join(dir, "log."+strconv.Itoa(i)))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = data[:bytes.LastIndexByte(data, '\n')+1] // a line torn by the kill
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "start":
				starts[f[1]]++
			case len(f) == 4 && f[0] == "done":
				if dones[f[1]] == nil {
					dones[f[1]] = map[string]int{}
				}
				dones[f[1]][f[3]]++
			default:
				t.Fatalf("bad log line %q", sc.Text())
			}
		}
	}

	// The mailbox: count each job's message by the token in its Subject,
	// and check the body carries the same token.
	st, err := open(ctx, dir, schema)
	require.NoError(t, err)
	defer st.close()
	found := map[string]int{}
	var foreign int
	var o mailbox.ListOptions
	o.Limit = 1000
	for {
		page, err := st.s.List(ctx, user, mailbox.Inbox, &o)
		require.NoError(t, err)
		for _, m := range page.Messages {
			if !strings.HasPrefix(m.Subject, "e2e-job-") {
				foreign++
				continue
			}
			found[m.Subject]++
			rc, err := st.s.Open(ctx, user, m.ID)
			require.NoError(t, err)
			body, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			require.Contains(t, string(body), "The body of "+m.Subject+".", "message %s: body must carry its Subject's token", m.ID)
		}
		if page.Cursor == "" {
			break
		}
		o.Cursor = page.Cursor
	}
	var missing, dups, redeliveries, keyHits, split int
	for id, n := range jobs {
		switch c := found[token(n)]; {
		case c == 0:
			missing++
			if missing <= 10 {
				t.Errorf("job %s (%s): its message is missing from the mailbox", id, token(n))
			}
		case c > 1:
			dups += c - 1
			if dups <= 10 {
				t.Errorf("job %s (%s): its message is in the mailbox %d times: processed twice", id, token(n), c)
			}
		}
		if starts[id] > 1 {
			redeliveries += starts[id] - 1
		}
		for _, k := range dones[id] {
			keyHits += k - 1
		}
		if len(dones[id]) > 1 {
			split++
		}
	}
	require.Zero(t, foreign, "the mailbox holds messages of no job")
	t.Logf("%d jobs, %d kills in %v: %d messages found, %d re-executions after kills, %d appends that found their key (job redelivered after its append), %d duplicates, %d missing",
		len(jobs), cycles, elapsed.Round(time.Second), len(found), redeliveries, keyHits, dups, missing)
	require.Zero(t, dups, "no email may be processed twice")
	require.Zero(t, split, "every append of one job must return the same message")
	require.Zero(t, missing, "no email may be lost")
}
