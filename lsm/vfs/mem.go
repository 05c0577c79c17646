package vfs

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NewMem returns a new, empty in-memory [FS]. Everything written to it is
// immediately durable: it has no crash semantics (use [NewCrashable] for
// those), and Sync does nothing.
//
// Paths use "/" as the separator (PathJoin is [path.Join]; a
// [filepath.Separator] in a name is read as "/"), are cleaned, and are all
// relative to one root: "a/b", "/a/b" and "./a/../a/b" name the same file.
// The root always exists; other directories must be created with
// [FS.MkdirAll] before files are created in them. Lock excludes other Lock
// calls on the same FS only.
//
// The FS is safe for concurrent use; its files follow the rules of [File].
// Like on Unix, a removed or replaced file stays readable through the
// handles open on it.
func NewMem() FS {
	return newMemFS(false)
}

// Errors of the in-memory file systems, wrapped with the operation and path.
var (
	errIsDir    = errors.New("is a directory")
	errNotDir   = errors.New("not a directory")
	errNotEmpty = errors.New("directory not empty")
	errReadOnly = errors.New("file not open for writing")
	errNoRead   = errors.New("file not open for reading")
)

// memFS is the in-memory file system under both [NewMem] and [CrashableFS].
//
// It follows an inode model: a memNode is a file's data or a directory's
// entries, and names are entries in a directory's children map pointing to
// nodes. Open handles point at nodes, not names, so removing or replacing a
// name leaves them working.
//
// When crashable is set, each file node also records how much of its data is
// synced, and each directory node keeps, besides its live entries, the
// entries as of its last sync (durable). CrashClone builds the post-crash
// file system from the durable entries only.
//
// Locking: mu guards the namespace (children, durable, directory modTime,
// locks). Namespace changes and CrashClone hold mu exclusively; everything
// else holds it shared. A file node's data, synced and modTime are guarded by
// the node's own mu, taken while holding fs.mu shared (or exclusively). So
// writers append in parallel to different files, readers read in parallel,
// and CrashClone, holding fs.mu exclusively, sees no write in progress: it
// takes a consistent cut of the whole file system.
type memFS struct {
	crashable bool

	mu    sync.RWMutex
	root  *memNode
	locks map[string]bool // cleaned path → locked
}

var _ FS = (*memFS)(nil)

func newMemFS(crashable bool) *memFS {
	return &memFS{
		crashable: crashable,
		root:      newDirNode(crashable, time.Now()),
		locks:     make(map[string]bool),
	}
}

// memNode is a file or a directory (an inode).
type memNode struct {
	isDir bool

	// Guarded by the node's mu for files, by memFS.mu for directories.
	modTime time.Time

	// Files. Data is only ever appended to, so the durable content of a
	// file is always a prefix of its data: the first synced bytes.
	mu     sync.RWMutex
	data   fileData
	synced int

	// Directories. durable is nil unless the file system is crashable.
	children map[string]*memNode
	durable  map[string]*memNode
}

func newDirNode(crashable bool, now time.Time) *memNode {
	n := &memNode{isDir: true, modTime: now, children: make(map[string]*memNode)}
	if crashable {
		n.durable = make(map[string]*memNode)
	}
	return n
}

// info returns a snapshot of n's metadata. The caller holds fs.mu.
func (n *memNode) info(name string) os.FileInfo {
	if n.isDir {
		return &memFileInfo{name: name, modTime: n.modTime, isDir: true}
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return &memFileInfo{name: name, size: int64(n.data.size), modTime: n.modTime}
}

// splitPath cleans name and returns its components; the root has none.
func splitPath(name string) []string {
	p := path.Clean("/" + filepath.ToSlash(name))
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// baseName is the name a FileInfo reports for the path with these components.
func baseName(parts []string) string {
	if len(parts) == 0 {
		return "/"
	}
	return parts[len(parts)-1]
}

// lookup returns the node at parts. The caller holds fs.mu.
func (fs *memFS) lookup(parts []string) (*memNode, error) {
	n := fs.root
	for _, p := range parts {
		if !n.isDir {
			return nil, errNotDir
		}
		c := n.children[p]
		if c == nil {
			return nil, os.ErrNotExist
		}
		n = c
	}
	return n, nil
}

// parent returns the directory holding the entry at parts, which must not be
// the root. The caller holds fs.mu.
func (fs *memFS) parent(parts []string) (*memNode, string, error) {
	if len(parts) == 0 {
		return nil, "", os.ErrInvalid
	}
	dir, err := fs.lookup(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	if !dir.isDir {
		return nil, "", errNotDir
	}
	return dir, parts[len(parts)-1], nil
}

func pathErr(op, name string, err error) error {
	return fmt.Errorf("vfs: %s %s: %w", op, name, err)
}

func (fs *memFS) Create(name string) (File, error) {
	parts := splitPath(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.parent(parts)
	if err != nil {
		return nil, pathErr("create", name, err)
	}
	if old := dir.children[base]; old != nil && old.isDir {
		return nil, pathErr("create", name, errIsDir)
	}
	// A new inode rather than a truncation: handles open on the old file
	// keep reading it, and in crash mode the name keeps pointing at the old
	// (durable) inode until the directory is synced.
	now := time.Now()
	n := &memNode{modTime: now}
	dir.children[base] = n
	dir.modTime = now
	return &memFile{fs: fs, n: n, name: name, base: base, read: true, write: true}, nil
}

func (fs *memFS) Open(name string) (File, error) {
	parts := splitPath(name)
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	n, err := fs.lookup(parts)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	return &memFile{fs: fs, n: n, name: name, base: baseName(parts), read: true}, nil
}

func (fs *memFS) OpenDir(name string) (File, error) {
	parts := splitPath(name)
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	n, err := fs.lookup(parts)
	if err != nil {
		return nil, pathErr("opendir", name, err)
	}
	if !n.isDir {
		return nil, pathErr("opendir", name, errNotDir)
	}
	return &memFile{fs: fs, n: n, name: name, base: baseName(parts)}, nil
}

func (fs *memFS) Remove(name string) error {
	parts := splitPath(name)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.parent(parts)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n := dir.children[base]
	if n == nil {
		return pathErr("remove", name, os.ErrNotExist)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", name, errNotEmpty)
	}
	delete(dir.children, base)
	dir.modTime = time.Now()
	if n.isDir && fs.crashable && dir.durable[base] == n {
		// Directory removals, like MkdirAll, are durable at once.
		delete(dir.durable, base)
	}
	return nil
}

func (fs *memFS) Rename(oldname, newname string) error {
	oldParts, newParts := splitPath(oldname), splitPath(newname)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	odir, obase, err := fs.parent(oldParts)
	if err != nil {
		return pathErr("rename", oldname, err)
	}
	n := odir.children[obase]
	if n == nil {
		return pathErr("rename", oldname, os.ErrNotExist)
	}
	ndir, nbase, err := fs.parent(newParts)
	if err != nil {
		return pathErr("rename", newname, err)
	}
	target := ndir.children[nbase]
	if target == n {
		// Same name, or two names of one inode: POSIX says do nothing.
		return nil
	}
	if n.isDir && len(newParts) > len(oldParts) && slices.Equal(newParts[:len(oldParts)], oldParts) {
		return pathErr("rename", newname, os.ErrInvalid) // into itself
	}
	if target != nil {
		switch {
		case target.isDir:
			return pathErr("rename", newname, errIsDir)
		case n.isDir:
			return pathErr("rename", newname, errNotDir)
		}
	}
	now := time.Now()
	delete(odir.children, obase)
	ndir.children[nbase] = n
	odir.modTime, ndir.modTime = now, now
	return nil
}

func (fs *memFS) MkdirAll(dir string, perm os.FileMode) error {
	parts := splitPath(dir)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := fs.root
	for _, p := range parts {
		c := n.children[p]
		if c == nil {
			now := time.Now()
			c = newDirNode(fs.crashable, now)
			n.children[p] = c
			n.modTime = now
			if fs.crashable {
				// Directories are durable at once; see CrashableFS.
				n.durable[p] = c
			}
		} else if !c.isDir {
			return pathErr("mkdirall", dir, errNotDir)
		}
		n = c
	}
	return nil
}

func (fs *memFS) List(dir string) ([]string, error) {
	parts := splitPath(dir)
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	n, err := fs.lookup(parts)
	if err != nil {
		return nil, pathErr("list", dir, err)
	}
	if !n.isDir {
		return nil, pathErr("list", dir, errNotDir)
	}
	return slices.Sorted(maps.Keys(n.children)), nil
}

func (fs *memFS) Stat(name string) (os.FileInfo, error) {
	parts := splitPath(name)
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	n, err := fs.lookup(parts)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return n.info(baseName(parts)), nil
}

func (fs *memFS) Lock(name string) (io.Closer, error) {
	parts := splitPath(name)
	key := path.Join(parts...)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.locks[key] {
		return nil, pathErr("lock", name, ErrLocked)
	}
	dir, base, err := fs.parent(parts)
	if err != nil {
		return nil, pathErr("lock", name, err)
	}
	switch n := dir.children[base]; {
	case n == nil:
		now := time.Now()
		dir.children[base] = &memNode{modTime: now}
		dir.modTime = now
	case n.isDir:
		return nil, pathErr("lock", name, errIsDir)
	}
	fs.locks[key] = true
	return &memLock{fs: fs, key: key}, nil
}

func (fs *memFS) PathJoin(elem ...string) string { return path.Join(elem...) }

// memLock releases a lock of a memFS.
type memLock struct {
	once sync.Once
	fs   *memFS
	key  string
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.locks, l.key)
		l.fs.mu.Unlock()
	})
	return nil
}

// memFile is an open handle on a memNode. Writes append to the node; reads
// use the handle's own offset.
type memFile struct {
	fs          *memFS
	n           *memNode
	name        string // as opened, for errors
	base        string // for Stat
	read, write bool
	rpos        int
	closed      atomic.Bool
}

func (f *memFile) Read(p []byte) (int, error) {
	if err := f.check("read", f.read); err != nil {
		return 0, err
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	f.n.mu.RLock()
	defer f.n.mu.RUnlock()
	if len(p) == 0 {
		return 0, nil
	}
	if f.rpos >= f.n.data.size {
		return 0, io.EOF
	}
	n := f.n.data.readAt(p, f.rpos)
	f.rpos += n
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", f.read); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("readat", f.name, errors.New("negative offset"))
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	f.n.mu.RLock()
	defer f.n.mu.RUnlock()
	if off >= int64(f.n.data.size) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := f.n.data.readAt(p, int(off))
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.check("write", f.write); err != nil {
		return 0, err
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.data.append(p)
	f.n.modTime = time.Now()
	return len(p), nil
}

func (f *memFile) Sync() error {
	if f.closed.Load() {
		return pathErr("sync", f.name, os.ErrClosed)
	}
	if !f.fs.crashable {
		return nil
	}
	if f.n.isDir {
		f.fs.mu.Lock()
		defer f.fs.mu.Unlock()
		f.n.durable = maps.Clone(f.n.children)
		return nil
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.synced = f.n.data.size
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	if f.closed.Load() {
		return nil, pathErr("stat", f.name, os.ErrClosed)
	}
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	return f.n.info(f.base), nil
}

func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return pathErr("close", f.name, os.ErrClosed)
	}
	return nil
}

// check reports whether op may run on f: the handle is open, has the mode
// (read or write) the op needs, and is not a directory.
func (f *memFile) check(op string, mode bool) error {
	switch {
	case f.closed.Load():
		return pathErr(op, f.name, os.ErrClosed)
	case f.n.isDir:
		return pathErr(op, f.name, errIsDir)
	case !mode && op == "write":
		return pathErr(op, f.name, errReadOnly)
	case !mode:
		return pathErr(op, f.name, errNoRead)
	}
	return nil
}

// chunkSize is the size of the chunks of a fileData.
const chunkSize = 64 << 10

// fileData is the content of a file, stored in chunks of chunkSize bytes
// (the last one partly filled) so that appending never copies what is
// already there: engine tests write files of tens of megabytes, and growing
// one slice would copy each byte several times and fault in fresh memory for
// every copy. Only a first, small chunk grows by append, so that small
// files stay small.
type fileData struct {
	chunks [][]byte
	size   int
}

func (d *fileData) append(p []byte) {
	for len(p) > 0 {
		last := len(d.chunks) - 1
		if last < 0 || len(d.chunks[last]) == chunkSize {
			var c []byte
			if last >= 0 {
				c = make([]byte, 0, chunkSize)
			}
			d.chunks = append(d.chunks, c)
			last++
		}
		n := min(len(p), chunkSize-len(d.chunks[last]))
		d.chunks[last] = append(d.chunks[last], p[:n]...)
		d.size += n
		p = p[n:]
	}
}

// readAt copies the data at off into p and returns how many bytes it copied.
func (d *fileData) readAt(p []byte, off int) int {
	n := 0
	for n < len(p) && off < d.size {
		c := copy(p[n:], d.chunks[off/chunkSize][off%chunkSize:])
		n += c
		off += c
	}
	return n
}

// clonePrefix returns a copy of the first n bytes of d that shares no
// memory with d.
func (d *fileData) clonePrefix(n int) fileData {
	out := fileData{size: n}
	for _, c := range d.chunks {
		if n == 0 {
			break
		}
		c = c[:min(n, len(c))]
		out.chunks = append(out.chunks, slices.Clone(c))
		n -= len(c)
	}
	return out
}

// zero sets the bytes [from, to) of d to zero. d must not share memory with
// a file.
func (d *fileData) zero(from, to int) {
	for off := from; off < to; {
		i := off % chunkSize
		n := min(to-off, chunkSize-i)
		clear(d.chunks[off/chunkSize][i : i+n])
		off += n
	}
}

// memFileInfo is a snapshot of a memNode's metadata.
type memFileInfo struct {
	name    string
	size    int64
	modTime time.Time
	isDir   bool
}

func (i *memFileInfo) Name() string       { return i.name }
func (i *memFileInfo) Size() int64        { return i.size }
func (i *memFileInfo) ModTime() time.Time { return i.modTime }
func (i *memFileInfo) IsDir() bool        { return i.isDir }
func (i *memFileInfo) Sys() any           { return nil }

func (i *memFileInfo) Mode() os.FileMode {
	if i.isDir {
		return os.ModeDir | 0o755
	}
	return 0o644
}
