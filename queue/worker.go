package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Handler processes one job. A nil error acknowledges the job; an error
// fails the attempt, to be retried after the Worker's [Backoff] or moved to
// the dead letters after the job's MaxAttempts.
//
// ctx is cancelled when the job's lease is lost (an extension failed) or
// when a stopping Worker's grace period ends; the handler should then
// return promptly. Effects must be idempotent by job.ID, or committed
// conditionally on job.Token, since a job can be delivered again after a
// worker dies.
type Handler interface {
	Handle(ctx context.Context, job Job) error
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, job Job) error

// Handle calls f(ctx, job).
func (f HandlerFunc) Handle(ctx context.Context, job Job) error { return f(ctx, job) }

// WorkerOptions configures a [Worker]. A nil *WorkerOptions and every zero
// field mean the default.
type WorkerOptions struct {
	// Concurrency is the number of jobs handled at once. The default is 4.
	Concurrency int
	// LeaseTTL is the lease of each job; the Worker extends it every third
	// of LeaseTTL while the handler runs. The default is 30 seconds.
	LeaseTTL time.Duration
	// Backoff gives the retry delay after a failure. The default is
	// Exponential{Base: time.Second, Max: time.Hour}.
	Backoff Backoff
	// PollWait is how long each Lease call waits for work (long poll). The
	// default is 5 seconds.
	PollWait time.Duration
	// StopGrace is how long in-flight handlers may run on after Run's ctx
	// is done; then their contexts are cancelled and jobs whose handler did
	// not succeed are released for another worker at once. The default is
	// 30 seconds.
	StopGrace time.Duration
	// Logger receives failures the Worker cannot return (a lost lease, a
	// failed ack). The default discards them.
	Logger *slog.Logger
}

// Worker leases jobs of one topic and runs a [Handler] on them with bounded
// concurrency. Create it with [NewWorker] and start it with [Worker.Run].
// It is safe for concurrent use, but Run may be called only once.
type Worker struct {
	q     *Queue
	topic string
	h     Handler
	opts  WorkerOptions
}

// NewWorker returns a Worker for topic of q running h.
func NewWorker(q *Queue, topic string, h Handler, opts *WorkerOptions) *Worker {
	if q == nil || h == nil {
		panic("queue: NewWorker with a nil Queue or Handler")
	}
	w := &Worker{q: q, topic: topic, h: h}
	if opts != nil {
		w.opts = *opts
	}
	if w.opts.Concurrency <= 0 {
		w.opts.Concurrency = 4
	}
	if w.opts.LeaseTTL <= 0 {
		w.opts.LeaseTTL = 30 * time.Second
	}
	if w.opts.Backoff == nil {
		w.opts.Backoff = Exponential{Base: time.Second, Max: time.Hour}
	}
	if w.opts.PollWait <= 0 {
		w.opts.PollWait = 5 * time.Second
	}
	if w.opts.StopGrace <= 0 {
		w.opts.StopGrace = 30 * time.Second
	}
	if w.opts.Logger == nil {
		w.opts.Logger = slog.New(slog.DiscardHandler)
	}
	return w
}

// Run leases and handles jobs until ctx is done, then stops gracefully:
// it leases no more, lets in-flight handlers finish within StopGrace, and
// releases the jobs of handlers that did not. It returns nil after a
// graceful stop, or the error that made it stop (ErrClosed, ErrInvalid).
func (w *Worker) Run(ctx context.Context) error {
	if err := ValidTopic(w.topic); err != nil {
		return err
	}
	// Handlers run under hctx, which outlives ctx by StopGrace.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(w.opts.StopGrace)
			defer t.Stop()
			select {
			case <-t.C:
				hcancel()
			case <-stopped:
			}
		case <-stopped:
		}
	}()
	defer close(stopped)

	slots := make(chan struct{}, w.opts.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	errDelay := 50 * time.Millisecond
	for ctx.Err() == nil {
		// Take one slot (blocking), then every free one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		n := 1
	more:
		for n < w.opts.Concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		jobs, err := w.q.Lease(ctx, w.topic, n, w.opts.LeaseTTL, &LeaseOptions{Wait: w.opts.PollWait})
		for i := len(jobs); i < n; i++ {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalid) {
				return err
			}
			w.opts.Logger.Warn("queue: worker lease failed", "topic", w.topic, "err", err)
			select {
			case <-time.After(errDelay):
			case <-ctx.Done():
			}
			errDelay = min(2*errDelay, 5*time.Second)
			continue
		}
		errDelay = 50 * time.Millisecond
		for _, job := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				w.handle(hctx, job)
			}()
		}
	}
	return nil
}

// handle runs the handler on job under a lease kept alive by a goroutine
// that extends it every third of the TTL, then acks or nacks.
func (w *Worker) handle(hctx context.Context, job Job) {
	jctx, jcancel := context.WithCancel(hctx)
	defer jcancel()
	var (
		mu   sync.Mutex
		cur  = job
		lost bool
	)
	done := make(chan struct{})
	extended := make(chan struct{})
	go func() {
		defer close(extended)
		t := time.NewTicker(w.opts.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			mu.Lock()
			j := cur
			mu.Unlock()
			nj, err := w.q.Extend(context.WithoutCancel(hctx), j, w.opts.LeaseTTL)
			if err != nil {
				if errors.Is(err, ErrLeaseLost) {
					w.opts.Logger.Warn("queue: lease lost while handling", "topic", w.topic, "job", job.ID)
					mu.Lock()
					lost = true
					mu.Unlock()
					jcancel()
					return
				}
				w.opts.Logger.Warn("queue: lease extension failed", "topic", w.topic, "job", job.ID, "err", err)
				continue
			}
			mu.Lock()
			cur = nj
			mu.Unlock()
		}
	}()
	err := w.call(jctx, job)
	close(done)
	<-extended
	mu.Lock()
	j, l := cur, lost
	mu.Unlock()
	if l {
		return
	}
	bg := context.WithoutCancel(hctx)
	switch {
	case err == nil:
		err = w.q.Ack(bg, j)
	case hctx.Err() != nil:
		// Stopping: release at once, without backoff.
		err = w.q.Nack(bg, j, 0, fmt.Errorf("worker stopped: %w", err))
	default:
		err = w.q.Nack(bg, j, w.opts.Backoff.Delay(j.Attempt), err)
	}
	if err != nil {
		w.opts.Logger.Warn("queue: completing job failed", "topic", w.topic, "job", job.ID, "err", err)
	}
}

// call runs the handler, turning a panic into an error.
func (w *Worker) call(ctx context.Context, job Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("queue: handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return w.h.Handle(ctx, job)
}
