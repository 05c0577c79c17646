package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mailbricks/mailbricks/reputation"
)

// FeedbackOptions configures a Feedback. A nil *FeedbackOptions and every
// zero field mean the default. NewFeedback copies the options.
type FeedbackOptions struct {
	// Logger receives reports that do not parse or do not map to a
	// message. The default is nil: they are discarded.
	Logger *slog.Logger
}

// Feedback closes the loop of outbound mail: it takes delivery status
// notifications (RFC 3464) and abuse reports (RFC 5965 ARF) that arrive
// at the bounce address, parses them with reputation.ParseReport, maps them
// back to the message and recipient through the tag of the address they
// were sent to (OutboundOptions.BounceAddress), fills in the source IP
// from the delivery state, and records them with the Tracker (hard bounces
// and complaints suppress the recipient and count against the IP). It is
// safe for concurrent use.
//
// The incoming side calls Handle with the envelope recipient and the
// message, or installs Filter as its DeliverOptions.Filter; the Inbound's
// Recipient hook must accept the bounce address with any tag (IsBounce
// tells).
type Feedback struct {
	state   StateStore
	tracker *reputation.Tracker
	local   string // local part of the bounce address
	domain  string
	log     *slog.Logger
}

// NewFeedback returns a Feedback for bounce address bounce (the
// OutboundOptions.BounceAddress of the Outbound whose state store is
// state). It fails, wrapping ErrInvalidOptions, if an argument is nil or
// bounce is not an address.
func NewFeedback(state StateStore, tracker *reputation.Tracker, bounce string, opts *FeedbackOptions) (*Feedback, error) {
	if state == nil || tracker == nil {
		return nil, fmt.Errorf("%w: nil state store or tracker", ErrInvalidOptions)
	}
	i := strings.LastIndexByte(bounce, '@')
	if i <= 0 || i == len(bounce)-1 || ValidateAddress(bounce) != nil {
		return nil, fmt.Errorf("%w: bounce address %q", ErrInvalidOptions, bounce)
	}
	var o FeedbackOptions
	if opts != nil {
		o = *opts
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feedback{state: state, tracker: tracker, local: strings.ToLower(bounce[:i]), domain: strings.ToLower(bounce[i+1:]), log: log}, nil
}

// IsBounce reports whether addr is the bounce address, tagged or not, and
// returns its tag ("" when untagged).
func (f *Feedback) IsBounce(addr string) (tag string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 || !strings.EqualFold(addr[i+1:], f.domain) {
		return "", false
	}
	local := strings.ToLower(addr[:i])
	if local == f.local {
		return "", true
	}
	if t, found := strings.CutPrefix(local, f.local+"+"); found && t != "" {
		return t, true
	}
	return "", false
}

// Handle parses the report msg that arrived for envelope recipient rcpt
// (a bounce address) and records its outcomes. An outcome whose recipient
// is not among the tagged message's recipients, but the message had one
// recipient, is about that one (a forwarded address reports its new
// name). It returns the outcomes recorded. A message that is not a report
// returns an error matching reputation.ErrNotReport; a broken one
// reputation.ErrMalformed.
func (f *Feedback) Handle(ctx context.Context, rcpt string, msg io.Reader) ([]reputation.Outcome, error) {
	tag, ok := f.IsBounce(rcpt)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not the bounce address", ErrUnknownRecipient, rcpt)
	}
	outs, err := reputation.ParseReport(msg)
	if err != nil {
		return nil, fmt.Errorf("delivery: feedback for %s: %w", rcpt, err)
	}
	var st *outState
	if tag != "" {
		st, _, err = loadState(ctx, f.state, tag)
		if err != nil {
			return nil, err
		}
		if st == nil {
			f.log.Info("delivery: feedback tag names no message", "tag", tag)
		}
	}
	var recorded []reputation.Outcome
	for _, o := range outs {
		if st != nil {
			var match *rcptState
			for i := range st.Rcpts {
				if strings.EqualFold(st.Rcpts[i].Addr, o.Recipient) {
					match = &st.Rcpts[i]
				}
			}
			if match == nil && len(st.Rcpts) == 1 {
				match = &st.Rcpts[0]
			}
			if match != nil {
				o.Recipient = match.Addr
				if o.IP == "" {
					o.IP = match.IP
				}
			}
		}
		if o.Recipient == "" {
			f.log.Info("delivery: feedback names no recipient", "rcpt", rcpt, "message-id", o.MessageID)
			continue
		}
		if err := f.tracker.Record(ctx, o); err != nil {
			if errors.Is(err, reputation.ErrInvalidAddress) {
				f.log.Info("delivery: feedback recipient invalid", "recipient", o.Recipient)
				continue
			}
			return recorded, fmt.Errorf("delivery: record feedback: %w", err)
		}
		recorded = append(recorded, o)
	}
	return recorded, nil
}

// Filter returns a DeliverOptions.Filter that handles the incoming jobs
// addressed to the bounce address: the report is recorded (Handle) and
// the job is not stored (VerdictReject) when every recipient is a bounce
// address; when there are other recipients too, it goes to their inbox
// (VerdictInbox) without next. Other jobs go to next, or to the inbox if
// next is nil. A message that is not a report, or does not parse, is
// logged and dropped.
func (f *Feedback) Filter(next func(ctx context.Context, job *IncomingJob, msg io.Reader) (Verdict, error)) func(ctx context.Context, job *IncomingJob, msg io.Reader) (Verdict, error) {
	return func(ctx context.Context, job *IncomingJob, msg io.Reader) (Verdict, error) {
		bounceRcpt, others := "", false
		for _, r := range job.Recipients {
			if _, ok := f.IsBounce(r.Address); ok {
				if bounceRcpt == "" {
					bounceRcpt = r.Address
				}
			} else {
				others = true
			}
		}
		if bounceRcpt == "" {
			if next == nil {
				return VerdictInbox, nil
			}
			return next(ctx, job, msg)
		}
		_, err := f.Handle(ctx, bounceRcpt, msg)
		if err != nil {
			if errors.Is(err, reputation.ErrNotReport) || errors.Is(err, reputation.ErrMalformed) {
				f.log.Info("delivery: dropped non-report at bounce address", "tx", job.ID, "err", err)
			} else {
				return VerdictInbox, err
			}
		}
		if others {
			return VerdictInbox, nil
		}
		return VerdictReject, nil
	}
}
