// Package delivery is the edge of the mail service: Inbound receives mail
// from the internet over SMTP (RFC 5321) as a github.com/emersion/go-smtp
// backend, checks it (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489 DMARC, reported
// in one RFC 8601 Authentication-Results field) and hands it off durably;
// Deliver, the handler of the incoming queue topic, appends each message to
// its recipients' mailboxes. Submission receives mail from authenticated
// local users (RFC 6409) for the outgoing topic. Outbound, the handler of
// the outgoing topic, delivers to other servers' MX hosts (or straight into
// local mailboxes), signs with DKIM, retries, and sends delivery status
// notifications (RFC 3464); Feedback records the bounces and complaints
// that come back.
//
// # Flow
//
//	client ──SMTP──▶ Inbound session
//	  EHLO      name validated; per-IP connection limits already applied
//	            by Inbound.Listener
//	  MAIL      address validated, per-IP message rate, SPF
//	  RCPT      address validated, MaxRecipients, Recipient hook → user
//	  DATA      bytes stream through the smuggling and header checks into
//	            the blob store, while a DKIM verifier reads a copy through
//	            a pipe; at the end of the data, DMARC and the Policy hook;
//	            then dedup.Store.PutLink publishes and links the body in
//	            one step, one queue job goes on the incoming topic, and
//	            only then 250
//	queue worker ──▶ Deliver.Handle
//	            filter hook, then mailbox.Store.Append per recipient user,
//	            keyed by the job, then Store.Unlink of the body
//
// The whole message is never held in memory: the body streams to the blob
// store, the DKIM verifier keeps only the header section (bounded by
// MaxHeaderBytes) and a hash, and the job payload holds the envelope, the
// results and the prepended fields.
//
// InboundOptions.InlineMax (off by default) trades that for speed: a
// message of at most InlineMax bytes is read into a per-session buffer,
// checked, and carried in its job (IncomingJob version 2), so accepting
// it costs one synced write instead of two and Deliver has no blob to
// unlink. 250 then follows the job alone, which holds the bytes.
//
// # Guarantees
//
// 250 is sent only after the body is stored and linked and the job is
// durable (queue.Queue.Enqueue returned), so a crash at any instant after
// 250 loses nothing. A crash before 250 leaves no job: the client retries.
// A body refused by the checks, DMARC or the policy is never published; a
// crash while the body is being stored leaves at most a blob protected
// only by dedup's temporary link, collected by dedup GC; a crash between
// PutLink and Enqueue leaves a linked orphan.
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
// or reject) and Logger. Each field's documentation gives its default. All
// per-IP limits count an IPv4 client by its address and an IPv6 client by
// its /64.
//
// # Submission
//
// Submission is a second go-smtp backend, for a submission listener
// (port 587 with STARTTLS, or 465 with implicit TLS: serve on
// tls.NewListener(sub.Listener(l), cfg), in that order, so that go-smtp
// sees a *tls.Conn and offers AUTH). It takes the limits, timeouts, TLSConfig and header
// rules of an embedded InboundOptions; its topic defaults to "outgoing".
//
//   - AUTH PLAIN and LOGIN (github.com/emersion/go-sasl; LOGIN is served
//     by this package) are offered and accepted only under TLS: go-smtp
//     answers AUTH without TLS with 523 5.7.10. AllowInsecureAuth allows
//     it on loopback connections only, for tests and local relays. The
//     Authenticate hook maps user name and password to a user; a failure
//     is 535 5.7.8.
//   - Failed AUTH attempts are answered after AuthFailureDelay (1 s); a
//     connection's MaxAuthFailuresPerConn-th (3rd) failure gets 421 4.7.0
//     and the connection is closed; a client that spent AuthFailuresPerIP
//     (30 an hour) gets 454 4.7.0 for every AUTH, even a right one, until
//     a token is back.
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
//   - The blob is linked as it is stored (owner OutgoingBlobOwner,
//     dedup.Store.PutLink); then a copy of the
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
// Submission prepends a Received field (RFC 5321 section 4.4; with ESMTPSA
// or ESMTPA, RFC 3848, and the authenticated user in a comment unless
// HideAuthUser; never the password) before the added Message-ID and Date in
// OutgoingJob.Header; the Sent copy has the added Message-ID and Date but
// not the Received field. It adds no Authentication-Results and runs no
// SPF, DKIM or DMARC; signing is the outbound worker's job.
//
// Submission.Submit is the same path without SMTP, for mail a signed-in
// user composes elsewhere (an HTTP send endpoint, a webmail, a program):
// the sender and recipient checks, MaxRecipients, MaxMessageBytes and
// DATA's checks give typed errors (ErrSenderNotAllowed,
// ErrInvalidAddress, ErrTooManyRecipients, ErrMessageTooLarge,
// ErrBareLineEnding, ErrNUL, ErrHeaderTooLarge); the body is stored and
// linked, the Received field says "with HTTP" (SubmitOptions.Protocol)
// and "from [client IP]" when given, the Sent copy and the job follow as
// above, and a nil error means the job is durable. It applies no per-IP
// rate limits: those belong to the caller's front.
//
// # Outbound
//
// Outbound is a queue.Handler for the outgoing topic (run it in a
// queue.Worker). NewOutbound takes the queue, the blob store and a
// StateStore: small versioned records with compare-and-set, which every
// reputation.Backend is (lsmreputation on one machine, redisreputation
// shared by many sending machines), so nothing else needs to be deployed.
//
//	OutgoingJob (Submission, or any producer's Enqueue)
//	  one domain    handled in place as that domain's first step
//	  several       split: per domain, Link the blob under its own owner
//	                and Enqueue an OutboundJob (key "delivery/out/<tag>#1"),
//	                then Unlink the original owner; all idempotent
//	OutboundJob, step n (tag = hash of transaction ID and domain)
//	  load state    "delivery/out/<tag>"; if step n is recorded as done, an
//	                earlier run died after saving: redo only what follows
//	  local domain  same-domain shortcut: mailbox Append per recipient into
//	                Inbox, keyed "delivery/out/<tag>" (no SMTP, no queue hop)
//	  remote        Reputation.Decide per recipient (suppressed: failed
//	                5.7.1, never attempted; held for longer than
//	                MaxPacingWait: step again after RetryAfter, not counted
//	                as an attempt; shorter waits are slept through), DKIM
//	                signatures computed once, then per source IP one
//	                transaction down the MX list
//	  outcomes      every reply classified and passed to Reputation.Record
//	  save state    compare-and-set on the record's version (a stale
//	                lease's worker gets ErrStateConflict and writes nothing)
//	  then          this step's DSNs (idempotent), then the next step's job
//	                (NotBefore = the retry time, key "<tag>#<n+1>") or, when
//	                every recipient is done, Unlink of the blob
//
// Per-recipient state (pending, sent, failed; source IP, MX host, last
// reply) is durable before the job is acknowledged, so a partial success
// is never resent: a redelivered job, after a worker died, attempts only
// the recipients still pending. The one window for a duplicate is a crash
// between the remote server's 250 and the save of the state; the kill test
// counts those. State records are kept after delivery (Feedback maps
// late bounces through them); Status reads them.
//
// Durability of the state and the acks. Outbound is at least once: what
// must never happen is a recipient left undelivered, and a duplicate is
// the price of a crash. So the state record and the queue's Ack need to
// survive a crash of the process (SIGKILL, a panic, the OOM killer) but
// not of the machine, and may be written without fsync. The supported
// unsynced setup is lsmqueue opened with AckNoSync and StateNoSync, its
// Backend passed as the StateStore (the records then share the queue's
// write-ahead log): each write reaches the OS within microseconds and
// survives the process; a power loss or kernel crash may lose the latest
// ones, and then
//
//   - a lost Ack makes the job run again: its state says what is done, so
//     nothing is resent;
//   - a lost state record (its Ack, written after it in the same log, is
//     lost too) makes the step run again: the recipients it had already
//     delivered get the message a second time (a duplicate, never a
//     loss); if the step had finished and released the body (Unlink, a
//     synced write of the blob store) and the blob store has collected
//     it since, the rerun finds the body gone and fails until the job
//     goes to the dead letters, where "body is gone" then means it was
//     delivered;
//   - the enqueue of every new job (the per-domain split, the next step,
//     a DSN) stays synced, and a synced write makes every earlier write of
//     the same log durable, so what a later step depends on is never lost.
//
// With a synced StateStore (lsmreputation, redisreputation with AOF
// fsync) and lsmqueue's defaults everything above is synced, and the only
// duplicates are those of the 250-to-save window. The kill tests run both
// setups.
//
// MX resolution (RFC 5321 section 5.1) goes through OutboundOptions.Resolver:
// hosts by preference, equal preferences shuffled, at most MaxMXHosts; a
// null MX (RFC 7505) fails the recipients with 556 5.1.10; a domain without
// MX records is its own host (its A/AAAA records), one that does not exist
// fails with 550 5.1.2; a temporary DNS failure is 451 4.4.3. Each host's
// addresses are tried in order, and the next address or host is tried after
// a connection failure (4.4.1), a refused session (any 4xx or 5xx greeting
// or EHLO), a 4xx to MAIL or DATA, or a connection dropped mid-DATA
// (4.4.2); a 5xx to MAIL or after DATA fails the recipients, and a
// recipient's own reply to RCPT is final for this attempt (a 4xx waits for
// the next attempt, not the next host). An address literal domain
// ("[192.0.2.1]") is its own host.
//
// The SMTP client is this package's own, not go-smtp's (whose v0.26
// client cannot upgrade to TLS after reading the EHLO reply and has no
// PIPELINING): it dials from the source IP Reputation chose (net.Dialer
// LocalAddr), says EHLO with Hostname (HELO when EHLO is refused), uses
// STARTTLS on the same connection whenever offered (opportunistic, RFC 7435:
// certificates are not verified by default; a failed handshake makes that
// host plain text for TLSFallback and the message goes at once over a new
// plain connection), pipelines MAIL, RCPT and DATA when PIPELINING is
// offered (RFC 2920), adds SIZE and SMTPUTF8 when offered and needed,
// applies the Timeouts of RFC 5321 section 4.5.3.2 to each step, keeps
// connections open for reuse per MX address and source IP (RSET between
// transactions, idle for Timeouts.Idle) and caps the connections to one
// MX address at ConnsPerHost. DATA is streamed from the blob store:
// every bare CR or LF becomes CRLF, a line starting with "." is
// dot-stuffed, and the last line is ended, so the data on the wire never
// carries a bare line ending.
//
// DKIM (RFC 6376; Ed25519 per RFC 8463): each DKIMKey whose Domain is the
// RFC5322.From domain or a parent of it, and each key marked All, signs
// relaxed/relaxed with SHA-256 over DefaultDKIMHeaders (or its own
// HeaderKeys). Signing is streamed: one read of the message through every
// dkim.Signer at once (only the header section is buffered, up to
// MaxHeaderBytes), then a second read to send it with the DKIM-Signature
// fields prepended. A body of at most 256 KiB is read from the blob store
// once, into memory, for both (larger ones are read twice, never held
// whole).
//
// # Retries and DSNs
//
// The first attempt is immediate; after a temporary failure the next
// attempt waits Retry[i] for the i-th failed attempt, the last wait
// repeating, each with ±Jitter (default 10%): by default 7.5m, 15m, 30m,
// 1h, 2h, 4h, 8h, 16h, 16h, … until Expire (5 days) after the message was
// accepted, when one last attempt runs and the recipients still pending
// fail with 4.4.7 "delivery time expired" (keeping the last reply). The
// retry times go into the queue as the next job's NotBefore, computed on
// OutboundOptions.Now.
//
// DSNs are RFC 3464 multipart/report messages (WriteDSN) with the RFC 3463
// status of each recipient's last reply, its Remote-MTA and
// Diagnostic-Code, and the original header section as text/rfc822-headers:
//
//   - a failure DSN in the step where recipients fail permanently (5xx,
//     null MX, no such domain, suppressed) or expire, naming those
//     recipients;
//   - one delayed DSN, in the first step at least DelayedDSNAfter (4h)
//     after acceptance that still leaves recipients pending, with
//     Will-Retry-Until;
//   - never for a message with the null reverse-path;
//   - to a sender at a local domain: appended to its Inbox through Mail
//     (key "delivery/dsn/<tag>/<step>/<kind>"); to another sender: stored
//     in the blob store and queued on the outgoing topic as an OutboundJob
//     from the null reverse-path (user Postmaster), so a DSN that bounces
//     gets no DSN.
//
// # Feedback
//
// With OutboundOptions.BounceAddress set ("bounces@example.com"), every
// message goes out from "bounces+<tag>@example.com", the tag naming the
// message and domain (its state record). Feedback takes what arrives at
// that address: Handle parses DSNs and ARF reports with
// reputation.ParseReport, maps each outcome to the tagged message's
// recipient (the only one, when the report names a forwarded address) and
// its source IP, and records it with the Tracker, so late bounces and
// complaints suppress recipients and count against the IP. Filter wraps a
// DeliverOptions.Filter so that reports to the bounce address are recorded
// and not stored.
//
// # Outbound options
//
// OutboundOptions: Hostname, Topic, Mail, LocalDomain and LocalRecipient
// (the same-domain shortcut and local DSNs), Reputation and Class (source
// IP, pacing, suppression, outcomes), Resolver and Port (MX lookups; port
// 25), TLSConfig, DisableTLS and TLSFallback, DKIM, MaxHeaderBytes, Retry,
// Jitter, Expire, DelayedDSNAfter, ConnsPerHost, Timeouts (Connect 30s,
// Greeting 5m, Mail 5m, Rcpt 5m, DataInit 2m, DataBlock 3m, DataTerm 10m,
// Idle 30s), MaxPacingWait, BounceAddress, Postmaster, Now, Rand and
// Logger; FeedbackOptions: Logger. Each field's documentation gives its
// default.
//
// # Errors
//
// Hooks choose SMTP replies by returning an *Error (code, enhanced code,
// text). Other hook errors become 451 4.3.0 when mailbricks.IsTemporary
// reports them temporary and 550 5.3.0 otherwise; ErrUnknownRecipient
// becomes 550 5.1.1. ValidateAddress and ValidateHelo wrap
// ErrInvalidAddress and ErrInvalidHelo; ParseIncomingJob, ParseOutgoingJob
// and ParseOutboundJob wrap ErrInvalidJob. Outbound reports each
// recipient's outcome as an *Error (Code, Enhanced, Message; Temporary
// for a 4xx) in RecipientStatus, with the MX host beside it; Handle
// returns an error only when a step could not run or be recorded (then the
// queue retries the job), ErrStateConflict among them.
package delivery
