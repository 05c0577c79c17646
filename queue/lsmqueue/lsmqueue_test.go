package lsmqueue_test

import (
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/queue/queuetest"
)

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, now func() time.Time) queue.Backend {
		b, err := lsmqueue.Open("q", &lsmqueue.Options{FS: vfs.NewMem(), Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, nil)
}
