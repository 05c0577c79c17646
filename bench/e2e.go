package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The e2e suite measures a whole mail service end to end: mail in over
// SMTP until it is stored and searchable.
//
// Workload ingest: smtp-source (Postfix's load generator, 8 sessions,
// 5 KiB bodies) sends -messages messages to one local user while a Go SMTP
// client sends tagged probes, one at a time, each carrying a unique word.
// ops_per_sec is messages per second from smtp-source's start until every
// message (load and probes) is visible to a reader: for ours, counted in
// the folders' totals of the JSON API and found by its search; for
// Postfix+Dovecot, a file in the Maildir. Extras: p50_searchable_ms and
// p99_searchable_ms (from a probe's 250 to its word found: ours through
// /api/search?q=WORD, Dovecot through IMAP SEARCH SUBJECT WORD),
// accept_per_sec (smtp-source's own rate, messages answered 250),
// peak_rss_mb (ours: the server's VmHWM; Postfix+Dovecot: the peak of the
// sum of Pss of all their processes, sampled every 200 ms: shared pages
// count once),
// bytes_per_msg (allocated bytes of the data directory, or Dovecot's mail
// directory, after a clean shutdown, divided by the messages stored; for
// ours_pg plus the PostgreSQL relations of its schemas) and probes.
//
// Implementations: ours (examples/mailserver built from this checkout,
// embedded stores in a fresh data directory), ours_pg (the same with
// -pg-url and -nats-url from MAILBRICKS_PG_URL and MAILBRICKS_NATS_URL and
// a unique -prefix, dropped afterwards) and postfix_dovecot (Debian's
// Postfix in a private config and queue directory relaying over LMTP to a
// private Dovecot with a Maildir and a passwd-file).
//
// Workload import, with its implementations ours, dovecot and mbsync, is
// described in e2e_import.go; -workloads selects among the two.
type e2eSuite struct {
	messages int
	msgSize  int
	sessions int
	// workloads selects ingest and import (e2e_import.go).
	workloads string
}

func init() { register("e2e", newE2ESuite) }

func newE2ESuite() suite { return &e2eSuite{} }

func (s *e2eSuite) Impls() []string {
	return append([]string{"ours", "ours_pg", "postfix_dovecot"}, e2eImportImpls...)
}

func (s *e2eSuite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.messages, "messages", 0, "messages smtp-source sends (default 20000, -quick 2000; -keys sets it too)")
	fs.IntVar(&s.msgSize, "size", 5120, "smtp-source message body size in bytes (-l)")
	fs.IntVar(&s.sessions, "sessions", 8, "smtp-source concurrent sessions (-s)")
	fs.StringVar(&s.workloads, "workloads", "ingest,import", "comma-separated workloads to run")
}

func (s *e2eSuite) Ratios(rs *results) []ratio {
	out := s.importRatios(rs)
	peer, ok := rs.get("ingest", "postfix_dovecot")
	if !ok {
		return out
	}
	for _, ours := range []string{"ours", "ours_pg"} {
		r, ok := rs.get("ingest", ours)
		if !ok || r.OpsPerSec == 0 || peer.OpsPerSec == 0 {
			continue
		}
		out = append(out, ratio{"ingest", ours + "/postfix_dovecot", r.OpsPerSec / peer.OpsPerSec})
		for _, p := range []string{"p50_searchable_ms", "p99_searchable_ms"} {
			a, ok1 := r.ExtraValue(p)
			b, ok2 := peer.ExtraValue(p)
			if ok1 && ok2 && a > 0 && b > 0 {
				out = append(out, ratio{strings.TrimSuffix(p, "_ms"), ours + "/postfix_dovecot", b / a})
			}
		}
	}
	return out
}

// e2eRecipient is the local user every message goes to.
const e2eRecipient = "alice@example.test"

// e2eLoadSender is smtp-source's envelope and header sender.
const e2eLoadSender = "load@example.org"

// e2eTarget is one running mail service under test.
type e2eTarget interface {
	// smtpAddr is where mail from other servers is accepted.
	smtpAddr() string
	// stored returns how many messages the recipient can see.
	stored(ctx context.Context) (int, error)
	// searchable reports whether a probe's unique word is found.
	searchable(ctx context.Context, word string) (bool, error)
	// pgids are the process groups of the service's processes.
	pgids() []int
	// peakRSS returns the peak resident memory, given the sampled peak
	// of the sum of the processes' Pss.
	peakRSS(sampled int64) int64
	// stop shuts the service down cleanly; stopping twice is harmless.
	stop() error
	// diskBytes returns the bytes its stored mail takes, after stop.
	diskBytes(ctx context.Context) (int64, error)
	// cleanup removes what the run left outside its temp directory.
	cleanup(ctx context.Context)
}

func (s *e2eSuite) Run(impl string, c *config, r *reporter) error {
	if done, err := s.runImportFirst(impl, c, r); done || err != nil {
		return err
	}
	n := s.messages
	if n == 0 {
		n = c.Keys
	}
	if n == 0 {
		n = 20000
		if c.Quick {
			n = 2000
		}
	}
	if _, err := os.Stat("/usr/sbin/smtp-source"); err != nil {
		return skipOrFail(r, impl, "smtp-source (Debian package postfix) not installed")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp(c.Dir, "bench-e2e-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var t e2eTarget
	switch impl {
	case "ours":
		t, err = startOursE2E(ctx, dir, nil)
	case "ours_pg":
		pg, nu := os.Getenv("MAILBRICKS_PG_URL"), os.Getenv("MAILBRICKS_NATS_URL")
		if pg == "" || nu == "" {
			return skipOrFail(r, impl, "MAILBRICKS_PG_URL and MAILBRICKS_NATS_URL not both set")
		}
		t, err = startOursE2E(ctx, dir, &oursPG{pgURL: pg, natsURL: nu})
	case "postfix_dovecot":
		t, err = startPostfixDovecot(ctx, dir)
		if errors.Is(err, errE2EMissing) {
			return skipOrFail(r, impl, err.Error())
		}
	default:
		return fmt.Errorf("unknown implementation %q", impl)
	}
	if err != nil {
		return err
	}
	defer t.cleanup(context.Background())
	defer t.stop()
	return s.ingest(ctx, t, n, r)
}

// errE2EMissing marks a missing binary or package.
var errE2EMissing = errors.New("e2e: missing")

// skipOrFail reports a skipped implementation, or fails under CI=true.
func skipOrFail(r *reporter, impl, why string) error {
	if os.Getenv("CI") == "true" && impl != "ours_pg" {
		return fmt.Errorf("required under CI=true: %s", why)
	}
	fmt.Fprintf(os.Stderr, "e2e: %s skipped: %s\n", impl, why)
	return nil
}

func (s *e2eSuite) ingest(ctx context.Context, t e2eTarget, n int, r *reporter) error {
	// Warm up: one message through the whole pipeline.
	word := probeWord()
	if _, err := sendProbe(ctx, t.smtpAddr(), word); err != nil {
		return fmt.Errorf("warm-up message: %w", err)
	}
	if _, err := waitSearchable(ctx, t, word, 60*time.Second); err != nil {
		return fmt.Errorf("warm-up message: %w", err)
	}
	base, err := t.stored(ctx)
	if err != nil {
		return err
	}

	sampler := startRSSSampler(t.pgids())
	defer sampler.stop()

	logf("e2e: %d messages of %d bytes from smtp-source -s %d to %s", n, s.msgSize, s.sessions, t.smtpAddr())
	start := time.Now()
	src := exec.CommandContext(ctx, "/usr/sbin/smtp-source", "-s", fmt.Sprint(s.sessions), "-l", fmt.Sprint(s.msgSize),
		"-m", fmt.Sprint(n), "-f", e2eLoadSender, "-t", e2eRecipient, "-M", "bench.test", t.smtpAddr())
	var srcErr strings.Builder
	src.Stderr = &srcErr
	// smtp-source signals its own process group when it exits.
	src.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := src.Start(); err != nil {
		return err
	}
	srcDone := make(chan error, 1)
	go func() { srcDone <- src.Wait() }()

	// Probes, one at a time, while smtp-source runs.
	probeCtx, stopProbes := context.WithCancel(ctx)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		probeErr  error
		sent      int
	)
	var wg sync.WaitGroup
	wg.Go(func() {
		for probeCtx.Err() == nil {
			w := probeWord()
			at, err := sendProbe(probeCtx, t.smtpAddr(), w)
			if err != nil {
				if probeCtx.Err() == nil {
					mu.Lock()
					probeErr = err
					mu.Unlock()
				}
				return
			}
			mu.Lock()
			sent++
			mu.Unlock()
			found, err := waitSearchable(ctx, t, w, 120*time.Second)
			if err != nil {
				mu.Lock()
				probeErr = err
				mu.Unlock()
				return
			}
			mu.Lock()
			latencies = append(latencies, found.Sub(at))
			mu.Unlock()
			select {
			case <-probeCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	var acceptDur time.Duration
	select {
	case err := <-srcDone:
		acceptDur = time.Since(start)
		if err != nil {
			stopProbes()
			wg.Wait()
			return fmt.Errorf("smtp-source: %v: %s", err, tail(srcErr.String()))
		}
	case <-ctx.Done():
		stopProbes()
		wg.Wait()
		return fmt.Errorf("waiting for smtp-source: %w", context.Cause(ctx))
	}
	stopProbes()
	wg.Wait()
	if probeErr != nil {
		return fmt.Errorf("probe: %w", probeErr)
	}
	if e := strings.TrimSpace(srcErr.String()); e != "" {
		logf("e2e: smtp-source said: %s", tail(e))
	}

	// Every message visible.
	want := base + n + sent
	var got int
	deadline := time.Now().Add(10*time.Minute + time.Duration(n)*10*time.Millisecond)
	for {
		got, err = t.stored(ctx)
		if err != nil {
			return err
		}
		if got >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d messages visible after the deadline", got-base, want-base)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for messages: %w", context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	if got > want {
		return fmt.Errorf("%d messages visible, more than the %d sent", got-base, want-base)
	}
	sampled := sampler.stop()
	rss := t.peakRSS(sampled)
	if err := t.stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	disk, err := t.diskBytes(ctx)
	if err != nil {
		return err
	}
	msgs := float64(n + sent)
	p50, p99 := percentileMS(latencies, 0.50), percentileMS(latencies, 0.99)
	logf("e2e: %d messages visible in %v (smtp-source done in %v); %d probes p50 %.1f ms p99 %.1f ms; peak RSS %.1f MiB; %d bytes on disk",
		n+sent, elapsed.Round(time.Millisecond), acceptDur.Round(time.Millisecond), len(latencies), p50, p99, float64(rss)/(1<<20), disk)
	extra := []kv{
		{"messages", msgs},
		{"accept_per_sec", float64(n) / acceptDur.Seconds()},
	}
	if len(latencies) > 0 {
		extra = append(extra, kv{"p50_searchable_ms", p50}, kv{"p99_searchable_ms", p99})
	}
	extra = append(extra,
		kv{"probes", float64(len(latencies))},
		kv{"peak_rss_mb", float64(rss) / (1 << 20)},
		kv{"bytes_per_msg", math.Round(float64(disk) / float64(got))},
	)
	r.result("ingest", msgs/elapsed.Seconds(), extra...)
	return nil
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// probeWord returns a unique lower-case word that no tokenizer splits.
func probeWord() string {
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return "zq" + string(b)
}

// sendProbe sends one message carrying word in its subject and body with
// a plain SMTP client and returns when the server answered 250.
func sendProbe(ctx context.Context, addr, word string) (time.Time, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return time.Time{}, err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return time.Time{}, err
	}
	defer c.Close()
	if err := c.Hello("probe.bench.test"); err != nil {
		return time.Time{}, err
	}
	if err := c.Mail("probe@example.org"); err != nil {
		return time.Time{}, err
	}
	if err := c.Rcpt(e2eRecipient); err != nil {
		return time.Time{}, err
	}
	w, err := c.Data()
	if err != nil {
		return time.Time{}, err
	}
	msg := fmt.Sprintf("From: Probe <probe@example.org>\r\nTo: <%s>\r\nSubject: probe %s\r\nMessage-ID: <%s@bench.test>\r\nDate: %s\r\nContent-Type: text/plain\r\n\r\nThis probe carries the word %s.\r\n",
		e2eRecipient, word, word, time.Now().Format(time.RFC1123Z), word)
	if _, err := w.Write([]byte(msg)); err != nil {
		return time.Time{}, err
	}
	if err := w.Close(); err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	c.Quit()
	return at, nil
}

// waitSearchable polls until word is found and returns when it was.
func waitSearchable(ctx context.Context, t e2eTarget, word string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := t.searchable(ctx, word)
		if err != nil {
			return time.Time{}, err
		}
		if ok {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("probe %s not searchable after %v", word, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for probe: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func percentileMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// rssSampler samples the sum of VmRSS of every process in some process
// groups.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.Mutex
	peak int64
}

func startRSSSampler(pgids []int) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			sum := groupRSS(pgids)
			s.mu.Lock()
			s.peak = max(s.peak, sum)
			s.mu.Unlock()
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s
}

// stop ends sampling and returns the peak.
func (s *rssSampler) stop() int64 {
	s.once.Do(func() { close(s.done) })
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// groupRSS sums the proportional set size (Pss: resident pages, shared
// ones divided among the processes sharing them) over the processes whose
// process group is in pgids, so that the libraries and the parent's pages
// the many daemons share count once.
func groupRSS(pgids []int) int64 {
	var sum int64
	for _, pid := range groupPIDs(pgids) {
		sum += procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") * 1024
	}
	return sum
}

// groupPIDs lists the processes in the given process groups.
func groupPIDs(pgids []int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid, pgrp int
		if _, err := fmt.Sscanf(string(b[i+1:]), " %s %d %d", &state, &ppid, &pgrp); err != nil {
			continue
		}
		if slices.Contains(pgids, pgrp) {
			out = append(out, pid)
		}
	}
	return out
}

// pidStatusKB reads a "Name:   N kB" field of /proc/PID/status.
func pidStatusKB(pid int, field string) int64 {
	return procKB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// procKB reads a "Name:   N kB" field of a /proc file.
func procKB(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}

// diskUsage sums the allocated bytes of the files under dir.
func diskUsage(dir string) (int64, error) {
	var sum int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			sum += st.Blocks * 512
		}
		return nil
	})
	return sum, err
}

// freeAddr returns a free loopback TCP address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// proc is a started process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
	err    error
}

// startProc starts cmd in its own process group (so that a terminal's
// SIGINT reaches only the bench, which stops it in order), with SIGTERM as
// its parent-death signal should the bench be killed.
func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) pgid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the group, then SIGKILL after a grace period.
func (p *proc) stop(grace time.Duration) error {
	p.once.Do(func() {
		syscall.Kill(-p.pgid(), syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			p.err = fmt.Errorf("%s did not stop within %v; killed", p.name, grace)
		}
		// Leftover children of the group (a daemon's workers).
		syscall.Kill(-p.pgid(), syscall.SIGKILL)
		<-p.exited
	})
	return p.err
}

// syncBuffer collects a process's output for error messages.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
