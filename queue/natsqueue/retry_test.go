package natsqueue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
)

func testBackend(retryFor, attempt time.Duration) *Backend {
	return &Backend{opts: Options{RetryFor: retryFor, AttemptTimeout: attempt}}
}

func TestIsElection(t *testing.T) {
	for _, err := range []error{
		nats.ErrNoResponders,
		fmt.Errorf("wrapped: %w", jetstream.ErrNoStreamResponse),
		jetstream.ErrConsumerLeadershipChanged,
		apiErr{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster not available"}},
	} {
		assert.True(t, isElection(err), "%v", err)
		assert.True(t, mailbricks.IsTemporary(classify(err)), "%v", err)
	}
	for _, err := range []error{
		errors.New("boom"),
		nats.ErrTimeout, // may have been applied: retried only when idempotent
		apiErr{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabledForAccount}},
		apiErr{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use"}},
	} {
		assert.False(t, isElection(err), "%v", err)
	}
}

func TestRetryElection(t *testing.T) {
	b := testBackend(5*time.Second, time.Second)
	calls := 0
	err := b.retry(context.Background(), false, func(context.Context) error {
		calls++
		if calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls, "an election error must be retried until the call succeeds")
}

func TestRetryOther(t *testing.T) {
	b := testBackend(5*time.Second, time.Second)
	calls := 0
	boom := errors.New("boom")
	err := b.retry(context.Background(), true, func(context.Context) error {
		calls++
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 1, calls, "an error other than an election's must not be retried")
}

func TestRetryTimeout(t *testing.T) {
	b := testBackend(5*time.Second, 20*time.Millisecond)
	for _, idempotent := range []bool{false, true} {
		calls := 0
		err := b.retry(context.Background(), idempotent, func(ctx context.Context) error {
			calls++
			if calls == 1 {
				if idempotent {
					<-ctx.Done() // the attempt's own timeout
					return ctx.Err()
				}
				return nats.ErrTimeout
			}
			return nil
		})
		if idempotent {
			require.NoError(t, err)
			require.Equal(t, 2, calls, "a timed-out idempotent attempt must be retried")
		} else {
			require.ErrorIs(t, err, nats.ErrTimeout)
			require.Equal(t, 1, calls, "a timed-out attempt that may have been applied must not be retried")
		}
	}
}

func TestRetryBounded(t *testing.T) {
	b := testBackend(300*time.Millisecond, time.Second)
	calls := 0
	err := b.retry(context.Background(), true, func(context.Context) error {
		calls++
		return nats.ErrNoResponders
	})
	require.ErrorIs(t, err, nats.ErrNoResponders)
	require.True(t, mailbricks.IsTemporary(classify(err)))
	require.Greater(t, calls, 1)
	// Delays of 50, 100, 200 ms fit in 300 ms at most: a bounded number.
	require.LessOrEqual(t, calls, 4, "retries must stop after RetryFor")

	// The caller's context ends the retries too.
	ctx, cancel := context.WithCancel(context.Background())
	b = testBackend(time.Hour, time.Second)
	calls = 0
	err = b.retry(ctx, true, func(context.Context) error {
		if calls++; calls == 2 {
			cancel()
		}
		return nats.ErrNoResponders
	})
	require.Error(t, err)
	require.Equal(t, 2, calls)
}
