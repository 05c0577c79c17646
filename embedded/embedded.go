// Package embedded opens every mailbricks block in one local directory,
// with nothing to install: a mailbox store whose search index follows it,
// a deduplicating blob store for bodies and attachments, a work queue and
// sender reputation state, each on its embedded backend, with one call and
// one Close.
//
//	mail, err := embedded.Open("/var/lib/mail", nil)
//	if err != nil { … }
//	defer mail.Close()
//	m, err := mail.Mailbox.Append(ctx, user, mailbox.Inbox, body, nil)
//	res, err := mail.Index.SearchString(ctx, user, "from:alice has:attachment", nil)
//
// # Layout
//
// The directory holds one subdirectory per block: mailbox (lsmmailbox),
// index (lsmindex), blobs (filededup), queue (lsmqueue) and reputation
// (lsmreputation). Each is an independent lsm database (blobs: files plus
// an lsm database of links), so a block can later be moved to a server
// backend alone: open that block's server backend and the others from
// their subdirectories with the per-block constructors
// ([lsmmailbox.OpenStore], [lsmindex.OpenIndex], [filededup.OpenStore],
// [lsmqueue.OpenQueue], [lsmreputation.OpenTracker]) that Open uses.
//
// Separate databases rather than one shared lsm database: measured on 2
// cores with synced writes, 8 writers each committing a mailbox-shaped and
// an index-shaped batch, two databases committed 1.17-1.27x as many
// operations per second as one shared database (593-644 against 748-817
// microseconds per operation, two runs side by side): the two logs sync in
// parallel, while a shared log serializes both blocks' syncs. Separate
// databases also keep each block's key encoding, merge operator and
// compaction its own.
// BenchmarkSharedDB in this package repeats the measurement.
//
// # Memory
//
// Each block's memory is bounded by its options, not by the number of
// users or messages. The mailbox, index, blobs and queue blocks each have
// an lsm database with its own block cache and up to three memtables
// ([Options].LSM: CacheSize, default 64 MiB, and MemTableSize, default
// 64 MiB, so 256 MiB per database at the defaults); the index adds its
// per-user caches ([Options].IndexMemoryBudget, default 256 MiB) and the
// reputation tracker its database (a 64 MiB cache, 16 MiB memtables) and
// suppression cache ([Options].ReputationMemoryBudget, default 64 MiB).
// A server with less memory sets smaller budgets: the scale benchmark
// (bench/scale.go, many users each receiving mail, indexed as it
// arrives) runs with 16 MiB caches, 8 MiB memtables and a 32 MiB index
// budget.
//
// The budgets bound what the blocks keep; between collections the Go heap
// also holds garbage, as much again as the live heap with the default
// GOGC=100. A program embedding the blocks in a fixed amount of memory
// sets the Go runtime's soft memory limit to the sum of the budgets it
// configured, with [runtime/debug.SetMemoryLimit] (or GOMEMLIMIT): the
// collector then keeps the heap near the limit instead of letting it
// double. The memtables are outside the Go heap (see the lsm package's
// "Memory"), so the limit leaves their share to the heap as headroom. In
// the scale benchmark (152 MiB of budgets, a limit at the budgets) the
// peak resident size was 1.7–1.8× the budgets with 1,000 users and 1.97×
// with 10,000 (100 messages each), a 58 MiB binary and the benchmark's
// 31 MiB corpus included.
//
// # Closing
//
// [Blocks.Close] closes in dependency order (mailbox, which writes to the
// index and the blob store, first; blobs last), so callers need not know
// it. Each block may also be used and closed on its own.
package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

// Options configures [Open]. A nil *Options and every zero field mean the
// default. Options are copied by Open.
type Options struct {
	// FS is the file system the directory is on; tests pass vfs.NewMem()
	// for a store in memory. The default is nil: the operating system.
	FS vfs.FS
	// NoSync acknowledges mailbox and index writes before they are synced
	// to disk: faster, and a machine crash may lose the last acknowledged
	// writes (the stores stay consistent). The default is false: every
	// acknowledged write is durable.
	NoSync bool
	// Logger receives background events and failures that do not fail a
	// call. The default is nil: they are discarded.
	Logger *slog.Logger
	// Mailbox configures the mailbox store; its Index and Logger are set
	// by Open. The default is nil: mailbox's defaults.
	Mailbox *mailbox.Options
	// Index configures the search index. The default is nil: index's
	// defaults.
	Index *index.Options
	// Blobs configures the blob store. The default is nil: dedup's
	// defaults.
	Blobs *dedup.Options
	// Queue configures the work queue. The default is nil: queue's
	// defaults.
	Queue *queue.Options
	// Reputation configures the reputation tracker (IP pools, warm-up,
	// rates). The default is nil: reputation's defaults, with no IP pools.
	Reputation *reputation.Options
	// IndexMemoryBudget bounds the search index's per-user caches, in
	// bytes (lsmindex.Options.MemoryBudget). The default, 0, is
	// lsmindex.DefaultMemoryBudget (256 MiB).
	IndexMemoryBudget int64
	// LSM configures the lsm database of each of the mailbox, index, blobs
	// and queue blocks (each has its own; see "Memory" in the package
	// doc): CacheSize and MemTableSize are each database's budget. Open
	// copies it for each block; its FS and Merger are ignored (each block
	// uses FS above and its own merge operator). The default is nil: lsm's
	// defaults.
	LSM *lsm.Options
	// ReputationMemoryBudget bounds the reputation state cached in memory
	// (suppression entries, rate buckets), in bytes
	// (lsmreputation.Options.MemoryBudget). The default, 0, is
	// lsmreputation.DefaultMemoryBudget (64 MiB).
	ReputationMemoryBudget int64
}

// Blocks are the blocks [Open] opened, ready to use. Each field is safe
// for concurrent use; the Index is kept current by the Mailbox.
type Blocks struct {
	// Mailbox stores users' mail; every change it commits is applied to
	// Index before the call returns.
	Mailbox *mailbox.Store
	// Index searches users' mail (Gmail-style queries).
	Index *index.Index
	// Blobs holds message bodies and attachments, each distinct part
	// once.
	Blobs *dedup.Store
	// Queue is a durable work queue (incoming and outgoing mail jobs).
	Queue *queue.Queue
	// Reputation decides sending IPs and rates and keeps the
	// suppression list.
	Reputation *reputation.Tracker

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) every block in dir; see the package doc
// for the layout. On error nothing stays open.
func Open(dir string, opts *Options) (*Blocks, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		if err := vfs.Default.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
		}
	} else if err := o.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	b := &Blocks{}
	fail := func(err error) (*Blocks, error) {
		return nil, errors.Join(fmt.Errorf("embedded: open %s: %w", dir, err), b.Close())
	}
	var err error
	// lsmOpts returns a copy of o.LSM for one block, nil for lsm's
	// defaults.
	lsmOpts := func() *lsm.Options {
		if o.LSM == nil {
			return nil
		}
		lo := *o.LSM
		lo.FS, lo.Merger = o.FS, nil
		return &lo
	}
	if b.Blobs, err = filededup.OpenStore(filepath.Join(dir, "blobs"), &filededup.Options{FS: o.FS, Store: o.Blobs, MetaOptions: lsmOpts()}); err != nil {
		return fail(err)
	}
	if b.Index, err = lsmindex.OpenIndex(filepath.Join(dir, "index"), &lsmindex.Options{FS: o.FS, NoSync: o.NoSync, Logger: logger, Index: o.Index, MemoryBudget: o.IndexMemoryBudget, LSM: lsmOpts()}); err != nil {
		return fail(err)
	}
	var mo mailbox.Options
	if o.Mailbox != nil {
		mo = *o.Mailbox
	}
	mo.Index = b.Index
	if mo.Logger == nil {
		mo.Logger = logger
	}
	if b.Mailbox, err = lsmmailbox.OpenStore(filepath.Join(dir, "mailbox"), b.Blobs, &lsmmailbox.Options{FS: o.FS, NoSync: o.NoSync, Store: &mo, LSM: lsmOpts()}); err != nil {
		return fail(err)
	}
	if b.Queue, err = lsmqueue.OpenQueue(filepath.Join(dir, "queue"), &lsmqueue.Options{FS: o.FS, Queue: o.Queue, LSM: lsmOpts()}); err != nil {
		return fail(err)
	}
	if b.Reputation, err = lsmreputation.OpenTracker(filepath.Join(dir, "reputation"), &lsmreputation.Options{FS: o.FS, Logger: logger, Tracker: o.Reputation, MemoryBudget: o.ReputationMemoryBudget}); err != nil {
		return fail(err)
	}
	return b, nil
}

// Close closes every block, mailbox first and blobs last, and returns
// their errors joined. It is idempotent.
func (b *Blocks) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		if b.Mailbox != nil {
			errs = append(errs, b.Mailbox.Close())
		}
		if b.Index != nil {
			errs = append(errs, b.Index.Close())
		}
		if b.Queue != nil {
			errs = append(errs, b.Queue.Close())
		}
		if b.Reputation != nil {
			errs = append(errs, b.Reputation.Close())
		}
		if b.Blobs != nil {
			errs = append(errs, b.Blobs.Close())
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}
