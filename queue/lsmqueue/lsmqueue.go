// Package lsmqueue is the embedded [queue.Backend] on the lsm engine: one
// DB directory holds every topic's jobs, leases, dead letters and
// idempotency keys.
//
// # Semantics
//
// Every state change (enqueue, lease, ack, nack, extend, requeue) is one
// atomic lsm batch written with Sync before the call returns, so a crash
// loses no acknowledged enqueue and no un-acked job: after a restart,
// jobs leased before the crash are leasable again at once, because the
// directory is locked to one process and Open ends every lease it finds
// (the process that held it is gone). Concurrent calls share fdatasyncs (the engine's group commit),
// so throughput grows with the number of producers and workers.
// [Options].AckNoSync relaxes this for Ack alone: an unsynced Ack
// survives a process crash, and one lost to a machine crash makes the job
// run again (a duplicate, never a loss).
//
// # State records
//
// [Backend.GetState] and [Backend.SetState] keep small versioned records
// with compare-and-set beside the jobs, in the same DB (and write-ahead
// log), for handlers that keep per-job state, such as the delivery
// package's outbound worker (they implement its StateStore). They are
// synced unless [Options].StateNoSync is set.
//
// Delivery is at least once with fencing: each lease increments the job's
// token, and Ack, Nack and Extend compare tokens in the same critical
// section as their write, so a stale holder gets [queue.ErrLeaseLost]. A
// holder whose lease expired but was not taken over may still Ack.
//
// Lease takes first the jobs whose lease expired (oldest expiry first),
// then ready jobs by priority (higher first), ready time and enqueue order.
// A job whose lease expires on its last attempt goes to the dead letters
// with LastError "lease expired" when the next Lease finds it. No
// background process is involved: lease expiry is evaluated at Lease time.
//
// Long polls wait on an in-process notification, raised by every enqueue,
// nack and requeue, and on a timer for the earliest delayed job or lease
// expiry. Lease expiry and NotBefore use [Options.Now]; the timer runs on
// the real clock.
//
// # Memory budget
//
// Jobs live in the DB, never in memory: what the backend holds grows with
// the number of topics (a scan hint of two keys per topic, a wake channel
// per topic while a Lease waits) and of calls in flight, not with jobs or
// idempotency keys. The lsm engine's block cache and memtables are its
// budget: [Options].LSM's CacheSize (default 64 MiB) and MemTableSize
// (default 64 MiB, at most three memtables). The lsm package doc's
// "Memory" lists the rest of a DB's memory and how to set the Go memory
// limit from the budgets.
//
// The DB directory is locked to one process; workers in other processes
// need a server backend (pgqueue, natsqueue) or an RPC front end.
//
// Record and key layout: see the comment at the top of record.go.
package lsmqueue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
)

// Options configures a backend. A nil *Options and every zero field mean
// the default. Options are copied by [Open].
type Options struct {
	// FS is the file system of the DB directory. The default is
	// [vfs.Default].
	FS vfs.FS
	// Now is the clock for lease expiry, NotBefore and retry times. The
	// default is time.Now.
	Now func() time.Time
	// KeyRetention is how long an idempotency key is remembered after its
	// job was acknowledged. The default is 24 hours.
	KeyRetention time.Duration
	// LSM tunes the engine; its FS and Merger are ignored. The default is
	// the engine's defaults.
	LSM *lsm.Options
	// Queue configures the [queue.Queue] that [OpenQueue] returns. The
	// default is nil: queue's defaults.
	Queue *queue.Options
	// AckNoSync writes acknowledgements without waiting for fdatasync: an
	// Ack is handed to the OS within microseconds and then survives a
	// crash of the process (SIGKILL), but a crash of the machine may undo
	// it, and the job is then leased and handled again once its lease
	// expires (a duplicate, never a lost job). Every other change (enqueue,
	// lease, nack, extend, requeue) stays synced, and a later synced write
	// makes every earlier Ack durable too (one write-ahead log). For
	// handlers that are idempotent anyway and keep their own state. The
	// default is false: every Ack is synced.
	AckNoSync bool
	// StateNoSync writes the records of [Backend.SetState] without waiting
	// for fdatasync, with the durability of AckNoSync: they survive a
	// crash of the process but a crash of the machine may lose the latest
	// ones (a later synced write of the backend makes them durable). The
	// default is false: SetState is synced.
	StateNoSync bool
}

// Backend is the lsm-backed [queue.Backend]. It is safe for concurrent use.
type Backend struct {
	db   *lsm.DB
	opts Options

	mu     sync.RWMutex // held shared by operations, exclusively by Close
	closed atomic.Bool

	claimMu sync.Mutex
	claims  map[string]chan struct{}

	wakeMu  sync.Mutex
	wake    map[string]chan struct{}
	closeCh chan struct{}

	lastGC atomic.Int64

	hintMu sync.Mutex
	hints  map[string]*hint
}

// hint remembers, per topic, lower bounds for the R and L key spaces: a
// queue consumes its keys from the front, so their tombstones pile up
// there until compaction, and a scan that began at the prefix every time
// would step over all of them. Every key inserted into R or L lowers the
// bound (after its batch committed); a scan raises it to the first key it
// saw, unless an insert happened meanwhile (version changed).
type hint struct {
	ready, lease []byte
	version      uint64
}

func (b *Backend) hintFor(topic string) (ready, lease []byte, version uint64) {
	b.hintMu.Lock()
	defer b.hintMu.Unlock()
	h := b.hints[topic]
	if h == nil {
		return nil, nil, 0
	}
	return h.ready, h.lease, h.version
}

func (b *Backend) lowerHint(topic string, readyKeys, leaseKeys [][]byte) {
	b.hintMu.Lock()
	defer b.hintMu.Unlock()
	h := b.hints[topic]
	if h == nil {
		h = &hint{}
		b.hints[topic] = h
	}
	h.version++
	for _, k := range readyKeys {
		if h.ready != nil && bytes.Compare(k, h.ready) < 0 {
			h.ready = k
		}
	}
	for _, k := range leaseKeys {
		if h.lease != nil && bytes.Compare(k, h.lease) < 0 {
			h.lease = k
		}
	}
}

func (b *Backend) raiseHint(topic string, version uint64, ready, lease []byte) {
	b.hintMu.Lock()
	defer b.hintMu.Unlock()
	h := b.hints[topic]
	if h == nil {
		if version != 0 {
			return
		}
		h = &hint{}
		b.hints[topic] = h
	} else if h.version != version {
		return
	}
	h.ready, h.lease = ready, lease
}

var _ queue.Backend = (*Backend)(nil)

// Open opens (creating if needed) the queue DB in dir.
func Open(dir string, opts *Options) (*Backend, error) {
	b := &Backend{hints: map[string]*hint{}, claims: map[string]chan struct{}{}, wake: map[string]chan struct{}{}, closeCh: make(chan struct{})}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Now == nil {
		b.opts.Now = time.Now
	}
	if b.opts.KeyRetention <= 0 {
		b.opts.KeyRetention = 24 * time.Hour
	}
	var lo lsm.Options
	if b.opts.LSM != nil {
		lo = *b.opts.LSM
	}
	lo.FS = b.opts.FS
	lo.Merger = nil
	db, err := lsm.Open(dir, &lo)
	if err != nil {
		return nil, fmt.Errorf("lsmqueue: open %s: %w", dir, err)
	}
	b.db = db
	if err := b.endOrphanLeases(); err != nil {
		db.Close()
		return nil, fmt.Errorf("lsmqueue: open %s: %w", dir, err)
	}
	return b, nil
}

// endOrphanLeases makes every lease found at Open expire now. The
// directory is locked to one process, so such a lease was granted by a
// process that has exited (crashed, killed or closed with a job in hand):
// nobody can finish its job, and waiting out its TTL would only delay the
// rerun. The tokens are kept, so a holder in this process that closed and
// reopened the backend may still Ack until another Lease takes the job.
func (b *Backend) endOrphanLeases() error {
	now := nanos(b.opts.Now())
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: []byte{spaceLease}, UpperBound: []byte{spaceLease + 1}})
	if err != nil {
		return err
	}
	type orphan struct {
		key   []byte
		topic string
		id    []byte
	}
	var orphans []orphan
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		z := bytes.IndexByte(k, 0)
		if z < 1 || len(k) != z+1+8+16 {
			continue // not a lease key this version writes; Lease skips it too
		}
		if int64(binary.BigEndian.Uint64(k[z+1:])) <= now {
			continue // already expired
		}
		orphans = append(orphans, orphan{key: bytes.Clone(k), topic: string(k[1:z]), id: bytes.Clone(k[z+9:])})
	}
	if err := it.Close(); err != nil {
		return err
	}
	for len(orphans) > 0 {
		n := min(len(orphans), 1000)
		batch := b.db.NewBatch()
		for _, o := range orphans[:n] {
			r, err := b.get(o.id)
			if errors.Is(err, lsm.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if r.state != stateLeased || !bytes.Equal(timedKey(spaceLease, o.topic, r.at, o.id), o.key) {
				continue
			}
			batch.Delete(o.key)
			r.at = now
			batch.Set(timedKey(spaceLease, o.topic, now, o.id), nil)
			batch.Set(jobKey(o.id), r.encode())
		}
		if err := batch.Commit(lsm.Sync); err != nil {
			return err
		}
		orphans = orphans[n:]
	}
	return nil
}

// Close closes the DB. It is idempotent; afterwards methods return
// [queue.ErrClosed].
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.closeCh)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.db.Close()
}

func (b *Backend) enter() error {
	b.mu.RLock()
	if b.closed.Load() {
		b.mu.RUnlock()
		return queue.ErrClosed
	}
	return nil
}

func (b *Backend) leave() { b.mu.RUnlock() }

// claim serializes read-modify-write sequences on one name (a job ID or an
// idempotency key): lsm has no transactions, so each job's state changes
// take its claim, read the record, check it and commit a batch before
// releasing it.
func (b *Backend) claim(name string) func() {
	for {
		b.claimMu.Lock()
		ch, busy := b.claims[name]
		if !busy {
			ch = make(chan struct{})
			b.claims[name] = ch
			b.claimMu.Unlock()
			return func() { b.release(name, ch) }
		}
		b.claimMu.Unlock()
		<-ch
	}
}

func (b *Backend) tryClaim(name string) (func(), bool) {
	b.claimMu.Lock()
	defer b.claimMu.Unlock()
	if _, busy := b.claims[name]; busy {
		return nil, false
	}
	ch := make(chan struct{})
	b.claims[name] = ch
	return func() { b.release(name, ch) }, true
}

func (b *Backend) release(name string, ch chan struct{}) {
	b.claimMu.Lock()
	delete(b.claims, name)
	b.claimMu.Unlock()
	close(ch)
}

func (b *Backend) waitCh(topic string) chan struct{} {
	b.wakeMu.Lock()
	defer b.wakeMu.Unlock()
	ch, ok := b.wake[topic]
	if !ok {
		ch = make(chan struct{})
		b.wake[topic] = ch
	}
	return ch
}

func (b *Backend) notify(topic string) {
	b.wakeMu.Lock()
	defer b.wakeMu.Unlock()
	if ch, ok := b.wake[topic]; ok {
		close(ch)
		delete(b.wake, topic)
	}
}

func parseID(id string) ([]byte, error) {
	m, err := mailbricks.ParseMessageID(id)
	if err != nil {
		return nil, fmt.Errorf("%w: job ID %q", queue.ErrNotFound, id)
	}
	return m[:], nil
}

func idString(raw []byte) string {
	var m mailbricks.MessageID
	copy(m[:], raw)
	return m.String()
}

func (b *Backend) get(id []byte) (*record, error) {
	v, err := b.db.Get(jobKey(id))
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("%w: job %s", err, idString(id))
	}
	return r, nil
}

// Enqueue adds a job; see [queue.Backend].
func (b *Backend) Enqueue(ctx context.Context, topic string, payload []byte, o queue.EnqueueOptions) (string, error) {
	if err := queue.CheckEnqueue(topic, o); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := b.enter(); err != nil {
		return "", err
	}
	defer b.leave()
	now := nanos(b.opts.Now())
	batch := b.db.NewBatch()
	if o.Key != "" {
		defer b.claim("k\x00" + topic + "\x00" + o.Key)()
		v, err := b.db.Get(keyKey(topic, o.Key))
		switch {
		case err == nil && len(v) == 24:
			done := int64(binary.BigEndian.Uint64(v[16:]))
			if done == 0 || done+int64(b.opts.KeyRetention) > now {
				return idString(v[:16]), nil
			}
			batch.Delete(expKey(done+int64(b.opts.KeyRetention), topic, o.Key))
		case err == nil:
			return "", fmt.Errorf("lsmqueue: corrupt key entry %s/%q", topic, o.Key)
		case !errors.Is(err, lsm.ErrNotFound):
			return "", err
		}
	}
	mid := mailbricks.NewMessageID()
	id := mid[:]
	r := &record{
		state:    stateReady,
		maxAtt:   uint64(o.MaxAttempts),
		priority: int64(o.Priority),
		enqueued: now,
		at:       now,
		topic:    topic,
		key:      o.Key,
		payload:  payload,
	}
	if !o.NotBefore.IsZero() {
		r.notBefore = nanos(o.NotBefore)
		r.at = max(now, r.notBefore)
	}
	batch.Set(jobKey(id), r.encode())
	rk := readyKey(topic, r.priority, r.at, id)
	batch.Set(rk, nil)
	if o.Key != "" {
		batch.Set(keyKey(topic, o.Key), binary.BigEndian.AppendUint64(append([]byte(nil), id...), 0))
	}
	if err := batch.Commit(lsm.Sync); err != nil {
		return "", err
	}
	b.lowerHint(topic, [][]byte{rk}, nil)
	b.notify(topic)
	return mid.String(), nil
}

// candidate is an index entry a Lease scan found.
type candidate struct {
	id      []byte
	key     []byte // the R or L key
	leased  bool
	release func()
}

// Lease leases up to n jobs; see [queue.Backend].
//
// The scan reads the L key space of the topic from its start (the oldest
// expiries) while entries have expired, then each priority band of the R
// key space from its start while entries are due, skipping to the next
// band at the first entry that is not. Each candidate is claimed, its
// record read and checked against the index entry (another Lease may have
// taken it since the scan began), and all taken jobs are written in one
// synced batch. With nothing to take, the earliest future expiry or ready
// time seen by the scan bounds the long-poll timer.
func (b *Backend) Lease(ctx context.Context, topic string, n int, ttl, wait time.Duration) ([]queue.Job, error) {
	if err := queue.CheckLease(topic, n, ttl); err != nil {
		return nil, err
	}
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	for {
		ch := b.waitCh(topic)
		jobs, next, err := b.tryLease(ctx, topic, n, ttl)
		if err != nil || len(jobs) > 0 || wait <= 0 {
			return jobs, err
		}
		d := time.Until(deadline)
		if d <= 0 {
			return jobs, nil
		}
		if next != 0 {
			d = min(d, time.Duration(next-nanos(b.opts.Now())))
		}
		d = max(d, time.Millisecond)
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

func (b *Backend) tryLease(ctx context.Context, topic string, n int, ttl time.Duration) ([]queue.Job, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := b.enter(); err != nil {
		return nil, 0, err
	}
	defer b.leave()
	for {
		now := nanos(b.opts.Now())
		cands, next, err := b.scan(topic, n, now)
		if err != nil {
			return nil, 0, err
		}
		if len(cands) == 0 {
			return nil, next, nil
		}
		jobs, died, err := b.take(topic, cands, now, ttl)
		if err != nil || len(jobs) > 0 || !died {
			return jobs, next, err
		}
		// Every candidate went to the dead letters: look again.
	}
}

func (b *Backend) scan(topic string, n int, now int64) ([]candidate, int64, error) {
	var cands []candidate
	var next int64
	skipped := false
	seen := func(at int64) {
		if next == 0 || at < next {
			next = at
		}
	}
	add := func(key, id []byte, leased bool) {
		rel, ok := b.tryClaim("j" + string(id))
		if !ok {
			skipped = true
			return
		}
		cands = append(cands, candidate{id: append([]byte(nil), id...), key: append([]byte(nil), key...), leased: leased, release: rel})
	}
	fail := func(err error) ([]candidate, int64, error) {
		for _, c := range cands {
			c.release()
		}
		return nil, 0, err
	}

	readyHint, leaseHint, version := b.hintFor(topic)
	var firstReady, firstLease []byte
	lp := topicPrefix(spaceLease, topic)
	lend := lsm.PrefixUpperBound(lp)
	lstart := lp
	if leaseHint != nil {
		lstart = leaseHint
	}
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: lstart, UpperBound: lend})
	if err != nil {
		return nil, 0, err
	}
	ok := it.First()
	firstLease = lend
	if ok {
		firstLease = append([]byte(nil), it.Key()...)
	}
	for ; ok && len(cands) < n; ok = it.Next() {
		k := it.Key()
		if len(k) != len(lp)+24 {
			it.Close()
			return fail(fmt.Errorf("lsmqueue: corrupt lease key %x", k))
		}
		at := int64(binary.BigEndian.Uint64(k[len(lp):]))
		if at > now {
			seen(at)
			break
		}
		add(k, k[len(lp)+8:], true)
	}
	if err := it.Close(); err != nil {
		return fail(err)
	}

	rp := topicPrefix(spaceReady, topic)
	rend := lsm.PrefixUpperBound(rp)
	rstart := rp
	if readyHint != nil {
		rstart = readyHint
	}
	it, err = b.db.NewIter(&lsm.IterOptions{LowerBound: rstart, UpperBound: rend})
	if err != nil {
		return fail(err)
	}
	ok = it.First()
	firstReady = rend
	if ok {
		firstReady = append([]byte(nil), it.Key()...)
	}
	for ok && len(cands) < n {
		k := it.Key()
		if len(k) != len(rp)+28 {
			it.Close()
			return fail(fmt.Errorf("lsmqueue: corrupt ready key %x", k))
		}
		at := int64(binary.BigEndian.Uint64(k[len(rp)+4:]))
		if at <= now {
			add(k, k[len(rp)+12:], false)
			ok = it.Next()
			continue
		}
		seen(at)
		band := binary.BigEndian.Uint32(k[len(rp):])
		if band == ^uint32(0) {
			break
		}
		ok = it.SeekGE(binary.BigEndian.AppendUint32(append([]byte(nil), rp...), band+1))
	}
	if err := it.Close(); err != nil {
		return fail(err)
	}
	// Each scan's first key bounds every live key of its space.
	b.raiseHint(topic, version, firstReady, firstLease)
	if skipped {
		// A job busy with another call may be leasable in a moment.
		seen(now + int64(5*time.Millisecond))
	}
	return cands, next, nil
}

// take leases the claimed candidates in one batch and releases the claims.
func (b *Backend) take(topic string, cands []candidate, now int64, ttl time.Duration) ([]queue.Job, bool, error) {
	defer func() {
		for _, c := range cands {
			c.release()
		}
	}()
	batch := b.db.NewBatch()
	var jobs []queue.Job
	var leaseKeys [][]byte
	died := false
	until := now + int64(ttl)
	for _, c := range cands {
		r, err := b.get(c.id)
		if errors.Is(err, lsm.ErrNotFound) {
			continue // acked since the scan
		}
		if err != nil {
			return nil, false, err
		}
		var want []byte
		if c.leased {
			if r.state != stateLeased {
				continue
			}
			want = timedKey(spaceLease, topic, r.at, c.id)
		} else {
			if r.state != stateReady {
				continue
			}
			want = readyKey(topic, r.priority, r.at, c.id)
		}
		if !bytes.Equal(want, c.key) {
			continue // changed since the scan
		}
		batch.Delete(c.key)
		if c.leased && r.attempt >= r.maxAtt {
			r.state, r.at, r.lastError = stateDead, now, "lease expired"
			batch.Set(timedKey(spaceDead, topic, now, c.id), nil)
			batch.Set(jobKey(c.id), r.encode())
			died = true
			continue
		}
		r.state, r.at = stateLeased, until
		r.attempt++
		r.token++
		lk := timedKey(spaceLease, topic, until, c.id)
		leaseKeys = append(leaseKeys, lk)
		batch.Set(lk, nil)
		batch.Set(jobKey(c.id), r.encode())
		jobs = append(jobs, r.job(idString(c.id)))
	}
	if batch.Empty() {
		return nil, false, nil
	}
	if err := batch.Commit(lsm.Sync); err != nil {
		return nil, false, err
	}
	b.lowerHint(topic, nil, leaseKeys)
	return jobs, died, nil
}

// held claims job's ID and returns its record if job holds its current
// lease.
func (b *Backend) held(job queue.Job) ([]byte, *record, func(), error) {
	id, err := parseID(job.ID)
	if err != nil {
		return nil, nil, nil, queue.ErrLeaseLost
	}
	rel := b.claim("j" + string(id))
	r, err := b.get(id)
	if errors.Is(err, lsm.ErrNotFound) {
		rel()
		return nil, nil, nil, queue.ErrLeaseLost
	}
	if err != nil {
		rel()
		return nil, nil, nil, err
	}
	if r.state != stateLeased || r.token != job.Token || r.topic != job.Topic {
		rel()
		return nil, nil, nil, queue.ErrLeaseLost
	}
	return id, r, rel, nil
}

// Ack completes the job; see [queue.Backend].
func (b *Backend) Ack(ctx context.Context, job queue.Job) error {
	if err := queue.CheckJob(job); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	id, r, rel, err := b.held(job)
	if err != nil {
		return err
	}
	defer rel()
	now := nanos(b.opts.Now())
	batch := b.db.NewBatch()
	batch.Delete(jobKey(id))
	batch.Delete(timedKey(spaceLease, r.topic, r.at, id))
	if r.key != "" {
		exp := now + int64(b.opts.KeyRetention)
		batch.Set(keyKey(r.topic, r.key), binary.BigEndian.AppendUint64(append([]byte(nil), id...), uint64(now)))
		batch.Set(expKey(exp, r.topic, r.key), nil)
	}
	wo := lsm.Sync
	if b.opts.AckNoSync {
		wo = lsm.NoSync
	}
	if err := batch.Commit(wo); err != nil {
		return err
	}
	b.maybeGC(now)
	return nil
}

// Nack fails the job's attempt; see [queue.Backend].
func (b *Backend) Nack(ctx context.Context, job queue.Job, retryAfter time.Duration, cause string) error {
	if err := queue.CheckJob(job); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	id, r, rel, err := b.held(job)
	if err != nil {
		return err
	}
	defer rel()
	now := nanos(b.opts.Now())
	batch := b.db.NewBatch()
	batch.Delete(timedKey(spaceLease, r.topic, r.at, id))
	r.lastError = cause
	if r.attempt >= r.maxAtt {
		r.state, r.at = stateDead, now
		batch.Set(timedKey(spaceDead, r.topic, now, id), nil)
	} else {
		r.state, r.at = stateReady, now+int64(retryAfter)
		rk := readyKey(r.topic, r.priority, r.at, id)
		batch.Set(rk, nil)
		defer b.lowerHint(r.topic, [][]byte{rk}, nil)
	}
	batch.Set(jobKey(id), r.encode())
	if err := batch.Commit(lsm.Sync); err != nil {
		return err
	}
	b.notify(r.topic)
	return nil
}

// Extend moves the job's lease expiry; see [queue.Backend].
func (b *Backend) Extend(ctx context.Context, job queue.Job, ttl time.Duration) (time.Time, error) {
	if err := queue.CheckExtend(job, ttl); err != nil {
		return time.Time{}, err
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if err := b.enter(); err != nil {
		return time.Time{}, err
	}
	defer b.leave()
	id, r, rel, err := b.held(job)
	if err != nil {
		return time.Time{}, err
	}
	defer rel()
	batch := b.db.NewBatch()
	batch.Delete(timedKey(spaceLease, r.topic, r.at, id))
	r.at = nanos(b.opts.Now()) + int64(ttl)
	lk := timedKey(spaceLease, r.topic, r.at, id)
	batch.Set(lk, nil)
	batch.Set(jobKey(id), r.encode())
	if err := batch.Commit(lsm.Sync); err != nil {
		return time.Time{}, err
	}
	b.lowerHint(r.topic, nil, [][]byte{lk})
	return time.Unix(0, r.at), nil
}

// Dead lists dead letters; see [queue.Backend].
func (b *Backend) Dead(ctx context.Context, topic string, limit int) ([]queue.Job, error) {
	if err := queue.ValidTopic(topic); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	dp := topicPrefix(spaceDead, topic)
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: dp, UpperBound: lsm.PrefixUpperBound(dp)})
	if err != nil {
		return nil, err
	}
	var ids [][]byte
	for ok := it.First(); ok && len(ids) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) != len(dp)+24 {
			it.Close()
			return nil, fmt.Errorf("lsmqueue: corrupt dead key %x", k)
		}
		ids = append(ids, append([]byte(nil), k[len(dp)+8:]...))
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	jobs := make([]queue.Job, 0, len(ids))
	for _, id := range ids {
		r, err := b.get(id)
		if errors.Is(err, lsm.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.state == stateDead {
			jobs = append(jobs, r.job(idString(id)))
		}
	}
	return jobs, nil
}

// Requeue moves a dead letter back to the ready jobs; see [queue.Backend].
func (b *Backend) Requeue(ctx context.Context, topic, sid string) error {
	if err := queue.ValidTopic(topic); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	id, err := parseID(sid)
	if err != nil {
		return err
	}
	defer b.claim("j" + string(id))()
	r, err := b.get(id)
	if errors.Is(err, lsm.ErrNotFound) || err == nil && (r.state != stateDead || r.topic != topic) {
		return queue.ErrNotFound
	}
	if err != nil {
		return err
	}
	now := nanos(b.opts.Now())
	batch := b.db.NewBatch()
	batch.Delete(timedKey(spaceDead, topic, r.at, id))
	r.state, r.at, r.attempt = stateReady, now, 0
	rk := readyKey(topic, r.priority, now, id)
	batch.Set(rk, nil)
	batch.Set(jobKey(id), r.encode())
	if err := batch.Commit(lsm.Sync); err != nil {
		return err
	}
	b.lowerHint(topic, [][]byte{rk}, nil)
	b.notify(topic)
	return nil
}

// Stats counts the topic's jobs by scanning its index entries.
func (b *Backend) Stats(ctx context.Context, topic string) (queue.Stats, error) {
	if err := queue.ValidTopic(topic); err != nil {
		return queue.Stats{}, err
	}
	var s queue.Stats
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if err := b.enter(); err != nil {
		return s, err
	}
	defer b.leave()
	now := nanos(b.opts.Now())
	snap := b.db.NewSnapshot()
	defer snap.Close()
	for _, sp := range []byte{spaceReady, spaceLease, spaceDead} {
		p := topicPrefix(sp, topic)
		it, err := snap.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: lsm.PrefixUpperBound(p)})
		if err != nil {
			return s, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			switch sp {
			case spaceReady:
				if len(k) >= len(p)+12 && int64(binary.BigEndian.Uint64(k[len(p)+4:])) > now {
					s.Delayed++
				} else {
					s.Ready++
				}
			case spaceLease:
				if len(k) >= len(p)+8 && int64(binary.BigEndian.Uint64(k[len(p):])) > now {
					s.Leased++
				} else {
					s.Ready++
				}
			default:
				s.Dead++
			}
		}
		if err := it.Close(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// maybeGC deletes idempotency keys past their retention, at most once a
// minute, from the 'E' key space in expiry order.
func (b *Backend) maybeGC(now int64) {
	last := b.lastGC.Load()
	if now-last < int64(time.Minute) || !b.lastGC.CompareAndSwap(last, now) {
		return
	}
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: []byte{spaceExp}, UpperBound: []byte{spaceExp + 1}})
	if err != nil {
		return
	}
	type ent struct{ topic, key string }
	var ents []ent
	var ekeys [][]byte
	for ok := it.First(); ok && len(ents) < 1000; ok = it.Next() {
		k := it.Key()
		if len(k) < 10 || int64(binary.BigEndian.Uint64(k[1:])) > now {
			break
		}
		topic, key, found := bytes.Cut(k[9:], []byte{0})
		if !found {
			continue
		}
		ents = append(ents, ent{string(topic), string(key)})
		ekeys = append(ekeys, append([]byte(nil), k...))
	}
	if it.Close() != nil {
		return
	}
	for i, e := range ents {
		func() {
			defer b.claim("k\x00" + e.topic + "\x00" + e.key)()
			batch := b.db.NewBatch()
			batch.Delete(ekeys[i])
			if v, err := b.db.Get(keyKey(e.topic, e.key)); err == nil && len(v) == 24 {
				done := int64(binary.BigEndian.Uint64(v[16:]))
				if done != 0 && done+int64(b.opts.KeyRetention) <= now {
					batch.Delete(keyKey(e.topic, e.key))
				}
			}
			_ = batch.Commit(lsm.NoSync)
		}()
	}
}
