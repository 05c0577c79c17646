package queue

import (
	"math/rand/v2"
	"time"
)

// Backoff decides how long a failed job waits before its next attempt.
// Implementations must be safe for concurrent use.
type Backoff interface {
	// Delay returns the wait after the failure of attempt (1 for the first).
	Delay(attempt int) time.Duration
}

// BackoffFunc adapts a function to a [Backoff].
type BackoffFunc func(attempt int) time.Duration

// Delay returns f(attempt).
func (f BackoffFunc) Delay(attempt int) time.Duration { return f(attempt) }

// Exponential is a [Backoff] that doubles with every attempt up to a cap,
// with full jitter (the AWS architecture blog's "Exponential Backoff And
// Jitter"): the delay after attempt a is uniform in [0, min(Max,
// Base·2^(a-1))], which spreads the retries of many jobs that failed
// together instead of letting them hammer a recovering server in waves.
// It is safe for concurrent use.
type Exponential struct {
	// Base is the ceiling of the first delay. The default is 1 second.
	Base time.Duration
	// Max caps the ceiling. The default is 1 hour.
	Max time.Duration
	// NoJitter makes every delay the ceiling itself. The default is false.
	NoJitter bool
	// Rand returns a uniform random number in [0, n). The default is
	// math/rand/v2's Int64N.
	Rand func(n int64) int64
}

// Delay returns the delay after the failure of attempt.
func (e Exponential) Delay(attempt int) time.Duration {
	base, max := e.Base, e.Max
	if base <= 0 {
		base = time.Second
	}
	if max <= 0 {
		max = time.Hour
	}
	if attempt < 1 {
		attempt = 1
	}
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max || ceil <= 0 {
		ceil = max
	}
	if e.NoJitter {
		return ceil
	}
	rnd := e.Rand
	if rnd == nil {
		rnd = rand.Int64N
	}
	return time.Duration(rnd(int64(ceil) + 1))
}

// Schedule is a [Backoff] with an explicit delay per attempt: the delay
// after attempt a is s[a-1], and the last entry for every attempt beyond
// the list (for example 2m, 5m, 10m, 15m, 30m, 1h, 2h, 24h, the classic
// mail retry schedule). An empty Schedule retries at once.
type Schedule []time.Duration

// Delay returns the delay after the failure of attempt.
func (s Schedule) Delay(attempt int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	if attempt < 1 {
		attempt = 1
	}
	if attempt > len(s) {
		return s[len(s)-1]
	}
	return s[attempt-1]
}
