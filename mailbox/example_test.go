package mailbox_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
)

func Example() {
	ctx := context.Background()
	// In memory for the example; pass a directory and nil options for disk.
	backend, err := lsmmailbox.Open("mail", &lsmmailbox.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	fb, err := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	blobs := dedup.New(fb, nil)
	defer blobs.Close()
	store := mailbox.New(backend, blobs, nil)
	defer store.Close()

	raw := "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Lunch?\r\n\r\nNoon at the usual place?\r\n"
	m, err := store.Append(ctx, "bob@example.com", mailbox.Inbox, strings.NewReader(raw),
		&mailbox.AppendOptions{Key: "smtp-queue-job-42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.UID, m.Subject, m.From[0].Addr, m.Snippet)

	page, err := store.List(ctx, "bob@example.com", mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 50})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("unread:", len(page.Messages))

	if err := store.MarkRead(ctx, "bob@example.com", m.ID); err != nil {
		log.Fatal(err)
	}
	f, err := store.Folder(ctx, "bob@example.com", mailbox.Inbox)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("total %d, unread %d, uidnext %d\n", f.Total, f.Unread, f.UIDNext)

	rc, err := store.Open(ctx, "bob@example.com", m.ID)
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	fmt.Println(string(body) == raw)
	// Output:
	// 1 Lunch? alice@example.com Noon at the usual place?
	// unread: 1
	// total 1, unread 0, uidnext 2
	// true
}

func ExampleStore_Changes() {
	ctx := context.Background()
	backend, _ := lsmmailbox.Open("mail", &lsmmailbox.Options{FS: vfs.NewMem()})
	fb, _ := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	blobs := dedup.New(fb, nil)
	defer blobs.Close()
	store := mailbox.New(backend, blobs, nil)
	defer store.Close()

	user := mailbricks.UserID("carol@example.com")
	a, _ := store.Append(ctx, user, mailbox.Inbox, strings.NewReader("Subject: a\r\n\r\nx\r\n"), nil)
	b, _ := store.Append(ctx, user, mailbox.Inbox, strings.NewReader("Subject: b\r\n\r\ny\r\n"), nil)
	f, _ := store.Folder(ctx, user, mailbox.Inbox)
	sync := f.HighestModSeq // what a client remembers

	store.MarkRead(ctx, user, b.ID)
	store.Expunge(ctx, user, a.ID)

	ch, _ := store.Changes(ctx, user, mailbox.Inbox, sync)
	for _, m := range ch.Changed {
		fmt.Println("changed UID", m.UID, m.Flags)
	}
	fmt.Println("expunged UIDs", ch.Expunged)
	// Output:
	// changed UID 2 [\Seen]
	// expunged UIDs [1]
}
