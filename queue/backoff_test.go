package queue

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExponential(t *testing.T) {
	e := Exponential{Base: time.Second, Max: time.Minute, NoJitter: true}
	for a, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 6: 32 * time.Second, 7: time.Minute, 1000: time.Minute} {
		require.Equal(t, want, e.Delay(a), "attempt %d: the ceiling doubles per attempt up to Max", a)
	}
	// Full jitter: uniform in [0, ceiling], from the injected source.
	var asked int64
	j := Exponential{Base: time.Second, Max: time.Minute, Rand: func(n int64) int64 { asked = n; return n / 2 }}
	require.Equal(t, 4*time.Second, j.Delay(4))
	require.Equal(t, int64(8*time.Second)+1, asked, "jitter must draw from [0, ceiling]")
	d := Exponential{}.Delay(3)
	require.True(t, d >= 0 && d <= 4*time.Second, "default jitter stays within the ceiling")
}

func TestValidTopic(t *testing.T) {
	require.NoError(t, ValidTopic("outgoing-mail_2"))
	for _, bad := range []string{"", "a.b", "a b", "ü", string(make([]byte, MaxTopicLen+1))} {
		require.ErrorIs(t, ValidTopic(bad), ErrInvalid, "%q", bad)
	}
}
