package dedup

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Store]. A nil *Options and every zero field mean
// the default. New copies the Options; later changes have no effect.
type Options struct {
	// Grace is how long a temporary link made by Put protects a blob that
	// is not linked yet, and so the minimum age of a blob GC deletes. It
	// must exceed the longest time between a Put and the Link that follows
	// it. The default is 24 hours.
	Grace time.Duration
	// Now returns the current time; tests inject a fake clock. The default
	// is time.Now.
	Now func() time.Time
}

// Store is a content-addressed blob store with exact references: the
// portable type users hold, over a [Backend]. A Store is safe for
// concurrent use by multiple goroutines.
type Store struct {
	b      Backend
	grace  time.Duration
	now    func() time.Time
	closed atomic.Bool
}

// New returns a Store over b. The Store owns b: [Store.Close] closes it.
// New panics if b is nil.
func New(b Backend, opts *Options) *Store {
	if b == nil {
		panic("dedup: New with a nil Backend")
	}
	s := &Store{b: b, grace: 24 * time.Hour, now: time.Now}
	if opts != nil {
		if opts.Grace > 0 {
			s.grace = opts.Grace
		}
		if opts.Now != nil {
			s.now = opts.Now
		}
	}
	return s
}

// Grace returns the grace period the Store was configured with.
func (s *Store) Grace() time.Duration { return s.grace }

// Close closes the backend. It is idempotent; afterwards every method
// returns an error matching [ErrClosed].
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.b.Close()
}

func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Put stores the bytes of r and returns their [Ref]. It streams: the bytes
// are hashed with SHA-256 while they are written to a temporary object,
// which is then published under the hash, create-if-absent, so a blob
// already stored costs no second copy. The blob gets a temporary link that
// expires after the grace period: until then GC keeps it even if it is
// never linked. Link it (for example with [Split]) to keep it longer.
func (s *Store) Put(ctx context.Context, r io.Reader) (Ref, error) {
	return s.put(ctx, r, "")
}

// PutLink is [Store.Put] then [Store.Link] with owner: when it returns
// nil, the bytes of r are stored and linked by owner, durably. A backend
// whose uploads implement [LinkingUpload] does both in one step (for
// dedup/filededup, one synced write for a small blob); on others PutLink
// calls Put, then Link. If it fails, the blob may be stored with a
// temporary link, as after a failed Link, and never linked by owner
// unless an earlier Link made that link.
func (s *Store) PutLink(ctx context.Context, r io.Reader, owner string) (Ref, error) {
	if err := CheckOwner(owner); err != nil {
		return Ref{}, fmt.Errorf("dedup: put: %w", err)
	}
	return s.put(ctx, r, owner)
}

// put is Put, and for an owner other than "", Link.
func (s *Store) put(ctx context.Context, r io.Reader, owner string) (Ref, error) {
	if err := s.check(); err != nil {
		return Ref{}, err
	}
	up, err := s.b.Create(ctx)
	if err != nil {
		return Ref{}, fmt.Errorf("dedup: put: %w", err)
	}
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	n, err := copyHashing(ctx, up, h, r, *bp)
	copyBufs.Put(bp)
	if err != nil {
		_ = up.Abort()
		return Ref{}, fmt.Errorf("dedup: put: %w", err)
	}
	var ref Ref
	h.Sum(ref.Hash[:0])
	ref.Size = n
	expires := s.now().Add(s.grace)
	if lu, ok := up.(LinkingUpload); ok && owner != "" {
		if err := lu.CommitLink(ctx, ref, expires, owner); err != nil {
			_ = up.Abort()
			return Ref{}, fmt.Errorf("dedup: put %s: %w", ref, err)
		}
		return ref, nil
	}
	if err := up.Commit(ctx, ref, expires); err != nil {
		_ = up.Abort()
		return Ref{}, fmt.Errorf("dedup: put %s: %w", ref, err)
	}
	if owner != "" {
		if err := s.Link(ctx, ref, owner); err != nil {
			return Ref{}, err
		}
	}
	return ref, nil
}

// copyHashing copies r to w and into h, checking ctx between chunks.
func copyHashing(ctx context.Context, w io.Writer, h io.Writer, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		// Fill buf by hand rather than with io.ReadFull, which reports
		// a short final read as io.ErrUnexpectedEOF: that would hide the
		// same error coming from r itself (a connection cut mid-message),
		// and a truncated body would be stored as complete.
		m := 0
		var rerr error
		for m < len(buf) && rerr == nil {
			var k int
			k, rerr = r.Read(buf[m:])
			m += k
		}
		if m > 0 {
			h.Write(buf[:m])
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Open opens the blob ref for reading; the reader can seek, so ranges
// work. A missing blob is [ErrNotFound]; a stored blob whose length is not
// ref.Size is [ErrCorrupt]. Open does not re-hash: use [Store.Verify].
func (s *Store) Open(ctx context.Context, ref Ref) (io.ReadSeekCloser, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if ref.IsZero() {
		return nil, fmt.Errorf("dedup: open: %w", ErrInvalidRef)
	}
	b, err := s.b.Open(ctx, ref.Hash)
	if err != nil {
		return nil, fmt.Errorf("dedup: open %s: %w", ref, err)
	}
	if b.Size() != ref.Size {
		size := b.Size()
		_ = b.Close()
		return nil, fmt.Errorf("dedup: open %s: %w: stored length %d", ref, ErrCorrupt, size)
	}
	return b, nil
}

// Info describes a stored blob.
type Info struct {
	// Ref is the blob's reference.
	Ref Ref
	// ModTime is when the blob was last written.
	ModTime time.Time
}

// Stat returns information about the blob ref: [ErrNotFound] if it does
// not exist, [ErrCorrupt] if its stored length is not ref.Size.
func (s *Store) Stat(ctx context.Context, ref Ref) (Info, error) {
	if err := s.check(); err != nil {
		return Info{}, err
	}
	if ref.IsZero() {
		return Info{}, fmt.Errorf("dedup: stat: %w", ErrInvalidRef)
	}
	bi, err := s.b.Stat(ctx, ref.Hash)
	if err != nil {
		return Info{}, fmt.Errorf("dedup: stat %s: %w", ref, err)
	}
	if bi.Size != ref.Size {
		return Info{}, fmt.Errorf("dedup: stat %s: %w: stored length %d", ref, ErrCorrupt, bi.Size)
	}
	return Info{Ref: ref, ModTime: bi.ModTime}, nil
}

// Verify re-reads the blob ref and checks its length and SHA-256: a
// mismatch is [ErrCorrupt], a missing blob [ErrNotFound].
func (s *Store) Verify(ctx context.Context, ref Ref) error {
	rc, err := s.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	bp := copyBufs.Get().(*[]byte)
	n, err := copyHashing(ctx, io.Discard, h, rc, *bp)
	copyBufs.Put(bp)
	if err != nil {
		return fmt.Errorf("dedup: verify %s: %w", ref, err)
	}
	var got Hash
	h.Sum(got[:0])
	if n != ref.Size || got != ref.Hash {
		return fmt.Errorf("dedup: verify %s: %w: read %d bytes hashing to %s", ref, ErrCorrupt, n, got)
	}
	return nil
}

// CheckOwner reports whether owner is a valid owner string for Link and
// Unlink: 1 to [MaxOwnerLen] bytes. If not, the error matches
// [ErrInvalidOwner]. [Store] checks it; backends call it too, because
// [Store.Backend] hands them out to callers that skip the Store.
func CheckOwner(owner string) error {
	if owner == "" || len(owner) > MaxOwnerLen {
		return fmt.Errorf("%w: length %d", ErrInvalidOwner, len(owner))
	}
	return nil
}

// Link records that owner (for example "user/messageID/part") refers to
// the blob ref; GC keeps a blob while any link to it exists. Link is
// idempotent: linking twice with one owner makes one link. If the blob
// does not exist, or GC has just collected it, Link returns [ErrNotFound]
// and the caller must Put the bytes again.
func (s *Store) Link(ctx context.Context, ref Ref, owner string) error {
	if err := s.check(); err != nil {
		return err
	}
	if ref.IsZero() {
		return fmt.Errorf("dedup: link: %w", ErrInvalidRef)
	}
	if err := CheckOwner(owner); err != nil {
		return fmt.Errorf("dedup: link %s: %w", ref, err)
	}
	if err := s.b.Link(ctx, ref.Hash, owner); err != nil {
		return fmt.Errorf("dedup: link %s: %w", ref, err)
	}
	return nil
}

// Unlink removes owner's link to ref. It is idempotent: removing a link
// that does not exist returns nil. When the last link goes, the blob
// becomes a GC candidate.
func (s *Store) Unlink(ctx context.Context, ref Ref, owner string) error {
	if err := s.check(); err != nil {
		return err
	}
	if ref.IsZero() {
		return fmt.Errorf("dedup: unlink: %w", ErrInvalidRef)
	}
	if err := CheckOwner(owner); err != nil {
		return fmt.Errorf("dedup: unlink %s: %w", ref, err)
	}
	if err := s.b.Unlink(ctx, ref.Hash, owner, s.now()); err != nil {
		return fmt.Errorf("dedup: unlink %s: %w", ref, err)
	}
	return nil
}

// GCOptions configures one [Store.GC] run. A nil *GCOptions means the
// defaults.
type GCOptions struct {
	// Limit is the most candidates the run examines; 0 means no limit.
	// The default is 0.
	Limit int
	// BatchSize is how many candidates are read and collected at a time.
	// The default is 256.
	BatchSize int
}

// GCStats reports what one [Store.GC] run did.
type GCStats struct {
	// Examined is the number of candidates examined.
	Examined int
	// Deleted is the number of blobs deleted.
	Deleted int
	// DeletedBytes is the total length of the deleted blobs.
	DeletedBytes int64
	// Linked is the number of candidates kept because they had a link.
	Linked int
	// Protected is the number kept because of an unexpired temporary link.
	Protected int
	// Absent is the number whose blob was already gone.
	Absent int
	// Busy is the number left for later because another collector held
	// them.
	Busy int
}

// GC deletes blobs that have no link and no unexpired temporary link. It
// works from the backend's candidate log (blobs whose last link went away,
// and blobs whose Put's temporary link expired), not from a scan of every
// blob, so its cost follows the garbage, not the store.
//
// # Algorithm
//
// Every event that can make a blob garbage appends a candidate to the log
// in the same atomic step as the event: Unlink of the last link adds one
// due now, and Put adds one due when its temporary link expires. GC reads
// the candidates due by now, in due order, and hands them to the backend's
// Collect, which, for each, re-checks under the backend's per-hash
// exclusion (a striped mutex in-process, a marker object on S3) that the
// blob has no link and no temporary link expiring after now before it
// deletes it. Put records its temporary link, and Link its link, under the
// same exclusion and only while the blob exists, so either Collect sees the
// new reference and keeps the blob, or it deletes the blob first and the
// Link fails with ErrNotFound (the caller puts the bytes again), and a Put
// publishes a fresh copy. A blob kept because it is linked gets a new
// candidate when its last link goes; one kept for a temporary link has the
// candidate its Put logged, due at that link's expiry. So the log never
// loses a blob that becomes garbage, and GC never deletes a referenced one.
//
// GC is safe to run concurrently with Put, Link and Unlink on other
// goroutines and, for backends shared between processes, other processes.
func (s *Store) GC(ctx context.Context, opts *GCOptions) (GCStats, error) {
	var st GCStats
	if err := s.check(); err != nil {
		return st, err
	}
	batch, limit := 256, 0
	if opts != nil {
		if opts.BatchSize > 0 {
			batch = opts.BatchSize
		}
		limit = opts.Limit
	}
	now := s.now()
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n := batch
		if limit > 0 && limit-st.Examined < n {
			n = limit - st.Examined
		}
		if n <= 0 {
			return st, nil
		}
		cands, err := s.b.Candidates(ctx, now, after, n)
		if err != nil {
			return st, fmt.Errorf("dedup: gc: %w", err)
		}
		if len(cands) == 0 {
			return st, nil
		}
		outs, err := s.b.Collect(ctx, now, cands)
		if err != nil {
			return st, fmt.Errorf("dedup: gc: %w", err)
		}
		for _, o := range outs {
			st.Examined++
			switch o.Verdict {
			case Deleted:
				st.Deleted++
				st.DeletedBytes += o.Size
			case Linked:
				st.Linked++
			case Protected:
				st.Protected++
			case Absent:
				st.Absent++
			case Busy:
				st.Busy++
			}
		}
		after = cands[len(cands)-1].Key
	}
}
