package pgmigrate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/internal/pgmigrate"
)

var ctx = context.Background()

func pool(t *testing.T) *pgxpool.Pool {
	url := os.Getenv("MAILBRICKS_PG_URL")
	if url == "" {
		t.Skip("MAILBRICKS_PG_URL is not set; set it to a PostgreSQL URL to test pgmigrate")
	}
	p, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func newSchema(t *testing.T, p *pgxpool.Pool) string {
	s := fmt.Sprintf("pgmigrate_test_%x", rand.Uint64())
	t.Cleanup(func() { _, _ = p.Exec(ctx, "DROP SCHEMA IF EXISTS "+s+" CASCADE") })
	return s
}

func steps(schema string) []pgmigrate.Step {
	return []pgmigrate.Step{
		{Version: 2, SQL: `ALTER TABLE ` + schema + `.t ADD COLUMN b int NOT NULL DEFAULT 7`},
		{Version: 1, SQL: `CREATE TABLE ` + schema + `.t (a int); INSERT INTO ` + schema + `.t VALUES (1)`},
	}
}

func versions(t *testing.T, p *pgxpool.Pool, schema, component string) []int32 {
	rows, err := p.Query(ctx, `SELECT version FROM `+schema+`.mailbricks_migrations WHERE component = $1 ORDER BY version`, component)
	require.NoError(t, err)
	v, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	return v
}

func TestFreshThenNoOp(t *testing.T) {
	p := pool(t)
	s := newSchema(t, p)
	n, err := pgmigrate.Apply(ctx, p, s, "c", steps(s))
	require.NoError(t, err)
	assert.Equal(t, 2, n, "a fresh schema gets every step")
	assert.Equal(t, []int32{1, 2}, versions(t, p, s, "c"))
	var a, b int
	require.NoError(t, p.QueryRow(ctx, `SELECT a, b FROM `+s+`.t`).Scan(&a, &b))
	assert.Equal(t, [2]int{1, 7}, [2]int{a, b}, "steps must run in version order")

	n, err = pgmigrate.Apply(ctx, p, s, "c", steps(s))
	require.NoError(t, err, "re-applying applied steps must be a no-op, not a duplicate CREATE")
	assert.Equal(t, 0, n)

	// A new step is applied alone; another component in the schema has
	// its own versions.
	more := append(steps(s), pgmigrate.Step{Version: 3, SQL: `INSERT INTO ` + s + `.t VALUES (3, 3)`})
	n, err = pgmigrate.Apply(ctx, p, s, "c", more)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	n, err = pgmigrate.Apply(ctx, p, s, "other", []pgmigrate.Step{{Version: 1, SQL: `CREATE TABLE ` + s + `.u (a int)`}})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []int32{1, 2, 3}, versions(t, p, s, "c"))
	assert.Equal(t, []int32{1}, versions(t, p, s, "other"))
}

func TestFailingStepRollsBack(t *testing.T) {
	p := pool(t)
	s := newSchema(t, p)
	bad := append(steps(s), pgmigrate.Step{Version: 3, SQL: `SELECT no_such_column FROM ` + s + `.t`})
	_, err := pgmigrate.Apply(ctx, p, s, "c", bad)
	require.Error(t, err)
	var exists bool
	require.NoError(t, p.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s).Scan(&exists))
	assert.False(t, exists, "a failing step must roll back the whole migration, schema included")
}

// TestConcurrent opens one fresh schema from many goroutines at once (as
// processes starting together would): every one must succeed and the
// steps must be applied exactly once in total.
func TestConcurrent(t *testing.T) {
	p := pool(t)
	s := newSchema(t, p)
	const n = 8
	var wg sync.WaitGroup
	applied := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = pgmigrate.Apply(ctx, p, s, "c", steps(s))
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		require.NoError(t, errs[i], "concurrent Apply %d", i)
		total += applied[i]
	}
	assert.Equal(t, 2, total, "each step must be applied once across concurrent Applies")
	var rows int
	require.NoError(t, p.QueryRow(ctx, `SELECT count(*) FROM `+s+`.t`).Scan(&rows))
	assert.Equal(t, 1, rows)
}

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0001_init.sql": {Data: []byte("CREATE TABLE {schema}.t ({n})")},
		"m/0002_more.sql": {Data: []byte("x {schema}")},
		"m/README":        {Data: []byte("not a step")},
	}
	st, err := pgmigrate.Load(fsys, "m", map[string]string{"schema": "s", "n": "a int"})
	require.NoError(t, err)
	assert.Equal(t, []pgmigrate.Step{{1, "CREATE TABLE s.t (a int)"}, {2, "x s"}}, st)
	_, err = pgmigrate.Load(fstest.MapFS{"m/init.sql": {}}, "m", nil)
	assert.ErrorIs(t, err, pgmigrate.ErrInvalid)
}

func TestInvalid(t *testing.T) {
	_, err := pgmigrate.Apply(ctx, nil, "bad-name", "c", nil)
	assert.ErrorIs(t, err, pgmigrate.ErrInvalid)
	_, err = pgmigrate.Apply(ctx, nil, "ok", "c", []pgmigrate.Step{{1, ""}, {1, ""}})
	assert.ErrorIs(t, err, pgmigrate.ErrInvalid, "duplicate versions")
}
