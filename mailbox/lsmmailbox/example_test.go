package lsmmailbox_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
)

func ExampleOpen() {
	// A directory on disk in production: lsmmailbox.Open("/var/mail/db", nil).
	b, err := lsmmailbox.Open("db", &lsmmailbox.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	fb, err := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	blobs := dedup.New(fb, nil)
	defer blobs.Close()
	store := mailbox.New(b, blobs, nil)
	defer store.Close()

	ctx := context.Background()
	for _, subj := range []string{"one", "two", "three"} {
		if _, err := store.Append(ctx, "dave", mailbox.Inbox, strings.NewReader("Subject: "+subj+"\r\n\r\nx\r\n"), nil); err != nil {
			log.Fatal(err)
		}
	}
	page, err := store.List(ctx, "dave", mailbox.Inbox, &mailbox.ListOptions{Limit: 2})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range page.Messages {
		fmt.Println(m.UID, m.Subject)
	}
	page, _ = store.List(ctx, "dave", mailbox.Inbox, &mailbox.ListOptions{Limit: 2, Cursor: page.Cursor})
	for _, m := range page.Messages {
		fmt.Println(m.UID, m.Subject)
	}
	// Output:
	// 3 three
	// 2 two
	// 1 one
}
