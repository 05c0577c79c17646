package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/queue"
)

// Defaults of InboundOptions.
const (
	DefaultTopic              = "incoming"
	DefaultMaxMessageBytes    = 32 << 20
	DefaultMaxRecipients      = 100
	DefaultMaxConnsPerIP      = 20
	DefaultConnRatePerIP      = 120
	DefaultMessageRatePerIP   = 300
	DefaultReadTimeout        = 10 * time.Minute
	DefaultWriteTimeout       = 5 * time.Minute
	DefaultMaxLineBytes       = 2000
	DefaultMaxHeaderLineBytes = 2000
	DefaultMaxHeaderBytes     = 256 << 10
	DefaultMaxHeaderFields    = 1000
	DefaultMaxDKIMSignatures  = 5
	DefaultInlineMax          = 64 << 10
	DefaultDNSTimeout         = 20 * time.Second
)

// InboundOptions configures an Inbound. A nil *InboundOptions and every
// zero field mean the default. NewInbound copies the options.
type InboundOptions struct {
	// Hostname is the name the server greets with, writes in Received
	// fields and uses as its authserv-id in Authentication-Results. The
	// default is os.Hostname(), or "localhost" if that fails.
	Hostname string
	// Topic is the queue topic incoming jobs go to. The default is
	// DefaultTopic, "incoming".
	Topic string
	// Recipient maps an envelope recipient to the local user whose mailbox
	// receives the message. It returns an error wrapping
	// ErrUnknownRecipient for an address that is not local (answered
	// 550 5.1.1 at RCPT), an *Error to choose the reply, or another error
	// (451 4.3.0 if mailbricks.IsTemporary, else 550 5.3.0). The default
	// is nil: every valid address is local, its user the address in lower
	// case.
	Recipient func(ctx context.Context, addr string) (mailbricks.UserID, error)
	// Policy, if set, is called at each stage of a transaction (see
	// PolicyCheck) and can refuse it by returning an error (an *Error
	// chooses the reply, as for Recipient), or, at StageData, change the
	// action. Greylisting and DMARC overrides go here. The default is nil:
	// no policy beyond the built-in checks.
	Policy func(ctx context.Context, c *PolicyCheck) error
	// MaxMessageBytes is the largest message accepted (advertised with
	// SIZE; larger is 552 5.3.4). The default is DefaultMaxMessageBytes,
	// 32 MiB.
	MaxMessageBytes int64
	// MaxRecipients is the most recipients per message (more get 452
	// 4.5.3). The default is DefaultMaxRecipients, 100.
	MaxRecipients int
	// MaxConnsPerIP is the most concurrent connections from one client IP;
	// more are answered 421 4.7.0 and closed. Negative means no limit. The
	// default is DefaultMaxConnsPerIP, 20.
	//
	// All per-IP limits (MaxConnsPerIP, ConnRatePerIP, MessageRatePerIP
	// and Submission's AuthFailuresPerIP) count an IPv4 client by its
	// address (/32) and an IPv6 client by its /64 prefix: a host or site
	// usually holds a whole /64, and could otherwise start afresh from
	// each of its addresses. An IPv4-mapped IPv6 address counts as the
	// IPv4 address.
	MaxConnsPerIP int
	// ConnRatePerIP is how many connections a minute one client IP may
	// open (a token bucket of that size); more are answered 421 4.7.0 and
	// closed. Negative means no limit. The default is
	// DefaultConnRatePerIP, 120.
	ConnRatePerIP int
	// MessageRatePerIP is how many transactions (MAIL commands) a minute
	// one client IP may start (a token bucket of that size); more get
	// 450 4.7.1. Negative means no limit. The default is
	// DefaultMessageRatePerIP, 300.
	MessageRatePerIP int
	// ReadTimeout bounds each read of a command line, and the whole DATA
	// transfer after the DATA command. The default is
	// DefaultReadTimeout, 10 minutes.
	ReadTimeout time.Duration
	// WriteTimeout bounds each reply write. The default is
	// DefaultWriteTimeout, 5 minutes.
	WriteTimeout time.Duration
	// TLSConfig, if set, enables STARTTLS with this configuration. The
	// default is nil: no STARTTLS.
	TLSConfig *tls.Config
	// MaxLineBytes bounds every line the client sends, commands and
	// message data alike, CRLF included; go-smtp enforces it and closes
	// the connection after a longer line (a message is then refused with
	// 552 5.3.4 if the connection still takes the reply). The default is
	// DefaultMaxLineBytes, 2000 (RFC 5321's 1000, doubled, as go-smtp).
	MaxLineBytes int
	// MaxHeaderLineBytes bounds each physical header line, CRLF included
	// (larger is 552 5.3.4); it matters when lower than MaxLineBytes. The
	// default is DefaultMaxHeaderLineBytes, 2000.
	MaxHeaderLineBytes int
	// MaxHeaderBytes bounds the header section, up to and including the
	// empty line (larger is 552 5.3.4). The default is
	// DefaultMaxHeaderBytes, 256 KiB.
	MaxHeaderBytes int64
	// MaxHeaderFields bounds the number of header fields (more is 552
	// 5.3.4). The default is DefaultMaxHeaderFields, 1000.
	MaxHeaderFields int
	// InlineMax, if positive, is the largest message, in bytes, that
	// Inbound carries in its job (IncomingJob version 2) instead of
	// streaming it to the blob store: accepting it costs one synced write
	// (the job) instead of two (blob and link, then job), about 30% more
	// messages/s for 5 KB mail in the delivery benchmark, and Deliver has
	// no blob to unlink. The price: each DATA in progress holds a buffer of
	// InlineMax bytes (DefaultInlineMax, 64 KiB, is a good value), the
	// message bypasses content deduplication until Deliver stores it, and
	// workers built before version 2 existed cannot read such jobs (upgrade
	// the workers first). A longer message streams on to the blob store.
	// The default, zero (or negative), streams every message to the blob
	// store, never holding one whole in memory.
	InlineMax int
	// MaxDKIMSignatures is the most DKIM signatures verified per message;
	// further ones are ignored. The default is DefaultMaxDKIMSignatures, 5.
	MaxDKIMSignatures int
	// Resolver answers the DNS queries of SPF, DKIM and DMARC. The default
	// is net.DefaultResolver.
	Resolver Resolver
	// DNSTimeout bounds the DNS work of each check (SPF at MAIL, DKIM and
	// DMARC at DATA). The default is DefaultDNSTimeout, 20 seconds.
	DNSTimeout time.Duration
	// Logger receives storage failures and rejected messages. The default
	// is nil: they are discarded.
	Logger *slog.Logger
	// Now returns the current time, for Received fields, job times and the
	// rate limits. The default is time.Now.
	Now func() time.Time

	sample func() int // pct sampling; tests replace it
}

// Stage is the point of a transaction a PolicyCheck is made at.
type Stage int

// The stages, in order.
const (
	// StageHelo is after EHLO/HELO: ClientIP and Helo are set.
	StageHelo Stage = iota + 1
	// StageMail is after MAIL FROM: From and SPF are set too.
	StageMail
	// StageRcpt is after each accepted RCPT TO: Rcpt is the recipient
	// being added, Recipients the ones accepted before.
	StageRcpt
	// StageData is after the message was received and stored, before it
	// is queued: Auth and Action are set, and the hook may change Action.
	StageData
)

// Action is what Inbound does with a received message.
type Action int

// The actions.
const (
	// ActionAccept queues the message for the inbox.
	ActionAccept Action = iota
	// ActionJunk queues the message marked for the Junk folder.
	ActionJunk
	// ActionReject refuses the message with 550 5.7.1; nothing is queued.
	ActionReject
)

// PolicyCheck is what a Policy hook sees. The hook may change Action at
// StageData; every other field is read-only.
type PolicyCheck struct {
	// Stage is the point of the transaction the check is made at.
	Stage Stage
	// ClientIP is the IP address of the SMTP client.
	ClientIP netip.Addr
	// Helo is the EHLO/HELO name the client gave (validated).
	Helo string
	// TLS reports whether the connection is under TLS (STARTTLS).
	TLS bool
	// From is the MAIL FROM address, "" for the null reverse-path
	// (StageMail on).
	From string
	// SPF is the SPF result of the transaction (StageMail on).
	SPF string
	// Rcpt is the recipient being added (StageRcpt only).
	Rcpt Recipient
	// Recipients are the recipients accepted so far (StageRcpt: before
	// Rcpt; StageData: all).
	Recipients []Recipient
	// Auth holds the SPF, DKIM and DMARC results (StageData).
	Auth *AuthResults
	// Action is what Inbound will do (StageData): ActionReject when DMARC
	// failed with policy reject, ActionJunk with quarantine, else
	// ActionAccept.
	Action Action
}

// Recipient is an accepted envelope recipient and the local user it maps
// to.
type Recipient struct {
	Address string            `json:"addr"`
	User    mailbricks.UserID `json:"user"`
}

// Inbound receives mail over SMTP: an smtp.Backend whose sessions check,
// store and queue each message (see the package doc). It is safe for
// concurrent use.
type Inbound struct {
	blobs *dedup.Store
	queue *queue.Queue
	opts  InboundOptions
	log   *slog.Logger

	conns    connCounter
	connRate *rateLimiter
	msgRate  *rateLimiter
	bufs     sync.Pool // *[]byte of InlineMax+1 bytes, for Data
}

var _ smtp.Backend = (*Inbound)(nil)

// NewInbound returns an Inbound that stores message bodies in blobs and
// queues one job per message on q. It fails, wrapping ErrInvalidOptions,
// if blobs or q is nil or the options are invalid.
func NewInbound(blobs *dedup.Store, q *queue.Queue, opts *InboundOptions) (*Inbound, error) {
	if blobs == nil || q == nil {
		return nil, fmt.Errorf("%w: nil blob store or queue", ErrInvalidOptions)
	}
	var o InboundOptions
	if opts != nil {
		o = *opts
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
		if h, err := os.Hostname(); err == nil && ValidateHelo(h) == nil {
			o.Hostname = h
		}
	}
	if err := ValidateHelo(o.Hostname); err != nil || strings.ContainsAny(o.Hostname, "[]") {
		return nil, fmt.Errorf("%w: host name %q", ErrInvalidOptions, o.Hostname)
	}
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	if err := queue.ValidTopic(o.Topic); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	setDefault(&o.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&o.MaxRecipients, DefaultMaxRecipients)
	setDefault(&o.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDefault(&o.ConnRatePerIP, DefaultConnRatePerIP)
	setDefault(&o.MessageRatePerIP, DefaultMessageRatePerIP)
	setDefault(&o.ReadTimeout, DefaultReadTimeout)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.MaxLineBytes, DefaultMaxLineBytes)
	setDefault(&o.MaxHeaderLineBytes, DefaultMaxHeaderLineBytes)
	setDefault(&o.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&o.MaxHeaderFields, DefaultMaxHeaderFields)
	setDefault(&o.MaxDKIMSignatures, DefaultMaxDKIMSignatures)
	setDefault(&o.DNSTimeout, DefaultDNSTimeout)
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.sample == nil {
		o.sample = defaultSample
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &Inbound{
		blobs:    blobs,
		queue:    q,
		opts:     o,
		log:      log,
		conns:    connCounter{max: o.MaxConnsPerIP, n: make(map[netip.Addr]int)},
		connRate: newRateLimiter(o.ConnRatePerIP, o.Now),
		msgRate:  newRateLimiter(o.MessageRatePerIP, o.Now),
	}
	in.bufs.New = func() any { return new([]byte) }
	return in, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// NewServer returns an smtp.Server configured from the options (host
// name, size and recipient limits, timeouts, STARTTLS) with the Inbound as
// its backend. Serve it on in.Listener(l) so the per-IP connection limits
// apply. Callers may set further fields before serving.
func (in *Inbound) NewServer() *smtp.Server {
	s := smtp.NewServer(in)
	s.Domain = in.opts.Hostname
	s.MaxMessageBytes = in.opts.MaxMessageBytes
	s.MaxRecipients = in.opts.MaxRecipients
	s.MaxLineLength = in.opts.MaxLineBytes
	s.ReadTimeout = in.opts.ReadTimeout
	s.WriteTimeout = in.opts.WriteTimeout
	s.TLSConfig = in.opts.TLSConfig
	s.ErrorLog = slogLogger{in.log}
	return s
}

// Listener wraps l so that connections over the per-IP limits
// (MaxConnsPerIP, ConnRatePerIP) are answered 421 4.7.0 and closed before
// the server sees them.
func (in *Inbound) Listener(l net.Listener) net.Listener {
	return &limitListener{Listener: l, in: in}
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogLogger) Println(v ...any)               { s.l.Warn(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

// NewSession implements smtp.Backend; go-smtp calls it at the first
// EHLO or HELO.
func (in *Inbound) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if err := ValidateHelo(c.Hostname()); err != nil {
		return nil, replyBadHelo
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{in: in, conn: c, ctx: ctx, cancel: cancel, ip: addrIP(c.Conn().RemoteAddr())}
	if err := s.policy(&PolicyCheck{Stage: StageHelo}); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// session is one SMTP connection's state. go-smtp calls its methods from
// the connection's goroutine only.
type session struct {
	in     *Inbound
	conn   *smtp.Conn
	ctx    context.Context
	cancel context.CancelFunc
	ip     netip.Addr

	tx *transaction
}

// transaction is the envelope of the message being received.
type transaction struct {
	id      string
	from    string
	helo    string
	spf     string
	spfDom  string
	rcpts   []Recipient
	started time.Time
}

var _ smtp.Session = (*session)(nil)

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// policy fills the connection fields of pc and runs the Policy hook.
func (s *session) policy(pc *PolicyCheck) *smtp.SMTPError {
	if s.in.opts.Policy == nil {
		return nil
	}
	pc.ClientIP, pc.Helo, pc.TLS = s.ip, s.conn.Hostname(), s.tls()
	if s.tx != nil {
		pc.From, pc.SPF = s.tx.from, s.tx.spf
		if pc.Stage != StageRcpt || len(pc.Recipients) == 0 {
			pc.Recipients = s.tx.rcpts
		}
	}
	if err := s.in.opts.Policy(s.ctx, pc); err != nil {
		return toSMTP(err)
	}
	return nil
}

// Reset implements smtp.Session.
func (s *session) Reset() { s.tx = nil }

// Logout implements smtp.Session.
func (s *session) Logout() error {
	s.cancel()
	return nil
}

// Mail implements smtp.Session: it validates the EHLO name (a client may
// repeat EHLO) and the reverse-path, applies the message rate limit and
// runs SPF.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	helo := s.conn.Hostname()
	if err := ValidateHelo(helo); err != nil {
		return replyBadHelo
	}
	if err := ValidateAddress(from); err != nil {
		return replyBadAddress
	}
	if !s.in.msgRate.allow(s.ip) {
		return replyMsgRate
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.in.opts.DNSTimeout)
	defer cancel()
	spfRes, spfDom := checkSPF(ctx, s.in.opts.Resolver, s.ip.AsSlice(), helo, from)
	s.tx = &transaction{
		id:      mailbricks.NewMessageIDAt(s.in.opts.Now()).String(),
		from:    from,
		helo:    helo,
		spf:     spfRes,
		spfDom:  spfDom,
		started: s.in.opts.Now(),
	}
	if err := s.policy(&PolicyCheck{Stage: StageMail}); err != nil {
		s.tx = nil
		return err
	}
	return nil
}

// Rcpt implements smtp.Session: it validates the address, enforces
// MaxRecipients and maps the address to a local user.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.tx == nil {
		return reply(503, [3]int{5, 5, 1}, "MAIL first")
	}
	if to == "" || ValidateAddress(to) != nil {
		return replyBadAddress
	}
	if len(s.tx.rcpts) >= s.in.opts.MaxRecipients {
		return replyTooManyRcpts
	}
	var user mailbricks.UserID
	if f := s.in.opts.Recipient; f != nil {
		u, err := f(s.ctx, to)
		if err != nil {
			return toSMTP(err)
		}
		user = u
	} else {
		user = mailbricks.UserID(strings.ToLower(to))
	}
	if err := user.Validate(); err != nil {
		s.in.log.Warn("delivery: recipient hook returned an invalid user", "rcpt", to, "err", err)
		return replyPermFail
	}
	r := Recipient{Address: to, User: user}
	if err := s.policy(&PolicyCheck{Stage: StageRcpt, Rcpt: r, Recipients: append([]Recipient(nil), s.tx.rcpts...)}); err != nil {
		return err
	}
	s.tx.rcpts = append(s.tx.rcpts, r)
	return nil
}

// Data implements smtp.Session: the durable hand-off. It reads the data
// through the smuggling and header checks. If InlineMax is set, a
// message of at most InlineMax bytes is then verified (DKIM, only if it has a DKIM-Signature
// field; DMARC; the policy) and queued with its bytes in the job, one
// synced write. Any other message streams on into the blob store while a DKIM
// verifier reads a copy through a pipe; at the end of the data, before the
// blob is published, it runs DMARC and the policy; then it stores the blob
// and its link in one step (dedup.Store.PutLink), queues the job, and
// only then returns nil (250). A message the checks or the policy refuse
// is never stored or queued.
func (s *session) Data(r io.Reader) error {
	tx := s.tx
	if tx == nil || len(tx.rcpts) == 0 {
		return reply(503, [3]int{5, 5, 1}, "RCPT first")
	}
	o := &s.in.opts
	chk := s.newChecker(r)
	var prefix []byte
	if o.InlineMax > 0 {
		bp := s.in.bufs.Get().(*[]byte)
		defer s.in.bufs.Put(bp)
		if cap(*bp) < o.InlineMax+1 {
			*bp = make([]byte, o.InlineMax+1)
		}
		buf := (*bp)[:o.InlineMax+1]
		n, err := io.ReadFull(chk, buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if chk.eof && chk.err == nil && chk.srcErr == nil {
				return s.dataInline(tx, chk, buf[:n])
			}
			return s.dataError(tx, chk, err)
		case err != nil:
			return s.dataError(tx, chk, err)
		}
		prefix = buf[:n]
	}
	return s.dataStream(tx, chk, prefix)
}

// dataInline finishes a message read whole into body: it verifies it and
// queues it with its bytes in the job.
func (s *session) dataInline(tx *transaction, chk *dataChecker, body []byte) error {
	o := &s.in.opts
	var dkimRes []DKIMResult
	if chk.dkimSig {
		ctx, cancel := context.WithTimeout(s.ctx, o.DNSTimeout)
		dkimRes = verifyDKIM(ctx, o.Resolver, bytes.NewReader(body), o.MaxDKIMSignatures)
		cancel()
	}
	res, pc, err := s.decide(tx, chk, dkimRes)
	if err != nil {
		return err
	}
	return s.queueJob(tx, chk, res, pc, dedup.Ref{}, body)
}

// dataStream stores a message longer than InlineMax (prefix, then the
// rest of chk) in the blob store and queues a job that names it.
func (s *session) dataStream(tx *transaction, chk *dataChecker, prefix []byte) error {
	o := &s.in.opts
	dnsCtx, cancel := context.WithTimeout(s.ctx, o.DNSTimeout+o.ReadTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	dkimDone := make(chan []DKIMResult, 1)
	go func() { dkimDone <- verifyDKIM(dnsCtx, o.Resolver, pr, o.MaxDKIMSignatures) }()
	var (
		res     *AuthResults
		pc      *PolicyCheck
		decided bool
	)
	// decide runs once the data has been read whole and passed the
	// checks, before the blob is published.
	decide := func(chk *dataChecker) error {
		decided = true
		pw.Close()
		var err error
		res, pc, err = s.decide(tx, chk, <-dkimDone)
		return err
	}
	// The link keeps the body past the blob store's grace period until
	// Deliver has stored it; it is made with the blob, before the job
	// exists, so a job never names an unprotected blob.
	ref, refused, err := s.storeRaw(chk, prefix, func(c io.Reader) io.Reader { return io.TeeReader(c, pw) }, decide, blobOwner(tx.id))
	if !decided {
		perr := refused
		if perr == nil {
			perr = err
		}
		pw.CloseWithError(perr) // nil closes with io.EOF
		<-dkimDone
	}
	switch {
	case refused != nil:
		return refused
	case err != nil:
		return s.dataError(tx, chk, err)
	}
	return s.queueJob(tx, chk, res, pc, ref, nil)
}

// decide runs DMARC and the policy on a message read whole that passed
// the checks, with dkim the results of its signatures. An error refuses
// the message.
func (s *session) decide(tx *transaction, chk *dataChecker, dkim []DKIMResult) (*AuthResults, *PolicyCheck, error) {
	o := &s.in.opts
	res := &AuthResults{SPF: tx.spf, SPFDomain: tx.spfDom, DKIM: dkim}
	dmarcCtx, cancel := context.WithTimeout(s.ctx, o.DNSTimeout)
	checkDMARC(dmarcCtx, o.Resolver, chk.from, res, o.sample)
	cancel()
	pc := &PolicyCheck{Stage: StageData, Auth: res}
	switch res.Policy {
	case "reject":
		pc.Action = ActionReject
	case "quarantine":
		pc.Action = ActionJunk
	}
	if o.Policy != nil {
		if err := s.policy(pc); err != nil {
			return nil, nil, err
		}
	}
	if pc.Action == ActionReject {
		s.in.log.Info("delivery: rejected by DMARC", "tx", tx.id, "from", tx.from, "from_domain", res.FromDomain)
		return nil, nil, replyDMARCReject
	}
	return res, pc, nil
}

// queueJob queues the job of a message stored as ref (version 1), or, if
// ref is zero, carried as body (version 2).
func (s *session) queueJob(tx *transaction, chk *dataChecker, res *AuthResults, pc *PolicyCheck, ref dedup.Ref, body []byte) error {
	o := &s.in.opts
	now := o.Now()
	job := IncomingJob{
		Version:    1,
		ID:         tx.id,
		Blob:       ref,
		From:       tx.from,
		Recipients: tx.rcpts,
		ClientIP:   s.ip.String(),
		Helo:       tx.helo,
		TLS:        s.tls(),
		Auth:       *res,
		Junk:       pc.Action == ActionJunk,
		Received:   now,
	}
	if ref.IsZero() {
		job.Version = 2
		job.Body = body
	}
	for _, f := range chk.authRes {
		if claimsHost(f, o.Hostname) {
			job.Drop = append(job.Drop, [2]int64{f.start, f.end})
		}
	}
	job.Header = s.receivedField(tx, now) + authResultsHeader(o.Hostname, res, tx.from, tx.helo)
	payload, err := job.marshal()
	if err != nil {
		s.in.log.Error("delivery: encode job", "tx", tx.id, "err", err)
		if !ref.IsZero() {
			s.unlinkBody(tx, ref, blobOwner(tx.id))
		}
		return replyPermFail
	}
	if _, err := s.in.queue.Enqueue(s.ctx, o.Topic, payload, &queue.EnqueueOptions{Key: tx.id}); err != nil {
		// The link stays: the job may have been written although Enqueue
		// failed, and a job must never name an unlinked blob.
		s.in.log.Error("delivery: enqueue", "tx", tx.id, "err", err)
		return replyStorage
	}
	return nil
}

// unlinkBody removes owner's link to the body of tx after a failure that
// left no job, so GC can collect it.
func (s *session) unlinkBody(tx *transaction, ref dedup.Ref, owner string) {
	if err := s.in.blobs.Unlink(s.ctx, ref, owner); err != nil {
		s.in.log.Warn("delivery: unlink body", "tx", tx.id, "err", err)
	}
}

// storeData streams the data of tx from r through the smuggling and
// header checks, then wrap (if not nil), into the blob store. Once the
// data has ended and passed the checks, and before the blob is published,
// it calls decide (if not nil): an error from decide refuses the message
// (nothing is stored) and is returned as the reply. With owner "" the
// blob is stored with dedup.Store.Put, else with PutLink. It returns the
// stored ref and the checker (what it saw of the header), or the reply
// for a refused or failed transfer.
func (s *session) storeData(tx *transaction, r io.Reader, wrap func(io.Reader) io.Reader, decide func(*dataChecker) error, owner string) (dedup.Ref, *dataChecker, error) {
	chk := s.newChecker(r)
	ref, refused, err := s.storeRaw(chk, nil, wrap, decide, owner)
	switch {
	case refused != nil:
		return dedup.Ref{}, chk, refused
	case err != nil:
		return dedup.Ref{}, chk, s.dataError(tx, chk, err)
	}
	return ref, chk, nil
}

// newChecker returns the smuggling and header checker of the data in r,
// with the options' header bounds.
func (s *session) newChecker(r io.Reader) *dataChecker {
	o := &s.in.opts
	return newDataChecker(r, o.MaxHeaderLineBytes, o.MaxHeaderBytes, o.MaxHeaderFields)
}

// storeRaw is storeData without the replies, on a checker of which prefix
// was read already (the data is prefix, then the rest of chk): refused is
// decide's error; err is the blob store's, which the checker (chk.err,
// chk.srcErr) explains when the data broke a rule or its reader failed.
func (s *session) storeRaw(chk *dataChecker, prefix []byte, wrap func(io.Reader) io.Reader, decide func(*dataChecker) error, owner string) (ref dedup.Ref, refused, err error) {
	var src io.Reader = chk
	if len(prefix) > 0 {
		src = io.MultiReader(bytes.NewReader(prefix), chk)
	}
	if wrap != nil {
		src = wrap(src)
	}
	var hook *eofHook
	if decide != nil {
		hook = &eofHook{r: src, fn: func() error { return decide(chk) }}
		src = hook
	}
	if owner == "" {
		ref, err = s.in.blobs.Put(s.ctx, src)
	} else {
		ref, err = s.in.blobs.PutLink(s.ctx, src, owner)
	}
	if err == nil && (!chk.eof || chk.err != nil || chk.srcErr != nil) {
		err = errors.New("delivery: blob store returned before the end of the data")
	}
	if err != nil {
		if hook != nil && hook.err != nil {
			return dedup.Ref{}, hook.err, nil
		}
		return dedup.Ref{}, nil, err
	}
	return ref, nil, nil
}

// eofHook passes r through and, when r ends (io.EOF), calls fn once: if
// fn fails, the reader fails with fn's error instead of ending.
type eofHook struct {
	r   io.Reader
	fn  func() error
	ran bool
	err error
}

func (h *eofHook) Read(p []byte) (int, error) {
	if h.ran {
		if h.err != nil {
			return 0, h.err
		}
		return 0, io.EOF
	}
	n, err := h.r.Read(p)
	if err == io.EOF {
		h.ran = true
		h.err = h.fn()
		if h.err != nil {
			return n, h.err
		}
	}
	return n, err
}

// dataError maps a failed Put to the reply: a rule violation, a data
// transfer failure, or a storage failure.
func (s *session) dataError(tx *transaction, chk *dataChecker, err error) error {
	switch {
	case chk.err != nil:
		s.in.log.Info("delivery: message refused", "tx", tx.id, "ip", s.ip, "err", chk.err)
		switch {
		case errors.Is(chk.err, ErrNUL):
			return replyNUL
		case errors.Is(chk.err, ErrHeaderTooLarge):
			return replyHeaderLarge
		default:
			return replyBareEOL
		}
	case chk.srcErr == smtp.ErrDataTooLarge:
		return smtp.ErrDataTooLarge
	case chk.srcErr == smtp.ErrTooLongLine:
		return replyLineTooLong
	case chk.srcErr != nil:
		return replyUnexpectedEOF
	default:
		s.in.log.Error("delivery: store body", "tx", tx.id, "err", err)
		return replyStorage
	}
}

// receivedField formats the Received trace field (RFC 5321 section 4.4)
// with protocol ESMTP or, under TLS, ESMTPS; Submission adds its own
// protocol names and comment through traceField.
func (s *session) receivedField(tx *transaction, now time.Time) string {
	proto := "ESMTP"
	if s.tls() {
		proto = "ESMTPS"
	}
	return s.traceField(tx, now, proto, "")
}

// traceField formats a Received field with the given protocol (RFC 3848)
// and, when comment is not empty, a comment line after the from clause.
func (s *session) traceField(tx *transaction, now time.Time, proto, comment string) string {
	ip := s.ip.String()
	var b strings.Builder
	b.Grow(160 + len(tx.helo) + len(comment) + len(s.in.opts.Hostname) + len(tx.id))
	w := func(parts ...string) {
		for _, p := range parts {
			b.WriteString(p)
		}
	}
	w("Received:")
	sep := " "
	switch {
	case tx.helo != "":
		w(" from ", tx.helo, " ([", ip, "])")
		sep = "\r\n\t"
	case s.ip.IsValid(): // Submission.Submit: no SMTP client, maybe an IP
		w(" from [", ip, "]")
		sep = "\r\n\t"
	}
	if comment != "" {
		w(sep, "(", comment, ")")
		sep = "\r\n\t"
	}
	w(sep, "by ", s.in.opts.Hostname, " with ", proto, " id ", tx.id)
	if len(tx.rcpts) == 1 {
		w("\r\n\tfor <", tx.rcpts[0].Address, ">")
	}
	w(";\r\n\t", now.Format(time.RFC1123Z), "\r\n")
	return b.String()
}

func blobOwner(txID string) string { return "delivery/incoming/" + txID }
