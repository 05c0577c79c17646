package reputation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Errors returned by the package. Backends must return errors that match
// [ErrNotFound] and [ErrClosed] with errors.Is.
var (
	// ErrNotFound reports a missing suppression entry.
	ErrNotFound = errors.New("reputation: not found")
	// ErrClosed reports a call on a closed Tracker or Backend.
	ErrClosed = errors.New("reputation: closed")
	// ErrNoPool reports a Send whose class has no pool and no default pool.
	ErrNoPool = errors.New("reputation: no pool for class")
	// ErrInvalidAddress reports an address that is not local@domain.
	ErrInvalidAddress = errors.New("reputation: invalid address")
	// ErrInvalid reports an invalid argument: an unknown Kind, an unknown
	// IP, an empty key.
	ErrInvalid = errors.New("reputation: invalid argument")
	// ErrMalformed reports a feedback report (DSN or ARF) that cannot be
	// parsed.
	ErrMalformed = errors.New("reputation: malformed report")
	// ErrNotReport reports a message that is not a multipart/report of the
	// expected type.
	ErrNotReport = errors.New("reputation: not a feedback report")
)

// Class is a mail class; each class sends from its own pool of IPs, so
// bulk mail cannot spoil the reputation of transactional mail.
type Class string

// Common mail classes. Any string is a valid class.
const (
	ClassTransactional Class = "transactional"
	ClassBulk          Class = "bulk"
)

// Kind is the outcome of one delivery attempt, or a complaint about a
// delivered message.
type Kind int

// The outcome kinds. The zero Kind is invalid.
const (
	// KindDelivered: the receiving server accepted the message (2xx).
	KindDelivered Kind = iota + 1
	// KindDeferred: a temporary failure the sender retries (4xx: rate
	// limited, greylisted, server busy). It says nothing bad about the
	// recipient.
	KindDeferred
	// KindSoftBounce: the recipient's mailbox could not take the message
	// for a reason that may pass (mailbox full, temporarily disabled).
	// Soft bounces on several days suppress the address.
	KindSoftBounce
	// KindHardBounce: a permanent failure (5xx). When it is about the
	// address (unknown user, bad domain) the address is suppressed at once.
	KindHardBounce
	// KindComplaint: the recipient reported the message as spam (an ARF
	// report from a feedback loop). The address is suppressed at once.
	KindComplaint
)

var kindNames = [...]string{"", "delivered", "deferred", "soft-bounce", "hard-bounce", "complaint"}

// String returns the kind's name, such as "hard-bounce".
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Valid reports whether k is one of the defined kinds.
func (k Kind) Valid() bool { return k >= KindDelivered && k <= KindComplaint }

// Send describes one message to one recipient that is about to be sent.
type Send struct {
	// From is the envelope sender (informational; it is not checked).
	From string
	// To is the recipient address.
	To string
	// Class selects the pool of IPs.
	Class Class
	// Size is the message size in bytes; it counts against a provider's
	// byte rate limit when one is configured.
	Size int64
}

// Decision is the answer of [Tracker.Decide].
type Decision struct {
	// IP is the sending IP to use when Allow is true; otherwise empty.
	IP string
	// Provider is the destination the recipient's domain rolls up to.
	Provider string
	// Allow reports whether the message may be sent now.
	Allow bool
	// RetryAfter is, when Allow is false, how long to wait before asking
	// again; zero means never (the recipient is suppressed).
	RetryAfter time.Duration
	// Reason explains a refusal, such as "suppressed: hard-bounce" or
	// "rate limited"; empty when Allow is true.
	Reason string
}

// Outcome is the result of a delivery attempt or a piece of feedback about
// one, passed to [Tracker.Record].
type Outcome struct {
	// IP is the sending IP the message left from. Outcomes without an IP
	// still act on the recipient (suppression) but count toward no IP.
	IP string
	// Recipient is the recipient address.
	Recipient string
	// Kind is what happened.
	Kind Kind
	// Code is the SMTP reply code, such as 550; zero when unknown.
	Code int
	// Enhanced is the RFC 3463 enhanced status code, such as "5.1.1";
	// empty when unknown.
	Enhanced string
	// Text is the server's reply text or diagnostic, if any.
	Text string
	// At is when it happened; zero means now. It decides the day a soft
	// bounce counts for; rates count outcomes when they are recorded.
	At time.Time
	// MessageID is the Message-ID of the original message, without angle
	// brackets, when a parsed report names it; with EnvelopeID it lets the
	// caller find the IP the message left from.
	MessageID string
	// EnvelopeID is the envelope identifier (RFC 3461 ENVID) the message
	// was sent with, when a parsed DSN names it.
	EnvelopeID string
}

// Counts are outcome counts in one time bucket; see [Backend.AddCounts].
type Counts struct {
	// Delivered counts KindDelivered outcomes.
	Delivered int64
	// Deferred counts KindDeferred outcomes.
	Deferred int64
	// SoftBounce counts KindSoftBounce outcomes.
	SoftBounce int64
	// HardBounce counts KindHardBounce outcomes.
	HardBounce int64
	// Complaint counts KindComplaint outcomes.
	Complaint int64
}

// Add returns the elementwise sum of c and d.
func (c Counts) Add(d Counts) Counts {
	return Counts{c.Delivered + d.Delivered, c.Deferred + d.Deferred, c.SoftBounce + d.SoftBounce,
		c.HardBounce + d.HardBounce, c.Complaint + d.Complaint}
}

// IsZero reports whether every count is zero.
func (c Counts) IsZero() bool { return c == Counts{} }

// Inc increments the count of kind k by n; an invalid kind is ignored.
func (c *Counts) Inc(k Kind, n int64) {
	switch k {
	case KindDelivered:
		c.Delivered += n
	case KindDeferred:
		c.Deferred += n
	case KindSoftBounce:
		c.SoftBounce += n
	case KindHardBounce:
		c.HardBounce += n
	case KindComplaint:
		c.Complaint += n
	}
}

// Final returns the number of messages with a final outcome: delivered,
// soft-bounced or hard-bounced. It is the denominator of bounce rates.
func (c Counts) Final() int64 { return c.Delivered + c.SoftBounce + c.HardBounce }

// CountsSize is the length of the binary encoding of [Counts].
const CountsSize = 40

// MarshalBinary encodes c as five little-endian int64s in the order
// Delivered, Deferred, SoftBounce, HardBounce, Complaint (40 bytes).
// Encodings add elementwise, which is what a merge operator needs.
func (c Counts) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, CountsSize))
}

// AppendBinary appends the encoding of [Counts.MarshalBinary] to b.
func (c Counts) AppendBinary(b []byte) ([]byte, error) {
	for _, v := range [...]int64{c.Delivered, c.Deferred, c.SoftBounce, c.HardBounce, c.Complaint} {
		b = binary.LittleEndian.AppendUint64(b, uint64(v))
	}
	return b, nil
}

// UnmarshalBinary decodes the encoding of [Counts.MarshalBinary].
func (c *Counts) UnmarshalBinary(b []byte) error {
	if len(b) != CountsSize {
		return fmt.Errorf("%w: counts of %d bytes", ErrMalformed, len(b))
	}
	v := func(i int) int64 { return int64(binary.LittleEndian.Uint64(b[8*i:])) }
	*c = Counts{v(0), v(1), v(2), v(3), v(4)}
	return nil
}
