package filededup

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/deduptest"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/stretchr/testify/require"
)

// harness adds deduptest.Harness to a Backend on the OS file system.
type harness struct {
	*Backend
	dir string
}

func (h harness) StoredBytes(ctx context.Context) (int64, error) {
	var n int64
	for _, sub := range []string{"blobs", "tmp"} {
		err := filepath.WalkDir(filepath.Join(h.dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			n += fi.Size()
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	it, err := h.db.NewPrefixIter([]byte{prefixBlob})
	if err != nil {
		return 0, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		n += int64(len(it.Value()) - 8)
	}
	if err := it.Error(); err != nil {
		it.Close()
		return 0, err
	}
	return n, it.Close()
}

func (h harness) Corrupt(ctx context.Context, hash dedup.Hash) error {
	if v, ok, err := h.getInline(hash); err != nil {
		return err
	} else if ok {
		v[8+(len(v)-8)/2] ^= 0x01
		return h.db.Set(blobKey(hash), v, lsm.Sync)
	}
	p := filepath.Join(h.dir, filepath.FromSlash(blobPath(hash)))
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 0x01
	return os.WriteFile(p, b, 0o644)
}

func newBackend(t *testing.T) dedup.Backend {
	return newBackendOpts(t, nil)
}

func newBackendOpts(t *testing.T, opts *Options) dedup.Backend {
	dir := t.TempDir()
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return harness{Backend: b, dir: dir}
}

// TestConformance runs the suite with the default InlineMax (blobs up to
// 64 KiB inline, larger ones files), with every blob a file, and with
// every blob the suite stores (up to a few MiB) inline but the largest.
func TestConformance(t *testing.T) {
	t.Run("Default", func(t *testing.T) { deduptest.Run(t, newBackend) })
	t.Run("FilesOnly", func(t *testing.T) {
		deduptest.Run(t, func(t *testing.T) dedup.Backend { return newBackendOpts(t, &Options{InlineMax: -1}) })
	})
	t.Run("InlineMostly", func(t *testing.T) {
		deduptest.Run(t, func(t *testing.T) dedup.Backend { return newBackendOpts(t, &Options{InlineMax: MaxInlineMax}) })
	})
}

// TestGCRaceLong is the GC race with more workers and rounds; it runs
// only with MAILBRICKS_LONG set.
func TestGCRaceLong(t *testing.T) {
	if !long() {
		t.Skip("set MAILBRICKS_LONG=1 for the long GC race")
	}
	deduptest.GCRace(t, newBackend, 8, 3000)
}

// TestFormatCompat checks that a directory written with every blob a file
// (the layout before inline blobs) opens and reads with inline blobs on,
// and the other way round; that Open removes leftover uploads both directly
// in tmp/ (the old layout) and in its subdirectories; and that GC collects
// both forms.
func TestFormatCompat(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	small, large := []byte("a small blob"), bytes.Repeat([]byte("large "), 20000)
	put := func(opts *Options, data []byte, owner string) dedup.Ref {
		s, err := OpenStore(dir, opts)
		require.NoError(t, err)
		defer s.Close()
		ref, err := s.PutLink(ctx, bytes.NewReader(data), owner)
		require.NoError(t, err)
		return ref
	}
	old := put(&Options{InlineMax: -1}, small, "old")
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(blobPath(old.Hash))))
	require.NoError(t, err, "with InlineMax -1 a small blob must be a file")
	// Uploads a crash left behind, in the old place and the new.
	oldTemp := filepath.Join(dir, "tmp", "00000000000000ff")
	newTemp := filepath.Join(dir, "tmp", "3", "0000000000000003")
	require.NoError(t, os.WriteFile(oldTemp, []byte("partial"), 0o644))
	require.NoError(t, os.WriteFile(newTemp, []byte("partial"), 0o644))
	inl := put(nil, append([]byte("inline "), small...), "new")
	_, err = os.Stat(filepath.Join(dir, filepath.FromSlash(blobPath(inl.Hash))))
	require.ErrorIs(t, err, fs.ErrNotExist, "by default a small blob must not be a file")
	for _, p := range []string{oldTemp, newTemp} {
		_, err = os.Stat(p)
		require.ErrorIs(t, err, fs.ErrNotExist, "Open must remove the leftover upload %s", p)
	}
	big := put(nil, large, "big")
	_, err = os.Stat(filepath.Join(dir, filepath.FromSlash(blobPath(big.Hash))))
	require.NoError(t, err, "a blob over InlineMax must be a file")

	for _, opts := range []*Options{nil, {InlineMax: -1}} {
		s, err := OpenStore(dir, opts)
		require.NoError(t, err)
		for _, ref := range []dedup.Ref{old, inl, big} {
			require.NoError(t, s.Verify(ctx, ref), "opts %+v: blob %s must read back", opts, ref)
			info, err := s.Stat(ctx, ref)
			require.NoError(t, err)
			require.False(t, info.ModTime.IsZero(), "Stat must give a modification time")
		}
		// Putting the bytes again stores no second copy in the other form.
		_, err = s.Put(ctx, bytes.NewReader(small))
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	b, err := Open(dir, nil)
	require.NoError(t, err)
	require.Len(t, inlineBlobs(t, b), 1, "re-putting a blob stored as a file must not add an inline copy")
	clk := time.Now().Add(48 * time.Hour)
	s := dedup.New(b, &dedup.Options{Now: func() time.Time { return clk }})
	defer s.Close()
	for ref, owner := range map[dedup.Ref]string{old: "old", inl: "new", big: "big"} {
		require.NoError(t, s.Unlink(ctx, ref, owner))
	}
	st, err := s.GC(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 3, st.Deleted, "GC must collect file and inline blobs: %+v", st)
	n, err := harness{Backend: b, dir: dir}.StoredBytes(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}
