package vfs_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// dump describes every file and directory of fs, for comparing whole file
// systems.
func dump(t *testing.T, fs vfs.FS) string {
	t.Helper()
	var b strings.Builder
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fs.List(dir)
		require.NoError(t, err)
		for _, name := range names {
			p := fs.PathJoin(dir, name)
			fi, err := fs.Stat(p)
			require.NoError(t, err)
			if fi.IsDir() {
				fmt.Fprintf(&b, "%s/\n", p)
				walk(p)
				continue
			}
			fmt.Fprintf(&b, "%s %q\n", p, readFile(t, fs, p))
		}
	}
	walk("/")
	return b.String()
}

func exists(t *testing.T, fs vfs.FS, name string) bool {
	t.Helper()
	_, err := fs.Stat(name)
	if err != nil {
		require.ErrorIs(t, err, os.ErrNotExist)
		return false
	}
	return true
}

func TestCrashSyncedDataSurvives(t *testing.T) {
	fs := vfs.NewCrashable()
	f, err := fs.Create("wal")
	require.NoError(t, err)
	_, err = f.Write([]byte("synced."))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	syncDir(t, fs, "")
	_, err = f.Write([]byte("unsynced"))
	require.NoError(t, err)

	for seed := range int64(20) {
		crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: seed})
		assert.Equal(t, "synced.", readFile(t, crashed, "wal"),
			"with UnsyncedDataPercent 0 exactly the synced data survives")
	}
	assert.Equal(t, "synced.unsynced", readFile(t, fs, "wal"), "the original is unchanged")
	require.NoError(t, f.Close())
}

func TestCrashUnsyncedDataMayVanish(t *testing.T) {
	fs := vfs.NewCrashable()
	writeFile(t, fs, "f", "never synced", false)
	syncDir(t, fs, "")
	crashed := fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "", readFile(t, crashed, "f"),
		"the name is durable but the data was never synced")
}

func TestCrashUnsyncedPrefixSurvives(t *testing.T) {
	fs := vfs.NewCrashable()
	const synced, unsynced = "0123456789", "abcdefghijklmnopqrstuvwxyz"
	for i := range 20 {
		name := fmt.Sprintf("f%02d", i)
		f, err := fs.Create(name)
		require.NoError(t, err)
		_, err = f.Write([]byte(synced))
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		_, err = f.Write([]byte(unsynced))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	syncDir(t, fs, "")

	crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: 1, UnsyncedDataPercent: 100})
	lengths := make(map[int]bool)
	for i := range 20 {
		got := readFile(t, crashed, fmt.Sprintf("f%02d", i))
		require.Greater(t, len(got), len(synced),
			"with UnsyncedDataPercent 100 every file keeps some unsynced data")
		assert.Equal(t, (synced + unsynced)[:len(got)], got,
			"what survives is the synced data followed by a prefix of the unsynced data")
		lengths[len(got)] = true
	}
	assert.Greater(t, len(lengths), 1, "the surviving prefix length is random")
}

func TestCrashUnsyncedEntriesVanish(t *testing.T) {
	fs := vfs.NewCrashable()
	require.NoError(t, fs.MkdirAll("db", 0o755))
	writeFile(t, fs, "db/synced", "a", true)
	syncDir(t, fs, "db")
	writeFile(t, fs, "db/unsynced", "b", true) // data synced, entry not

	crashed := fs.CrashClone(vfs.CrashCloneOptions{UnsyncedDataPercent: 100})
	assert.True(t, exists(t, crashed, "db"), "MkdirAll is durable at once")
	assert.Equal(t, "a", readFile(t, crashed, "db/synced"))
	assert.False(t, exists(t, crashed, "db/unsynced"),
		"a file whose directory was not synced after its creation is gone")
	names, err := crashed.List("db")
	require.NoError(t, err)
	assert.Equal(t, []string{"synced"}, names)
}

func TestCrashRename(t *testing.T) {
	fs := vfs.NewCrashable()
	writeFile(t, fs, "CURRENT", "v1", true)
	syncDir(t, fs, "")

	// The atomic replace pattern: write a temporary file, sync it, rename
	// it over the old one, sync the directory.
	writeFile(t, fs, "CURRENT.tmp", "v2", true)
	syncDir(t, fs, "")
	require.NoError(t, fs.Rename("CURRENT.tmp", "CURRENT"))

	before := fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "v1", readFile(t, before, "CURRENT"), "an unsynced rename is undone")
	assert.Equal(t, "v2", readFile(t, before, "CURRENT.tmp"))

	syncDir(t, fs, "")
	after := fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "v2", readFile(t, after, "CURRENT"), "a rename is durable once the directory is synced")
	assert.False(t, exists(t, after, "CURRENT.tmp"))
}

func TestCrashRenameAcrossDirectories(t *testing.T) {
	fs := vfs.NewCrashable()
	require.NoError(t, fs.MkdirAll("a", 0o755))
	require.NoError(t, fs.MkdirAll("b", 0o755))
	writeFile(t, fs, "a/f", "data", true)
	syncDir(t, fs, "a")
	require.NoError(t, fs.Rename("a/f", "b/f"))
	syncDir(t, fs, "b")

	crashed := fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "data", readFile(t, crashed, "b/f"))
	assert.Equal(t, "data", readFile(t, crashed, "a/f"),
		"the old name survives until its directory is synced")

	syncDir(t, fs, "a")
	crashed = fs.CrashClone(vfs.CrashCloneOptions{})
	assert.False(t, exists(t, crashed, "a/f"))
	assert.Equal(t, "data", readFile(t, crashed, "b/f"))
}

func TestCrashRemove(t *testing.T) {
	fs := vfs.NewCrashable()
	writeFile(t, fs, "f", "durable", true)
	syncDir(t, fs, "")
	require.NoError(t, fs.Remove("f"))

	crashed := fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "durable", readFile(t, crashed, "f"),
		"an unsynced removal is undone, with the file's durable data")

	syncDir(t, fs, "")
	crashed = fs.CrashClone(vfs.CrashCloneOptions{})
	assert.False(t, exists(t, crashed, "f"), "a removal is durable once the directory is synced")
}

func TestCrashCreateOverExisting(t *testing.T) {
	fs := vfs.NewCrashable()
	writeFile(t, fs, "f", "old", true)
	syncDir(t, fs, "")
	writeFile(t, fs, "f", "new", true)

	crashed := fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "old", readFile(t, crashed, "f"),
		"until the directory is synced, the name points at the old file")

	syncDir(t, fs, "")
	crashed = fs.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, "new", readFile(t, crashed, "f"))
}

func TestCrashCloneIsIndependent(t *testing.T) {
	fs := vfs.NewCrashable()
	f, err := fs.Create("f")
	require.NoError(t, err)
	_, err = f.Write(bytes.Repeat([]byte("x"), 100_000)) // several chunks
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	syncDir(t, fs, "")

	crashed := fs.CrashClone(vfs.CrashCloneOptions{})
	_, err = f.Write([]byte("more"))
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	fi, err := crashed.Stat("f")
	require.NoError(t, err)
	assert.Equal(t, int64(100_000), fi.Size(), "writes to the original do not show in the clone")

	g, err := crashed.Create("g")
	require.NoError(t, err)
	require.NoError(t, g.Close())
	assert.False(t, exists(t, fs, "g"), "changes to the clone do not show in the original")

	// Everything in a clone is durable: cloning it again loses nothing.
	syncDir(t, crashed, "")
	again := crashed.CrashClone(vfs.CrashCloneOptions{})
	assert.Equal(t, dump(t, crashed), dump(t, again))

	// Locks do not survive a crash.
	l, err := fs.Lock("LOCK")
	require.NoError(t, err)
	defer l.Close()
	syncDir(t, fs, "")
	l2, err := fs.CrashClone(vfs.CrashCloneOptions{}).Lock("LOCK")
	require.NoError(t, err)
	require.NoError(t, l2.Close())
}

func TestCrashDeterministic(t *testing.T) {
	fs := vfs.NewCrashable()
	require.NoError(t, fs.MkdirAll("d", 0o755))
	for i := range 50 {
		f, err := fs.Create(fmt.Sprintf("d/%02d", i))
		require.NoError(t, err)
		_, err = fmt.Fprintf(f, "synced-%d;", i)
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		_, err = f.Write(bytes.Repeat([]byte{'a' + byte(i%26)}, 100))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	syncDir(t, fs, "d")

	opts := vfs.CrashCloneOptions{Seed: 42, UnsyncedDataPercent: 50}
	first := dump(t, fs.CrashClone(opts))
	assert.Equal(t, first, dump(t, fs.CrashClone(opts)), "the same seed gives the same clone")
	opts.Seed = 43
	assert.NotEqual(t, first, dump(t, fs.CrashClone(opts)), "another seed gives another clone")
}

func TestCrashCloneOptionsValidated(t *testing.T) {
	fs := vfs.NewCrashable()
	assert.Panics(t, func() { fs.CrashClone(vfs.CrashCloneOptions{UnsyncedDataPercent: 101}) })
	assert.Panics(t, func() { fs.CrashClone(vfs.CrashCloneOptions{UnsyncedDataPercent: -1}) })
}

// TestCrashCloneConcurrent clones while writers append and sync, and checks
// that every clone holds at least what was acknowledged as synced before it
// started, and only data that was written, in order.
func TestCrashCloneConcurrent(t *testing.T) {
	fs := vfs.NewCrashable()
	const writers, records = 4, 300
	record := func(w, i int) string { return fmt.Sprintf("w%d-r%04d;", w, i) }
	var want [writers]strings.Builder
	for w := range writers {
		for i := range records {
			want[w].WriteString(record(w, i))
		}
	}

	var synced [writers]atomic.Int64 // bytes acknowledged durable

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			f, err := fs.Create(fmt.Sprintf("w%d.log", w))
			if !assert.NoError(t, err) {
				return
			}
			d, err := fs.OpenDir("")
			if !assert.NoError(t, err) {
				return
			}
			assert.NoError(t, d.Sync())
			assert.NoError(t, d.Close())
			n := 0
			for i := range records {
				r := record(w, i)
				_, err := io.WriteString(f, r)
				assert.NoError(t, err)
				n += len(r)
				if i%7 == 0 {
					assert.NoError(t, f.Sync())
					synced[w].Store(int64(n))
				}
			}
			assert.NoError(t, f.Close())
		})
	}

	for seed := range int64(50) {
		var floor [writers]int64
		for w := range writers {
			floor[w] = synced[w].Load()
		}
		crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: seed, UnsyncedDataPercent: 50})
		for w := range writers {
			name := fmt.Sprintf("w%d.log", w)
			if !exists(t, crashed, name) {
				require.Zero(t, floor[w], "a file with synced data has a synced entry")
				continue
			}
			got := readFile(t, crashed, name)
			require.GreaterOrEqual(t, int64(len(got)), floor[w], "synced data must survive")
			require.True(t, strings.HasPrefix(want[w].String(), got), "only written data, in order")
		}
	}
	wg.Wait()

	crashed := fs.CrashClone(vfs.CrashCloneOptions{})
	for w := range writers {
		assert.Equal(t, synced[w].Load(), int64(len(readFile(t, crashed, fmt.Sprintf("w%d.log", w)))),
			"after the writers stop, exactly the synced data survives")
	}
}

// TestCrashUnsyncedPages checks the page model: the synced data survives,
// the file keeps a length between its synced and its full length, each
// unsynced page is either intact or zeros, and across files some clone
// holds a hole (a page of zeros with kept data after it).
func TestCrashUnsyncedPages(t *testing.T) {
	fs := vfs.NewCrashable()
	const synced = 5000 // the last sync ends inside the second page
	full := make([]byte, 9*vfs.CrashPageSize+100)
	for i := range full {
		full[i] = byte('a' + i%26)
	}
	for i := range 20 {
		f, err := fs.Create(fmt.Sprintf("f%02d", i))
		require.NoError(t, err)
		_, err = f.Write(full[:synced])
		require.NoError(t, err)
		require.NoError(t, f.Sync())
		_, err = f.Write(full[synced:])
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	syncDir(t, fs, "")

	var holes, fullLength, shorter, zeroPages, keptPages int
	for seed := range int64(10) {
		crashed := fs.CrashClone(vfs.CrashCloneOptions{Seed: seed, UnsyncedDataPercent: 100, Unsynced: vfs.UnsyncedPages})
		for i := range 20 {
			got := []byte(readFile(t, crashed, fmt.Sprintf("f%02d", i)))
			require.Greater(t, len(got), synced, "with UnsyncedDataPercent 100 every file keeps some unsynced length")
			require.LessOrEqual(t, len(got), len(full))
			if len(got) == len(full) {
				fullLength++
			} else {
				shorter++
			}
			require.Equal(t, full[:synced], got[:synced], "the synced data survives")
			lost := false
			for p := synced / vfs.CrashPageSize * vfs.CrashPageSize; p < len(got); p += vfs.CrashPageSize {
				from, to := max(p, synced), min(p+vfs.CrashPageSize, len(got))
				switch {
				case bytes.Equal(got[from:to], full[from:to]):
					keptPages++
					if lost {
						holes++
						lost = false
					}
				case bytes.Equal(got[from:to], make([]byte, to-from)):
					zeroPages++
					lost = true
				default:
					require.Failf(t, "a page is neither kept nor zeros", "file f%02d, seed %d, page at %d", i, seed, p)
				}
			}
		}
	}
	t.Logf("%d files at full length, %d shorter; %d unsynced pages kept, %d zeroed; %d holes", fullLength, shorter, keptPages, zeroPages, holes)
	assert.Positive(t, fullLength, "the page model keeps the full length at times")
	assert.Positive(t, shorter, "the page model keeps a shorter length at times")
	assert.Positive(t, holes, "the page model leaves holes: zero pages with kept data after them")

	opts := vfs.CrashCloneOptions{Seed: 42, UnsyncedDataPercent: 50, Unsynced: vfs.UnsyncedPages}
	assert.Equal(t, dump(t, fs.CrashClone(opts)), dump(t, fs.CrashClone(opts)), "the same seed gives the same clone")
	assert.Panics(t, func() { fs.CrashClone(vfs.CrashCloneOptions{Unsynced: vfs.UnsyncedPages + 1}) })
}
