package delivery_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/mailbox"
)

// ExampleSubmission_Submit queues a message composed outside SMTP, as an
// HTTP send endpoint would: stored, copied to Sent, one outgoing job.
func ExampleSubmission_Submit() {
	dir, err := os.MkdirTemp("", "submit-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	blocks, err := embedded.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer blocks.Close()
	sub, err := delivery.NewSubmission(blocks.Blobs, blocks.Queue, blocks.Mailbox, &delivery.SubmissionOptions{
		InboundOptions: delivery.InboundOptions{Hostname: "mail.example.org"},
		Authenticate: func(context.Context, string, string) (mailbricks.UserID, error) {
			return "", delivery.ErrAuthFailed // this example submits only through Submit
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	msg := "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: Hello\r\n\r\nHi Bob.\r\n"
	res, err := sub.Submit(context.Background(), "alice@example.org", "alice@example.org",
		[]string{"bob@example.net"}, strings.NewReader(msg), &delivery.SubmitOptions{ClientIP: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("queued for", res.Job.Recipients, "from", res.Job.From)
	fmt.Println("Sent copy seen:", slices.Contains(res.Sent.Flags, mailbox.FlagSeen))

	_, err = sub.Submit(context.Background(), "alice@example.org", "ceo@example.org",
		[]string{"bob@example.net"}, strings.NewReader(msg), nil)
	fmt.Println(err)
	// Output:
	// queued for [bob@example.net] from alice@example.org
	// Sent copy seen: true
	// delivery: sender address not allowed for this user: "ceo@example.org" for alice@example.org
}
