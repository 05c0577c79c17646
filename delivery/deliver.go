package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/queue"
)

// Verdict is a filter's decision on a message.
type Verdict int

// The verdicts.
const (
	// VerdictInbox delivers to the inbox.
	VerdictInbox Verdict = iota
	// VerdictJunk delivers to the Junk folder.
	VerdictJunk
	// VerdictReject delivers nothing; the job completes.
	VerdictReject
)

// DeliverOptions configures a Deliver. A nil *DeliverOptions and every
// zero field mean the default. NewDeliver copies the options.
type DeliverOptions struct {
	// Filter, if set, decides where a message goes (a spam or virus
	// verdict). It gets the job and the message as delivered, which it may
	// read in part or not at all, and returns a verdict; an error fails the
	// attempt (the queue retries it). It is called again for a redelivered
	// job, so it should be deterministic. The default is nil: the inbox,
	// or the Junk folder for a job marked Junk (DMARC quarantine).
	Filter func(ctx context.Context, job *IncomingJob, msg io.Reader) (Verdict, error)
	// Logger receives rejected and already-delivered jobs. The default is
	// nil: they are discarded.
	Logger *slog.Logger
}

// Deliver is the handler of the incoming topic (a queue.Handler for a
// queue.Worker): it appends each job's message to every recipient's
// mailbox, once, however often the job is delivered. It is safe for
// concurrent use.
type Deliver struct {
	mail  *mailbox.Store
	blobs *dedup.Store
	opts  DeliverOptions
	log   *slog.Logger
}

var _ queue.Handler = (*Deliver)(nil)

// NewDeliver returns a Deliver that reads bodies from blobs (the store the
// Inbound wrote to) and appends to mail. It fails, wrapping
// ErrInvalidOptions, if mail or blobs is nil.
func NewDeliver(mail *mailbox.Store, blobs *dedup.Store, opts *DeliverOptions) (*Deliver, error) {
	if mail == nil || blobs == nil {
		return nil, fmt.Errorf("%w: nil mailbox or blob store", ErrInvalidOptions)
	}
	var o DeliverOptions
	if opts != nil {
		o = *opts
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deliver{mail: mail, blobs: blobs, opts: o, log: log}, nil
}

// Handle implements queue.Handler. It appends the message to the folder the
// filter chose in each distinct recipient user's mailbox, with
// AppendOptions.Key derived from the job's key, so that a redelivered job
// (a worker died after some appends) stores each copy once. When every
// append is done it unlinks the body blob that Inbound linked (a job that
// carries its message, version 2, has none). A blob
// that is already gone at the start means an earlier attempt finished
// every append and unlinked it (the unlink is the last step), so the job
// completes. A payload that does not decode wraps ErrInvalidJob; the
// queue moves such a job to the dead letters after its attempts.
func (d *Deliver) Handle(ctx context.Context, job queue.Job) error {
	j, err := ParseIncomingJob(job.Payload)
	if err != nil {
		return err
	}
	key := job.Key
	if key == "" {
		key = job.ID
	}
	folder := mailbox.Inbox
	if j.Junk {
		folder = mailbox.RoleFolder(mailbox.RoleJunk)
	}
	if f := d.opts.Filter; f != nil {
		msg, err := d.open(ctx, j)
		if errors.Is(err, dedup.ErrNotFound) {
			d.log.Info("delivery: body gone, job already delivered", "job", job.ID, "tx", j.ID)
			return nil
		}
		if err != nil {
			return err
		}
		v, err := f(ctx, j, msg)
		msg.Close()
		if err != nil {
			return fmt.Errorf("delivery: filter %s: %w", j.ID, err)
		}
		switch v {
		case VerdictReject:
			d.log.Info("delivery: rejected by filter", "job", job.ID, "tx", j.ID, "from", j.From)
			return d.release(ctx, j)
		case VerdictJunk:
			folder = mailbox.RoleFolder(mailbox.RoleJunk)
		default:
			folder = mailbox.Inbox
		}
	}
	var done []mailbricks.UserID
	for _, r := range j.Recipients {
		if slices.Contains(done, r.User) {
			continue
		}
		msg, err := d.open(ctx, j)
		if errors.Is(err, dedup.ErrNotFound) && len(done) == 0 {
			d.log.Info("delivery: body gone, job already delivered", "job", job.ID, "tx", j.ID)
			return nil
		}
		if err != nil {
			return err
		}
		_, err = d.mail.Append(ctx, r.User, folder, msg, &mailbox.AppendOptions{Key: appendKey(key), InternalDate: j.Received})
		msg.Close()
		if err != nil {
			return fmt.Errorf("delivery: append %s for %s: %w", j.ID, r.User, err)
		}
		done = append(done, r.User)
	}
	return d.release(ctx, j)
}

// appendKey is the mailbox idempotency key of a job's message: one per job
// and user (mailbox keys are per user).
func appendKey(jobKey string) string {
	k := "delivery/incoming/" + jobKey
	if len(k) > mailbox.MaxKeyLen {
		// Cutting the key could make two jobs' keys equal; a hash keeps
		// them apart.
		h := sha256.Sum256([]byte(jobKey))
		k = "delivery/incoming/sha256/" + hex.EncodeToString(h[:])
	}
	return k
}

func (d *Deliver) release(ctx context.Context, j *IncomingJob) error {
	if j.inline() {
		return nil // no blob
	}
	if err := d.blobs.Unlink(ctx, j.Blob, blobOwner(j.ID)); err != nil {
		return fmt.Errorf("delivery: unlink body of %s: %w", j.ID, err)
	}
	return nil
}

// open returns the message as delivered: the job's header fields, then
// the received bytes (blob or Body) without their drop ranges.
func (d *Deliver) open(ctx context.Context, j *IncomingJob) (io.ReadCloser, error) {
	rc, err := j.openRaw(ctx, d.blobs)
	if err != nil {
		return nil, err
	}
	body := &dropReader{r: rc, drop: j.Drop}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(strings.NewReader(j.Header), body), rc}, nil
}

// dropReader reads r, leaving out the byte ranges in drop (sorted, not
// overlapping) by seeking past them.
type dropReader struct {
	r    io.ReadSeeker
	drop [][2]int64
	pos  int64
}

func (d *dropReader) Read(p []byte) (int, error) {
	for len(d.drop) > 0 && d.pos >= d.drop[0][0] {
		if d.pos < d.drop[0][1] {
			if _, err := d.r.Seek(d.drop[0][1], io.SeekStart); err != nil {
				return 0, err
			}
			d.pos = d.drop[0][1]
		}
		d.drop = d.drop[1:]
	}
	if len(d.drop) > 0 && int64(len(p)) > d.drop[0][0]-d.pos {
		p = p[:d.drop[0][0]-d.pos]
	}
	n, err := d.r.Read(p)
	d.pos += int64(n)
	return n, err
}
