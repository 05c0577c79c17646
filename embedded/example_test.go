package embedded_test

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

func ExampleOpen() {
	ctx := context.Background()
	// In memory for the example; on disk: embedded.Open("/var/lib/mail", nil).
	mail, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer mail.Close() // closes every block, in the right order

	m, err := mail.Mailbox.Append(ctx, "erin", mailbox.Inbox,
		strings.NewReader("From: frank@example.org\r\nSubject: Train tickets\r\n\r\nPlatform 9\r\n"), nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := mail.Mailbox.Move(ctx, "erin", []mailbricks.MessageID{m.ID}, "Archive"); err != nil {
		log.Fatal(err)
	}
	// The index followed the append and the move.
	res, err := mail.Index.SearchString(ctx, "erin", "platform in:Archive", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Total, res.Hits[0].Subject)
	// Output:
	// 1 Train tickets
}
