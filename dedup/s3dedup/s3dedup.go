// Package s3dedup is a [dedup.Backend] on any S3-compatible object store,
// through minio-go v7. Several processes may share one bucket and prefix.
//
//	client, err := s3dedup.NewClient("http://key:secret@127.0.0.1:9000")
//	b, err := s3dedup.Open(ctx, client, "mail", "blobs/", nil)
//	store := dedup.New(b, nil)
//
// # Objects
//
// Every key is the prefix followed by one of these; hashes are 64
// lowercase hex digits, times are Unix nanoseconds as 20 zero-padded
// decimal digits (so keys sort by time), nonces 16 hex digits:
//
//	blobs/<hash>                          the blob's bytes
//	links/<hash>/<owner>                  empty: one link; owner is base64url
//	                                      (RFC 4648, no padding), never raw, in
//	                                      segments of at most 200 characters
//	                                      joined by "~/"
//	temp/<hash>/<expiry>-<nonce>          empty: a temporary link made by Put
//	gc/<due>-<hash>-<nonce>               empty: a GC candidate
//	marks/<hash>                          a collector's marker (text: holder
//	                                      nonce and start time)
//
// # Semantics
//
// Put streams the bytes into a local temporary file (Options.TempDir)
// while the Store hashes them; Commit then writes the temporary link and
// the candidate, waits until no collector's marker is on the hash, and,
// unless a blob of the right length already exists (a HEAD request: a
// duplicate costs no upload), uploads the file with a single PutObject
// carrying If-None-Match: * (create-if-absent; a 412 means another copy
// won, which has the same bytes). The test server, versitygw v1.8.0,
// honours If-None-Match: * on PutObject (412 on the second put) and
// If-Match on PutObject; minio-go v7.3.0 sends them via
// PutObjectOptions.SetMatchETagExcept("*") and SetMatchETag.
//
// Errors a retry may cure (5xx and 429 replies, SlowDown, RequestTimeout,
// ServiceUnavailable, InternalError, a failed or dropped connection)
// satisfy [mailbricks.IsTemporary]. File-system backed servers (versitygw's
// posix backend, MinIO in fs mode) delete a directory with its last
// object, and refuse a write racing that delete as if its key were a
// directory (ExistingObjectIsDirectory, XMinioObjectExistsAsDirectory);
// no key here is a directory of another, so every write retries that
// error up to 8 times, and it counts as temporary after that.
//
// S3 has no multi-object transactions, so the exclusion between GC and
// Put/Link is a Dekker-style handshake over strongly consistent objects:
// a collector first creates marks/<hash> with If-None-Match: * and then
// lists the hash's links and temporary links; Link (and Put) first write
// their link (temporary link) and then look for the marker. Whichever
// write comes second sees the other's: either the collector lists the new
// link and keeps the blob, or Link sees the marker and waits until it is
// gone, then checks the blob: if the collector deleted it, Link deletes
// its link and returns dedup.ErrNotFound (Put uploads a fresh copy). This
// needs read-after-write and list-after-write consistency, which AWS S3,
// MinIO and versitygw provide.
//
// The processes may reach the bucket through different endpoints (several
// gateways or nodes behind a load balancer) as long as every endpoint
// gives that consistency for the writes made through the others, and
// decides If-None-Match: * and If-Match once for the bucket, not per
// endpoint: the collector's marker and the create-if-absent upload rely
// on it. Two versitygw v1.8.0 instances serving one directory with the
// posix backend do. TestTwoEndpoints runs the conformance suite and the
// GC race with uploads, Unlink and Collect through one and reads, Link
// and the candidate listing through the other; TestTwoEndpointsPut puts
// one content through both at once and finds one blob object;
// TestTwoEndpointsMarker races collectors of both for one marker (50
// races, 1,000 under MAILBRICKS_LONG=1: one winner each). AWS S3 within
// a region and a single MinIO deployment document the same guarantees.
// Endpoints that replicate asynchronously between them (S3 cross-region
// replication, MinIO site or bucket replication) do not: give each site
// its own bucket.
//
// A marker older than Options.MarkerTTL (by the server's Last-Modified
// against the local clock) is stale, left by a collector that died:
// waiters ignore it, and a collector takes it over with If-Match on its
// ETag. A collector abandons a hash (verdict Busy) rather than delete once
// MarkerTTL/2 has passed since it made its marker. Safety therefore
// assumes clocks within MarkerTTL/2 of the server's and no collector
// stalled for longer than that between its check and its DELETE; the
// default TTL is 5 minutes.
//
// Unlink writes a candidate due now before it deletes the link, and
// another after it if no link is left, so the blob is found by GC. A
// process crash can leak a blob (never lose one): between a Put's
// records and its upload (the candidate then finds the blob absent), or
// in the rare case that a collector consumed Unlink's first candidate
// while the link still existed and the process died before the second.
//
// A Backend is safe for concurrent use.
package s3dedup

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Options configures [Open]. A nil *Options and every zero field mean the
// default.
type Options struct {
	// TempDir is the local directory where Put spools a blob while hashing
	// it. The default is os.TempDir().
	TempDir string
	// MarkerTTL is how long a collector's marker is honoured; see the
	// package documentation. The default is 5 minutes.
	MarkerTTL time.Duration
	// PollInterval is how often Link and Put look again while a marker is
	// on the hash they use. The default is 20 milliseconds.
	PollInterval time.Duration
}

// NewClient returns a minio client for an S3 URL of the form
// http(s)://accesskey:secret@host:port (region us-east-1, path-style), the
// form of MAILBRICKS_S3_URL.
func NewClient(rawURL string) (*minio.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("s3dedup: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("s3dedup: URL scheme %q, want http or https", u.Scheme)
	}
	key := u.User.Username()
	secret, _ := u.User.Password()
	return minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(key, secret, ""),
		Secure:       u.Scheme == "https",
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
}

// Backend is the S3 [dedup.Backend]. It is safe for concurrent use.
type Backend struct {
	c      *minio.Client
	bucket string
	prefix string
	o      Options
	nonce  atomic.Uint64
	closed atomic.Bool
}

var _ dedup.Backend = (*Backend)(nil)

// Open returns a Backend storing objects under prefix in bucket, which
// must exist.
func Open(ctx context.Context, client *minio.Client, bucket, prefix string, opts *Options) (*Backend, error) {
	b := &Backend{c: client, bucket: bucket, prefix: prefix}
	if opts != nil {
		b.o = *opts
	}
	if b.o.TempDir == "" {
		b.o.TempDir = os.TempDir()
	}
	if b.o.MarkerTTL <= 0 {
		b.o.MarkerTTL = 5 * time.Minute
	}
	if b.o.PollInterval <= 0 {
		b.o.PollInterval = 20 * time.Millisecond
	}
	ok, err := client.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("s3dedup: open: %w", classify(err))
	}
	if !ok {
		return nil, fmt.Errorf("s3dedup: open: bucket %q does not exist", bucket)
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	b.nonce.Store(binary.BigEndian.Uint64(seed[:]))
	return b, nil
}

// Close marks the backend closed; the client is the caller's. It is
// idempotent.
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return dedup.ErrClosed
	}
	return nil
}

func (b *Backend) nextNonce() string { return fmt.Sprintf("%016x", b.nonce.Add(1)) }

func stamp(t time.Time) string {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	return fmt.Sprintf("%020d", n)
}

func (b *Backend) blobKey(h dedup.Hash) string { return b.prefix + "blobs/" + h.String() }
func (b *Backend) linkDir(h dedup.Hash) string { return b.prefix + "links/" + h.String() + "/" }
func (b *Backend) tempDir(h dedup.Hash) string { return b.prefix + "temp/" + h.String() + "/" }
func (b *Backend) markKey(h dedup.Hash) string { return b.prefix + "marks/" + h.String() }
func (b *Backend) candPrefix() string          { return b.prefix + "gc/" }
func (b *Backend) linkKey(h dedup.Hash, owner string) string {
	return b.linkDir(h) + escapeOwner(owner)
}

// ownerChunk is how many owner bytes go in one key segment: their base64
// (200 characters) fits the 255-byte name limit of file-system-backed
// servers such as versitygw.
const ownerChunk = 150

// escapeOwner encodes owner as base64url in segments of at most 200
// characters joined by "/"; every segment but the last ends in "~", which
// base64url never uses, so no owner's key is a "directory" of another's.
func escapeOwner(owner string) string {
	var sb strings.Builder
	for {
		n := min(len(owner), ownerChunk)
		sb.WriteString(base64.RawURLEncoding.EncodeToString([]byte(owner[:n])))
		owner = owner[n:]
		if owner == "" {
			return sb.String()
		}
		sb.WriteString("~/")
	}
}

func (b *Backend) candKey(due time.Time, h dedup.Hash) string {
	return b.candPrefix() + stamp(due) + "-" + h.String() + "-" + b.nextNonce()
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == "NoSuchKey"
}

// isDirRace reports whether err is a file-system backed server's
// directory clash (see put).
func isDirRace(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case "ExistingObjectIsDirectory", "XMinioObjectExistsAsDirectory":
		return true
	}
	return false
}

func isPrecondition(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed"
}

func (b *Backend) putEmpty(ctx context.Context, key string) error {
	return b.put(ctx, key, strings.NewReader(""), 0, minio.PutObjectOptions{DisableMultipart: true})
}

// dirRaceTries bounds how often put retries a write that a file-system
// backed server refused as a directory clash.
const dirRaceTries = 8

// put writes body (size bytes, read from its start) at key. File-system
// backed servers (versitygw's posix backend, MinIO in fs mode) keep keys
// as paths and delete a directory once its last object is deleted; a
// write into that directory racing the delete fails, after its
// preconditions passed and before anything was stored, with
// ExistingObjectIsDirectory (versitygw) or XMinioObjectExistsAsDirectory
// (MinIO). No key of ours is a directory of another (see escapeOwner), so
// that error can only be this race: put rewinds the body and tries again,
// dirRaceTries times at most.
func (b *Backend) put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts minio.PutObjectOptions) error {
	for try := 1; ; try++ {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := b.c.PutObject(ctx, b.bucket, key, body, size, opts)
		if err == nil || !isDirRace(err) || try == dirRaceTries {
			return err
		}
		t := time.NewTimer(time.Duration(try) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (b *Backend) remove(ctx context.Context, key string) error {
	err := b.c.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && isNotFound(err) {
		return nil
	}
	return err
}

// any reports whether an object exists under prefix.
func (b *Backend) any(ctx context.Context, prefix string) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oi, ok := <-b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, MaxKeys: 1})
	if !ok {
		return false, nil
	}
	if oi.Err != nil {
		return false, oi.Err
	}
	return true, nil
}

// Create implements [dedup.Backend.Create]: the upload is spooled to a
// local temporary file.
func (b *Backend) Create(ctx context.Context) (_ dedup.Upload, err error) {
	defer func() { err = classify(err) }()
	if err := b.check(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(b.o.TempDir, "s3dedup-*")
	if err != nil {
		return nil, fmt.Errorf("s3dedup: create: %w", err)
	}
	return &upload{b: b, f: f}, nil
}

type upload struct {
	b    *Backend
	f    *os.File
	done bool
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, errors.New("s3dedup: write after commit or abort")
	}
	return u.f.Write(p)
}

// Abort implements [dedup.Upload.Abort].
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	u.f.Close()
	return os.Remove(u.f.Name())
}

// Commit implements [dedup.Upload.Commit]; see the package documentation.
func (u *upload) Commit(ctx context.Context, ref dedup.Ref, expires time.Time) (err error) {
	defer func() { err = classify(err) }()
	if u.done {
		return errors.New("s3dedup: commit after commit or abort")
	}
	defer u.Abort()
	b := u.b
	if err := b.check(); err != nil {
		return err
	}
	h := ref.Hash
	// The temporary link and its candidate, before anything else.
	var wg sync.WaitGroup
	var e1, e2 error
	wg.Go(func() { e1 = b.putEmpty(ctx, b.tempDir(h)+stamp(expires)+"-"+b.nextNonce()) })
	wg.Go(func() { e2 = b.putEmpty(ctx, b.candKey(expires, h)) })
	wg.Wait()
	if err := errors.Join(e1, e2); err != nil {
		return err
	}
	if err := b.waitNoMarker(ctx, h); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{DisableMultipart: true, ContentType: "application/octet-stream"}
	oi, err := b.c.StatObject(ctx, b.bucket, b.blobKey(h), minio.StatObjectOptions{})
	switch {
	case err == nil && oi.Size == ref.Size:
		return nil
	case err == nil:
		// A stored copy of the wrong length is damaged: replace it.
	case isNotFound(err):
		opts.SetMatchETagExcept("*")
	default:
		return err
	}
	err = b.put(ctx, b.blobKey(h), u.f, ref.Size, opts)
	if err != nil && isPrecondition(err) {
		return nil
	}
	return err
}

// waitNoMarker returns once no fresh collector marker is on h.
func (b *Backend) waitNoMarker(ctx context.Context, h dedup.Hash) error {
	for {
		oi, err := b.c.StatObject(ctx, b.bucket, b.markKey(h), minio.StatObjectOptions{})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if time.Since(oi.LastModified) > b.o.MarkerTTL {
			return nil
		}
		t := time.NewTimer(b.o.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

type blob struct {
	*minio.Object
	size int64
}

func (bl *blob) Size() int64 { return bl.size }

// Open implements [dedup.Backend.Open].
func (b *Backend) Open(ctx context.Context, h dedup.Hash) (_ dedup.Blob, err error) {
	defer func() { err = classify(err) }()
	if err := b.check(); err != nil {
		return nil, err
	}
	obj, err := b.c.GetObject(ctx, b.bucket, b.blobKey(h), minio.GetObjectOptions{})
	if err != nil {
		return nil, mapErr(err)
	}
	oi, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, mapErr(err)
	}
	return &blob{Object: obj, size: oi.Size}, nil
}

func mapErr(err error) error {
	if isNotFound(err) {
		return dedup.ErrNotFound
	}
	return err
}

// Stat implements [dedup.Backend.Stat].
func (b *Backend) Stat(ctx context.Context, h dedup.Hash) (_ dedup.BlobInfo, err error) {
	defer func() { err = classify(err) }()
	if err := b.check(); err != nil {
		return dedup.BlobInfo{}, err
	}
	oi, err := b.c.StatObject(ctx, b.bucket, b.blobKey(h), minio.StatObjectOptions{})
	if err != nil {
		return dedup.BlobInfo{}, mapErr(err)
	}
	return dedup.BlobInfo{Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Link implements [dedup.Backend.Link]: write the link, then wait out any
// collector, then check the blob.
func (b *Backend) Link(ctx context.Context, h dedup.Hash, owner string) (err error) {
	defer func() { err = classify(err) }()
	if err := dedup.CheckOwner(owner); err != nil {
		return fmt.Errorf("s3dedup: %w", err)
	}
	if err := b.check(); err != nil {
		return err
	}
	key := b.linkKey(h, owner)
	if err := b.putEmpty(ctx, key); err != nil {
		return err
	}
	if err := b.waitNoMarker(ctx, h); err != nil {
		return err
	}
	_, err = b.c.StatObject(ctx, b.bucket, b.blobKey(h), minio.StatObjectOptions{})
	if isNotFound(err) {
		if rerr := b.remove(context.WithoutCancel(ctx), key); rerr != nil {
			return rerr
		}
		return dedup.ErrNotFound
	}
	return err
}

// Unlink implements [dedup.Backend.Unlink].
func (b *Backend) Unlink(ctx context.Context, h dedup.Hash, owner string, now time.Time) (err error) {
	defer func() { err = classify(err) }()
	if err := dedup.CheckOwner(owner); err != nil {
		return fmt.Errorf("s3dedup: %w", err)
	}
	if err := b.check(); err != nil {
		return err
	}
	key := b.linkKey(h, owner)
	if _, err := b.c.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{}); isNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if err := b.putEmpty(ctx, b.candKey(now, h)); err != nil {
		return err
	}
	if err := b.remove(ctx, key); err != nil {
		return err
	}
	left, err := b.any(ctx, b.linkDir(h))
	if err != nil || left {
		return err
	}
	return b.putEmpty(ctx, b.candKey(now, h))
}

// Candidates implements [dedup.Backend.Candidates].
func (b *Backend) Candidates(ctx context.Context, now time.Time, after string, limit int) (_ []dedup.Candidate, err error) {
	defer func() { err = classify(err) }()
	if err := b.check(); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: b.candPrefix(), Recursive: true, StartAfter: after}
	if limit < 1000 {
		opts.MaxKeys = limit
	}
	nowNs := now.UnixNano()
	var out []dedup.Candidate
	for oi := range b.c.ListObjects(lctx, b.bucket, opts) {
		if oi.Err != nil {
			return nil, oi.Err
		}
		rest := strings.TrimPrefix(oi.Key, b.candPrefix())
		parts := strings.Split(rest, "-")
		if len(parts) != 3 {
			continue // not ours
		}
		due, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			continue
		}
		if due > nowNs {
			break
		}
		h, err := dedup.ParseHash(parts[1])
		if err != nil {
			continue
		}
		out = append(out, dedup.Candidate{Key: oi.Key, Hash: h, Due: time.Unix(0, due)})
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// Collect implements [dedup.Backend.Collect]; see the package
// documentation for the marker protocol.
func (b *Backend) Collect(ctx context.Context, now time.Time, cands []dedup.Candidate) (_ []dedup.Outcome, err error) {
	defer func() { err = classify(err) }()
	if err := b.check(); err != nil {
		return nil, err
	}
	outs := make([]dedup.Outcome, len(cands))
	for i, c := range cands {
		o, err := b.collectOne(ctx, now, c.Hash)
		if err != nil {
			return nil, fmt.Errorf("s3dedup: collect %s: %w", c.Hash, err)
		}
		outs[i] = o
		if o.Verdict != dedup.Busy {
			if err := b.remove(ctx, c.Key); err != nil {
				return nil, err
			}
		}
	}
	return outs, nil
}

// acquire creates h's marker, or takes over a stale one. It reports false
// if a live collector holds it.
func (b *Backend) acquire(ctx context.Context, h dedup.Hash) (bool, error) {
	body := b.nextNonce() + " " + time.Now().UTC().Format(time.RFC3339Nano)
	opts := minio.PutObjectOptions{DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	err := b.put(ctx, b.markKey(h), strings.NewReader(body), int64(len(body)), opts)
	if err == nil {
		return true, nil
	}
	if !isPrecondition(err) {
		return false, err
	}
	oi, err := b.c.StatObject(ctx, b.bucket, b.markKey(h), minio.StatObjectOptions{})
	if isNotFound(err) {
		return false, nil // released meanwhile; a later run will retry
	}
	if err != nil {
		return false, err
	}
	if time.Since(oi.LastModified) <= b.o.MarkerTTL {
		return false, nil
	}
	opts = minio.PutObjectOptions{DisableMultipart: true}
	opts.SetMatchETag(strings.Trim(oi.ETag, `"`))
	err = b.put(ctx, b.markKey(h), strings.NewReader(body), int64(len(body)), opts)
	if err != nil && isPrecondition(err) {
		return false, nil
	}
	return err == nil, err
}

func (b *Backend) collectOne(ctx context.Context, now time.Time, h dedup.Hash) (dedup.Outcome, error) {
	start := time.Now()
	ok, err := b.acquire(ctx, h)
	if err != nil || !ok {
		return dedup.Outcome{Verdict: dedup.Busy}, err
	}
	defer b.remove(context.WithoutCancel(ctx), b.markKey(h))
	if linked, err := b.any(ctx, b.linkDir(h)); err != nil || linked {
		return dedup.Outcome{Verdict: dedup.Linked}, err
	}
	var expired []string
	protected := false
	nowNs := now.UnixNano()
	for oi := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.tempDir(h), Recursive: true}) {
		if oi.Err != nil {
			return dedup.Outcome{}, oi.Err
		}
		exp, _, _ := strings.Cut(strings.TrimPrefix(oi.Key, b.tempDir(h)), "-")
		n, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			continue
		}
		if n > nowNs {
			protected = true
		} else {
			expired = append(expired, oi.Key)
		}
	}
	for _, k := range expired {
		if err := b.remove(ctx, k); err != nil {
			return dedup.Outcome{}, err
		}
	}
	if protected {
		return dedup.Outcome{Verdict: dedup.Protected}, nil
	}
	oi, err := b.c.StatObject(ctx, b.bucket, b.blobKey(h), minio.StatObjectOptions{})
	if isNotFound(err) {
		return dedup.Outcome{Verdict: dedup.Absent}, nil
	} else if err != nil {
		return dedup.Outcome{}, err
	}
	if time.Since(start) > b.o.MarkerTTL/2 {
		return dedup.Outcome{Verdict: dedup.Busy}, nil
	}
	if err := b.c.RemoveObject(ctx, b.bucket, b.blobKey(h), minio.RemoveObjectOptions{}); err != nil {
		return dedup.Outcome{}, err
	}
	return dedup.Outcome{Verdict: dedup.Deleted, Size: oi.Size}, nil
}
