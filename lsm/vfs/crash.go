package vfs

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
)

// CrashableFS is an in-memory [FS] that tracks what a real disk would hold
// after a power loss, and can produce that state with [CrashableFS.CrashClone].
// It behaves like [NewMem] (same paths, errors and locking), with these
// durability rules:
//
//   - File data is durable up to the last [File.Sync] of any handle on the
//     file. Files are append-only, so the durable data is a prefix. What a
//     crash leaves of the data written after it depends on
//     [CrashCloneOptions]: nothing, a prefix of it ([UnsyncedPrefix]), or a
//     random subset of its pages with zeros for the others
//     ([UnsyncedPages]).
//   - A file's data belongs to the file (the inode), not to its name. A name
//     (a directory entry) is created, replaced, renamed or removed durably
//     only when its directory is synced with OpenDir(dir).Sync(). A file that
//     was created, written and synced, but whose directory was not synced
//     afterwards, is gone after a crash; an unsynced rename is undone; an
//     unsynced removal is undone, and the file comes back with its durable
//     data.
//   - Create of an existing name makes a new, empty file and points the name
//     at it; until the directory is synced, a crash brings back the old file
//     with its durable data.
//   - Directories made by [FS.MkdirAll] and removals of empty directories are
//     durable at once. (A real file system needs the parent synced too; the
//     engine does not own the directories above its own, so this model does
//     not ask for it.)
//
// A CrashableFS is safe for concurrent use, including CrashClone during other
// operations.
type CrashableFS struct {
	fs *memFS
}

var _ FS = (*CrashableFS)(nil)

// NewCrashable returns a new, empty [CrashableFS].
func NewCrashable() *CrashableFS {
	return &CrashableFS{fs: newMemFS(true)}
}

// CrashPageSize is the page size of the [UnsyncedPages] crash model: the
// unit in which it keeps or loses unsynced data, 4 KiB like the page cache
// of most systems.
const CrashPageSize = 4 << 10

// UnsyncedModel says what a crash leaves of a file's unsynced data, the
// data written after its last sync, when [CrashCloneOptions] lets the file
// keep some of it.
type UnsyncedModel int

// The crash models.
const (
	// UnsyncedPrefix keeps a random-length prefix of the unsynced data, from
	// one byte to all of it, as a disk that writes a file's data in order
	// but may lose the tail.
	UnsyncedPrefix UnsyncedModel = iota
	// UnsyncedPages models out-of-order page writeback: the file keeps a
	// random length between its synced length (exclusive) and its full
	// length (half the time the full length, as when the file system
	// updated the size before the data), and within it each
	// [CrashPageSize]-aligned page holding unsynced bytes independently
	// keeps them or reads as zeros in those bytes (the synced bytes of the
	// page the last sync ended in always survive). A crash can so leave a
	// page of zeros with intact data after it: a hole. Nothing synced ever
	// follows a hole, since a sync persists every page before it.
	UnsyncedPages
)

// String returns the model's name: "prefix" or "pages".
func (m UnsyncedModel) String() string {
	switch m {
	case UnsyncedPrefix:
		return "prefix"
	case UnsyncedPages:
		return "pages"
	}
	return fmt.Sprintf("UnsyncedModel(%d)", int(m))
}

// CrashCloneOptions configures [CrashableFS.CrashClone]. The zero value keeps
// exactly the durable state.
type CrashCloneOptions struct {
	// Seed seeds the random choices of the clone; the same seed on the same
	// file system state gives the same clone. The default is 0.
	Seed int64
	// UnsyncedDataPercent is the probability, in percent, that a file
	// surviving the crash also keeps some of the data written after its
	// last sync, chosen by Unsynced. It must be between 0 and 100. The
	// default is 0: unsynced data is always lost.
	UnsyncedDataPercent int
	// Unsynced is the crash model that chooses which unsynced data a file
	// keeps. The default is [UnsyncedPrefix].
	Unsynced UnsyncedModel
}

// CrashClone returns a new, independent [CrashableFS] holding what a disk
// would hold after a power loss at this instant: the directory entries as of
// each directory's last sync, and for each file reachable through them its
// synced data plus, as chosen by opts, part of its unsynced data. In the
// clone everything is durable. The clone shares no memory with fs: later
// writes to either do not show in the other.
//
// CrashClone may be called while other goroutines use fs; it takes a
// consistent cut, waiting for operations in progress to finish and holding
// off new ones while it copies. CrashClone panics if
// opts.UnsyncedDataPercent is outside [0, 100] or opts.Unsynced is not a
// model.
func (fs *CrashableFS) CrashClone(opts CrashCloneOptions) *CrashableFS {
	pct := opts.UnsyncedDataPercent
	if pct < 0 || pct > 100 {
		panic(fmt.Sprintf("vfs: CrashCloneOptions.UnsyncedDataPercent %d outside [0, 100]", pct))
	}
	if opts.Unsynced != UnsyncedPrefix && opts.Unsynced != UnsyncedPages {
		panic(fmt.Sprintf("vfs: CrashCloneOptions.Unsynced %d is not a crash model", int(opts.Unsynced)))
	}
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x6d61696c62726963 /* "mailbric" */))

	m := fs.fs
	m.mu.Lock()
	defer m.mu.Unlock()

	// Walk the durable entries depth-first in name order, so that the random
	// choices, and so the clone, depend only on the seed and the state.
	// clones maps each node to its copy, so a file with two durable names
	// (a cross-directory rename with both directories synced at different
	// times) stays one file, and a cycle of directories ends.
	clones := make(map[*memNode]*memNode)
	var clone func(n *memNode) *memNode
	clone = func(n *memNode) *memNode {
		if c, ok := clones[n]; ok {
			return c
		}
		if n.isDir {
			c := newDirNode(true, n.modTime)
			clones[n] = c
			for _, name := range slices.Sorted(maps.Keys(n.durable)) {
				cc := clone(n.durable[name])
				c.children[name] = cc
				c.durable[name] = cc
			}
			return c
		}
		n.mu.RLock()
		defer n.mu.RUnlock()
		keep := n.synced
		if unsynced := n.data.size - n.synced; unsynced > 0 && pct > 0 && rng.IntN(100) < pct {
			if opts.Unsynced == UnsyncedPages && rng.IntN(2) == 0 {
				keep = n.data.size
			} else {
				keep += 1 + rng.IntN(unsynced)
			}
		}
		data := n.data.clonePrefix(keep)
		if opts.Unsynced == UnsyncedPages {
			// Lose whole pages of the unsynced part, keeping the synced
			// bytes of the page the last sync ended in.
			for p := n.synced / CrashPageSize * CrashPageSize; p < keep; p += CrashPageSize {
				if rng.IntN(2) == 0 {
					data.zero(max(p, n.synced), min(p+CrashPageSize, keep))
				}
			}
		}
		c := &memNode{modTime: n.modTime, data: data, synced: keep}
		clones[n] = c
		return c
	}
	out := &memFS{crashable: true, root: clone(m.root), locks: make(map[string]bool)}
	return &CrashableFS{fs: out}
}

// Create implements [FS.Create].
func (fs *CrashableFS) Create(name string) (File, error) { return fs.fs.Create(name) }

// Open implements [FS.Open].
func (fs *CrashableFS) Open(name string) (File, error) { return fs.fs.Open(name) }

// OpenDir implements [FS.OpenDir].
func (fs *CrashableFS) OpenDir(name string) (File, error) { return fs.fs.OpenDir(name) }

// Remove implements [FS.Remove].
func (fs *CrashableFS) Remove(name string) error { return fs.fs.Remove(name) }

// Rename implements [FS.Rename].
func (fs *CrashableFS) Rename(oldname, newname string) error {
	return fs.fs.Rename(oldname, newname)
}

// MkdirAll implements [FS.MkdirAll].
func (fs *CrashableFS) MkdirAll(dir string, perm os.FileMode) error {
	return fs.fs.MkdirAll(dir, perm)
}

// List implements [FS.List].
func (fs *CrashableFS) List(dir string) ([]string, error) { return fs.fs.List(dir) }

// Stat implements [FS.Stat].
func (fs *CrashableFS) Stat(name string) (os.FileInfo, error) { return fs.fs.Stat(name) }

// Lock implements [FS.Lock]. Locks exclude other Lock calls on the same
// CrashableFS; a clone starts with no locks held, as after a restart.
func (fs *CrashableFS) Lock(name string) (io.Closer, error) { return fs.fs.Lock(name) }

// PathJoin implements [FS.PathJoin] with [path.Join].
func (fs *CrashableFS) PathJoin(elem ...string) string { return fs.fs.PathJoin(elem...) }
