package pgmailbox_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/pgerr/pgerrtest"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
)

// TestServerRestart restarts a private PostgreSQL server twice (fast,
// then immediate: a crash and WAL recovery) while writers append keyed
// messages through one pool and one backend, retrying with the same key
// after a temporary error. Every error must be temporary; afterwards
// every key's message must be in the folder exactly once, with distinct,
// increasing UIDs, and the same backend must work without a new pool.
// Only under MAILBRICKS_LONG=1.
func TestServerRestart(t *testing.T) {
	if os.Getenv("MAILBRICKS_LONG") != "1" {
		t.Skip("MAILBRICKS_LONG is not 1: the PostgreSQL restart test is skipped")
	}
	srv := pgerrtest.StartServer(t)
	p := srv.Pool(12)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := pgmailbox.Open(ctx, p, &pgmailbox.Options{Partitions: 2})
	require.NoError(t, err)
	defer b.Close()
	const user mailbricks.UserID = "restart@example.org"
	_, err = b.CreateFolder(ctx, user, mailbox.Inbox, mailbox.RoleInbox)
	require.NoError(t, err)

	const writers, perWriter = 6, 400
	var (
		mu       sync.Mutex
		acked    = map[string]mailbricks.MessageID{} // key → ID of the acknowledged Append
		tempErrs int
		existed  int
		done     atomic.Int64
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("w%d-%d", w, i)
				r := &mailbox.Record{Skeleton: []byte("skeleton " + key), Key: key}
				r.ID = mailbricks.NewMessageID()
				r.ThreadID = r.ID
				r.Folder = mailbox.Inbox
				r.Size = int64(len(r.Skeleton))
				r.InternalDate = time.Now()
				for {
					m, ex, err := b.Append(ctx, user, r)
					if err != nil && ctx.Err() == nil {
						if !mailbricks.IsTemporary(err) {
							t.Errorf("Append failed with a non-temporary error: %v", err)
							return
						}
						mu.Lock()
						tempErrs++
						mu.Unlock()
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if err != nil {
						return
					}
					mu.Lock()
					acked[key] = m.ID
					if ex {
						existed++
					}
					mu.Unlock()
					break
				}
				done.Add(1)
			}
		})
	}
	total := int64(writers * perWriter)
	for i, mode := range []string{"fast", "immediate"} {
		for done.Load() < total*int64(i+1)/3 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		at := done.Load()
		srv.Stop(mode)
		time.Sleep(time.Second)
		srv.Start()
		t.Logf("restarted (%s shutdown) after %d appends", mode, at)
	}
	wg.Wait()
	require.NoError(t, ctx.Err(), "the writers must finish within the time limit")

	ms, err := b.FetchUIDs(ctx, user, mailbox.Inbox, 1, ^uint32(0))
	require.NoError(t, err, "the backend must work after the restarts without a new pool")
	byID := map[mailbricks.MessageID]int{}
	var last uint32
	for _, m := range ms {
		byID[m.ID]++
		require.Greater(t, m.UID, last, "UIDs must increase")
		last = m.UID
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for _, id := range acked {
		if byID[id] != 1 {
			lost++
		}
	}
	t.Logf("PostgreSQL restart: %d acknowledged appends checked, %d lost, %d found already stored on retry, %d temporary errors; folder holds %d messages",
		len(acked), lost, existed, tempErrs, len(ms))
	require.Len(t, acked, writers*perWriter, "every Append must eventually succeed")
	require.Zero(t, lost, "every acknowledged Append must be in the folder exactly once")
	require.Len(t, ms, writers*perWriter, "a retried Append must not store its message twice")
	f, err := b.Folder(ctx, user, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, uint32(len(ms))+1, f.UIDNext, "UIDNext must follow the stored messages")
}
