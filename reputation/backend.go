package reputation

import (
	"context"
	"time"
)

// Backend stores the shared state of a [Tracker]: token buckets, capped
// daily counters, time-bucketed outcome counters, small versioned state
// records and the suppression list. Every method is atomic on its own key;
// the Tracker composes them and keeps all policy (warm-up, pauses,
// normalization) to itself, so a backend holds no reputation logic.
//
// Keys are opaque non-empty strings chosen by the Tracker; a backend may
// prefix them but must not interpret them. A backend must reject an empty
// key with an error matching [ErrInvalid], and a suppression address that
// is not normalized (see [NormalizeAddress]) with one matching
// [ErrInvalidAddress]. Times come from the Tracker's
// clock, never the backend's, so every backend behaves the same under a
// simulated clock.
//
// Every method must honor ctx cancellation where it does I/O, and after
// Close must return an error for which errors.Is(err, ErrClosed).
// Implementations must be safe for concurrent use.
type Backend interface {
	// Take removes n tokens from the token bucket at key, which refills at
	// rate tokens per second up to burst tokens and starts full. If the
	// bucket holds fewer than n tokens, Take removes none and returns
	// false and the time until n tokens will be there. The Tracker never
	// asks for more than burst tokens. Refill is computed from now, which
	// may move backwards slightly between callers; a bucket must never
	// gain tokens from a backward step.
	Take(ctx context.Context, key string, n, rate, burst float64, now time.Time) (ok bool, retryAfter time.Duration, err error)

	// Reserve adds n to the counter at key (absent counters are zero). If
	// n > 0 and the sum would exceed max, Reserve changes nothing and
	// returns false. A negative n releases an earlier reservation (the
	// counter does not go below zero) and always succeeds. The counter may
	// be dropped after expire.
	Reserve(ctx context.Context, key string, n, max int64, expire time.Time) (ok bool, err error)

	// AddCounts adds c to the counters of bucket under key. The bucket may
	// be dropped after expire.
	AddCounts(ctx context.Context, key string, bucket int64, c Counts, expire time.Time) error

	// SumCounts returns the sum of the counters of the buckets from and to
	// (inclusive) under key; missing buckets count as zero.
	SumCounts(ctx context.Context, key string, from, to int64) (Counts, error)

	// GetState returns the value and version of the state record at key,
	// or nil and version 0 if there is none. The caller owns the value.
	GetState(ctx context.Context, key string) (value []byte, version int64, err error)

	// SetState stores value at key if the record's current version is
	// version (0 for an absent record) and returns true; the new version
	// is version+1. A nil value deletes the record (it then reads as
	// version 0). If the version does not match, SetState changes nothing
	// and returns false. The backend must not retain value.
	SetState(ctx context.Context, key string, value []byte, version int64) (ok bool, err error)

	// PutSuppression stores s under s.Address, replacing any entry there.
	PutSuppression(ctx context.Context, s Suppression) error

	// GetSuppression returns the entry for addr; if there is none, it
	// must return an error for which errors.Is(err, ErrNotFound). The
	// backend returns entries whatever their Expires; the Tracker applies
	// expiry.
	GetSuppression(ctx context.Context, addr string) (Suppression, error)

	// DeleteSuppression removes the entry for addr; if there is none, it
	// must return an error for which errors.Is(err, ErrNotFound).
	DeleteSuppression(ctx context.Context, addr string) error

	// ListSuppressions returns up to limit entries with addresses greater
	// than after, in ascending byte order of address.
	ListSuppressions(ctx context.Context, after string, limit int) ([]Suppression, error)

	// Close releases the backend's resources. It is idempotent; later
	// calls of other methods return ErrClosed.
	Close() error
}
