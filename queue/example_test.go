package queue_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
)

func Example() {
	ctx := context.Background()
	b, err := lsmqueue.Open("queue", &lsmqueue.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	q := queue.New(b, nil)
	defer q.Close()

	// An idempotent producer: the second enqueue returns the first job.
	id1, _ := q.Enqueue(ctx, "outgoing", []byte("msg-1 to bob@example.org"), &queue.EnqueueOptions{Key: "msg-1"})
	id2, _ := q.Enqueue(ctx, "outgoing", []byte("msg-1 to bob@example.org"), &queue.EnqueueOptions{Key: "msg-1"})
	fmt.Println("same job:", id1 == id2)

	jobs, _ := q.Lease(ctx, "outgoing", 10, time.Minute, nil)
	for _, j := range jobs {
		fmt.Printf("attempt %d: %s\n", j.Attempt, j.Payload)
		if err := q.Ack(ctx, j); err != nil {
			panic(err)
		}
		// A second Ack with the same lease is refused.
		fmt.Println("again:", errors.Is(q.Ack(ctx, j), queue.ErrLeaseLost))
	}
	// Output:
	// same job: true
	// attempt 1: msg-1 to bob@example.org
	// again: true
}

func ExampleWorker() {
	b, err := lsmqueue.Open("queue", &lsmqueue.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	q := queue.New(b, nil)
	defer q.Close()
	ctx, stop := context.WithCancel(context.Background())

	done := make(chan struct{})
	w := queue.NewWorker(q, "incoming", queue.HandlerFunc(func(ctx context.Context, j queue.Job) error {
		if j.Attempt == 1 {
			return errors.New("spam filter unavailable") // retried after the backoff
		}
		fmt.Printf("processed %s on attempt %d (token %d)\n", j.Payload, j.Attempt, j.Token)
		close(done)
		return nil
	}), &queue.WorkerOptions{
		Concurrency: 2,
		Backoff:     queue.Schedule{10 * time.Millisecond, time.Minute},
		PollWait:    100 * time.Millisecond,
	})
	if _, err := q.Enqueue(ctx, "incoming", []byte("message 42"), nil); err != nil {
		panic(err)
	}
	finished := make(chan error)
	go func() { finished <- w.Run(ctx) }()
	<-done
	stop()
	fmt.Println("stopped:", <-finished)
	// Output:
	// processed message 42 on attempt 2 (token 2)
	// stopped: <nil>
}

func ExampleSchedule() {
	s := queue.Schedule{2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 24 * time.Hour}
	for _, attempt := range []int{1, 2, 8, 20} {
		fmt.Println(attempt, s.Delay(attempt))
	}
	// Output:
	// 1 2m0s
	// 2 5m0s
	// 8 24h0m0s
	// 20 24h0m0s
}
