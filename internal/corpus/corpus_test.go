package corpus

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoad(t *testing.T) {
	msgs := ForTest(t)
	require.Len(t, msgs, Size)
	groups := map[string]int{}
	for _, m := range msgs {
		groups[m.Group]++
		require.NotEmpty(t, m.Raw, m.Name)
		require.False(t, bytes.HasPrefix(m.Raw, []byte("From ")), m.Name)
	}
	require.Equal(t, map[string]int{"easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396}, groups)
}
