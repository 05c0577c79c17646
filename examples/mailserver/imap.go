package main

import (
	"context"
	"fmt"
	"net"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox/imapsession"
)

// newIMAP serves the mailbox store to mail clients over IMAP
// (imapsession): the accounts' passwords, SEARCH answered by the store's own
// index, STARTTLS with the server's certificate, and LOGIN without TLS only
// from loopback addresses. It binds -imap.
func newIMAP(a *app) (front, error) {
	log := a.log.With("front", "imap")
	srv := imapsession.NewServer(a.b.Mailbox, a.imapAuth, &imapsession.Options{
		Index:                  a.b.Index,
		TLSConfig:              a.tls,
		AllowPlaintextLoopback: a.cfg.InsecureAuth,
		Logger:                 log,
	})
	l, err := net.Listen("tcp", a.cfg.IMAPAddr)
	if err != nil {
		return front{}, fmt.Errorf("-imap: %w", err)
	}
	plain := "STARTTLS; LOGIN without TLS from loopback"
	if !a.cfg.InsecureAuth {
		plain = "LOGIN only after STARTTLS"
	}
	return front{
		name:   "imap",
		banner: []string{fmt.Sprintf("IMAP        %-22s mail clients, IMAP4rev2/rev1, IDLE (%s)", l.Addr(), plain)},
		run: func(ctx context.Context) error {
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(l) }()
			select {
			case <-ctx.Done():
				// Close stops accepting and closes the sessions: an IMAP
				// client reconnects and resynchronizes by UID, and
				// every change a session made is stored before its
				// command's tagged OK.
				srv.Close()
				<-errc
				return nil
			case err := <-errc:
				srv.Close()
				return err
			}
		},
	}, nil
}

// imapAuth is imapsession's AuthFunc: the accounts' passwords, with a bad
// one reported as imapsession.ErrAuthFailed (a storage failure stays a
// temporary error, which the client sees as NO [UNAVAILABLE]).
func (a *app) imapAuth(ctx context.Context, name, pw string) (mailbricks.UserID, error) {
	u, err := a.accounts.Verify(ctx, name, pw)
	if err != nil && !mailbricks.IsTemporary(err) {
		return "", fmt.Errorf("%w: %w", imapsession.ErrAuthFailed, err)
	}
	return u, err
}
