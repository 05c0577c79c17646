package imapsession_test

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/imapsession"
)

// Mount a mailbox store and its index as an IMAP server, then read it
// with go-imap's client.
func Example() {
	mail, _ := embedded.Open("mail", &embedded.Options{FS: vfs.NewMem()})
	defer mail.Close()
	auth := func(ctx context.Context, user, pass string) (mailbricks.UserID, error) {
		if pass != "secret" {
			return "", imapsession.ErrAuthFailed
		}
		return mailbricks.UserID(user), nil
	}
	srv := imapsession.NewServer(mail.Mailbox, auth, &imapsession.Options{Index: mail.Index, AllowPlaintextLoopback: true})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()

	mail.Mailbox.Append(context.Background(), "alice", mailbox.Inbox, strings.NewReader("Subject: hello\r\n\r\nquarterly report\r\n"), nil)
	c, _ := imapclient.DialInsecure(ln.Addr().String(), nil)
	defer c.Close()
	c.Login("alice", "secret").Wait()
	c.Select("INBOX", nil).Wait()
	found, _ := c.UIDSearch(&imap.SearchCriteria{Body: []string{"report"}}, nil).Wait()
	msgs, _ := c.Fetch(found.All, &imap.FetchOptions{Envelope: true}).Collect()
	fmt.Println(msgs[0].Envelope.Subject)
	// Output: hello
}
