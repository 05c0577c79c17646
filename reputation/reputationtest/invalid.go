package reputationtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/reputation"
)

// testInvalidInput calls the backend with what the Tracker never passes:
// an empty key ([reputation.ErrInvalid]) and suppression addresses that
// [reputation.NormalizeAddress] rejects or changes
// ([reputation.ErrInvalidAddress]).
// State written first under key "v" and address "v@example.com" must be
// unchanged afterwards.
func testInvalidInput(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(time.Hour)
	ok, err := b.SetState(ctx, "v", []byte("victim"), 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, b.AddCounts(ctx, "v", 1, reputation.Counts{Delivered: 2}, exp))
	require.NoError(t, b.PutSuppression(ctx, reputation.Suppression{Address: "v@example.com", Reason: reputation.ReasonManual, Created: now}))

	calls := map[string]func() error{
		"Take": func() error { _, _, err := b.Take(ctx, "", 1, 1, 1, now); return err },
		"Reserve": func() error {
			_, err := b.Reserve(ctx, "", 1, 10, exp)
			return err
		},
		"AddCounts": func() error { return b.AddCounts(ctx, "", 1, reputation.Counts{Delivered: 1}, exp) },
		"SumCounts": func() error { _, err := b.SumCounts(ctx, "", 0, 2); return err },
		"GetState":  func() error { _, _, err := b.GetState(ctx, ""); return err },
		"SetState":  func() error { _, err := b.SetState(ctx, "", []byte("x"), 0); return err },
	}
	for name, call := range calls {
		assert.ErrorIs(t, safely(call), reputation.ErrInvalid, "Backend.%s with an empty key must fail with reputation.ErrInvalid", name)
	}
	for _, addr := range []string{"", "no-at-sign", "a@b\x00c", "a\r@b.c", "a@b.c\n", "@example.com", "V@Example.COM"} {
		err := b.PutSuppression(ctx, reputation.Suppression{Address: addr, Reason: reputation.ReasonManual, Created: now})
		assert.ErrorIs(t, err, reputation.ErrInvalidAddress, "Backend.PutSuppression with address %q must fail with reputation.ErrInvalidAddress", addr)
		_, err = b.GetSuppression(ctx, addr)
		assert.ErrorIs(t, err, reputation.ErrInvalidAddress, "Backend.GetSuppression with address %q must fail with reputation.ErrInvalidAddress", addr)
		assert.ErrorIs(t, b.DeleteSuppression(ctx, addr), reputation.ErrInvalidAddress, "Backend.DeleteSuppression with address %q must fail with reputation.ErrInvalidAddress", addr)
	}

	v, ver, err := b.GetState(ctx, "v")
	require.NoError(t, err)
	require.Equal(t, "victim", string(v), "invalid calls must not change other keys")
	require.EqualValues(t, 1, ver)
	c, err := b.SumCounts(ctx, "v", 0, 2)
	require.NoError(t, err)
	require.Equal(t, reputation.Counts{Delivered: 2}, c, "invalid calls must not change other keys' counts")
	s, err := b.GetSuppression(ctx, "v@example.com")
	require.NoError(t, err, "invalid calls must not remove other suppressions")
	require.Equal(t, "v@example.com", s.Address)
	list, err := b.ListSuppressions(ctx, "", 100)
	require.NoError(t, err)
	require.Len(t, list, 1, "invalid calls must not add suppressions")
}

// safely runs call and turns a panic into an error, so that a backend that
// panics on bad input fails this case instead of the whole suite.
func safely(call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return call()
}
