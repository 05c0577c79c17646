package pgindex_test

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
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/pgindex"
	"github.com/mailbricks/mailbricks/internal/pgerr/pgerrtest"
)

// TestServerRestart restarts a private PostgreSQL server twice (fast,
// then immediate: a crash and WAL recovery) while writers index batches
// of documents for several users through one pool and one backend, and
// readers search. Every error must be temporary, every batch whose Index
// returned nil must be found afterwards, and the same backend must work
// after each restart. Only under MAILBRICKS_LONG=1.
func TestServerRestart(t *testing.T) {
	if os.Getenv("MAILBRICKS_LONG") != "1" {
		t.Skip("MAILBRICKS_LONG is not 1: the PostgreSQL restart test is skipped")
	}
	srv := pgerrtest.StartServer(t)
	p := srv.Pool(12)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := pgindex.Open(ctx, p, &pgindex.Options{Partitions: 2})
	require.NoError(t, err)
	defer b.Close()

	const writers, batches, perBatch = 6, 150, 4
	var (
		mu       sync.Mutex
		written  = map[mailbricks.UserID]map[mailbricks.MessageID]bool{}
		tempErrs = map[string]int{}
		done     atomic.Int64
		searches atomic.Int64
	)
	transient := func(what string, err error) bool {
		if err == nil || ctx.Err() != nil {
			return false
		}
		if !mailbricks.IsTemporary(err) {
			t.Errorf("%s failed with a non-temporary error: %v", what, err)
			return false
		}
		mu.Lock()
		tempErrs[what]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return true
	}
	var wg sync.WaitGroup
	for w := range writers {
		user := mailbricks.UserID(fmt.Sprintf("user%d@example.org", w))
		mu.Lock()
		written[user] = map[mailbricks.MessageID]bool{}
		mu.Unlock()
		wg.Go(func() {
			for i := range batches {
				docs := make([]*index.Document, perBatch)
				for k := range docs {
					docs[k] = &index.Document{
						ID:      mailbricks.NewMessageID(),
						Subject: fmt.Sprintf("restart batch %d doc %d", i, k),
						Body:    "the quick brown fox survives a database restart",
						Values:  index.Values{Date: time.Now(), Size: 100, Folder: "INBOX"},
					}
				}
				for {
					err := b.Index(ctx, user, docs)
					if transient("Index", err) {
						continue
					}
					if err != nil {
						return
					}
					break
				}
				mu.Lock()
				for _, d := range docs {
					written[user][d.ID] = true
				}
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	sctx, stopSearch := context.WithCancel(ctx)
	var swg sync.WaitGroup
	for w := range 2 {
		user := mailbricks.UserID(fmt.Sprintf("user%d@example.org", w))
		swg.Go(func() {
			for sctx.Err() == nil {
				q, err := index.Parse("fox")
				require.NoError(t, err)
				_, err = b.Search(sctx, user, &index.Request{Query: q.Resolve(time.Now()), Limit: 10, Sort: index.SortNewest})
				if sctx.Err() != nil {
					return
				}
				if !transient("Search", err) && err == nil {
					searches.Add(1)
				}
			}
		})
	}
	total := int64(writers * batches)
	for i, mode := range []string{"fast", "immediate"} {
		for done.Load() < total*int64(i+1)/3 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		at := done.Load()
		srv.Stop(mode)
		time.Sleep(time.Second)
		srv.Start()
		t.Logf("restarted (%s shutdown) after %d batches", mode, at)
	}
	wg.Wait()
	stopSearch()
	swg.Wait()
	require.NoError(t, ctx.Err(), "the writers must finish within the time limit")

	mu.Lock()
	defer mu.Unlock()
	checked, lost := 0, 0
	for user, ids := range written {
		found := map[mailbricks.MessageID]bool{}
		require.NoError(t, b.List(ctx, user, func(id mailbricks.MessageID, _ index.Values) error {
			found[id] = true
			return nil
		}), "the backend must work after the restarts without a new pool")
		for id := range ids {
			checked++
			if !found[id] {
				lost++
			}
		}
	}
	t.Logf("PostgreSQL restart: %d acknowledged documents checked, %d lost, %d searches; temporary errors %v", checked, lost, searches.Load(), tempErrs)
	require.Equal(t, writers*batches*perBatch, checked, "every Index must eventually succeed")
	require.Zero(t, lost, "no document whose Index returned nil may be lost")
}
