// Package vfs is the file system interface under the lsm engine, with an
// operating-system implementation ([Default]), an in-memory one ([NewMem]),
// a crash-simulating one ([NewCrashable]) and a fault-injecting wrapper
// ([NewErrorFS]).
//
// The engine performs all of its I/O through an [FS], so tests can run the
// real engine in memory, crash it at any point and reopen what a real disk
// would have kept, or make the Nth write, sync or rename fail.
//
// # Durability
//
// Data written to a [File] is durable once [File.Sync] returns. A new, renamed
// or removed name is durable once the directory holding it has been opened
// with [FS.OpenDir] and synced. Writing a file durably under its final name
// therefore takes: Create, Write, Sync, Close, then OpenDir(dir).Sync().
// [CrashableFS] enforces exactly these rules, so a crash test on it finds a
// missing sync that a real machine would only reveal after a power loss.
//
// # Crash tests
//
// A crash test runs a workload on [NewCrashable], takes
// [CrashableFS.CrashClone] at some instant (possibly while the workload is
// still running), reopens the store on the clone and checks that everything
// acknowledged as durable is there:
//
//	fs := vfs.NewCrashable()
//	db := open(fs) // the workload
//	...
//	crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: seed, UnsyncedDataPercent: 50})
//	reopened := open(crashed) // must succeed and hold all synced writes
//
// [CrashCloneOptions] chooses the disk model for the data written after a
// file's last sync: lost, kept as a prefix ([UnsyncedPrefix], a disk that
// writes in order), or kept page by page with zeros for the lost pages
// ([UnsyncedPages], out-of-order page writeback, which can leave a hole
// with intact data after it). A store's crash tests should pass under both.
//
// # Errors
//
// If a named file or directory does not exist, operations return an error
// for which errors.Is(err, os.ErrNotExist). If a file is already locked,
// [FS.Lock] returns an error for which errors.Is(err, [ErrLocked]). Errors
// injected by [ErrorFS] satisfy errors.Is(err, [ErrInjected]).
package vfs

import (
	"errors"
	"io"
	"os"
)

// ErrLocked is returned (wrapped) by [FS.Lock] when the file is already
// locked, by this process or, for [Default], by another one.
var ErrLocked = errors.New("vfs: file is locked")

// File is an open file. Files returned by [FS.Create] are written
// sequentially (append-only); files returned by [FS.Open] are read-only.
//
// After Close, every method, including Close, returns an error for which
// errors.Is(err, os.ErrClosed), like [os.File].
//
// A File is not safe for concurrent use, except that ReadAt may be called
// concurrently with other ReadAt calls.
type File interface {
	io.Reader
	// ReadAt reads len(p) bytes at offset off. Like [os.File.ReadAt], it
	// returns io.EOF (possibly with n > 0) when the file ends before p is
	// full.
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's contents written so far durable. On a directory
	// opened with [FS.OpenDir], Sync makes the creations, renames and
	// removals of the directory's entries durable.
	Sync() error
	// Stat returns the file's metadata; Size is the current length.
	Stat() (os.FileInfo, error)
}

// FS is a file system. Paths use the separator of [FS.PathJoin].
//
// An FS must be safe for concurrent use.
type FS interface {
	// Create creates the named file for reading and writing, truncating it
	// if it exists. The parent directory must exist; if it does not, the
	// error satisfies errors.Is(err, os.ErrNotExist). The new directory
	// entry is durable only after the parent directory is synced.
	Create(name string) (File, error)
	// Open opens the named file for reading. If it does not exist, the error
	// satisfies errors.Is(err, os.ErrNotExist).
	Open(name string) (File, error)
	// OpenDir opens a directory so that it can be synced.
	OpenDir(name string) (File, error)
	// Remove removes the named file or empty directory. A file that is open
	// stays readable through its open handles. The removal is durable only
	// after the parent directory is synced.
	Remove(name string) error
	// Rename atomically replaces newname with oldname. The change is durable
	// only after the directories of both names are synced.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and any missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of the entries of dir, files and
	// subdirectories, sorted.
	List(dir string) ([]string, error)
	// Stat returns the named file's metadata.
	Stat(name string) (os.FileInfo, error)
	// Lock acquires an exclusive lock on the named file, creating it if
	// needed, so that two processes cannot open one database. Lock does not
	// wait: if the file is already locked, it returns an error for which
	// errors.Is(err, ErrLocked). The lock is released by closing the
	// returned io.Closer; closing it again does nothing.
	Lock(name string) (io.Closer, error)
	// PathJoin joins path elements.
	PathJoin(elem ...string) string
}
