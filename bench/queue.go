package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/queue/pgqueue"
)

// The queue suite measures durable enqueue+lease+ack round trips.
//
// Workloads durable_roundtrip_p1 and durable_roundtrip_p8: -jobs jobs of
// 1 KiB each, enqueued by 1 or 8 producers (each enqueue synced before it
// returns) while 4 workers lease up to 8 jobs at a time and acknowledge
// each one (durably: the ack returns after the server or the WAL has it),
// the acks of one batch concurrently.
// ops_per_sec is jobs completed per second of the whole run; extras are
// p99_lease_ack_ms (from a lease's return to its ack's return; for River,
// run plus completion time from its job statistics) and p99_e2e_ms (from
// the enqueue call to the ack).
//
// Implementations: lsmqueue (a DB directory under -dir), jetstream (an
// in-process nats-server v2, file store, sync_interval always, work-queue
// stream, durable pull consumer, double acks), pgqueue and river
// (riverqueue/river with riverpgxv5) on MAILBRICKS_PG_URL, each in its own
// schema.
type queueSuite struct {
	jobs int
}

func init() { register("queue", newQueueSuite) }

func newQueueSuite() suite { return &queueSuite{} }

func (s *queueSuite) Impls() []string { return []string{"lsmqueue", "jetstream", "pgqueue", "river"} }

func (s *queueSuite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.jobs, "jobs", 0, "jobs per workload (default 20000, -quick 1500)")
}

func (s *queueSuite) Ratios(rs *results) []ratio {
	var out []ratio
	for _, w := range []string{"durable_roundtrip_p1", "durable_roundtrip_p8"} {
		for _, p := range [][2]string{{"lsmqueue", "jetstream"}, {"pgqueue", "river"}} {
			a, ok1 := rs.get(w, p[0])
			b, ok2 := rs.get(w, p[1])
			if ok1 && ok2 && b.OpsPerSec > 0 {
				out = append(out, ratio{w, p[0] + "/" + p[1], a.OpsPerSec / b.OpsPerSec})
			}
		}
	}
	return out
}

// qimpl is one implementation under test.
type qimpl interface {
	enqueue(ctx context.Context, payload []byte) error
	// work runs 4 workers until ctx is done, calling done for each
	// acknowledged job with its payload and lease→ack latency.
	work(ctx context.Context, done func(payload []byte, leaseAck time.Duration))
	close()
}

const queueWorkers = 4

func (s *queueSuite) Run(impl string, c *config, r *reporter) error {
	n := s.jobs
	if n == 0 {
		n = 20000
		if c.Quick {
			n = 1500
		}
	}
	for _, producers := range []int{1, 8} {
		if err := s.runOne(impl, c, r, n, producers); err != nil {
			return err
		}
	}
	return nil
}

func (s *queueSuite) runOne(impl string, c *config, r *reporter, n, producers int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp(c.Dir, "queue-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var q qimpl
	switch impl {
	case "lsmqueue":
		q, err = newLSMQ(dir)
	case "jetstream":
		q, err = newJSQ(dir)
	case "pgqueue":
		q, err = newPGQ(ctx)
	case "river":
		q, err = newRiverQ(ctx)
	default:
		err = fmt.Errorf("unknown impl %q", impl)
	}
	if err != nil {
		return err
	}
	defer q.close()

	var (
		mu       sync.Mutex
		leaseAck []time.Duration
		e2e      []time.Duration
		count    atomic.Int64
	)
	allDone := make(chan struct{})
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.work(wctx, func(payload []byte, la time.Duration) {
			sent := time.Unix(0, int64(binary.LittleEndian.Uint64(payload)))
			d := time.Since(sent)
			mu.Lock()
			leaseAck = append(leaseAck, la)
			e2e = append(e2e, d)
			mu.Unlock()
			if count.Add(1) == int64(n) {
				close(allDone)
			}
		})
	}()
	start := time.Now()
	var pw sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		pw.Add(1)
		go func() {
			defer pw.Done()
			payload := make([]byte, 1024)
			for i := p; i < n; i += producers {
				for j := 8; j < len(payload); j++ {
					payload[j] = byte(rand.Uint32())
				}
				binary.LittleEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
				if err := q.enqueue(ctx, payload); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	pw.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	select {
	case <-allDone:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("only %d of %d jobs completed", count.Load(), n)
	}
	elapsed := time.Since(start)
	wcancel()
	wg.Wait()
	w := fmt.Sprintf("durable_roundtrip_p%d", producers)
	fmt.Fprintf(os.Stderr, "queue: %s %s: %d jobs in %v\n", impl, w, n, elapsed.Round(time.Millisecond))
	r.result(w, float64(n)/elapsed.Seconds(),
		kv{"p99_lease_ack_ms", p99ms(leaseAck)}, kv{"p99_e2e_ms", p99ms(e2e)}, kv{"producers", float64(producers)}, kv{"workers", queueWorkers})
	return nil
}

func p99ms(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[len(ds)*99/100].Microseconds()) / 1000
}

// ourQ runs any queue.Backend: the mailbricks implementations.
type ourQ struct {
	q       *queue.Queue
	cleanup func()
}

const benchTopic = "bench"

func (o *ourQ) enqueue(ctx context.Context, p []byte) error {
	_, err := o.q.Enqueue(ctx, benchTopic, p, nil)
	return err
}

func (o *ourQ) work(ctx context.Context, done func([]byte, time.Duration)) {
	var wg sync.WaitGroup
	for range queueWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				jobs, err := o.q.Lease(ctx, benchTopic, 8, 30*time.Second, &queue.LeaseOptions{Wait: time.Second})
				if err != nil {
					if ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "lease:", err)
					}
					return
				}
				// Ack the batch concurrently, as handlers running side by
				// side would; the backends share syncs between them.
				var aw sync.WaitGroup
				for _, j := range jobs {
					aw.Add(1)
					go func() {
						defer aw.Done()
						t0 := time.Now()
						if err := o.q.Ack(ctx, j); err != nil {
							if ctx.Err() == nil {
								fmt.Fprintln(os.Stderr, "ack:", err)
							}
							return
						}
						done(j.Payload, time.Since(t0))
					}()
				}
				aw.Wait()
			}
		}()
	}
	wg.Wait()
}

func (o *ourQ) close() {
	o.q.Close()
	if o.cleanup != nil {
		o.cleanup()
	}
}

func newLSMQ(dir string) (qimpl, error) {
	b, err := lsmqueue.Open(filepath.Join(dir, "db"), nil)
	if err != nil {
		return nil, err
	}
	return &ourQ{q: queue.New(b, nil)}, nil
}

func pgURL() (string, error) {
	u := os.Getenv("MAILBRICKS_PG_URL")
	if u == "" {
		return "", errors.New("MAILBRICKS_PG_URL is not set")
	}
	return u, nil
}

func pgPool(ctx context.Context) (*pgxpool.Pool, string, func(), error) {
	u, err := pgURL()
	if err != nil {
		return nil, "", nil, err
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, "", nil, err
	}
	cfg.MaxConns = 32
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", nil, err
	}
	schema := fmt.Sprintf("bench_queue_%d", rand.Uint32())
	cleanup := func() {
		_, _ = p.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		p.Close()
	}
	return p, schema, cleanup, nil
}

func newPGQ(ctx context.Context) (qimpl, error) {
	p, schema, cleanup, err := pgPool(ctx)
	if err != nil {
		return nil, err
	}
	b, err := pgqueue.Open(ctx, p, &pgqueue.Options{Schema: schema})
	if err != nil {
		cleanup()
		return nil, err
	}
	return &ourQ{q: queue.New(b, nil), cleanup: cleanup}, nil
}

// jsQ is a JetStream work queue on an in-process server that syncs every
// write.
type jsQ struct {
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
}

func newJSQ(dir string) (qimpl, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, SyncAlways: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("nats-server did not start")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: -1})
	if err != nil {
		return nil, err
	}
	return &jsQ{srv: srv, nc: nc, js: js, cons: cons}, nil
}

func (j *jsQ) enqueue(ctx context.Context, p []byte) error {
	_, err := j.js.Publish(ctx, "bench", p)
	return err
}

func (j *jsQ) work(ctx context.Context, done func([]byte, time.Duration)) {
	var wg sync.WaitGroup
	for range queueWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				batch, err := j.cons.Fetch(8, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					return
				}
				var aw sync.WaitGroup
				for m := range batch.Messages() {
					aw.Add(1)
					go func() {
						defer aw.Done()
						t0 := time.Now()
						if err := m.DoubleAck(ctx); err != nil {
							if ctx.Err() == nil {
								fmt.Fprintln(os.Stderr, "ack:", err)
							}
							return
						}
						done(m.Data(), time.Since(t0))
					}()
				}
				aw.Wait()
			}
		}()
	}
	wg.Wait()
}

func (j *jsQ) close() {
	j.nc.Close()
	j.srv.Shutdown()
	j.srv.WaitForShutdown()
}

// riverQ is River on PostgreSQL in its own schema.
type riverQ struct {
	client  *river.Client[pgx.Tx]
	events  <-chan *river.Event
	cancel  func()
	cleanup func()
}

type benchArgs struct {
	Payload []byte `json:"p"`
}

func (benchArgs) Kind() string { return "bench" }

type benchWorker struct {
	river.WorkerDefaults[benchArgs]
}

func (benchWorker) Work(context.Context, *river.Job[benchArgs]) error { return nil }

func newRiverQ(ctx context.Context) (qimpl, error) {
	p, schema, cleanup, err := pgPool(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := p.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		cleanup()
		return nil, err
	}
	drv := riverpgxv5.New(p)
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Schema: schema})
	if err != nil {
		cleanup()
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		cleanup()
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, benchWorker{})
	client, err := river.NewClient(drv, &river.Config{
		Schema:        schema,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: queueWorkers}},
		Workers:       workers,
		FetchCooldown: river.FetchCooldownMin,
	})
	if err != nil {
		cleanup()
		return nil, err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: 1 << 20, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	return &riverQ{client: client, events: events, cancel: cancel, cleanup: cleanup}, nil
}

func (r *riverQ) enqueue(ctx context.Context, p []byte) error {
	_, err := r.client.Insert(ctx, benchArgs{Payload: p}, nil)
	return err
}

func (r *riverQ) work(ctx context.Context, done func([]byte, time.Duration)) {
	if err := r.client.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "river start:", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.events:
			var a benchArgs
			if err := decodeRiverArgs(ev.Job.EncodedArgs, &a); err != nil {
				fmt.Fprintln(os.Stderr, "river args:", err)
				continue
			}
			done(a.Payload, ev.JobStats.RunDuration+ev.JobStats.CompleteDuration)
		}
	}
}

func (r *riverQ) close() {
	r.cancel()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.client.Stop(sctx)
	r.cleanup()
}
