// Package reputationtest is the conformance suite for
// [reputation.Backend] implementations, with the fakes it needs: a
// settable [Clock] and an in-memory MX [Resolver].
//
// Run checks each Backend primitive against its contract, then drives a
// [reputation.Tracker] over the backend through simulated weeks: warm-up
// stages advance on healthy days, hold on a day of deferrals and step
// back on a day of bounces; a complaint spike pauses an IP and Decide
// moves its traffic to a healthy IP until the cool-down ends; hard
// bounces, complaints and soft bounces on several days suppress
// recipients; and rate limits and warm-up caps hold under 16 concurrent
// goroutines.
package reputationtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Run runs the conformance suite. newBackend must return a fresh, empty
// backend for each call; Run closes it. Backends may expire keys by the
// wall clock, so the suite's simulated clocks start at the current time
// and only move forward.
func Run(t *testing.T, newBackend func(t *testing.T) reputation.Backend) {
	tests := []struct {
		name string
		f    func(t *testing.T, b reputation.Backend)
	}{
		{"TokenBucket", testTokenBucket},
		{"Reserve", testReserve},
		{"ReserveConcurrent", testReserveConcurrent},
		{"Counts", testCounts},
		{"State", testState},
		{"StateConcurrent", testStateConcurrent},
		{"Suppressions", testSuppressions},
		{"Closed", testClosed},
		{"InvalidInput", testInvalidInput},
		{"ProviderRollup", testProviderRollup},
		{"SuppressionList", testSuppressionList},
		{"HardBounceSuppresses", testHardBounce},
		{"SoftBouncesSuppress", testSoftBounces},
		{"WarmupWeeks", testWarmupWeeks},
		{"WarmupCapConcurrent", testWarmupCapConcurrent},
		{"PauseOnComplaintSpike", testPauseComplaints},
		{"PauseOnHardBounces", testPauseHardBounces},
		{"ManualPause", testManualPause},
		{"RateLimitConcurrent", testRateLimitConcurrent},
		{"SharedBackend", testShared},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() { _ = b.Close() })
			tc.f(t, b)
		})
	}
}

// start is a simulated clock's start: today at 08:00 UTC, or tomorrow's
// if that has passed, so the clock never runs behind the wall clock.
func start() time.Time {
	now := time.Now().UTC()
	s := now.Truncate(24 * time.Hour).Add(8 * time.Hour)
	if s.Before(now) {
		s = s.Add(24 * time.Hour)
	}
	return s
}

func testTokenBucket(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	now := start()
	for i := range 5 {
		ok, _, err := b.Take(ctx, "tb", 1, 2, 5, now)
		require.NoError(t, err)
		require.True(t, ok, "a fresh bucket starts full: take %d of burst 5 must succeed", i+1)
	}
	ok, after, err := b.Take(ctx, "tb", 1, 2, 5, now)
	require.NoError(t, err)
	require.False(t, ok, "an empty bucket must refuse")
	assert.InDelta(t, 500*time.Millisecond, after, float64(5*time.Millisecond), "retryAfter must be the refill time of the missing token (1/rate)")
	ok, _, err = b.Take(ctx, "tb", 1, 2, 5, now.Add(-time.Second))
	require.NoError(t, err)
	require.False(t, ok, "a clock step backwards must not add tokens")
	ok, _, err = b.Take(ctx, "tb", 1, 2, 5, now.Add(500*time.Millisecond))
	require.NoError(t, err)
	require.True(t, ok, "the bucket refills at rate tokens per second")
	ok, _, err = b.Take(ctx, "tb", 1, 2, 5, now.Add(500*time.Millisecond))
	require.NoError(t, err)
	require.False(t, ok)
	ok, _, err = b.Take(ctx, "tb", 5, 2, 5, now.Add(time.Hour))
	require.NoError(t, err)
	require.True(t, ok, "a bucket refills to burst, and n tokens may be taken at once")
	ok, after, err = b.Take(ctx, "tb", 3, 2, 5, now.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, ok)
	assert.InDelta(t, 1500*time.Millisecond, after, float64(5*time.Millisecond), "retryAfter covers all n missing tokens")
	ok, _, err = b.Take(ctx, "other", 1, 2, 5, now)
	require.NoError(t, err)
	require.True(t, ok, "buckets of different keys are independent")
}

func testReserve(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	exp := start().Add(48 * time.Hour)
	for i := range 3 {
		ok, err := b.Reserve(ctx, "r", 1, 3, exp)
		require.NoError(t, err)
		require.True(t, ok, "reservation %d of max 3 must succeed", i+1)
	}
	ok, err := b.Reserve(ctx, "r", 1, 3, exp)
	require.NoError(t, err)
	require.False(t, ok, "a reservation beyond max must fail")
	ok, err = b.Reserve(ctx, "r", 2, 10, exp)
	require.NoError(t, err)
	require.True(t, ok, "a larger max allows more")
	ok, err = b.Reserve(ctx, "r", 1, 5, exp)
	require.NoError(t, err)
	require.False(t, ok, "the counter is at 5")
	ok, err = b.Reserve(ctx, "r", -1, 0, exp)
	require.NoError(t, err)
	require.True(t, ok, "a release always succeeds")
	ok, err = b.Reserve(ctx, "r", 1, 5, exp)
	require.NoError(t, err)
	require.True(t, ok, "a release frees room")
	ok, err = b.Reserve(ctx, "r2", -3, 0, exp)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.Reserve(ctx, "r2", 1, 1, exp)
	require.NoError(t, err)
	require.True(t, ok, "a counter never goes below zero")
}

func testReserveConcurrent(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	exp := start().Add(48 * time.Hour)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				ok, err := b.Reserve(ctx, "rc", 1, 100, exp)
				assert.NoError(t, err)
				if ok {
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 100, got.Load(), "exactly max reservations succeed under concurrency")
}

func testCounts(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	exp := start().Add(48 * time.Hour)
	add := func(key string, bucket int64, c reputation.Counts) {
		require.NoError(t, b.AddCounts(ctx, key, bucket, c, exp))
	}
	add("k", 100, reputation.Counts{Delivered: 3, Complaint: 1})
	add("k", 100, reputation.Counts{Delivered: 2, HardBounce: 1})
	add("k", 101, reputation.Counts{Deferred: 4, SoftBounce: 5})
	add("k", 105, reputation.Counts{Delivered: 10})
	add("k", -7, reputation.Counts{Delivered: 1000})
	add("other", 100, reputation.Counts{Delivered: 1000})
	sum := func(from, to int64) reputation.Counts {
		c, err := b.SumCounts(ctx, "k", from, to)
		require.NoError(t, err)
		return c
	}
	assert.Equal(t, reputation.Counts{Delivered: 5, HardBounce: 1, Complaint: 1}, sum(100, 100), "adds to one bucket accumulate")
	assert.Equal(t, reputation.Counts{Delivered: 5, Deferred: 4, SoftBounce: 5, HardBounce: 1, Complaint: 1}, sum(100, 101), "ranges are inclusive")
	assert.Equal(t, reputation.Counts{Delivered: 15, Deferred: 4, SoftBounce: 5, HardBounce: 1, Complaint: 1}, sum(0, 1000), "missing buckets count zero")
	assert.Equal(t, reputation.Counts{Delivered: 1000}, sum(-10, -1), "negative buckets work")
	assert.Equal(t, reputation.Counts{}, sum(102, 104))
	assert.Equal(t, reputation.Counts{}, sum(101, 100), "an empty range sums to zero")
	c, err := b.SumCounts(ctx, "none", 0, 1<<40)
	require.NoError(t, err)
	assert.Equal(t, reputation.Counts{}, c, "an unknown key sums to zero")
}

func testState(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	v, ver, err := b.GetState(ctx, "s")
	require.NoError(t, err)
	require.Nil(t, v, "an absent record reads as nil")
	require.Zero(t, ver, "an absent record has version 0")
	ok, err := b.SetState(ctx, "s", []byte("one"), 1)
	require.NoError(t, err)
	require.False(t, ok, "a wrong version must not write")
	val := []byte("one")
	ok, err = b.SetState(ctx, "s", val, 0)
	require.NoError(t, err)
	require.True(t, ok, "version 0 creates an absent record")
	val[0] = 'X'
	v, ver, err = b.GetState(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, "one", string(v), "the backend must not retain the caller's value")
	require.EqualValues(t, 1, ver)
	v[0] = 'Y'
	v, _, _ = b.GetState(ctx, "s")
	require.Equal(t, "one", string(v), "GetState returns a copy")
	ok, err = b.SetState(ctx, "s", []byte("two"), 0)
	require.NoError(t, err)
	require.False(t, ok, "a stale version must not write")
	ok, err = b.SetState(ctx, "s", []byte("two"), 1)
	require.NoError(t, err)
	require.True(t, ok)
	v, ver, _ = b.GetState(ctx, "s")
	require.Equal(t, "two", string(v))
	require.EqualValues(t, 2, ver)
	ok, err = b.SetState(ctx, "s", nil, 2)
	require.NoError(t, err)
	require.True(t, ok, "nil deletes")
	v, ver, _ = b.GetState(ctx, "s")
	require.Nil(t, v, "a deleted record reads as absent")
	require.Zero(t, ver)
	ok, err = b.SetState(ctx, "s", []byte{}, 0)
	require.NoError(t, err)
	require.True(t, ok)
	v, _, _ = b.GetState(ctx, "s")
	require.NotNil(t, v, "an empty non-nil value is a present record")
	require.Empty(t, v)
}

func testStateConcurrent(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				for {
					v, ver, err := b.GetState(ctx, "ctr")
					if !assert.NoError(t, err) {
						return
					}
					ok, err := b.SetState(ctx, "ctr", make([]byte, len(v)+1), ver)
					if !assert.NoError(t, err) {
						return
					}
					if ok {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	v, ver, err := b.GetState(ctx, "ctr")
	require.NoError(t, err)
	require.Len(t, v, 160, "compare-and-set loses no update: 16×10 increments")
	require.EqualValues(t, 160, ver, "each successful SetState bumps the version by one")
}

func testSuppressions(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	_, err := b.GetSuppression(ctx, "a@example.com")
	require.ErrorIs(t, err, reputation.ErrNotFound, "GetSuppression of a missing entry")
	require.ErrorIs(t, b.DeleteSuppression(ctx, "a@example.com"), reputation.ErrNotFound, "DeleteSuppression of a missing entry")
	now := start().Truncate(time.Millisecond)
	want := map[string]reputation.Suppression{}
	for i, a := range []string{"c@example.com", "a@example.com", "b@example.com", "d@example.org", "a@example.net"} {
		s := reputation.Suppression{Address: a, Reason: reputation.Reason(1 + i%5), Detail: "d" + a, Created: now.Add(time.Duration(i) * time.Second)}
		if i%2 == 0 {
			s.Expires = now.Add(time.Hour)
		}
		require.NoError(t, b.PutSuppression(ctx, s))
		want[a] = s
	}
	got, err := b.GetSuppression(ctx, "b@example.com")
	require.NoError(t, err)
	assertSup(t, want["b@example.com"], got)
	repl := reputation.Suppression{Address: "b@example.com", Reason: reputation.ReasonManual, Created: now}
	require.NoError(t, b.PutSuppression(ctx, repl))
	want["b@example.com"] = repl
	got, _ = b.GetSuppression(ctx, "b@example.com")
	assertSup(t, repl, got)

	all, err := b.ListSuppressions(ctx, "", 100)
	require.NoError(t, err)
	var addrs []string
	for _, s := range all {
		addrs = append(addrs, s.Address)
		assertSup(t, want[s.Address], s)
	}
	require.Equal(t, []string{"a@example.com", "a@example.net", "b@example.com", "c@example.com", "d@example.org"}, addrs, "List returns entries in address order")
	page, err := b.ListSuppressions(ctx, "a@example.net", 2)
	require.NoError(t, err)
	require.Len(t, page, 2, "List honors limit")
	require.Equal(t, "b@example.com", page[0].Address, "List starts after the given address")
	require.Equal(t, "c@example.com", page[1].Address)
	require.NoError(t, b.DeleteSuppression(ctx, "c@example.com"))
	_, err = b.GetSuppression(ctx, "c@example.com")
	require.ErrorIs(t, err, reputation.ErrNotFound, "a deleted entry is gone")
	all, _ = b.ListSuppressions(ctx, "", 100)
	require.Len(t, all, 4)
}

func assertSup(t *testing.T, want, got reputation.Suppression) {
	t.Helper()
	assert.Equal(t, want.Address, got.Address)
	assert.Equal(t, want.Reason, got.Reason)
	assert.Equal(t, want.Detail, got.Detail)
	assert.True(t, want.Created.Equal(got.Created), "Created %v, want %v", got.Created, want.Created)
	assert.True(t, want.Expires.Equal(got.Expires), "Expires %v, want %v", got.Expires, want.Expires)
}

func testClosed(t *testing.T, b reputation.Backend) {
	ctx := context.Background()
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	now := start()
	_, _, err := b.Take(ctx, "k", 1, 1, 1, now)
	require.ErrorIs(t, err, reputation.ErrClosed, "Take after Close")
	_, err = b.Reserve(ctx, "k", 1, 1, now)
	require.ErrorIs(t, err, reputation.ErrClosed, "Reserve after Close")
	require.ErrorIs(t, b.AddCounts(ctx, "k", 1, reputation.Counts{Delivered: 1}, now), reputation.ErrClosed, "AddCounts after Close")
	_, err = b.SumCounts(ctx, "k", 0, 1)
	require.ErrorIs(t, err, reputation.ErrClosed, "SumCounts after Close")
	_, _, err = b.GetState(ctx, "k")
	require.ErrorIs(t, err, reputation.ErrClosed, "GetState after Close")
	_, err = b.SetState(ctx, "k", []byte("x"), 0)
	require.ErrorIs(t, err, reputation.ErrClosed, "SetState after Close")
	require.ErrorIs(t, b.PutSuppression(ctx, reputation.Suppression{Address: "a@b.c", Reason: 1}), reputation.ErrClosed, "PutSuppression after Close")
	_, err = b.GetSuppression(ctx, "a@b.c")
	require.ErrorIs(t, err, reputation.ErrClosed, "GetSuppression after Close")
	require.ErrorIs(t, b.DeleteSuppression(ctx, "a@b.c"), reputation.ErrClosed, "DeleteSuppression after Close")
	_, err = b.ListSuppressions(ctx, "", 1)
	require.ErrorIs(t, err, reputation.ErrClosed, "ListSuppressions after Close")
}

// env is a Tracker over the backend under test with a simulated clock and
// resolver.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *Clock
	res   *Resolver
	tr    *reputation.Tracker
}

func newEnv(t *testing.T, b reputation.Backend, o reputation.Options) *env {
	e := &env{t: t, ctx: context.Background(), clock: NewClock(start()), res: NewResolver(map[string][]string{
		"workspace.example": {"aspmx.l.google.com", "alt1.aspmx.l.google.com"},
		"m365.example":      {"m365-example.mail.protection.outlook.com"},
		"small.example":     {"mx.small.example"},
	})}
	o.Now, o.Resolver = e.clock.Now, e.res
	if o.Providers == nil {
		o.Providers = []reputation.Provider{
			{Name: "google", Domains: []string{"gmail.com", "googlemail.com"}, MX: []string{"*.google.com"}, Rate: 1000, Burst: 1000},
			{Name: "microsoft", Domains: []string{"outlook.com"}, MX: []string{"*.protection.outlook.com"}, Rate: 1000, Burst: 1000},
		}
	}
	tr, err := reputation.New(b, &o)
	require.NoError(t, err)
	e.tr = tr
	return e
}

func (e *env) decide(to string) reputation.Decision {
	d, err := e.tr.Decide(e.ctx, reputation.Send{From: "news@sender.example", To: to, Class: reputation.ClassBulk, Size: 1000})
	require.NoError(e.t, err)
	return d
}

func (e *env) record(o reputation.Outcome) {
	require.NoError(e.t, e.tr.Record(e.ctx, o))
}

func (e *env) status(ip, prov string) reputation.IPStatus {
	s, err := e.tr.Status(e.ctx, ip, prov)
	require.NoError(e.t, err)
	return s
}

func pool(ips ...reputation.IP) []reputation.Pool {
	return []reputation.Pool{{Class: reputation.ClassBulk, IPs: ips}}
}

func testProviderRollup(t *testing.T, b reputation.Backend) {
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.1"}), Providers: []reputation.Provider{
		{Name: "google", Domains: []string{"gmail.com", "googlemail.com"}, MX: []string{"*.google.com"}, Rate: 0.001, Burst: 3},
	}, DefaultRate: 0.001, DefaultBurst: 1})
	for _, to := range []string{"a@gmail.com", "b@googlemail.com", "c@workspace.example"} {
		d := e.decide(to)
		require.True(t, d.Allow, "%s: first sends within Google's burst", to)
		require.Equal(t, "google", d.Provider, "%s rolls up to google", to)
	}
	d := e.decide("d@workspace.example")
	require.False(t, d.Allow, "gmail.com, googlemail.com and Google-hosted domains share one bucket")
	require.Equal(t, "rate limited", d.Reason)
	require.Greater(t, d.RetryAfter, time.Duration(0))
	d = e.decide("x@small.example")
	require.True(t, d.Allow, "a domain no provider claims has its own bucket")
	require.Equal(t, "small.example", d.Provider)
	d = e.decide("y@unknown.example")
	require.Equal(t, "unknown.example", d.Provider, "a domain without MX is its own destination")
	n := e.res.Lookups()
	e.decide("z@workspace.example")
	require.Equal(t, n, e.res.Lookups(), "MX answers are cached")
	require.Equal(t, "google", e.tr.Provider(e.ctx, "GMAIL.com."))
}

func testSuppressionList(t *testing.T, b reputation.Backend) {
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.1"})})
	ctx := e.ctx
	require.NoError(t, e.tr.Suppress(ctx, reputation.Suppression{Address: "Unsub+tag@Example.COM", Reason: reputation.ReasonUnsubscribe}))
	require.NoError(t, e.tr.Suppress(ctx, reputation.Suppression{Address: "temp@example.com", Reason: reputation.ReasonManual, Expires: e.clock.Now().Add(time.Hour)}))
	s, err := e.tr.Suppressed(ctx, "unsub@example.com")
	require.NoError(t, err, "entries are found under the normalized address")
	require.Equal(t, reputation.ReasonUnsubscribe, s.Reason)
	require.True(t, s.Created.Equal(e.clock.Now().Truncate(time.Millisecond)) || s.Created.Equal(e.clock.Now()), "Created defaults to now")
	d := e.decide("UNSUB@example.com")
	require.False(t, d.Allow)
	require.Zero(t, d.RetryAfter, "a suppressed recipient gets no retry time")
	require.Equal(t, "suppressed: unsubscribe", d.Reason)
	require.False(t, e.decide("temp@example.com").Allow, "an entry before its expiry applies")
	e.clock.Advance(time.Hour)
	_, err = e.tr.Suppressed(ctx, "temp@example.com")
	require.ErrorIs(t, err, reputation.ErrNotFound, "an expired entry does not apply")
	require.True(t, e.decide("temp@example.com").Allow)
	l, err := e.tr.Suppressions(ctx, nil)
	require.NoError(t, err)
	require.Len(t, l, 1, "List leaves out expired entries")
	l, err = e.tr.Suppressions(ctx, &reputation.ListOptions{IncludeExpired: true})
	require.NoError(t, err)
	require.Len(t, l, 2)
	n, err := e.tr.PurgeExpired(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "PurgeExpired removes the expired entry")
	require.NoError(t, e.tr.Unsuppress(ctx, "unsub+other@example.com"))
	require.ErrorIs(t, e.tr.Unsuppress(ctx, "unsub@example.com"), reputation.ErrNotFound)
	for i := range 25 {
		require.NoError(t, e.tr.Suppress(ctx, reputation.Suppression{Address: fmt.Sprintf("u%02d@example.com", i), Reason: reputation.ReasonManual}))
	}
	var all []string
	after := ""
	for {
		page, err := e.tr.Suppressions(ctx, &reputation.ListOptions{After: after, Limit: 10})
		require.NoError(t, err)
		for _, s := range page {
			all = append(all, s.Address)
		}
		if len(page) < 10 {
			break
		}
		after = page[len(page)-1].Address
	}
	require.Len(t, all, 25, "paging visits every entry once")
	require.Equal(t, "u00@example.com", all[0])
	require.Equal(t, "u24@example.com", all[24])
	require.ErrorIs(t, e.tr.Suppress(ctx, reputation.Suppression{Address: "nope", Reason: reputation.ReasonManual}), reputation.ErrInvalidAddress)
}

func testHardBounce(t *testing.T, b reputation.Backend) {
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.1"})})
	e.record(reputation.Outcome{IP: "192.0.2.1", Recipient: "Jane.Doe+news@googlemail.com", Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1", Text: "The email account that you tried to reach does not exist"})
	for _, v := range []string{"janedoe@gmail.com", "JANE.DOE@gmail.com", "j.a.n.e.d.o.e+x@googlemail.com"} {
		d := e.decide(v)
		require.False(t, d.Allow, "%s is the hard-bounced Gmail mailbox", v)
		require.Equal(t, "suppressed: hard-bounce", d.Reason)
	}
	s, err := e.tr.Suppressed(e.ctx, "janedoe@gmail.com")
	require.NoError(t, err)
	require.Contains(t, s.Detail, "5.1.1", "the entry keeps the bounce code")
	require.True(t, s.Expires.IsZero(), "hard-bounce entries do not expire by default")
	e.record(reputation.Outcome{IP: "192.0.2.1", Recipient: "blocked@example.com", Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.7.1", Text: "Service unavailable, client host blocked using Spamhaus"})
	require.True(t, e.decide("blocked@example.com").Allow, "a block of the sender is not about the address: no suppression")
	e.record(reputation.Outcome{Recipient: "nodomain@example.org", Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.2"})
	require.False(t, e.decide("nodomain@example.org").Allow, "5.1.2 (bad domain) suppresses")
	e.record(reputation.Outcome{IP: "192.0.2.1", Recipient: "angry@example.com", Kind: reputation.KindComplaint})
	s, err = e.tr.Suppressed(e.ctx, "angry@example.com")
	require.NoError(t, err, "a complaint suppresses")
	require.Equal(t, reputation.ReasonComplaint, s.Reason)
	e.record(reputation.Outcome{IP: "192.0.2.1", Recipient: "judged@example.com", Kind: reputation.KindHardBounce})
	require.False(t, e.decide("judged@example.com").Allow, "a hard bounce without code is taken as the caller's verdict")
	require.ErrorIs(t, e.tr.Record(e.ctx, reputation.Outcome{Recipient: "a@example.com"}), reputation.ErrInvalid, "the zero Kind is invalid")
}

func testSoftBounces(t *testing.T, b reputation.Backend) {
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.1"})})
	soft := func(addr string) {
		e.record(reputation.Outcome{IP: "192.0.2.1", Recipient: addr, Kind: reputation.KindSoftBounce, Code: 452, Enhanced: "4.2.2", Text: "mailbox full"})
	}
	suppressed := func(addr string) bool {
		_, err := e.tr.Suppressed(e.ctx, addr)
		if errors.Is(err, reputation.ErrNotFound) {
			return false
		}
		require.NoError(t, err)
		return true
	}
	soft("full@example.com")
	soft("full@example.com")
	soft("reset@example.com")
	e.clock.Advance(24 * time.Hour)
	soft("full@example.com")
	soft("reset@example.com")
	require.False(t, suppressed("full@example.com"), "two days of soft bounces do not suppress (SoftBounceDays 3)")
	e.record(reputation.Outcome{IP: "192.0.2.1", Recipient: "reset@example.com", Kind: reputation.KindDelivered})
	e.clock.Advance(24 * time.Hour)
	soft("full@example.com")
	soft("reset@example.com")
	s, err := e.tr.Suppressed(e.ctx, "full@example.com")
	require.NoError(t, err, "soft bounces on three days suppress")
	require.Equal(t, reputation.ReasonSoftBounce, s.Reason)
	require.True(t, s.Expires.Equal(e.clock.Now().Add(30*24*time.Hour)), "soft-bounce entries expire after 30 days")
	require.False(t, suppressed("reset@example.com"), "a delivery resets the soft-bounce days")
	soft("late@example.com")
	e.clock.Advance(15 * 24 * time.Hour)
	soft("late@example.com")
	e.clock.Advance(24 * time.Hour)
	soft("late@example.com")
	require.False(t, suppressed("late@example.com"), "soft bounces older than SoftBounceWindow are forgotten")
}

// testWarmupWeeks runs a warming IP through simulated weeks: every day it
// sends until Decide refuses, and the day's outcomes decide the next
// day's cap.
func testWarmupWeeks(t *testing.T, b reputation.Backend) {
	sched := []int64{5, 10, 15, 20, 30, 40, 50, 60}
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.9", Warmup: true}), Warmup: sched, MinVolume: 100000})
	type day struct {
		deferPct, hardPct int
		wantStage         int // stage the day runs at
	}
	days := []day{
		{0, 0, 0}, {0, 0, 1}, {30, 0, 2}, // a day of deferrals holds
		{0, 0, 2}, {0, 0, 3}, {0, 10, 4}, // a day of hard bounces steps back
		{0, 0, 3}, {0, 0, 4}, {0, 0, 5}, {0, 0, 6}, {0, 0, 7},
	}
	rcpt := 0
	for i, dy := range days {
		st := e.status("192.0.2.9", "google")
		require.Equal(t, reputation.StateWarming, st.State, "day %d: still warming", i)
		require.Equal(t, dy.wantStage, st.Stage, "day %d: warm-up stage", i)
		require.Equal(t, sched[dy.wantStage], st.DailyCap)
		sent := 0
		var last reputation.Decision
		for {
			last = e.decide(fmt.Sprintf("user%d@gmail.com", rcpt))
			if !last.Allow {
				break
			}
			require.Equal(t, "192.0.2.9", last.IP)
			sent++
			rcpt++
			require.LessOrEqual(t, int64(sent), sched[dy.wantStage], "day %d: Decide must not pass the daily cap", i)
		}
		require.EqualValues(t, sched[dy.wantStage], sent, "day %d: the IP sends exactly its cap", i)
		require.Equal(t, "warm-up cap reached", last.Reason)
		nextDay := e.clock.Now().Truncate(24 * time.Hour).Add(24 * time.Hour)
		require.Equal(t, nextDay.Sub(e.clock.Now()), last.RetryAfter, "a capped IP can send again at the next UTC day")
		defers, hards := sent*dy.deferPct/100, sent*dy.hardPct/100
		for j := range sent {
			o := reputation.Outcome{IP: "192.0.2.9", Recipient: fmt.Sprintf("user%d@gmail.com", rcpt-sent+j), Kind: reputation.KindDelivered}
			switch {
			case j < defers:
				o.Kind, o.Code, o.Enhanced = reputation.KindDeferred, 421, "4.7.0"
			case j < defers+hards:
				o.Kind, o.Code, o.Enhanced = reputation.KindHardBounce, 550, "5.1.1"
			}
			if j < defers { // deferred messages are delivered on retry
				e.record(o)
				o.Kind, o.Code, o.Enhanced = reputation.KindDelivered, 250, ""
			}
			e.record(o)
		}
		require.True(t, e.status("192.0.2.9", "microsoft").Warming, "warm-up is per provider: other providers are untouched")
		e.clock.Advance(24 * time.Hour)
	}
	st := e.status("192.0.2.9", "google")
	require.Equal(t, reputation.StateActive, st.State, "after the last stage the IP graduates")
	require.False(t, st.Warming)
	allowed := 0
	for i := range 200 {
		if e.decide(fmt.Sprintf("grad%d@gmail.com", i)).Allow {
			allowed++
		}
	}
	require.Equal(t, 200, allowed, "an active IP has no daily cap")
	ms := e.status("192.0.2.9", "microsoft")
	require.Equal(t, 0, ms.Stage, "an idle provider holds at its stage")
}

func testWarmupCapConcurrent(t *testing.T, b reputation.Backend) {
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.9", Warmup: true}), Warmup: []int64{50, 100}})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 10 {
				d, err := e.tr.Decide(e.ctx, reputation.Send{To: fmt.Sprintf("g%d-%d@gmail.com", g, i), Class: reputation.ClassBulk})
				if !assert.NoError(t, err) {
					return
				}
				if d.Allow {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 50, allowed.Load(), "16 goroutines together send exactly the daily cap")
}

func testPauseComplaints(t *testing.T, b reputation.Backend) {
	a, c := reputation.IP{Addr: "192.0.2.1"}, reputation.IP{Addr: "192.0.2.2"}
	e := newEnv(t, b, reputation.Options{Pools: pool(a, c)})
	// Recipients spread over both IPs.
	byIP := map[string][]string{}
	for i := range 200 {
		to := fmt.Sprintf("r%d@gmail.com", i)
		d := e.decide(to)
		require.True(t, d.Allow)
		byIP[d.IP] = append(byIP[d.IP], to)
	}
	require.NotEmpty(t, byIP[a.Addr], "rendezvous hashing gives both IPs recipients")
	require.NotEmpty(t, byIP[c.Addr])
	for i := range 1000 {
		e.record(reputation.Outcome{IP: a.Addr, Recipient: fmt.Sprintf("d%d@gmail.com", i), Kind: reputation.KindDelivered})
	}
	for i := range 3 {
		e.record(reputation.Outcome{IP: a.Addr, Recipient: fmt.Sprintf("c%d@gmail.com", i), Kind: reputation.KindComplaint})
	}
	require.Equal(t, reputation.StateActive, e.status(a.Addr, "google").State, "3 complaints in 1000 (0.3%) is not above the limit")
	e.clock.Advance(time.Hour)
	e.record(reputation.Outcome{IP: a.Addr, Recipient: "c3@gmail.com", Kind: reputation.KindComplaint})
	st := e.status(a.Addr, "google")
	require.Equal(t, reputation.StatePaused, st.State, "4 complaints in 1000 (0.4%) pauses the IP")
	require.Contains(t, st.PauseReason, "complaint rate")
	require.True(t, st.PausedUntil.Equal(e.clock.Now().Add(24*time.Hour).Truncate(time.Millisecond)), "an automatic pause lasts CoolDown")
	require.Equal(t, reputation.StateActive, e.status(a.Addr, "microsoft").State, "a pause is per provider")
	require.Equal(t, reputation.StateActive, e.status(c.Addr, "google").State, "a pause is per IP")
	for _, to := range byIP[a.Addr] {
		d := e.decide(to)
		require.True(t, d.Allow, "%s: traffic moves to the healthy IP", to)
		require.Equal(t, c.Addr, d.IP)
	}
	other := 0
	for i := range 50 {
		if e.decide(fmt.Sprintf("o%d@outlook.com", i)).IP == a.Addr {
			other++
		}
	}
	require.Positive(t, other, "the paused IP still sends to other providers")
	e.clock.Advance(24 * time.Hour)
	require.Equal(t, reputation.StateActive, e.status(a.Addr, "google").State, "the pause ends after CoolDown")
	back := 0
	for _, to := range byIP[a.Addr] {
		if e.decide(to).IP == a.Addr {
			back++
		}
	}
	require.Equal(t, len(byIP[a.Addr]), back, "after the pause the IP gets its recipients back")
	for i := range 2 {
		e.record(reputation.Outcome{IP: a.Addr, Recipient: fmt.Sprintf("late%d@gmail.com", i), Kind: reputation.KindComplaint})
	}
	require.Equal(t, reputation.StateActive, e.status(a.Addr, "google").State, "rates count from the end of the pause: old complaints do not pause again")
}

func testPauseHardBounces(t *testing.T, b reputation.Backend) {
	a := reputation.IP{Addr: "192.0.2.1"}
	e := newEnv(t, b, reputation.Options{Pools: pool(a)})
	for i := range 100 {
		e.record(reputation.Outcome{IP: a.Addr, Recipient: fmt.Sprintf("d%d@outlook.com", i), Kind: reputation.KindDelivered})
	}
	for i := range 5 {
		e.record(reputation.Outcome{IP: a.Addr, Recipient: fmt.Sprintf("h%d@outlook.com", i), Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1"})
	}
	require.Equal(t, reputation.StateActive, e.status(a.Addr, "microsoft").State, "5 of 105 (4.8%) is under the limit")
	e.record(reputation.Outcome{IP: a.Addr, Recipient: "h5@outlook.com", Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1"})
	require.Equal(t, reputation.StatePaused, e.status(a.Addr, "microsoft").State, "6 of 106 (5.7%) pauses")
	d := e.decide("new@outlook.com")
	require.False(t, d.Allow, "a pool whose only IP is paused refuses")
	require.Equal(t, "paused", d.Reason)
	require.Equal(t, 24*time.Hour, d.RetryAfter, "RetryAfter is the end of the pause")
	e.clock.Advance(25 * time.Hour)
	for i := range 10 {
		e.record(reputation.Outcome{IP: a.Addr, Recipient: fmt.Sprintf("h2-%d@outlook.com", i), Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1"})
	}
	require.Equal(t, reputation.StateActive, e.status(a.Addr, "microsoft").State, "below MinVolume no rate pauses")
}

func testManualPause(t *testing.T, b reputation.Backend) {
	a := reputation.IP{Addr: "192.0.2.1"}
	e := newEnv(t, b, reputation.Options{Pools: pool(a)})
	require.NoError(t, e.tr.Pause(e.ctx, a.Addr, "google", time.Time{}, "blocklisted"))
	st := e.status(a.Addr, "google")
	require.Equal(t, reputation.StatePaused, st.State)
	require.Equal(t, "blocklisted", st.PauseReason)
	e.clock.Advance(30 * 24 * time.Hour)
	require.False(t, e.decide("a@gmail.com").Allow, "a manual pause lasts until Resume")
	require.NoError(t, e.tr.Resume(e.ctx, a.Addr, "google"))
	require.True(t, e.decide("a@gmail.com").Allow, "Resume ends the pause")
	require.NoError(t, e.tr.Resume(e.ctx, a.Addr, "google"), "resuming an active IP does nothing")
	require.NoError(t, e.tr.Pause(e.ctx, a.Addr, "google", e.clock.Now().Add(time.Hour), "maintenance"))
	require.False(t, e.decide("a@gmail.com").Allow)
	e.clock.Advance(time.Hour)
	require.True(t, e.decide("a@gmail.com").Allow, "a timed pause ends by itself")
	require.ErrorIs(t, e.tr.Pause(e.ctx, "203.0.113.1", "google", time.Time{}, ""), reputation.ErrInvalid, "an IP in no pool")
	require.NoError(t, e.tr.Close())
	_, err := e.tr.Decide(e.ctx, reputation.Send{To: "a@gmail.com"})
	require.ErrorIs(t, err, reputation.ErrClosed, "Decide after Close")
	require.ErrorIs(t, e.tr.Record(e.ctx, reputation.Outcome{Recipient: "a@gmail.com", Kind: reputation.KindDelivered}), reputation.ErrClosed)
}

// testRateLimitConcurrent has 16 goroutines ask Decide for one IP and
// provider while the clock moves in 10 ms steps; the sends allowed must
// fit the token bucket: at most rate×elapsed + burst.
func testRateLimitConcurrent(t *testing.T, b reputation.Backend) {
	const rate, burst = 50.0, 20.0
	e := newEnv(t, b, reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.1"}), Providers: []reputation.Provider{
		{Name: "google", Domains: []string{"gmail.com"}, Rate: rate, Burst: burst},
	}})
	t0 := e.clock.Now()
	const steps = 100
	step := 10 * time.Millisecond
	var calls, allowed atomic.Int64
	var done atomic.Bool
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; !done.Load(); i++ {
				d, err := e.tr.Decide(e.ctx, reputation.Send{To: fmt.Sprintf("g%d-%d@gmail.com", g, i), Class: reputation.ClassBulk})
				if !assert.NoError(t, err) {
					return
				}
				calls.Add(1)
				if d.Allow {
					allowed.Add(1)
				} else {
					assert.Equal(t, "rate limited", d.Reason)
					assert.LessOrEqual(t, d.RetryAfter, time.Duration(float64(time.Second)/rate)+time.Millisecond, "RetryAfter is at most one token's refill time")
				}
			}
		})
	}
	for range steps {
		// Let the deciders drain the bucket before time moves on.
		target := calls.Load() + 32
		for calls.Load() < target && !t.Failed() {
			runtime.Gosched()
		}
		e.clock.Advance(step)
	}
	target := calls.Load() + 32
	for calls.Load() < target && !t.Failed() {
		runtime.Gosched()
	}
	done.Store(true)
	wg.Wait()
	elapsed := e.clock.Now().Sub(t0).Seconds()
	limit := rate*elapsed + burst
	require.LessOrEqual(t, float64(allowed.Load()), limit, "allowed sends must not pass rate×elapsed+burst (%d calls)", calls.Load())
	require.GreaterOrEqual(t, float64(allowed.Load()), 0.9*limit, "the bucket must not refuse sends it has tokens for (%d calls)", calls.Load())
}

// testShared runs two Trackers, as on two sending machines, over one
// backend: they share buckets, caps, pauses and suppressions.
func testShared(t *testing.T, b reputation.Backend) {
	o := reputation.Options{Pools: pool(reputation.IP{Addr: "192.0.2.1"}, reputation.IP{Addr: "192.0.2.2", Warmup: true}),
		Warmup: []int64{3}, Providers: []reputation.Provider{{Name: "google", Domains: []string{"gmail.com"}, Rate: 0.001, Burst: 4}}}
	e1 := newEnv(t, b, o)
	o.Now, o.Resolver = e1.clock.Now, e1.res
	tr2, err := reputation.New(b, &o)
	require.NoError(t, err)
	e2 := &env{t: t, ctx: e1.ctx, clock: e1.clock, res: e1.res, tr: tr2}
	allowed := map[string]int{}
	for i := range 20 {
		e := e1
		if i%2 == 1 {
			e = e2
		}
		if d := e.decide(fmt.Sprintf("s%d@gmail.com", i)); d.Allow {
			allowed[d.IP]++
		}
	}
	require.Equal(t, 4, allowed["192.0.2.1"], "two Trackers share one token bucket per (IP, provider)")
	require.Equal(t, 3, allowed["192.0.2.2"], "two Trackers share one warm-up cap")
	require.NoError(t, e1.tr.Pause(e1.ctx, "192.0.2.1", "google", time.Time{}, "manual"))
	require.Equal(t, reputation.StatePaused, e2.status("192.0.2.1", "google").State, "a pause by one Tracker applies to the other")
	e1.record(reputation.Outcome{Recipient: "gone@gmail.com", Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1"})
	require.Equal(t, "suppressed: hard-bounce", e2.decide("gone@gmail.com").Reason, "a suppression by one Tracker applies to the other")
}
