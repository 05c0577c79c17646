package lsmreputation_test

import (
	"testing"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/mailbricks/mailbricks/reputation/reputationtest"
	"github.com/stretchr/testify/require"
)

func TestConformance(t *testing.T) {
	reputationtest.Run(t, func(t *testing.T) reputation.Backend {
		b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: vfs.NewMem()})
		require.NoError(t, err)
		return b
	})
}
