package mailbricks_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
)

// Store incoming mail per user, list the unread, search: the blocks in one
// directory, the search index following the mailbox. Attachments over 16
// KiB are stored once however many mailboxes hold them.
func Example() {
	ctx := context.Background()
	// On disk: embedded.Open("/var/lib/mail", nil).
	mail, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer mail.Close()

	addr := "alice@example.com" // as the application has it
	user, err := mailbricks.ParseUserID(addr)
	if err != nil {
		log.Fatal(err)
	}
	for _, subject := range []string{"Lunch on Friday?", "Quarterly report"} {
		msg := "From: Bob <bob@example.org>\r\nSubject: " + subject + "\r\n\r\nSee you.\r\n"
		if _, err := mail.Mailbox.Append(ctx, user, mailbox.Inbox, strings.NewReader(msg), nil); err != nil {
			log.Fatal(err)
		}
	}
	unread, err := mail.Mailbox.List(ctx, user, mailbox.Inbox, &mailbox.ListOptions{Unread: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range unread.Messages {
		fmt.Println("unread:", m.Subject)
	}
	if err := mail.Mailbox.MarkRead(ctx, user, unread.Messages[0].ID); err != nil {
		log.Fatal(err)
	}
	res, err := mail.Index.SearchString(ctx, user, "from:bob is:unread", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("search:", res.Total, res.Hits[0].Subject)
	// Output:
	// unread: Quarterly report
	// unread: Lunch on Friday?
	// search: 1 Lunch on Friday?
}
