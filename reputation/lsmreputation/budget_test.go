package lsmreputation_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

// TestSuppressionBudget puts many more suppressions than the budget holds
// and requires the cache to stay within it while every lookup (found,
// not found, deleted, after reopening) stays right. Without eviction the
// cache grows with the list.
func TestSuppressionBudget(t *testing.T) {
	const budget, n = 64 << 10, 4000
	ctx := context.Background()
	fs := vfs.NewMem()
	open := func() *lsmreputation.Backend {
		b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: fs, FlushInterval: -1, MemoryBudget: budget})
		require.NoError(t, err)
		return b
	}
	b := open()
	addr := func(i int) string { return fmt.Sprintf("user%d@example.com", i) }
	for i := range n {
		require.NoError(t, b.PutSuppression(ctx, reputation.Suppression{Address: addr(i), Reason: reputation.ReasonHardBounce, Detail: "550 5.1.1 user unknown"}))
		require.LessOrEqual(t, b.CacheBytes(), int64(budget))
	}
	check := func(b *lsmreputation.Backend, deleted func(int) bool) {
		for i := range n {
			sp, err := b.GetSuppression(ctx, addr(i))
			if deleted(i) {
				require.ErrorIs(t, err, reputation.ErrNotFound, addr(i))
				continue
			}
			require.NoError(t, err, addr(i))
			require.Equal(t, addr(i), sp.Address)
			require.Equal(t, reputation.ReasonHardBounce, sp.Reason)
			_, err = b.GetSuppression(ctx, fmt.Sprintf("other%d@example.com", i))
			require.ErrorIs(t, err, reputation.ErrNotFound)
			require.LessOrEqual(t, b.CacheBytes(), int64(budget))
		}
	}
	check(b, func(int) bool { return false })
	for i := 0; i < n; i += 7 {
		require.NoError(t, b.DeleteSuppression(ctx, addr(i)))
	}
	err := b.DeleteSuppression(ctx, addr(0))
	require.True(t, errors.Is(err, reputation.ErrNotFound), "deleting twice: %v", err)
	deleted := func(i int) bool { return i%7 == 0 }
	check(b, deleted)
	require.NoError(t, b.Close())
	b = open()
	defer b.Close()
	check(b, deleted)
	list, err := b.ListSuppressions(ctx, "", 2*n)
	require.NoError(t, err)
	require.Len(t, list, n-(n+6)/7)
}

// TestBucketGC requires full token buckets to be dropped, and the ones
// still refilling to be kept with their tokens.
func TestBucketGC(t *testing.T) {
	ctx := context.Background()
	b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: vfs.NewMem(), FlushInterval: -1})
	require.NoError(t, err)
	defer b.Close()
	now := time.Now()
	for i := range 1000 {
		ok, _, err := b.Take(ctx, fmt.Sprintf("ip|dest%d.example", i), 1, 1, 5, now)
		require.NoError(t, err)
		require.True(t, ok)
	}
	// A slow bucket: 1 token an hour, burst 2, emptied.
	for range 2 {
		ok, _, err := b.Take(ctx, "slow", 1, 1.0/3600, 2, now)
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.Equal(t, 1001, lsmreputation.Buckets(b))
	require.NoError(t, lsmreputation.GC(b, now.Add(2*time.Second)))
	require.Equal(t, 1, lsmreputation.Buckets(b), "the full buckets are gone")
	ok, _, err := b.Take(ctx, "slow", 1, 1.0/3600, 2, now.Add(2*time.Second))
	require.NoError(t, err)
	require.False(t, ok, "the slow bucket kept its state")
	ok, _, err = b.Take(ctx, "ip|dest1.example", 5, 1, 5, now.Add(2*time.Second))
	require.NoError(t, err)
	require.True(t, ok, "a dropped bucket starts full")
}
