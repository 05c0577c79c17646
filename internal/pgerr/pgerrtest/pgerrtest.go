// Package pgerrtest makes real transient PostgreSQL failures for the
// tests of the PostgreSQL backends.
package pgerrtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Pool returns a pool on url whose connections carry application name
// app, closed when the test ends.
func Pool(t testing.TB, url, app string) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// Terminate runs call while admin holds an exclusive lock on table, waits
// until a connection of application app is blocked on that lock (so call
// is mid-statement), then terminates every connection of app with
// pg_terminate_backend, as a failover or an administrator would, and
// returns call's error.
func Terminate(t testing.TB, admin *pgxpool.Pool, app, table string, call func() error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(ctx, "LOCK TABLE "+table+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- call() }()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n))
		if n > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the call returned before it blocked on the lock: %v", err)
		case <-poll.C:
		case <-ctx.Done():
			t.Fatal("the call never blocked on the lock")
		}
	}
	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, app)
	require.NoError(t, err)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatal("the call did not return after its connection was terminated")
		return nil
	}
}
