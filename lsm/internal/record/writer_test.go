package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// readLog reads every record of data, which must end cleanly.
func readLog(t testing.TB, data []byte) [][]byte {
	t.Helper()
	got, err := readAll(NewReader(bytes.NewReader(data)))
	require.Equal(t, io.EOF, err)
	return got
}

// TestWriterGroupCommit runs 8 committers doing Append+SyncTo against a file
// whose Sync takes 1ms. Group commit must make one Sync serve many of them,
// and no SyncTo may return before a Sync that started after its data was
// written has completed.
func TestWriterGroupCommit(t *testing.T) {
	const goroutines, perGoroutine = 8, 200
	f := &memFile{syncDelay: time.Millisecond}
	w := NewWriter(f)

	var commitMu sync.Mutex // the engine's commit mutex
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				p := fmt.Appendf(nil, "goroutine %d record %d", g, i)
				commitMu.Lock()
				end, err := w.Append(p)
				commitMu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				if err := w.SyncTo(end); err != nil {
					errs <- err
					return
				}
				if _, durable := f.snapshot(); int64(durable) < end {
					errs <- fmt.Errorf("SyncTo(%d) returned with only %d bytes synced", end, durable)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	require.False(t, f.misuse.Load(), "the file was used concurrently")

	writes, syncs := f.counts()
	t.Logf("%d commits: %d writes, %d syncs", goroutines*perGoroutine, writes, syncs)
	require.Less(t, syncs, goroutines*perGoroutine/2, "group commit should share syncs")

	data, durable := f.snapshot()
	require.Equal(t, len(data), durable)
	got := readLog(t, data)
	require.Len(t, got, goroutines*perGoroutine)
	next := make([]int, goroutines) // each goroutine's records appear in order
	for _, p := range got {
		var g, i int
		_, err := fmt.Sscanf(string(p), "goroutine %d record %d", &g, &i)
		require.NoError(t, err)
		require.Equal(t, next[g], i)
		next[g]++
	}
}

// TestWriterWritesPromptly checks that appended data reaches the file without
// Flush or SyncTo, and without a Sync.
func TestWriterWritesPromptly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &memFile{}
		w := NewWriter(f)
		end, err := w.Append([]byte("hello"))
		require.NoError(t, err)
		synctest.Wait() // the flusher has done all it will do unprompted
		data, _ := f.snapshot()
		require.Len(t, data, int(end))
		_, syncs := f.counts()
		require.Zero(t, syncs, "no sync was asked for")
		require.NoError(t, w.Close())
		_, syncs = f.counts()
		require.Equal(t, 1, syncs, "Close syncs")
	})
}

func TestWriterBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &memFile{gate: make(chan struct{})}
		w := NewWriter(f)
		p := make([]byte, 1<<20)
		_, err := w.Append(p)
		require.NoError(t, err)
		synctest.Wait() // the flusher took the record and is stuck in Write
		for range 4 {
			_, err := w.Append(p) // 4 MiB + 48 bytes pending: at the high-water mark
			require.NoError(t, err)
		}
		done := make(chan error)
		go func() {
			_, err := w.Append(p)
			done <- err
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Append did not block over the high-water mark")
		default:
		}
		f.gate <- struct{}{} // the first Write completes; the flusher takes the 4 MiB
		require.NoError(t, <-done)
		close(f.gate)
		require.NoError(t, w.Close())
		data, _ := f.snapshot()
		require.Len(t, readLog(t, data), 6)
		writes, _ := f.counts()
		require.Equal(t, 3, writes, "one Write per batch")
	})
}

func TestWriterFlush(t *testing.T) {
	f := &memFile{}
	w := NewWriter(f)
	var want []byte
	for i := range 100 {
		p := bytes.Repeat([]byte{byte(i)}, i)
		_, err := w.Append(p)
		require.NoError(t, err)
		want = encodeRecord(want, p)
	}
	require.Equal(t, int64(len(want)), w.Size())
	require.NoError(t, w.Flush())
	data, _ := f.snapshot()
	require.Equal(t, want, data)
	require.NoError(t, w.Close())
}

func TestWriterClose(t *testing.T) {
	f := &memFile{}
	w := NewWriter(f)
	end, err := w.Append([]byte("x"))
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { require.NoError(t, w.Close()) })
	}
	wg.Wait()
	require.NoError(t, w.Close(), "Close is idempotent")

	data, durable := f.snapshot()
	require.Equal(t, len(data), durable)
	require.Equal(t, int64(len(data)), end)
	require.NoError(t, w.SyncTo(end), "data synced by Close is durable")
	_, err = w.Append([]byte("y"))
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, w.Flush(), ErrClosed)
	require.Equal(t, end, w.Size())

	// Close of an unused Writer.
	f2 := &memFile{}
	require.NoError(t, NewWriter(f2).Close())
	require.True(t, f2.closed)
}

func TestWriterSyncToBeyondEnd(t *testing.T) {
	w := NewWriter(&memFile{})
	defer w.Close()
	end, err := w.Append(nil)
	require.NoError(t, err)
	require.Error(t, w.SyncTo(end+1))
	require.NoError(t, w.SyncTo(end))
	require.NoError(t, w.SyncTo(0))
}

func TestWriterStickyWriteError(t *testing.T) {
	boom := errors.New("boom")
	f := &memFile{writeErr: func(n int) error {
		if n >= 2 {
			return boom
		}
		return nil
	}}
	w := NewWriter(f)
	end1, err := w.Append([]byte("one"))
	require.NoError(t, err)
	require.NoError(t, w.SyncTo(end1))
	end2, err := w.Append([]byte("two"))
	require.NoError(t, err)
	require.ErrorIs(t, w.SyncTo(end2), boom)

	_, err = w.Append([]byte("three"))
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, w.Flush(), boom)
	require.ErrorIs(t, w.SyncTo(end2), boom)
	require.NoError(t, w.SyncTo(end1), "end1 was durable before the error")
	require.ErrorIs(t, w.Close(), boom)
	require.ErrorIs(t, w.Close(), boom)
	require.True(t, f.closed, "Close closes the file even after an error")
}

func TestWriterStickySyncError(t *testing.T) {
	boom := errors.New("boom")
	f := &memFile{syncDelay: time.Millisecond, syncErr: func(n int) error {
		if n >= 3 {
			return boom
		}
		return nil
	}}
	w := NewWriter(f)
	var commitMu sync.Mutex
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				commitMu.Lock()
				end, err := w.Append(fmt.Appendf(nil, "%d/%d", g, i))
				commitMu.Unlock()
				if err == nil {
					err = w.SyncTo(end)
				}
				if err != nil {
					if !errors.Is(err, boom) {
						t.Errorf("got %v, want boom", err)
					}
					failed.Add(1)
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(8), failed.Load(), "every committer sees the error")
	require.ErrorIs(t, w.Close(), boom)
	_, syncs := f.counts()
	require.Equal(t, 3, syncs, "no Sync after the failed one")
	t.Logf("%d commits succeeded before the failure", ok.Load())
}

func TestWriterShortWrite(t *testing.T) {
	w := NewWriter(shortFile{&memFile{}})
	end, err := w.Append([]byte("abc"))
	require.NoError(t, err)
	require.ErrorIs(t, w.SyncTo(end), io.ErrShortWrite)
	require.ErrorIs(t, w.Close(), io.ErrShortWrite)
}

type shortFile struct{ *memFile }

func (f shortFile) Write(p []byte) (int, error) { return f.memFile.Write(p[:len(p)/2]) }

// TestWriterOSFile runs the Writer on a real file and reads it back.
func TestWriterOSFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "000001.log")
	f, err := os.Create(name)
	require.NoError(t, err)
	w := NewWriter(f)
	rng := rand.New(rand.NewPCG(21, 22))
	var payloads [][]byte
	for i := range 300 {
		p := randBytes(rng, rng.IntN(10<<10))
		payloads = append(payloads, p)
		end, err := w.Append(p)
		require.NoError(t, err)
		if i%50 == 0 {
			require.NoError(t, w.SyncTo(end))
		}
	}
	require.NoError(t, w.Close())
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	require.Equal(t, payloads, readLog(t, data))
}

// discardFile is a file whose Write and Sync cost nothing.
type discardFile struct {
	memFile
	syncs atomic.Int64
}

func (f *discardFile) Write(p []byte) (int, error) { return len(p), nil }
func (f *discardFile) Sync() error                 { f.syncs.Add(1); return nil }

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			w := NewWriter(&discardFile{})
			p := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Append(p); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// syncCountingFile counts the Syncs of an os.File.
type syncCountingFile struct {
	*os.File
	syncs atomic.Int64
}

func (f *syncCountingFile) Sync() error { f.syncs.Add(1); return f.File.Sync() }

// BenchmarkAppendSync8 measures 8 committers doing Append (under a commit
// mutex) and SyncTo of 256-byte records, on a real file with fsync ("disk")
// and on a file whose Sync is free ("nosync", the coordination overhead).
func BenchmarkAppendSync8(b *testing.B) {
	for _, kind := range []string{"disk", "nosync"} {
		b.Run(kind, func(b *testing.B) {
			var syncs func() int64
			var w *Writer
			if kind == "disk" {
				f, err := os.Create(filepath.Join(b.TempDir(), "000001.log"))
				if err != nil {
					b.Fatal(err)
				}
				cf := &syncCountingFile{File: f}
				w, syncs = NewWriter(cf), cf.syncs.Load
			} else {
				df := &discardFile{}
				w, syncs = NewWriter(df), df.syncs.Load
			}
			p := make([]byte, 256)
			var commitMu sync.Mutex
			var n atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 8 {
				wg.Go(func() {
					for n.Add(1) <= int64(b.N) {
						commitMu.Lock()
						end, err := w.Append(p)
						commitMu.Unlock()
						if err == nil {
							err = w.SyncTo(end)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(syncs())/float64(b.N), "syncs/op")
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
