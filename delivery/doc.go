// Package delivery is the edge of the mail service: Inbound receives mail
// from the internet over SMTP (RFC 5321) as a github.com/emersion/go-smtp
// backend, checks it (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489 DMARC, reported
// in one RFC 8601 Authentication-Results field) and hands it off durably;
// Deliver, the handler of the incoming queue topic, appends each message to
// its recipients' mailboxes. Submission receives mail from authenticated
// local users (RFC 6409) for the outgoing topic. The outbound worker is
// not part of this package yet.
//
// # Flow
//
//	client ──SMTP──▶ Inbound session
//	  EHLO      name validated; per-IP connection limits already applied
//	            by Inbound.Listener
//	  MAIL      address validated, per-IP message rate, SPF
//	  RCPT      address validated, MaxRecipients, Recipient hook → user
//	  DATA      bytes stream through the smuggling and header checks into
//	            dedup.Store.Put, while a DKIM verifier reads a copy through
//	            a pipe; then DMARC, the Policy hook, Store.Link of the
//	            body, one queue job on the incoming topic, and only then 250
//	queue worker ──▶ Deliver.Handle
//	            filter hook, then mailbox.Store.Append per recipient user,
//	            keyed by the job, then Store.Unlink of the body
//
// The whole message is never held in memory: the body streams to the blob
// store, the DKIM verifier keeps only the header section (bounded by
// MaxHeaderBytes) and a hash, and the job payload holds the envelope, the
// results and the prepended fields.
//
// # Guarantees
//
// 250 is sent only after the body is stored and linked and the job is
// durable (queue.Queue.Enqueue returned), so a crash at any instant after
// 250 loses nothing. A crash before 250 leaves no job: the client retries,
// and the body blob, protected only by dedup's temporary link, is collected
// by dedup GC (a crash between Link and Enqueue leaves a linked orphan).
// The job's key is the SMTP transaction ID (a new UUIDv7 per MAIL command),
// and a transaction enqueues at most one job. A storage failure (blob store
// or queue) answers 451 4.3.0, so the client keeps the message and retries.
//
// Deliver is idempotent: each user's copy is appended with
// mailbox.AppendOptions.Key derived from the job's key (mailbox keys are
// per user, so two recipient addresses of one user get one copy), so a job
// delivered again after a worker died stores nothing twice. The search
// index follows when the mailbox.Store was opened with an Index (as
// package embedded does).
//
// The message delivered is the job's prepended fields (Received, then
// Authentication-Results) followed by the bytes received, byte for byte,
// except for incoming Authentication-Results fields whose authserv-id is our
// host name (RFC 8601 section 5): those are left out, by byte ranges
// recorded in the job, so the blob itself is exactly what was received.
//
// # The smuggling rule
//
// SMTP smuggling hides a second message behind an end-of-data sequence that
// one MTA honors and another does not (<LF>.<LF>, <LF>.<CR><LF>,
// <CR>.<CR>, ...). go-smtp ends DATA only at <CR><LF>.<CR><LF>, so such a
// sequence arrives as message data. Inbound applies this rule to the data
// (after dot-unstuffing; the same to BDAT chunks, RFC 3030), and a message
// breaking it is refused after the data ends, with nothing stored for
// delivery and no job:
//
//   - every LF is preceded by CR and every CR is followed by LF: a bare LF
//     or bare CR is 550 5.5.2 (the strict rule of Postfix's
//     smtpd_forbid_bare_newline; it also covers every <LF>.
//     sequence);
//   - no NUL byte: 550 5.6.0;
//   - the header section (up to the first empty line) has at most
//     MaxHeaderFields fields, no line longer than MaxHeaderLineBytes and
//     at most MaxHeaderBytes bytes: 552 5.3.4;
//   - no line at all is longer than MaxLineBytes (go-smtp closes the
//     connection after such a line).
//
// One case is outside the rule's reach: go-smtp drops a CR that directly
// follows a dot at the start of a line, so "<CR><LF>.<CR>x" arrives as
// "<CR><LF>x". What is stored, and later relayed, is the data as arrived,
// which then keeps the rule.
//
// Envelope addresses and the EHLO name never contain CR, LF, NUL or any other
// control character (ValidateAddress, ValidateHelo): a bad EHLO is 501 5.5.2
// and the session gets no transaction; a bad address is refused with 501.
//
// # Authentication
//
// SPF runs at MAIL FROM for the client IP and the MAIL FROM domain (the EHLO
// name for the null reverse-path), through blitiri.com.ar/go/spf. DKIM
// (go-msgauth) verifies up to MaxDKIMSignatures signatures while the data
// streams. DMARC looks up the RFC5322.From domain's policy, falls back to
// the organizational domain (golang.org/x/net/publicsuffix) and its sp=,
// checks relaxed or strict alignment of SPF and DKIM, and samples pct= (a
// message not sampled gets the next less strict policy). A DMARC failure
// with p=reject is refused with 550 5.7.1 and with p=quarantine is queued
// marked Junk, unless the Policy hook changes PolicyCheck.Action. All DNS
// goes through InboundOptions.Resolver.
//
// # Options
//
// InboundOptions: Hostname, Topic, Recipient (unknown recipient → 550
// 5.1.1), Policy, MaxMessageBytes (SIZE; 552 5.3.4), MaxRecipients (452
// 4.5.3), MaxConnsPerIP and ConnRatePerIP (421 4.7.0, at connect),
// MessageRatePerIP (450 4.7.1 at MAIL), ReadTimeout and WriteTimeout
// (go-smtp has none by default), TLSConfig (STARTTLS), MaxLineBytes,
// MaxHeaderLineBytes, MaxHeaderBytes, MaxHeaderFields, MaxDKIMSignatures,
// Resolver, DNSTimeout, Logger and Now. DeliverOptions: Filter (Inbox, Junk
// or reject) and Logger. Each field's documentation gives its default.
//
// # Submission
//
// Submission is a second go-smtp backend, for a submission listener
// (port 587 with STARTTLS, or 465 with implicit TLS: wrap the listener
// in tls.NewListener). It takes the limits, timeouts, TLSConfig and header
// rules of an embedded InboundOptions; its topic defaults to "outgoing".
//
//   - AUTH PLAIN and LOGIN (github.com/emersion/go-sasl; LOGIN is served
//     by this package) are offered and accepted only under TLS: go-smtp
//     answers AUTH without TLS with 523 5.7.10. AllowInsecureAuth allows
//     it on loopback connections only, for tests and local relays. The
//     Authenticate hook maps user name and password to a user; a failure
//     is 535 5.7.8.
//   - MAIL before a successful AUTH is 530 5.7.0. The MAIL FROM address
//     must belong to the user (SenderAllowed; by default only the address
//     equal to the user name): else 553 5.7.1.
//   - DATA streams through the same smuggling and header checks as
//     Inbound into dedup; the blob is exactly the bytes received. If the
//     header section lacks a Message-ID or a Date field, the fields are
//     generated ("<transaction ID@host name>", the time of acceptance) and
//     carried in OutgoingJob.Header, to be prepended: the message as sent
//     is Header followed by the blob. Nothing is buffered beyond the
//     start of each header line.
//   - Then the blob is linked (owner OutgoingBlobOwner), a copy of the
//     message as sent is appended to the user's Sent folder (role Sent,
//     marked \Seen, AppendOptions.Key "delivery/sent/<transaction ID>"),
//     and one OutgoingJob is queued with Key = the transaction ID; only
//     then 250. If the Sent append fails the message is not sent: the
//     client gets 451 4.3.0 and nothing is queued, so a 250 means both
//     the job and the Sent copy are durable. If the enqueue fails after
//     the Sent append, the client gets 451 4.3.0 and the Sent copy stays;
//     the client's retry is a new transaction, so the Sent folder then
//     holds the message twice.
//
// Submission adds no Received or Authentication-Results field and runs no
// SPF, DKIM or DMARC; signing is the outbound worker's job.
//
// # Errors
//
// Hooks choose SMTP replies by returning an *Error (code, enhanced code,
// text). Other hook errors become 451 4.3.0 when mailbricks.IsTemporary
// reports them temporary and 550 5.3.0 otherwise; ErrUnknownRecipient
// becomes 550 5.1.1. ValidateAddress and ValidateHelo wrap
// ErrInvalidAddress and ErrInvalidHelo; ParseIncomingJob wraps
// ErrInvalidJob.
package delivery
