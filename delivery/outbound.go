package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/reputation"
)

// StateStore holds the outbound worker's per-job delivery state: small
// versioned records with compare-and-set. Every reputation.Backend
// (lsmreputation on one machine, redisreputation shared by many) is a
// StateStore, so the state can live beside the reputation state; so is
// lsmqueue's Backend, which keeps the records in the queue's own DB (with
// its StateNoSync option, unsynced: see the package doc's Outbound
// section for what that costs).
//
// GetState returns the value and version of the record at key, or nil and
// version 0. SetState stores value if the record's version is version (0
// for none) and returns true; the new version is version+1; a nil value
// deletes. A SetState that returned true must survive a crash of the
// process; if it may be lost with the machine (not synced), the worker
// stays at least once, and such a loss costs duplicate deliveries (see
// the package doc). Implementations must be safe for concurrent use.
type StateStore interface {
	GetState(ctx context.Context, key string) (value []byte, version int64, err error)
	SetState(ctx context.Context, key string, value []byte, version int64) (ok bool, err error)
}

// Defaults of OutboundOptions.
const (
	DefaultDelayedDSNAfter = 4 * time.Hour
	DefaultExpire          = 5 * 24 * time.Hour
	DefaultConnsPerHost    = 10
	DefaultMaxPacingWait   = 2 * time.Second
	DefaultPostmaster      = "postmaster"
)

// DefaultRetry is the default retry schedule: the wait before each
// attempt after the first (which is immediate); the last wait repeats
// until OutboundOptions.Expire. In the spirit of Postfix and mox.
var DefaultRetry = []time.Duration{
	7*time.Minute + 30*time.Second, 15 * time.Minute, 30 * time.Minute, time.Hour,
	2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour,
}

// ErrStateConflict means the delivery state of a job was changed by
// another worker meanwhile (a stale lease): the attempt fails and the
// queue retries the job, which then sees the other worker's state.
var ErrStateConflict = errors.New("delivery: outbound state changed concurrently")

// OutboundOptions configures an Outbound. A nil *OutboundOptions and every
// zero field mean the default. NewOutbound copies the options.
type OutboundOptions struct {
	// Hostname is the EHLO name, the Reporting-MTA of DSNs and the
	// domain of their Message-IDs. The default is os.Hostname(), or
	// "localhost" if that fails.
	Hostname string
	// Topic is the outgoing topic: the one Outbound handles and the one it
	// enqueues per-domain jobs, retries and remote DSNs to. The default is
	// DefaultOutgoingTopic, "outgoing".
	Topic string
	// Mail is the local mailbox store: recipients at a local domain are
	// appended to it directly, and DSNs for local senders go to their
	// Inbox. The default is nil: no domain is local, and DSNs for local
	// senders are sent like remote ones.
	Mail *mailbox.Store
	// LocalDomain reports whether a domain (lower case) is ours: its
	// recipients take the same-domain shortcut into Mail, and a sender
	// there gets DSNs in Mail. The default is nil: none, whatever Mail.
	LocalDomain func(domain string) bool
	// LocalRecipient maps a local address to its user. It returns an error
	// wrapping ErrUnknownRecipient for an unknown address (the recipient
	// then fails with 5.1.1). The default is the address in lower case.
	LocalRecipient func(ctx context.Context, addr string) (mailbricks.UserID, error)
	// Reputation chooses each recipient's source IP and pace and learns
	// from every outcome; suppressed recipients are never attempted. The
	// default is nil: the system's source address, no pacing, no
	// suppression.
	Reputation *reputation.Tracker
	// Class gives a job's mail class for Reputation. The default is
	// reputation.ClassTransactional for every job.
	Class func(j *OutboundJob) reputation.Class
	// Resolver looks up MX hosts and their addresses. The default is
	// net.DefaultResolver.
	Resolver MXResolver
	// Port is the TCP port of MX hosts. The default is 25; tests set
	// another.
	Port int
	// TLSConfig is used for opportunistic STARTTLS (RFC 3207): when a
	// host offers STARTTLS the connection is upgraded; a failed handshake
	// makes the next connection to that host plain for TLSFallback. Its
	// ServerName is set per host. The default is a config that does not
	// verify certificates (opportunistic TLS per RFC 7435: encryption
	// against passive listeners; authenticating MX hosts needs MTA-STS or
	// DANE, which this worker does not do).
	TLSConfig *tls.Config
	// DisableTLS never uses STARTTLS. The default is false.
	DisableTLS bool
	// TLSFallback is how long a host whose TLS handshake failed is
	// spoken to in plain text. The default is 1 hour.
	TLSFallback time.Duration
	// DKIM are the signing keys; see DKIMKey for which apply. The default
	// is none: messages go unsigned.
	DKIM []DKIMKey
	// MaxHeaderBytes bounds the header section read for DKIM signing
	// and DSNs. The default is DefaultMaxHeaderBytes, 256 KiB.
	MaxHeaderBytes int
	// Retry is the retry schedule: Retry[i] is the wait after the
	// (i+1)th failed attempt, the last entry repeating. Each wait gets a
	// random jitter of ±Jitter of itself. The default is DefaultRetry.
	Retry []time.Duration
	// Jitter is the relative jitter of retry waits, from 0 to 1. The
	// default is 0.1; a negative value means none.
	Jitter float64
	// Expire is how long a message is retried after it was accepted;
	// then its remaining recipients fail with a DSN. The default is
	// DefaultExpire, 5 days.
	Expire time.Duration
	// DelayedDSNAfter is when, after acceptance, a sender whose message
	// still waits for some recipients gets one "delayed" DSN. The default
	// is DefaultDelayedDSNAfter, 4 hours; a negative value sends none.
	DelayedDSNAfter time.Duration
	// ConnsPerHost caps the connections open to one MX address. The
	// default is DefaultConnsPerHost, 10.
	ConnsPerHost int
	// Timeouts are the SMTP client's time limits. The default is those of
	// RFC 5321 section 4.5.3.2 (see Timeouts).
	Timeouts Timeouts
	// MaxPacingWait is the longest wait for Reputation's pacing that
	// Outbound sleeps through; a longer RetryAfter puts the recipients
	// back in the queue for that long (not counted as an attempt). The
	// default is DefaultMaxPacingWait, 2 seconds.
	MaxPacingWait time.Duration
	// BounceAddress, if set ("bounces@example.com"), replaces the
	// envelope sender of every message (except the null reverse-path) with
	// a tagged form of it, "bounces+<tag>@example.com", where the tag
	// names the message and domain, so that a Feedback handler on that
	// address maps a bounce back to the delivery state. The default is "":
	// the sender's own address.
	BounceAddress string
	// Postmaster is the user that remote DSN jobs are enqueued under
	// (OutboundJob.User); DSNs come From MAILER-DAEMON at Hostname. The
	// default is DefaultPostmaster, "postmaster".
	Postmaster mailbricks.UserID
	// Now is the clock for retry times, expiry and DSN dates. The default
	// is time.Now.
	Now func() time.Time
	// Rand returns a uniform random number in [0, n); it jitters retries
	// and shuffles MX hosts of equal preference. The default is
	// math/rand/v2's Int64N.
	Rand func(n int64) int64
	// Logger receives deliveries, failures and DSNs. The default is nil:
	// they are discarded.
	Logger *slog.Logger
}

// Outbound is the handler of the outgoing topic (a queue.Handler for a
// queue.Worker): it delivers each message to its recipients' MX hosts, or
// to local mailboxes, signs it, retries, and sends DSNs (see the package
// doc's Outbound section). It is safe for concurrent use. Close it to
// close its idle connections.
type Outbound struct {
	q     *queue.Queue
	blobs *dedup.Store
	state StateStore
	opts  OutboundOptions
	log   *slog.Logger
	pool  *connPool

	mu    sync.Mutex
	noTLS map[string]time.Time // host address → plain text until
}

var _ queue.Handler = (*Outbound)(nil)

// NewOutbound returns an Outbound that reads message bodies from blobs,
// keeps per-job delivery state in state and enqueues to q (per-domain jobs,
// retries, remote DSNs). It fails, wrapping ErrInvalidOptions, if q, blobs
// or state is nil or the options are invalid.
func NewOutbound(q *queue.Queue, blobs *dedup.Store, state StateStore, opts *OutboundOptions) (*Outbound, error) {
	if q == nil || blobs == nil || state == nil {
		return nil, fmt.Errorf("%w: nil queue, blob store or state store", ErrInvalidOptions)
	}
	var o OutboundOptions
	if opts != nil {
		o = *opts
	}
	if o.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		o.Hostname = h
	}
	if err := ValidateHelo(o.Hostname); err != nil {
		return nil, fmt.Errorf("%w: host name: %v", ErrInvalidOptions, err)
	}
	if o.Topic == "" {
		o.Topic = DefaultOutgoingTopic
	}
	if err := queue.ValidTopic(o.Topic); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOptions, err)
	}
	if o.LocalRecipient == nil {
		o.LocalRecipient = func(_ context.Context, addr string) (mailbricks.UserID, error) {
			return mailbricks.UserID(strings.ToLower(addr)), nil
		}
	}
	if o.Class == nil {
		o.Class = func(*OutboundJob) reputation.Class { return reputation.ClassTransactional }
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Port == 0 {
		o.Port = 25
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrInvalidOptions, o.Port)
	}
	if o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	if o.TLSFallback <= 0 {
		o.TLSFallback = time.Hour
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if len(o.Retry) == 0 {
		o.Retry = DefaultRetry
	}
	for _, d := range o.Retry {
		if d <= 0 {
			return nil, fmt.Errorf("%w: retry wait %v", ErrInvalidOptions, d)
		}
	}
	o.Retry = append([]time.Duration(nil), o.Retry...)
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.Jitter > 1 {
		return nil, fmt.Errorf("%w: jitter %v", ErrInvalidOptions, o.Jitter)
	}
	if o.Expire <= 0 {
		o.Expire = DefaultExpire
	}
	if o.DelayedDSNAfter == 0 {
		o.DelayedDSNAfter = DefaultDelayedDSNAfter
	}
	if o.ConnsPerHost <= 0 {
		o.ConnsPerHost = DefaultConnsPerHost
	}
	o.Timeouts = o.Timeouts.withDefaults()
	if o.MaxPacingWait <= 0 {
		o.MaxPacingWait = DefaultMaxPacingWait
	}
	if o.BounceAddress != "" {
		if err := ValidateAddress(o.BounceAddress); err != nil || !strings.Contains(o.BounceAddress, "@") {
			return nil, fmt.Errorf("%w: bounce address %q", ErrInvalidOptions, o.BounceAddress)
		}
	}
	if o.Postmaster == "" {
		o.Postmaster = DefaultPostmaster
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Int64N
	}
	for _, k := range o.DKIM {
		if k.Domain == "" || k.Selector == "" || k.Signer == nil {
			return nil, fmt.Errorf("%w: DKIM key needs Domain, Selector and Signer", ErrInvalidOptions)
		}
	}
	o.DKIM = append([]DKIMKey(nil), o.DKIM...)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbound{
		q: q, blobs: blobs, state: state, opts: o, log: log,
		pool:  newConnPool(o.ConnsPerHost, o.Timeouts.Idle),
		noTLS: map[string]time.Time{},
	}, nil
}

// Close closes the idle SMTP connections (with QUIT). The Outbound stays
// usable; it is safe to call more than once.
func (ob *Outbound) Close() error {
	ob.pool.close()
	return nil
}

// OutboundJob is the payload of a per-domain job on the outgoing topic:
// one message to the recipients of one domain, at one step of its
// delivery. Outbound enqueues these itself (splitting an OutgoingJob, for
// retries, and for remote DSNs); other producers enqueue OutgoingJob. It is
// encoded as JSON (version 1):
//
//	{"v":1, "kind":"outbound", "id":"<transaction ID>", "blob":"<dedup.Ref>",
//	 "owner":"<dedup owner of blob>", "user":"<user>", "from":"<MAIL FROM>",
//	 "rcpt":["…"], "domain":"<lower-case domain>", "received":"<RFC 3339>",
//	 "header":"<fields to prepend>", "seq":1}
//
// Seq is the step this job performs (1 for the first); steps are attempts,
// or waits for the pacing of Reputation.
type OutboundJob struct {
	// Version is the payload format, 1.
	Version int `json:"v"`
	// Kind is "outbound", which tells it from an OutgoingJob.
	Kind string `json:"kind"`
	// ID is the transaction ID of the message.
	ID string `json:"id"`
	// Blob is the message body; the message is Header followed by it.
	Blob dedup.Ref `json:"blob"`
	// Owner is the dedup owner linking Blob for this job; it is unlinked
	// when every recipient is done.
	Owner string `json:"owner"`
	// User is the local user who sent the message.
	User mailbricks.UserID `json:"user"`
	// From is the envelope sender; "" is the null reverse-path (DSNs).
	From string `json:"from"`
	// Recipients are the addresses, all at Domain.
	Recipients []string `json:"rcpt"`
	// Domain is the recipients' domain in lower case.
	Domain string `json:"domain"`
	// Received is when the message was accepted; expiry counts from it.
	Received time.Time `json:"received"`
	// Header holds fields to prepend, CRLF-terminated, or "".
	Header string `json:"header,omitempty"`
	// Seq is the step of delivery this job performs, from 1.
	Seq int `json:"seq"`
}

const outboundKind = "outbound"

// ParseOutboundJob decodes a per-domain job's payload. A payload that does
// not decode wraps ErrInvalidJob.
func ParseOutboundJob(payload []byte) (*OutboundJob, error) {
	var j OutboundJob
	if err := json.Unmarshal(payload, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	if j.Version != 1 || j.Kind != outboundKind || j.ID == "" || j.Blob.IsZero() || j.Owner == "" || len(j.Recipients) == 0 || j.Seq < 1 {
		return nil, fmt.Errorf("%w: outbound job version %d, kind %q, id %q, %d recipients, seq %d", ErrInvalidJob, j.Version, j.Kind, j.ID, len(j.Recipients), j.Seq)
	}
	return &j, nil
}

// stateTag is the name of a message's delivery to one domain: the key of
// its state record (after "delivery/out/"), its VERP tag and the base of
// its queue keys. 26 base32 characters of a SHA-256.
func stateTag(txID, domain string) string {
	h := sha256.Sum256([]byte(txID + "\x00" + domain))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:16]))
}

func stateKey(tag string) string { return "delivery/out/" + tag }

// outState is the durable per-job delivery state, JSON in the StateStore
// under stateKey:
//
//	{"v":1, "id":"…", "domain":"…", "from":"…", "user":"…",
//	 "created":"<RFC 3339>", "seq":<steps done>, "attempts":<attempts done>,
//	 "next":"<RFC 3339>", "delayed":bool, "done":bool,
//	 "rcpt":[{"addr":"…","st":"pending|sent|failed","ip":"…","host":"…",
//	          "code":550,"enh":[5,1,1],"msg":"…","at":"<RFC 3339>"}],
//	 "dsn":{"seq":<step>,"kind":"failed|delayed","rcpt":[<index>,…]}}
type outState struct {
	Version  int               `json:"v"`
	ID       string            `json:"id"`
	Domain   string            `json:"domain"`
	From     string            `json:"from"`
	User     mailbricks.UserID `json:"user"`
	Created  time.Time         `json:"created"`
	Seq      int               `json:"seq"`
	Attempts int               `json:"attempts"`
	Next     time.Time         `json:"next"`
	Delayed  bool              `json:"delayed,omitempty"`
	Done     bool              `json:"done,omitempty"`
	Rcpts    []rcptState       `json:"rcpt"`
	DSNs     []dsnRecord       `json:"dsn,omitempty"`
}

// Recipient states.
const (
	rcptPending = "pending"
	rcptSent    = "sent"
	rcptFailed  = "failed"
)

type rcptState struct {
	Addr     string    `json:"addr"`
	Status   string    `json:"st"`
	IP       string    `json:"ip,omitempty"`
	Host     string    `json:"host,omitempty"`
	Code     int       `json:"code,omitempty"`
	Enhanced [3]int    `json:"enh,omitzero"`
	Message  string    `json:"msg,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

func (r *rcptState) err() *Error {
	if r.Code == 0 {
		return nil
	}
	return &Error{Code: r.Code, Enhanced: r.Enhanced, Message: r.Message, Host: r.Host}
}

// dsnRecord is a DSN decided at step Seq; it is sent (idempotently) after
// the state of that step is saved.
type dsnRecord struct {
	Seq   int    `json:"seq"`
	Kind  string `json:"kind"`
	Rcpts []int  `json:"rcpt"`
}

// RecipientStatus is one recipient's delivery state as Status reports it.
type RecipientStatus struct {
	// Address is the recipient address.
	Address string
	// State is "pending", "sent" or "failed".
	State string
	// IP is the source IP of the last attempt, or "".
	IP string
	// Host is the MX host that gave Err, or "" (DNS, local, ours).
	Host string
	// Err is the last failure (the final one when State is "failed"), or
	// nil.
	Err *Error
	// At is the time of the last attempt.
	At time.Time
}

// Status returns the delivery state of the message with transaction ID
// txID to domain: one entry per recipient, and whether delivery is done.
// A message not yet handled has no state: Status returns nil and false.
func (ob *Outbound) Status(ctx context.Context, txID, domain string) ([]RecipientStatus, bool, error) {
	st, _, err := ob.load(ctx, stateTag(txID, strings.ToLower(domain)))
	if err != nil || st == nil {
		return nil, false, err
	}
	out := make([]RecipientStatus, len(st.Rcpts))
	for i, r := range st.Rcpts {
		out[i] = RecipientStatus{Address: r.Addr, State: r.Status, IP: r.IP, Host: r.Host, Err: r.err(), At: r.At}
	}
	return out, st.Done, nil
}

func (ob *Outbound) load(ctx context.Context, tag string) (*outState, int64, error) {
	return loadState(ctx, ob.state, tag)
}

func loadState(ctx context.Context, store StateStore, tag string) (*outState, int64, error) {
	v, ver, err := store.GetState(ctx, stateKey(tag))
	if err != nil {
		return nil, 0, fmt.Errorf("delivery: load state %s: %w", tag, err)
	}
	if v == nil {
		return nil, 0, nil
	}
	var st outState
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, 0, fmt.Errorf("delivery: decode state %s: %w", tag, err)
	}
	return &st, ver, nil
}

func (ob *Outbound) save(ctx context.Context, tag string, st *outState, ver int64) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ok, err := ob.state.SetState(ctx, stateKey(tag), v, ver)
	if err != nil {
		return fmt.Errorf("delivery: save state %s: %w", tag, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrStateConflict, tag)
	}
	return nil
}

// Handle implements queue.Handler. An OutgoingJob with recipients at
// several domains is split into one OutboundJob per domain (each linking
// the blob under its own owner, enqueued with an idempotency key), and
// then releases its own link; a one-domain OutgoingJob is handled as its
// OutboundJob directly. An OutboundJob performs one step of delivery (see
// the package doc). Delivery outcomes are not errors: an error means the
// step could not run or be recorded (blob or state store, queue), and the
// queue retries the job.
func (ob *Outbound) Handle(ctx context.Context, job queue.Job) error {
	var probe struct {
		Kind string `json:"kind"`
	}
	// A payload without the bytes "kind" between quotes has no kind
	// member (inside a JSON string a quote is escaped), so it is an
	// OutgoingJob, which ParseOutgoingJob checks: the probe's decode is
	// only needed for the others.
	if bytes.Contains(job.Payload, []byte(`"kind"`)) {
		if err := json.Unmarshal(job.Payload, &probe); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidJob, err)
		}
	}
	if probe.Kind == outboundKind {
		j, err := ParseOutboundJob(job.Payload)
		if err != nil {
			return err
		}
		return ob.step(ctx, j)
	}
	oj, err := ParseOutgoingJob(job.Payload)
	if err != nil {
		return err
	}
	return ob.split(ctx, oj)
}

// recipientDomain returns the lower-cased domain of addr, or "".
func recipientDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// split turns an OutgoingJob into per-domain jobs.
func (ob *Outbound) split(ctx context.Context, oj *OutgoingJob) error {
	var domains []string
	byDomain := map[string][]string{}
	for _, r := range oj.Recipients {
		d := recipientDomain(r)
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], r)
	}
	mk := func(d, owner string) *OutboundJob {
		return &OutboundJob{Version: 1, Kind: outboundKind, ID: oj.ID, Blob: oj.Blob, Owner: owner, User: oj.User,
			From: oj.From, Recipients: byDomain[d], Domain: d, Received: oj.Received, Header: oj.Header, Seq: 1}
	}
	orig := OutgoingBlobOwner(oj.ID)
	if len(domains) == 1 {
		return ob.step(ctx, mk(domains[0], orig))
	}
	for _, d := range domains {
		tag := stateTag(oj.ID, d)
		owner := orig + "/" + tag
		// A domain whose delivery has state was split off by an earlier
		// run: linking again could leave a link nobody removes.
		if st, _, err := ob.load(ctx, tag); err != nil {
			return err
		} else if st != nil {
			continue
		}
		if err := ob.blobs.Link(ctx, oj.Blob, owner); err != nil {
			if errors.Is(err, dedup.ErrNotFound) {
				// The original link is gone, so an earlier run finished
				// the split and released it.
				return nil
			}
			return fmt.Errorf("delivery: link body of %s for %s: %w", oj.ID, d, err)
		}
		if err := ob.enqueue(ctx, mk(d, owner), tag+"#1", time.Time{}); err != nil {
			return err
		}
	}
	if err := ob.blobs.Unlink(ctx, oj.Blob, orig); err != nil {
		return fmt.Errorf("delivery: unlink body of %s: %w", oj.ID, err)
	}
	return nil
}

func (ob *Outbound) enqueue(ctx context.Context, j *OutboundJob, key string, notBefore time.Time) error {
	payload, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if _, err := ob.q.Enqueue(ctx, ob.opts.Topic, payload, &queue.EnqueueOptions{Key: "delivery/out/" + key, NotBefore: notBefore}); err != nil {
		return fmt.Errorf("delivery: enqueue %s: %w", key, err)
	}
	return nil
}

// step performs step j.Seq of a per-domain delivery:
//
//  1. Load the state (create it on the first step). If it records step
//     j.Seq as done, an earlier run of this job died after saving it: only
//     the effects that follow a save are redone (step 4).
//  2. Attempt the pending recipients (local mailbox, or SMTP to the MX
//     hosts from the IP Reputation chose), record every outcome with
//     Reputation, decide failure and delayed DSNs and the next step's time.
//  3. Save the state, compare-and-set on its version: a worker holding a
//     stale lease cannot overwrite a newer step.
//  4. Send this step's DSNs (idempotent: queue key or mailbox key derived
//     from the step), then enqueue the next step (idempotent key
//     "<tag>#<seq>") or, when every recipient is done, unlink the body.
//
// A recipient the remote server accepted is marked sent in step 3. A crash
// between the server's 250 and the save resends to that recipient on the
// next run: the only window for a duplicate.
func (ob *Outbound) step(ctx context.Context, j *OutboundJob) error {
	tag := stateTag(j.ID, j.Domain)
	st, ver, err := ob.load(ctx, tag)
	if err != nil {
		return err
	}
	if st == nil {
		st = &outState{Version: 1, ID: j.ID, Domain: j.Domain, From: j.From, User: j.User, Created: j.Received}
		if st.Created.IsZero() {
			st.Created = ob.opts.Now()
		}
		for _, r := range j.Recipients {
			st.Rcpts = append(st.Rcpts, rcptState{Addr: r, Status: rcptPending})
		}
	}
	if j.Seq <= st.Seq {
		return ob.finish(ctx, j, tag, st)
	}
	now := ob.opts.Now()
	var pending []int
	for i, r := range st.Rcpts {
		if r.Status == rcptPending {
			pending = append(pending, i)
		}
	}
	attempted, hold, err := ob.attempt(ctx, j, tag, st, pending, now)
	if err != nil {
		return err
	}
	var failedNow, stillPending []int
	expired := !now.Before(st.Created.Add(ob.opts.Expire))
	for _, i := range pending {
		r := &st.Rcpts[i]
		if r.Status == rcptPending && expired {
			r.Status = rcptFailed
			if r.Code == 0 {
				r.Code, r.Message = 451, "no attempt was possible"
			}
			r.Enhanced = [3]int{4, 4, 7}
			r.Message = "Delivery time expired; last error: " + r.Message
		}
		switch r.Status {
		case rcptFailed:
			failedNow = append(failedNow, i)
		case rcptPending:
			stillPending = append(stillPending, i)
		}
	}
	st.Seq = j.Seq
	if attempted {
		st.Attempts++
	}
	st.DSNs = st.DSNs[:0]
	if j.From != "" && len(failedNow) > 0 {
		st.DSNs = append(st.DSNs, dsnRecord{Seq: j.Seq, Kind: "failed", Rcpts: failedNow})
	}
	if len(stillPending) == 0 {
		st.Done = true
	} else {
		var wait time.Duration
		if attempted {
			wait = ob.retryWait(st.Attempts)
		}
		if hold > 0 && (wait == 0 || hold < wait) {
			wait = hold
		}
		st.Next = now.Add(wait)
		if deadline := st.Created.Add(ob.opts.Expire); st.Next.After(deadline) {
			st.Next = deadline
		}
		if j.From != "" && !st.Delayed && ob.opts.DelayedDSNAfter > 0 && !now.Before(st.Created.Add(ob.opts.DelayedDSNAfter)) {
			st.Delayed = true
			st.DSNs = append(st.DSNs, dsnRecord{Seq: j.Seq, Kind: "delayed", Rcpts: stillPending})
		}
	}
	if err := ob.save(ctx, tag, st, ver); err != nil {
		return err
	}
	return ob.finish(ctx, j, tag, st)
}

// retryWait is the wait after attempt n (1 for the first), jittered.
func (ob *Outbound) retryWait(n int) time.Duration {
	i := n - 1
	if i < 0 {
		i = 0
	}
	if i >= len(ob.opts.Retry) {
		i = len(ob.opts.Retry) - 1
	}
	d := ob.opts.Retry[i]
	if j := int64(float64(d) * ob.opts.Jitter); j > 0 {
		d += time.Duration(ob.opts.Rand(2*j+1) - j)
	}
	return d
}

// finish does what follows the save of step st.Seq: its DSNs, then the
// next step's job or the release of the body.
func (ob *Outbound) finish(ctx context.Context, j *OutboundJob, tag string, st *outState) error {
	for _, d := range st.DSNs {
		if d.Seq == st.Seq {
			if err := ob.sendDSN(ctx, j, tag, st, d); err != nil {
				return err
			}
		}
	}
	if st.Done {
		if err := ob.blobs.Unlink(ctx, j.Blob, j.Owner); err != nil {
			return fmt.Errorf("delivery: unlink body of %s: %w", j.ID, err)
		}
		return nil
	}
	next := *j
	next.Seq = st.Seq + 1
	next.Recipients = nil
	for _, r := range st.Rcpts {
		next.Recipients = append(next.Recipients, r.Addr)
	}
	return ob.enqueue(ctx, &next, tag+"#"+strconv.Itoa(next.Seq), st.Next)
}

// attempt tries the pending recipients once. It reports whether any
// delivery was attempted (as opposed to every recipient being held back by
// Reputation's pacing) and the longest hold.
func (ob *Outbound) attempt(ctx context.Context, j *OutboundJob, tag string, st *outState, pending []int, now time.Time) (bool, time.Duration, error) {
	if len(pending) == 0 {
		return false, 0, nil
	}
	if j.Domain == "" {
		for _, i := range pending {
			ob.fail(&st.Rcpts[i], "", "", &Error{Code: 553, Enhanced: [3]int{5, 1, 3}, Message: "Bad recipient address syntax"}, now)
		}
		return true, 0, nil
	}
	if ob.opts.Mail != nil && ob.opts.LocalDomain != nil && ob.opts.LocalDomain(j.Domain) {
		return true, 0, ob.deliverLocal(ctx, j, tag, st, pending, now)
	}
	// Ask Reputation for each recipient's IP; group by IP.
	byIP := map[string][]int{}
	var ips []string
	var hold time.Duration
	held := 0
	for _, i := range pending {
		r := &st.Rcpts[i]
		ip, wait, ferr, err := ob.decide(ctx, j, r.Addr)
		if err != nil {
			return false, 0, err
		}
		if ferr != nil {
			ob.fail(r, "", "", ferr, now)
			continue
		}
		if wait > 0 {
			held++
			hold = max(hold, wait)
			continue
		}
		if _, ok := byIP[ip]; !ok {
			ips = append(ips, ip)
		}
		byIP[ip] = append(byIP[ip], i)
	}
	if len(ips) == 0 {
		return held == 0, hold, nil
	}
	signed, err := ob.sign(ctx, j)
	if err != nil {
		if errors.Is(err, dedup.ErrNotFound) {
			return false, 0, fmt.Errorf("delivery: body of %s is gone: %w", j.ID, err)
		}
		return false, 0, err
	}
	for _, ip := range ips {
		idx := byIP[ip]
		addrs := make([]string, len(idx))
		for k, i := range idx {
			addrs[k] = st.Rcpts[i].Addr
		}
		res, hosts, err := ob.deliverRemote(ctx, j, tag, ip, addrs, signed)
		if err != nil {
			return false, 0, err
		}
		for k, i := range idx {
			r := &st.Rcpts[i]
			e := res[k]
			r.IP, r.Host, r.At = ip, hosts[k], now
			if e == nil {
				r.Status, r.Code, r.Enhanced, r.Message = rcptSent, 250, [3]int{2, 0, 0}, "OK"
				ob.record(ctx, ip, r.Addr, reputation.KindDelivered, 250, "2.0.0", "")
				continue
			}
			r.Code, r.Enhanced, r.Message = e.Code, e.Enhanced, e.Message
			c := reputation.Classify(e.Code, enhString(e.Enhanced), e.Message)
			if !e.Temporary() {
				r.Status = rcptFailed
			}
			if hosts[k] != "" || !e.Temporary() {
				ob.record(ctx, ip, r.Addr, c.Kind, e.Code, enhString(e.Enhanced), e.Message)
			}
		}
		ob.log.Info("delivery: attempt", "tx", j.ID, "domain", j.Domain, "ip", ip, "rcpts", len(idx))
	}
	return true, hold, nil
}

func enhString(e [3]int) string { return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]) }

func (ob *Outbound) fail(r *rcptState, ip, host string, e *Error, now time.Time) {
	r.Status, r.IP, r.Host, r.At = rcptFailed, ip, host, now
	r.Code, r.Enhanced, r.Message = e.Code, e.Enhanced, e.Message
}

func (ob *Outbound) record(ctx context.Context, ip, addr string, kind reputation.Kind, code int, enh, text string) {
	t := ob.opts.Reputation
	if t == nil || !kind.Valid() {
		return
	}
	if err := t.Record(ctx, reputation.Outcome{IP: ip, Recipient: addr, Kind: kind, Code: code, Enhanced: enh, Text: text, At: ob.opts.Now()}); err != nil {
		ob.log.Warn("delivery: record outcome", "rcpt", addr, "err", err)
	}
}

// decide asks Reputation for the source IP of addr. It returns the IP, a
// wait (held back for longer than MaxPacingWait), a final failure
// (suppressed, bad address), or an infrastructure error.
func (ob *Outbound) decide(ctx context.Context, j *OutboundJob, addr string) (string, time.Duration, *Error, error) {
	t := ob.opts.Reputation
	if t == nil {
		return "", 0, nil, nil
	}
	for {
		d, err := t.Decide(ctx, reputation.Send{From: j.From, To: addr, Class: ob.opts.Class(j), Size: j.Blob.Size + int64(len(j.Header))})
		if errors.Is(err, reputation.ErrInvalidAddress) {
			return "", 0, &Error{Code: 553, Enhanced: [3]int{5, 1, 3}, Message: "Bad recipient address syntax"}, nil
		}
		if err != nil {
			return "", 0, nil, fmt.Errorf("delivery: reputation decide %s: %w", addr, err)
		}
		if d.Allow {
			return d.IP, 0, nil, nil
		}
		if d.RetryAfter == 0 {
			return "", 0, &Error{Code: 550, Enhanced: [3]int{5, 7, 1}, Message: "Recipient suppressed (" + oneLine(d.Reason) + ")"}, nil
		}
		if d.RetryAfter > ob.opts.MaxPacingWait {
			return "", d.RetryAfter, nil, nil
		}
		tm := time.NewTimer(d.RetryAfter)
		select {
		case <-ctx.Done():
			tm.Stop()
			return "", 0, nil, ctx.Err()
		case <-tm.C:
		}
	}
}

// signed is a message ready to send: the header fields to prepend
// (DKIM-Signature fields, then the job's Header) before the blob, and the
// blob itself when signing read a small one into memory (body != nil).
type signed struct {
	prefix string
	size   int64
	body   []byte
}

// maxMemoryBody is the largest blob that signing reads into memory once,
// to hash it and then send it, instead of reading it from the blob store
// twice; larger ones are streamed both times.
const maxMemoryBody = 256 << 10

// openSigned opens the message of s for sending: its prefix, then the
// body from memory or from the blob store.
func (ob *Outbound) openSigned(ctx context.Context, j *OutboundJob, s *signed) (io.ReadCloser, error) {
	if s.body == nil {
		return ob.open(ctx, j, s.prefix)
	}
	return io.NopCloser(io.MultiReader(strings.NewReader(s.prefix), bytes.NewReader(s.body))), nil
}

func (ob *Outbound) open(ctx context.Context, j *OutboundJob, prefix string) (io.ReadCloser, error) {
	rc, err := ob.blobs.Open(ctx, j.Blob)
	if err != nil {
		return nil, err
	}
	// The blob's size is known: reading no further than it spares the
	// read(2) that would only return end of file.
	var body io.Reader = rc
	if j.Blob.Size > 0 {
		body = io.LimitReader(rc, j.Blob.Size)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(strings.NewReader(prefix), body), rc}, nil
}

func (ob *Outbound) sign(ctx context.Context, j *OutboundJob) (*signed, error) {
	s := &signed{prefix: j.Header, size: j.Blob.Size + int64(len(j.Header))}
	if len(ob.opts.DKIM) == 0 {
		return s, nil
	}
	var msg io.Reader
	if j.Blob.Size <= maxMemoryBody {
		rc, err := ob.blobs.Open(ctx, j.Blob)
		if err != nil {
			return nil, err
		}
		body := make([]byte, j.Blob.Size+1)
		n, err := io.ReadFull(rc, body)
		rc.Close()
		if err != io.ErrUnexpectedEOF || int64(n) != j.Blob.Size {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("delivery: body of %s is not %d bytes long", j.ID, j.Blob.Size)
			}
			return nil, fmt.Errorf("delivery: read body of %s: %w", j.ID, err)
		}
		s.body = body[:n]
		msg = io.MultiReader(strings.NewReader(j.Header), bytes.NewReader(s.body))
	} else {
		rc, err := ob.open(ctx, j, j.Header)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		msg = rc
	}
	sigs, err := signDKIM(ob.opts.DKIM, newNormReader(msg, s.size), ob.opts.MaxHeaderBytes)
	if err != nil {
		return nil, err
	}
	s.prefix = sigs + j.Header
	s.size += int64(len(sigs))
	return s, nil
}

// envelopeFrom is the MAIL FROM of a job: the tagged bounce address, the
// sender, or "" for the null reverse-path.
func (ob *Outbound) envelopeFrom(j *OutboundJob, tag string) string {
	if j.From == "" || ob.opts.BounceAddress == "" {
		return j.From
	}
	return verpAddress(ob.opts.BounceAddress, tag)
}

// verpAddress returns bounce address "local@domain" tagged as
// "local+tag@domain".
func verpAddress(bounce, tag string) string {
	i := strings.LastIndexByte(bounce, '@')
	return bounce[:i] + "+" + tag + bounce[i:]
}

// deliverRemote sends the message to addrs (all at j.Domain) from ip,
// going down the MX list. It returns one result per address (nil:
// accepted) and the host that gave it.
func (ob *Outbound) deliverRemote(ctx context.Context, j *OutboundJob, tag, ip string, addrs []string, s *signed) ([]*Error, []string, error) {
	res := make([]*Error, len(addrs))
	hostOf := make([]string, len(addrs))
	shuffle := func(h []string) {
		for i := len(h) - 1; i > 0; i-- {
			k := int(ob.opts.Rand(int64(i + 1)))
			h[i], h[k] = h[k], h[i]
		}
	}
	hosts, derr := mxHosts(ctx, ob.opts.Resolver, j.Domain, shuffle)
	if derr != nil {
		for i := range res {
			res[i] = derr
		}
		return res, hostOf, nil
	}
	todo := make([]int, len(addrs))
	for i := range todo {
		todo[i] = i
		res[i] = errNoMXHost
	}
	from := ob.envelopeFrom(j, tag)
	for _, h := range hosts {
		if len(todo) == 0 {
			break
		}
		ipsOf, err := hostAddrs(ctx, ob.opts.Resolver, h, ip)
		if err != nil || len(ipsOf) == 0 {
			for _, i := range todo {
				res[i] = &Error{Code: 451, Enhanced: [3]int{4, 4, 3}, Message: "No address for MX host " + h}
			}
			continue
		}
		for _, a := range ipsOf {
			if len(todo) == 0 {
				break
			}
			rcpts := make([]string, len(todo))
			for k, i := range todo {
				rcpts[k] = addrs[i]
			}
			out, err := ob.transact(ctx, j, h, net.JoinHostPort(a.String(), strconv.Itoa(ob.opts.Port)), ip, from, rcpts, s)
			var he *hostError
			if errors.As(err, &he) {
				// The whole transaction failed at this host: a permanent
				// refusal of the message (MAIL 5xx, DATA 5xx) is final;
				// else, and for a host that refused the session, next
				// address or host.
				for _, i := range todo {
					res[i], hostOf[i] = he.e, h
				}
				if !he.e.Temporary() && !he.session {
					todo = nil
				}
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			// Per-recipient replies from this host are final for this
			// attempt (a 4xx RCPT is retried later, not at the next MX).
			for k, i := range todo {
				res[i], hostOf[i] = out[k], h
			}
			todo = nil
		}
	}
	return res, hostOf, nil
}

// transact runs one transaction at one MX address, reusing an idle
// connection when there is one.
func (ob *Outbound) transact(ctx context.Context, j *OutboundJob, host, addr, ip, from string, rcpts []string, s *signed) ([]*Error, error) {
	for try := 0; ; try++ {
		c, err := ob.pool.get(ctx, addr, ip)
		if err != nil {
			return nil, err
		}
		reused := c != nil
		if c == nil {
			c, err = ob.dial(ctx, host, addr, ip)
			if err != nil {
				ob.pool.release(addr)
				return nil, err
			}
		}
		body, err := ob.openSigned(ctx, j, s)
		if err != nil {
			ob.pool.put(c, ip)
			return nil, err
		}
		out, err := c.send(ctx, from, rcpts, body, s.size)
		body.Close()
		var he *hostError
		if errors.As(err, &he) && he.e.Enhanced == [3]int{4, 4, 2} {
			ob.pool.drop(c)
			if reused && try == 0 {
				continue // the server closed the idle connection: redial once
			}
			return nil, err
		}
		if err != nil && !errors.As(err, &he) {
			ob.pool.drop(c)
			return nil, err
		}
		ob.pool.put(c, ip)
		return out, err
	}
}

// dial connects to an MX address, with STARTTLS unless the host recently
// failed the TLS handshake (then plain text, once more at once).
func (ob *Outbound) dial(ctx context.Context, host, addr, ip string) (*smtpConn, error) {
	tlsConf := ob.opts.TLSConfig
	if ob.opts.DisableTLS {
		tlsConf = nil
	}
	ob.mu.Lock()
	if until, ok := ob.noTLS[addr]; ok {
		if time.Now().Before(until) {
			tlsConf = nil
		} else {
			delete(ob.noTLS, addr)
		}
	}
	ob.mu.Unlock()
	c, err := dialSMTP(ctx, host, addr, ip, ob.opts.Hostname, tlsConf, ob.opts.Timeouts)
	var he *hostError
	if errors.As(err, &he) && he.tlsFail {
		ob.log.Warn("delivery: TLS handshake failed; plain text", "host", host, "addr", addr, "err", err)
		ob.mu.Lock()
		ob.noTLS[addr] = time.Now().Add(ob.opts.TLSFallback)
		ob.mu.Unlock()
		c, err = dialSMTP(ctx, host, addr, ip, ob.opts.Hostname, nil, ob.opts.Timeouts)
	}
	return c, err
}

// localKey is the mailbox idempotency key of a local delivery.
func localKey(tag string) string { return "delivery/out/" + tag }

// deliverLocal appends the message to the local recipients' Inbox (the
// same-domain shortcut).
func (ob *Outbound) deliverLocal(ctx context.Context, j *OutboundJob, tag string, st *outState, pending []int, now time.Time) error {
	for _, i := range pending {
		r := &st.Rcpts[i]
		user, err := ob.opts.LocalRecipient(ctx, r.Addr)
		if err != nil {
			var e *Error
			switch {
			case errors.As(err, &e) && !e.Temporary():
				ob.fail(r, "", "", e, now)
			case errors.Is(err, ErrUnknownRecipient):
				ob.fail(r, "", "", &Error{Code: 550, Enhanced: [3]int{5, 1, 1}, Message: "No such user here"}, now)
			default:
				return fmt.Errorf("delivery: local recipient %s: %w", r.Addr, err)
			}
			continue
		}
		msg, err := ob.open(ctx, j, j.Header)
		if err != nil {
			return err
		}
		_, err = ob.opts.Mail.Append(ctx, user, mailbox.Inbox, msg, &mailbox.AppendOptions{Key: localKey(tag), InternalDate: j.Received})
		msg.Close()
		if err != nil {
			return fmt.Errorf("delivery: local append %s for %s: %w", j.ID, user, err)
		}
		r.Status, r.At, r.Code, r.Enhanced, r.Message = rcptSent, now, 250, [3]int{2, 0, 0}, "Delivered locally"
	}
	return nil
}

// sendDSN sends the DSN d of step st.Seq to the sender: into its Inbox
// when the sender is local, else as an OutboundJob with the null
// reverse-path. Both are idempotent (mailbox key, queue key).
func (ob *Outbound) sendDSN(ctx context.Context, j *OutboundJob, tag string, st *outState, d dsnRecord) error {
	if st.From == "" {
		return nil // never a DSN for a DSN
	}
	rc, err := ob.open(ctx, j, j.Header)
	if errors.Is(err, dedup.ErrNotFound) {
		ob.log.Warn("delivery: body gone, DSN already sent", "tx", j.ID)
		return nil
	}
	if err != nil {
		return err
	}
	hdr, err := readHeaderSection(rc, ob.opts.MaxHeaderBytes)
	rc.Close()
	if err != nil {
		return fmt.Errorf("delivery: read header of %s: %w", j.ID, err)
	}
	// The DSN's bytes depend only on the saved state, so a rerun of this
	// step stores the same blob.
	date := st.Created
	for _, i := range d.Rcpts {
		if st.Rcpts[i].At.After(date) {
			date = st.Rcpts[i].At
		}
	}
	dsn := &DSN{
		ReportingMTA: ob.opts.Hostname, From: "MAILER-DAEMON@" + ob.opts.Hostname, To: st.From,
		Date: date, ID: tag + "/" + d.Kind + "/" + strconv.Itoa(d.Seq),
		ArrivalDate: st.Created, Header: hdr,
	}
	for _, i := range d.Rcpts {
		r := st.Rcpts[i]
		dr := DSNRecipient{Address: r.Addr, Action: d.Kind, RemoteMTA: r.Host, LastAttempt: r.At}
		e := r.err()
		if e == nil {
			e = &Error{Code: 451, Enhanced: [3]int{4, 0, 0}, Message: "Not yet delivered"}
		}
		dr.Status = e.Enhanced
		dr.Diagnostic = statusDiagnostic(e)
		if d.Kind == "delayed" {
			dr.WillRetryUntil = st.Created.Add(ob.opts.Expire)
		}
		dsn.Recipients = append(dsn.Recipients, dr)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteDSN(pw, dsn)) }()
	senderDomain := recipientDomain(st.From)
	key := "delivery/dsn/" + tag + "/" + strconv.Itoa(d.Seq) + "/" + d.Kind
	if ob.opts.Mail != nil && ob.opts.LocalDomain != nil && ob.opts.LocalDomain(senderDomain) {
		user, err := ob.opts.LocalRecipient(ctx, st.From)
		if err != nil {
			pr.Close()
			ob.log.Warn("delivery: DSN to unknown local sender dropped", "tx", j.ID, "from", st.From, "err", err)
			return nil
		}
		_, err = ob.opts.Mail.Append(ctx, user, mailbox.Inbox, pr, &mailbox.AppendOptions{Key: key})
		pr.Close()
		if err != nil {
			return fmt.Errorf("delivery: append DSN for %s: %w", user, err)
		}
		ob.log.Info("delivery: DSN to local sender", "tx", j.ID, "kind", d.Kind, "to", st.From)
		return nil
	}
	ref, err := ob.blobs.Put(ctx, pr)
	pr.Close()
	if err != nil {
		return fmt.Errorf("delivery: store DSN: %w", err)
	}
	dsnID := "dsn-" + tag + "-" + strconv.Itoa(d.Seq) + "-" + d.Kind
	owner := OutgoingBlobOwner(dsnID)
	if err := ob.blobs.Link(ctx, ref, owner); err != nil {
		return fmt.Errorf("delivery: link DSN: %w", err)
	}
	dj := &OutboundJob{Version: 1, Kind: outboundKind, ID: dsnID, Blob: ref, Owner: owner, User: ob.opts.Postmaster,
		From: "", Recipients: []string{st.From}, Domain: senderDomain, Received: date, Seq: 1}
	if err := ob.enqueue(ctx, dj, stateTag(dsnID, senderDomain)+"#1", time.Time{}); err != nil {
		return err
	}
	ob.log.Info("delivery: DSN queued", "tx", j.ID, "kind", d.Kind, "to", st.From)
	return nil
}
