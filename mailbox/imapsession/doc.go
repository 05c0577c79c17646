// Package imapsession serves a [mailbox.Store] to ordinary mail clients over
// IMAP4rev2 (RFC 9051, and IMAP4rev1, RFC 3501, for older clients), with
// SEARCH answered by an [index.Index]. It implements the Session interfaces
// of github.com/emersion/go-imap/v2/imapserver over the portable
// [mailbox.Store] and never reaches past it to a backend, so it serves the
// embedded and the PostgreSQL backends alike.
//
// The shortest setup is [NewServer], which returns a ready
// *imapserver.Server with the capabilities this package implements:
//
//	srv := imapsession.NewServer(store, auth, &imapsession.Options{Index: idx})
//	ln, _ := net.Listen("tcp", ":993") // or tls.Listen
//	go srv.Serve(ln)
//
// # Name
//
// The package is called imapsession, not imapserver or imap, so that it
// can be imported beside go-imap's imap, imapserver and imapclient without
// an alias: what it provides is the session those packages drive.
//
// # go-imap is a beta
//
// github.com/emersion/go-imap/v2 is pinned at v2.0.0-beta.8, the newest
// version the module proxy serves here. Its API may still change, so this
// package keeps its own surface on it small: [NewServer] returns its
// *imapserver.Server, [Handler.NewSession] has the signature of
// imapserver.Options.NewSession and [Handler.Caps] returns an imap.CapSet;
// everything else is mailbricks types.
//
// # Supported
//
// LOGIN and AUTHENTICATE PLAIN (only over TLS, unless
// [Options.AllowPlaintextLoopback] allows a loopback connection without
// it), CAPABILITY, NAMESPACE, LIST (LIST-EXTENDED selection and return
// options, SPECIAL-USE attributes, LIST-STATUS, CHILDREN), LSUB,
// SUBSCRIBE/UNSUBSCRIBE, STATUS (MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN,
// SIZE, DELETED, APPENDLIMIT), SELECT/EXAMINE, CREATE (with the missing
// superior folders), DELETE, RENAME (RENAME INBOX moves INBOX's messages
// to the new folder and leaves INBOX empty, RFC 9051 section 6.3.6),
// APPEND with flags and internal date (APPENDUID), FETCH (FLAGS, UID,
// ENVELOPE, BODYSTRUCTURE, BODY[section]<partial> and BODY.PEEK, BINARY,
// RFC822.SIZE, INTERNALDATE; a non-peek body fetch sets \Seen), STORE
// (FLAGS, +FLAGS, -FLAGS, .SILENT), COPY and MOVE (COPYUID), EXPUNGE and
// UID EXPUNGE, SEARCH and UID SEARCH with ESEARCH return options (MIN,
// MAX, COUNT, ALL, SAVE and "$"), IDLE, NOOP, CLOSE, UNSELECT, LOGOUT.
//
// Capabilities advertise AUTH=PLAIN on every connection, because go-imap
// decides that per server, not per connection; a login over plaintext
// where the options do not allow it answers NO [PRIVACYREQUIRED]. After
// STARTTLS ([Options.TLSConfig]) the connection counts as TLS.
//
// # Updates
//
// Each authenticated session watches the user's mailbox with
// [mailbox.Store.Watch], so a change made anywhere — another session,
// SMTP delivery, another server process on the same PostgreSQL database —
// reaches the client as untagged EXISTS, FETCH FLAGS and EXPUNGE
// responses after its next command or at once while it IDLEs. The
// session keeps the list of UIDs its client knows, by message sequence
// number, and renumbers it as RFC 9051 section 7.5.1 says: EXPUNGE
// responses are sent in an order where each number is valid when sent,
// and never during FETCH, STORE or SEARCH (they wait for the next command
// that allows them). A watcher that falls behind gets
// [mailbox.EventOverflow] and the session resynchronizes from the folder.
//
// # SEARCH
//
// With [Options.Index] set, SEARCH criteria become one [index.Query]
// (folder, flags, keywords, dates, sizes, UIDs, MODSEQ, text and the
// headers of [index.IndexedHeaders]); sequence numbers are translated to
// UIDs first. Text criteria (FROM, TO, CC, BCC, SUBJECT, BODY, TEXT,
// HEADER) then match whole words and phrases as the index tokenizes them,
// folded for case and diacritics, not arbitrary substrings: BODY "port"
// finds "port" and "Port", not "report" (in scripts written without
// spaces any substring of two characters or more matches). This is how
// most large IMAP services with full-text search behave and what the
// RFC's "substring" allows servers with an index to do. A criterion the
// index cannot answer — HEADER on a header it does not hold, or a UID or
// sequence set of more than [index.MaxQueryUIDRanges] ranges — makes that
// SEARCH evaluate every message as without an index (below).
//
// SEARCH answers with the messages the client knows: mail that arrived
// since its last command is announced (EXISTS) after the SEARCH result,
// and found by the next SEARCH.
//
// Freshness: pass the index the Store keeps current (the Store's
// [mailbox.Options.Index], as embedded.Open sets up). The Store indexes a
// message before Append returns and applies flag, move and expunge
// changes before those calls return, so a message is found by SEARCH as
// soon as the APPEND or the SMTP delivery that stored it has returned:
// there is no lag.
//
// Without an index, every criterion is evaluated on the messages'
// metadata, and text criteria as case-insensitive substrings of the
// decoded header fields and of the raw message bytes (BODY, TEXT): exact
// IMAP semantics at the cost of reading every message.
//
// # Limits
//
// [Options.AppendLimit] bounds an APPEND literal (APPENDLIMIT, checked by
// go-imap before the literal is read), [Options.MaxSessionsPerUser] the
// concurrent sessions of one user and [Options.LoginFailureDelay] slows
// password guessing. go-imap bounds a command line, literals of other
// commands excepted, at 50 KiB. Malformed commands get a tagged BAD from
// go-imap's parser and the session goes on; what go-imap cannot
// resynchronize on — a line over 50 KiB, a line without a valid tag, a
// non-synchronizing literal (LITERAL-) over the APPEND limit — closes
// that connection, and a panic in a command would end only its own
// connection: other sessions are never affected.
//
// Message bytes are served as they were appended: BODY[], BODY[HEADER]
// and BODY[TEXT] are cut from the stored bytes, so RFC822.SIZE and
// BODY[] agree and a message synchronized down and up again is the same
// message.
//
// # CONDSTORE and QRESYNC
//
// go-imap's server does not support CONDSTORE or QRESYNC (RFC 7162)
// today, so they are not advertised. The mailbox block keeps everything
// they need — a MODSEQ per message and HIGHESTMODSEQ per folder, expunge
// tombstones, [mailbox.Store.Changes] and UNCHANGEDSINCE in
// [mailbox.Store.SetFlags] — so they can be enabled here when it does.
package imapsession
