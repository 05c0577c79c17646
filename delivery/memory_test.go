package delivery

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/embedded"
)

// bodyReader produces a message of n bytes of CRLF lines without holding it.
type bodyReader struct {
	n, off int
}

func (b *bodyReader) Read(p []byte) (int, error) {
	const hdr = "From: alice@example.org\r\nSubject: big\r\n\r\n"
	if b.off >= b.n {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && b.off < b.n; i, b.off = i+1, b.off+1 {
		switch {
		case b.off < len(hdr):
			p[i] = hdr[b.off]
		case b.off == b.n-2 || (b.off-len(hdr))%78 == 76:
			p[i] = '\r'
		case b.off == b.n-1 || (b.off-len(hdr))%78 == 77:
			p[i] = '\n'
		default:
			p[i] = 'a' + byte(b.off%26)
		}
	}
	return i, nil
}

// TestInboundStreamsLargeMessage sends a 24 MiB message and checks that
// the server's heap grows by far less than the message: the body streams
// to the blob store (on disk here) and is never held whole.
func TestInboundStreamsLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 24 MiB")
	}
	const size = 24 << 20
	blocks, err := embedded.Open(t.TempDir(), &embedded.Options{NoSync: true})
	require.NoError(t, err)
	defer blocks.Close()
	in, err := NewInbound(blocks.Blobs, blocks.Queue, &InboundOptions{Hostname: "mx.example.net", Resolver: newFakeDNS()})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := in.NewServer()
	go srv.Serve(in.Listener(l))
	defer func() { srv.Close(); l.Close() }()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	c, err := smtp.Dial(l.Addr().String())
	require.NoError(t, err)
	err = c.SendMail("alice@example.org", []string{"bob@example.net"}, &bodyReader{n: size})
	c.Close()
	close(stop)
	wg.Wait()
	require.NoError(t, err)

	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("message %d MiB, peak heap growth %.1f MiB", size>>20, float64(growth)/(1<<20))
	assert.Less(t, growth, int64(size/3), "the body is not held in memory")

	jobs, err := blocks.Queue.Lease(context.Background(), DefaultTopic, 1, time.Minute, nil)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	want := sha256.New()
	_, err = io.Copy(want, &bodyReader{n: size})
	require.NoError(t, err)
	assert.Equal(t, dedup.Ref{Hash: dedup.Hash(want.Sum(nil)), Size: size}, j.Blob, "the blob is the bytes sent")
}
