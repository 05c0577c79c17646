// Package queuetest is the conformance suite for [queue.Backend]
// implementations: every backend's tests call [Run], and so can users with
// backends of their own.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/queue"
)

// Options declares what the backend under test can do, so that the suite
// checks every guarantee the backend gives and records, by skipping with
// a message, each one it does not. A nil *Options means a backend with
// every guarantee and a clock the suite controls.
type Options struct {
	// RealClock means the backend ignores the now function passed to
	// newBackend (lease expiry runs on a server's clock): the suite then
	// uses short leases and polls instead of advancing a fake clock. The
	// default is false.
	RealClock bool
	// NoFencing means a stale lease holder's Ack or Nack may succeed after
	// the job was leased again; the suite skips the stale-ack rules. The
	// default is false.
	NoFencing bool
	// NoPriority means ready jobs are leased in enqueue order regardless of
	// Priority. The default is false.
	NoPriority bool
	// ApproxNotBefore means NotBefore delays the job but a deferred
	// delivery may count as an attempt. The default is false.
	ApproxNotBefore bool
	// FixedTTL means leases last a TTL configured in the backend whatever
	// Lease and Extend ask for; set TTL to it. The default is false.
	FixedTTL bool
	// ApproxStats means Stats counts may lag or merge states; the suite
	// checks only the Dead count. The default is false.
	ApproxStats bool
	// Jobs is the number of jobs of the concurrency test. The default is
	// 10000.
	Jobs int
	// TTL is the lease used where the suite waits for expiry on a real
	// clock. The default is 1 second.
	TTL time.Duration
}

// Clock is a fake clock the suite passes, as its Now method, to backends
// that take one. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one subtest's queue and clock.
type env struct {
	t     *testing.T
	q     *queue.Queue
	clock *Clock
	opts  Options
	ctx   context.Context
}

// Run runs the conformance suite. newBackend returns a fresh, empty
// backend for each subtest, taking lease expiry and delays from now unless
// opts.RealClock is set; the suite closes it.
func Run(t *testing.T, newBackend func(t *testing.T, now func() time.Time) queue.Backend, opts *Options) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Jobs <= 0 {
		o.Jobs = 10000
	}
	if o.TTL <= 0 {
		o.TTL = time.Second
	}
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"EnqueueLeaseAck", testEnqueueLeaseAck},
		{"FIFO", testFIFO},
		{"Priority", testPriority},
		{"Topics", testTopics},
		{"LeaseExpiry", testLeaseExpiry},
		{"StaleLease", testStaleLease},
		{"ExpiredLease", testExpiredLease},
		{"Extend", testExtend},
		{"IdempotentKey", testIdempotentKey},
		{"NotBefore", testNotBefore},
		{"NackRetryAfter", testNackRetryAfter},
		{"DeadLetters", testDeadLetters},
		{"ExpiredLastAttempt", testExpiredLastAttempt},
		{"LongPoll", testLongPoll},
		{"Stats", testStats},
		{"Concurrent", testConcurrent},
		{"Worker", testWorker},
		{"WorkerStop", testWorkerStop},
		{"Invalid", testInvalid},
		{"BackendInput", testBackendInput},
		{"Closed", testClosed},
		{"OpaqueValues", testOpaque},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			now := c.Now
			if o.RealClock {
				now = time.Now
			}
			b := newBackend(t, now)
			q := queue.New(b, nil)
			t.Cleanup(func() { q.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			t.Cleanup(cancel)
			tc.fn(&env{t: t, q: q, clock: c, opts: o, ctx: ctx})
		})
	}
}

func (e *env) now() time.Time {
	if e.opts.RealClock {
		return time.Now()
	}
	return e.clock.Now()
}

// ttl is the lease for tests that let leases expire.
func (e *env) ttl() time.Duration {
	if e.opts.RealClock {
		return e.opts.TTL
	}
	return time.Minute
}

// pass lets d go by on the fake clock; on a real one the caller polls.
func (e *env) pass(d time.Duration) {
	if !e.opts.RealClock {
		e.clock.Advance(d)
	}
}

// sleep lets d go by: on the fake clock at once, on a real one by waiting
// (only where the suite must check that nothing happens meanwhile).
func (e *env) sleep(d time.Duration) {
	if !e.opts.RealClock {
		e.clock.Advance(d)
		return
	}
	time.Sleep(d)
}

func (e *env) enqueue(topic, payload string, o *queue.EnqueueOptions) string {
	e.t.Helper()
	id, err := e.q.Enqueue(e.ctx, topic, []byte(payload), o)
	require.NoError(e.t, err, "Enqueue must succeed")
	require.NotEmpty(e.t, id, "Enqueue must return a job ID")
	return id
}

func (e *env) lease(topic string, n int, ttl time.Duration) []queue.Job {
	e.t.Helper()
	jobs, err := e.q.Lease(e.ctx, topic, n, ttl, nil)
	require.NoError(e.t, err, "Lease must succeed")
	require.LessOrEqual(e.t, len(jobs), n, "Lease must return at most n jobs")
	return jobs
}

// leaseEventually leases until a job comes back, after d has passed.
func (e *env) leaseEventually(topic string, n int, ttl, d time.Duration) []queue.Job {
	e.t.Helper()
	if !e.opts.RealClock {
		e.clock.Advance(d)
		jobs := e.lease(topic, n, ttl)
		require.NotEmpty(e.t, jobs, "a job must be leasable once %v has passed", d)
		return jobs
	}
	var jobs []queue.Job
	require.Eventually(e.t, func() bool {
		js, err := e.q.Lease(e.ctx, topic, n, ttl, nil)
		require.NoError(e.t, err)
		jobs = js
		return len(js) > 0
	}, d+15*time.Second, 20*time.Millisecond, "a job must be leasable once %v has passed", d)
	return jobs
}

func (e *env) ack(j queue.Job) {
	e.t.Helper()
	require.NoError(e.t, e.q.Ack(e.ctx, j), "Ack by the current lease holder must succeed")
}

func topicName(t *testing.T) string {
	return fmt.Sprintf("t%d", rand.IntN(1e9))
}

func testEnqueueLeaseAck(e *env) {
	t := e.t
	topic := topicName(t)
	start := e.now()
	ids := map[string]string{}
	for i := range 3 {
		p := fmt.Sprintf("payload %d", i)
		ids[e.enqueue(topic, p, nil)] = p
	}
	require.Len(t, ids, 3, "Enqueue must return distinct IDs")
	jobs := e.lease(topic, 10, time.Minute)
	require.Len(t, jobs, 3, "Lease must return every ready job up to n")
	for _, j := range jobs {
		require.Equal(t, ids[j.ID], string(j.Payload), "a leased job must carry its enqueued payload")
		require.Equal(t, topic, j.Topic)
		require.Equal(t, 1, j.Attempt, "the first lease of a job is attempt 1")
		require.Equal(t, 25, j.MaxAttempts, "MaxAttempts defaults to the Queue's")
		require.NotZero(t, j.Token, "a lease must carry a fencing token")
		require.True(t, j.LeaseUntil.After(start), "LeaseUntil must be in the future")
	}
	require.Empty(t, e.lease(topic, 10, time.Minute), "leased jobs must not be leased again before their lease expires")
	for _, j := range jobs {
		e.ack(j)
	}
	if !e.opts.NoFencing {
		require.ErrorIs(t, e.q.Ack(e.ctx, jobs[0]), queue.ErrLeaseLost, "a second Ack of a job must fail with ErrLeaseLost")
	}
	e.pass(2 * time.Minute)
	require.Empty(t, e.lease(topic, 10, time.Minute), "an acknowledged job must never come back")
}

func testFIFO(e *env) {
	topic := topicName(e.t)
	var ids []string
	for i := range 5 {
		ids = append(ids, e.enqueue(topic, fmt.Sprint(i), nil))
	}
	for i := range 5 {
		jobs := e.lease(topic, 1, time.Minute)
		require.Len(e.t, jobs, 1)
		require.Equal(e.t, ids[i], jobs[0].ID, "jobs of one priority must be leased in enqueue order")
	}
}

func testPriority(e *env) {
	if e.opts.NoPriority {
		e.t.Skip("backend declares NoPriority: jobs are leased in enqueue order")
	}
	topic := topicName(e.t)
	low := e.enqueue(topic, "low", &queue.EnqueueOptions{Priority: -1})
	mid := e.enqueue(topic, "mid", nil)
	high := e.enqueue(topic, "high", &queue.EnqueueOptions{Priority: 5})
	high2 := e.enqueue(topic, "high2", &queue.EnqueueOptions{Priority: 5})
	for _, want := range []string{high, high2, mid, low} {
		jobs := e.lease(topic, 1, time.Minute)
		require.Len(e.t, jobs, 1)
		require.Equal(e.t, want, jobs[0].ID, "higher priorities must be leased first, FIFO within one")
	}
}

func testTopics(e *env) {
	a, b := topicName(e.t), topicName(e.t)
	e.enqueue(a, "x", nil)
	require.Empty(e.t, e.lease(b, 10, time.Minute), "a Lease must not return another topic's jobs")
	require.Len(e.t, e.lease(a, 10, time.Minute), 1)
}

func testLeaseExpiry(e *env) {
	t := e.t
	topic := topicName(t)
	id := e.enqueue(topic, "x", nil)
	first := e.lease(topic, 1, e.ttl())
	require.Len(t, first, 1)
	again := e.leaseEventually(topic, 1, time.Minute, e.ttl()+time.Second)
	require.Equal(t, id, again[0].ID, "a job whose lease expired must be leasable again")
	require.Equal(t, 2, again[0].Attempt, "a redelivery after lease expiry is the next attempt")
	require.Equal(t, "x", string(again[0].Payload))
	require.Greater(t, again[0].Token, first[0].Token, "every lease must get a greater fencing token")
	e.ack(again[0])
}

func testStaleLease(e *env) {
	if e.opts.NoFencing {
		e.t.Skip("backend declares NoFencing: a stale holder's Ack is not refused")
	}
	t := e.t
	topic := topicName(t)
	e.enqueue(topic, "x", nil)
	old := e.lease(topic, 1, e.ttl())[0]
	cur := e.leaseEventually(topic, 1, time.Minute, e.ttl()+time.Second)[0]
	require.ErrorIs(t, e.q.Ack(e.ctx, old), queue.ErrLeaseLost, "Ack with a lease that was taken over must fail with ErrLeaseLost")
	require.ErrorIs(t, e.q.Nack(e.ctx, old, 0, errors.New("x")), queue.ErrLeaseLost, "Nack with a stale lease must fail with ErrLeaseLost")
	_, err := e.q.Extend(e.ctx, old, time.Minute)
	require.ErrorIs(t, err, queue.ErrLeaseLost, "Extend with a stale lease must fail with ErrLeaseLost")
	e.ack(cur)
}

func testExtend(e *env) {
	t := e.t
	topic := topicName(t)
	e.enqueue(topic, "x", nil)
	ttl := e.ttl()
	j := e.lease(topic, 1, ttl)[0]
	e.sleep(ttl * 6 / 10)
	j2, err := e.q.Extend(e.ctx, j, ttl)
	require.NoError(t, err, "Extend by the holder must succeed")
	require.True(t, j2.LeaseUntil.After(j.LeaseUntil), "Extend must move LeaseUntil forward")
	e.sleep(ttl * 6 / 10)
	require.Empty(t, e.lease(topic, 1, time.Minute), "an extended lease must not expire at its original time")
	e.ack(j2)
}

func testIdempotentKey(e *env) {
	t := e.t
	topic, other := topicName(t), topicName(t)
	id := e.enqueue(topic, "first", &queue.EnqueueOptions{Key: "k1"})
	require.Equal(t, id, e.enqueue(topic, "second", &queue.EnqueueOptions{Key: "k1"}), "a repeated Key must return the first job's ID")
	require.NotEqual(t, id, e.enqueue(topic, "other", &queue.EnqueueOptions{Key: "k2"}), "distinct keys are distinct jobs")
	e.enqueue(other, "elsewhere", &queue.EnqueueOptions{Key: "k1"})
	jobs := e.lease(topic, 10, time.Minute)
	require.Len(t, jobs, 2, "a deduplicated enqueue must add no job")
	for _, j := range jobs {
		if j.ID == id {
			require.Equal(t, "first", string(j.Payload), "deduplication keeps the first payload")
			require.Equal(t, "k1", j.Key)
		}
		e.ack(j)
	}
	require.Equal(t, id, e.enqueue(topic, "third", &queue.EnqueueOptions{Key: "k1"}), "a recently completed Key must still return the first job's ID")
	require.Empty(t, e.lease(topic, 10, time.Minute), "an enqueue deduplicated against a completed job adds nothing")
}

func testNotBefore(e *env) {
	t := e.t
	topic := topicName(t)
	delay := 10 * time.Minute
	if e.opts.RealClock {
		delay = 2 * time.Second
	}
	nb := e.now().Add(delay)
	id := e.enqueue(topic, "later", &queue.EnqueueOptions{NotBefore: nb})
	require.Empty(t, e.lease(topic, 1, time.Minute), "a job must not be leased before its NotBefore")
	if !e.opts.ApproxStats {
		s, err := e.q.Stats(e.ctx, topic)
		require.NoError(t, err)
		require.Equal(t, int64(1), s.Delayed, "Stats must count a job before its NotBefore as delayed")
	}
	jobs := e.leaseEventually(topic, 1, time.Minute, delay)
	require.Equal(t, id, jobs[0].ID)
	require.False(t, e.now().Before(nb), "a job must be leased only once its NotBefore has passed")
	if !e.opts.ApproxNotBefore {
		require.Equal(t, 1, jobs[0].Attempt, "waiting for NotBefore is not an attempt")
	}
}

func testNackRetryAfter(e *env) {
	t := e.t
	topic := topicName(t)
	e.enqueue(topic, "x", nil)
	j := e.lease(topic, 1, time.Minute)[0]
	retry := 5 * time.Minute
	if e.opts.RealClock {
		retry = 2 * time.Second
	}
	require.NoError(t, e.q.Nack(e.ctx, j, retry, errors.New("temporary failure")))
	require.Empty(t, e.lease(topic, 1, time.Minute), "a nacked job must wait retryAfter")
	j2 := e.leaseEventually(topic, 1, time.Minute, retry)[0]
	require.Equal(t, j.ID, j2.ID)
	require.Equal(t, 2, j2.Attempt, "a retry after Nack is the next attempt")
	require.Equal(t, "temporary failure", j2.LastError, "the retried job carries its last error")
	if !e.opts.NoFencing {
		require.ErrorIs(t, e.q.Ack(e.ctx, j), queue.ErrLeaseLost, "the nacked lease is over")
	}
	e.ack(j2)
}

func testDeadLetters(e *env) {
	t := e.t
	topic := topicName(t)
	id := e.enqueue(topic, "doomed", &queue.EnqueueOptions{MaxAttempts: 2})
	j := e.lease(topic, 1, time.Minute)[0]
	require.Equal(t, 2, j.MaxAttempts)
	require.NoError(t, e.q.Nack(e.ctx, j, 0, errors.New("e1")))
	j = e.leaseEventually(topic, 1, time.Minute, 0)[0]
	require.Equal(t, 2, j.Attempt)
	require.NoError(t, e.q.Nack(e.ctx, j, 0, errors.New("e2")))
	require.Empty(t, e.lease(topic, 1, time.Minute), "a job that failed MaxAttempts times must not be leased")
	var dead []queue.Job
	require.Eventually(t, func() bool {
		d, err := e.q.Dead(e.ctx, topic, 10)
		require.NoError(t, err)
		dead = d
		return len(d) == 1
	}, 10*time.Second, 20*time.Millisecond, "a job that failed MaxAttempts times must be a dead letter")
	require.Equal(t, id, dead[0].ID)
	require.Equal(t, "e2", dead[0].LastError, "a dead letter keeps its last error")
	require.Equal(t, "doomed", string(dead[0].Payload))
	s, err := e.q.Stats(e.ctx, topic)
	require.NoError(t, err)
	require.Equal(t, int64(1), s.Dead, "Stats must count dead letters")
	require.ErrorIs(t, e.q.Requeue(e.ctx, topic, "no-such-job"), queue.ErrNotFound, "Requeue of an unknown job must fail with ErrNotFound")
	require.NoError(t, e.q.Requeue(e.ctx, topic, id), "Requeue of a dead letter must succeed")
	j = e.leaseEventually(topic, 1, time.Minute, 0)[0]
	require.Equal(t, id, j.ID, "a requeued dead letter must be leasable")
	require.Equal(t, 1, j.Attempt, "Requeue resets the attempts")
	require.Equal(t, "doomed", string(j.Payload))
	d, err := e.q.Dead(e.ctx, topic, 10)
	require.NoError(t, err)
	require.Empty(t, d, "a requeued job is no longer a dead letter")
	e.ack(j)
}

func testExpiredLastAttempt(e *env) {
	t := e.t
	topic := topicName(t)
	id := e.enqueue(topic, "x", &queue.EnqueueOptions{MaxAttempts: 1})
	e.lease(topic, 1, e.ttl())
	e.pass(e.ttl() + time.Second)
	require.Eventually(t, func() bool {
		jobs, err := e.q.Lease(e.ctx, topic, 1, time.Minute, nil)
		require.NoError(t, err)
		require.Empty(t, jobs, "a job whose last attempt's lease expired must not be leased again")
		d, err := e.q.Dead(e.ctx, topic, 10)
		require.NoError(t, err)
		return len(d) == 1 && d[0].ID == id
	}, 20*time.Second, 50*time.Millisecond, "a job whose last attempt's lease expired must become a dead letter")
}

func testLongPoll(e *env) {
	t := e.t
	topic := topicName(t)
	start := time.Now()
	jobs, err := e.q.Lease(e.ctx, topic, 1, time.Minute, &queue.LeaseOptions{Wait: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, jobs)
	require.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "Lease with Wait must wait when nothing is ready")

	got := make(chan []queue.Job, 1)
	go func() {
		jobs, err := e.q.Lease(e.ctx, topic, 1, time.Minute, &queue.LeaseOptions{Wait: 30 * time.Second})
		assert.NoError(t, err)
		got <- jobs
	}()
	time.Sleep(100 * time.Millisecond) // let the Lease start waiting; the test passes either way
	start = time.Now()
	id := e.enqueue(topic, "wake", nil)
	select {
	case jobs := <-got:
		require.Len(t, jobs, 1, "a waiting Lease must return the job enqueued meanwhile")
		require.Equal(t, id, jobs[0].ID)
		require.Less(t, time.Since(start), 10*time.Second, "a waiting Lease must wake on enqueue, not at its deadline")
	case <-time.After(20 * time.Second):
		t.Fatal("a waiting Lease must wake when a job is enqueued")
	}
}

func testStats(e *env) {
	if e.opts.ApproxStats {
		e.t.Skip("backend declares ApproxStats")
	}
	t := e.t
	topic := topicName(t)
	for range 3 {
		e.enqueue(topic, "x", nil)
	}
	e.enqueue(topic, "later", &queue.EnqueueOptions{NotBefore: e.now().Add(time.Hour)})
	e.lease(topic, 1, time.Hour)
	s, err := e.q.Stats(e.ctx, topic)
	require.NoError(t, err)
	require.Equal(t, queue.Stats{Ready: 2, Leased: 1, Delayed: 1}, s, "Stats must count ready, leased and delayed jobs")
}

func testConcurrent(e *env) {
	t := e.t
	topic := topicName(t)
	n := e.opts.Jobs
	var mu sync.Mutex
	enqueued := map[string]bool{}
	var wg sync.WaitGroup
	const producers = 8
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < n; i += producers {
				id, err := e.q.Enqueue(e.ctx, topic, fmt.Appendf(nil, "job %d", i), nil)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				enqueued[id] = true
				mu.Unlock()
			}
		}()
	}
	acked := map[string]int{}
	var total atomic.Int64
	var dups atomic.Int64
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var cw sync.WaitGroup
	for range 16 {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for ctx.Err() == nil {
				jobs, err := e.q.Lease(ctx, topic, 8, 5*time.Minute, &queue.LeaseOptions{Wait: 200 * time.Millisecond})
				if ctx.Err() != nil {
					return
				}
				if !assert.NoError(t, err) {
					return
				}
				for _, j := range jobs {
					if !assert.NoError(t, e.q.Ack(ctx, j), "Ack by the current holder must succeed") {
						return
					}
					mu.Lock()
					acked[j.ID]++
					if acked[j.ID] > 1 {
						dups.Add(1)
					}
					mu.Unlock()
					if total.Add(1) == int64(n) {
						cancel()
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Minute):
	}
	cancel()
	cw.Wait()
	require.Len(t, enqueued, n, "every Enqueue must return a distinct ID")
	require.Zero(t, dups.Load(), "no job may be acknowledged twice")
	require.Len(t, acked, n, "every enqueued job must be leased and acknowledged")
	for id := range enqueued {
		require.Equal(t, 1, acked[id], "job %s must be acknowledged exactly once", id)
	}
}

func testWorker(e *env) {
	t := e.t
	topic := topicName(t)
	var mu sync.Mutex
	attempts := map[string][]int{}
	done := make(chan string, 10)
	h := queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		mu.Lock()
		attempts[j.ID] = append(attempts[j.ID], j.Attempt)
		mu.Unlock()
		require.NotZero(t, j.Token, "the handler must see the fencing token")
		switch string(j.Payload) {
		case "flaky":
			if j.Attempt == 1 {
				return errors.New("first attempt fails")
			}
			if j.Attempt == 2 {
				panic("second attempt panics")
			}
		case "hopeless":
			return errors.New("always fails")
		}
		done <- j.ID
		return nil
	})
	w := queue.NewWorker(e.q, topic, h, &queue.WorkerOptions{
		Concurrency: 3, LeaseTTL: 5 * time.Second, PollWait: 100 * time.Millisecond,
		Backoff: queue.Schedule{0},
	})
	flaky := e.enqueue(topic, "flaky", nil)
	fine := e.enqueue(topic, "fine", nil)
	hopeless := e.enqueue(topic, "hopeless", &queue.EnqueueOptions{MaxAttempts: 2})
	ctx, cancel := context.WithCancel(e.ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	finished := map[string]bool{}
	for len(finished) < 2 {
		select {
		case id := <-done:
			finished[id] = true
		case <-time.After(30 * time.Second):
			t.Fatal("the worker must finish the jobs")
		}
	}
	require.Eventually(t, func() bool {
		d, err := e.q.Dead(e.ctx, topic, 10)
		require.NoError(t, err)
		return len(d) == 1 && d[0].ID == hopeless && d[0].LastError == "always fails"
	}, 30*time.Second, 20*time.Millisecond, "a job failing MaxAttempts times under a Worker must become a dead letter")
	cancel()
	require.NoError(t, <-runErr, "Run must return nil after a graceful stop")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1, 2, 3}, attempts[flaky], "an error and a panic must each fail an attempt and be retried")
	require.Equal(t, []int{1}, attempts[fine])
	require.Equal(t, []int{1, 2}, attempts[hopeless])
	require.True(t, finished[flaky] && finished[fine])
}

func testWorkerStop(e *env) {
	t := e.t
	topic := topicName(t)
	started := make(chan queue.Job, 1)
	h := queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		started <- j
		<-ctx.Done() // a handler that only stops when told to
		return ctx.Err()
	})
	w := queue.NewWorker(e.q, topic, h, &queue.WorkerOptions{
		Concurrency: 1, LeaseTTL: time.Hour, PollWait: 50 * time.Millisecond, StopGrace: 50 * time.Millisecond,
	})
	id := e.enqueue(topic, "x", nil)
	ctx, cancel := context.WithCancel(e.ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	select {
	case j := <-started:
		require.Equal(t, id, j.ID)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker must start the job")
	}
	cancel()
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run must return after StopGrace when a handler does not finish")
	}
	jobs := e.leaseEventually(topic, 1, time.Minute, 0)
	require.Equal(t, id, jobs[0].ID, "a stopped worker must release its unfinished job at once")
	require.Equal(t, 2, jobs[0].Attempt)
}

func testInvalid(e *env) {
	t := e.t
	for _, topic := range []string{"", "a b", "a.b", "a/b", string(make([]byte, 65))} {
		_, err := e.q.Enqueue(e.ctx, topic, nil, nil)
		require.ErrorIs(t, err, queue.ErrInvalid, "topic %q must be rejected", topic)
	}
	_, err := e.q.Lease(e.ctx, "ok", 0, time.Minute, nil)
	require.ErrorIs(t, err, queue.ErrInvalid, "Lease of 0 jobs must be rejected")
	_, err = e.q.Lease(e.ctx, "ok", 1, 0, nil)
	require.ErrorIs(t, err, queue.ErrInvalid, "a zero lease must be rejected")
	_, err = e.q.Enqueue(e.ctx, "ok", make([]byte, 1<<20), nil)
	require.ErrorIs(t, err, queue.ErrInvalid, "an oversized payload must be rejected")
}

func testClosed(e *env) {
	t := e.t
	require.NoError(t, e.q.Close())
	require.NoError(t, e.q.Close(), "Close must be idempotent")
	_, err := e.q.Enqueue(e.ctx, "ok", nil, nil)
	require.ErrorIs(t, err, queue.ErrClosed)
	_, err = e.q.Lease(e.ctx, "ok", 1, time.Minute, nil)
	require.ErrorIs(t, err, queue.ErrClosed)
}
