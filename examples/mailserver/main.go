// Command mailserver is the mailbricks reference assembly: a working mail
// service built only from mailbricks' public API. With no flags it keeps
// everything in ./mailbricks-data and listens on loopback ports:
//
//	SMTP        127.0.0.1:2525  delivery.Inbound → incoming queue → Deliver → mailbox + index
//	submission  127.0.0.1:2587  delivery.Submission (AUTH) → Sent copy + outgoing queue
//	HTTP        127.0.0.1:8080  JSON API, /api/events (Server-Sent Events), /healthz
//	IMAP        127.0.0.1:1143  mailbox/imapsession (STARTTLS, IDLE, SEARCH by the index)
//	outbound    delivery.Outbound on the outgoing queue: MX delivery with reputation and
//	            DKIM, same-domain shortcut into local mailboxes, DSNs, retries
//
// -pg-url, -nats-url, -redis-url and -s3-url move the blocks to PostgreSQL,
// NATS JetStream, Redis and S3; two instances on the same servers share the
// work. See README.md for a walkthrough.
//
// Usage:
//
//	mailserver [flags]                      serve
//	mailserver [flags] user add NAME [-password P]
//	mailserver [flags] user passwd NAME [-password P]
//	mailserver [flags] user list
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/delivery"
)

const (
	// leaseTTL is the lease of a delivery job (and NATS's AckWait).
	leaseTTL = 30 * time.Second
	// shutdownGrace bounds a graceful shutdown: sessions and jobs still
	// running then are cut (a job's lease is released, nothing
	// acknowledged is lost).
	shutdownGrace = 20 * time.Second
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mailserver [flags]                          serve")
		fmt.Fprintln(stderr, "       mailserver [flags] user add|passwd NAME [-password P]")
		fmt.Fprintln(stderr, "       mailserver [flags] user list")
		fmt.Fprintln(stderr, "       mailserver [flags] import -user NAME [-folder F] MBOX-FILE|MAILDIR")
		fmt.Fprintln(stderr, "       mailserver [flags] dkim show [-domain D] [-all]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "mailserver:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch rest := fs.Args(); {
	case len(rest) == 0:
		err = serve(ctx, cfg, stdout, stderr)
	case rest[0] == "user":
		err = userCommand(ctx, cfg, rest[1:], stdout, stderr)
	case rest[0] == "import": // import.go
		err = importCommand(ctx, cfg, rest[1:], stdout, stderr)
	case rest[0] == "dkim": // dkim_show.go
		err = dkimCommand(ctx, cfg, rest[1:], stdout, stderr)
	default:
		fs.Usage()
		return 2
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "mailserver:", err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

// app is what the fronts share: the configuration, the blocks, the
// accounts and the logger.
type app struct {
	cfg      *config
	b        *blocks
	accounts *accounts
	tls      *tls.Config
	dkim     *dkimKey
	log      *slog.Logger
	// feedback records bounces and complaints at -bounce-address (nil
	// without it); set by newOutbound.
	feedback *delivery.Feedback
	// submission queues mail users send through the HTTP API
	// (Submission.Submit); set by newSMTP.
	submission *delivery.Submission
}

func newLogger(cfg *config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	o := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("-log-format %q: text or json", cfg.LogFormat)
}

// front is one part of the running server: a protocol front or a
// background worker.
type front struct {
	name string
	// banner lines say what it serves where.
	banner []string
	run    func(context.Context) error
}

// serve runs the server until ctx is done (SIGINT or SIGTERM).
//
// Startup order: data directory and keys, blocks, accounts, then each front
// binds its ports (so a taken port fails the start before anything serves),
// then all run. The outbound worker (delivery.Outbound on the outgoing
// topic, outbound.go) and the IMAP front (imap.go) are one file each whose
// constructor returns a front, appended to fronts below beside smtp and
// http; a build without one of them prints a "not wired in" banner line.
func serve(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	a := &app{cfg: cfg, log: log}
	var tlsCreated, dkimCreated bool
	if a.tls, tlsCreated, err = loadTLS(cfg); err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	if a.dkim, dkimCreated, err = loadDKIM(cfg); err != nil {
		return fmt.Errorf("DKIM key: %w", err)
	}
	if a.b, err = openBlocks(ctx, cfg, log); err != nil {
		return err
	}
	defer func() {
		if err := a.b.Close(); err != nil {
			log.Error("close", "err", err)
		} else {
			log.Info("stopped")
		}
	}()
	a.accounts = newAccounts(a.b.Users, cfg.BcryptCost)
	demo, err := createDemoUsers(ctx, a)
	if err != nil {
		return err
	}

	outF, err := newOutbound(a) // before newSMTP: it sets a.feedback
	if err != nil {
		return err
	}
	smtpF, err := newSMTP(a)
	if err != nil {
		return err
	}
	httpF, err := newHTTP(a)
	if err != nil {
		smtpF.inL.Close()
		smtpF.subL.Close()
		return err
	}
	imapF, err := newIMAP(a)
	if err != nil {
		smtpF.inL.Close()
		smtpF.subL.Close()
		httpF.l.Close()
		return err
	}
	fronts := []front{
		smtpF.front(),
		httpF.front(),
		imapF,
		outF,
		{name: "blob-gc", run: a.collectBlobs},
	}

	banner(stdout, a, fronts, demo, tlsCreated, dkimCreated)
	log.Info("serving", "smtp", smtpF.inL.Addr(), "submission", smtpF.subL.Addr(), "http", httpF.addr())
	dnsHint(stdout, a) // dkim_show.go: the DNS records a deployment needs

	// Any front failing stops the others; the signal stops all.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, f := range fronts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.run(runCtx); err != nil {
				cancel(fmt.Errorf("%s: %w", f.name, err))
			}
		}()
	}
	<-runCtx.Done()
	log.Info("shutting down")
	cancel(nil)
	wg.Wait()
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// createDemoUsers adds the demo users with generated passwords when there
// are no users yet, and returns "name password" lines to print once.
func createDemoUsers(ctx context.Context, a *app) ([]string, error) {
	if !a.cfg.Demo {
		return nil, nil
	}
	names, err := a.b.Users.List(ctx)
	if err != nil || len(names) > 0 {
		return nil, err
	}
	var lines []string
	for _, local := range []string{"alice", "bob"} {
		name, err := normalizeName(local + "@" + a.cfg.DemoDomain)
		if err != nil {
			return nil, fmt.Errorf("-demo-domain: %w", err)
		}
		pw := generatePassword()
		hash, err := hashPassword(pw, a.cfg.BcryptCost)
		if err != nil {
			return nil, err
		}
		if err := a.b.Users.Add(ctx, name, hash); err != nil {
			if errors.Is(err, errUserExists) { // another instance was first
				return nil, nil
			}
			return nil, err
		}
		lines = append(lines, name+"  "+pw)
	}
	return lines, nil
}

func banner(w io.Writer, a *app, fronts []front, demo []string, tlsCreated, dkimCreated bool) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("mailbricks mailserver (%s)", a.cfg.Hostname)
	has := map[string]bool{}
	for _, f := range fronts {
		has[f.name] = true
		for _, l := range f.banner {
			p("  %s", l)
		}
	}
	if !has["imap"] {
		p("  IMAP        %-22s reserved for the IMAP front (not wired in yet)", a.cfg.IMAPAddr)
	}
	if !has["outbound"] {
		p("  outbound    sent mail waits on the queue's %q topic until the outbound worker is wired in", delivery.DefaultOutgoingTopic)
	}
	for _, w := range a.b.Where {
		p("  %-11s %s", w[0], w[1])
	}
	if tlsCreated {
		p("  created a self-signed TLS certificate in %s", a.cfg.Data+"/tls")
	}
	if dkimCreated {
		p("  created a DKIM key; publish at %s._domainkey.<your domain> TXT %q", a.dkim.Selector, a.dkim.Record)
	}
	if len(demo) > 0 {
		p("  demo users (passwords shown only now; change with `mailserver user passwd NAME`):")
		for _, l := range demo {
			p("    %s", l)
		}
	}
}

// collectBlobs runs dedup's garbage collector now and then: bodies that
// Deliver unlinked and attachments of expunged mail are removed after the
// store's grace period.
func (a *app) collectBlobs(ctx context.Context) error {
	t := time.NewTicker(a.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			st, err := a.b.Blobs.GC(ctx, &dedup.GCOptions{})
			if err != nil && ctx.Err() == nil {
				a.log.Warn("blob gc", "err", err)
			} else {
				a.log.Debug("blob gc", "stats", fmt.Sprintf("%+v", st))
			}
		}
	}
}

// userCommand runs `user add|passwd|list`. It opens only the account store,
// so it works while the server runs.
func userCommand(ctx context.Context, cfg *config, args []string, stdout, stderr io.Writer) error {
	usage := func() error {
		fmt.Fprintln(stderr, "usage: mailserver [flags] user add|passwd NAME [-password P] | user list")
		return errUsage
	}
	if len(args) == 0 {
		return usage()
	}
	users, closeFn, err := openUsers(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	switch args[0] {
	case "list":
		if len(args) != 1 {
			return usage()
		}
		names, err := users.List(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return nil
	case "add", "passwd":
		if len(args) < 2 {
			return usage()
		}
		sub := flag.NewFlagSet("user "+args[0], flag.ContinueOnError)
		sub.SetOutput(stderr)
		pw := sub.String("password", "", "the password (default: generated and printed)")
		if err := sub.Parse(args[2:]); err != nil || sub.NArg() != 0 {
			return usage()
		}
		name, err := normalizeName(args[1])
		if err != nil {
			return err
		}
		generated := *pw == ""
		if generated {
			*pw = generatePassword()
		}
		hash, err := hashPassword(*pw, cfg.BcryptCost)
		if err != nil {
			return err
		}
		if args[0] == "add" {
			err = users.Add(ctx, name, hash)
		} else {
			err = users.SetHash(ctx, name, hash)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if generated {
			fmt.Fprintf(stdout, "%s  %s\n", name, *pw)
		} else {
			fmt.Fprintln(stdout, name)
		}
		return nil
	}
	return usage()
}

// openUsers opens the account store alone: PostgreSQL with -pg-url, else
// the file in the data directory.
func openUsers(ctx context.Context, cfg *config) (userStore, func(), error) {
	if cfg.PGURL == "" {
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, nil, err
		}
		u, err := openFileUsers(cfg.Data)
		return u, func() {}, err
	}
	pool, err := newPool(ctx, cfg.PGURL)
	if err != nil {
		return nil, nil, err
	}
	u, err := openPGUsers(ctx, pool, cfg.Prefix+"_server")
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return u, pool.Close, nil
}
