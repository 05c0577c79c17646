package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

// oneMX answers every MX query with one host at 127.0.0.1, so the example
// needs no network; a real sender leaves OutboundOptions.Resolver nil.
type oneMX struct{}

func (oneMX) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	return []*net.MX{{Host: "mx." + n + ".", Pref: 10}}, nil
}
func (oneMX) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	return []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}, nil
}

// printMX is a go-smtp backend that prints what it receives.
type printMX struct{ got chan string }

func (b printMX) NewSession(*smtp.Conn) (smtp.Session, error) { return &printSession{got: b.got}, nil }

type printSession struct {
	got   chan string
	rcpts []string
}

func (s *printSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *printSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *printSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	subject := ""
	for _, l := range strings.Split(string(b), "\r\n") {
		if v, ok := strings.CutPrefix(l, "Subject: "); ok {
			subject = v
		}
	}
	s.got <- fmt.Sprintf("MX received %q for %v", subject, s.rcpts)
	return nil
}
func (s *printSession) Reset()        {}
func (s *printSession) Logout() error { return nil }

// ExampleNewOutbound queues a message for two remote recipients and
// delivers it with a queue worker running Outbound to an in-process MX.
func ExampleNewOutbound() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mail, err := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer mail.Close()
	state, err := lsmreputation.Open("state", &lsmreputation.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	defer state.Close()

	// The remote MX.
	got := make(chan string, 1)
	srv := smtp.NewServer(printMX{got: got})
	srv.Domain = "mx.example.net"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	out, err := delivery.NewOutbound(mail.Queue, mail.Blobs, state, &delivery.OutboundOptions{
		Hostname: "out.example.com",
		Resolver: oneMX{},
		Port:     l.Addr().(*net.TCPAddr).Port,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()

	// What Submission enqueues: the body in the blob store, one job.
	msg := "From: <alice@example.com>\r\nTo: <bob@example.net>\r\nSubject: Lunch?\r\n\r\nAt noon.\r\n"
	ref, err := mail.Blobs.Put(ctx, strings.NewReader(msg))
	if err != nil {
		log.Fatal(err)
	}
	if err := mail.Blobs.Link(ctx, ref, delivery.OutgoingBlobOwner("tx1")); err != nil {
		log.Fatal(err)
	}
	job := delivery.OutgoingJob{Version: 1, ID: "tx1", Blob: ref, User: "alice@example.com", From: "alice@example.com",
		Recipients: []string{"bob@example.net", "carol@example.net"}, Received: time.Now()}
	if err := enqueueJSON(ctx, mail.Queue, job); err != nil {
		log.Fatal(err)
	}

	w := queue.NewWorker(mail.Queue, delivery.DefaultOutgoingTopic, out, &queue.WorkerOptions{PollWait: 100 * time.Millisecond})
	go w.Run(ctx)
	fmt.Println(<-got)
	for {
		st, done, err := out.Status(ctx, "tx1", "example.net")
		if err != nil {
			log.Fatal(err)
		}
		if done {
			for _, r := range st {
				fmt.Println(r.Address, r.State)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output:
	// MX received "Lunch?" for [bob@example.net carol@example.net]
	// bob@example.net sent
	// carol@example.net sent
}

func enqueueJSON(ctx context.Context, q *queue.Queue, j delivery.OutgoingJob) error {
	payload, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = q.Enqueue(ctx, delivery.DefaultOutgoingTopic, payload, &queue.EnqueueOptions{Key: j.ID})
	return err
}
