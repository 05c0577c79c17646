package imapsession

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/mailbox"
)

// ErrAuthFailed is what an [AuthFunc] returns (or wraps) for a wrong user
// name or password. Any other error is reported to the client as a server
// failure, not as bad credentials.
var ErrAuthFailed = errors.New("imapsession: authentication failed")

// AuthFunc checks a user name and password and returns the mailbox user
// they log in as. For bad credentials it returns an error matching
// [ErrAuthFailed]. It must be safe for concurrent use.
type AuthFunc func(ctx context.Context, username, password string) (mailbricks.UserID, error)

// Options configures a [Handler]. A nil *Options and every zero field
// mean the default.
type Options struct {
	// Index answers SEARCH (see the package documentation). Pass the
	// Store's own [mailbox.Options.Index] so that SEARCH sees every
	// message as soon as it is stored. The default is nil: SEARCH reads
	// the messages.
	Index *index.Index
	// TLSConfig enables STARTTLS. The default is nil: no STARTTLS (serve
	// on a TLS listener instead, or allow plaintext on loopback).
	TLSConfig *tls.Config
	// AllowPlaintextLoopback lets clients connected over a loopback
	// address (127.0.0.0/8, ::1) log in without TLS. The default is
	// false: LOGIN and AUTHENTICATE require TLS.
	AllowPlaintextLoopback bool
	// AppendLimit is the largest message APPEND accepts, in bytes,
	// announced as APPENDLIMIT. Keep it at most the Store's
	// [mailbox.Options.MaxMessageSize]. The default is 64 MiB.
	AppendLimit uint32
	// MaxSessionsPerUser bounds the authenticated sessions of one user;
	// a login beyond it fails with NO [LIMIT]. The default is 50.
	MaxSessionsPerUser int
	// LoginFailureDelay is how long a failed LOGIN or AUTHENTICATE waits
	// before it answers, to slow password guessing; negative means no
	// delay. The default is 2 seconds.
	LoginFailureDelay time.Duration
	// Logger receives failures of commands (storage errors) and of
	// connections. The default discards them.
	Logger *slog.Logger
}

// Handler makes IMAP sessions over a [mailbox.Store]. It is safe for
// concurrent use; one Handler serves any number of connections.
type Handler struct {
	store *mailbox.Store
	auth  AuthFunc
	opts  Options

	mu       sync.Mutex
	sessions map[mailbricks.UserID]int
}

// New returns a Handler serving store, authenticating users with auth.
func New(store *mailbox.Store, auth AuthFunc, opts *Options) *Handler {
	h := &Handler{store: store, auth: auth, sessions: map[mailbricks.UserID]int{}}
	if opts != nil {
		h.opts = *opts
	}
	if h.opts.AppendLimit == 0 {
		h.opts.AppendLimit = 64 << 20
	}
	if h.opts.MaxSessionsPerUser <= 0 {
		h.opts.MaxSessionsPerUser = 50
	}
	if h.opts.LoginFailureDelay == 0 {
		h.opts.LoginFailureDelay = 2 * time.Second
	}
	if h.opts.Logger == nil {
		h.opts.Logger = slog.New(slog.DiscardHandler)
	}
	return h
}

// NewServer returns a ready go-imap server for store: [New] with the
// server options [Handler.ServerOptions] gives. Serve it on a listener.
func NewServer(store *mailbox.Store, auth AuthFunc, opts *Options) *imapserver.Server {
	return imapserver.New(New(store, auth, opts).ServerOptions())
}

// ServerOptions returns the imapserver options that serve h: its
// NewSession, Caps, TLS configuration and a logger.
func (h *Handler) ServerOptions() *imapserver.Options {
	return &imapserver.Options{
		NewSession: h.NewSession,
		Caps:       h.Caps(),
		Logger:     logAdapter{h.opts.Logger},
		TLSConfig:  h.opts.TLSConfig,
		// Session.Login enforces TLS itself, so that loopback
		// connections may go without it when the options allow.
		InsecureAuth: true,
	}
}

// Caps returns the capabilities the sessions implement, for
// imapserver.Options.Caps.
func (h *Handler) Caps() imap.CapSet {
	caps := imap.CapSet{}
	for _, c := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2,
		imap.CapNamespace, imap.CapUIDPlus, imap.CapESearch, imap.CapSearchRes,
		imap.CapListExtended, imap.CapListStatus, imap.CapMove, imap.CapStatusSize,
		imap.CapBinary, imap.CapChildren, imap.CapSpecialUse, imap.CapAppendLimit,
	} {
		caps[c] = struct{}{}
	}
	return caps
}

// NewSession returns a session for a new connection, for
// imapserver.Options.NewSession. The session implements
// imapserver.Session, SessionIMAP4rev2 (NAMESPACE, MOVE) and
// SessionAppendLimit.
func (h *Handler) NewSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{h: h, conn: conn, ctx: ctx, cancel: cancel}, nil, nil
}

// acquire counts a session of user, or fails if the user has the
// maximum.
func (h *Handler) acquire(user mailbricks.UserID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[user] >= h.opts.MaxSessionsPerUser {
		return false
	}
	h.sessions[user]++
	return true
}

func (h *Handler) release(user mailbricks.UserID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[user]--; h.sessions[user] <= 0 {
		delete(h.sessions, user)
	}
}

// plaintextOK reports whether conn may authenticate: over TLS always,
// in plaintext only from a loopback address when the options allow.
func (h *Handler) plaintextOK(conn net.Conn) bool {
	if _, ok := conn.(*tls.Conn); ok {
		return true
	}
	if !h.opts.AllowPlaintextLoopback {
		return false
	}
	host, _, err := net.SplitHostPort(conn.RemoteAddr().String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(format string, args ...any) {
	a.l.Warn(fmt.Sprintf(format, args...))
}
