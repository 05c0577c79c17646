package lsmqueue_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/queue/queuetest"
)

func TestConformanceNoSync(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, now func() time.Time) queue.Backend {
		b, err := lsmqueue.Open("q", &lsmqueue.Options{FS: vfs.NewMem(), Now: now, AckNoSync: true, StateNoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, nil)
}

func TestState(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "nosync"}[noSync], func(t *testing.T) {
			ctx := context.Background()
			fs := vfs.NewMem()
			b, err := lsmqueue.Open("q", &lsmqueue.Options{FS: fs, StateNoSync: noSync})
			require.NoError(t, err)

			v, ver, err := b.GetState(ctx, "a")
			require.NoError(t, err)
			assert.Nil(t, v)
			assert.Zero(t, ver)

			ok, err := b.SetState(ctx, "a", []byte("one"), 1)
			require.NoError(t, err)
			assert.False(t, ok, "version 1 of a missing record")
			ok, err = b.SetState(ctx, "a", []byte("one"), 0)
			require.NoError(t, err)
			require.True(t, ok)
			ok, err = b.SetState(ctx, "a", []byte("stale"), 0)
			require.NoError(t, err)
			assert.False(t, ok, "stale version")
			ok, err = b.SetState(ctx, "a", []byte("two"), 1)
			require.NoError(t, err)
			require.True(t, ok)

			v, ver, err = b.GetState(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, "two", string(v))
			assert.Equal(t, int64(2), ver)

			// Records are separate from jobs: a job with the same key
			// does not see them, nor they it.
			_, err = b.Enqueue(ctx, "t", []byte("p"), queue.EnqueueOptions{Key: "a"})
			require.NoError(t, err)
			v, _, err = b.GetState(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, "two", string(v))

			require.NoError(t, b.Close())
			_, _, err = b.GetState(ctx, "a")
			require.ErrorIs(t, err, queue.ErrClosed)

			b, err = lsmqueue.Open("q", &lsmqueue.Options{FS: fs, StateNoSync: noSync})
			require.NoError(t, err)
			defer b.Close()
			v, ver, err = b.GetState(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, "two", string(v), "after reopen")
			assert.Equal(t, int64(2), ver)

			ok, err = b.SetState(ctx, "a", nil, 2)
			require.NoError(t, err)
			require.True(t, ok)
			v, ver, err = b.GetState(ctx, "a")
			require.NoError(t, err)
			assert.Nil(t, v)
			assert.Zero(t, ver)
		})
	}
}

// TestStateConcurrent has many writers race on one version: exactly one
// wins each round.
func TestStateConcurrent(t *testing.T) {
	ctx := context.Background()
	b, err := lsmqueue.Open("q", &lsmqueue.Options{FS: vfs.NewMem(), StateNoSync: true})
	require.NoError(t, err)
	defer b.Close()
	for round := range int64(20) {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ok, err := b.SetState(ctx, "k", []byte{byte(round)}, round)
				assert.NoError(t, err)
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		require.Equal(t, int32(1), wins.Load(), "round %d", round)
	}
	_, ver, err := b.GetState(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, int64(20), ver)
}
