package lsmqueue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
)

func ExampleOpen() {
	ctx := context.Background()
	// A real deployment passes a directory and no FS.
	b, err := lsmqueue.Open("queue", &lsmqueue.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	q := queue.New(b, nil)
	defer q.Close()
	q.Enqueue(ctx, "outgoing", []byte("low"), &queue.EnqueueOptions{Priority: -1})
	q.Enqueue(ctx, "outgoing", []byte("high"), &queue.EnqueueOptions{Priority: 1})
	jobs, _ := q.Lease(ctx, "outgoing", 10, time.Minute, nil)
	for _, j := range jobs {
		fmt.Println(string(j.Payload))
		q.Ack(ctx, j)
	}
	s, _ := q.Stats(ctx, "outgoing")
	fmt.Printf("%+v\n", s)
	// Output:
	// high
	// low
	// {Ready:0 Leased:0 Delayed:0 Dead:0}
}
