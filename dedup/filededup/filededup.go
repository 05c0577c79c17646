// Package filededup is the embedded [dedup.Backend]: blobs are files in a
// directory, links and the GC candidate log are records in an [lsm] DB
// inside it.
//
//	b, err := filededup.Open("/var/lib/mail/blobs", nil)
//	...
//	store := dedup.New(b, nil)
//	defer store.Close()
//
// # Files
//
//	<dir>/blobs/ab/cd/<64 hex digits>   one file per blob, named by its SHA-256
//	                                    and sharded by the hash's first two bytes;
//	                                    the 256 blobs/ab exist from the start,
//	                                    each blobs/ab/cd is made on first use
//	<dir>/tmp/<h>/<16 hex>              uploads in progress, spread over 16
//	                                    directories tmp/0 to tmp/f so that
//	                                    concurrent uploads do not contend for
//	                                    one directory; removed by Open (as
//	                                    are files directly in tmp/, where
//	                                    older versions kept them)
//	<dir>/meta/                         the lsm DB of links, temporary links,
//	                                    GC candidates and inline blobs (keys
//	                                    below)
//
// A blob of at most [Options].InlineMax bytes (default [DefaultInlineMax],
// 64 KiB) is not a file: it is a record of the meta DB, written in the
// same synced batch as its temporary link and candidate. A small Put thus
// costs one group-committed lsm write, and no file, temporary file or
// directory sync. A blob is found in either form; a directory written
// before inline blobs existed (files only) opens and reads as before, and
// changing InlineMax between opens is safe.
//
// Paths are built from hashes and counters only. On the operating system
// every file operation goes through an [os.Root] opened on dir, so no
// path can leave the directory.
//
// # Semantics
//
// Put buffers the first InlineMax bytes in memory while the Store hashes
// them; a longer blob spills to a temporary file under tmp/. Commit then
// takes the hash's lock (one of 4,096 striped mutexes), and: if the blob
// exists (in either form), it only records the temporary link and
// candidate (one synced lsm batch) and drops the temporary file; else, for
// an inline blob, it adds the blob's record to that batch and is done;
// else it syncs the temporary file and, concurrently, commits that batch, then
// publishes the file create-if-absent with link(2) (EEXIST means another
// copy won), and syncs the shard directory, so a Put that returned is
// durable. The records are durable before the blob's name can be, so a
// crash never leaves a blob that no candidate covers.
//
// Link, Unlink and GC's re-check take the same lock. Link checks that the
// blob exists and writes the link with a synced lsm write; Unlink deletes
// the link and, if it was the last, adds a candidate in the same synced
// batch. Collect, under the lock, keeps a blob that has a link or a
// temporary link expiring after now, and otherwise removes the file, or
// deletes an inline blob's record (an unsynced write made under the lock,
// so that Put and Link see the blob gone at once; the lsm log recovers a
// prefix of the writes, so the synced candidate deletion that follows can
// never survive a crash without it); after the batch it syncs the touched
// shard directories and only then commits (synced) the deletion of the
// candidates and expired temporary links, so a crash leaves at worst a
// candidate whose blob is gone, which the next run drops. A blob found
// already absent gets its directory synced too: a concurrent collector
// may have removed it without syncing yet. Hence no link ever points to a
// missing blob, before or after a crash, and no blob is left without a
// link or a candidate.
//
// Uploads implement [dedup.LinkingUpload], for [dedup.Store.PutLink]:
// under the hash's lock, an inline blob (new or already stored in either
// form) and its link are one synced batch, with no temporary link or
// candidate (the link covers the blob); a new blob file is published as by
// Put, and linked with a synced write once its name is durable.
//
// # Memory budget
//
// Bodies stream between the caller and the files; an upload holds at most
// InlineMax bytes in memory. The backend keeps no per-blob state in
// memory but 4,096 striped mutexes, so its memory does
// not grow with the number of blobs or links. The meta DB's block cache
// and memtables are its budget: [Options].MetaOptions' CacheSize (default
// 64 MiB) and MemTableSize (default 64 MiB, at most three memtables).
// Inline blobs pass through the memtables, so a store that takes many of
// them uses that budget; lower MemTableSize (or InlineMax) to shrink it.
// The lsm package doc's "Memory" lists the rest of a DB's memory and how
// to set the Go memory limit from the budgets.
//
// The meta DB is locked to one process, so one directory serves one
// process; share blobs between processes with dedup/s3dedup.
//
// A Backend is safe for concurrent use.
package filededup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// Meta DB key layout (all integers big-endian; times are Unix nanoseconds
// as uint64, clamped at 0):
//
//	blob:      'b' | hash[32]                                   -> mtime[8] | bytes
//	link:      'l' | hash[32] | owner bytes                     -> empty
//	temp link: 't' | hash[32] | expiry[8] | nonce[8]            -> empty
//	candidate: 'c' | due[8]   | hash[32]  | nonce[8]            -> empty
//
// Links of one blob share the prefix 'l'|hash, so "any link left?" is one
// seek. Temporary links sort by expiry within a hash, so "any unexpired?"
// is a scan of the hash's few temporary links in expiry order.
// Candidates sort by due time, so GC reads the due ones from the front of
// the log and stops at the first one in the future. The nonce (a random
// per-Open start plus a counter) keeps two writes from sharing a key.
const (
	prefixBlob = 'b'
	prefixLink = 'l'
	prefixTemp = 't'
	prefixCand = 'c'

	candKeyLen  = 1 + 8 + 32 + 8
	lockStripes = 4096
	tmpDirs     = 16
)

// Options configures [Open]. A nil *Options and every zero field mean the
// default.
type Options struct {
	// FS, if set, holds the whole directory (blobs and meta DB) on a
	// [vfs.FS] instead of the operating system: tests use vfs.NewMem for
	// hermetic stores and vfs.NewCrashable for crash tests. Without os.Root
	// and link(2), blobs are published by a check and a rename under the
	// hash's lock. The default is nil: the operating system, confined with
	// os.Root.
	FS vfs.FS
	// InlineMax is the largest blob, in bytes, stored inline as a record
	// of the meta DB instead of as a file (see the package documentation).
	// Negative means every blob is a file. Inline blobs live in the meta
	// DB's memtables and tables, so a large InlineMax makes them grow; it
	// is at most [MaxInlineMax]. The default is DefaultInlineMax, 64 KiB.
	InlineMax int
	// MetaOptions are passed to lsm.Open for the meta DB; its FS field is
	// ignored. The default is nil: lsm's defaults.
	MetaOptions *lsm.Options
	// Store configures the [dedup.Store] that [OpenStore] returns. The
	// default is nil: dedup's defaults.
	Store *dedup.Options
}

// DefaultInlineMax is the default of [Options].InlineMax: blobs of at most
// 64 KiB are records of the meta DB.
const DefaultInlineMax = 64 << 10

// MaxInlineMax is the largest [Options].InlineMax; larger values are
// lowered to it.
const MaxInlineMax = 1 << 20

// Backend is the file-system [dedup.Backend]. It is safe for concurrent
// use.
type Backend struct {
	files     files
	db        *lsm.DB
	nonce     atomic.Uint64
	inlineMax int

	locks [lockStripes]sync.Mutex

	shardMu [256]sync.Mutex      // per first-level directory
	shards  [1 << 16]atomic.Bool // shard directory known to exist durably

	closed atomic.Bool
}

var _ dedup.Backend = (*Backend)(nil)

// Open opens (creating if needed) the blob directory dir.
func Open(dir string, opts *Options) (*Backend, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	var mo lsm.Options
	if o.MetaOptions != nil {
		mo = *o.MetaOptions
	}
	b := &Backend{inlineMax: DefaultInlineMax}
	switch {
	case o.InlineMax < 0:
		b.inlineMax = -1
	case o.InlineMax > MaxInlineMax:
		b.inlineMax = MaxInlineMax
	case o.InlineMax > 0:
		b.inlineMax = o.InlineMax
	}
	var metaDir string
	if o.FS == nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("filededup: open: %w", err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("filededup: open: %w", err)
		}
		b.files = rootFiles{root: root}
		metaDir = filepath.Join(dir, "meta")
		mo.FS = nil
	} else {
		if err := o.FS.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("filededup: open: %w", err)
		}
		b.files = vfsFiles{fs: o.FS, base: dir}
		metaDir = o.FS.PathJoin(dir, "meta")
		mo.FS = o.FS
	}
	db, err := lsm.Open(metaDir, &mo)
	if err != nil {
		b.files.close()
		return nil, fmt.Errorf("filededup: open: %w", err)
	}
	b.db = db
	if err := b.init(); err != nil {
		db.Close()
		b.files.close()
		return nil, fmt.Errorf("filededup: open: %w", err)
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	b.nonce.Store(binary.BigEndian.Uint64(seed[:]))
	return b, nil
}

// init creates blobs/ and tmp/ and removes uploads a crash left behind.
// The meta DB is open, so no other process uses the directory.
func (b *Backend) init() error {
	newDir := false
	for _, d := range []string{"blobs", "tmp"} {
		created, err := b.files.mkdir(d)
		if err != nil {
			return err
		}
		newDir = newDir || created
	}
	for i := range tmpDirs {
		if _, err := b.files.mkdir(fmt.Sprintf("tmp/%x", i)); err != nil {
			return err
		}
	}
	if newDir {
		if err := b.files.syncDir("."); err != nil {
			return err
		}
	}
	// The 256 first-level shard directories exist from the start, so that
	// publishing a blob costs at most one directory creation.
	var h dedup.Hash
	newShard := false
	for i := range 256 {
		h[0] = byte(i)
		d1, _ := shardDirs(h)
		created, err := b.files.mkdir(d1)
		if err != nil {
			return err
		}
		newShard = newShard || created
	}
	if newShard {
		if err := b.files.syncDir("blobs"); err != nil {
			return err
		}
	}
	names, err := b.files.list("tmp")
	if err != nil {
		return err
	}
	for _, n := range names {
		if len(n) == 1 {
			// One of the upload directories: empty it.
			sub, err := b.files.list("tmp/" + n)
			if err != nil {
				return err
			}
			for _, m := range sub {
				if err := b.files.remove("tmp/" + n + "/" + m); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			continue
		}
		if err := b.files.remove("tmp/" + n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Close closes the meta DB and the directory. It is idempotent.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	err := b.db.Close()
	if cerr := b.files.close(); err == nil {
		err = cerr
	}
	return err
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return dedup.ErrClosed
	}
	return nil
}

func (b *Backend) lock(h dedup.Hash) *sync.Mutex {
	return &b.locks[binary.BigEndian.Uint16(h[:2])%lockStripes]
}

func shardDirs(h dedup.Hash) (string, string) {
	var x [4]byte
	hex.Encode(x[:], h[:2])
	return "blobs/" + string(x[:2]), "blobs/" + string(x[:2]) + "/" + string(x[2:])
}

func blobPath(h dedup.Hash) string {
	_, d := shardDirs(h)
	return d + "/" + h.String()
}

// ensureShard creates h's second-level shard directory durably (init
// made the first level). Creation is serialized per first-level directory
// so that nobody publishes into a directory whose own entry is not
// durable yet.
func (b *Backend) ensureShard(h dedup.Hash) error {
	i := binary.BigEndian.Uint16(h[:2])
	if b.shards[i].Load() {
		return nil
	}
	mu := &b.shardMu[h[0]]
	mu.Lock()
	defer mu.Unlock()
	if b.shards[i].Load() {
		return nil
	}
	d1, d2 := shardDirs(h)
	created, err := b.files.mkdir(d2)
	if err != nil {
		return err
	}
	if created {
		if err := b.files.syncDir(d1); err != nil {
			return err
		}
	}
	b.shards[i].Store(true)
	return nil
}

func unixNano(t time.Time) uint64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func linkKey(h dedup.Hash, owner string) []byte {
	k := make([]byte, 0, 1+32+len(owner))
	k = append(k, prefixLink)
	k = append(k, h[:]...)
	return append(k, owner...)
}

func linkPrefix(h dedup.Hash) []byte {
	return append([]byte{prefixLink}, h[:]...)
}

func tempKey(h dedup.Hash, expiry uint64, nonce uint64) []byte {
	k := make([]byte, 0, 1+32+16)
	k = append(k, prefixTemp)
	k = append(k, h[:]...)
	k = binary.BigEndian.AppendUint64(k, expiry)
	return binary.BigEndian.AppendUint64(k, nonce)
}

// tempBound returns 't'|hash|t, the first temporary-link key of h with
// expiry t or later.
func tempBound(h dedup.Hash, t uint64) []byte {
	k := make([]byte, 0, 1+32+8)
	k = append(k, prefixTemp)
	k = append(k, h[:]...)
	return binary.BigEndian.AppendUint64(k, t)
}

func candKey(due uint64, h dedup.Hash, nonce uint64) []byte {
	k := make([]byte, 0, candKeyLen)
	k = append(k, prefixCand)
	k = binary.BigEndian.AppendUint64(k, due)
	k = append(k, h[:]...)
	return binary.BigEndian.AppendUint64(k, nonce)
}

func (b *Backend) nextNonce() uint64 { return b.nonce.Add(1) }

func blobKey(h dedup.Hash) []byte {
	k := make([]byte, 0, 1+32)
	k = append(k, prefixBlob)
	return append(k, h[:]...)
}

// getInline returns h's inline record, or ok false if h has none.
func (b *Backend) getInline(h dedup.Hash) (v []byte, ok bool, err error) {
	v, err = b.db.Get(blobKey(h))
	if errors.Is(err, lsm.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if len(v) < 8 {
		return nil, false, fmt.Errorf("filededup: %w: inline blob %s has a record of %d bytes", dedup.ErrCorrupt, h, len(v))
	}
	return v, true, nil
}

// blobSize returns the stored length of h in either form, and whether
// it is inline; fs.ErrNotExist if it is stored in neither.
func (b *Backend) blobSize(h dedup.Hash) (size int64, inline bool, err error) {
	v, ok, err := b.getInline(h)
	if err != nil {
		return 0, false, err
	}
	if ok {
		return int64(len(v) - 8), true, nil
	}
	fi, err := b.files.stat(blobPath(h))
	if err != nil {
		return 0, false, err
	}
	return fi.Size(), false, nil
}

// Create implements [dedup.Backend.Create]. The upload buffers up to
// InlineMax bytes in memory and creates its temporary file only when the
// blob turns out to be longer.
func (b *Backend) Create(ctx context.Context) (dedup.Upload, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	u := &upload{b: b}
	if b.inlineMax < 0 {
		if err := u.spill(); err != nil {
			return nil, fmt.Errorf("filededup: create: %w", err)
		}
	}
	return u, nil
}

type upload struct {
	b      *Backend
	buf    []byte   // 8 bytes for the inline record's mtime, then the bytes so far, while f is nil
	f      tempFile // the temporary file, once the bytes outgrew InlineMax
	name   string
	closed bool // f closed
	done   bool // committed or aborted
}

// spill creates the temporary file and moves the buffered bytes to it.
func (u *upload) spill() error {
	n := u.b.nextNonce()
	name := fmt.Sprintf("tmp/%x/%016x", n%tmpDirs, n)
	f, err := u.b.files.create(name)
	if err != nil {
		return err
	}
	u.f, u.name = f, name
	if len(u.buf) > 8 {
		if _, err := f.Write(u.buf[8:]); err != nil {
			return err
		}
	}
	u.buf = nil
	return nil
}

// record returns the inline blob's record (see the meta DB key layout):
// the modification time, then the bytes. It reuses buf.
func (u *upload) record(mtime time.Time) []byte {
	if u.buf == nil {
		u.buf = make([]byte, 8)
	}
	binary.BigEndian.PutUint64(u.buf[:8], unixNano(mtime))
	return u.buf
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, errors.New("filededup: write after commit or abort")
	}
	if u.f == nil {
		n := 0
		if u.buf != nil {
			n = len(u.buf) - 8
		}
		if n+len(p) <= u.b.inlineMax {
			if u.buf == nil {
				u.buf = make([]byte, 8, 8+len(p))
			}
			u.buf = append(u.buf, p...)
			return len(p), nil
		}
		if err := u.spill(); err != nil {
			return 0, err
		}
	}
	return u.f.Write(p)
}

func (u *upload) closeFile() error {
	if u.closed || u.f == nil {
		return nil
	}
	u.closed = true
	return u.f.Close()
}

// removeTemp closes and removes the temporary file, if there is one.
func (u *upload) removeTemp() error {
	u.buf = nil
	if u.f == nil {
		return nil
	}
	u.closeFile()
	if err := u.b.files.remove(u.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Abort implements [dedup.Upload.Abort].
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	return u.removeTemp()
}

// Commit implements [dedup.Upload.Commit]; the package documentation's
// Semantics section explains the order of its steps.
func (u *upload) Commit(ctx context.Context, ref dedup.Ref, expires time.Time) error {
	return u.commit(ctx, ref, expires, "")
}

// CommitLink implements [dedup.LinkingUpload.CommitLink]: Commit, then
// the link of owner to the blob. For an inline blob (new or already
// stored) it is one synced batch; a blob file is published as by Commit
// first, and linked after its name is durable.
func (u *upload) CommitLink(ctx context.Context, ref dedup.Ref, expires time.Time, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	return u.commit(ctx, ref, expires, owner)
}

// commit publishes the blob and, if owner is not empty, links it.
func (u *upload) commit(ctx context.Context, ref dedup.Ref, expires time.Time, owner string) (err error) {
	if u.done {
		return errors.New("filededup: commit after commit or abort")
	}
	b := u.b
	defer func() {
		u.done = true
		// After a successful publish the temporary name is a second link to
		// the blob; after a failure it is garbage. Either way it goes.
		if rerr := u.removeTemp(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := b.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h := ref.Hash
	exp := unixNano(expires)

	mu := b.lock(h)
	mu.Lock()
	defer mu.Unlock()

	size, _, serr := b.blobSize(h)
	if serr != nil && !errors.Is(serr, fs.ErrNotExist) {
		return serr
	}
	exists := serr == nil && size == ref.Size
	batch := b.db.NewBatch()
	var lkey []byte
	if owner != "" {
		lkey = linkKey(h, owner)
	}
	switch {
	case exists && lkey != nil:
		// Linked, the blob needs no temporary link.
		batch.Set(lkey, nil)
		return batch.Commit(lsm.Sync)
	case u.f == nil && lkey != nil:
		batch.Set(blobKey(h), u.record(time.Now()))
		batch.Set(lkey, nil)
		return batch.Commit(lsm.Sync)
	}
	batch.Set(tempKey(h, exp, b.nextNonce()), nil)
	batch.Set(candKey(exp, h, b.nextNonce()), nil)
	switch {
	case exists:
		return batch.Commit(lsm.Sync)
	case u.f == nil:
		// A damaged file of the wrong length may remain: the inline record
		// takes precedence, and GC removes both.
		batch.Set(blobKey(h), u.record(time.Now()))
		return batch.Commit(lsm.Sync)
	}
	if err := u.publish(h, batch, serr == nil); err != nil {
		return err
	}
	if lkey == nil {
		return nil
	}
	return b.db.Set(lkey, nil, lsm.Sync)
}

// publish makes the temporary file the blob file h, with batch (its
// temporary link and candidate) durable first. damaged says a file of the
// wrong length holds the name, to be replaced.
func (u *upload) publish(h dedup.Hash, batch *lsm.Batch, damaged bool) error {
	b := u.b
	// The file's data, the records and the blob's shard directory become
	// durable together (three independent syncs, run side by side), then
	// the name.
	synced := make(chan error, 1)
	go func() {
		err := u.f.Sync()
		if cerr := u.closeFile(); err == nil {
			err = cerr
		}
		synced <- err
	}()
	var sharded chan error
	if !b.shards[binary.BigEndian.Uint16(h[:2])].Load() {
		sharded = make(chan error, 1)
		go func() { sharded <- b.ensureShard(h) }()
	}
	cerr := batch.Commit(lsm.Sync)
	serrs := <-synced
	if sharded != nil {
		serrs = errors.Join(serrs, <-sharded)
	}
	if serrs != nil {
		return serrs
	}
	if cerr != nil {
		return cerr
	}
	final := blobPath(h)
	var err error
	if damaged {
		// A stored copy of the wrong length is damaged; the new bytes
		// replace it.
		err = b.files.replace(u.name, final)
	} else {
		err = b.files.link(u.name, final)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
	}
	if err != nil {
		return err
	}
	_, dir := shardDirs(h)
	return b.files.syncDir(dir)
}

// Open implements [dedup.Backend.Open].
func (b *Backend) Open(ctx context.Context, h dedup.Hash) (dedup.Blob, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	v, ok, err := b.getInline(h)
	if err != nil {
		return nil, err
	}
	if ok {
		return &inlineBlob{Reader: bytes.NewReader(v[8:])}, nil
	}
	bl, err := b.files.open(blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, dedup.ErrNotFound
	}
	return bl, err
}

// inlineBlob is an open inline blob: a copy of its bytes.
type inlineBlob struct{ *bytes.Reader }

func (b *inlineBlob) Close() error { return nil }

// Stat implements [dedup.Backend.Stat].
func (b *Backend) Stat(ctx context.Context, h dedup.Hash) (dedup.BlobInfo, error) {
	if err := b.check(); err != nil {
		return dedup.BlobInfo{}, err
	}
	v, ok, err := b.getInline(h)
	if err != nil {
		return dedup.BlobInfo{}, err
	}
	if ok {
		return dedup.BlobInfo{Size: int64(len(v) - 8), ModTime: time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))}, nil
	}
	fi, err := b.files.stat(blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return dedup.BlobInfo{}, dedup.ErrNotFound
	}
	if err != nil {
		return dedup.BlobInfo{}, err
	}
	return dedup.BlobInfo{Size: fi.Size(), ModTime: modTime(fi)}, nil
}

// Link implements [dedup.Backend.Link].
func (b *Backend) Link(ctx context.Context, h dedup.Hash, owner string) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	key := linkKey(h, owner)
	mu := b.lock(h)
	mu.Lock()
	defer mu.Unlock()
	if _, _, err := b.blobSize(h); errors.Is(err, fs.ErrNotExist) {
		return dedup.ErrNotFound
	} else if err != nil {
		return err
	}
	if _, err := b.db.Get(key); err == nil {
		return nil
	} else if !errors.Is(err, lsm.ErrNotFound) {
		return err
	}
	return b.db.Set(key, nil, lsm.Sync)
}

func checkOwner(owner string) error {
	if err := dedup.CheckOwner(owner); err != nil {
		return fmt.Errorf("filededup: %w", err)
	}
	return nil
}

// Unlink implements [dedup.Backend.Unlink].
func (b *Backend) Unlink(ctx context.Context, h dedup.Hash, owner string, now time.Time) error {
	if err := checkOwner(owner); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	key := linkKey(h, owner)
	mu := b.lock(h)
	mu.Lock()
	defer mu.Unlock()
	if _, err := b.db.Get(key); errors.Is(err, lsm.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	last, err := b.onlyLink(h, key)
	if err != nil {
		return err
	}
	batch := b.db.NewBatch()
	batch.Delete(key)
	if last {
		batch.Set(candKey(unixNano(now), h, b.nextNonce()), nil)
	}
	return batch.Commit(lsm.Sync)
}

// onlyLink reports whether key is the only link of h.
func (b *Backend) onlyLink(h dedup.Hash, key []byte) (bool, error) {
	it, err := b.db.NewPrefixIter(linkPrefix(h))
	if err != nil {
		return false, err
	}
	only := true
	for ok := it.First(); ok; ok = it.Next() {
		if string(it.Key()) != string(key) {
			only = false
			break
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return false, err
	}
	return only, it.Close()
}

// anyKey reports whether the DB has a key in [lo, hi).
func (b *Backend) anyKey(lo, hi []byte) (bool, error) {
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return false, err
	}
	ok := it.First()
	if err := it.Error(); err != nil {
		it.Close()
		return false, err
	}
	return ok, it.Close()
}

// Candidates implements [dedup.Backend.Candidates].
func (b *Backend) Candidates(ctx context.Context, now time.Time, after string, limit int) ([]dedup.Candidate, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	lo := []byte{prefixCand}
	if after != "" {
		lo = append([]byte(after), 0)
	}
	hi := binary.BigEndian.AppendUint64([]byte{prefixCand}, unixNano(now)+1)
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var out []dedup.Candidate
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) != candKeyLen {
			it.Close()
			return nil, fmt.Errorf("filededup: %w: candidate key of %d bytes", dedup.ErrCorrupt, len(k))
		}
		c := dedup.Candidate{Key: string(k), Due: time.Unix(0, int64(binary.BigEndian.Uint64(k[1:9])))}
		copy(c.Hash[:], k[9:41])
		out = append(out, c)
	}
	if err := it.Error(); err != nil {
		it.Close()
		return nil, err
	}
	return out, it.Close()
}

// Collect implements [dedup.Backend.Collect].
func (b *Backend) Collect(ctx context.Context, now time.Time, cands []dedup.Candidate) ([]dedup.Outcome, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	n := unixNano(now)
	outs := make([]dedup.Outcome, 0, len(cands))
	batch := b.db.NewBatch()
	dirs := map[string]bool{}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		o, expired, err := b.collectOne(c.Hash, n, dirs)
		if err != nil {
			return nil, fmt.Errorf("filededup: collect %s: %w", c.Hash, err)
		}
		outs = append(outs, o)
		batch.Delete([]byte(c.Key))
		// Point deletes, not a range delete: range tombstones would pile up
		// and slow every later read.
		for _, k := range expired {
			batch.Delete(k)
		}
	}
	// The removals must be durable before the candidates that cover the
	// blobs go.
	if err := b.syncDirs(dirs); err != nil {
		return nil, err
	}
	if err := batch.Commit(lsm.Sync); err != nil {
		return nil, err
	}
	return outs, nil
}

// collectOne decides one hash under its lock, deleting the blob file if
// it is garbage, and returns the hash's expired temporary-link keys.
func (b *Backend) collectOne(h dedup.Hash, now uint64, dirs map[string]bool) (dedup.Outcome, [][]byte, error) {
	mu := b.lock(h)
	mu.Lock()
	defer mu.Unlock()
	lp := linkPrefix(h)
	if ok, err := b.anyKey(lp, lsm.PrefixUpperBound(lp)); err != nil || ok {
		return dedup.Outcome{Verdict: dedup.Linked}, nil, err
	}
	tp := tempBound(h, 0)[:1+32]
	it, err := b.db.NewPrefixIter(tp)
	if err != nil {
		return dedup.Outcome{}, nil, err
	}
	var expired [][]byte
	protected := false
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) >= 1+32+8 && binary.BigEndian.Uint64(k[33:41]) > now {
			protected = true
			break
		}
		expired = append(expired, bytes.Clone(k))
	}
	if err := it.Error(); err != nil {
		it.Close()
		return dedup.Outcome{}, nil, err
	}
	if err := it.Close(); err != nil {
		return dedup.Outcome{}, nil, err
	}
	if protected {
		return dedup.Outcome{Verdict: dedup.Protected}, expired, nil
	}
	v, inline, err := b.getInline(h)
	if err != nil {
		return dedup.Outcome{}, nil, err
	}
	name := blobPath(h)
	fi, ferr := b.files.stat(name)
	_, d := shardDirs(h)
	if inline {
		// Deleted now, under the lock, so that a Put or Link that follows
		// sees it gone; unsynced, because the synced commit of the
		// candidate's deletion comes after it in the log. A damaged file
		// the record shadowed goes too.
		if err := b.db.Delete(blobKey(h), lsm.NoSync); err != nil {
			return dedup.Outcome{}, nil, err
		}
		if ferr == nil {
			if err := b.files.remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return dedup.Outcome{}, nil, err
			}
			dirs[d] = true
		}
		return dedup.Outcome{Verdict: dedup.Deleted, Size: int64(len(v) - 8)}, expired, nil
	}
	err = ferr
	if errors.Is(err, fs.ErrNotExist) {
		// Another collector may have removed the file without syncing the
		// directory yet; the candidate may only go once the absence is
		// durable.
		dirs[d] = true
		return dedup.Outcome{Verdict: dedup.Absent}, expired, nil
	} else if err != nil {
		return dedup.Outcome{}, nil, err
	}
	if err := b.files.remove(name); err != nil {
		return dedup.Outcome{}, nil, err
	}
	dirs[d] = true
	return dedup.Outcome{Verdict: dedup.Deleted, Size: fi.Size()}, expired, nil
}

// syncDirs syncs the directories concurrently: each is its own fsync, and
// the file system overlaps them.
func (b *Backend) syncDirs(dirs map[string]bool) error {
	sem := make(chan struct{}, 16)
	errc := make(chan error, len(dirs))
	for d := range dirs {
		sem <- struct{}{}
		go func() {
			err := b.files.syncDir(d)
			if errors.Is(err, fs.ErrNotExist) {
				// Never created durably (a Put that crashed before
				// publishing): nothing to make durable.
				err = nil
			}
			errc <- err
			<-sem
		}()
	}
	var err error
	for range dirs {
		err = errors.Join(err, <-errc)
	}
	return err
}
