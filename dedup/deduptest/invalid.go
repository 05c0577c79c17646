package deduptest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup"
)

// testInvalidInput calls the backend directly, past [dedup.Store]'s
// checks, with owners the Store rejects: Link and Unlink must fail with
// [dedup.ErrInvalidOwner], and the blob's existing link, made first, must
// keep it alive.
func testInvalidInput(t *testing.T, s *dedup.Store, b dedup.Backend, clk *Clock) {
	ctx := context.Background()
	data := randBytes(77, 5000)
	ref, err := s.Put(ctx, bytes.NewReader(data))
	require.NoError(t, err)
	require.NoError(t, s.Link(ctx, ref, "v"))
	for _, owner := range []string{"", strings.Repeat("o", dedup.MaxOwnerLen+1)} {
		assert.ErrorIs(t, b.Link(ctx, ref.Hash, owner), dedup.ErrInvalidOwner,
			"Backend.Link with an owner of %d bytes must fail with dedup.ErrInvalidOwner", len(owner))
		assert.ErrorIs(t, b.Unlink(ctx, ref.Hash, owner, clk.Now()), dedup.ErrInvalidOwner,
			"Backend.Unlink with an owner of %d bytes must fail with dedup.ErrInvalidOwner", len(owner))
	}
	clk.Advance(10 * grace)
	_, err = s.GC(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, data, readBlob(t, s, ref), "invalid calls must not unlink another owner's blob")
	require.NoError(t, s.Unlink(ctx, ref, "v"))
}
