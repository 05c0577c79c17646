package vfs_test

import (
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// newFSFunc returns a fresh file system and an existing, empty directory in
// it for the test to work in.
type newFSFunc func(t *testing.T) (fs vfs.FS, dir string)

func newMemRoot(fs vfs.FS) newFSFunc {
	return func(t *testing.T) (vfs.FS, string) {
		require.NoError(t, fs.MkdirAll("root", 0o755))
		return fs, "root"
	}
}

// fileSystems are the implementations the behaviour tests run against; they
// must all behave alike, so that what passes in memory holds on disk.
var fileSystems = map[string]newFSFunc{
	"Default": func(t *testing.T) (vfs.FS, string) { return vfs.Default, t.TempDir() },
	"Mem": func(t *testing.T) (vfs.FS, string) {
		return newMemRoot(vfs.NewMem())(t)
	},
	"Crashable": func(t *testing.T) (vfs.FS, string) {
		return newMemRoot(vfs.NewCrashable())(t)
	},
	"ErrorFS": func(t *testing.T) (vfs.FS, string) {
		return newMemRoot(vfs.NewErrorFS(vfs.NewMem(), nil))(t)
	},
}

func forEachFS(t *testing.T, test func(t *testing.T, fs vfs.FS, dir string)) {
	for name, newFS := range fileSystems {
		t.Run(name, func(t *testing.T) {
			fs, dir := newFS(t)
			test(t, fs, dir)
		})
	}
}

// writeFile creates name with data and closes it, syncing the file (not the
// directory) if sync is set.
func writeFile(t *testing.T, fs vfs.FS, name string, data string, sync bool) {
	t.Helper()
	f, err := fs.Create(name)
	require.NoError(t, err)
	_, err = f.Write([]byte(data))
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	require.NoError(t, f.Close())
}

func readFile(t *testing.T, fs vfs.FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	require.NoError(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	require.NoError(t, err)
	return string(b)
}

func syncDir(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	d, err := fs.OpenDir(dir)
	require.NoError(t, err)
	require.NoError(t, d.Sync())
	require.NoError(t, d.Close())
}

func TestFSWriteRead(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		name := fs.PathJoin(dir, "f")
		f, err := fs.Create(name)
		require.NoError(t, err)
		for _, s := range []string{"hello ", "world"} {
			n, err := f.Write([]byte(s))
			require.NoError(t, err)
			require.Equal(t, len(s), n)
		}
		fi, err := f.Stat()
		require.NoError(t, err)
		assert.Equal(t, int64(11), fi.Size(), "File.Stat must report the current length")
		require.NoError(t, f.Sync())
		require.NoError(t, f.Close())

		assert.Equal(t, "hello world", readFile(t, fs, name))

		r, err := fs.Open(name)
		require.NoError(t, err)
		defer r.Close()
		p := make([]byte, 5)
		n, err := r.ReadAt(p, 6)
		require.NoError(t, err)
		assert.Equal(t, "world", string(p[:n]))
		p = make([]byte, 10)
		n, err = r.ReadAt(p, 6)
		assert.ErrorIs(t, err, io.EOF, "ReadAt past the end must return io.EOF")
		assert.Equal(t, "world", string(p[:n]))
		n, err = r.ReadAt(p, 100)
		assert.ErrorIs(t, err, io.EOF)
		assert.Zero(t, n)

		fi, err = fs.Stat(name)
		require.NoError(t, err)
		assert.Equal(t, "f", fi.Name())
		assert.Equal(t, int64(11), fi.Size())
		assert.False(t, fi.IsDir())
		assert.False(t, fi.ModTime().IsZero())
	})
}

func TestFSNotExist(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		_, err := fs.Open(fs.PathJoin(dir, "missing"))
		assert.ErrorIs(t, err, os.ErrNotExist, "Open of a missing file")
		_, err = fs.Stat(fs.PathJoin(dir, "missing"))
		assert.ErrorIs(t, err, os.ErrNotExist, "Stat of a missing file")
		_, err = fs.Create(fs.PathJoin(dir, "nodir", "f"))
		assert.ErrorIs(t, err, os.ErrNotExist, "Create in a missing directory")
		_, err = fs.List(fs.PathJoin(dir, "nodir"))
		assert.ErrorIs(t, err, os.ErrNotExist, "List of a missing directory")
		err = fs.Remove(fs.PathJoin(dir, "missing"))
		assert.ErrorIs(t, err, os.ErrNotExist, "Remove of a missing file")
		err = fs.Rename(fs.PathJoin(dir, "missing"), fs.PathJoin(dir, "other"))
		assert.ErrorIs(t, err, os.ErrNotExist, "Rename of a missing file")
		_, err = fs.OpenDir(fs.PathJoin(dir, "nodir"))
		assert.ErrorIs(t, err, os.ErrNotExist, "OpenDir of a missing directory")
	})
}

func TestFSCreateTruncates(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		name := fs.PathJoin(dir, "f")
		writeFile(t, fs, name, "long old contents", false)
		writeFile(t, fs, name, "new", false)
		assert.Equal(t, "new", readFile(t, fs, name))
	})
}

func TestFSOpenIsReadOnly(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		name := fs.PathJoin(dir, "f")
		writeFile(t, fs, name, "x", false)
		f, err := fs.Open(name)
		require.NoError(t, err)
		defer f.Close()
		_, err = f.Write([]byte("y"))
		assert.Error(t, err, "Write on a file from Open must fail")
		assert.Equal(t, "x", readFile(t, fs, name))
	})
}

func TestFSClosedFile(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		f, err := fs.Create(fs.PathJoin(dir, "f"))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		_, err = f.Write([]byte("x"))
		assert.ErrorIs(t, err, os.ErrClosed, "Write after Close")
		_, err = f.Read(make([]byte, 1))
		assert.ErrorIs(t, err, os.ErrClosed, "Read after Close")
		_, err = f.ReadAt(make([]byte, 1), 0)
		assert.ErrorIs(t, err, os.ErrClosed, "ReadAt after Close")
		assert.ErrorIs(t, f.Sync(), os.ErrClosed, "Sync after Close")
		_, err = f.Stat()
		assert.ErrorIs(t, err, os.ErrClosed, "Stat after Close")
		assert.ErrorIs(t, f.Close(), os.ErrClosed, "second Close")
	})
}

func TestFSDirectories(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		a := fs.PathJoin(dir, "a")
		require.NoError(t, fs.MkdirAll(fs.PathJoin(a, "b", "c"), 0o755))
		require.NoError(t, fs.MkdirAll(fs.PathJoin(a, "b"), 0o755), "MkdirAll of an existing directory")
		writeFile(t, fs, fs.PathJoin(a, "z"), "", false)
		writeFile(t, fs, fs.PathJoin(a, "x"), "", false)
		writeFile(t, fs, fs.PathJoin(a, "b", "y"), "", false)

		names, err := fs.List(a)
		require.NoError(t, err)
		assert.Equal(t, []string{"b", "x", "z"}, names, "List must return files and directories, sorted")
		names, err = fs.List(fs.PathJoin(a, "b", "c"))
		require.NoError(t, err)
		assert.Empty(t, names)

		fi, err := fs.Stat(fs.PathJoin(a, "b"))
		require.NoError(t, err)
		assert.True(t, fi.IsDir())
		assert.Equal(t, "b", fi.Name())

		assert.Error(t, fs.MkdirAll(fs.PathJoin(a, "x", "d"), 0o755), "MkdirAll through a file")
		assert.Error(t, fs.Remove(fs.PathJoin(a, "b")), "Remove of a non-empty directory")
		require.NoError(t, fs.Remove(fs.PathJoin(a, "b", "c")))
		names, err = fs.List(fs.PathJoin(a, "b"))
		require.NoError(t, err)
		assert.Equal(t, []string{"y"}, names)

		d, err := fs.OpenDir(a)
		require.NoError(t, err)
		require.NoError(t, d.Sync())
		fi, err = d.Stat()
		require.NoError(t, err)
		assert.True(t, fi.IsDir())
		require.NoError(t, d.Close())
	})
}

func TestFSRename(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		a, b := fs.PathJoin(dir, "a"), fs.PathJoin(dir, "b")
		writeFile(t, fs, a, "A", false)
		writeFile(t, fs, b, "B", false)
		var old vfs.File
		if runtime.GOOS != "windows" {
			var err error
			old, err = fs.Open(b)
			require.NoError(t, err)
			defer old.Close()
		}
		require.NoError(t, fs.Rename(a, b))
		assert.Equal(t, "A", readFile(t, fs, b), "Rename must replace the target")
		_, err := fs.Open(a)
		assert.ErrorIs(t, err, os.ErrNotExist, "the old name must be gone")
		names, err := fs.List(dir)
		require.NoError(t, err)
		assert.Equal(t, []string{"b"}, names)
		if old != nil {
			got, err := io.ReadAll(old)
			require.NoError(t, err)
			assert.Equal(t, "B", string(got), "a replaced file stays readable through open handles")
		}
	})
}

func TestFSRemoveOpenFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows cannot remove open files")
	}
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		name := fs.PathJoin(dir, "f")
		writeFile(t, fs, name, "data", false)
		f, err := fs.Open(name)
		require.NoError(t, err)
		defer f.Close()
		require.NoError(t, fs.Remove(name))
		_, err = fs.Stat(name)
		assert.ErrorIs(t, err, os.ErrNotExist)
		p := make([]byte, 4)
		_, err = f.ReadAt(p, 0)
		require.NoError(t, err)
		assert.Equal(t, "data", string(p), "a removed file stays readable through open handles")
	})
}

func TestFSLock(t *testing.T) {
	forEachFS(t, func(t *testing.T, fs vfs.FS, dir string) {
		name := fs.PathJoin(dir, "LOCK")
		l1, err := fs.Lock(name)
		require.NoError(t, err)
		_, err = fs.Stat(name)
		require.NoError(t, err, "Lock must create the file")

		_, err = fs.Lock(name)
		require.Error(t, err, "a second Lock must fail, not block")
		assert.ErrorIs(t, err, vfs.ErrLocked)

		require.NoError(t, l1.Close())
		require.NoError(t, l1.Close(), "closing a lock twice")
		l2, err := fs.Lock(name)
		require.NoError(t, err, "Lock after release")
		require.NoError(t, l2.Close())
	})
}
