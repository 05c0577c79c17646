package vfs_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func TestMemPaths(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("a", 0o755))
	writeFile(t, fs, "a/b", "x", false)
	for _, name := range []string{"a/b", "/a/b", "./a/../a/b", "a//b", "a/b/"} {
		assert.Equal(t, "x", readFile(t, fs, name), "path %q must name a/b", name)
	}
	names, err := fs.List("/")
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, names)
	names, err = fs.List("")
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, names, "the empty path is the root")
	assert.Equal(t, "a/b/c", fs.PathJoin("a", "b", "c"))
}

func TestMemErrorsNameOperationAndPath(t *testing.T) {
	fs := vfs.NewMem()
	_, err := fs.Open("nope")
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Equal(t, "vfs: open nope: file does not exist", err.Error())
}

func TestMemNotADirectory(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, "f", "", false)
	_, err := fs.Create("f/g")
	assert.Error(t, err, "Create under a file")
	_, err = fs.OpenDir("f")
	assert.Error(t, err, "OpenDir of a file")
	_, err = fs.List("f")
	assert.Error(t, err, "List of a file")
	require.NoError(t, fs.MkdirAll("d", 0o755))
	_, err = fs.Create("d")
	assert.Error(t, err, "Create over a directory")
	assert.Error(t, fs.Rename("f", "d"), "Rename of a file over a directory")
	assert.Error(t, fs.Rename("d", "f"), "Rename of a directory over a file")
	assert.Error(t, fs.Rename("d", "d/e"), "Rename of a directory into itself")
	_, err = fs.Lock("d")
	assert.Error(t, err, "Lock of a directory")
	assert.Error(t, fs.Remove("/"), "Remove of the root")
}

func TestMemRenameDirectory(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("a/b", 0o755))
	writeFile(t, fs, "a/b/f", "x", false)
	require.NoError(t, fs.Rename("a/b", "c"))
	assert.Equal(t, "x", readFile(t, fs, "c/f"))
	_, err := fs.Stat("a/b")
	assert.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, fs.Rename("c/f", "c/f"), "Rename onto itself is a no-op")
	assert.Equal(t, "x", readFile(t, fs, "c/f"))
}

func TestMemWriteAfterRemove(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.Create("f")
	require.NoError(t, err)
	require.NoError(t, fs.Remove("f"))
	_, err = f.Write([]byte("still works"))
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(11), fi.Size())
	require.NoError(t, f.Close())
}

func TestMemReadFromCreate(t *testing.T) {
	// Create opens for reading and writing; reads keep their own offset.
	fs := vfs.NewMem()
	f, err := fs.Create("f")
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write([]byte("abc"))
	require.NoError(t, err)
	got, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))
	n, err := f.Read(nil)
	assert.NoError(t, err, "an empty Read succeeds")
	assert.Zero(t, n)
}

func TestMemLargeFile(t *testing.T) {
	// 64 MiB in 4 KiB writes: appends must be amortized O(1).
	fs := vfs.NewMem()
	f, err := fs.Create("big")
	require.NoError(t, err)
	chunk := bytes.Repeat([]byte{7}, 4096)
	const n = 16384
	for range n {
		_, err := f.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	fi, err := fs.Stat("big")
	require.NoError(t, err)
	assert.Equal(t, int64(n*len(chunk)), fi.Size())
}

func TestMemConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAll("d", 0o755))
	writeFile(t, fs, "d/shared", "0123456789", false)
	shared, err := fs.Open("d/shared")
	require.NoError(t, err)
	defer shared.Close()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("d/f%d", g)
			f, err := fs.Create(name)
			if !assert.NoError(t, err) {
				return
			}
			for i := range 200 {
				_, err := f.Write([]byte{byte(i)})
				assert.NoError(t, err)
				p := make([]byte, 4)
				_, err = shared.ReadAt(p, int64(i%6))
				assert.NoError(t, err)
				_, err = fs.List("d")
				assert.NoError(t, err)
				_, err = fs.Stat(name)
				assert.NoError(t, err)
			}
			assert.NoError(t, f.Close())
			assert.NoError(t, fs.Rename(name, name+".done"))
		})
	}
	wg.Wait()
	names, err := fs.List("d")
	require.NoError(t, err)
	assert.Len(t, names, 9)
}

func BenchmarkMemWrite(b *testing.B) {
	fs := vfs.NewMem()
	chunk := make([]byte, 4096)
	f, err := fs.Create("f")
	require.NoError(b, err)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
