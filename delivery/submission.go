package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/queue"
)

// DefaultOutgoingTopic is the default topic of SubmissionOptions.Topic.
const DefaultOutgoingTopic = "outgoing"

// Defaults of SubmissionOptions' AUTH limits.
const (
	DefaultAuthFailureDelay       = time.Second
	DefaultMaxAuthFailuresPerConn = 3
	DefaultAuthFailuresPerIP      = 30
)

// SubmissionOptions configures a Submission. A nil *SubmissionOptions is
// invalid (Authenticate is required); every other zero field means the
// default. NewSubmission copies the options.
type SubmissionOptions struct {
	// InboundOptions gives the host name, the size, recipient, rate and
	// connection limits, the timeouts, TLSConfig, the line and header
	// limits, Logger and Now, with the same defaults as for Inbound,
	// except Topic, whose default here is DefaultOutgoingTopic,
	// "outgoing". Recipient, Policy, Resolver, DNSTimeout and
	// MaxDKIMSignatures are not used: submission does no SPF, DKIM or
	// DMARC and takes any valid recipient address.
	InboundOptions
	// Authenticate checks a user name and password (from AUTH PLAIN or
	// LOGIN) and returns the local user they belong to. A wrong user name
	// or password is an error wrapping ErrAuthFailed (answered 535 5.7.8);
	// an *Error chooses the reply; a temporary error
	// (mailbricks.IsTemporary) is 454 4.7.0; any other error is 535 5.7.8.
	// It is required.
	Authenticate func(ctx context.Context, username, password string) (mailbricks.UserID, error)
	// SenderAllowed reports whether the authenticated user (user, who
	// logged in as username) may use from as the MAIL FROM address; a
	// false answer is 553 5.7.1. The default is nil: only the address
	// equal to the user name (ASCII case-insensitively) is allowed, and the
	// null reverse-path never is.
	SenderAllowed func(ctx context.Context, user mailbricks.UserID, username, from string) bool
	// AllowInsecureAuth offers and accepts AUTH without TLS on loopback
	// connections (127.0.0.0/8, ::1), for tests and local relays; other
	// connections still need STARTTLS or implicit TLS. The default is
	// false: AUTH only under TLS.
	AllowInsecureAuth bool
	// AuthFailureDelay is how long the answer to a failed AUTH (wrong
	// credentials) is held back, which slows guessing on one connection.
	// Negative means no delay. The default is DefaultAuthFailureDelay,
	// 1 second.
	AuthFailureDelay time.Duration
	// MaxAuthFailuresPerConn is how many failed AUTH attempts one
	// connection may make: the last one is answered 421 4.7.0 instead of
	// 535 5.7.8 and the connection is closed. Negative means no limit.
	// The default is DefaultMaxAuthFailuresPerConn, 3.
	MaxAuthFailuresPerConn int
	// AuthFailuresPerIP is how many failed AUTH attempts an hour one
	// client IP (IPv6: its /64, see InboundOptions.MaxConnsPerIP) may
	// make, a token bucket of that size. When it is spent, every AUTH from
	// that client is answered 454 4.7.0 without the credentials being
	// checked (a right password does not help) until a token is back,
	// after 1/AuthFailuresPerIP of an hour. Users behind one NAT share the
	// bucket. Negative means no limit. The default is
	// DefaultAuthFailuresPerIP, 30.
	AuthFailuresPerIP int
	// HideAuthUser leaves the authenticated user out of the Received
	// field Submission prepends. The default is false: the field names
	// the user ("(authenticated user alice)"), never the password.
	HideAuthUser bool
}

// ErrAuthFailed is what a [SubmissionOptions.Authenticate] hook returns
// (possibly wrapped) for a wrong user name or password; Submission answers
// 535 5.7.8.
var ErrAuthFailed = errors.New("delivery: authentication failed")

// Replies of Submission.
var (
	replyAuthRequired = reply(530, [3]int{5, 7, 0}, "Authentication required")
	replyAuthFailed   = reply(535, [3]int{5, 7, 8}, "Authentication credentials invalid")
	replyAuthTemp     = reply(454, [3]int{4, 7, 0}, "Temporary authentication failure")
	replyEncryptReq   = reply(538, [3]int{5, 7, 11}, "Encryption required for requested authentication mechanism")
	replyNotYourAddr  = reply(553, [3]int{5, 7, 1}, "Sender address not owned by the authenticated user")
	replyAuthIPLimit  = reply(454, [3]int{4, 7, 0}, "Too many failed authentication attempts from your address, try again later")
)

// Submission receives mail from authenticated local users (RFC 6409
// message submission): an smtp.Backend whose sessions require AUTH PLAIN or
// LOGIN under TLS, check that the envelope sender belongs to the user, add
// a Received field and, if missing, Message-ID and Date fields, append a
// copy to the user's Sent folder and queue one OutgoingJob per message
// (see the package doc). Failed AUTH attempts are slowed and limited per
// connection and per client (AuthFailureDelay, MaxAuthFailuresPerConn,
// AuthFailuresPerIP). It is safe for concurrent use.
type Submission struct {
	in       *Inbound // limits, defaults, blob store and queue
	mail     *mailbox.Store
	opts     SubmissionOptions
	authFail *rateLimiter // failed AUTH attempts per client
}

var _ smtp.Backend = (*Submission)(nil)

// NewSubmission returns a Submission that stores message bodies in blobs,
// appends Sent copies to mail and queues one job per message on q. It
// fails, wrapping ErrInvalidOptions, if blobs, q or mail is nil, opts or
// its Authenticate hook is nil, or the options are invalid.
func NewSubmission(blobs *dedup.Store, q *queue.Queue, mail *mailbox.Store, opts *SubmissionOptions) (*Submission, error) {
	if mail == nil {
		return nil, fmt.Errorf("%w: nil mailbox store", ErrInvalidOptions)
	}
	if opts == nil || opts.Authenticate == nil {
		return nil, fmt.Errorf("%w: no Authenticate hook", ErrInvalidOptions)
	}
	o := *opts
	if o.Topic == "" {
		o.Topic = DefaultOutgoingTopic
	}
	in, err := NewInbound(blobs, q, &o.InboundOptions)
	if err != nil {
		return nil, err
	}
	o.InboundOptions = in.opts
	setDefault(&o.AuthFailureDelay, DefaultAuthFailureDelay)
	setDefault(&o.MaxAuthFailuresPerConn, DefaultMaxAuthFailuresPerConn)
	setDefault(&o.AuthFailuresPerIP, DefaultAuthFailuresPerIP)
	return &Submission{
		in:       in,
		mail:     mail,
		opts:     o,
		authFail: newRateLimiterPer(o.AuthFailuresPerIP, time.Hour, o.Now),
	}, nil
}

// NewServer returns an smtp.Server configured from the options, as
// Inbound.NewServer does, with the Submission as its backend. Serve it on
// sub.Listener(l) so the per-IP connection limits apply; for implicit TLS
// (port 465) serve on tls.NewListener(sub.Listener(l), config), in that
// order: go-smtp recognizes TLS only on a *tls.Conn. Callers may set
// further fields before serving, but setting AllowInsecureAuth there
// would offer AUTH without TLS to every client: use
// SubmissionOptions.AllowInsecureAuth instead.
func (sub *Submission) NewServer() *smtp.Server {
	s := sub.in.NewServer()
	s.Backend = sub
	// go-smtp offers AUTH only under TLS unless this is set; the sessions
	// then refuse AUTH without TLS on all but loopback connections.
	s.AllowInsecureAuth = sub.opts.AllowInsecureAuth
	return s
}

// Listener wraps l so that connections over the per-IP limits
// (MaxConnsPerIP, ConnRatePerIP) are answered 421 4.7.0 and closed.
func (sub *Submission) Listener(l net.Listener) net.Listener { return sub.in.Listener(l) }

// NewSession implements smtp.Backend; go-smtp calls it at the first EHLO
// or HELO.
func (sub *Submission) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if err := ValidateHelo(c.Hostname()); err != nil {
		return nil, replyBadHelo
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &subSession{
		session: session{in: sub.in, conn: c, ctx: ctx, cancel: cancel, ip: addrIP(c.Conn().RemoteAddr())},
		sub:     sub,
	}, nil
}

// subSession is one submission connection's state. It reuses session for
// the connection fields, Reset, Logout and the data error replies.
type subSession struct {
	session
	sub          *Submission
	user         mailbricks.UserID // "" until AUTH succeeds
	username     string
	authFailures int // failed AUTH attempts on this connection
}

var _ smtp.AuthSession = (*subSession)(nil)

// authAllowed reports whether AUTH may run on this connection: under TLS,
// or on loopback when AllowInsecureAuth is set.
func (s *subSession) authAllowed() bool {
	return s.tls() || (s.sub.opts.AllowInsecureAuth && s.ip.IsLoopback())
}

// AuthMechanisms implements smtp.AuthSession: PLAIN and LOGIN, where
// AUTH is allowed.
func (s *subSession) AuthMechanisms() []string {
	if !s.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (s *subSession) Auth(mech string) (sasl.Server, error) {
	if !s.authAllowed() {
		return nil, replyEncryptReq
	}
	if !s.sub.authFail.available(s.ip) {
		s.in.log.Warn("delivery: AUTH refused, too many failures", "ip", s.ip)
		return nil, replyAuthIPLimit
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return s.authFailed(username) // no proxy authorization
			}
			return s.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{auth: s.authenticate}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *subSession) authenticate(username, password string) error {
	user, err := s.sub.opts.Authenticate(s.ctx, username, password)
	var e *Error
	switch {
	case err == nil:
	case errors.As(err, &e):
		return e.SMTP()
	case errors.Is(err, ErrAuthFailed):
		return s.authFailed(username)
	case mailbricks.IsTemporary(err):
		s.in.log.Warn("delivery: authenticate", "ip", s.ip, "err", err)
		return replyAuthTemp
	default:
		return s.authFailed(username)
	}
	if err := user.Validate(); err != nil {
		s.in.log.Warn("delivery: Authenticate returned an invalid user", "username", username, "err", err)
		return replyAuthFailed
	}
	s.user, s.username = user, username
	return nil
}

// authFailed counts a failed AUTH against the connection and the client,
// waits AuthFailureDelay, and returns the reply: 535 5.7.8, or, at the
// connection's MaxAuthFailuresPerConn-th failure, 421 4.7.0 written here
// before the connection is closed.
func (s *subSession) authFailed(username string) error {
	o := &s.sub.opts
	s.authFailures++
	s.sub.authFail.allow(s.ip) // spend a token; an empty bucket refuses later AUTHs
	s.in.log.Info("delivery: AUTH failed", "ip", s.ip, "username", username, "failures", s.authFailures)
	if d := o.AuthFailureDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
		}
	}
	if o.MaxAuthFailuresPerConn > 0 && s.authFailures >= o.MaxAuthFailuresPerConn {
		// go-smtp keeps a connection open after any reply, so the 421 is
		// written and the connection closed here; go-smtp's own write of
		// the returned error then fails, and its read loop ends.
		c := s.conn.Conn()
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "421 4.7.0 "+o.Hostname+" Too many failed authentication attempts, closing connection\r\n")
		_ = c.Close()
		return reply(421, [3]int{4, 7, 0}, "Too many failed authentication attempts")
	}
	return replyAuthFailed
}

// loginServer is the server side of the obsolete but widely used LOGIN
// mechanism (draft-murchison-sasl-login): the user name and the password,
// each after a prompt. go-sasl no longer ships one.
type loginServer struct {
	auth     func(username, password string) error
	username string
	step     int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough // initial response: the user name
	case 1:
		l.username = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		if err := l.auth(l.username, string(resp)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// Mail implements smtp.Session: it requires AUTH (530 5.7.0), validates the
// address, checks that it belongs to the user (553 5.7.1) and applies the
// message rate limit.
func (s *subSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return replyAuthRequired
	}
	if ValidateHelo(s.conn.Hostname()) != nil {
		return replyBadHelo
	}
	if from != "" && ValidateAddress(from) != nil {
		return replyBadAddress
	}
	if !s.senderAllowed(from) {
		return replyNotYourAddr
	}
	if !s.in.msgRate.allow(s.ip) {
		return replyMsgRate
	}
	now := s.in.opts.Now()
	s.tx = &transaction{id: mailbricks.NewMessageIDAt(now).String(), from: from, helo: s.conn.Hostname(), started: now}
	return nil
}

func (s *subSession) senderAllowed(from string) bool {
	if f := s.sub.opts.SenderAllowed; f != nil {
		return f(s.ctx, s.user, s.username, from)
	}
	return from != "" && strings.EqualFold(from, s.username)
}

// Rcpt implements smtp.Session: it validates the address and enforces
// MaxRecipients. Recipients need not be local.
func (s *subSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.tx == nil {
		return reply(503, [3]int{5, 5, 1}, "MAIL first")
	}
	if to == "" || ValidateAddress(to) != nil {
		return replyBadAddress
	}
	if len(s.tx.rcpts) >= s.in.opts.MaxRecipients {
		return replyTooManyRcpts
	}
	s.tx.rcpts = append(s.tx.rcpts, Recipient{Address: to})
	return nil
}

// Data implements smtp.Session: it streams the data through the smuggling
// and header checks into the blob store, which links the blob as it
// stores it (dedup.Store.PutLink), noting whether the header has
// Message-ID and Date fields; appends the Sent copy, queues the job, and
// only then returns nil (250).
func (s *subSession) Data(r io.Reader) error {
	tx := s.tx
	if tx == nil || len(tx.rcpts) == 0 {
		return reply(503, [3]int{5, 5, 1}, "RCPT first")
	}
	o := &s.in.opts
	var hs *headerScan
	// The body is stored and linked in one step (dedup.Store.PutLink),
	// before the job exists, so a job never names an unprotected blob.
	ref, _, err := s.storeData(tx, r, func(c io.Reader) io.Reader { hs = &headerScan{r: c}; return hs }, nil, outgoingBlobOwner(tx.id))
	if err != nil {
		return err
	}

	now := o.Now()
	if _, err := s.queueJob(tx, ref, hs, s.receivedField(tx, now), now); err != nil {
		var qe *queueError
		if errors.As(err, &qe) {
			s.in.log.Error("delivery: "+qe.step, "tx", tx.id, "user", s.user, "err", qe.err)
			if qe.permanent {
				return replyPermFail
			}
		}
		return replyStorage
	}
	return nil
}

// queueError is a failed step of queueJob.
type queueError struct {
	step      string
	err       error
	permanent bool // retrying cannot help
}

func (e *queueError) Error() string { return "delivery: " + e.step + ": " + e.err.Error() }
func (e *queueError) Unwrap() error { return e.err }

// queueJob is what a submission does once the body is stored and linked
// under outgoingBlobOwner(tx.id): it builds the job (with received, the
// trace field, and the Message-ID and Date fields the header lacked),
// appends the Sent copy, and enqueues the job keyed by the transaction.
// Before the job is queued a failure unlinks the body; a failed Enqueue
// leaves it linked (the job may exist).
func (s *subSession) queueJob(tx *transaction, ref dedup.Ref, hs *headerScan, received string, now time.Time) (*Submitted, error) {
	o := &s.in.opts
	job := OutgoingJob{
		Version:  1,
		ID:       tx.id,
		Blob:     ref,
		User:     s.user,
		From:     tx.from,
		ClientIP: s.ip.String(),
		Received: now,
	}
	if !s.ip.IsValid() {
		job.ClientIP = ""
	}
	for _, rc := range tx.rcpts {
		job.Recipients = append(job.Recipients, rc.Address)
	}
	var added string // fields the message lacked, also in the Sent copy
	if !hs.messageID {
		added += "Message-ID: <" + tx.id + "@" + o.Hostname + ">\r\n"
	}
	if !hs.date {
		added += "Date: " + now.Format(time.RFC1123Z) + "\r\n"
	}
	job.Header = received + added
	payload, err := json.Marshal(&job)
	if err != nil {
		s.unlinkBody(tx, ref, outgoingBlobOwner(tx.id))
		return nil, &queueError{step: "encode job", err: err, permanent: true}
	}
	sent, err := s.appendSent(&job, added)
	if err != nil {
		s.unlinkBody(tx, ref, outgoingBlobOwner(tx.id))
		return nil, &queueError{step: "append Sent copy", err: err}
	}
	if _, err := s.in.queue.Enqueue(s.ctx, o.Topic, payload, &queue.EnqueueOptions{Key: tx.id}); err != nil {
		return nil, &queueError{step: "enqueue", err: err}
	}
	return &Submitted{Job: job, Sent: sent}, nil
}

// Submitted is what [Submission.Submit] queued.
type Submitted struct {
	// Job is the outgoing job as it was queued (its ID keys it).
	Job OutgoingJob
	// Sent is the copy appended to the user's Sent folder.
	Sent mailbox.Message
}

// SubmitOptions are the optional parts of [Submission.Submit]. A nil
// *SubmitOptions means the defaults.
type SubmitOptions struct {
	// ClientIP is the address the user's request came from, for the job,
	// the Received field and the logs. The default is none.
	ClientIP netip.Addr
	// Protocol is the Received field's "with" protocol: one to 20
	// letters, digits or '-'. The default is "HTTP", as webmail
	// services write it.
	Protocol string
}

// Submit queues a message that user composed outside SMTP (an HTTP send
// endpoint, a webmail, a program), as an authenticated SMTP submission
// would: from must pass [SubmissionOptions].SenderAllowed (by default, be
// the user name itself, ignoring case), every recipient must be a valid
// address, at most MaxRecipients; body is the whole message with CRLF line
// endings, at most MaxMessageBytes, and passes DATA's checks (no bare CR or
// LF, no NUL, bounded header). The body is stored and linked in one step,
// a Received field (protocol [SubmitOptions].Protocol) and the Message-ID
// and Date fields it lacks are added, a copy goes to the user's Sent
// folder, seen, and one [OutgoingJob] is queued for [Outbound]. When
// Submit returns nil the job is durable.
//
// Errors: [ErrInvalidAddress], [ErrSenderNotAllowed],
// [ErrTooManyRecipients], [ErrMessageTooLarge], [ErrBareLineEnding],
// [ErrNUL], [ErrHeaderTooLarge], [ErrInvalidOptions], the body reader's
// error, or the storage's.
func (sub *Submission) Submit(ctx context.Context, user mailbricks.UserID, from string, rcpts []string, body io.Reader, opts *SubmitOptions) (*Submitted, error) {
	var o SubmitOptions
	if opts != nil {
		o = *opts
	}
	if o.Protocol == "" {
		o.Protocol = "HTTP"
	}
	if !validProtocol(o.Protocol) {
		return nil, fmt.Errorf("%w: Protocol %q", ErrInvalidOptions, o.Protocol)
	}
	if err := user.Validate(); err != nil {
		return nil, fmt.Errorf("delivery: submit: %w", err)
	}
	if from == "" || ValidateAddress(from) != nil {
		return nil, fmt.Errorf("%w: sender %q", ErrInvalidAddress, from)
	}
	s := &subSession{session: session{in: sub.in, ctx: ctx, ip: o.ClientIP.Unmap()}, sub: sub, user: user, username: string(user)}
	if !s.senderAllowed(from) {
		return nil, fmt.Errorf("%w: %q for %s", ErrSenderNotAllowed, from, user)
	}
	if len(rcpts) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrInvalidAddress)
	}
	if len(rcpts) > sub.in.opts.MaxRecipients {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyRecipients, len(rcpts), sub.in.opts.MaxRecipients)
	}
	now := sub.in.opts.Now()
	tx := &transaction{id: mailbricks.NewMessageIDAt(now).String(), from: from, started: now}
	for _, r := range rcpts {
		if r == "" || ValidateAddress(r) != nil {
			return nil, fmt.Errorf("%w: recipient %q", ErrInvalidAddress, r)
		}
		tx.rcpts = append(tx.rcpts, Recipient{Address: r})
	}
	in := &sub.in.opts
	lim := &sizeLimit{r: body, left: in.MaxMessageBytes}
	var hs *headerScan
	chk := s.newChecker(lim)
	ref, _, err := s.storeRaw(chk, nil, func(c io.Reader) io.Reader { hs = &headerScan{r: c}; return hs }, nil, outgoingBlobOwner(tx.id))
	if err != nil {
		switch {
		case chk.err != nil:
			return nil, fmt.Errorf("delivery: submit: %w", chk.err)
		case lim.over:
			return nil, fmt.Errorf("%w: more than %d bytes", ErrMessageTooLarge, in.MaxMessageBytes)
		case chk.srcErr != nil:
			return nil, fmt.Errorf("delivery: submit: reading the message: %w", chk.srcErr)
		}
		return nil, fmt.Errorf("delivery: submit: store the message: %w", err)
	}
	comment := ""
	if u := string(user); !sub.opts.HideAuthUser && commentSafe(u) {
		comment = "authenticated user " + u
	}
	now = sub.in.opts.Now()
	res, err := s.queueJob(tx, ref, hs, s.traceField(tx, now, o.Protocol, comment), now)
	if err != nil {
		return nil, fmt.Errorf("delivery: submit: %w", err)
	}
	return res, nil
}

// validProtocol reports whether p can be a Received field's protocol.
func validProtocol(p string) bool {
	if len(p) > 20 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return p != ""
}

// sizeLimit passes at most left bytes of r; past that it fails with
// ErrMessageTooLarge and sets over.
type sizeLimit struct {
	r    io.Reader
	left int64
	over bool
}

func (l *sizeLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.over = true
			return 0, ErrMessageTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// receivedField formats the Received trace field of a submission (RFC
// 5321 section 4.4), with protocol ESMTPSA or ESMTPA (RFC 3848) and,
// unless HideAuthUser, the authenticated user in a comment. The user
// name the client logged in with and its password never appear.
func (s *subSession) receivedField(tx *transaction, now time.Time) string {
	proto := "ESMTPA"
	if s.tls() {
		proto = "ESMTPSA"
	}
	comment := ""
	if u := string(s.user); !s.sub.opts.HideAuthUser && commentSafe(u) {
		comment = "authenticated user " + u
	}
	return s.traceField(tx, now, proto, comment)
}

// commentSafe reports whether s can go in a header comment as is: 1 to
// 200 printable ASCII characters without parentheses or backslashes.
func commentSafe(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '\\' {
			return false
		}
	}
	return true
}

// appendSent appends the message as the user wrote it, with the added
// Message-ID and Date fields but without the Received trace field, to
// the user's Sent folder, marked seen, keyed by the transaction.
func (s *subSession) appendSent(j *OutgoingJob, added string) (mailbox.Message, error) {
	rc, err := s.in.blobs.Open(s.ctx, j.Blob)
	if err != nil {
		return mailbox.Message{}, err
	}
	defer rc.Close()
	msg := io.MultiReader(strings.NewReader(added), rc)
	return s.sub.mail.Append(s.ctx, j.User, mailbox.RoleFolder(mailbox.RoleSent), msg, &mailbox.AppendOptions{
		Key:          sentKey(j.ID),
		Flags:        []string{mailbox.FlagSeen},
		InternalDate: j.Received,
	})
}

// sentKey is the mailbox idempotency key of a transaction's Sent copy.
func sentKey(txID string) string {
	k := "delivery/sent/" + txID
	if len(k) > mailbox.MaxKeyLen {
		k = k[:mailbox.MaxKeyLen]
	}
	return k
}

func outgoingBlobOwner(txID string) string { return "delivery/outgoing/" + txID }

// headerScan passes r through and notes whether the header section (up to
// the first empty line) has a Message-ID and a Date field. It keeps only
// the start of the current line.
type headerScan struct {
	r         io.Reader
	done      bool // past the header section
	line      []byte
	lineLen   int
	messageID bool
	date      bool
}

func (h *headerScan) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	for _, b := range p[:n] {
		if h.done {
			break
		}
		h.lineLen++
		if len(h.line) < 32 { // room for "Message-ID" and spaces before the colon
			h.line = append(h.line, b)
		}
		if b != '\n' {
			continue
		}
		if h.lineLen <= 2 { // CRLF (or LF, which the checker refuses)
			h.done = true
			break
		}
		name, _, ok := bytes.Cut(h.line, []byte(":"))
		if ok {
			switch strings.ToLower(strings.TrimRight(string(name), " \t")) {
			case "message-id":
				h.messageID = true
			case "date":
				h.date = true
			}
		}
		h.line, h.lineLen = h.line[:0], 0
	}
	return n, err
}

// OutgoingJob is the payload of a job on the outgoing topic: one submitted
// message, the contract with the outbound worker. It is encoded as JSON
// (version 1):
//
//	{"v":1, "id":"<transaction ID>", "blob":"<dedup.Ref>",
//	 "user":"<authenticated user>", "from":"<MAIL FROM>",
//	 "rcpt":["<RCPT TO>",…], "ip":"<client IP>",
//	 "received":"<RFC 3339>",
//	 "header":"Received: …\r\nMessage-ID: …\r\nDate: …\r\n"}
//
// The message to send is header followed by the blob's bytes. The blob
// holds exactly the bytes received and is linked by owner
// "delivery/outgoing/<ID>" (OutgoingBlobOwner); the outbound worker unlinks
// it when it is done with every recipient (delivered or bounced). The job's
// key is ID.
type OutgoingJob struct {
	// Version is the payload format, 1.
	Version int `json:"v"`
	// ID is the SMTP transaction ID, also the job's key.
	ID string `json:"id"`
	// Blob is the message as received, in the blob store.
	Blob dedup.Ref `json:"blob"`
	// User is the authenticated user who submitted the message.
	User mailbricks.UserID `json:"user"`
	// From is the MAIL FROM address, the bounce address.
	From string `json:"from"`
	// Recipients are the RCPT TO addresses, in order.
	Recipients []string `json:"rcpt"`
	// ClientIP is the submitting client's IP address.
	ClientIP string `json:"ip"`
	// Received is when the message was accepted.
	Received time.Time `json:"received"`
	// Header holds the fields to prepend, CRLF-terminated: a Received
	// trace field, then Message-ID and Date when the message had none.
	Header string `json:"header,omitempty"`
}

// OutgoingBlobOwner is the dedup owner under which the blob of the
// outgoing job with transaction ID txID is linked.
func OutgoingBlobOwner(txID string) string { return outgoingBlobOwner(txID) }

// ParseOutgoingJob decodes an outgoing job's payload. A payload that does
// not decode, or is of another version, wraps ErrInvalidJob.
func ParseOutgoingJob(payload []byte) (*OutgoingJob, error) {
	var j OutgoingJob
	if err := json.Unmarshal(payload, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	if j.Version != 1 || j.ID == "" || j.Blob.IsZero() || j.User == "" || len(j.Recipients) == 0 {
		return nil, fmt.Errorf("%w: version %d, id %q, user %q, %d recipients", ErrInvalidJob, j.Version, j.ID, j.User, len(j.Recipients))
	}
	return &j, nil
}
