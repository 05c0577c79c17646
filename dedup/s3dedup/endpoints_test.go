package s3dedup

import (
	"context"
	"fmt"
	"go/build"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/deduptest"
)

// versitygw returns the versitygw binary: on PATH or in GOPATH/bin
// (where go install, and .ci/run, put it). It skips the test when there
// is none, except under CI=true, where it fails.
func versitygw(t testing.TB) string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if p := filepath.Join(build.Default.GOPATH, "bin", "versitygw"); fileExists(p) {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("versitygw is required under CI=true")
	}
	t.Skip("versitygw not found: the two-endpoint test is skipped")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// twoGateways starts two private versitygw instances on free loopback
// ports serving the same directory with the posix backend, creates a
// bucket through the first and returns a client of each. They are
// stopped when t ends.
func twoGateways(t testing.TB) (a, b *minio.Client, bucket string) {
	bin := versitygw(t)
	dir := t.TempDir()
	const key, secret = "twoendpoints", "twoendpoints-secret"
	var clients []*minio.Client
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(bin, "--port", addr, "posix", dir)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+key, "ROOT_SECRET_KEY="+secret)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		c, err := NewClient("http://" + key + ":" + secret + "@" + addr)
		require.NoError(t, err)
		for i := 0; ; i++ {
			if _, err := c.ListBuckets(context.Background()); err == nil {
				break
			} else {
				require.Less(t, i, 200, "versitygw did not start: %v", err)
			}
			time.Sleep(25 * time.Millisecond)
		}
		clients = append(clients, c)
	}
	bucket = fmt.Sprintf("two-%08x", rand.Uint32())
	require.NoError(t, clients[0].MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{Region: "us-east-1"}))
	return clients[0], clients[1], bucket
}

// split is a dedup.Backend whose calls go to one of two backends on two
// endpoints of one bucket: uploads, Unlink and Collect through a, reads,
// Link and Candidates through b, as two servers behind a load balancer
// would see them.
type split struct {
	a, b *Backend
	h    harness
}

func (s split) Create(ctx context.Context) (dedup.Upload, error) { return s.a.Create(ctx) }
func (s split) Open(ctx context.Context, h dedup.Hash) (dedup.Blob, error) {
	return s.b.Open(ctx, h)
}
func (s split) Stat(ctx context.Context, h dedup.Hash) (dedup.BlobInfo, error) {
	return s.b.Stat(ctx, h)
}
func (s split) Link(ctx context.Context, h dedup.Hash, owner string) error {
	return s.b.Link(ctx, h, owner)
}
func (s split) Unlink(ctx context.Context, h dedup.Hash, owner string, now time.Time) error {
	return s.a.Unlink(ctx, h, owner, now)
}
func (s split) Candidates(ctx context.Context, now time.Time, after string, limit int) ([]dedup.Candidate, error) {
	return s.b.Candidates(ctx, now, after, limit)
}
func (s split) Collect(ctx context.Context, now time.Time, cands []dedup.Candidate) ([]dedup.Outcome, error) {
	return s.a.Collect(ctx, now, cands)
}
func (s split) Close() error {
	s.b.Close()
	return s.a.Close()
}
func (s split) StoredBytes(ctx context.Context) (int64, error) { return s.h.StoredBytes(ctx) }
func (s split) Corrupt(ctx context.Context, h dedup.Hash) error {
	return s.h.Corrupt(ctx, h)
}

func newSplit(t *testing.T) dedup.Backend {
	ca, cb, bucket := twoGateways(t)
	spool := t.TempDir()
	a, err := Open(context.Background(), ca, bucket, "p/", &Options{TempDir: spool})
	require.NoError(t, err)
	b, err := Open(context.Background(), cb, bucket, "p/", &Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	return split{a: a, b: b, h: harness{Backend: a, spool: spool}}
}

// TestTwoEndpoints runs the conformance suite and the GC race on one
// bucket served by two versitygw instances over one directory, each
// backend call going through one or the other (see split).
func TestTwoEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("two-endpoint test skipped in -short mode")
	}
	t.Run("Conformance", func(t *testing.T) { deduptest.Run(t, newSplit) })
	rounds := 20
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		rounds = 200
	}
	t.Run("GCRace", func(t *testing.T) { deduptest.GCRace(t, newSplit, 4, rounds) })
}

// TestTwoEndpointsPut has stores on both endpoints put the same contents
// at once: every Put returns the same ref, one blob object exists, and
// each store reads what the other wrote.
func TestTwoEndpointsPut(t *testing.T) {
	ca, cb, bucket := twoGateways(t)
	ctx := context.Background()
	var stores []*dedup.Store
	for _, c := range []*minio.Client{ca, cb} {
		b, err := Open(ctx, c, bucket, "p/", &Options{TempDir: t.TempDir()})
		require.NoError(t, err)
		s := dedup.New(b, nil)
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	body := strings.Repeat("the same message, put through two gateways\r\n", 500)
	const puts = 16
	refs := make([]dedup.Ref, puts)
	errs := make([]error, puts)
	var wg sync.WaitGroup
	for i := range puts {
		wg.Go(func() { refs[i], errs[i] = stores[i%2].Put(ctx, strings.NewReader(body)) })
	}
	wg.Wait()
	for i := range puts {
		require.NoError(t, errs[i])
		require.Equal(t, refs[0], refs[i], "every Put of the same bytes must return the same ref")
	}
	n := 0
	for oi := range ca.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "p/blobs/", Recursive: true}) {
		require.NoError(t, oi.Err)
		n++
	}
	require.Equal(t, 1, n, "one blob object for one content")
	require.NoError(t, stores[1].Link(ctx, refs[0], "alice"), "Link through the other endpoint")
	for _, s := range stores {
		r, err := s.Open(ctx, refs[0])
		require.NoError(t, err)
		require.Equal(t, body, readAll(r))
	}
	require.NoError(t, stores[0].Unlink(ctx, refs[0], "alice"), "Unlink through the first endpoint")
}

func readAll(r interface {
	Read([]byte) (int, error)
	Close() error
}) string {
	defer r.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return sb.String()
}

// TestTwoEndpointsMarker races collectors on two endpoints for one hash's
// marker, many times: exactly one may win each race, which needs the
// servers to decide If-None-Match: * once for the bucket.
func TestTwoEndpointsMarker(t *testing.T) {
	ca, cb, bucket := twoGateways(t)
	ctx := context.Background()
	var bs []*Backend
	for _, c := range []*minio.Client{ca, cb} {
		b, err := Open(ctx, c, bucket, "", &Options{TempDir: t.TempDir()})
		require.NoError(t, err)
		bs = append(bs, b)
	}
	races := 50
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		races = 1000
	}
	for r := range races {
		var h dedup.Hash
		h[0], h[1] = byte(r>>8), byte(r)
		wins := make(chan bool, 16)
		for i := range 16 {
			go func() {
				ok, err := bs[i%2].acquire(ctx, h)
				if err != nil {
					t.Error(err)
				}
				wins <- ok
			}()
		}
		n := 0
		for range 16 {
			if <-wins {
				n++
			}
		}
		require.Equal(t, 1, n, "race %d: exactly one collector of either endpoint may hold a hash's marker", r)
	}
	t.Logf("%d marker races through two endpoints: one winner each", races)
}
