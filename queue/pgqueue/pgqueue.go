// Package pgqueue is a [queue.Backend] on PostgreSQL through pgx v5: any
// number of worker processes on any number of machines lease from the same
// tables, with FOR UPDATE SKIP LOCKED instead of a central dispatcher.
//
// # Semantics
//
// Every call is one statement (a keyed Enqueue: one transaction;
// concurrent Acks: one statement for the batch), durable
// when it returns as far as the server's synchronous_commit promises (on
// by default). Delivery is at least once with fencing: a lease increments
// the row's token, and Ack, Nack and Extend update only WHERE id = $1 AND
// token = $2 AND state = leased, so a stale holder changes nothing and
// gets [queue.ErrLeaseLost]. A holder whose lease expired but was not
// taken over may still Ack.
//
// Lease takes the topic's rows that are ready (run_at passed) or whose
// lease expired, by priority (higher first), then run_at, then ID, skipping
// rows other transactions hold. A row whose lease expired on its last
// attempt goes to the dead letters ("lease expired") in the same
// statement. Lease expiry is evaluated by the server's clock when Lease
// runs: no sweeper is needed.
//
// Enqueue, Nack and Requeue send NOTIFY on the channel "<schema>_queue"
// with the topic as payload; a long-polling Lease waits on one LISTEN
// connection of the pool per Backend and on a timer for the topic's next
// due row.
//
// Payloads and idempotency keys are opaque bytes, stored as bytea, so any
// key (NUL and invalid UTF-8 included) round-trips exactly. A Nack cause
// is stored as text with NUL bytes removed and invalid UTF-8 replaced by
// U+FFFD. Errors a retry may cure (a dropped connection, a failover, a
// deadlock) satisfy [mailbricks.IsTemporary].
//
// A restart or failover of the server needs nothing from the caller but
// retries: the calls under way and those made while it is down fail with
// errors that satisfy [mailbricks.IsTemporary], and the same pool and
// Backend work again as soon as the server accepts connections (pgxpool
// replaces broken connections; a waiting long-poll Lease re-listens). An
// Enqueue or Ack that returned nil survives a crash of the server (a
// committed transaction, with PostgreSQL's default synchronous_commit);
// one that failed may have committed or not, so retry it with the same
// Key (Enqueue) or expect ErrLeaseLost (Ack of a job it completed).
// TestServerRestart (MAILBRICKS_LONG=1) restarts a private server twice,
// cleanly and as a crash, under 4 producers and 8 workers: 3,000 keyed
// jobs, every error temporary, none lost, none delivered again after a
// successful Ack, the first Ack 30 to 80 ms after the server is back.
//
// # Schema
//
// [Open] creates, if missing, the schema [Options.Schema] and applies the
// embedded migrations (migrations/*.sql) it has not applied yet, in one
// transaction under an advisory lock, recording them in the schema's
// mailbricks_migrations table (the mechanism pgmailbox and pgindex
// share). Version 1 is the schema of earlier releases, which it adopts;
// version 2 makes keys bytea. The result:
//
//	jobs(id bigserial PRIMARY KEY, topic text, payload bytea, key bytea,
//	     state smallint,      -- 1 ready or delayed, 2 leased, 3 dead
//	     attempt int, max_attempts int, priority int,
//	     token bigint,        -- fencing token, +1 per lease
//	     run_at timestamptz,  -- ready: leasable from; leased: lease
//	                          -- expiry; dead: time of death
//	     not_before timestamptz, enqueued_at timestamptz, last_error text)
//	  index jobs_due  (topic, priority DESC, run_at, id) WHERE state IN (1, 2)
//	  index jobs_dead (topic, run_at, id) WHERE state = 3
//	keys(topic text, key bytea, job_id bigint,
//	     done_at timestamptz, -- NULL while the job exists
//	     PRIMARY KEY (topic, key))
//
// An acknowledged job's row is deleted; its key row stays for
// [Options.KeyRetention] and is then deleted by a later Ack.
package pgqueue

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks/internal/pgerr"
	"github.com/mailbricks/mailbricks/internal/pgmigrate"
	"github.com/mailbricks/mailbricks/queue"
)

// Options configures a backend. A nil *Options and every zero field mean
// the default. Options are copied by [Open].
type Options struct {
	// Schema is the PostgreSQL schema of the tables, created if missing:
	// letters, digits and '_', starting with a letter or '_', at most 48
	// bytes. The default is "mailbricks_queue".
	Schema string
	// KeyRetention is how long an idempotency key is remembered after its
	// job was acknowledged. The default is 24 hours.
	KeyRetention time.Duration
}

// Backend is the PostgreSQL [queue.Backend]. It is safe for concurrent use.
type Backend struct {
	pool   *pgxpool.Pool
	opts   Options
	s      string // quoted schema
	chName string
	closed atomic.Bool
	lastGC atomic.Int64

	lmu      sync.Mutex
	lstarted bool
	lcancel  context.CancelFunc
	ldone    chan struct{}
	wake     map[string]chan struct{}
	closeCh  chan struct{}

	amu      sync.Mutex
	apending []*ackReq
	arunning bool
}

var _ queue.Backend = (*Backend)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Open applies the schema's migrations (see the package documentation) and
// returns a backend on pool. The caller owns pool and closes it after the
// backend.
func Open(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*Backend, error) {
	b := &Backend{pool: pool, wake: map[string]chan struct{}{}, closeCh: make(chan struct{})}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Schema == "" {
		b.opts.Schema = "mailbricks_queue"
	}
	if !pgmigrate.ValidSchema(b.opts.Schema) {
		return nil, fmt.Errorf("%w: pgqueue: schema name %q", queue.ErrInvalid, b.opts.Schema)
	}
	if b.opts.KeyRetention <= 0 {
		b.opts.KeyRetention = 24 * time.Hour
	}
	b.s = pgx.Identifier{b.opts.Schema}.Sanitize()
	b.chName = b.opts.Schema + "_queue"
	steps, err := pgmigrate.Load(migrations, "migrations", map[string]string{"schema": b.s})
	if err == nil {
		_, err = pgmigrate.Apply(ctx, pool, b.opts.Schema, "pgqueue", steps)
	}
	if err != nil {
		return nil, fmt.Errorf("pgqueue: migrate schema %s: %w", b.opts.Schema, classify(err))
	}
	return b, nil
}

// classify marks the engine's errors: see [pgerr.Classify].
func classify(err error) error { return pgerr.Classify(err, queue.ErrInvalid) }

// Close stops the LISTEN connection. It does not close the pool. It is
// idempotent; afterwards methods return [queue.ErrClosed].
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.closeCh)
	b.lmu.Lock()
	started, cancel, done := b.lstarted, b.lcancel, b.ldone
	b.lmu.Unlock()
	if started {
		cancel()
		<-done
	}
	return nil
}

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return queue.ErrClosed
	}
	return ctx.Err()
}

func usec(d time.Duration) int64 { return d.Microseconds() }

// Enqueue adds a job; see [queue.Backend].
func (b *Backend) Enqueue(ctx context.Context, topic string, payload []byte, o queue.EnqueueOptions) (string, error) {
	if err := queue.CheckEnqueue(topic, o); err != nil {
		return "", err
	}
	if err := b.check(ctx); err != nil {
		return "", err
	}
	if payload == nil {
		payload = []byte{}
	}
	var nb *time.Time
	if !o.NotBefore.IsZero() {
		nb = &o.NotBefore
	}
	insert := fmt.Sprintf(`WITH i AS (
	INSERT INTO %s.jobs (topic, payload, key, state, max_attempts, priority, run_at, not_before)
	VALUES ($1, $2, $3, 1, $4, $5, greatest(now(), $6::timestamptz), $6)
	RETURNING id)
SELECT id, pg_notify($7, $1) FROM i`, b.s)
	var id int64
	if o.Key == "" {
		if err := b.pool.QueryRow(ctx, insert, topic, payload, nil, o.MaxAttempts, o.Priority, nb, b.chName).Scan(&id, nil); err != nil {
			return "", classify(err)
		}
		return strconv.FormatInt(id, 10), nil
	}
	key := []byte(o.Key)
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		// Claim the key: insert it, or take over one whose retention ended.
		tag, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.keys (topic, key, job_id) VALUES ($1, $2, 0)
ON CONFLICT (topic, key) DO UPDATE SET job_id = 0, done_at = NULL
WHERE keys.done_at IS NOT NULL AND keys.done_at <= now() - $3 * interval '1 microsecond'`, b.s),
			topic, key, usec(b.opts.KeyRetention))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tx.QueryRow(ctx, fmt.Sprintf(`SELECT job_id FROM %s.keys WHERE topic = $1 AND key = $2`, b.s), topic, key).Scan(&id)
		}
		if err := tx.QueryRow(ctx, insert, topic, payload, key, o.MaxAttempts, o.Priority, nb, b.chName).Scan(&id, nil); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(`UPDATE %s.keys SET job_id = $3 WHERE topic = $1 AND key = $2`, b.s), topic, key, id)
		return err
	})
	if err != nil {
		return "", classify(err)
	}
	return strconv.FormatInt(id, 10), nil
}

const jobCols = `j.id, j.state, j.topic, j.payload, j.key, j.attempt, j.max_attempts, j.priority, j.token, j.run_at, j.enqueued_at, j.not_before, j.last_error`

func scanJob(row pgx.Row) (queue.Job, int16, error) {
	var (
		j     queue.Job
		id    int64
		state int16
		runAt time.Time
		tok   int64
		nb    *time.Time
		key   []byte
	)
	err := row.Scan(&id, &state, &j.Topic, &j.Payload, &key, &j.Attempt, &j.MaxAttempts, &j.Priority, &tok, &runAt, &j.EnqueuedAt, &nb, &j.LastError)
	if err != nil {
		return j, 0, err
	}
	j.ID = strconv.FormatInt(id, 10)
	j.Key = string(key)
	j.Token = uint64(tok)
	if nb != nil {
		j.NotBefore = *nb
	}
	if state == 2 {
		j.LeaseUntil = runAt
	}
	return j, state, nil
}

// Lease leases up to n jobs; see [queue.Backend].
func (b *Backend) Lease(ctx context.Context, topic string, n int, ttl, wait time.Duration) ([]queue.Job, error) {
	if err := queue.CheckLease(topic, n, ttl); err != nil {
		return nil, err
	}
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
		b.startListener()
	}
	for {
		ch := b.waitCh(topic)
		jobs, err := b.tryLease(ctx, topic, n, ttl)
		if err != nil || len(jobs) > 0 || wait <= 0 {
			return jobs, classify(err)
		}
		d := time.Until(deadline)
		if d <= 0 {
			return jobs, nil
		}
		var due *float64
		err = b.pool.QueryRow(ctx, fmt.Sprintf(`SELECT extract(epoch FROM min(run_at) - now())::float8 FROM %s.jobs WHERE topic = $1 AND state IN (1, 2)`, b.s), topic).Scan(&due)
		if err != nil {
			return nil, classify(err)
		}
		if due != nil {
			d = min(d, time.Duration(*due*float64(time.Second)))
		}
		d = max(d, 5*time.Millisecond)
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-t.C:
		case <-b.closeCh:
			t.Stop()
			return nil, queue.ErrClosed
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// maxLeaseConflicts bounds how many times one Lease statement is run
// again after PostgreSQL aborted it as a deadlock or serialization
// failure; the last such error is returned, marked temporary.
const maxLeaseConflicts = 5

func (b *Backend) tryLease(ctx context.Context, topic string, n int, ttl time.Duration) ([]queue.Job, error) {
	q := fmt.Sprintf(`WITH c AS (
	SELECT id FROM %[1]s.jobs
	WHERE topic = $1 AND state IN (1, 2) AND run_at <= now()
	ORDER BY priority DESC, run_at, id
	LIMIT $2
	FOR UPDATE SKIP LOCKED)
UPDATE %[1]s.jobs j SET
	state = CASE WHEN j.state = 2 AND j.attempt >= j.max_attempts THEN 3 ELSE 2 END,
	last_error = CASE WHEN j.state = 2 AND j.attempt >= j.max_attempts THEN 'lease expired' ELSE j.last_error END,
	attempt = CASE WHEN j.state = 2 AND j.attempt >= j.max_attempts THEN j.attempt ELSE j.attempt + 1 END,
	token = j.token + 1,
	run_at = CASE WHEN j.state = 2 AND j.attempt >= j.max_attempts THEN now() ELSE now() + $3 * interval '1 microsecond' END
FROM c WHERE j.id = c.id
RETURNING %[2]s`, b.s, jobCols)
	// FOR UPDATE SKIP LOCKED skips locked rows but still waits on a row
	// whose newer version (leased by another worker a moment ago) is
	// being deleted by an Ack, and keeps the lock it took on such a
	// version; an Ack batch can then wait on this statement, and
	// PostgreSQL aborts one of the two as a deadlock. Nothing of an
	// aborted lease was applied: run it again.
	conflicts := 0
	for {
		if err := b.check(ctx); err != nil {
			return nil, err
		}
		rows, err := b.pool.Query(ctx, q, topic, n, usec(ttl))
		if err != nil {
			if pgerr.IsConflict(err) && conflicts < maxLeaseConflicts {
				conflicts++
				continue
			}
			return nil, err
		}
		var jobs []queue.Job
		died := false
		for rows.Next() {
			j, state, err := scanJob(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			if state == 3 {
				died = true
				continue
			}
			jobs = append(jobs, j)
		}
		if err := rows.Err(); err != nil {
			if pgerr.IsConflict(err) && conflicts < maxLeaseConflicts {
				conflicts++
				continue
			}
			return nil, err
		}
		if len(jobs) > 0 || !died {
			sort.Slice(jobs, func(i, k int) bool {
				if jobs[i].Priority != jobs[k].Priority {
					return jobs[i].Priority > jobs[k].Priority
				}
				a, _ := strconv.ParseInt(jobs[i].ID, 10, 64)
				c, _ := strconv.ParseInt(jobs[k].ID, 10, 64)
				return a < c
			})
			return jobs, nil
		}
	}
}

func jobID(job queue.Job) (int64, bool) {
	id, err := strconv.ParseInt(job.ID, 10, 64)
	return id, err == nil
}

// Ack completes the job; see [queue.Backend].
//
// Concurrent Acks on one Backend are group-committed: while one statement
// runs, the Acks that arrive queue up and the next statement deletes them
// all (at most maxAckBatch) in one transaction, so N workers acknowledging
// at once pay one commit, not N. Each Ack still returns only after its own
// deletion is committed, and fencing is per job as before.
func (b *Backend) Ack(ctx context.Context, job queue.Job) error {
	if err := queue.CheckJob(job); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	id, ok := jobID(job)
	if !ok {
		return queue.ErrLeaseLost
	}
	r := &ackReq{id: id, token: int64(job.Token), done: make(chan error, 1)}
	b.amu.Lock()
	b.apending = append(b.apending, r)
	if !b.arunning {
		b.arunning = true
		go b.flushAcks()
	}
	b.amu.Unlock()
	select {
	case err := <-r.done:
		if err == nil {
			b.maybeGC(ctx)
		}
		return err
	case <-ctx.Done():
		// The deletion may still commit; as with any statement whose
		// caller gave up, the outcome is unknown to this caller.
		return ctx.Err()
	}
}

// maxAckBatch bounds the jobs one Ack statement deletes.
const maxAckBatch = 512

// jt is a job ID with a fencing token.
type jt struct{ id, token int64 }

// ackReq is one Ack waiting for its batch.
type ackReq struct {
	id, token int64
	done      chan error
}

// flushAcks runs Ack batches until none is pending. One runs per Backend
// at a time.
func (b *Backend) flushAcks() {
	for {
		b.amu.Lock()
		batch := b.apending
		if len(batch) > maxAckBatch {
			batch = batch[:maxAckBatch:maxAckBatch]
			b.apending = append([]*ackReq(nil), b.apending[maxAckBatch:]...)
		} else {
			b.apending = nil
		}
		if len(batch) == 0 {
			b.arunning = false
			b.amu.Unlock()
			return
		}
		b.amu.Unlock()
		b.ackBatch(batch)
	}
}

// ackBatch deletes the batch's jobs in one statement and answers each
// request. A job acknowledged twice in one batch with the same token is
// committed once: the first request gets the outcome and the others
// ErrLeaseLost, as if they had come after it.
func (b *Backend) ackBatch(batch []*ackReq) {
	first := make(map[jt]*ackReq, len(batch))
	var ids, tokens []int64
	for _, r := range batch {
		k := jt{r.id, r.token}
		if _, dup := first[k]; dup {
			r.done <- queue.ErrLeaseLost
			continue
		}
		first[k] = r
		ids = append(ids, r.id)
		tokens = append(tokens, r.token)
	}
	// Callers may give up (their ctx) but the batch is shared, so it runs
	// to completion on its own context; the pool's connection and
	// statement timeouts bound it.
	ctx := context.Background()
	deleted, err := b.ackStatement(ctx, ids, tokens)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "40P01" && len(ids) > 1 {
		// A deadlock with another process's batch over the same rows
		// (both acking a job, one of them stale): the server rolled this
		// batch back; retry job by job, which cannot deadlock.
		deleted, err = map[jt]bool{}, nil
		for i := range ids {
			d, e := b.ackStatement(ctx, ids[i:i+1], tokens[i:i+1])
			if e != nil {
				err = e
				break
			}
			for k := range d {
				deleted[k] = true
			}
		}
	}
	for k, r := range first {
		switch {
		case deleted[k]:
			r.done <- nil
		case err != nil:
			r.done <- classify(err)
		default:
			r.done <- queue.ErrLeaseLost
		}
	}
}

// ackStatement deletes the leased jobs among (ids[i], tokens[i]) and marks
// their keys done, returning the (ID, token) pairs deleted.
func (b *Backend) ackStatement(ctx context.Context, ids, tokens []int64) (map[jt]bool, error) {
	rows, err := b.pool.Query(ctx, fmt.Sprintf(`WITH a AS (
	SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS a(id, token) ORDER BY id),
d AS (
	DELETE FROM %[1]s.jobs j USING a WHERE j.id = a.id AND j.token = a.token AND j.state = 2
	RETURNING j.id, j.token, j.topic, j.key),
u AS (UPDATE %[1]s.keys k SET done_at = now() FROM d WHERE k.topic = d.topic AND k.key = d.key AND k.job_id = d.id)
SELECT id, token FROM d`, b.s), ids, tokens)
	if err != nil {
		return nil, err
	}
	deleted := make(map[jt]bool, len(ids))
	for rows.Next() {
		var k jt
		if err := rows.Scan(&k.id, &k.token); err != nil {
			rows.Close()
			return nil, err
		}
		deleted[k] = true
	}
	return deleted, rows.Err()
}

// maybeGC deletes idempotency keys past their retention, at most once a
// minute per Backend.
func (b *Backend) maybeGC(ctx context.Context) {
	now := time.Now().UnixNano()
	last := b.lastGC.Load()
	if now-last < int64(time.Minute) || !b.lastGC.CompareAndSwap(last, now) {
		return
	}
	_, _ = b.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s.keys WHERE done_at IS NOT NULL AND done_at <= now() - $1 * interval '1 microsecond'`, b.s), usec(b.opts.KeyRetention))
}

// Nack fails the job's attempt; see [queue.Backend].
func (b *Backend) Nack(ctx context.Context, job queue.Job, retryAfter time.Duration, cause string) error {
	if err := queue.CheckJob(job); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	id, ok := jobID(job)
	if !ok {
		return queue.ErrLeaseLost
	}
	var topic string
	err := b.pool.QueryRow(ctx, fmt.Sprintf(`WITH u AS (
	UPDATE %s.jobs SET
		state = CASE WHEN attempt >= max_attempts THEN 3 ELSE 1 END,
		run_at = CASE WHEN attempt >= max_attempts THEN now() ELSE now() + $3 * interval '1 microsecond' END,
		last_error = $4
	WHERE id = $1 AND token = $2 AND state = 2
	RETURNING topic)
SELECT topic, pg_notify($5, topic) FROM u`, b.s), id, int64(job.Token), usec(retryAfter), cleanText(cause), b.chName).Scan(&topic, nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return queue.ErrLeaseLost
	}
	return classify(err)
}

// Extend moves the job's lease expiry; see [queue.Backend].
func (b *Backend) Extend(ctx context.Context, job queue.Job, ttl time.Duration) (time.Time, error) {
	if err := queue.CheckExtend(job, ttl); err != nil {
		return time.Time{}, err
	}
	if err := b.check(ctx); err != nil {
		return time.Time{}, err
	}
	id, ok := jobID(job)
	if !ok {
		return time.Time{}, queue.ErrLeaseLost
	}
	var until time.Time
	err := b.pool.QueryRow(ctx, fmt.Sprintf(`UPDATE %s.jobs SET run_at = now() + $3 * interval '1 microsecond'
WHERE id = $1 AND token = $2 AND state = 2 RETURNING run_at`, b.s), id, int64(job.Token), usec(ttl)).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, queue.ErrLeaseLost
	}
	return until, classify(err)
}

// Dead lists dead letters; see [queue.Backend].
func (b *Backend) Dead(ctx context.Context, topic string, limit int) ([]queue.Job, error) {
	if err := queue.ValidTopic(topic); err != nil {
		return nil, err
	}
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s.jobs j WHERE topic = $1 AND state = 3 ORDER BY run_at, id LIMIT $2`, jobCols, b.s), topic, limit)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var jobs []queue.Job
	for rows.Next() {
		j, _, err := scanJob(rows)
		if err != nil {
			return nil, classify(err)
		}
		jobs = append(jobs, j)
	}
	return jobs, classify(rows.Err())
}

// Requeue moves a dead letter back to the ready jobs; see [queue.Backend].
func (b *Backend) Requeue(ctx context.Context, topic, sid string) error {
	if err := queue.ValidTopic(topic); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	id, err := strconv.ParseInt(sid, 10, 64)
	if err != nil {
		return queue.ErrNotFound
	}
	tag, err := b.pool.Exec(ctx, fmt.Sprintf(`WITH u AS (
	UPDATE %s.jobs SET state = 1, attempt = 0, run_at = now() WHERE id = $1 AND topic = $2 AND state = 3 RETURNING topic)
SELECT pg_notify($3, topic) FROM u`, b.s), id, topic, b.chName)
	if err != nil {
		return classify(err)
	}
	if tag.RowsAffected() == 0 {
		return queue.ErrNotFound
	}
	return nil
}

// Stats counts the topic's jobs by state with one aggregate query.
func (b *Backend) Stats(ctx context.Context, topic string) (queue.Stats, error) {
	if err := queue.ValidTopic(topic); err != nil {
		return queue.Stats{}, err
	}
	var s queue.Stats
	if err := b.check(ctx); err != nil {
		return s, err
	}
	err := b.pool.QueryRow(ctx, fmt.Sprintf(`SELECT
	count(*) FILTER (WHERE state IN (1, 2) AND run_at <= now()),
	count(*) FILTER (WHERE state = 2 AND run_at > now()),
	count(*) FILTER (WHERE state = 1 AND run_at > now()),
	count(*) FILTER (WHERE state = 3)
FROM %s.jobs WHERE topic = $1`, b.s), topic).Scan(&s.Ready, &s.Leased, &s.Delayed, &s.Dead)
	return s, classify(err)
}

// cleanText makes s storable in a text column: NUL bytes removed,
// invalid UTF-8 replaced by U+FFFD.
func cleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func (b *Backend) waitCh(topic string) chan struct{} {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	ch, ok := b.wake[topic]
	if !ok {
		ch = make(chan struct{})
		b.wake[topic] = ch
	}
	return ch
}

// wakeUp wakes the waiters of topic, or of every topic if topic is "".
func (b *Backend) wakeUp(topic string) {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	for t, ch := range b.wake {
		if topic == "" || t == topic {
			close(ch)
			delete(b.wake, t)
		}
	}
}

// startListener starts, once, the goroutine that holds a LISTEN
// connection and wakes waiting Leases; it reconnects after errors and
// wakes every waiter then, since notifications may have been missed.
func (b *Backend) startListener() {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if b.lstarted || b.closed.Load() {
		return
	}
	b.lstarted = true
	ctx, cancel := context.WithCancel(context.Background())
	b.lcancel = cancel
	b.ldone = make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(b.ldone)
		first := true
		for ctx.Err() == nil {
			err := b.listen(ctx, func() {
				if first {
					first = false
					close(ready)
				}
			})
			if ctx.Err() != nil {
				break
			}
			_ = err
			b.wakeUp("")
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		if first {
			close(ready)
		}
	}()
	// Wait briefly for LISTEN, so that a notification sent right after this
	// Lease's first attempt is not missed; the timer covers a slow start.
	b.lmu.Unlock()
	select {
	case <-ready:
	case <-time.After(2 * time.Second):
	}
	b.lmu.Lock()
}

func (b *Backend) listen(ctx context.Context, listening func()) error {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.chName}.Sanitize()); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: stop listening on it.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(c, "UNLISTEN *"); err != nil {
			conn.Conn().Close(c)
		}
	}()
	listening()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		b.wakeUp(n.Payload)
	}
}
