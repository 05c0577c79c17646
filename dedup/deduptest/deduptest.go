// Package deduptest is the conformance suite for [dedup.Backend]
// implementations: every backend's tests call [Run].
package deduptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/stretchr/testify/require"
)

// Harness is optionally implemented by the backend value newBackend
// returns (typically a test wrapper embedding the real backend), so that
// the suite can look at and damage the storage beneath the API. Subtests
// that need it are skipped when it is missing.
type Harness interface {
	// StoredBytes returns the total length of every stored blob and every
	// temporary upload object the backend holds.
	StoredBytes(ctx context.Context) (int64, error)
	// Corrupt flips one byte of the stored blob h in place.
	Corrupt(ctx context.Context, h dedup.Hash) error
}

// Clock is a fake clock for the suite's Stores, safe for concurrent use.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(t.UnixNano())
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

const grace = time.Hour

// Run runs the conformance suite. newBackend must return a new, empty
// backend each time it is called; the suite closes it (through the Store).
func Run(t *testing.T, newBackend func(t *testing.T) dedup.Backend) {
	open := func(t *testing.T) (*dedup.Store, dedup.Backend, *Clock) {
		b := newBackend(t)
		clk := NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
		s := dedup.New(b, &dedup.Options{Grace: grace, Now: clk.Now})
		t.Cleanup(func() { s.Close() })
		return s, b, clk
	}
	ctx := context.Background()

	t.Run("InvalidInput", func(t *testing.T) {
		s, b, clk := open(t)
		testInvalidInput(t, s, b, clk)
	})
	t.Run("PutOpenRoundTrip", func(t *testing.T) {
		s, _, _ := open(t)
		for _, n := range []int{0, 1, 4095, 100 << 10, 1<<20 + 17} {
			data := randBytes(uint64(n), n)
			ref, err := s.Put(ctx, bytes.NewReader(data))
			require.NoError(t, err)
			require.Equal(t, dedup.Ref{Hash: sha256.Sum256(data), Size: int64(n)}, ref, "Put must return the SHA-256 and length of the bytes")
			back, err := dedup.ParseRef(ref.String())
			require.NoError(t, err)
			require.Equal(t, ref, back, "ParseRef must invert Ref.String")
			require.Equal(t, data, readBlob(t, s, ref), "Open must return the bytes put")
			info, err := s.Stat(ctx, ref)
			require.NoError(t, err)
			require.Equal(t, ref, info.Ref)
			require.NoError(t, s.Verify(ctx, ref), "Verify must pass for an intact blob")
			if n > 100 {
				rc, err := s.Open(ctx, ref)
				require.NoError(t, err)
				off := int64(n / 3)
				_, err = rc.Seek(off, io.SeekStart)
				require.NoError(t, err)
				buf := make([]byte, 50)
				_, err = io.ReadFull(rc, buf)
				require.NoError(t, err)
				require.Equal(t, data[off:off+50], buf, "a seek then read must return that range")
				require.NoError(t, rc.Close())
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s, _, _ := open(t)
		ref := dedup.Ref{Hash: sha256.Sum256([]byte("never stored")), Size: 12}
		_, err := s.Open(ctx, ref)
		require.ErrorIs(t, err, dedup.ErrNotFound, "Open of a missing blob")
		_, err = s.Stat(ctx, ref)
		require.ErrorIs(t, err, dedup.ErrNotFound, "Stat of a missing blob")
		require.ErrorIs(t, s.Verify(ctx, ref), dedup.ErrNotFound, "Verify of a missing blob")
		require.ErrorIs(t, s.Link(ctx, ref, "u/1"), dedup.ErrNotFound, "Link to a missing blob")
		require.NoError(t, s.Unlink(ctx, ref, "u/1"), "Unlink of a missing link is not an error")
		require.ErrorIs(t, s.Link(ctx, dedup.Ref{}, "u/1"), dedup.ErrInvalidRef)
		stored, err := s.Put(ctx, strings.NewReader("x"))
		require.NoError(t, err)
		require.ErrorIs(t, s.Link(ctx, stored, ""), dedup.ErrInvalidOwner)
	})

	t.Run("ConcurrentIdenticalPuts", func(t *testing.T) {
		s, b, _ := open(t)
		data := randBytes(7, 300<<10)
		refs := make([]dedup.Ref, 16)
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range refs {
			wg.Go(func() { refs[i], errs[i] = s.Put(ctx, bytes.NewReader(data)) })
		}
		wg.Wait()
		for i := range refs {
			require.NoError(t, errs[i])
			require.Equal(t, refs[0], refs[i], "identical bytes must get identical refs")
		}
		require.Equal(t, data, readBlob(t, s, refs[0]))
		if h, ok := b.(Harness); ok {
			n, err := h.StoredBytes(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(len(data)), n, "16 concurrent puts of one blob must store exactly one copy and no temporary objects")
		}
	})

	t.Run("LinkUnlinkIdempotent", func(t *testing.T) {
		s, _, clk := open(t)
		ref, err := s.Put(ctx, bytes.NewReader(randBytes(3, 5000)))
		require.NoError(t, err)
		for range 2 {
			require.NoError(t, s.Link(ctx, ref, "alice/m1/2"))
		}
		require.NoError(t, s.Link(ctx, ref, "bob/m9/2"))
		for range 2 {
			require.NoError(t, s.Unlink(ctx, ref, "alice/m1/2"))
		}
		clk.Advance(3 * grace)
		_, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, s.Verify(ctx, ref), "a blob with a link left must survive GC")
		require.NoError(t, s.Unlink(ctx, ref, "bob/m9/2"))
		require.NoError(t, s.Unlink(ctx, ref, "bob/m9/2"), "a second Unlink must be a no-op")
		st, err := s.GC(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, 1, st.Deleted, "after the last Unlink, GC must delete the blob: %+v", st)
		require.Equal(t, int64(5000), st.DeletedBytes)
		_, err = s.Stat(ctx, ref)
		require.ErrorIs(t, err, dedup.ErrNotFound)
		require.ErrorIs(t, s.Link(ctx, ref, "carol/m2/1"), dedup.ErrNotFound, "Link to a collected blob must fail with ErrNotFound")
		ref2, err := s.Put(ctx, bytes.NewReader(randBytes(3, 5000)))
		require.NoError(t, err)
		require.Equal(t, ref, ref2)
		require.NoError(t, s.Link(ctx, ref, "carol/m2/1"), "after a re-Put the blob can be linked again")
	})

	t.Run("PutLink", func(t *testing.T) {
		s, b, clk := open(t)
		for _, n := range []int{0, 5000, 200 << 10} {
			data := randBytes(uint64(n)+11, n)
			ref, err := s.PutLink(ctx, bytes.NewReader(data), "u/putlink")
			require.NoError(t, err)
			require.Equal(t, dedup.Ref{Hash: sha256.Sum256(data), Size: int64(n)}, ref)
			require.Equal(t, data, readBlob(t, s, ref), "PutLink must store the bytes")
			again, err := s.PutLink(ctx, bytes.NewReader(data), "u/other")
			require.NoError(t, err, "PutLink of a stored blob must link it")
			require.Equal(t, ref, again)
			clk.Advance(3 * grace)
			_, err = s.GC(ctx, nil)
			require.NoError(t, err)
			require.NoError(t, s.Verify(ctx, ref), "a blob linked by PutLink must survive GC past the grace period")
			require.NoError(t, s.Unlink(ctx, ref, "u/putlink"))
			_, err = s.GC(ctx, nil)
			require.NoError(t, err)
			require.NoError(t, s.Verify(ctx, ref), "a blob with a PutLink link left must survive GC")
			require.NoError(t, s.Unlink(ctx, ref, "u/other"))
			st, err := s.GC(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, 1, st.Deleted, "after the last Unlink, GC must delete a blob PutLink stored: %+v", st)
			_, err = s.Stat(ctx, ref)
			require.ErrorIs(t, err, dedup.ErrNotFound)
		}
		_, err := s.PutLink(ctx, strings.NewReader("x"), "")
		require.ErrorIs(t, err, dedup.ErrInvalidOwner)
		_, err = s.PutLink(ctx, strings.NewReader("x"), strings.Repeat("o", dedup.MaxOwnerLen+1))
		require.ErrorIs(t, err, dedup.ErrInvalidOwner)
		if h, ok := b.(Harness); ok {
			n, err := h.StoredBytes(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "GC must leave nothing of the blobs PutLink stored")
		}
	})

	t.Run("OwnersWithOddBytes", func(t *testing.T) {
		s, _, clk := open(t)
		ref, err := s.Put(ctx, strings.NewReader("odd owners"))
		require.NoError(t, err)
		owners := []string{"../../etc/passwd", "a/b", "a", "a/b/", "ü\x00\xff/ %2F", strings.Repeat("z", dedup.MaxOwnerLen)}
		for _, o := range owners {
			require.NoError(t, s.Link(ctx, ref, o), "owner %q", o)
		}
		for _, o := range owners[:len(owners)-1] {
			require.NoError(t, s.Unlink(ctx, ref, o))
		}
		clk.Advance(2 * grace)
		_, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, s.Verify(ctx, ref), "owners that are prefixes of one another must stay distinct links")
		require.NoError(t, s.Unlink(ctx, ref, owners[len(owners)-1]))
		_, err = s.GC(ctx, nil)
		require.NoError(t, err)
		_, err = s.Stat(ctx, ref)
		require.ErrorIs(t, err, dedup.ErrNotFound)
	})

	t.Run("GCKeepsRecentPut", func(t *testing.T) {
		s, _, clk := open(t)
		ref, err := s.Put(ctx, bytes.NewReader(randBytes(4, 10000)))
		require.NoError(t, err)
		st, err := s.GC(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, st.Deleted)
		clk.Advance(grace - time.Second)
		st, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, st.Deleted, "GC must not delete a blob put less than the grace period ago")
		require.NoError(t, s.Verify(ctx, ref))
		// A second Put of the same bytes renews the protection.
		_, err = s.Put(ctx, bytes.NewReader(randBytes(4, 10000)))
		require.NoError(t, err)
		clk.Advance(2 * time.Second)
		st, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, st.Deleted, "a re-Put must renew the temporary link: %+v", st)
		clk.Advance(grace)
		st, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, 1, st.Deleted, "an unlinked blob older than the grace period must be deleted: %+v", st)
		_, err = s.Stat(ctx, ref)
		require.ErrorIs(t, err, dedup.ErrNotFound)
		st, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, st.Examined, "processed candidates must leave the log: %+v", st)
	})

	t.Run("GCKeepsLinked", func(t *testing.T) {
		s, _, clk := open(t)
		var refs []dedup.Ref
		for i := range 20 {
			ref, err := s.Put(ctx, bytes.NewReader(randBytes(uint64(100+i), 3000)))
			require.NoError(t, err)
			if i%2 == 0 {
				require.NoError(t, s.Link(ctx, ref, fmt.Sprintf("u/%d", i)))
			}
			refs = append(refs, ref)
		}
		clk.Advance(5 * grace)
		st, err := s.GC(ctx, &dedup.GCOptions{BatchSize: 3})
		require.NoError(t, err)
		require.Equal(t, 10, st.Deleted, "%+v", st)
		for i, ref := range refs {
			if i%2 == 0 {
				require.NoError(t, s.Verify(ctx, ref), "GC must never delete a linked blob")
			} else {
				_, err := s.Stat(ctx, ref)
				require.ErrorIs(t, err, dedup.ErrNotFound, "GC must delete an unlinked blob past the grace period")
			}
		}
	})

	t.Run("GCLimit", func(t *testing.T) {
		s, _, clk := open(t)
		for i := range 10 {
			_, err := s.Put(ctx, bytes.NewReader(randBytes(uint64(200+i), 100)))
			require.NoError(t, err)
		}
		clk.Advance(2 * grace)
		st, err := s.GC(ctx, &dedup.GCOptions{Limit: 4, BatchSize: 3})
		require.NoError(t, err)
		require.Equal(t, 4, st.Examined)
		st, err = s.GC(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, 6, st.Deleted, "%+v", st)
	})

	t.Run("VerifyCatchesFlippedByte", func(t *testing.T) {
		s, b, _ := open(t)
		h, ok := b.(Harness)
		if !ok {
			t.Skip("backend does not implement deduptest.Harness")
		}
		data := randBytes(9, 70000)
		ref, err := s.Put(ctx, bytes.NewReader(data))
		require.NoError(t, err)
		require.NoError(t, s.Verify(ctx, ref))
		require.NoError(t, h.Corrupt(ctx, ref.Hash))
		require.ErrorIs(t, s.Verify(ctx, ref), dedup.ErrCorrupt, "Verify must catch a flipped byte")
	})

	t.Run("SplitJoin", func(t *testing.T) {
		s, b, clk := open(t)
		att := randBase64(11, 500<<10)
		var msgs [][]byte
		for i := range 3 {
			msgs = append(msgs, testMessage(i, att))
		}
		var sks []dedup.Skeleton
		for i, m := range msgs {
			sk, err := dedup.Split(ctx, s, fmt.Sprintf("u%d/m", i), bytes.NewReader(m), nil)
			require.NoError(t, err)
			require.Len(t, sk.Refs, 1, "one large attachment must become one blob")
			require.Less(t, len(sk.Data), 2000, "the skeleton must be small")
			require.Equal(t, int64(len(m)), sk.Size)
			sks = append(sks, sk)
			require.Equal(t, m, join(t, s, sk.Data), "Join must return the original bytes")
		}
		require.Equal(t, sks[0].Refs, sks[2].Refs, "the same attachment must dedup across messages")
		if h, ok := b.(Harness); ok {
			n, err := h.StoredBytes(ctx)
			require.NoError(t, err)
			require.Equal(t, sks[0].Refs[0].Size, n, "three messages with one attachment must store it once")
		}
		clk.Advance(2 * grace)
		_, err := s.GC(ctx, nil)
		require.NoError(t, err)
		for i := range msgs {
			require.Equal(t, msgs[i], join(t, s, sks[i].Data), "Split must link the blobs it stores")
			refs, err := dedup.Refs(sks[i].Data)
			require.NoError(t, err)
			require.Equal(t, sks[i].Refs, refs)
			for _, r := range refs {
				require.NoError(t, s.Unlink(ctx, r, fmt.Sprintf("u%d/m", i)))
			}
		}
		st, err := s.GC(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, 1, st.Deleted, "%+v", st)
	})

	t.Run("GCRace", func(t *testing.T) {
		s, _, clk := open(t)
		gcRace(t, s, clk, 4, 60)
	})

	t.Run("Closed", func(t *testing.T) {
		s, _, _ := open(t)
		require.NoError(t, s.Close())
		require.NoError(t, s.Close(), "Close must be idempotent")
		_, err := s.Put(ctx, strings.NewReader("x"))
		require.ErrorIs(t, err, dedup.ErrClosed)
		_, err = s.GC(ctx, nil)
		require.ErrorIs(t, err, dedup.ErrClosed)
	})
}

// GCRace runs workers that Put, Link and Unlink a few shared contents
// while a collector advances the clock and runs GC, then checks that every
// linked blob is readable and that, once the grace period has passed, no
// unlinked blob remains. Backends' tests call it with more rounds when
// MAILBRICKS_LONG is set.
func GCRace(t *testing.T, newBackend func(t *testing.T) dedup.Backend, workers, rounds int) {
	b := newBackend(t)
	clk := NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	s := dedup.New(b, &dedup.Options{Grace: grace, Now: clk.Now})
	defer s.Close()
	gcRace(t, s, clk, workers, rounds)
}

func gcRace(t *testing.T, s *dedup.Store, clk *Clock, workers, rounds int) {
	ctx := context.Background()
	const contents = 6
	data := make([][]byte, contents)
	all := make([]dedup.Ref, contents)
	for i := range data {
		data[i] = randBytes(uint64(1000+i), 2000+i)
		all[i] = dedup.Ref{Hash: sha256.Sum256(data[i]), Size: int64(len(data[i]))}
	}
	type link struct {
		ref   dedup.Ref
		owner string
	}
	live := make([][]link, workers)
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, workers+1)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for r := range rounds {
				i := rng.IntN(contents)
				owner := fmt.Sprintf("w%d/r%d", w, r)
				for attempt := 0; ; attempt++ {
					ref, err := s.Put(ctx, bytes.NewReader(data[i]))
					if err != nil {
						errc <- err
						return
					}
					err = s.Link(ctx, ref, owner)
					if err == nil {
						live[w] = append(live[w], link{ref, owner})
						break
					}
					if !errors.Is(err, dedup.ErrNotFound) || attempt > 100 {
						errc <- fmt.Errorf("link after put: %w", err)
						return
					}
				}
				if n := len(live[w]); n > 0 && rng.IntN(2) == 0 {
					j := rng.IntN(n)
					l := live[w][j]
					if err := s.Unlink(ctx, l.ref, l.owner); err != nil {
						errc <- err
						return
					}
					live[w] = append(live[w][:j], live[w][j+1:]...)
				}
				if n := len(live[w]); n > 0 {
					l := live[w][rng.IntN(n)]
					if err := s.Verify(ctx, l.ref); err != nil {
						errc <- fmt.Errorf("linked blob %s unreadable during the race: %w", l.ref, err)
						return
					}
				}
			}
		})
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for !stop.Load() {
			clk.Advance(grace / 4)
			if _, err := s.GC(ctx, &dedup.GCOptions{BatchSize: 4}); err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-gcDone
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	linked := map[dedup.Hash]bool{}
	for _, ls := range live {
		for _, l := range ls {
			linked[l.ref.Hash] = true
			require.NoError(t, s.Verify(ctx, l.ref), "every linked blob must be readable after the race")
		}
	}
	clk.Advance(2 * grace)
	_, err := s.GC(ctx, nil)
	require.NoError(t, err)
	for _, ref := range all {
		_, err := s.Stat(ctx, ref)
		if linked[ref.Hash] {
			require.NoError(t, err, "a linked blob must survive the final GC")
		} else {
			require.ErrorIs(t, err, dedup.ErrNotFound, "no unlinked blob older than the grace period may remain")
		}
	}
}

func readBlob(t *testing.T, s *dedup.Store, ref dedup.Ref) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), ref)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func join(t *testing.T, s *dedup.Store, sk []byte) []byte {
	t.Helper()
	rc, err := dedup.Join(context.Background(), s, sk)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randBase64 returns about n bytes of base64 text in 76-column CRLF lines.
func randBase64(seed uint64, n int) []byte {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	r := rand.New(rand.NewPCG(seed, 9))
	var b bytes.Buffer
	for b.Len() < n {
		for range 76 {
			b.WriteByte(alpha[r.IntN(64)])
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func testMessage(i int, att []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.com\r\nTo: u%d@example.org\r\nSubject: report %d\r\nMIME-Version: 1.0\r\n", i, i)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\n")
	fmt.Fprintf(&b, "Hello %d, the report is attached.\r\n--b1\r\n", i)
	b.WriteString("Content-Type: application/pdf; name=r.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.Write(att)
	b.WriteString("--b1--\r\nepilogue\r\n")
	return b.Bytes()
}
