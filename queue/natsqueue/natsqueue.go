// Package natsqueue is a [queue.Backend] on NATS JetStream, through the
// nats.go jetstream package: each topic is a work-queue stream with one
// durable pull consumer, so leases, redelivery and durability are the
// JetStream server's, replicated on [Options.Replicas] servers of a
// JetStream cluster.
//
// # Semantics
//
// Streams and names: topic T is stream "<Prefix>_T" on subject
// "<prefix>.T" (file storage, work-queue retention, duplicate window
// [Options.DedupWindow]) with durable consumer "workers" (explicit acks,
// AckWait [Options.LeaseTTL], unlimited deliveries). Dead letters of every
// topic go to stream "<Prefix>_DEAD", subject "<prefix>.dead.T"; the last
// error of a failed attempt goes to key-value bucket "<Prefix>_ERRORS".
// Streams are created on first use of a topic, once per topic and
// process however many goroutines use it at the same time (a cluster
// may leave concurrent duplicate creations unanswered; between processes,
// that costs the losers one [Options.AttemptTimeout] before their retry
// finds the stream: measured, 3 s on R1). Every message
// carries a Msg-Id (the job ID, or for a dead letter its delivery), so
// that a publish retried after a lost PubAck is dropped by the stream
// within DedupWindow.
//
// Durability: Enqueue returns after the stream stored the message (a
// PubAck); how durable that is follows the stream's storage and the
// server's sync policy (JetStream syncs its file store every two minutes
// by default, unless started with sync_interval: always; see the 2025
// Jepsen analysis of NATS 2.12 for the losses that follow a machine
// crash). A lease is a delivery: Lease fetches from the consumer, Ack sends
// +ACK (and waits for the server's confirmation), Nack sends -NAK with the
// retry delay, or publishes the job to the dead letters and sends +TERM on
// its last attempt, and Extend sends +WPI.
//
// What JetStream cannot guarantee, and this backend therefore does not:
//
//   - Fencing. JetStream acknowledges by stream sequence, not by delivery:
//     an Ack (or Nack) from a worker whose lease expired is accepted even
//     after the message was delivered to another worker, and completes
//     the job under that worker. Job.Token is the delivery count, which
//     grows with every lease, so effects can still be committed
//     conditionally on it, or keyed by Job.ID; but Ack never returns
//     [queue.ErrLeaseLost]. (queuetest: NoFencing.)
//   - Lease length per call. Leases last the consumer's AckWait,
//     [Options.LeaseTTL], whatever ttl Lease and Extend ask for; Extend
//     restarts that period. (queuetest: FixedTTL.)
//   - Priorities. Jobs are leased in stream order; Priority is stored but
//     not used. (queuetest: NoPriority.)
//   - NotBefore. A job enqueued with NotBefore is delivered at once,
//     then negatively acknowledged with a delay until NotBefore: it is not
//     handed out early, but that deferred delivery counts as an attempt.
//     (queuetest: ApproxNotBefore.)
//   - Key deduplication beyond the stream's duplicate window: JetStream
//     remembers Msg-Id headers for DedupWindow only. A keyed job's ID is
//     derived from its topic and key, so a repeat returns the same ID, but
//     after the window the job is enqueued again.
//   - Stats. Ready is the consumer's pending count, Leased its ack-pending
//     count (which includes jobs waiting out a Nack delay), Delayed is
//     always 0. (queuetest: ApproxStats.)
//   - Atomic dead-lettering and Requeue: each is a publish followed by a
//     +TERM or a delete; a crash between the two leaves the job in both
//     places, to be delivered once more.
//
// Delivery is therefore at least once, in stream order per topic, and
// MaxAttempts counts deliveries (a delivery whose lease expires on the
// last attempt is dead-lettered with "lease expired" when next fetched).
//
// Errors a retry may cure (no responders, timeouts, a closed or
// reconnecting connection, JetStream or a stream leader not available)
// satisfy [mailbricks.IsTemporary].
//
// # Clusters and failover
//
// A topic's stream, its consumer, the dead letters and the error bucket
// each have [Options.Replicas] copies on different servers, one of which
// leads (takes the writes and hands out the deliveries). With Replicas 1
// (the default) a topic is as available as its one server and its jobs
// as durable as that server's disk. With 3, losing one server loses no
// acknowledged Enqueue or Ack and stops the topic only while a new leader
// is elected.
//
// During such an election the backend retries, for up to
// [Options.RetryFor] (20 s by default), each attempt bounded by
// [Options.AttemptTimeout] (3 s): Enqueue (the Msg-Id makes a repeated
// publish harmless), Ack, Nack, Extend and the fetch of Lease, and the
// setup of a topic. A caller sees the call take longer, not an error; if
// the election outlasts RetryFor, the call returns the last error,
// marked [mailbricks.ErrTemporary]: [queue.Worker] retries a failed
// Lease after its backoff, and a job whose Ack failed is delivered again
// after its lease (a timed-out Ack may also have been applied: then it is
// not).
//
// Measured on 3-node clusters at R3 with 8 workers leasing and
// acknowledging keyed jobs while producers enqueue, the stream leader
// taken down after a third of the jobs: no call returned an error, no
// job was lost and none was delivered twice. The stall, the longest pause
// between two successful acknowledgements after the leader went down,
// was 0.05 to 5.6 s when the leader shut down cleanly and handed over
// its leadership (TestFailover, in-process servers, 8 runs of 1,500 or
// 5,000 jobs), and 1.9 to 7.9 s when it was SIGKILLed and the others had to
// wait out the Raft election timeout, 4 to 9 s (TestFailoverKill,
// nats-server processes, 6 runs of 5,000 jobs). Plan for pauses of up to about 10 s, which
// RetryFor covers; a lease shorter than that may expire during one and
// its job be delivered again.
package natsqueue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"golang.org/x/sync/singleflight"

	"github.com/mailbricks/mailbricks/queue"
)

// Headers of the job messages.
const (
	hdrID        = "Mailbricks-Id"
	hdrKey       = "Mailbricks-Key"
	hdrMax       = "Mailbricks-Max-Attempts"
	hdrPriority  = "Mailbricks-Priority"
	hdrNotBefore = "Mailbricks-Not-Before" // Unix nanoseconds
	hdrEnqueued  = "Mailbricks-Enqueued"   // Unix nanoseconds
	hdrError     = "Mailbricks-Last-Error"
	hdrAttempt   = "Mailbricks-Attempt"
)

// Options configures a backend. A nil *Options and every zero field mean
// the default. Options are copied by [Open].
type Options struct {
	// Prefix names the streams, subjects and bucket: letters, digits and
	// '_', at most 32 bytes. The default is "MAILBRICKS_QUEUE".
	Prefix string
	// LeaseTTL is the consumers' AckWait: the length of every lease. The
	// default is 30 seconds.
	LeaseTTL time.Duration
	// DedupWindow is the streams' duplicate window, how long an
	// idempotency key is remembered. The default is 2 minutes.
	DedupWindow time.Duration
	// Storage is the streams' storage. The default is file storage.
	Storage jetstream.StorageType
	// Replicas is the number of servers that store each of the backend's
	// streams (the topics', the dead letters' and the error bucket's):
	// JetStream takes 1 to 5, at most the size of the cluster, and an odd
	// count is the useful one (a majority must be up). With 1, a
	// stream lives on one server: when that server is down its topics
	// cannot be used, and when its disk is lost its jobs are lost. With 3,
	// a stream survives the loss of one server (two of three must be up
	// to enqueue or acknowledge), with 5, of two, at the cost of every
	// write waiting for a majority. Use 1 on a single server and for jobs
	// that may be lost, 3 on a cluster. The default is 1; on a cluster
	// set it explicitly. See the package's # Clusters and failover.
	Replicas int
	// RetryFor bounds how long a call retries the errors of a JetStream
	// leader election (no responders, no stream response, "leader not
	// available", a timed-out attempt) before returning the last of them,
	// marked [mailbricks.ErrTemporary]; each attempt is bounded by
	// AttemptTimeout. It also bounds the setup of a topic. The default is
	// 20 seconds.
	RetryFor time.Duration
	// AttemptTimeout bounds each request of a publish, an
	// acknowledgement, an info request and a topic's setup, so that a
	// request sent to a server that died is sent again within RetryFor
	// instead of waiting out the caller's context. The default is 3
	// seconds.
	AttemptTimeout time.Duration
}

// Backend is the JetStream [queue.Backend]. It is safe for concurrent use.
type Backend struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	opts   Options
	subj   string // lower-case subject prefix
	closed atomic.Bool

	setup  singleflight.Group // per topic: stream and consumer creation
	mu     sync.Mutex
	topics map[string]jetstream.Consumer
	dead   jetstream.Stream
	errs   jetstream.KeyValue
}

var _ queue.Backend = (*Backend)(nil)

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// Open returns a backend on nc, creating the dead-letter stream and the
// error bucket. The caller owns nc and closes it after the backend.
func Open(ctx context.Context, nc *nats.Conn, opts *Options) (*Backend, error) {
	b := &Backend{nc: nc, topics: map[string]jetstream.Consumer{}}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Prefix == "" {
		b.opts.Prefix = "MAILBRICKS_QUEUE"
	}
	if !prefixRE.MatchString(b.opts.Prefix) {
		return nil, fmt.Errorf("%w: natsqueue: prefix %q", queue.ErrInvalid, b.opts.Prefix)
	}
	if b.opts.LeaseTTL <= 0 {
		b.opts.LeaseTTL = 30 * time.Second
	}
	if b.opts.DedupWindow <= 0 {
		b.opts.DedupWindow = 2 * time.Minute
	}
	if b.opts.Replicas <= 0 {
		b.opts.Replicas = 1
	}
	if b.opts.RetryFor <= 0 {
		b.opts.RetryFor = 20 * time.Second
	}
	if b.opts.AttemptTimeout <= 0 {
		b.opts.AttemptTimeout = 3 * time.Second
	}
	b.subj = strings.ToLower(b.opts.Prefix)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsqueue: %w", classify(err))
	}
	b.js = js
	err = b.retry(ctx, true, func(ctx context.Context) (err error) {
		b.dead, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:     b.opts.Prefix + "_DEAD",
			Subjects: []string{b.subj + ".dead.>"},
			Storage:  b.opts.Storage,
			Replicas: b.opts.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("natsqueue: create dead-letter stream: %w", classify(err))
	}
	err = b.retry(ctx, true, func(ctx context.Context) (err error) {
		b.errs, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   b.opts.Prefix + "_ERRORS",
			TTL:      7 * 24 * time.Hour,
			Storage:  b.opts.Storage,
			Replicas: b.opts.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("natsqueue: create error bucket: %w", classify(err))
	}
	return b, nil
}

// Close marks the backend closed. It does not close the connection nor
// delete streams. It is idempotent; afterwards methods return
// [queue.ErrClosed].
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return queue.ErrClosed
	}
	return ctx.Err()
}

func (b *Backend) streamName(topic string) string { return b.opts.Prefix + "_" + topic }
func (b *Backend) subject(topic string) string    { return b.subj + "." + topic }
func (b *Backend) deadSubject(topic string) string {
	return b.subj + ".dead." + topic
}

// consumer returns the topic's consumer, creating stream and consumer on
// first use: once per topic however many goroutines ask at the same time
// (a JetStream cluster may leave concurrent duplicate creations
// unanswered), bounded by [Options.RetryFor] whatever ctx allows. A
// caller whose ctx ends stops waiting; the setup goes on for the others.
func (b *Backend) consumer(ctx context.Context, topic string) (jetstream.Consumer, error) {
	b.mu.Lock()
	c, ok := b.topics[topic]
	b.mu.Unlock()
	if ok {
		return c, nil
	}
	ch := b.setup.DoChan(topic, func() (any, error) {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.RetryFor)
		defer cancel()
		c, err := b.createTopic(sctx, topic)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.topics[topic] = c
		b.mu.Unlock()
		return c, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, fmt.Errorf("natsqueue: set up topic %s: %w", topic, r.Err)
		}
		return r.Val.(jetstream.Consumer), nil
	}
}

// createTopic creates (or updates) the topic's stream and consumer, and
// waits until the consumer has a leader, so that the first Lease finds
// one.
func (b *Backend) createTopic(ctx context.Context, topic string) (jetstream.Consumer, error) {
	var s jetstream.Stream
	err := b.retry(ctx, true, func(ctx context.Context) (err error) {
		s, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:       b.streamName(topic),
			Subjects:   []string{b.subject(topic)},
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    b.opts.Storage,
			Replicas:   b.opts.Replicas,
			Duplicates: b.opts.DedupWindow,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	var c jetstream.Consumer
	err = b.retry(ctx, true, func(ctx context.Context) (err error) {
		c, err = s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       "workers",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       b.opts.LeaseTTL,
			MaxDeliver:    -1,
			MaxAckPending: -1,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	err = b.retry(ctx, true, func(ctx context.Context) error {
		ci, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if ci.Cluster != nil && ci.Cluster.Leader == "" {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// publish publishes m with Msg-Id id, retrying while the stream has no
// leader and after an attempt timed out: the stream drops a repeat of an
// id it stored within its duplicate window.
func (b *Backend) publish(ctx context.Context, m *nats.Msg, id string) error {
	return b.retry(ctx, true, func(ctx context.Context) error {
		_, err := b.js.PublishMsg(ctx, m, jetstream.WithMsgID(id))
		return err
	})
}

// keyID is the ID of a keyed job: derived from topic and key, so that a
// deduplicated Enqueue returns it even after the first job completed.
func keyID(topic, key string) string {
	h := sha256.Sum256([]byte(topic + "\x00" + key))
	return "k" + hex.EncodeToString(h[:12])
}

// Enqueue publishes the job; see [queue.Backend].
func (b *Backend) Enqueue(ctx context.Context, topic string, payload []byte, o queue.EnqueueOptions) (_ string, err error) {
	if err := queue.CheckEnqueue(topic, o); err != nil {
		return "", err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return "", err
	}
	if _, err := b.consumer(ctx, topic); err != nil {
		return "", err
	}
	id := nuid.Next()
	if o.Key != "" {
		id = keyID(topic, o.Key)
	}
	m := nats.NewMsg(b.subject(topic))
	m.Data = payload
	m.Header.Set(hdrID, id)
	m.Header.Set(hdrMax, strconv.Itoa(o.MaxAttempts))
	m.Header.Set(hdrPriority, strconv.Itoa(o.Priority))
	m.Header.Set(hdrEnqueued, strconv.FormatInt(time.Now().UnixNano(), 10))
	if o.Key != "" {
		m.Header.Set(hdrKey, o.Key)
	}
	if !o.NotBefore.IsZero() {
		m.Header.Set(hdrNotBefore, strconv.FormatInt(o.NotBefore.UnixNano(), 10))
	}
	if err := b.publish(ctx, m, id); err != nil {
		return "", err
	}
	return id, nil
}

// Lease fetches up to n jobs: at once, and if none came and wait > 0, one
// with a long poll and then whatever else is ready without waiting.
func (b *Backend) Lease(ctx context.Context, topic string, n int, ttl, wait time.Duration) (_ []queue.Job, err error) {
	if err := queue.CheckLease(topic, n, ttl); err != nil {
		return nil, err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	c, err := b.consumer(ctx, topic)
	if err != nil {
		return nil, err
	}
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	if wait <= 0 {
		return b.leaseNow(ctx, topic, c, n)
	}
	for {
		jobs, err := b.fetch(ctx, topic, c, n, 0)
		if err != nil || len(jobs) > 0 {
			return jobs, err
		}
		d := time.Until(deadline)
		if d <= 0 {
			return nil, nil
		}
		jobs, err = b.fetch(ctx, topic, c, 1, d)
		if err != nil || len(jobs) == 0 {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		if n > 1 {
			more, err := b.fetch(ctx, topic, c, n-1, 0)
			if err == nil {
				jobs = append(jobs, more...)
			}
		}
		return jobs, nil
	}
}

// leaseNow is Lease without waiting: up to n jobs the topic has ready.
func (b *Backend) leaseNow(ctx context.Context, topic string, c jetstream.Consumer, n int) ([]queue.Job, error) {
	jobs, err := b.fetch(ctx, topic, c, n, 0)
	if err != nil || len(jobs) == n || len(jobs) > 0 && b.opts.Replicas == 1 {
		return jobs, err
	}
	// A no-wait pull can miss messages the consumer has not registered
	// yet; ask the consumer before reporting fewer than n.
	var ci *jetstream.ConsumerInfo
	err = b.retry(ctx, true, func(ctx context.Context) (err error) {
		ci, err = c.Info(ctx)
		return err
	})
	if err != nil {
		if len(jobs) > 0 {
			return jobs, nil
		}
		return nil, err
	}
	wait := 100 * time.Millisecond
	if ci.NumPending == 0 {
		// On a cluster a consumer may see a message a moment after its
		// stream stored it (a replicated consumer may lead on another
		// server than its stream; a new one may not have started yet):
		// ask the stream too. (A server outside a cluster has no
		// cluster name.)
		if ci.Cluster == nil || ci.Cluster.Name == "" || !b.streamAhead(ctx, topic, ci) {
			return jobs, nil
		}
		wait = 300 * time.Millisecond
	}
	more, err := b.fetch(ctx, topic, c, n-len(jobs), wait)
	if len(jobs) > 0 {
		// The first jobs are leased: return them whatever happened.
		return append(jobs, more...), nil
	}
	return more, err
}

// streamAhead reports whether the topic's stream holds more messages
// than its consumer has leased, which is a consumer that has not caught
// up with its stream yet (or a stream that has not yet removed a message
// acknowledged a moment ago).
func (b *Backend) streamAhead(ctx context.Context, topic string, ci *jetstream.ConsumerInfo) bool {
	var si *jetstream.StreamInfo
	err := b.retry(ctx, true, func(ctx context.Context) error {
		s, err := b.js.Stream(ctx, b.streamName(topic))
		if err == nil {
			si = s.CachedInfo()
		}
		return err
	})
	return err == nil && si.State.Msgs > uint64(ci.NumAckPending)
}

// fetch pulls up to n messages (waiting up to wait, or not at all) and
// turns them into jobs, deferring early ones and dead-lettering
// exhausted ones. It retries a pull that got nothing while the consumer
// has no leader; a pull that got jobs returns them, whatever error
// followed (the jobs are leased).
func (b *Backend) fetch(ctx context.Context, topic string, c jetstream.Consumer, n int, wait time.Duration) ([]queue.Job, error) {
	var jobs []queue.Job
	err := b.retry(ctx, false, func(ctx context.Context) (err error) {
		jobs, err = b.fetchOnce(ctx, topic, c, n, wait)
		if len(jobs) > 0 {
			return nil
		}
		return err
	})
	return jobs, err
}

func (b *Backend) fetchOnce(ctx context.Context, topic string, c jetstream.Consumer, n int, wait time.Duration) ([]queue.Job, error) {
	var batch jetstream.MessageBatch
	var err error
	if wait <= 0 {
		batch, err = c.FetchNoWait(n)
	} else {
		batch, err = c.Fetch(n, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		return nil, err
	}
	var jobs []queue.Job
	for m := range batch.Messages() {
		j, ok, err := b.job(ctx, topic, m)
		if err != nil {
			return jobs, err
		}
		if ok {
			jobs = append(jobs, j)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return jobs, err
	}
	return jobs, nil
}

func (b *Backend) job(ctx context.Context, topic string, m jetstream.Msg) (queue.Job, bool, error) {
	md, err := m.Metadata()
	if err != nil {
		return queue.Job{}, false, err
	}
	h := m.Headers()
	j := queue.Job{
		ID:         h.Get(hdrID),
		Topic:      topic,
		Payload:    m.Data(),
		Key:        h.Get(hdrKey),
		Attempt:    int(md.NumDelivered),
		Token:      md.NumDelivered,
		Receipt:    m.Reply(),
		LeaseUntil: time.Now().Add(b.opts.LeaseTTL),
		EnqueuedAt: md.Timestamp,
	}
	j.MaxAttempts, _ = strconv.Atoi(h.Get(hdrMax))
	j.Priority, _ = strconv.Atoi(h.Get(hdrPriority))
	if ns, err := strconv.ParseInt(h.Get(hdrEnqueued), 10, 64); err == nil {
		j.EnqueuedAt = time.Unix(0, ns)
	}
	if ns, err := strconv.ParseInt(h.Get(hdrNotBefore), 10, 64); err == nil {
		j.NotBefore = time.Unix(0, ns)
		if d := time.Until(j.NotBefore); d > 0 {
			return j, false, m.NakWithDelay(d)
		}
	}
	if j.Attempt > 1 {
		if e, err := b.errs.Get(ctx, j.ID); err == nil {
			j.LastError = string(e.Value())
		}
	}
	if j.MaxAttempts > 0 && j.Attempt > j.MaxAttempts {
		// The last attempt's lease expired.
		j.Attempt--
		if j.LastError == "" || j.Attempt > 0 {
			j.LastError = "lease expired"
		}
		return j, false, b.bury(ctx, j, m.Reply())
	}
	return j, true, nil
}

// bury publishes job to the dead letters, then terminates its delivery.
func (b *Backend) bury(ctx context.Context, j queue.Job, reply string) error {
	m := nats.NewMsg(b.deadSubject(j.Topic))
	m.Data = j.Payload
	m.Header.Set(hdrID, j.ID)
	m.Header.Set(hdrMax, strconv.Itoa(j.MaxAttempts))
	m.Header.Set(hdrPriority, strconv.Itoa(j.Priority))
	m.Header.Set(hdrEnqueued, strconv.FormatInt(j.EnqueuedAt.UnixNano(), 10))
	m.Header.Set(hdrAttempt, strconv.Itoa(j.Attempt))
	m.Header.Set(hdrError, j.LastError)
	if j.Key != "" {
		m.Header.Set(hdrKey, j.Key)
	}
	if !j.NotBefore.IsZero() {
		m.Header.Set(hdrNotBefore, strconv.FormatInt(j.NotBefore.UnixNano(), 10))
	}
	// The Msg-Id, the delivery's own reply subject, lets the dead-letter
	// stream drop a republication of the same delivery.
	if err := b.publish(ctx, m, reply); err != nil {
		return err
	}
	return b.reply(ctx, reply, "+TERM")
}

// reply sends an acknowledgement to a delivery's reply subject and waits
// for the server to confirm it, retrying while the consumer has no
// leader and after an attempt timed out (each attempt is bounded by
// [Options.AttemptTimeout], the whole by [Options.RetryFor]): the
// acknowledgements are idempotent.
func (b *Backend) reply(ctx context.Context, reply, body string) error {
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return queue.ErrLeaseLost
	}
	return b.retry(ctx, true, func(ctx context.Context) error {
		_, err := b.nc.RequestWithContext(ctx, reply, []byte(body))
		return err
	})
}

// Ack sends +ACK; see the package's # Semantics for fencing.
func (b *Backend) Ack(ctx context.Context, job queue.Job) (err error) {
	if err := queue.CheckJob(job); err != nil {
		return err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return err
	}
	return b.reply(ctx, job.Receipt, "+ACK")
}

// Nack sends -NAK with the delay, or dead-letters the job on its last
// attempt.
func (b *Backend) Nack(ctx context.Context, job queue.Job, retryAfter time.Duration, cause string) (err error) {
	if err := queue.CheckJob(job); err != nil {
		return err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return err
	}
	if job.Attempt >= job.MaxAttempts {
		job.LastError = cause
		return b.bury(ctx, job, job.Receipt)
	}
	if err := b.retry(ctx, true, func(ctx context.Context) error {
		_, err := b.errs.Put(ctx, job.ID, []byte(cause))
		return err
	}); err != nil {
		return err
	}
	body := "-NAK"
	if retryAfter > 0 {
		body = fmt.Sprintf(`-NAK {"delay": %d}`, retryAfter.Nanoseconds())
	}
	return b.reply(ctx, job.Receipt, body)
}

// Extend sends +WPI, which restarts the AckWait.
func (b *Backend) Extend(ctx context.Context, job queue.Job, ttl time.Duration) (_ time.Time, err error) {
	if err := queue.CheckExtend(job, ttl); err != nil {
		return time.Time{}, err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return time.Time{}, err
	}
	if err := b.reply(ctx, job.Receipt, "+WPI"); err != nil {
		return time.Time{}, err
	}
	return time.Now().Add(b.opts.LeaseTTL), nil
}

// deadMsgs reads the topic's dead letters, up to limit, oldest first.
// Each is one get from the dead-letter stream's leader ("the first
// message at or after this sequence on this subject"), retried through
// elections like every idempotent request. An ephemeral consumer would
// be one more thing to elect on a cluster, and its fetch could come back
// empty while the stream holds the letters.
func (b *Backend) deadMsgs(ctx context.Context, topic string, limit int) ([]*jetstream.RawStreamMsg, error) {
	subj := b.deadSubject(topic)
	var out []*jetstream.RawStreamMsg
	seq := uint64(1)
	for len(out) < limit {
		var m *jetstream.RawStreamMsg
		err := b.retry(ctx, true, func(ctx context.Context) (err error) {
			m, err = b.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
	return out, nil
}

// deadInfo reads the dead-letter stream's counters for topic.
func (b *Backend) deadInfo(ctx context.Context, topic string) (info *jetstream.StreamInfo, err error) {
	err = b.retry(ctx, true, func(ctx context.Context) error {
		info, err = b.dead.Info(ctx, jetstream.WithSubjectFilter(b.deadSubject(topic)))
		return err
	})
	return info, err
}

func deadJob(topic string, m *jetstream.RawStreamMsg) queue.Job {
	h := m.Header
	j := queue.Job{ID: h.Get(hdrID), Topic: topic, Payload: m.Data, Key: h.Get(hdrKey), LastError: h.Get(hdrError)}
	j.Attempt, _ = strconv.Atoi(h.Get(hdrAttempt))
	j.MaxAttempts, _ = strconv.Atoi(h.Get(hdrMax))
	j.Priority, _ = strconv.Atoi(h.Get(hdrPriority))
	if ns, err := strconv.ParseInt(h.Get(hdrEnqueued), 10, 64); err == nil {
		j.EnqueuedAt = time.Unix(0, ns)
	}
	if ns, err := strconv.ParseInt(h.Get(hdrNotBefore), 10, 64); err == nil {
		j.NotBefore = time.Unix(0, ns)
	}
	return j
}

// Dead lists dead letters; see [queue.Backend].
func (b *Backend) Dead(ctx context.Context, topic string, limit int) (_ []queue.Job, err error) {
	if err := queue.ValidTopic(topic); err != nil {
		return nil, err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	ms, err := b.deadMsgs(ctx, topic, limit)
	if err != nil {
		return nil, err
	}
	jobs := make([]queue.Job, 0, len(ms))
	for _, m := range ms {
		jobs = append(jobs, deadJob(topic, m))
	}
	return jobs, nil
}

// Requeue republishes a dead letter to its topic and deletes it from the
// dead letters. It scans the topic's dead letters for id.
func (b *Backend) Requeue(ctx context.Context, topic, id string) (err error) {
	if err := queue.ValidTopic(topic); err != nil {
		return err
	}
	defer func() { err = classify(err) }()
	if err := b.check(ctx); err != nil {
		return err
	}
	if _, err := b.consumer(ctx, topic); err != nil {
		return err
	}
	ms, err := b.deadMsgs(ctx, topic, 1<<30)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Header.Get(hdrID) != id {
			continue
		}
		j := deadJob(topic, m)
		nm := nats.NewMsg(b.subject(topic))
		nm.Data = j.Payload
		for _, h := range []string{hdrID, hdrKey, hdrMax, hdrPriority, hdrEnqueued} {
			if v := m.Header.Get(h); v != "" {
				nm.Header.Set(h, v)
			}
		}
		if err := b.publish(ctx, nm, fmt.Sprintf("%s.requeue.%d", id, m.Sequence)); err != nil {
			return err
		}
		return b.retry(ctx, true, func(ctx context.Context) error {
			err := b.dead.DeleteMsg(ctx, m.Sequence)
			if errors.Is(err, jetstream.ErrMsgNotFound) && ctx.Err() == nil {
				return nil // an earlier attempt deleted it
			}
			return err
		})
	}
	return queue.ErrNotFound
}

// Stats reads the consumer's and the dead-letter stream's counters; see
// the package's # Semantics.
func (b *Backend) Stats(ctx context.Context, topic string) (_ queue.Stats, err error) {
	if err := queue.ValidTopic(topic); err != nil {
		return queue.Stats{}, err
	}
	defer func() { err = classify(err) }()
	var s queue.Stats
	if err := b.check(ctx); err != nil {
		return s, err
	}
	c, err := b.consumer(ctx, topic)
	if err != nil {
		return s, err
	}
	var ci *jetstream.ConsumerInfo
	err = b.retry(ctx, true, func(ctx context.Context) (err error) {
		ci, err = c.Info(ctx)
		return err
	})
	if err != nil {
		return s, err
	}
	s.Ready = int64(ci.NumPending)
	s.Leased = int64(ci.NumAckPending)
	info, err := b.deadInfo(ctx, topic)
	if err != nil {
		return s, err
	}
	s.Dead = int64(info.State.Subjects[b.deadSubject(topic)])
	return s, nil
}
