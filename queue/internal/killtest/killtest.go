// Package killtest is the process-kill test shared by the queue backends:
// a child process (the test binary re-executed) enqueues and works jobs
// and is SIGKILLed at random moments, many times; then a final child
// drains the queue, and the parent checks the effects.
//
// Effects files, written by the children (each line one write(2) on an
// O_APPEND file followed by fsync, so a kill leaves whole lines, except
// perhaps a torn last one, which the next child cuts off before it
// appends and the reader drops at the end):
//
//	enq:     "<jobID>\n" after Enqueue returned (the job is acknowledged)
//	effects: "<jobID> <token> <incarnation>\n" by the handler, before it
//	         returns nil and the Worker acks
//
// The effect store is keyed by job ID (the idempotent effect); the lines
// also record each execution, so the check can tell duplicated work apart.
//
// The claims checked after the last restart:
//
//  1. Every acknowledged enqueue has an effect: no job was lost or left
//     unprocessed (the drain child ran until the queue was empty).
//  2. Duplicated work happens only across a kill: no job ran twice in one
//     incarnation (its worker would have had to lose a live lease), and
//     each re-execution carries a greater fencing token than the one
//     before (it is a new lease, taken after the old one expired).
//  3. The queue ends empty: nothing ready, leased, delayed or dead.
//
// Hence, keyed by job ID, every enqueued job has exactly one committed
// effect.
package killtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
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

	"github.com/mailbricks/mailbricks/queue"
)

const (
	envDir  = "MAILBRICKS_QUEUE_KILLTEST_DIR"
	envInc  = "MAILBRICKS_QUEUE_KILLTEST_INC"
	envMode = "MAILBRICKS_QUEUE_KILLTEST_MODE"
	envName = "MAILBRICKS_QUEUE_KILLTEST_NAME"
	// Topic is the topic the children use.
	Topic = "killtest"
)

// LeaseTTL is the lease of the children's Worker.
const LeaseTTL = 2 * time.Second

// IsChild reports whether this process is a killtest child; the test
// function then calls [Child] and returns.
func IsChild() bool { return os.Getenv(envDir) != "" }

// Name returns the name the parent chose for the backend's state (a
// schema or stream prefix), shared by every child of one test.
func Name() string { return os.Getenv(envName) }

// Dir returns the children's shared directory.
func Dir() string { return os.Getenv(envDir) }

// Child runs a child: open the backend, then in "work" mode enqueue and
// work until killed, in "drain" mode work until the queue is empty and
// exit.
func Child(open func(ctx context.Context) (queue.Backend, error)) {
	if err := child(open); err != nil {
		fmt.Fprintln(os.Stderr, "killtest child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

type syncFile struct {
	mu sync.Mutex
	f  *os.File
}

// openSync opens path for appending lines, first cutting off a torn last
// line left by the killed child before: Linux may cut a write(2) short at
// a page boundary of the file when SIGKILL arrives, and the next child's
// first line would otherwise be glued to the torn one.
func openSync(path string) (*syncFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if err := cutTornLine(f); err != nil {
		f.Close()
		return nil, err
	}
	return &syncFile{f: f}, nil
}

// cutTornLine truncates f after its last newline, reading only its tail:
// the files grow to tens of megabytes and every child opens them.
func cutTornLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	tail := make([]byte, min(size, 4096))
	for end := size; end > 0; end -= int64(len(tail)) {
		start := max(0, end-int64(len(tail)))
		buf := tail[:end-start]
		if _, err := f.ReadAt(buf, start); err != nil {
			return err
		}
		if end == size && buf[len(buf)-1] == '\n' {
			return nil // whole lines
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			return f.Truncate(start + int64(i) + 1)
		}
	}
	return f.Truncate(0)
}

func (s *syncFile) line(l string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.WriteString(l + "\n"); err != nil {
		return err
	}
	return s.f.Sync()
}

func child(open func(ctx context.Context) (queue.Backend, error)) error {
	dir, inc, mode := os.Getenv(envDir), os.Getenv(envInc), os.Getenv(envMode)
	ctx := context.Background()
	b, err := open(ctx)
	if err != nil {
		return err
	}
	q := queue.New(b, nil)
	defer q.Close()
	enq, err := openSync(filepath.Join(dir, "enq"))
	if err != nil {
		return err
	}
	eff, err := openSync(filepath.Join(dir, "effects"))
	if err != nil {
		return err
	}
	h := queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		return eff.line(fmt.Sprintf("%s %d %s", j.ID, j.Token, inc))
	})
	w := queue.NewWorker(q, Topic, h, &queue.WorkerOptions{
		Concurrency: 4, LeaseTTL: LeaseTTL, PollWait: 100 * time.Millisecond,
		Backoff: queue.Schedule{10 * time.Millisecond},
	})
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	if mode == "work" {
		var wg sync.WaitGroup
		for p := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					id, err := q.Enqueue(ctx, Topic, fmt.Appendf(nil, "%s-%d-%d", inc, p, n), nil)
					if err != nil {
						fmt.Fprintln(os.Stderr, "enqueue:", err)
						os.Exit(4)
					}
					if err := enq.line(id); err != nil {
						os.Exit(5)
					}
				}
			}()
		}
		wg.Wait() // never: the parent kills this process
	}
	// Drain: wait until the queue is empty.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := q.Stats(ctx, Topic)
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
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return <-werr
}

// Run runs cycles work children, each SIGKILLed after a random time, then
// a drain child, and checks the claims in the package documentation.
// name is passed to the children as [Name].
func Run(t *testing.T, cycles int, name string) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := func(inc int, mode string) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^"+t.Name()+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), envDir+"="+dir, envInc+"="+strconv.Itoa(inc), envMode+"="+mode, envName+"="+name)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for i := range cycles {
		cmd := start(i, "work")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("work child %d exited on its own: %v", i, err)
		case <-time.After(time.Duration(200+rand.IntN(1000)) * time.Millisecond):
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-done
	}
	cmd := start(cycles, "drain")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("drain child: %v", err)
	}
	check(t, dir)
}

func readLines(t *testing.T, path string) [][]string {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		out = append(out, strings.Fields(sc.Text()))
	}
	if len(data) > 0 && data[len(data)-1] != '\n' && len(out) > 0 {
		out = out[:len(out)-1] // torn by a kill
	}
	return out
}

func check(t *testing.T, dir string) {
	enq := readLines(t, filepath.Join(dir, "enq"))
	type exec struct {
		token uint64
		inc   int
	}
	effects := map[string][]exec{}
	for _, f := range readLines(t, filepath.Join(dir, "effects")) {
		if len(f) != 3 {
			t.Fatalf("bad effect line %q", f)
		}
		tok, err1 := strconv.ParseUint(f[1], 10, 64)
		inc, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad effect line %q", f)
		}
		effects[f[0]] = append(effects[f[0]], exec{tok, inc})
	}
	if len(enq) == 0 {
		t.Fatal("no job was enqueued")
	}
	lost, dups := 0, 0
	for _, e := range enq {
		if len(effects[e[0]]) == 0 {
			lost++
			t.Errorf("acknowledged enqueue %s has no effect: the job was lost", e[0])
		}
	}
	for id, ex := range effects {
		for i := 1; i < len(ex); i++ {
			dups++
			if ex[i].inc == ex[i-1].inc {
				t.Errorf("job %s ran twice in incarnation %d: duplicate work without a kill", id, ex[i].inc)
			}
			if ex[i].token <= ex[i-1].token {
				t.Errorf("job %s re-ran with token %d after token %d: tokens must grow", id, ex[i].token, ex[i-1].token)
			}
		}
	}
	t.Logf("%d acknowledged enqueues, %d jobs with effects (one each, keyed by ID), %d re-executions after kills, %d lost",
		len(enq), len(effects), dups, lost)
}
