package lsmqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
)

// TestOpenEndsOrphanLeases checks that a job leased by a process that is
// gone is leasable as soon as the directory is opened again, not after
// its lease's TTL, and that a job leased on its last attempt goes to the
// dead letters.
func TestOpenEndsOrphanLeases(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	open := func() *lsmqueue.Backend {
		b, err := lsmqueue.Open("q", &lsmqueue.Options{FS: fs, Now: now})
		require.NoError(t, err)
		return b
	}
	b := open()
	const n = 2500 // more than one batch of the rewrite
	for i := range n {
		_, err := b.Enqueue(ctx, "t", []byte{byte(i)}, queue.EnqueueOptions{MaxAttempts: 3})
		require.NoError(t, err)
	}
	last, err := b.Enqueue(ctx, "last", []byte("x"), queue.EnqueueOptions{MaxAttempts: 1})
	require.NoError(t, err)
	held, err := b.Lease(ctx, "t", n, time.Hour, 0)
	require.NoError(t, err)
	require.Len(t, held, n)
	lj, err := b.Lease(ctx, "last", 1, time.Hour, 0)
	require.NoError(t, err)
	require.Len(t, lj, 1)
	require.NoError(t, b.Close())

	clock = clock.Add(time.Second) // far inside the hour-long leases
	b = open()
	defer b.Close()
	st, err := b.Stats(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, int64(0), st.Leased, "no lease of the previous process survives Open")
	again, err := b.Lease(ctx, "t", n, time.Hour, 0)
	require.NoError(t, err)
	require.Len(t, again, n, "every orphaned job is leasable at once")
	for _, j := range again {
		require.Equal(t, 2, j.Attempt)
	}
	require.ErrorIs(t, b.Ack(ctx, held[0]), queue.ErrLeaseLost, "the old lease's token is fenced once the job is leased again")
	for _, j := range again {
		require.NoError(t, b.Ack(ctx, j))
	}

	none, err := b.Lease(ctx, "last", 1, time.Hour, 0)
	require.NoError(t, err)
	require.Empty(t, none, "a job orphaned on its last attempt is not run again")
	dead, err := b.Dead(ctx, "last", 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, last, dead[0].ID)
	t.Logf("%d orphaned leases ended at Open and re-leased, 1 dead-lettered", n)
}

// TestReopenedHolderMayAck checks that ending a lease at Open keeps its
// token: a holder whose job nobody took since may still Ack it.
func TestReopenedHolderMayAck(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	b, err := lsmqueue.Open("q", &lsmqueue.Options{FS: fs})
	require.NoError(t, err)
	_, err = b.Enqueue(ctx, "t", []byte("x"), queue.EnqueueOptions{})
	require.NoError(t, err)
	js, err := b.Lease(ctx, "t", 1, time.Hour, 0)
	require.NoError(t, err)
	require.NoError(t, b.Close())
	b, err = lsmqueue.Open("q", &lsmqueue.Options{FS: fs})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.Ack(ctx, js[0]))
	st, err := b.Stats(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, queue.Stats{}, st)
}
