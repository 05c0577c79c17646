package s3dedup_test

import (
	"context"
	"log"
	"os"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/s3dedup"
)

// ExampleOpen needs an S3 server, so it is compiled but not run.
func ExampleOpen() {
	ctx := context.Background()
	client, err := s3dedup.NewClient(os.Getenv("MAILBRICKS_S3_URL"))
	if err != nil {
		log.Fatal(err)
	}
	b, err := s3dedup.Open(ctx, client, "mail", "attachments/", nil)
	if err != nil {
		log.Fatal(err)
	}
	store := dedup.New(b, nil)
	defer store.Close()
	// Several processes may open the same bucket and prefix; run store.GC
	// from any of them.
}
