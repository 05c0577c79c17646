package delivery

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// BenchmarkInboundSmall sends 5 KB messages over loopback, one per
// connection as smtp-source does, to an Inbound on the embedded backends
// in memory (no fsync): the CPU and allocations of a small message, the
// client's included.
func BenchmarkInboundSmall(b *testing.B) {
	env := newEnv(b, &InboundOptions{MaxConnsPerIP: -1, ConnRatePerIP: -1, MessageRatePerIP: -1})
	var msg strings.Builder
	msg.WriteString("From: <sender@client.example.org>\r\nTo: <rcpt@example.net>\r\nSubject: bench\r\nMessage-ID: <1@client.example.org>\r\n\r\n")
	for msg.Len() < 5000 {
		msg.WriteString("La de da de da 1.\tLa de da de da 2.\tLa de da de da 3.\tLa de da de da 4.\r\n")
	}
	body := msg.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		c, err := smtp.Dial(env.addr)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.SendMail("sender@client.example.org", []string{"rcpt@example.net"}, strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
		c.Quit()
	}
}
