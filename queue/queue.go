package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// The errors of the queue and its backends; match them with errors.Is.
var (
	// ErrInvalid is the error, wrapped, for an invalid argument: a bad
	// topic name, an oversized payload, a count or duration out of range.
	ErrInvalid = errors.New("queue: invalid argument")
	// ErrLeaseLost is returned by Ack, Nack and Extend when the job's lease
	// is no longer the caller's: it expired and the job was leased again,
	// or the job was already acknowledged, failed or moved to dead letters.
	ErrLeaseLost = errors.New("queue: lease lost")
	// ErrNotFound is returned for a job that does not exist where the call
	// expects it (Requeue of a job that is not a dead letter).
	ErrNotFound = errors.New("queue: not found")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("queue: closed")
)

// MaxTopicLen is the maximum length of a topic name in bytes.
const MaxTopicLen = 64

// Job is one unit of work as handed out by Lease. A Job is a value owned by
// the caller; the backend keeps its own copy of the state.
type Job struct {
	// ID identifies the job for its whole life, across retries and dead
	// letters; key idempotent effects by it.
	ID string
	// Topic is the topic the job was enqueued to.
	Topic string
	// Payload is the job's data, as enqueued.
	Payload []byte
	// Key is the idempotency key the job was enqueued with, or "".
	Key string
	// Attempt is the number of this lease: 1 the first time the job is
	// leased, 2 after one failure or expired lease, and so on.
	Attempt int
	// MaxAttempts is the number of attempts after which a failure moves the
	// job to the dead letters.
	MaxAttempts int
	// Priority orders ready jobs of a topic: higher first.
	Priority int
	// Token is the fencing token of this lease: it grows with every lease of
	// the job, and Ack, Nack and Extend succeed only with the current one.
	Token uint64
	// Receipt is opaque backend state of this lease (the JetStream reply
	// subject, for example); callers pass the Job back unchanged.
	Receipt string
	// LeaseUntil is when the lease expires unless extended, by the
	// backend's clock.
	LeaseUntil time.Time
	// EnqueuedAt is when the job was first enqueued.
	EnqueuedAt time.Time
	// NotBefore is the earliest time the job may be leased, as enqueued.
	NotBefore time.Time
	// LastError is the cause given with the last failure, or "".
	LastError string
}

// EnqueueOptions are the options of [Queue.Enqueue]. A nil
// *EnqueueOptions means every default.
type EnqueueOptions struct {
	// Key makes the enqueue idempotent: if a job with this key in the same
	// topic is pending, leased, dead, or completed within the backend's key
	// retention, Enqueue returns that job's ID and adds nothing. The
	// default is "", no deduplication.
	Key string
	// NotBefore delays the job: it is not leased before this time. The
	// default is the zero time, ready at once.
	NotBefore time.Time
	// MaxAttempts is the number of leases after which a failure or an
	// expired lease moves the job to the dead letters. The default is the
	// Queue's [Options.MaxAttempts].
	MaxAttempts int
	// Priority orders the job among the topic's ready jobs, higher first,
	// from -1<<20 to 1<<20. The default is 0.
	Priority int
}

// MaxPriority bounds [EnqueueOptions.Priority]: from -MaxPriority to
// MaxPriority.
const MaxPriority = 1 << 20

// MaxKeyLen is the maximum length of [EnqueueOptions.Key] in bytes.
const MaxKeyLen = 512

// MaxLeaseCount is the most jobs one Lease may ask for.
const MaxLeaseCount = 10000

// LeaseOptions are the options of [Queue.Lease]. A nil *LeaseOptions means
// every default.
type LeaseOptions struct {
	// Wait is how long Lease waits for a job when none is ready (a long
	// poll): it returns as soon as at least one job can be leased, or with
	// none when Wait has passed or ctx is done. The default is 0: return at
	// once.
	Wait time.Duration
}

// Stats counts a topic's jobs by state.
type Stats struct {
	// Ready counts jobs that can be leased now, including jobs whose lease
	// expired.
	Ready int64
	// Leased counts jobs under a lease that has not expired.
	Leased int64
	// Delayed counts jobs waiting for their NotBefore or retry time.
	Delayed int64
	// Dead counts the topic's dead letters.
	Dead int64
}

// Backend stores a queue's jobs. The [Queue] validates every argument
// before calling a backend: topics are valid, n and durations are
// positive, the options have their defaults applied and job is a value a
// Lease of this backend returned. Because [Queue.Backend] hands the
// backend out to callers that skip those checks, every method must also
// run them first, with [ValidTopic], [CheckEnqueue], [CheckLease],
// [CheckJob] and [CheckExtend], and return their errors, which match
// [ErrInvalid], before touching any state.
//
// Every method must honor ctx cancellation where it waits, and every
// method that returns nil has made its effect durable. Implementations
// must be safe for concurrent use.
type Backend interface {
	// Enqueue adds a job and returns its ID. If opts.Key is set and a job
	// with that key exists in the topic (pending, leased, dead, or
	// completed within the key retention), Enqueue must return that job's
	// ID and add nothing.
	Enqueue(ctx context.Context, topic string, payload []byte, opts EnqueueOptions) (string, error)
	// Lease leases up to n ready jobs of topic for ttl each, incrementing
	// each job's Attempt and Token. A job is ready when its NotBefore or
	// retry time has passed, or when its lease expired. A job whose lease
	// expired on its last attempt must go to the dead letters instead.
	// When no job is ready, Lease waits up to wait for one (returning as
	// soon as any is leasable) and then returns an empty slice and nil.
	Lease(ctx context.Context, topic string, n int, ttl, wait time.Duration) ([]Job, error)
	// Ack completes the job. Fencing is by token, not by time: while
	// job.Token is the job's current lease, Ack must succeed, even after
	// job.LeaseUntil has passed, as long as no other Lease took the job
	// since. If job.Token is no longer the job's current lease (another
	// Lease took the job, or the job was already acked or nacked), Ack
	// must return an error for which errors.Is(err, ErrLeaseLost).
	Ack(ctx context.Context, job Job) error
	// Nack fails the job's current attempt with cause: the job becomes
	// ready again after retryAfter, or, if job.Attempt >= job.MaxAttempts,
	// moves to the dead letters with cause as its LastError. Like Ack, it
	// succeeds while job.Token is current, even after expiry, and a stale
	// token gives ErrLeaseLost.
	Nack(ctx context.Context, job Job, retryAfter time.Duration, cause string) error
	// Extend sets the job's lease to expire ttl from now and returns the new
	// expiry. Like Ack, it succeeds while job.Token is current, even after
	// expiry (the lease is then renewed), and a stale token gives
	// ErrLeaseLost.
	Extend(ctx context.Context, job Job, ttl time.Duration) (time.Time, error)
	// Dead lists up to limit dead letters of topic, oldest first.
	Dead(ctx context.Context, topic string, limit int) ([]Job, error)
	// Requeue moves the dead letter id of topic back to the ready jobs with
	// its attempts reset. If it is not a dead letter of topic, Requeue must
	// return an error for which errors.Is(err, ErrNotFound).
	Requeue(ctx context.Context, topic, id string) error
	// Stats counts topic's jobs by state. Counts may be approximate where
	// the backend says so.
	Stats(ctx context.Context, topic string) (Stats, error)
	// Close releases the backend's resources.
	Close() error
}

// Options configures a [Queue]. A nil *Options and every zero field mean
// the default. Options are copied by [New].
type Options struct {
	// MaxAttempts is the MaxAttempts of jobs enqueued without one. The
	// default is 25.
	MaxAttempts int
	// MaxPayload is the largest payload Enqueue accepts, in bytes; message
	// bodies belong in the dedup store, not in the queue. The default is
	// 256 KiB.
	MaxPayload int
}

// Queue is the queue that producers and workers use, over a [Backend]. It
// is safe for concurrent use.
type Queue struct {
	b      Backend
	opts   Options
	closed atomic.Bool
}

// New returns a Queue over b. The Queue owns b: [Queue.Close] closes it.
func New(b Backend, opts *Options) *Queue {
	if b == nil {
		panic("queue: New with a nil Backend")
	}
	q := &Queue{b: b}
	if opts != nil {
		q.opts = *opts
	}
	if q.opts.MaxAttempts <= 0 {
		q.opts.MaxAttempts = 25
	}
	if q.opts.MaxPayload <= 0 {
		q.opts.MaxPayload = 256 << 10
	}
	return q
}

// Backend returns the backend the Queue runs over.
func (q *Queue) Backend() Backend { return q.b }

// ValidTopic reports whether topic is a valid topic name: 1 to
// [MaxTopicLen] ASCII letters, digits, '-' and '_'. If it is not, the error
// wraps [ErrInvalid].
//
// It is what [Queue] checks of every topic; backends call it first in
// Dead, Requeue and Stats (the other methods' checks include it) because
// [Queue.Backend] hands the backend out to callers that skip the Queue.
func ValidTopic(topic string) error {
	if topic == "" || len(topic) > MaxTopicLen {
		return fmt.Errorf("%w: topic %q must be 1 to %d bytes", ErrInvalid, topic, MaxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: topic %q may hold only letters, digits, '-' and '_'", ErrInvalid, topic)
		}
	}
	return nil
}

// CheckEnqueue reports whether topic and o are valid arguments of
// Enqueue: topic passes [ValidTopic], o.Key is at most [MaxKeyLen] bytes,
// o.MaxAttempts is not negative and o.Priority is within ±[MaxPriority].
// If they are not, the error wraps [ErrInvalid]. The payload size is the
// Queue's own limit ([Options.MaxPayload]) and is not checked here.
//
// It is what [Queue.Enqueue] checks; backends call it first in their
// Enqueue because [Queue.Backend] hands the backend out to callers that
// skip the Queue.
func CheckEnqueue(topic string, o EnqueueOptions) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	switch {
	case len(o.Key) > MaxKeyLen:
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalid, len(o.Key), MaxKeyLen)
	case o.MaxAttempts < 0:
		return fmt.Errorf("%w: negative MaxAttempts %d", ErrInvalid, o.MaxAttempts)
	case o.Priority < -MaxPriority || o.Priority > MaxPriority:
		return fmt.Errorf("%w: priority %d out of range ±%d", ErrInvalid, o.Priority, MaxPriority)
	}
	return nil
}

// CheckLease reports whether topic, n and ttl are valid arguments of
// Lease: topic passes [ValidTopic], n is from 1 to [MaxLeaseCount] and ttl
// is positive. If they are not, the error wraps [ErrInvalid].
//
// It is what [Queue.Lease] checks; backends call it first in their Lease
// because [Queue.Backend] hands the backend out to callers that skip the
// Queue.
func CheckLease(topic string, n int, ttl time.Duration) error {
	if err := ValidTopic(topic); err != nil {
		return err
	}
	if n <= 0 || n > MaxLeaseCount {
		return fmt.Errorf("%w: lease count %d not in 1..%d", ErrInvalid, n, MaxLeaseCount)
	}
	return checkTTL(ttl)
}

// CheckJob reports whether job can be passed to Ack or Nack: its Topic
// passes [ValidTopic] and it has an ID. If not, the error wraps
// [ErrInvalid]. Whether the job's lease is still current is the backend's
// to decide.
//
// It is what [Queue.Ack] and [Queue.Nack] check; backends call it first in
// their Ack and Nack because [Queue.Backend] hands the backend out to
// callers that skip the Queue.
func CheckJob(job Job) error {
	if err := ValidTopic(job.Topic); err != nil {
		return err
	}
	if job.ID == "" {
		return fmt.Errorf("%w: job without ID", ErrInvalid)
	}
	return nil
}

// CheckExtend reports whether job and ttl are valid arguments of Extend:
// job passes [CheckJob] and ttl is positive. If not, the error wraps
// [ErrInvalid].
//
// It is what [Queue.Extend] checks; backends call it first in their
// Extend because [Queue.Backend] hands the backend out to callers that
// skip the Queue.
func CheckExtend(job Job, ttl time.Duration) error {
	if err := CheckJob(job); err != nil {
		return err
	}
	return checkTTL(ttl)
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: lease ttl %v not positive", ErrInvalid, ttl)
	}
	return nil
}

// check returns ErrClosed after Close, else invalid: the error of the
// argument check (ValidTopic, CheckEnqueue, ...) the method ran, so that
// the Queue and its backends share one rule.
func (q *Queue) check(invalid error) error {
	if q.closed.Load() {
		return ErrClosed
	}
	return invalid
}

// Enqueue adds a job with payload to topic and returns its ID. With
// opts.Key set, a repeated Enqueue returns the first job's ID instead (see
// [EnqueueOptions]). When Enqueue returns nil the job is durable.
func (q *Queue) Enqueue(ctx context.Context, topic string, payload []byte, opts *EnqueueOptions) (string, error) {
	var o EnqueueOptions
	if opts != nil {
		o = *opts
	}
	if err := q.check(CheckEnqueue(topic, o)); err != nil {
		return "", err
	}
	if len(payload) > q.opts.MaxPayload {
		return "", fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrInvalid, len(payload), q.opts.MaxPayload)
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = q.opts.MaxAttempts
	}
	id, err := q.b.Enqueue(ctx, topic, payload, o)
	if err != nil {
		return "", fmt.Errorf("queue: enqueue to %s: %w", topic, err)
	}
	return id, nil
}

// Lease leases up to n ready jobs of topic for ttl each. Each job is the
// caller's until its LeaseUntil unless extended; after that another Lease
// may take it and the caller's Ack fails with [ErrLeaseLost]. With no job
// ready, Lease returns an empty slice at once, or waits up to opts.Wait for
// one.
func (q *Queue) Lease(ctx context.Context, topic string, n int, ttl time.Duration, opts *LeaseOptions) ([]Job, error) {
	if err := q.check(CheckLease(topic, n, ttl)); err != nil {
		return nil, err
	}
	var wait time.Duration
	if opts != nil && opts.Wait > 0 {
		wait = opts.Wait
	}
	jobs, err := q.b.Lease(ctx, topic, n, ttl, wait)
	if err != nil {
		if wait > 0 && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, err
		}
		return nil, fmt.Errorf("queue: lease from %s: %w", topic, err)
	}
	return jobs, nil
}

// Ack completes job. It fails with [ErrLeaseLost] if job's lease is no
// longer the job's current one: another Lease took the job after this
// lease expired, or the lease already ended with Ack or Nack. An expired
// lease that nobody took over is still current: Ack then succeeds (fencing
// is by the lease's token, not by time), so a handler that overran its
// lease does not redo work that no other worker started. A backend that
// cannot fence (see its documentation) may also accept a stale Ack.
func (q *Queue) Ack(ctx context.Context, job Job) error {
	if err := q.check(CheckJob(job)); err != nil {
		return err
	}
	if err := q.b.Ack(ctx, job); err != nil {
		return fmt.Errorf("queue: ack %s/%s: %w", job.Topic, job.ID, err)
	}
	return nil
}

// Nack fails job's current attempt with cause. The job is leasable again
// after retryAfter (0: at once) or, if this was its last attempt, moves to
// the dead letters with cause as LastError. It succeeds or fails with
// [ErrLeaseLost] as Ack does.
func (q *Queue) Nack(ctx context.Context, job Job, retryAfter time.Duration, cause error) error {
	if err := q.check(CheckJob(job)); err != nil {
		return err
	}
	if retryAfter < 0 {
		retryAfter = 0
	}
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	if err := q.b.Nack(ctx, job, retryAfter, msg); err != nil {
		return fmt.Errorf("queue: nack %s/%s: %w", job.Topic, job.ID, err)
	}
	return nil
}

// Extend makes job's lease expire ttl from now and returns job with the new
// LeaseUntil. It succeeds or fails with [ErrLeaseLost] as Ack does: an
// expired lease nobody took over is renewed.
func (q *Queue) Extend(ctx context.Context, job Job, ttl time.Duration) (Job, error) {
	if err := q.check(CheckExtend(job, ttl)); err != nil {
		return job, err
	}
	until, err := q.b.Extend(ctx, job, ttl)
	if err != nil {
		return job, fmt.Errorf("queue: extend %s/%s: %w", job.Topic, job.ID, err)
	}
	job.LeaseUntil = until
	return job, nil
}

// Dead lists up to limit of topic's dead letters (limit <= 0: 100), oldest
// first, each with the LastError that killed it.
func (q *Queue) Dead(ctx context.Context, topic string, limit int) ([]Job, error) {
	if err := q.check(ValidTopic(topic)); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	jobs, err := q.b.Dead(ctx, topic, limit)
	if err != nil {
		return nil, fmt.Errorf("queue: dead letters of %s: %w", topic, err)
	}
	return jobs, nil
}

// Requeue moves the dead letter id of topic back to the ready jobs with its
// attempts reset, to be processed again. It returns [ErrNotFound] if id is
// not a dead letter of topic.
func (q *Queue) Requeue(ctx context.Context, topic, id string) error {
	if err := q.check(ValidTopic(topic)); err != nil {
		return err
	}
	if err := q.b.Requeue(ctx, topic, id); err != nil {
		return fmt.Errorf("queue: requeue %s/%s: %w", topic, id, err)
	}
	return nil
}

// Stats counts topic's jobs by state.
func (q *Queue) Stats(ctx context.Context, topic string) (Stats, error) {
	if err := q.check(ValidTopic(topic)); err != nil {
		return Stats{}, err
	}
	s, err := q.b.Stats(ctx, topic)
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats of %s: %w", topic, err)
	}
	return s, nil
}

// Close closes the Queue and its backend. It is idempotent; afterwards
// every method returns [ErrClosed].
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	return q.b.Close()
}
