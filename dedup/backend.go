package dedup

import (
	"context"
	"errors"
	"io"
	"time"
)

// Errors returned by a [Store] and by every [Backend]. Match them with
// errors.Is.
var (
	// ErrNotFound means the blob (or, for Link, the blob to link) does not
	// exist.
	ErrNotFound = errors.New("dedup: not found")
	// ErrCorrupt means stored bytes do not match their reference: a wrong
	// length, a wrong SHA-256, or an undecodable skeleton.
	ErrCorrupt = errors.New("dedup: corrupt")
	// ErrInvalidRef means a reference string, hash or skeleton reference
	// is malformed, or a Ref is zero where a blob is required.
	ErrInvalidRef = errors.New("dedup: invalid reference")
	// ErrInvalidOwner means an owner string is empty or longer than
	// [MaxOwnerLen] bytes.
	ErrInvalidOwner = errors.New("dedup: invalid owner")
	// ErrClosed means the Store or Backend was closed.
	ErrClosed = errors.New("dedup: closed")
)

// MaxOwnerLen is the longest owner string, in bytes, that Link and Unlink
// accept. It keeps every backend's link key within its limits (an S3
// object key is at most 1,024 bytes).
const MaxOwnerLen = 512

// Backend stores blobs, links and the garbage-collection candidate log for
// a [Store]. Users call the Store; a Backend implements only what differs
// between engines. The package documentation's "Implementing a Backend"
// section states the rules the GC argument relies on; the conformance
// suite in dedup/deduptest checks them.
//
// A Backend must be safe for concurrent use. Every method must honor ctx
// cancellation where it waits on I/O, and return errors matching the
// package's sentinels: [ErrNotFound] for a missing blob, [ErrClosed] after
// Close.
type Backend interface {
	// Create starts an upload of a new blob's bytes to a temporary object.
	// The Store writes the bytes, hashing them on the way, then calls
	// exactly one of Commit or Abort.
	Create(ctx context.Context) (Upload, error)

	// Open opens the blob named h for reading. If it does not exist, Open
	// must return an error for which errors.Is(err, ErrNotFound).
	Open(ctx context.Context, h Hash) (Blob, error)

	// Stat returns the stored length and modification time of the blob
	// named h, or an error matching ErrNotFound.
	Stat(ctx context.Context, h Hash) (BlobInfo, error)

	// Link records that owner refers to the blob named h. It is
	// idempotent. If the blob does not exist (never put, or already
	// collected), Link must return an error matching ErrNotFound and
	// leave no link behind. Link must be atomic with respect to Collect:
	// once Link returns nil, no Collect may delete the blob until the
	// link is removed. Link and Unlink must reject an owner that is empty
	// or longer than MaxOwnerLen with an error matching ErrInvalidOwner.
	Link(ctx context.Context, h Hash, owner string) error

	// Unlink removes owner's link to h; a missing link is not an error.
	// If no link to h remains afterwards, Unlink must add a candidate due
	// at now to the log in the same atomic step (or before returning, such
	// that a crash cannot lose it), so that GC finds the blob.
	Unlink(ctx context.Context, h Hash, owner string, now time.Time) error

	// Candidates returns up to limit entries of the candidate log that are
	// due at or before now and whose Key sorts after the given key (all,
	// when after is ""), in ascending Key order, which must be ascending
	// due order.
	Candidates(ctx context.Context, now time.Time, after string, limit int) ([]Candidate, error)

	// Collect processes candidates: for each, atomically with respect to
	// Put, Link and other collectors, it deletes the blob if it has no
	// link and no temporary link expiring after now, removes that hash's
	// expired temporary links, and removes the candidate entry. It returns
	// one Outcome per candidate, in order.
	Collect(ctx context.Context, now time.Time, cands []Candidate) ([]Outcome, error)

	// Close releases the backend's resources. It must be idempotent; later
	// calls of the other methods must return errors matching ErrClosed.
	Close() error
}

// Upload is a blob being written to a temporary object by [Store.Put]. An
// Upload is not safe for concurrent use.
type Upload interface {
	// Write appends bytes to the temporary object. The caller may reuse p
	// after Write returns.
	io.Writer

	// Commit publishes the bytes written as the blob ref, create-if-absent:
	// if a blob with ref.Hash exists, the temporary object is dropped and
	// the stored copy is kept. Before the blob can be seen under its name,
	// Commit durably records a temporary link to ref.Hash expiring at
	// expires and a candidate-log entry due at expires, atomically with
	// respect to Collect. When Commit returns nil the blob is durable.
	// The Upload is finished afterwards, whatever the result.
	Commit(ctx context.Context, ref Ref, expires time.Time) error

	// Abort drops the temporary object. It is safe to call after Commit,
	// and then does nothing.
	Abort() error
}

// LinkingUpload is optionally implemented by an [Upload] whose backend can
// publish a blob and link it in one step, cheaper than Commit then
// [Backend.Link]. [Store.PutLink] uses it when the Upload has it.
type LinkingUpload interface {
	Upload

	// CommitLink is Commit followed by Link(ref.Hash, owner), with the
	// guarantees of both: when it returns nil the blob is durable and
	// linked by owner, atomically with respect to Collect. A backend may
	// skip the temporary link and candidate of a blob it links in the same
	// atomic step as publishing it (a linked blob needs neither), but must
	// record them first when the blob's name can become visible before
	// the link is durable. It must reject an invalid owner, as Link does,
	// with an error matching ErrInvalidOwner. The Upload is finished
	// afterwards, whatever the result.
	CommitLink(ctx context.Context, ref Ref, expires time.Time, owner string) error
}

// Blob is an open blob. It is not safe for concurrent use.
type Blob interface {
	io.ReadSeekCloser
	// Size returns the stored length in bytes.
	Size() int64
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	// Size is the stored length in bytes.
	Size int64
	// ModTime is when the blob was last written.
	ModTime time.Time
}

// Candidate is one entry of a backend's GC candidate log: a blob that may
// have become garbage, to be re-checked at or after Due.
type Candidate struct {
	// Key identifies the entry within the backend; Keys sort in Due order.
	Key string
	// Hash names the blob.
	Hash Hash
	// Due is when the entry becomes eligible for collection.
	Due time.Time
}

// Verdict is what [Backend.Collect] decided for one candidate.
type Verdict int

const (
	// Deleted: the blob had no link and no live temporary link, and was
	// deleted.
	Deleted Verdict = iota + 1
	// Linked: the blob has a link and was kept.
	Linked
	// Protected: the blob has a temporary link expiring after now and was
	// kept; its Put logged its own candidate for that time.
	Protected
	// Absent: the blob no longer existed.
	Absent
	// Busy: another collector was working on the same hash; the candidate
	// was left for a later run.
	Busy
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Deleted:
		return "deleted"
	case Linked:
		return "linked"
	case Protected:
		return "protected"
	case Absent:
		return "absent"
	case Busy:
		return "busy"
	}
	return "unknown"
}

// Outcome is the result of collecting one candidate.
type Outcome struct {
	// Verdict says what happened.
	Verdict Verdict
	// Size is the length of the deleted blob, when Verdict is Deleted.
	Size int64
}
