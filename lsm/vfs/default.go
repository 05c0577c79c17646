package vfs

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// Default is the [FS] of the operating system, backed by package os. Errors
// are those of package os (an [*os.PathError] naming the operation and path),
// except for [FS.Lock], whose conflict error wraps [ErrLocked].
//
// On Linux, syncing a file uses fdatasync, which skips metadata the data does
// not need (such as the modification time); elsewhere it uses [os.File.Sync].
// Syncing a directory uses fsync; on Windows, which cannot sync a directory
// handle and journals directory changes itself, it does nothing.
//
// On Unix systems with flock(2), [FS.Lock] uses flock, which excludes other
// processes and other Lock calls of this process. Elsewhere Lock only
// excludes other Lock calls of this process.
//
// Default is safe for concurrent use.
var Default FS = defaultFS{}

type defaultFS struct{}

var _ FS = defaultFS{}

func (defaultFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (defaultFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (defaultFS) OpenDir(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osDir{f}, nil
}

func (defaultFS) Remove(name string) error { return os.Remove(name) }

func (defaultFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (defaultFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

func (defaultFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (defaultFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (defaultFS) Lock(name string) (io.Closer, error) { return lockFile(name) }

func (defaultFS) PathJoin(elem ...string) string { return filepath.Join(elem...) }

// osFile is a regular file whose Sync syncs only what reading the data back
// needs.
type osFile struct{ *os.File }

func (f osFile) Sync() error { return datasync(f.File) }

// osDir is a directory opened so that its entries can be synced.
type osDir struct{ *os.File }

func (d osDir) Sync() error {
	if runtime.GOOS == "windows" {
		return nil
	}
	return d.File.Sync()
}
