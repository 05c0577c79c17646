package pgindex_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/pgindex"
)

// ExampleOpen needs a database, so it has no Output and is only compiled.
func ExampleOpen() {
	ctx := context.Background()
	// The application's pool, shared with its other PostgreSQL users.
	pool, err := pgxpool.New(ctx, os.Getenv("MAILBRICKS_PG_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	b, err := pgindex.Open(ctx, pool, &pgindex.Options{Schema: "mail_index"})
	if err != nil {
		fmt.Println(err)
		return
	}
	x := index.New(b, nil)
	defer x.Close()
	res, err := x.SearchString(ctx, "alice@example.com", `from:bob has:attachment`, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Total)
}
