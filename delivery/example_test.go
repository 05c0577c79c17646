package delivery_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/mailbox"
)

// noDNS answers every query with "no such name", so the example needs no
// network; a real server leaves InboundOptions.Resolver nil.
type noDNS struct{}

func nx(name string) error { return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true} }

func (noDNS) LookupTXT(_ context.Context, n string) ([]string, error)        { return nil, nx(n) }
func (noDNS) LookupMX(_ context.Context, n string) ([]*net.MX, error)        { return nil, nx(n) }
func (noDNS) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) { return nil, nx(n) }
func (noDNS) LookupAddr(_ context.Context, n string) ([]string, error)       { return nil, nx(n) }

// ExampleNewInbound receives one message over SMTP on a loopback port,
// stores it in a temporary directory, and delivers it to the recipient's
// inbox with a queue worker running Deliver.
func ExampleNewInbound() {
	dir, err := os.MkdirTemp("", "mailbricks-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	mail, err := embedded.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer mail.Close()

	in, err := delivery.NewInbound(mail.Blobs, mail.Queue, &delivery.InboundOptions{
		Hostname: "mx.example.net",
		Resolver: noDNS{},
	})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := in.NewServer()
	go srv.Serve(in.Listener(l))
	defer srv.Close()

	// A client sends one message; 250 means the job is durable.
	c, err := smtp.Dial(l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	msg := "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: Lunch?\r\n\r\nAt noon?\r\n"
	err = c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(msg))
	fmt.Println("sent:", err)
	c.Quit()

	// The incoming worker delivers it. A service runs
	// queue.NewWorker(mail.Queue, delivery.DefaultTopic, deliver, nil);
	// here one job is leased and handled by hand.
	deliver, err := delivery.NewDeliver(mail.Mailbox, mail.Blobs, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	jobs, err := mail.Queue.Lease(ctx, delivery.DefaultTopic, 10, time.Minute, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, job := range jobs {
		if err := deliver.Handle(ctx, job); err != nil {
			log.Fatal(err)
		}
		if err := mail.Queue.Ack(ctx, job); err != nil {
			log.Fatal(err)
		}
	}
	page, err := mail.Mailbox.List(ctx, "bob@example.net", mailbox.Inbox, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range page.Messages {
		fmt.Println("inbox:", m.Subject)
	}
	// Output:
	// sent: <nil>
	// inbox: Lunch?
}
