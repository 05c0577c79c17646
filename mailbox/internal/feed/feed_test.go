package feed

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

const alice = mailbricks.UserID("alice")

func ev(uid uint32) mailbox.Event {
	return mailbox.Event{Kind: mailbox.EventAppend, User: alice, Folder: "INBOX", UID: uid}
}

func recv(t *testing.T, ch <-chan mailbox.Event) (mailbox.Event, bool) {
	t.Helper()
	select {
	case e, ok := <-ch:
		return e, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return mailbox.Event{}, false
	}
}

func TestOrderAndUsers(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := h.Subscribe(ctx, alice)
	b := h.Subscribe(ctx, "bob")
	require.True(t, h.Watching(alice))
	require.False(t, h.Watching("carol"))
	for i := uint32(1); i <= 100; i++ {
		h.Publish(ev(i))
	}
	h.Publish(mailbox.Event{Kind: mailbox.EventAppend, User: "bob", UID: 7})
	for i := uint32(1); i <= 100; i++ {
		e, ok := recv(t, a)
		require.True(t, ok)
		require.Equal(t, i, e.UID, "events arrive in publish order")
	}
	e, _ := recv(t, b)
	require.Equal(t, uint32(7), e.UID, "a watcher gets only its user's events")
}

func TestOverflow(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := h.Subscribe(ctx, alice)
	const lossless = Buffer + direct
	for i := uint32(1); i <= lossless+50; i++ {
		h.Publish(ev(i))
	}
	var got []uint32
	for len(got) < lossless {
		e, ok := recv(t, ch)
		require.True(t, ok)
		got = append(got, e.UID)
	}
	h.Publish(ev(99999))
	for {
		e, ok := recv(t, ch)
		require.True(t, ok)
		if e.Kind == mailbox.EventOverflow {
			break
		}
		got = append(got, e.UID)
	}
	require.Equal(t, lossless, len(got), "a watcher may lag Buffer events (plus its channel's) without loss")
	for i, uid := range got {
		require.Equal(t, uint32(i+1), uid)
	}
	e, _ := recv(t, ch)
	require.Equal(t, uint32(99999), e.UID, "the event after the overflow marker is delivered")

	h.Overflow()
	e, _ = recv(t, ch)
	require.Equal(t, mailbox.EventOverflow, e.Kind, "Overflow marks every watcher")
}

func TestCloseDeliversQueuedThenCloses(t *testing.T) {
	var h Hub
	ch := h.Subscribe(context.Background(), alice)
	for i := uint32(1); i <= 10; i++ {
		h.Publish(ev(i))
	}
	h.Close()
	h.Publish(ev(11))
	for i := uint32(1); i <= 10; i++ {
		e, ok := recv(t, ch)
		require.True(t, ok)
		require.Equal(t, i, e.UID)
	}
	_, ok := recv(t, ch)
	require.False(t, ok, "the channel closes after the queued events")
	_, ok = recv(t, h.Subscribe(context.Background(), alice))
	require.False(t, ok, "a subscription after Close gets a closed channel")
}

func TestCancelEndsWatcher(t *testing.T) {
	var h Hub
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	ch := h.Subscribe(ctx, alice)
	h.Publish(ev(1), ev(2))
	cancel()
	for {
		_, ok := recv(t, ch)
		if !ok {
			break
		}
	}
	require.False(t, h.Watching(alice))
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before, "the watcher's goroutine ends with its context")
}

// TestIdleWatcherMemory checks that an idle watcher does not hold a full
// buffer: 5,000 of them must cost well under Buffer events each.
func TestIdleWatcherMemory(t *testing.T) {
	const n = 5000
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	chans := make([]<-chan mailbox.Event, n)
	for i := range chans {
		chans[i] = h.Subscribe(ctx, mailbricks.UserID(rune('a'+i%26)))
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	per := (int64(m1.HeapInuse+m1.StackInuse) - int64(m0.HeapInuse+m0.StackInuse)) / n
	t.Logf("%d idle watchers: %d bytes each (a full buffer is %d)", n, per, Buffer*int(unsafeSizeofEvent))
	require.Less(t, per, int64(16<<10), "an idle watcher must not preallocate its whole buffer")
	runtime.KeepAlive(chans)
}

const unsafeSizeofEvent = 96

func TestClosedHubUnreadWatcherEndsWithContext(t *testing.T) {
	var h Hub
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	ch := h.Subscribe(ctx, alice)
	h.Publish(ev(1), ev(2), ev(3))
	h.Close()
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before, "a watcher nobody reads ends with its context after Close")
	for range ch {
	}
}

func TestPublishedEventIsReadableAtOnce(t *testing.T) {
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := h.Subscribe(ctx, alice)
	for i := uint32(1); i <= direct; i++ {
		h.Publish(ev(i))
		select {
		case e := <-ch:
			require.Equal(t, i, e.UID)
		default:
			t.Fatalf("event %d not readable when Publish returned", i)
		}
	}
}
