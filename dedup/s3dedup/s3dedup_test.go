package s3dedup

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/deduptest"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

// harness adds deduptest.Harness to a Backend.
type harness struct {
	*Backend
	spool string
}

func (h harness) StoredBytes(ctx context.Context) (int64, error) {
	var n int64
	for oi := range h.c.ListObjects(ctx, h.bucket, minio.ListObjectsOptions{Prefix: h.prefix + "blobs/", Recursive: true}) {
		if oi.Err != nil {
			return 0, oi.Err
		}
		n += oi.Size
	}
	ents, err := os.ReadDir(h.spool)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

func (h harness) Corrupt(ctx context.Context, hash dedup.Hash) error {
	obj, err := h.c.GetObject(ctx, h.bucket, h.blobKey(hash), minio.GetObjectOptions{})
	if err != nil {
		return err
	}
	b, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		return err
	}
	b[len(b)/2] ^= 1
	_, err = h.c.PutObject(ctx, h.bucket, h.blobKey(hash), strings.NewReader(string(b)), int64(len(b)), minio.PutObjectOptions{DisableMultipart: true})
	return err
}

// newBucket creates a bucket with a random name for t and removes it,
// with everything in it, when t ends.
func newBucket(t testing.TB) (*minio.Client, string) {
	raw := os.Getenv("MAILBRICKS_S3_URL")
	if raw == "" {
		t.Skip("MAILBRICKS_S3_URL is not set; skipping the S3 tests")
	}
	c, err := NewClient(raw)
	require.NoError(t, err)
	ctx := context.Background()
	bucket := fmt.Sprintf("dedup-test-%016x", rand.Uint64())
	require.NoError(t, c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}))
	t.Cleanup(func() {
		objs := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
			t.Errorf("cleanup: %v", e.Err)
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c, bucket
}

func newBackend(t *testing.T) dedup.Backend {
	c, bucket := newBucket(t)
	spool := t.TempDir()
	b, err := Open(context.Background(), c, bucket, "p/", &Options{TempDir: spool})
	require.NoError(t, err)
	return harness{Backend: b, spool: spool}
}

func TestConformance(t *testing.T) { deduptest.Run(t, newBackend) }

// TestIfNoneMatch checks that the server honours If-None-Match: * on
// PutObject, which create-if-absent and the collector's marker rely on.
func TestIfNoneMatch(t *testing.T) {
	c, bucket := newBucket(t)
	ctx := context.Background()
	put := func() error {
		opts := minio.PutObjectOptions{DisableMultipart: true}
		opts.SetMatchETagExcept("*")
		_, err := c.PutObject(ctx, bucket, "k", strings.NewReader("v"), 1, opts)
		return err
	}
	require.NoError(t, put())
	err := put()
	require.Error(t, err, "a second put with If-None-Match: * must fail")
	require.True(t, isPrecondition(err), "want 412 Precondition Failed, got %v", err)
}

// TestMarkerExclusive checks that concurrent collectors' markers exclude
// one another: of 16 racing acquires exactly one wins.
func TestMarkerExclusive(t *testing.T) {
	c, bucket := newBucket(t)
	b, err := Open(context.Background(), c, bucket, "", &Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	var h dedup.Hash
	h[0] = 7
	wins := make(chan bool, 16)
	for range 16 {
		go func() {
			ok, err := b.acquire(context.Background(), h)
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
	require.Equal(t, 1, n, "exactly one collector may hold a hash's marker")
}

func TestOpenMissingBucket(t *testing.T) {
	c, _ := newBucket(t)
	_, err := Open(context.Background(), c, fmt.Sprintf("no-such-bucket-%016x", rand.Uint64()), "", nil)
	require.Error(t, err)
}
