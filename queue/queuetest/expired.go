package queuetest

import (
	"errors"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/queue"
)

// testExpiredLease checks the rule of [queue.Backend.Ack] for a lease
// whose time ran out: fencing is by token, not by time. While nobody else
// leased the job, its holder's Ack, Nack and Extend still succeed, as the
// lease is still the job's current one; once another Lease took the job,
// all three fail with ErrLeaseLost. A backend that declares NoFencing is
// held only to the first rule, for Ack.
func testExpiredLease(e *env) {
	t := e.t
	topic := topicName(t)
	ttl := e.ttl()

	// Ack after expiry, before any other lease: succeeds, and the job is
	// done.
	e.enqueue(topic, "ack", nil)
	j := e.lease(topic, 1, ttl)[0]
	e.sleep(ttl + time.Second)
	require.NoError(t, e.q.Ack(e.ctx, j), "Ack after the lease expired, while no other lease was taken, must succeed: the token is still the current one")
	e.pass(2 * time.Minute)
	require.Empty(t, e.lease(topic, 1, time.Minute), "a job acknowledged after its lease expired must never come back")

	if e.opts.NoFencing {
		t.Log("backend declares NoFencing: the rules for Extend and Nack after expiry and for a taken-over lease are not checked")
		return
	}
	// Extend after expiry, before any other lease: succeeds and renews it.
	e.enqueue(topic, "extend", nil)
	j = e.lease(topic, 1, ttl)[0]
	e.sleep(ttl + time.Second)
	j2, err := e.q.Extend(e.ctx, j, time.Minute)
	require.NoError(t, err, "Extend after the lease expired, while no other lease was taken, must succeed")
	require.True(t, j2.LeaseUntil.After(e.now()), "Extend must move the expiry into the future")
	require.Empty(t, e.lease(topic, 1, time.Minute), "an extended lease must keep the job from other workers")
	require.NoError(t, e.q.Nack(e.ctx, j2, 0, errors.New("retry")), "Nack by the holder of an extended lease must succeed")
	j3 := e.leaseEventually(topic, 1, time.Minute, time.Second)[0]
	require.Equal(t, j.ID, j3.ID)

	// Once another worker leased the job, the old token is dead.
	e.ack(j3)
	e.enqueue(topic, "lost", nil)
	old := e.lease(topic, 1, ttl)[0]
	cur := e.leaseEventually(topic, 1, time.Minute, ttl+time.Second)[0]
	require.Equal(t, old.ID, cur.ID)
	require.ErrorIs(t, e.q.Ack(e.ctx, old), queue.ErrLeaseLost, "Ack of an expired lease after another Lease took the job must fail with ErrLeaseLost")
	e.ack(cur)
}
