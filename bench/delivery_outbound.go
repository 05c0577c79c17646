package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
)

// The outbound part of the delivery suite measures the sending agent
// against Postfix's smtp-source, both delivering to Postfix's smtp-sink
// over loopback.
//
// Workload outbound_5k (impl ours): -out-msgs messages of 5 KB (default
// 4000, 500 with -quick), each to one recipient at one of 100 destination
// domains, are queued as Submission queues them (blob in filededup, an
// OutgoingJob in lsmqueue, both synced, in a temporary directory; not
// timed); then a queue.Worker running delivery.Outbound (-out-workers
// jobs in flight, 64, sharing -out-conc SMTP connections, 16, as
// ConnsPerHost 4 per sink; delivery state in the queue's DB, lsmqueue
// with StateNoSync and AckNoSync: the delivery package's documented
// at-least-once setup, where the state and the ack survive a SIGKILL and a
// power loss may only cause duplicates) delivers
// them, timed from the worker's start to the last job done. The 100
// domains resolve through an in-memory DNS to four smtp-sink processes on
// 127.0.0.51-54 (25 domains each; smtp-sink without dumps). Each message
// gets one DKIM signature with an RSA-2048 key, the common configuration.
// The same run is repeated as outbound_5k_ed25519 (one Ed25519
// signature), outbound_5k_rsa_ed25519 (both, RFC 8463's dual signing) and
// outbound_5k_unsigned (no keys). Each ours result also gives the
// process's CPU time per message (cpu_us_per_msg). Ours does everything a
// production agent does per message: leases (synced) and acks in a
// durable queue, reads the body from the blob store (once), keeps
// per-recipient state that survives a process crash, releases the body
// (synced), resolves MX hosts, reuses connections and pipelines.
//
// -out-cpuprofile writes a CPU profile of each of our runs' delivery
// phase alone.
//
// -workloads names the delivery workloads to run (inbound ones too), for
// profiling one of them; the default runs all.
//
// Workload outbound_5k (impl smtp-source): four smtp-source processes,
// one per smtp-sink, -out-conc/4 sessions each, reusing connections (-d),
// send the same number of messages with 5 KB payloads (-l 5120); timed from
// start to the last exit. smtp-source keeps no queue, no state and signs
// nothing: it is the floor of SMTP over loopback to this sink.
//
// Workloads dkim_sign_rsa2048 and dkim_sign_ed25519 (impl ours): one
// goroutine signs the same 5 KB message with go-msgauth's dkim.Signer,
// relaxed/relaxed, the way Outbound does; messages per second.
//
// RATIO lines: ours/smtp-source for each outbound workload (smtp-source
// signs nothing, so its one rate is the peer of all four).

var outFlags struct {
	msgs      int
	conc      int
	workers   int
	workloads string
	profile   string
}

// wantWorkload reports whether the delivery workload name is to run
// (flag -workloads).
func wantWorkload(name string) bool {
	return outFlags.workloads == "" || slices.Contains(strings.Split(outFlags.workloads, ","), name)
}

func init() {
	registerDeliveryPart(deliveryPart{
		Impls: []string{"ours", "smtp-source"},
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&outFlags.msgs, "out-msgs", 0, "outbound messages per run (0: 4000, or 500 with -quick)")
			fs.IntVar(&outFlags.conc, "out-conc", 16, "outbound SMTP connections in total (ours: ConnsPerHost is this over the 4 sinks; smtp-source: sessions)")
			fs.StringVar(&outFlags.workloads, "workloads", "", "comma-separated delivery workloads to run (default: all)")
			fs.StringVar(&outFlags.profile, "out-cpuprofile", "", "write a CPU profile of each of our outbound runs' delivery phase (not the queue fill) to this path with \".<workload>\" appended")
			fs.IntVar(&outFlags.workers, "out-workers", 64, "our queue worker's concurrency (jobs in flight; they share the -out-conc connections)")
		},
		Run:    runOutbound,
		Ratios: outboundRatios,
	})
}

const (
	outDomains = 100
	outSinks   = 4
	outBody    = 5120
)

func outSinkIP(i int) string { return fmt.Sprintf("127.0.0.%d", 51+i) }

// outDNS resolves dN.bench to mx.dN.bench at sink N mod 4.
type outDNS struct{}

func (outDNS) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	return []*net.MX{{Host: "mx." + strings.TrimSuffix(n, "."), Pref: 10}}, nil
}

func (outDNS) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	n = strings.TrimPrefix(strings.TrimSuffix(n, "."), "mx.d")
	i, err := strconv.Atoi(strings.TrimSuffix(n, ".bench"))
	if err != nil {
		return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
	}
	return []net.IPAddr{{IP: net.ParseIP(outSinkIP(i % outSinks))}}, nil
}

// startSinks starts one smtp-sink per sink address on a common port.
func startSinks() (int, func(), error) {
	bin := "/usr/sbin/smtp-sink"
	if _, err := os.Stat(bin); err != nil {
		return 0, nil, fmt.Errorf("outbound: %s is needed (apt-get install postfix): %w", bin, err)
	}
	var port int
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", outSinkIP(0)+":0")
		if err != nil {
			return 0, nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for i := 1; i < outSinks; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", outSinkIP(i), port))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			break
		}
		if try > 50 {
			return 0, nil, errors.New("outbound: no common free port")
		}
	}
	var cmds []*exec.Cmd
	stop := func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	for i := range outSinks {
		var args []string
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		args = append(args, fmt.Sprintf("%s:%d", outSinkIP(i), port), "1000")
		c := exec.Command(bin, args...)
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			stop()
			return 0, nil, err
		}
		cmds = append(cmds, c)
	}
	for i := range outSinks {
		for try := 0; ; try++ {
			c, err := net.Dial("tcp", net.JoinHostPort(outSinkIP(i), strconv.Itoa(port)))
			if err == nil {
				c.Close()
				break
			}
			if try > 300 {
				stop()
				return 0, nil, fmt.Errorf("outbound: smtp-sink did not listen: %w", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return port, stop, nil
}

func outMsgs(c *config) int {
	if outFlags.msgs > 0 {
		return outFlags.msgs
	}
	if c.Quick {
		return 500
	}
	return 4000
}

// outMessage is a 5 KB message (header and body).
func outMessage(n int) string {
	hdr := fmt.Sprintf("From: <sender@example.com>\r\nTo: <u%d@d%d.bench>\r\nSubject: outbound bench %d\r\nDate: Mon, 7 Dec 2026 00:00:00 +0000\r\nMessage-ID: <ob%d@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n", n, n%outDomains, n, n)
	var b strings.Builder
	b.WriteString(hdr)
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:76] + "\r\n"
	for b.Len()+len(line) <= outBody {
		b.WriteString(line)
	}
	return b.String()
}

func runOutbound(impl string, c *config, r *reporter) error {
	port, stop, err := startSinks()
	if err != nil {
		return err
	}
	defer stop()
	n := outMsgs(c)
	switch impl {
	case "ours":
		edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
		_ = edPub
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		ed := delivery.DKIMKey{Domain: "example.com", Selector: "ed", Signer: edKey}
		rs := delivery.DKIMKey{Domain: "example.com", Selector: "rsa", Signer: rsaKey}
		for _, w := range outWorkloads(rs, ed) {
			if !wantWorkload(w.name) {
				continue
			}
			rate, cpu, err := runOursOutbound(c, port, n, w.name, w.keys)
			if err != nil {
				return fmt.Errorf("%s: %w", w.name, err)
			}
			r.result(w.name, rate, kv{"messages", float64(n)}, kv{"cpu_us_per_msg", cpu})
		}
		for _, k := range []struct {
			name string
			key  crypto.Signer
		}{{"dkim_sign_rsa2048", rsaKey}, {"dkim_sign_ed25519", edKey}} {
			if !wantWorkload(k.name) {
				continue
			}
			rate, err := dkimSignRate(k.key, c.Quick)
			if err != nil {
				return err
			}
			r.result(k.name, rate)
		}
		return nil
	case "smtp-source":
		rate, err := runOutboundSmtpSource(c, port, n)
		if err != nil {
			return err
		}
		for _, w := range outWorkloads(delivery.DKIMKey{}, delivery.DKIMKey{}) {
			if wantWorkload(w.name) {
				r.result(w.name, rate, kv{"messages", float64(n)})
			}
		}
		return nil
	}
	return fmt.Errorf("outbound: unknown implementation %q", impl)
}

// outWorkload is one outbound run of ours: its name and DKIM keys.
type outWorkload struct {
	name string
	keys []delivery.DKIMKey
}

// outWorkloads lists the outbound workloads. outbound_5k signs each
// message once with RSA-2048, the common configuration; the others are
// labelled by what they sign with.
func outWorkloads(rsaKey, edKey delivery.DKIMKey) []outWorkload {
	return []outWorkload{
		{"outbound_5k", []delivery.DKIMKey{rsaKey}},
		{"outbound_5k_ed25519", []delivery.DKIMKey{edKey}},
		{"outbound_5k_rsa_ed25519", []delivery.DKIMKey{edKey, rsaKey}},
		{"outbound_5k_unsigned", nil},
	}
}

// countHandler counts jobs handled without error.
type countHandler struct {
	h    queue.Handler
	n    atomic.Int64
	want int64
	done chan struct{}
	once sync.Once
	err  atomic.Value
}

func (c *countHandler) Handle(ctx context.Context, job queue.Job) error {
	err := c.h.Handle(ctx, job)
	if err != nil {
		c.err.Store(err.Error())
		return err
	}
	if c.n.Add(1) == c.want {
		c.once.Do(func() { close(c.done) })
	}
	return nil
}

// runOursOutbound delivers n messages with ours and returns the rate and
// the process's CPU time per message (microseconds) while it ran.
func runOursOutbound(c *config, port, n int, name string, keys []delivery.DKIMKey) (float64, float64, error) {
	dir, err := os.MkdirTemp(c.Dir, "outbound-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	// The delivery state lives in the queue's DB, unsynced, like the
	// acks: the delivery package's documented at-least-once setup.
	qb, err := lsmqueue.Open(filepath.Join(dir, "queue"), &lsmqueue.Options{AckNoSync: true, StateNoSync: true})
	if err != nil {
		return 0, 0, err
	}
	q := queue.New(qb, nil)
	defer q.Close()
	blobs, err := filededup.OpenStore(filepath.Join(dir, "blobs"), nil)
	if err != nil {
		return 0, 0, err
	}
	defer blobs.Close()
	ctx := context.Background()
	for i := range n {
		id := "ob-" + strconv.Itoa(i)
		ref, err := blobs.Put(ctx, strings.NewReader(outMessage(i)))
		if err != nil {
			return 0, 0, err
		}
		if err := blobs.Link(ctx, ref, delivery.OutgoingBlobOwner(id)); err != nil {
			return 0, 0, err
		}
		j := delivery.OutgoingJob{Version: 1, ID: id, Blob: ref, User: "sender@example.com", From: "sender@example.com",
			Recipients: []string{fmt.Sprintf("u%d@d%d.bench", i, i%outDomains)}, Received: time.Now()}
		p, err := json.Marshal(j)
		if err != nil {
			return 0, 0, err
		}
		if _, err := q.Enqueue(ctx, delivery.DefaultOutgoingTopic, p, &queue.EnqueueOptions{Key: id}); err != nil {
			return 0, 0, err
		}
	}
	conc := outFlags.conc
	ob, err := delivery.NewOutbound(q, blobs, qb, &delivery.OutboundOptions{
		Hostname: "out.example.com", Resolver: outDNS{}, Port: port, DKIM: keys,
		ConnsPerHost: max(1, conc/outSinks),
	})
	if err != nil {
		return 0, 0, err
	}
	defer ob.Close()
	ch := &countHandler{h: ob, want: int64(n), done: make(chan struct{})}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := queue.NewWorker(q, delivery.DefaultOutgoingTopic, ch, &queue.WorkerOptions{Concurrency: max(1, outFlags.workers), PollWait: 50 * time.Millisecond})
	fmt.Fprintf(os.Stderr, "outbound: ours delivering %d messages (dkim keys %d)\n", n, len(keys))
	if outFlags.profile != "" {
		f, err := os.Create(outFlags.profile + "." + name)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0 := time.Now(), cpuTime()
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	select {
	case <-ch.done:
	case <-time.After(10 * time.Minute):
		return 0, 0, fmt.Errorf("outbound: %d of %d delivered in 10 minutes (last error: %v)", ch.n.Load(), n, ch.err.Load())
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	if outFlags.profile != "" {
		pprof.StopCPUProfile()
	}
	cancel()
	<-wdone
	fmt.Fprintf(os.Stderr, "outbound: ours %d messages (dkim keys %d) in %v, CPU %v (%.0f%% of one core)\n", n, len(keys), el, cpu, 100*cpu.Seconds()/el.Seconds())
	return float64(n) / el.Seconds(), float64(cpu.Microseconds()) / float64(n), nil
}

func runOutboundSmtpSource(c *config, port, n int) (float64, error) {
	bin := "/usr/sbin/smtp-source"
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("outbound: %s is needed (apt-get install postfix): %w", bin, err)
	}
	per := max(1, outFlags.conc/outSinks)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, outSinks)
	for i := range outSinks {
		m := n / outSinks
		if i < n%outSinks {
			m++
		}
		wg.Go(func() {
			cmd := exec.Command(bin, "-d", "-s", strconv.Itoa(per), "-m", strconv.Itoa(m), "-l", strconv.Itoa(outBody),
				"-M", "out.example.com", "-f", "sender@example.com", "-t", fmt.Sprintf("u@d%d.bench", i),
				fmt.Sprintf("%s:%d", outSinkIP(i), port))
			cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
			errs[i] = cmd.Run()
		})
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("outbound: smtp-source: %w", err)
	}
	fmt.Fprintf(os.Stderr, "outbound: smtp-source %d messages in %v\n", n, el)
	return float64(n) / el.Seconds(), nil
}

// dkimSignRate signs one 5 KB message repeatedly for a while.
func dkimSignRate(key crypto.Signer, quick bool) (float64, error) {
	msg := []byte(outMessage(1))
	d := 3 * time.Second
	if quick {
		d = time.Second
	}
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		s, err := dkim.NewSigner(&dkim.SignOptions{Domain: "example.com", Selector: "s", Signer: key, Hash: crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
			HeaderKeys: delivery.DefaultDKIMHeaders})
		if err != nil {
			return 0, err
		}
		if _, err := s.Write(msg); err != nil {
			return 0, err
		}
		if err := s.Close(); err != nil {
			return 0, err
		}
		_ = s.Signature()
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func outboundRatios(rs *results) []ratio {
	var out []ratio
	for _, w := range outWorkloads(delivery.DKIMKey{}, delivery.DKIMKey{}) {
		w := w.name
		ours, ok1 := rs.get(w, "ours")
		peer, ok2 := rs.get(w, "smtp-source")
		if ok1 && ok2 && peer.OpsPerSec > 0 {
			out = append(out, ratio{Workload: w, Label: "ours/smtp-source", Value: ours.OpsPerSec / peer.OpsPerSec})
		}
	}
	return out
}
