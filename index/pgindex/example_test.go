package pgindex_test

import (
	"context"
	"fmt"
	"os"

	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/pgindex"
)

// ExampleOpen needs a database, so it has no Output and is only compiled.
func ExampleOpen() {
	ctx := context.Background()
	b, err := pgindex.Open(ctx, os.Getenv("MAILBRICKS_PG_URL"), &pgindex.Options{Schema: "mail_index"})
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
