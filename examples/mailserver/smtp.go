package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/queue"
)

// smtpFront is the SMTP side: Inbound on the MX port, Submission with AUTH
// on the submission port, and the incoming-topic workers running Deliver.
type smtpFront struct {
	inSrv, subSrv *smtp.Server
	inL, subL     net.Listener
	worker        *queue.Worker
}

// newSMTP wires delivery's Inbound, Submission and Deliver to the blocks and
// accounts, and binds both ports.
func newSMTP(a *app) (*smtpFront, error) {
	log := a.log.With("front", "smtp")
	limits := func(o delivery.InboundOptions) delivery.InboundOptions {
		o.MaxConnsPerIP, o.ConnRatePerIP, o.MessageRatePerIP = a.cfg.MaxConnsPerIP, a.cfg.ConnRatePerIP, a.cfg.MessageRatePerIP
		return o
	}
	inOpts := limits(delivery.InboundOptions{
		Hostname:  a.cfg.Hostname,
		Recipient: a.recipient,
		TLSConfig: a.tls,
		Logger:    log,
	})
	in, err := delivery.NewInbound(a.b.Blobs, a.b.Queue, &inOpts)
	if err != nil {
		return nil, err
	}
	sub, err := delivery.NewSubmission(a.b.Blobs, a.b.Queue, a.b.Mailbox, &delivery.SubmissionOptions{
		InboundOptions:    limits(delivery.InboundOptions{Hostname: a.cfg.Hostname, TLSConfig: a.tls, Logger: log.With("port", "submission")}),
		Authenticate:      a.accounts.Verify,
		AllowInsecureAuth: a.cfg.InsecureAuth,
	})
	if err != nil {
		return nil, err
	}
	a.submission = sub
	filter := spamFlagFilter
	if a.feedback != nil { // reports to -bounce-address are recorded, not stored
		filter = a.feedback.Filter(spamFlagFilter)
	}
	deliver, err := delivery.NewDeliver(a.b.Mailbox, a.b.Blobs, &delivery.DeliverOptions{Filter: filter, Logger: log})
	if err != nil {
		return nil, err
	}
	f := &smtpFront{
		inSrv:  in.NewServer(),
		subSrv: sub.NewServer(),
		worker: queue.NewWorker(a.b.Queue, delivery.DefaultTopic, countDeliveries(a, delivery.DefaultTopic, deliver) /* metrics.go */, &queue.WorkerOptions{
			Concurrency: a.cfg.Workers,
			LeaseTTL:    leaseTTL,
			Logger:      log.With("worker", delivery.DefaultTopic),
		}),
	}
	if f.inL, err = net.Listen("tcp", a.cfg.SMTPAddr); err != nil {
		return nil, fmt.Errorf("-smtp: %w", err)
	}
	if f.subL, err = net.Listen("tcp", a.cfg.SubmissionAddr); err != nil {
		f.inL.Close()
		return nil, fmt.Errorf("-submission: %w", err)
	}
	f.inL, f.subL = in.Listener(f.inL), sub.Listener(f.subL)
	instrumentSMTP(a, f.inSrv, "smtp")        // metrics.go
	instrumentSMTP(a, f.subSrv, "submission") // metrics.go
	return f, nil
}

func (f *smtpFront) front() front {
	return front{name: "smtp", run: f.run, banner: []string{
		fmt.Sprintf("SMTP        %-22s mail from other servers (STARTTLS)", f.inL.Addr()),
		fmt.Sprintf("submission  %-22s mail from your users, AUTH PLAIN/LOGIN (STARTTLS)", f.subL.Addr()),
	}}
}

// run serves both ports and the workers until ctx is done, then stops
// accepting, lets the sessions and in-flight jobs finish (the worker
// releases the leases of jobs it cannot finish in its grace period) and
// returns.
func (f *smtpFront) run(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- serveSMTP(f.inSrv, f.inL) }()
	go func() { errc <- serveSMTP(f.subSrv, f.subL) }()
	wctx, stopWorker := context.WithCancel(context.Background())
	workerDone := make(chan error, 1)
	go func() { workerDone <- f.worker.Run(wctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	case err = <-workerDone:
		workerDone <- err
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if e := f.inSrv.Shutdown(sctx); e != nil && !errors.Is(e, smtp.ErrServerClosed) {
		f.inSrv.Close()
	}
	if e := f.subSrv.Shutdown(sctx); e != nil && !errors.Is(e, smtp.ErrServerClosed) {
		f.subSrv.Close()
	}
	stopWorker()
	if e := <-workerDone; e != nil && !errors.Is(e, context.Canceled) && err == nil {
		err = e
	}
	return err
}

func serveSMTP(s *smtp.Server, l net.Listener) error {
	err := s.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// recipient is Inbound's Recipient hook: an address is local when it is a
// user's name (the address itself, in lower case).
func (a *app) recipient(ctx context.Context, addr string) (mailbricks.UserID, error) {
	if u, ok := a.bounceUser(addr); ok {
		return u, nil
	}
	name, err := normalizeName(addr)
	if err != nil {
		return "", delivery.ErrUnknownRecipient
	}
	ok, err := a.accounts.Exists(ctx, name)
	if err != nil {
		return "", mailbricks.Temporary(err)
	}
	if !ok {
		return "", delivery.ErrUnknownRecipient
	}
	return mailbricks.UserID(name), nil
}

// spamFlagFilter is the Deliver filter hook: a message that an upstream
// scanner marked "X-Spam-Flag: YES" (SpamAssassin, rspamd) goes to Junk, as
// does one the Inbound marked Junk (DMARC quarantine); the rest go to the
// inbox. It reads only the header section, at most 256 KiB.
func spamFlagFilter(_ context.Context, job *delivery.IncomingJob, msg io.Reader) (delivery.Verdict, error) {
	if job.Junk {
		return delivery.VerdictJunk, nil
	}
	br := bufio.NewReader(io.LimitReader(msg, 256<<10))
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return delivery.VerdictInbox, nil
		}
		if name, value, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(strings.TrimSpace(name), "X-Spam-Flag") &&
			strings.EqualFold(strings.TrimSpace(value), "YES") {
			return delivery.VerdictJunk, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return delivery.VerdictInbox, nil
		}
	}
}
