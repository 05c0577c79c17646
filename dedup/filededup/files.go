package filededup

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// files is the blob directory's file operations: confined to the
// directory with os.Root on the operating system (the default), or on a
// vfs.FS (tests, including the crash-simulating one).
type files interface {
	create(name string) (tempFile, error)
	open(name string) (dedup.Blob, error)
	stat(name string) (fs.FileInfo, error)
	// link gives the file oldname the name newname, failing with an error
	// matching fs.ErrExist if newname exists. oldname keeps its name.
	link(oldname, newname string) error
	// replace renames oldname to newname, replacing newname.
	replace(oldname, newname string) error
	remove(name string) error
	// mkdir creates a directory and reports whether it was new.
	mkdir(name string) (bool, error)
	syncDir(name string) error
	list(dir string) ([]string, error)
	close() error
}

// tempFile is an upload's temporary file.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
}

// rootFiles implements files with an os.Root, so no name, whatever it
// contains, can reach outside the directory.
type rootFiles struct{ root *os.Root }

func (r rootFiles) create(name string) (tempFile, error) {
	return r.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func (r rootFiles) open(name string) (dedup.Blob, error) {
	f, err := r.root.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &osBlob{File: f, size: st.Size()}, nil
}

func (r rootFiles) stat(name string) (fs.FileInfo, error) { return r.root.Stat(name) }
func (r rootFiles) link(o, n string) error                { return r.root.Link(o, n) }
func (r rootFiles) replace(o, n string) error             { return r.root.Rename(o, n) }
func (r rootFiles) remove(name string) error              { return r.root.Remove(name) }

func (r rootFiles) mkdir(name string) (bool, error) {
	err := r.root.Mkdir(name, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	return err == nil, err
}

func (r rootFiles) syncDir(name string) error {
	f, err := r.root.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r rootFiles) list(dir string) ([]string, error) {
	f, err := r.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (r rootFiles) close() error { return r.root.Close() }

type osBlob struct {
	*os.File
	size int64
}

func (b *osBlob) Size() int64 { return b.size }

// vfsFiles implements files on a vfs.FS under base. vfs has no link, so
// link is a check then a rename: safe because the caller holds the hash's
// lock and the directory is locked to one process (by the meta DB).
type vfsFiles struct {
	fs   vfs.FS
	base string
}

func (v vfsFiles) path(name string) string { return v.fs.PathJoin(v.base, name) }

func (v vfsFiles) create(name string) (tempFile, error) { return v.fs.Create(v.path(name)) }

func (v vfsFiles) open(name string) (dedup.Blob, error) {
	f, err := v.fs.Open(v.path(name))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &vfsBlob{SectionReader: io.NewSectionReader(f, 0, st.Size()), f: f}, nil
}

func (v vfsFiles) stat(name string) (fs.FileInfo, error) { return v.fs.Stat(v.path(name)) }

func (v vfsFiles) link(o, n string) error {
	if _, err := v.fs.Stat(v.path(n)); err == nil {
		return &fs.PathError{Op: "link", Path: n, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return v.fs.Rename(v.path(o), v.path(n))
}

func (v vfsFiles) replace(o, n string) error { return v.fs.Rename(v.path(o), v.path(n)) }
func (v vfsFiles) remove(name string) error  { return v.fs.Remove(v.path(name)) }

func (v vfsFiles) mkdir(name string) (bool, error) {
	if _, err := v.fs.Stat(v.path(name)); err == nil {
		return false, nil
	}
	return true, v.fs.MkdirAll(v.path(name), 0o755)
}

func (v vfsFiles) syncDir(name string) error {
	f, err := v.fs.OpenDir(v.path(name))
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (v vfsFiles) list(dir string) ([]string, error) { return v.fs.List(v.path(dir)) }
func (v vfsFiles) close() error                      { return nil }

type vfsBlob struct {
	*io.SectionReader
	f vfs.File
}

func (b *vfsBlob) Close() error { return b.f.Close() }

// modTime returns fi's modification time, or the zero time for nil.
func modTime(fi fs.FileInfo) time.Time {
	if fi == nil {
		return time.Time{}
	}
	return fi.ModTime()
}
