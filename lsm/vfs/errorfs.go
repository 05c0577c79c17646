package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// ErrInjected is the error [FailNth] and [FailAfter] inject. Errors returned
// by [ErrorFS] for injected faults wrap it.
var ErrInjected = errors.New("vfs: injected error")

// Op is a kind of file system operation, as counted and failed by [ErrorFS].
type Op int

// The kinds of operations.
const (
	// OpCreate is [FS.Create].
	OpCreate Op = iota
	// OpOpen is [FS.Open].
	OpOpen
	// OpOpenDir is [FS.OpenDir].
	OpOpenDir
	// OpRead is [File.Read] and [File.ReadAt].
	OpRead
	// OpWrite is [File.Write].
	OpWrite
	// OpSync is [File.Sync], of files and of directories.
	OpSync
	// OpClose is [File.Close].
	OpClose
	// OpRemove is [FS.Remove].
	OpRemove
	// OpRename is [FS.Rename].
	OpRename
	// OpMkdirAll is [FS.MkdirAll].
	OpMkdirAll
	// OpList is [FS.List].
	OpList
	// OpStat is [FS.Stat] and [File.Stat].
	OpStat
	// OpLock is [FS.Lock].
	OpLock

	numOps
)

var opNames = [numOps]string{
	OpCreate:   "create",
	OpOpen:     "open",
	OpOpenDir:  "opendir",
	OpRead:     "read",
	OpWrite:    "write",
	OpSync:     "sync",
	OpClose:    "close",
	OpRemove:   "remove",
	OpRename:   "rename",
	OpMkdirAll: "mkdirall",
	OpList:     "list",
	OpStat:     "stat",
	OpLock:     "lock",
}

// String returns the lower-case name of the operation, such as "write".
func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Injector decides which operations of an [ErrorFS] fail.
//
// MaybeError is called before each operation, with the operation's kind and
// path (for a rename, the old name; for a file operation, the name the file
// was opened with). A non-nil error fails the operation, which then does
// nothing. MaybeError is called concurrently when the file system is used
// concurrently, so an Injector must be safe for concurrent use.
type Injector interface {
	MaybeError(op Op, path string) error
}

// InjectorFunc adapts a function to an [Injector]. It is as safe for
// concurrent use as the function.
type InjectorFunc func(op Op, path string) error

// MaybeError returns f(op, path).
func (f InjectorFunc) MaybeError(op Op, path string) error { return f(op, path) }

// FailNth returns an [Injector] that fails the nth (1-based) operation of
// kind op that it sees with [ErrInjected], and no other. It is safe for
// concurrent use: exactly one operation fails even when they race.
//
// Counting starts when the Injector is first consulted, so a test can count
// a workload's operations with [ErrorFS.Counts], then rerun the workload
// once per n on a fresh ErrorFS with FailNth(op, n).
func FailNth(op Op, n int64) Injector {
	return &counting{op: op, fail: func(c int64) bool { return c == n }}
}

// FailAfter returns an [Injector] that lets the first n operations of kind
// op succeed and fails every later one with [ErrInjected], as a disk that
// fills up or goes away. It is safe for concurrent use.
func FailAfter(op Op, n int64) Injector {
	return &counting{op: op, fail: func(c int64) bool { return c > n }}
}

// counting numbers the operations of one kind and fails those fail selects.
type counting struct {
	op    Op
	fail  func(c int64) bool
	count atomic.Int64
}

func (c *counting) MaybeError(op Op, _ string) error {
	if op != c.op {
		return nil
	}
	if c.fail(c.count.Add(1)) {
		return ErrInjected
	}
	return nil
}

// ErrorFS is an [FS] that wraps another, counts its operations and fails
// those its [Injector] picks, including operations on the files it opens.
// An injected error fails the operation before it reaches the wrapped FS
// (so a failed Write writes nothing), except that a failed Close still
// closes the wrapped file, as close(2) releases the descriptor even when it
// reports an error. The error names the operation and path and wraps the
// Injector's error: "vfs: write db/000001.log: vfs: injected error".
//
// An ErrorFS is safe for concurrent use if the wrapped FS is.
type ErrorFS struct {
	fs     FS
	inj    atomic.Pointer[injectorBox]
	counts [numOps]atomic.Int64
}

// injectorBox lets an atomic.Pointer hold an interface, including nil.
type injectorBox struct{ inj Injector }

var _ FS = (*ErrorFS)(nil)

// NewErrorFS returns an [ErrorFS] over fs that fails the operations inj
// picks. A nil inj fails nothing; the ErrorFS then only counts.
func NewErrorFS(fs FS, inj Injector) *ErrorFS {
	e := &ErrorFS{fs: fs}
	e.SetInjector(inj)
	return e
}

// SetInjector replaces the [Injector], atomically with respect to operations
// in progress: each operation consults either the old or the new one. A nil
// inj fails nothing.
func (e *ErrorFS) SetInjector(inj Injector) {
	e.inj.Store(&injectorBox{inj: inj})
}

// Counts returns how many operations of each kind have been attempted
// through e, failed or not, since it was created; kinds never attempted are
// absent. The map is the caller's.
func (e *ErrorFS) Counts() map[Op]int64 {
	m := make(map[Op]int64)
	for op := range numOps {
		if c := e.counts[op].Load(); c > 0 {
			m[op] = c
		}
	}
	return m
}

// check counts op and asks the Injector whether it fails.
func (e *ErrorFS) check(op Op, path string) error {
	e.counts[op].Add(1)
	b := e.inj.Load()
	if b.inj == nil {
		return nil
	}
	if err := b.inj.MaybeError(op, path); err != nil {
		return fmt.Errorf("vfs: %s %s: %w", op, path, err)
	}
	return nil
}

// Create implements [FS.Create].
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.check(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Create(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{e: e, f: f, name: name}, nil
}

// Open implements [FS.Open].
func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{e: e, f: f, name: name}, nil
}

// OpenDir implements [FS.OpenDir].
func (e *ErrorFS) OpenDir(name string) (File, error) {
	if err := e.check(OpOpenDir, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return &errorFile{e: e, f: f, name: name}, nil
}

// Remove implements [FS.Remove].
func (e *ErrorFS) Remove(name string) error {
	if err := e.check(OpRemove, name); err != nil {
		return err
	}
	return e.fs.Remove(name)
}

// Rename implements [FS.Rename]. The Injector sees oldname.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.check(OpRename, oldname); err != nil {
		return err
	}
	return e.fs.Rename(oldname, newname)
}

// MkdirAll implements [FS.MkdirAll].
func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.check(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.fs.MkdirAll(dir, perm)
}

// List implements [FS.List].
func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.check(OpList, dir); err != nil {
		return nil, err
	}
	return e.fs.List(dir)
}

// Stat implements [FS.Stat].
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.check(OpStat, name); err != nil {
		return nil, err
	}
	return e.fs.Stat(name)
}

// Lock implements [FS.Lock]. Releasing the lock is not an operation: it
// cannot fail and is not counted.
func (e *ErrorFS) Lock(name string) (io.Closer, error) {
	if err := e.check(OpLock, name); err != nil {
		return nil, err
	}
	return e.fs.Lock(name)
}

// PathJoin implements [FS.PathJoin] with the wrapped FS's PathJoin. It is
// not an operation: it cannot fail and is not counted.
func (e *ErrorFS) PathJoin(elem ...string) string { return e.fs.PathJoin(elem...) }

// errorFile is a File of an ErrorFS.
type errorFile struct {
	e    *ErrorFS
	f    File
	name string
}

func (f *errorFile) Read(p []byte) (int, error) {
	if err := f.e.check(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.f.Read(p)
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.e.check(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.e.check(OpWrite, f.name); err != nil {
		return 0, err
	}
	return f.f.Write(p)
}

func (f *errorFile) Sync() error {
	if err := f.e.check(OpSync, f.name); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *errorFile) Stat() (os.FileInfo, error) {
	if err := f.e.check(OpStat, f.name); err != nil {
		return nil, err
	}
	return f.f.Stat()
}

func (f *errorFile) Close() error {
	if err := f.e.check(OpClose, f.name); err != nil {
		f.f.Close()
		return err
	}
	return f.f.Close()
}
