package pgmailbox_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
)

// This example needs a PostgreSQL server, so it is compiled, not run.
func ExampleOpen() {
	ctx := context.Background()
	// The application's pool, shared with its other PostgreSQL users.
	pool, err := pgxpool.New(ctx, os.Getenv("MAILBRICKS_PG_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	b, err := pgmailbox.Open(ctx, pool, &pgmailbox.Options{Schema: "mailbox"})
	if err != nil {
		log.Fatal(err)
	}
	fb, err := filededup.Open("/var/mail/blobs", nil)
	if err != nil {
		log.Fatal(err)
	}
	blobs := dedup.New(fb, nil)
	defer blobs.Close()
	store := mailbox.New(b, blobs, nil)
	defer store.Close()

	events, err := store.Watch(ctx, "erin@example.com") // from every process on the schema
	if err != nil {
		log.Fatal(err)
	}
	for ev := range events {
		log.Println(ev.Kind, ev.Folder, ev.UID)
	}
}
