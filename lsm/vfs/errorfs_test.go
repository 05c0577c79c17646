package vfs_test

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func TestOpString(t *testing.T) {
	want := map[vfs.Op]string{
		vfs.OpCreate: "create", vfs.OpOpen: "open", vfs.OpOpenDir: "opendir",
		vfs.OpRead: "read", vfs.OpWrite: "write", vfs.OpSync: "sync",
		vfs.OpClose: "close", vfs.OpRemove: "remove", vfs.OpRename: "rename",
		vfs.OpMkdirAll: "mkdirall", vfs.OpList: "list", vfs.OpStat: "stat",
		vfs.OpLock: "lock",
	}
	for op, s := range want {
		assert.Equal(t, s, op.String())
	}
	assert.Equal(t, "Op(99)", vfs.Op(99).String())
}

// workload uses every kind of operation once or more and stops at the first
// error, like an engine would.
func workload(fs vfs.FS) error {
	if err := fs.MkdirAll("db", 0o755); err != nil {
		return err
	}
	l, err := fs.Lock("db/LOCK")
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := fs.Create("db/000001.log")
	if err != nil {
		return err
	}
	for i := range 3 {
		if _, err := fmt.Fprintf(f, "record %d;", i); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename("db/000001.log", "db/000002.log"); err != nil {
		return err
	}
	d, err := fs.OpenDir("db")
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	if err := d.Close(); err != nil {
		return err
	}
	names, err := fs.List("db")
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := fs.Stat(fs.PathJoin("db", name)); err != nil {
			return err
		}
	}
	r, err := fs.Open("db/000002.log")
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.ReadAll(r); err != nil {
		return err
	}
	if _, err := r.ReadAt(make([]byte, 1), 0); err != nil {
		return err
	}
	if _, err := r.Stat(); err != nil {
		return err
	}
	return fs.Remove("db/000002.log")
}

func TestErrorFSCounts(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), nil)
	require.NoError(t, workload(efs))
	counts := efs.Counts()
	assert.Equal(t, map[vfs.Op]int64{
		vfs.OpMkdirAll: 1, vfs.OpLock: 1, vfs.OpCreate: 1, vfs.OpWrite: 3,
		vfs.OpSync: 2, vfs.OpClose: 3, vfs.OpRename: 1, vfs.OpOpenDir: 1,
		vfs.OpList: 1, vfs.OpStat: 3, vfs.OpOpen: 1, vfs.OpRead: 3, vfs.OpRemove: 1,
	}, counts)
}

// TestErrorFSFailEach counts the workload's operations, then reruns it once
// per operation with that operation failing: every failure must surface.
func TestErrorFSFailEach(t *testing.T) {
	counting := vfs.NewErrorFS(vfs.NewMem(), nil)
	require.NoError(t, workload(counting))
	for op, count := range counting.Counts() {
		for n := int64(1); n <= count; n++ {
			t.Run(fmt.Sprintf("%s#%d", op, n), func(t *testing.T) {
				efs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailNth(op, n))
				err := workload(efs)
				if op == vfs.OpClose && n == count {
					// The deferred Close of the reader is not checked.
					return
				}
				require.Error(t, err)
				assert.ErrorIs(t, err, vfs.ErrInjected)
				assert.Contains(t, err.Error(), "vfs: "+op.String()+" ")
			})
		}
	}
}

func TestErrorFSFailNth(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailNth(vfs.OpWrite, 2))
	f, err := efs.Create("f")
	require.NoError(t, err)
	_, err = f.Write([]byte("one"))
	require.NoError(t, err)
	_, err = f.Write([]byte("two"))
	require.ErrorIs(t, err, vfs.ErrInjected)
	assert.Equal(t, "vfs: write f: vfs: injected error", err.Error())
	_, err = f.Write([]byte("three"))
	require.NoError(t, err, "only the nth operation fails")
	require.NoError(t, f.Close())
	assert.Equal(t, "onethree", readFile(t, efs, "f"), "a failed write writes nothing")
}

func TestErrorFSFailNthConcurrent(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailNth(vfs.OpStat, 50))
	require.NoError(t, efs.MkdirAll("d", 0o755))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for range 10 {
		wg.Go(func() {
			for range 20 {
				if _, err := efs.Stat("d"); err != nil {
					assert.ErrorIs(t, err, vfs.ErrInjected)
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, failures, "exactly one operation fails, even when they race")
	assert.Equal(t, int64(200), efs.Counts()[vfs.OpStat])
}

func TestErrorFSFailAfter(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailAfter(vfs.OpCreate, 2))
	for i := range 5 {
		f, err := efs.Create(fmt.Sprintf("f%d", i))
		if i < 2 {
			require.NoError(t, err)
			require.NoError(t, f.Close())
			continue
		}
		require.ErrorIs(t, err, vfs.ErrInjected)
	}
	names, err := efs.List("")
	require.NoError(t, err)
	assert.Equal(t, []string{"f0", "f1"}, names)
}

func TestErrorFSSetInjector(t *testing.T) {
	errDisk := errors.New("disk on fire")
	efs := vfs.NewErrorFS(vfs.NewMem(), nil)
	require.NoError(t, efs.MkdirAll("a", 0o755))

	efs.SetInjector(vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpMkdirAll && path == "b" {
			return errDisk
		}
		return nil
	}))
	require.NoError(t, efs.MkdirAll("a/c", 0o755))
	err := efs.MkdirAll("b", 0o755)
	require.ErrorIs(t, err, errDisk, "the injector's own error is wrapped")
	assert.Equal(t, "vfs: mkdirall b: disk on fire", err.Error())

	efs.SetInjector(nil)
	require.NoError(t, efs.MkdirAll("b", 0o755))
	assert.Equal(t, int64(4), efs.Counts()[vfs.OpMkdirAll], "failed operations are counted too")
}

func TestErrorFSFailedCloseCloses(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem(), vfs.FailNth(vfs.OpClose, 1))
	f, err := efs.Create("f")
	require.NoError(t, err)
	require.ErrorIs(t, f.Close(), vfs.ErrInjected)
	efs.SetInjector(nil)
	_, err = f.Write([]byte("x"))
	assert.Error(t, err, "a failed Close still closes the file")
}
