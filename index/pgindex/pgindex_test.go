package pgindex_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/indextest"
	"github.com/mailbricks/mailbricks/index/pgindex"
	"github.com/mailbricks/mailbricks/internal/pgerr/pgerrtest"
)

// open returns a backend in a fresh schema that is dropped after the
// test.
func open(t *testing.T) index.Backend {
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; skipping the PostgreSQL backend tests")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("idx_test_%016x", rand.Uint64())
	p, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	b, err := pgindex.Open(ctx, p, &pgindex.Options{Schema: schema, Partitions: 2})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = b.Close()
		_, _ = p.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	return b
}

func TestConformance(t *testing.T) {
	indextest.Run(t, open)
}

// TestGolden indexes part of the SpamAssassin corpus and checks every
// operator against the brute-force evaluator, with PostgreSQL's limit of
// 256 positions per lexeme.
func TestGolden(t *testing.T) {
	b := open(t)
	n := 1500
	if os.Getenv("MAILBRICKS_LONG") != "" {
		n = 0
	}
	docs := indextest.CorpusDocuments(t, n)
	x := index.New(b, &index.Options{Now: indextest.Now})
	indextest.Golden(t, x, &indextest.Brute{PositionLimit: 256}, docs, 3, 400)
}

// TestTerminatedConnectionIsTemporary terminates the backend's connection
// in the middle of a call, as a failover does: the call must fail with an
// error that mailbricks.IsTemporary reports, and a retry must succeed.
func TestTerminatedConnectionIsTemporary(t *testing.T) {
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; skipping the PostgreSQL backend tests")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("idx_test_%016x", rand.Uint64())
	app := "pgindex_test_" + schema
	admin := pgerrtest.Pool(t, url, "admin_"+schema)
	t.Cleanup(func() { _, _ = admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	b, err := pgindex.Open(ctx, pgerrtest.Pool(t, url, app), &pgindex.Options{Schema: schema, Partitions: 2})
	require.NoError(t, err)
	defer b.Close()
	list := func() error {
		return b.List(ctx, "alice", func(mailbricks.MessageID, index.Values) error { return nil })
	}
	err = pgerrtest.Terminate(t, admin, app, schema+".docs", list)
	require.Error(t, err)
	require.True(t, mailbricks.IsTemporary(err), "a terminated connection must be a temporary error, got %v", err)
	require.NoError(t, list(), "a retry after a terminated connection must succeed")
}

// TestOpenConcurrent opens one fresh schema from several backends at once,
// as processes starting together do: every Open must succeed, and closing
// a backend must leave the caller's pool open.
func TestOpenConcurrent(t *testing.T) {
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; skipping the PostgreSQL backend tests")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("idx_test_%016x", rand.Uint64())
	p := pgerrtest.Pool(t, url, "pgindex_test")
	t.Cleanup(func() { _, _ = p.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			b, err := pgindex.Open(ctx, p, &pgindex.Options{Schema: schema, Partitions: 2})
			if err == nil {
				err = b.Close()
			}
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs, "concurrent Opens of a fresh schema must all succeed")
	}
	require.NoError(t, p.Ping(ctx), "Close must not close the caller's pool")
}
