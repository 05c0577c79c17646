package dedup_test

import (
	"crypto/sha256"
	"testing"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/stretchr/testify/require"
)

func TestParseRef(t *testing.T) {
	ref := dedup.Ref{Hash: sha256.Sum256([]byte("x")), Size: 1}
	got, err := dedup.ParseRef(ref.String())
	require.NoError(t, err)
	require.Equal(t, ref, got)
	h := ref.Hash.String()
	for _, bad := range []string{"", "sha256-", "sha1-" + h + "-1", "sha256-" + h, "sha256-" + h + "-", "sha256-" + h + "-01",
		"sha256-" + h + "--1", "sha256-" + h + "-+1", "sha256-" + h[:63] + "-1", "sha256-" + h + "x-1",
		"sha256-" + h[:62] + "zz-1", "sha256-" + h + "-99999999999999999999"} {
		_, err := dedup.ParseRef(bad)
		require.ErrorIs(t, err, dedup.ErrInvalidRef, "%q", bad)
	}
	require.True(t, dedup.Ref{}.IsZero())
	require.False(t, ref.IsZero())
}
