package queuetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/queue"
)

// InvalidTopics returns topics a backend must reject with an error
// matching [queue.ErrInvalid], as [queue.ValidTopic] does: empty, too
// long, and with bytes outside [A-Za-z0-9_-], among them NUL, CR and LF,
// some shaped to reach topic "v"'s keys under a layout that ended a topic
// with 0x00.
func InvalidTopics() []string {
	return []string{"", strings.Repeat("t", queue.MaxTopicLen+1), "v\x00", "v\x00R", "v\x00L", "v\x00K",
		"a\rb", "a\nb", "a b", "a.b", "a/b", "v*", "v%"}
}

// testBackendInput calls the backend directly, past [queue.Queue]'s
// checks, with invalid topics and arguments: each call must fail with
// ErrInvalid as the Queue's would, and topic "v", written first, must be
// unchanged afterwards.
func testBackendInput(e *env) {
	t := e.t
	b := e.q.Backend()
	const victim = "v"
	id := e.enqueue(victim, "victim", nil)
	opts := queue.EnqueueOptions{MaxAttempts: 3}
	job := queue.Job{ID: id, Token: 1, Attempt: 1, MaxAttempts: 3}

	for _, topic := range InvalidTopics() {
		j := job
		j.Topic = topic
		calls := map[string]func() error{
			"Enqueue": func() error { _, err := b.Enqueue(e.ctx, topic, []byte("x"), opts); return err },
			"Lease":   func() error { _, err := b.Lease(e.ctx, topic, 1, time.Minute, 0); return err },
			"Ack":     func() error { return b.Ack(e.ctx, j) },
			"Nack":    func() error { return b.Nack(e.ctx, j, 0, "x") },
			"Extend":  func() error { _, err := b.Extend(e.ctx, j, time.Minute); return err },
			"Dead":    func() error { _, err := b.Dead(e.ctx, topic, 10); return err },
			"Requeue": func() error { return b.Requeue(e.ctx, topic, id) },
			"Stats":   func() error { _, err := b.Stats(e.ctx, topic); return err },
		}
		for name, call := range calls {
			assert.ErrorIs(t, safely(call), queue.ErrInvalid, "Backend.%s with invalid topic %q must fail with queue.ErrInvalid", name, topic)
		}
	}
	for name, o := range map[string]queue.EnqueueOptions{
		"a key over 512 bytes": {MaxAttempts: 3, Key: strings.Repeat("k", 513)},
		"negative MaxAttempts": {MaxAttempts: -1},
		"priority too high":    {MaxAttempts: 3, Priority: queue.MaxPriority + 1},
		"priority too low":     {MaxAttempts: 3, Priority: -queue.MaxPriority - 1},
	} {
		err := safely(func() error { _, err := b.Enqueue(e.ctx, "w", []byte("x"), o); return err })
		assert.ErrorIs(t, err, queue.ErrInvalid, "Backend.Enqueue with %s must fail with queue.ErrInvalid", name)
	}
	for _, n := range []int{0, -1, 10001} {
		err := safely(func() error { _, err := b.Lease(e.ctx, "w", n, time.Minute, 0); return err })
		assert.ErrorIs(t, err, queue.ErrInvalid, "Backend.Lease of %d jobs must fail with queue.ErrInvalid", n)
	}
	err := safely(func() error { _, err := b.Lease(e.ctx, "w", 1, 0, 0); return err })
	assert.ErrorIs(t, err, queue.ErrInvalid, "Backend.Lease with a zero ttl must fail with queue.ErrInvalid")
	j := job
	j.Topic = victim
	err = safely(func() error { _, err := b.Extend(e.ctx, j, 0); return err })
	assert.ErrorIs(t, err, queue.ErrInvalid, "Backend.Extend with a zero ttl must fail with queue.ErrInvalid")
	j.ID = ""
	assert.ErrorIs(t, safely(func() error { return b.Ack(e.ctx, j) }), queue.ErrInvalid, "Backend.Ack of a job without ID must fail with queue.ErrInvalid")

	// Topic "v" still holds its one job, intact.
	jobs := e.lease(victim, 10, time.Minute)
	require.Len(t, jobs, 1, "invalid calls must not add or remove jobs of another topic")
	require.Equal(t, id, jobs[0].ID)
	require.Equal(t, "victim", string(jobs[0].Payload), "invalid calls must not change another topic's jobs")
	require.Equal(t, 1, jobs[0].Attempt, "invalid calls must not lease another topic's jobs")
	e.ack(jobs[0])
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
