package lsmqueue_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/internal/killtest"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
)

// TestKill SIGKILLs a process that enqueues and works jobs on a real
// directory, many times (MAILBRICKS_LONG=1: 1000), and checks that every
// acknowledged enqueue got exactly one effect keyed by job ID and that
// work was duplicated only across kills (see package killtest).
func TestKill(t *testing.T) {
	if killtest.IsChild() {
		killtest.Child(func(ctx context.Context) (queue.Backend, error) {
			return lsmqueue.Open(filepath.Join(killtest.Dir(), "db"), nil)
		})
		return
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	cycles := 30
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		cycles = 1000
	}
	killtest.Run(t, cycles, "")
}

// TestKillAckNoSync is TestKill with unsynced acknowledgements: a SIGKILL
// may only cause duplicates across kills, never a lost job.
func TestKillAckNoSync(t *testing.T) {
	if killtest.IsChild() {
		killtest.Child(func(ctx context.Context) (queue.Backend, error) {
			return lsmqueue.Open(filepath.Join(killtest.Dir(), "db"), &lsmqueue.Options{AckNoSync: true, StateNoSync: true})
		})
		return
	}
	if testing.Short() {
		t.Skip("kill test skipped in -short mode")
	}
	cycles := 20
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		cycles = 1000
	}
	killtest.Run(t, cycles, "")
}
