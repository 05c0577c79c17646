package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
)

// The inbound part of the delivery suite measures delivery.Inbound
// receiving mail over loopback from Postfix's load generator smtp-source
// (-s 8 parallel sessions, one message per session, one recipient each).
//
// Implementations, each in its own child process:
//
//   - ours: delivery.Inbound on the embedded backends (filededup for
//     bodies, lsmqueue for jobs) in a fresh directory: each message is
//     stored and queued with synced writes before the 250, with the
//     library's defaults: a 5 KB body is a record of the blob store's lsm
//     DB stored and linked in one synced batch, then its job is queued in
//     the queue's DB; a 100 KB body is a file in the blob store, synced
//     with its directory, then linked, then its job is queued. Concurrent
//     sessions share the fsyncs (lsm group commit). DNS
//     goes to an in-process resolver that knows no names (SPF and DMARC
//     "none" at once; the checks run, no network).
//   - ours_inline (inbound_5k only): ours with
//     delivery.InboundOptions.InlineMax = DefaultInlineMax (64 KiB): the 5
//     KB body travels in its job, one synced batch in the queue's DB.
//   - postfix: a real Postfix (master, smtpd, cleanup) started with
//     "postfix -c DIR start" from a private config directory, with its
//     queue_directory beside ours on the same disk, listening on a free
//     loopback port; every message is put on hold (check_client_access
//     static:HOLD), so it is accepted into the queue and stays there.
//     Postfix's cleanup fsyncs each queue file before smtpd answers 250.
//     Stopped with "postfix -c DIR stop" afterwards. Needs root.
//   - sink: Postfix's smtp-sink on a free port: accepts and discards, the
//     protocol ceiling.
//
// Workloads:
//
//   - inbound_5k, inbound_100k: -inbound-5k-msgs / -inbound-100k-msgs
//     messages of 5 KB / 100 KB from smtp-source -s -inbound-sessions;
//     ops_per_sec is messages accepted per second (smtp-source exits
//     non-zero at the first refused message, so all of them got 250).
//     RATIO ours/postfix and ours/sink (and ours_inline/sink, ours_inline/postfix).
//   - inbound_mem_25m (ours only): 8 concurrent messages of 25 MB;
//     rss_above_idle_mib is the server process's peak resident set size
//     during the workload minus its resident set size before it (target:
//     at most 64 MiB, bodies stream to the blob store).
type inboundBench struct {
	msgs5k, msgs100k int
	sessions         int
}

var inbound inboundBench

func init() {
	registerDeliveryPart(deliveryPart{
		Impls:  []string{"ours", "ours_inline", "postfix", "sink"},
		Flags:  inbound.flags,
		Run:    inbound.run,
		Ratios: inbound.ratios,
	})
}

func (b *inboundBench) flags(fs *flag.FlagSet) {
	fs.IntVar(&b.msgs5k, "inbound-5k-msgs", 0, "messages of inbound_5k (0: 3000, -quick 300)")
	fs.IntVar(&b.msgs100k, "inbound-100k-msgs", 0, "messages of inbound_100k (0: 600, -quick 100)")
	fs.IntVar(&b.sessions, "inbound-sessions", 8, "parallel smtp-source sessions (-s)")
}

const (
	inboundMemMsgs = 8
	inboundMemSize = 25 << 20
)

func (b *inboundBench) run(impl string, c *config, r *reporter) error {
	n5, n100 := b.msgs5k, b.msgs100k
	if n5 <= 0 {
		n5 = 3000
		if c.Quick {
			n5 = 300
		}
	}
	if n100 <= 0 {
		n100 = 600
		if c.Quick {
			n100 = 100
		}
	}
	if !wantWorkload("inbound_5k") && !wantWorkload("inbound_100k") && !wantWorkload("inbound_mem_25m") {
		return nil
	}
	if impl == "ours_inline" && !wantWorkload("inbound_5k") {
		return nil
	}
	source, err := findPostfixTool("smtp-source")
	if err != nil {
		return err
	}
	base, err := os.MkdirTemp(c.Dir, "mailbricks-bench-delivery-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)

	var srv inboundServer
	switch impl {
	case "ours":
		srv, err = startOursInbound(base, 0)
	case "ours_inline":
		srv, err = startOursInbound(base, delivery.DefaultInlineMax)
	case "postfix":
		srv, err = startPostfixInbound(base)
	case "sink":
		srv, err = startSinkInbound(base)
	default:
		return fmt.Errorf("inbound: unknown implementation %q", impl)
	}
	if err != nil {
		return err
	}
	defer srv.stop()

	for _, w := range []struct {
		name      string
		msgs, len int
	}{{"inbound_5k", n5, 5000}, {"inbound_100k", n100, 100000}} {
		if !wantWorkload(w.name) || (impl == "ours_inline" && w.name != "inbound_5k") {
			continue
		}
		before, err := srv.accepted()
		if err != nil {
			return err
		}
		elapsed, err := runSmtpSource(source, srv.addr(), b.sessions, w.msgs, w.len)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		after, err := srv.accepted()
		if err != nil {
			return err
		}
		if after >= 0 && after-before != int64(w.msgs) {
			return fmt.Errorf("%s: smtp-source sent %d messages, the server holds %d new ones", w.name, w.msgs, after-before)
		}
		rate := float64(w.msgs) / elapsed.Seconds()
		fmt.Fprintf(os.Stderr, "delivery %s %s: %d messages in %v (%.0f/s)\n", impl, w.name, w.msgs, elapsed.Round(time.Millisecond), rate)
		r.result(w.name, rate, kv{"msgs", float64(w.msgs)}, kv{"MB_per_sec", rate * float64(w.len) / 1e6})
	}

	if impl == "ours" && wantWorkload("inbound_mem_25m") {
		runtime.GC()
		debug.FreeOSMemory()
		idle, err := procStatusKB("VmRSS")
		if err != nil {
			return err
		}
		before, err := srv.accepted()
		if err != nil {
			return err
		}
		peak := newPeakRSS()
		elapsed, err := runSmtpSource(source, srv.addr(), inboundMemMsgs, inboundMemMsgs, inboundMemSize)
		hwm := peak.stop()
		if err != nil {
			return fmt.Errorf("inbound_mem_25m: %w", err)
		}
		if after, err := srv.accepted(); err != nil || after-before != inboundMemMsgs {
			return fmt.Errorf("inbound_mem_25m: %d messages sent, %d new jobs (%v)", inboundMemMsgs, after-before, err)
		}
		above := float64(hwm-idle) / 1024
		fmt.Fprintf(os.Stderr, "delivery ours inbound_mem_25m: %d x %d MB in %v, idle RSS %.1f MiB, peak %.1f MiB, %.1f MiB above idle\n",
			inboundMemMsgs, inboundMemSize>>20, elapsed.Round(time.Millisecond), float64(idle)/1024, float64(hwm)/1024, above)
		r.result("inbound_mem_25m", float64(inboundMemMsgs)/elapsed.Seconds(),
			kv{"rss_above_idle_mib", above}, kv{"idle_rss_mib", float64(idle) / 1024}, kv{"peak_rss_mib", float64(hwm) / 1024})
	}
	return nil
}

func (b *inboundBench) ratios(rs *results) []ratio {
	var out []ratio
	for _, w := range []string{"inbound_5k", "inbound_100k"} {
		ours, ok := rs.get(w, "ours")
		if !ok || ours.OpsPerSec <= 0 {
			continue
		}
		pf, okPF := rs.get(w, "postfix")
		sink, okSink := rs.get(w, "sink")
		switch {
		case okPF && okSink && pf.OpsPerSec > 0 && sink.OpsPerSec > 0:
			// One line with both, as "ours/postfix=x ours/sink=y": the
			// label carries the first ratio.
			out = append(out, ratio{w, "ours/postfix=" + formatRatio(ours.OpsPerSec/pf.OpsPerSec) + " ours/sink", ours.OpsPerSec / sink.OpsPerSec})
		case okPF && pf.OpsPerSec > 0:
			out = append(out, ratio{w, "ours/postfix", ours.OpsPerSec / pf.OpsPerSec})
		case okSink && sink.OpsPerSec > 0:
			out = append(out, ratio{w, "ours/sink", ours.OpsPerSec / sink.OpsPerSec})
		}
		if in, ok := rs.get(w, "ours_inline"); ok && in.OpsPerSec > 0 {
			if sink.OpsPerSec > 0 {
				out = append(out, ratio{w, "ours_inline/sink", in.OpsPerSec / sink.OpsPerSec})
			}
			if pf.OpsPerSec > 0 {
				out = append(out, ratio{w, "ours_inline/postfix", in.OpsPerSec / pf.OpsPerSec})
			}
		}
	}
	return out
}

// inboundServer is a running SMTP server under test.
type inboundServer interface {
	addr() string
	// accepted counts the messages the server holds, or -1 if it cannot
	// tell (sink).
	accepted() (int64, error)
	stop()
}

// findPostfixTool finds one of Postfix's programs, which live in
// /usr/sbin, often not on a user's PATH.
func findPostfixTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/lib/postfix/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (Debian package postfix)", name)
}

// runSmtpSource sends msgs messages of size bytes over sessions parallel
// sessions to addr and returns the wall time.
func runSmtpSource(bin, addr string, sessions, msgs, size int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(msgs), "-l", strconv.Itoa(size),
		"-M", "client.bench.example", "-f", "sender@client.bench.example", "-t", "rcpt@bench.example", addr)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("smtp-source: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return elapsed, nil
}

// freePort returns a loopback address with a port free at the time.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitListening waits until addr accepts connections and greets.
func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			_, _ = c.Write([]byte("QUIT\r\n"))
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220") {
				return nil
			}
			err = fmt.Errorf("greeting %q: %v", line, rerr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come up within %v: %v", addr, within, err)
		}
		time.Sleep(50 * time.Millisecond) // polling another process
	}
}

// --- ours ---

type oursInbound struct {
	address string
	stopFn  func()
	count   func() (int64, error)
}

func (o *oursInbound) addr() string             { return o.address }
func (o *oursInbound) accepted() (int64, error) { return o.count() }
func (o *oursInbound) stop()                    { o.stopFn() }

// noDNS is a delivery.Resolver that knows no names.
type noDNS struct{}

func nxdomain(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (noDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, nxdomain(name)
}
func (noDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, nxdomain(name)
}
func (noDNS) LookupIPAddr(_ context.Context, name string) ([]net.IPAddr, error) {
	return nil, nxdomain(name)
}
func (noDNS) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, nxdomain(addr)
}

func startOursInbound(base string, inlineMax int) (*oursInbound, error) {
	blobs, err := filededup.OpenStore(filepath.Join(base, "blobs"), nil)
	if err != nil {
		return nil, err
	}
	q, err := lsmqueue.OpenQueue(filepath.Join(base, "queue"), nil)
	if err != nil {
		blobs.Close()
		return nil, err
	}
	in, err := delivery.NewInbound(blobs, q, &delivery.InboundOptions{
		Hostname:         "mx.bench.example",
		MaxConnsPerIP:    -1,
		ConnRatePerIP:    -1,
		MessageRatePerIP: -1,
		Resolver:         noDNS{},
		InlineMax:        inlineMax,
	})
	if err != nil {
		q.Close()
		blobs.Close()
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		q.Close()
		blobs.Close()
		return nil, err
	}
	srv := in.NewServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(in.Listener(l))
	}()
	return &oursInbound{
		address: l.Addr().String(),
		count: func() (int64, error) {
			st, err := q.Stats(context.Background(), delivery.DefaultTopic)
			return st.Ready + st.Leased + st.Delayed, err
		},
		stopFn: func() {
			srv.Close()
			<-done
			q.Close()
			blobs.Close()
		},
	}, nil
}

// --- postfix ---

type postfixInbound struct {
	address, dir, queueDir string
}

func (p *postfixInbound) addr() string { return p.address }

// accepted counts the queue files under hold/ (and, in case, incoming/
// and active/).
func (p *postfixInbound) accepted() (int64, error) {
	var n int64
	for _, sub := range []string{"hold", "incoming", "active", "deferred"} {
		err := filepath.WalkDir(filepath.Join(p.queueDir, sub), func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				n++
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (p *postfixInbound) stop() {
	bin, err := findPostfixTool("postfix")
	if err != nil {
		return
	}
	out, err := exec.Command(bin, "-c", p.dir, "stop").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "delivery postfix: stop: %v: %s\n", err, out)
	}
	// master exits after its children; wait for its pid file lock to go.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command(bin, "-c", p.dir, "status").Run() != nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling another process
	}
}

func startPostfixInbound(base string) (*postfixInbound, error) {
	bin, err := findPostfixTool("postfix")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("postfix: starting a private Postfix needs root")
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	// The postfix user's processes must reach the queue under base.
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	p := &postfixInbound{address: addr, dir: filepath.Join(base, "etc"), queueDir: filepath.Join(base, "queue")}
	data := filepath.Join(base, "data")
	for _, d := range []string{p.dir, p.queueDir, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if out, err := exec.Command("chown", "postfix", data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown postfix %s: %v: %s", data, err, out)
	}
	mainCF := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + p.queueDir,
		"data_directory = " + data,
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"myhostname = postfix.bench.example",
		"mydomain = bench.example",
		"mydestination =",
		"inet_interfaces = loopback-only",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"smtpd_peername_lookup = no",
		// Accept into the queue and keep it there: every message goes on hold.
		"smtpd_client_restrictions = check_client_access static:HOLD",
		"message_size_limit = 0",
		"biff = no",
		"maillog_file = " + filepath.Join(base, "maillog"),
		"maillog_file_prefixes = " + base, // else postfix refuses to start

		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(p.dir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(p.dir, "master.cf"), fmt.Appendf(nil, postfixMaster, addr), 0o644); err != nil {
		return nil, err
	}
	// "postfix start" warns about ownership of the private directories
	// and may exit non-zero though master runs: the port decides.
	out, startErr := exec.Command(bin, "-c", p.dir, "start").CombinedOutput()
	if err := waitListening(addr, 30*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("postfix start (%v: %s): %w", startErr, lastLines(string(out), 5), err)
	}
	return p, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// --- sink ---

type sinkInbound struct {
	address string
	cmd     *exec.Cmd
}

func (s *sinkInbound) addr() string             { return s.address }
func (s *sinkInbound) accepted() (int64, error) { return -1, nil }
func (s *sinkInbound) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func startSinkInbound(string) (*sinkInbound, error) {
	bin, err := findPostfixTool("smtp-sink")
	if err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{addr, "256"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &sinkInbound{address: addr, cmd: cmd}
	if err := waitListening(addr, 10*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// --- memory ---

// procStatusKB returns a field of /proc/self/status in kB.
func procStatusKB(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// peakRSS tracks this process's peak resident set size from its start:
// it resets the kernel's high-water mark (VmHWM, via clear_refs) and
// also samples VmRSS, in case the reset is not allowed.
type peakRSS struct {
	reset bool
	max   atomic.Int64
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newPeakRSS() *peakRSS {
	p := &peakRSS{quit: make(chan struct{})}
	p.reset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	p.wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := procStatusKB("VmRSS"); err == nil && v > p.max.Load() {
				p.max.Store(v)
			}
			select {
			case <-p.quit:
				return
			case <-t.C:
			}
		}
	})
	return p
}

// stop returns the peak in kB.
func (p *peakRSS) stop() int64 {
	close(p.quit)
	p.wg.Wait()
	peak := p.max.Load()
	if p.reset {
		if hwm, err := procStatusKB("VmHWM"); err == nil && hwm > peak {
			peak = hwm
		}
	}
	return peak
}
