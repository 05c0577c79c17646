package filededup

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/deduptest"
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
	return n, nil
}

func (h harness) Corrupt(ctx context.Context, hash dedup.Hash) error {
	p := filepath.Join(h.dir, filepath.FromSlash(blobPath(hash)))
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 0x01
	return os.WriteFile(p, b, 0o644)
}

func newBackend(t *testing.T) dedup.Backend {
	dir := t.TempDir()
	b, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return harness{Backend: b, dir: dir}
}

func TestConformance(t *testing.T) { deduptest.Run(t, newBackend) }

// TestGCRaceLong is the GC race with more workers and rounds; it runs
// only with MAILBRICKS_LONG set.
func TestGCRaceLong(t *testing.T) {
	if !long() {
		t.Skip("set MAILBRICKS_LONG=1 for the long GC race")
	}
	deduptest.GCRace(t, newBackend, 8, 3000)
}
