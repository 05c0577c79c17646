package filededup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/deduptest"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/stretchr/testify/require"
)

func long() bool { return os.Getenv("MAILBRICKS_LONG") != "" }

// TestCrash runs Put, Link, PutLink, Unlink and GC concurrently on the
// crash-simulating file system, takes a crash image at a random moment,
// reopens it, and checks: no link points to a missing or damaged blob;
// every link acknowledged before the crash survives and none whose Unlink
// was acknowledged does; every blob, file or inline record, is covered by
// a link or a candidate (nothing leaks); and GC then works. Half of the
// contents are small enough to be stored inline, half are files.
func TestCrash(t *testing.T) {
	cycles := 20
	if long() {
		cycles = 5000
	}
	var total crashStats
	for c := range cycles {
		st := crashCycle(t, uint64(c))
		total.links += st.links
		total.unlinks += st.unlinks
		total.inFlight += st.inFlight
		total.inlineLinks += st.inlineLinks
		total.putLinks += st.putLinks
	}
	t.Logf("%d crash cycles: %d acknowledged links checked present (%d to inline blobs, %d made by PutLink), %d acknowledged unlinks checked absent, %d unlinks in flight",
		cycles, total.links, total.inlineLinks, total.putLinks, total.unlinks, total.inFlight)
	require.NotZero(t, total.inlineLinks, "the cycles must check links to inline blobs")
	require.NotZero(t, total.links-total.inlineLinks, "the cycles must check links to blob files")
	require.NotZero(t, total.putLinks, "the cycles must check links made by PutLink")
}

// crashStats counts what one crash cycle checked: links acknowledged
// before the image and not being unlinked (must be present; how many of
// them to inline blobs, and how many made by PutLink), unlinks
// acknowledged before it (must be absent), and unlinks in flight (either).
type crashStats struct {
	links, inlineLinks, putLinks int
	unlinks, inFlight            int
}

func crashCycle(t *testing.T, seed uint64) crashStats {
	ctx := context.Background()
	fs := vfs.NewCrashable()
	b, err := Open("/d", &Options{FS: fs})
	require.NoError(t, err)
	clk := deduptest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	const grace = time.Hour
	s := dedup.New(b, &dedup.Options{Grace: grace, Now: clk.Now})

	contents := make([][]byte, 8)
	for i := range contents {
		n := 3000 + 100*i // inline
		if i >= 4 {
			n = DefaultInlineMax/2 + 1000*i // a file
		}
		contents[i] = bytes.Repeat([]byte{byte(i), byte(seed)}, n)
	}
	// crashed is set just before the crash image is taken and cloned just
	// after: an op acknowledged before crashed is in the image; an op
	// started after cloned is not.
	var crashed, cloned atomic.Bool
	var ops atomic.Int64
	var mu sync.Mutex
	linked := map[string]dedup.Ref{} // owner -> ref, Link acked before the crash
	byPutLink := map[string]bool{}   // owner linked by PutLink
	unlinking := map[string]bool{}   // Unlink started before the crash
	unlinked := map[string]bool{}    // Unlink acked before the crash
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			var mine []string
			for i := 0; ; i++ {
				ops.Add(1)
				select {
				case <-stop:
					return
				default:
				}
				switch op := rng.IntN(10); {
				case op < 5:
					data := contents[rng.IntN(len(contents))]
					owner := fmt.Sprintf("w%d/%d", w, i)
					putLink := rng.IntN(2) == 0
					var ref dedup.Ref
					var err error
					if putLink {
						ref, err = s.PutLink(ctx, bytes.NewReader(data), owner)
						if err != nil {
							t.Error(err)
							return
						}
					} else {
						ref, err = s.Put(ctx, bytes.NewReader(data))
						if err != nil {
							t.Error(err)
							return
						}
						if err := s.Link(ctx, ref, owner); errors.Is(err, dedup.ErrNotFound) {
							continue
						} else if err != nil {
							t.Error(err)
							return
						}
					}
					mu.Lock()
					if !crashed.Load() {
						linked[owner] = ref
						byPutLink[owner] = putLink
					}
					mu.Unlock()
					mine = append(mine, owner)
				case op < 8 && len(mine) > 0:
					j := rng.IntN(len(mine))
					owner := mine[j]
					mine = append(mine[:j], mine[j+1:]...)
					mu.Lock()
					ref, ok := linked[owner]
					if !cloned.Load() {
						unlinking[owner] = true
					}
					mu.Unlock()
					if !ok {
						continue
					}
					if err := s.Unlink(ctx, ref, owner); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if !crashed.Load() {
						unlinked[owner] = true
					}
					mu.Unlock()
				default:
					clk.Advance(grace / 3)
					if _, err := s.GC(ctx, &dedup.GCOptions{BatchSize: 3}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	// Let the workers run; the crash point varies with the seed.
	for ops.Load() < int64(20+seed%5*30) {
		runtime.Gosched()
	}
	mu.Lock()
	crashed.Store(true)
	mu.Unlock()
	img := fs.CrashClone(vfs.CrashCloneOptions{Seed: int64(seed), UnsyncedDataPercent: 0})
	mu.Lock()
	cloned.Store(true)
	mu.Unlock()
	close(stop)
	wg.Wait()
	require.NoError(t, s.Close())

	b2, err := Open("/d", &Options{FS: img})
	require.NoError(t, err, "the crash image must reopen")
	defer b2.Close()

	// Every link points to an intact blob.
	links := map[string]bool{}
	it, err := b2.db.NewPrefixIter([]byte{prefixLink})
	require.NoError(t, err)
	linkedHashes := map[dedup.Hash]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		var h dedup.Hash
		copy(h[:], it.Key()[1:33])
		owner := string(it.Key()[33:])
		links[owner] = true
		linkedHashes[h] = true
		bl, err := b2.Open(ctx, h)
		require.NoError(t, err, "seed %d: link %s points to a missing blob", seed, owner)
		data, err := io.ReadAll(bl)
		bl.Close()
		require.NoError(t, err)
		require.Equal(t, h, dedup.Hash(sha256.Sum256(data)), "seed %d: blob %s behind a link is damaged", seed, h)
	}
	require.NoError(t, it.Close())
	var st crashStats
	for owner, ref := range linked {
		if !unlinking[owner] {
			require.True(t, links[owner], "seed %d: link %s acknowledged before the crash is gone", seed, owner)
			st.links++
			if ref.Size <= DefaultInlineMax {
				st.inlineLinks++
			}
			if byPutLink[owner] {
				st.putLinks++
			}
		}
		if unlinked[owner] {
			require.False(t, links[owner], "seed %d: link %s unlinked before the crash is back", seed, owner)
			st.unlinks++
		}
		if unlinking[owner] && !unlinked[owner] {
			st.inFlight++
		}
	}

	// Every blob file is covered by a link or a candidate.
	cands := map[dedup.Hash]bool{}
	it, err = b2.db.NewPrefixIter([]byte{prefixCand})
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		var h dedup.Hash
		copy(h[:], it.Key()[9:41])
		cands[h] = true
	}
	require.NoError(t, it.Close())
	blobs := append(walkBlobs(t, img), inlineBlobs(t, b2)...)
	for _, h := range blobs {
		require.True(t, linkedHashes[h] || cands[h], "seed %d: blob %s has neither a link nor a candidate: it would leak", seed, h)
	}
	names, err := img.List("/d/tmp")
	require.NoError(t, err)
	require.Len(t, names, tmpDirs, "tmp/ must hold only the upload directories")
	for _, d := range names {
		left, err := img.List("/d/tmp/" + d)
		require.NoError(t, err)
		require.Empty(t, left, "Open must remove leftover uploads")
	}

	// GC works on the recovered store and keeps exactly the linked blobs.
	s2 := dedup.New(b2, &dedup.Options{Grace: grace, Now: func() time.Time { return clk.Now().Add(10 * grace) }})
	_, err = s2.GC(ctx, nil)
	require.NoError(t, err)
	for _, h := range append(walkBlobs(t, img), inlineBlobs(t, b2)...) {
		require.True(t, linkedHashes[h], "seed %d: GC left unlinked blob %s", seed, h)
	}
	for h := range linkedHashes {
		_, err := b2.Stat(ctx, h)
		require.NoError(t, err, "seed %d: GC deleted linked blob %s", seed, h)
	}
	return st
}

// inlineBlobs returns the hashes of b's inline blobs.
func inlineBlobs(t *testing.T, b *Backend) []dedup.Hash {
	var out []dedup.Hash
	it, err := b.db.NewPrefixIter([]byte{prefixBlob})
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		require.Len(t, it.Key(), 1+32)
		var h dedup.Hash
		copy(h[:], it.Key()[1:])
		out = append(out, h)
	}
	require.NoError(t, it.Close())
	return out
}

func walkBlobs(t *testing.T, fs vfs.FS) []dedup.Hash {
	var out []dedup.Hash
	l1, err := fs.List("/d/blobs")
	require.NoError(t, err)
	for _, a := range l1 {
		l2, err := fs.List("/d/blobs/" + a)
		require.NoError(t, err)
		for _, c := range l2 {
			l3, err := fs.List("/d/blobs/" + a + "/" + c)
			require.NoError(t, err)
			for _, name := range l3 {
				h, err := dedup.ParseHash(name)
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(name, a+c))
				out = append(out, h)
			}
		}
	}
	return out
}

// TestMetaFailure checks that a failed synced write to the meta DB fails
// the operation instead of leaving a blob that nothing covers.
func TestMetaFailure(t *testing.T) {
	ctx := context.Background()
	efs := vfs.NewErrorFS(vfs.NewMem(), nil)
	b, err := Open("/d", &Options{FS: efs})
	require.NoError(t, err)
	s := dedup.New(b, nil)
	defer s.Close()
	efs.SetInjector(vfs.InjectorFunc(func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.HasSuffix(path, ".log") {
			return errors.New("injected sync failure")
		}
		return nil
	}))
	_, err = s.Put(ctx, strings.NewReader("payload"))
	require.Error(t, err, "Put must fail when its records cannot be made durable")
	_, err = s.Put(ctx, bytes.NewReader(bytes.Repeat([]byte("large"), DefaultInlineMax)))
	require.Error(t, err, "Put of a blob file must fail when its records cannot be made durable")
	efs.SetInjector(nil)
	blobs := walkBlobs(t, efs)
	require.Empty(t, blobs, "a Put whose records failed must not publish the blob")

}
