package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/dedup/s3dedup"
	"github.com/minio/minio-go/v7"
)

// The dedup suite measures the content-addressed blob store.
//
// Implementations, each in its own child process:
//
//   - filededup: the embedded backend, on a fresh directory.
//   - limit: the physical limit of put_500k on the same disk: SHA-256 of
//     the same bytes plus a plain file create, write and fsync per blob,
//     with the same concurrency. Only put_500k.
//   - s3dedup: the S3 backend against MAILBRICKS_S3_URL, on a fresh bucket
//     (skipped when the variable is unset); reported, no ratio.
//
// Workloads:
//
//   - put_500k: -dedup-puts distinct 500 KB attachments stored with
//     Store.Put from -dedup-conc goroutines; ops_per_sec is puts/s, MB/s
//     is reported too. RATIO ours/limit = filededup / limit.
//   - fanout_100: one message with a 500 KB base64 attachment split for
//     100 recipients (100 owners); bytes is what the store holds (blob
//     files' allocated blocks and the meta DB of links, or the bucket's
//     objects). The 100 skeletons (each recipient's copy of the headers
//     and small parts, kept by the mailbox beside its metadata) are
//     reported apart as skeleton_bytes. RATIO one_copy/ours = message
//     size / bytes.
//   - gc: -dedup-gc small blobs put, half of them linked, the clock moved
//     past the grace period, then one Store.GC; ops_per_sec is candidates
//     examined per second.
type dedupSuite struct {
	puts int
	conc int
	gcN  int
}

func init() { register("dedup", func() suite { return &dedupSuite{} }) }

func (s *dedupSuite) Impls() []string { return []string{"filededup", "limit", "s3dedup"} }

func (s *dedupSuite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.puts, "dedup-puts", 0, "blobs put in put_500k (default 2000, 300 with -quick)")
	fs.IntVar(&s.conc, "dedup-conc", 4, "concurrent writers in put_500k")
	fs.IntVar(&s.gcN, "dedup-gc", 0, "blobs in the gc workload (default 10000, 1000 with -quick)")
}

const attachmentSize = 500 << 10

type dedupRun struct {
	*dedupSuite
	impl string
	dir  string
	r    *reporter
	data []byte
}

func (run *dedupRun) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dedup %-9s "+format+"\n", append([]any{run.impl}, args...)...)
}

func (s *dedupSuite) Run(impl string, c *config, r *reporter) error {
	if s.puts <= 0 {
		s.puts = 2000
		if c.Quick {
			s.puts = 300
		}
	}
	if s.gcN <= 0 {
		s.gcN = 10000
		if c.Quick {
			s.gcN = 1000
		}
	}
	if s.conc <= 0 {
		return errors.New("-dedup-conc must be positive")
	}
	dir, err := os.MkdirTemp(c.Dir, "mailbricks-bench-dedup-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	run := &dedupRun{dedupSuite: s, impl: impl, dir: dir, r: r, data: make([]byte, attachmentSize)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(run.data); i += 8 {
		binary.LittleEndian.PutUint64(run.data[i:], rng.Uint64())
	}
	switch impl {
	case "limit":
		return run.limit()
	case "filededup":
		return run.all(func(name string) (*dedup.Store, func() (int64, error), func(), error) {
			d := filepath.Join(dir, name)
			b, err := filededup.Open(d, nil)
			if err != nil {
				return nil, nil, nil, err
			}
			return dedup.New(b, &dedup.Options{Now: run.clock}), func() (int64, error) { return dirAllocated(d) }, func() {}, nil
		})
	case "s3dedup":
		raw := os.Getenv("MAILBRICKS_S3_URL")
		if raw == "" {
			run.logf("MAILBRICKS_S3_URL is not set; skipped")
			return nil
		}
		client, err := s3dedup.NewClient(raw)
		if err != nil {
			return err
		}
		return run.all(func(name string) (*dedup.Store, func() (int64, error), func(), error) {
			return run.openS3(client, name)
		})
	}
	return fmt.Errorf("unknown implementation %q", impl)
}

var benchClock atomic.Int64

func (run *dedupRun) clock() time.Time { return time.Now().Add(time.Duration(benchClock.Load())) }

func (run *dedupRun) openS3(client *minio.Client, name string) (*dedup.Store, func() (int64, error), func(), error) {
	ctx := context.Background()
	bucket := fmt.Sprintf("bench-dedup-%s-%08x", strings.ReplaceAll(name, "_", "-"), rand.Uint32())
	if err := client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return nil, nil, nil, err
	}
	spool := filepath.Join(run.dir, name+"-spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, nil, nil, err
	}
	b, err := s3dedup.Open(ctx, client, bucket, "", &s3dedup.Options{TempDir: spool})
	if err != nil {
		return nil, nil, nil, err
	}
	size := func() (int64, error) {
		var n int64
		for oi := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if oi.Err != nil {
				return 0, oi.Err
			}
			n += oi.Size
		}
		return n, nil
	}
	cleanup := func() {
		objs := client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for range client.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		}
		_ = client.RemoveBucket(ctx, bucket)
	}
	return dedup.New(b, &dedup.Options{Now: run.clock}), size, cleanup, nil
}

type openFunc func(name string) (*dedup.Store, func() (int64, error), func(), error)

func (run *dedupRun) all(open openFunc) error {
	for _, w := range []struct {
		name string
		f    func(openFunc) error
	}{{"put_500k", run.put}, {"fanout_100", run.fanout}, {"gc", run.gc}} {
		if err := w.f(open); err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
	}
	return nil
}

// item returns attachment i: the shared random bytes with i in front, so
// every item is distinct.
func (run *dedupRun) item(buf []byte, i int) []byte {
	copy(buf, run.data)
	binary.LittleEndian.PutUint64(buf, uint64(i)+1)
	return buf
}

// parallel runs f(i) for i in [0, n) on run.conc goroutines.
func (run *dedupRun) parallel(n int, f func(buf []byte, i int) error) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, run.conc)
	start := time.Now()
	for g := range run.conc {
		wg.Go(func() {
			buf := make([]byte, attachmentSize)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(buf, i); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

func (run *dedupRun) reportPut(d time.Duration) {
	ops := float64(run.puts) / d.Seconds()
	mbps := ops * attachmentSize / 1e6
	run.logf("put_500k   %6d puts in %7.3fs  %8.1f MB/s", run.puts, d.Seconds(), mbps)
	run.r.result("put_500k", ops, kv{"mb_per_sec", mbps}, kv{"conc", float64(run.conc)})
}

// limit measures SHA-256 + create + write + fsync per blob.
func (run *dedupRun) limit() error {
	dir := filepath.Join(run.dir, "limit")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d, err := run.parallel(run.puts, func(buf []byte, i int) error {
		b := run.item(buf, i)
		sum := sha256.Sum256(b)
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%x", sum[:8])))
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return err
	}
	run.reportPut(d)
	return nil
}

func (run *dedupRun) put(open openFunc) error {
	s, _, cleanup, err := open("put")
	if err != nil {
		return err
	}
	defer cleanup()
	defer s.Close()
	ctx := context.Background()
	d, err := run.parallel(run.puts, func(buf []byte, i int) error {
		_, err := s.Put(ctx, bytes.NewReader(run.item(buf, i)))
		return err
	})
	if err != nil {
		return err
	}
	run.reportPut(d)
	return nil
}

func (run *dedupRun) fanout(open openFunc) error {
	s, size, cleanup, err := open("fanout")
	if err != nil {
		return err
	}
	defer cleanup()
	defer s.Close()
	ctx := context.Background()
	var att strings.Builder
	enc := make([]byte, 0, 80)
	for i := 0; att.Len() < attachmentSize; i += 57 {
		enc = enc[:0]
		enc = fmt.Appendf(enc, "%s\r\n", b64(run.data[i%(len(run.data)-57):][:57]))
		att.Write(enc)
	}
	msg := []byte("From: a@example.com\r\nTo: list@example.org\r\nSubject: slides\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: text/plain\r\n\r\nSlides attached.\r\n" +
		"--=_b\r\nContent-Type: application/pdf; name=slides.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		att.String() + "--=_b--\r\n")
	const recipients = 100
	var skel int64
	start := time.Now()
	for i := range recipients {
		sk, err := dedup.Split(ctx, s, fmt.Sprintf("user%d/0191f2c0/msg", i), bytes.NewReader(msg), nil)
		if err != nil {
			return err
		}
		skel += int64(len(sk.Data))
	}
	d := time.Since(start)
	stored, err := size()
	if err != nil {
		return err
	}
	run.logf("fanout_100 %d recipients in %.3fs: one copy %d B, store %d B (blobs+links), skeletons %d B", recipients, d.Seconds(), len(msg), stored, skel)
	run.r.result("fanout_100", recipients/d.Seconds(), kv{"bytes", float64(stored)}, kv{"one_copy", float64(len(msg))}, kv{"skeleton_bytes", float64(skel)})
	return nil
}

func b64(p []byte) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for i := 0; i+3 <= len(p); i += 3 {
		v := uint(p[i])<<16 | uint(p[i+1])<<8 | uint(p[i+2])
		sb.WriteByte(alpha[v>>18&63])
		sb.WriteByte(alpha[v>>12&63])
		sb.WriteByte(alpha[v>>6&63])
		sb.WriteByte(alpha[v&63])
	}
	return sb.String()
}

func (run *dedupRun) gc(open openFunc) error {
	s, _, cleanup, err := open("gc")
	if err != nil {
		return err
	}
	defer cleanup()
	defer s.Close()
	ctx := context.Background()
	n := run.gcN
	setup, err := run.parallel(n, func(buf []byte, i int) error {
		ref, err := s.Put(ctx, bytes.NewReader(run.item(buf, i)[:1024]))
		if err != nil {
			return err
		}
		if i%2 == 0 {
			return s.Link(ctx, ref, fmt.Sprintf("u/%d", i))
		}
		return nil
	})
	if err != nil {
		return err
	}
	run.logf("gc         setup: %d puts in %.3fs", n, setup.Seconds())
	benchClock.Add(int64(48 * time.Hour))
	defer benchClock.Store(0)
	start := time.Now()
	st, err := s.GC(ctx, nil)
	if err != nil {
		return err
	}
	d := time.Since(start)
	run.logf("gc         %+v in %.3fs", st, d.Seconds())
	if st.Examined != n || st.Deleted != n/2 {
		return fmt.Errorf("gc examined %d and deleted %d, want %d and %d", st.Examined, st.Deleted, n, n/2)
	}
	run.r.result("gc", float64(st.Examined)/d.Seconds(), kv{"deleted", float64(st.Deleted)})
	return nil
}

// dirAllocated returns the bytes allocated to the files under dir.
func dirAllocated(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

func (s *dedupSuite) Ratios(rs *results) []ratio {
	var out []ratio
	if ours, ok := rs.get("put_500k", "filededup"); ok {
		if lim, ok := rs.get("put_500k", "limit"); ok && lim.OpsPerSec > 0 {
			out = append(out, ratio{"put_500k", "ours/limit", ours.OpsPerSec / lim.OpsPerSec})
		}
	}
	if f, ok := rs.get("fanout_100", "filededup"); ok {
		b, _ := f.ExtraValue("bytes")
		one, _ := f.ExtraValue("one_copy")
		if b > 0 {
			out = append(out, ratio{"fanout_100", "one_copy/ours", one / b})
		}
	}
	return out
}
