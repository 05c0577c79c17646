// Package queue is a durable work queue with leases, fencing tokens,
// retries with backoff, dead letters and idempotent enqueues: the queue
// between SMTP reception and processing workers, and between the sending
// API and outbound SMTP workers.
//
// A producer calls [Queue.Enqueue]; a consumer calls [Queue.Lease], which
// hands out jobs under a lease (a visibility timeout, as in Amazon SQS),
// and then [Queue.Ack] (done), [Queue.Nack] (failed: retry later or, after
// the job's MaxAttempts, move it to the topic's dead letters) or
// [Queue.Extend] (still working). Most programs run a [Worker] instead,
// which leases, runs a handler with bounded concurrency, extends leases
// while the handler runs, turns panics into failures and retries with a
// [Backoff].
//
// # Guarantees
//
// No job is left unprocessed: a job whose worker dies, or whose lease
// otherwise runs out, becomes leasable again when its lease expires. No
// sweeper process is needed; the next Lease call finds it.
//
// No job is processed twice in effect: every lease carries a fencing token
// ([Job.Token]), a number that grows with every lease of the job. Ack,
// Nack and Extend with a token that is no longer the job's current one fail
// with [ErrLeaseLost], so a worker that stalled past its lease cannot
// commit over the worker that took the job over; while nobody took the job
// over, an expired lease's token is still current and its Ack succeeds.
// Delivery is at least once,
// so a handler's effects must be idempotent, keyed by [Job.ID], or
// committed conditionally on [Job.Token] (the token is the fencing token of
// Kleppmann's "How to do distributed locking": a store that remembers the
// highest token seen per job rejects writes from stale holders). A backend
// that cannot fence says so in its package documentation (see natsqueue).
//
// Enqueue with [EnqueueOptions.Key] is idempotent: while the first job with
// that key is pending, leased or dead, and for a retention period after it
// completed, another Enqueue with the same key returns the first job's ID
// and enqueues nothing.
//
// # Topics
//
// Jobs live in topics, named by 1 to 64 ASCII letters, digits, '-' and
// '_' (so a topic can be part of a storage key, a SQL value or a NATS
// subject without escaping). Each topic has its own ready jobs, leases and
// dead letters.
//
// # Backends
//
// The one-call setup opens the embedded default in a directory and returns
// a ready Queue:
//
//	q, err := lsmqueue.OpenQueue("/var/lib/mail/queue", nil)
//
// A [Queue] runs over a [Backend]:
//
//   - queue/lsmqueue, the embedded default, on the lsm engine: one DB
//     directory, every state change one synced atomic batch.
//   - queue/pgqueue on PostgreSQL: FOR UPDATE SKIP LOCKED leasing,
//     LISTEN/NOTIFY wake-ups.
//   - queue/natsqueue on NATS JetStream: a work-queue stream per topic and a
//     durable pull consumer; it cannot fence late acks (see its # Semantics).
//
// queue/queuetest is the conformance suite every backend passes.
//
// # Errors
//
// [ErrInvalid] (wrapped) for a bad topic, payload, count or duration;
// [ErrLeaseLost] for Ack, Nack or Extend with a lease that was taken over
// or has ended; [ErrNotFound] for Requeue of a job that is not a dead
// letter; [ErrClosed] after Close. Match them with errors.Is.
//
// # Implementing a Backend
//
// A backend stores jobs and implements the state changes of [Backend]
// atomically and durably: when a method returns nil its effect survives a
// crash of the process. The [Queue] validates arguments, applies defaults
// and tracks the closed state, so a backend receives only valid input.
// Run queuetest.Run against it; a backend that cannot give a guarantee
// declares it in queuetest.Options and in its documentation.
package queue
