// Package mailbox stores the mailboxes of many users: folders (IMAP
// mailboxes, RFC 9051) with special-use roles (RFC 6154), messages with
// flags and keywords, threads, and the IMAP synchronization state: per
// folder UIDVALIDITY and strictly increasing, never reused UIDs, and per
// message MODSEQs with expunge tombstones (RFC 7162 CONDSTORE/QRESYNC).
//
// Everything is partitioned by [mailbricks.UserID] and ordered by
// [mailbricks.MessageID], a UUIDv7, so a user's newest mail is at the end
// of their range. Besides the messages, backends keep two denormalized
// tables per folder, unread and read: every message is in exactly one,
// [Store.MarkRead] moves it from one to the other in the same transaction
// as the counts, and "the 50 newest unread" is a range read of the unread
// table whose cost follows the page, not the mailbox.
//
// Users call a [Store], made by [New] over a [Backend] and a
// [dedup.Store]. [Store.Append] parses the message once, with the parser
// and header-decoding policy package index uses too, under size, header,
// part-count and depth limits, extracts the metadata (addresses,
// subject, date, Message-ID, references, attachments, a snippet), threads
// it, and stores its body through [dedup.Split]: each part body over
// [dedup.SplitOptions].MinSize (16 KiB by default) becomes a blob kept
// once across all users, however many mailboxes hold it. Smaller parts
// (the text of most messages, signatures, small inline images) stay
// inline in the message's skeleton: a blob costs a file, a link record
// and an extra read on every open, which outweighs the bytes saved on a
// part of a few KiB, while attachments worth sharing (documents, photos,
// newsletters' images) are far larger. [Store.Open] returns the bytes
// exactly as appended. Malformed messages are stored byte for byte with
// [Message.ParseError] set, never rejected. [AppendOptions.Key] makes
// Append idempotent, so a redelivered queue job stores its message once.
//
// With [Options.Index] set, the Store keeps a search index
// ([github.com/mailbricks/mailbricks/index]) current: a message is
// searchable when Append returns, and flag, folder and expunge changes
// reach the index before their call returns (see [ErrIndex] and
// [Store.Reindex] for failures). The shortest setup is one call to
// [github.com/mailbricks/mailbricks/embedded.Open], which opens mailbox,
// blobs and index in one directory with the index attached; one block
// alone opens with lsmmailbox.OpenStore.
//
// For an IMAP server: [Store.Folder] gives what SELECT reports,
// [Store.FetchUIDs] reads UID ranges, [Store.SetFlags] with UNCHANGEDSINCE
// serves STORE, [Store.Move] and [Store.Copy] return COPYUID maps,
// [Store.ExpungeDeleted] serves EXPUNGE, [Store.Changes] serves
// CONDSTORE/QRESYNC and [Store.Watch] serves IDLE; [Store.Subscribe] and
// [Store.Subscriptions] keep subscriptions, [Store.FetchUIDSet] reads UID
// sets, [Store.Status] adds the keywords and \Deleted count,
// [Store.ExpungeIfDeleted] expunges only what is still \Deleted, and every
// [Message] carries its folder's UIDValidity (APPENDUID). Package
// github.com/mailbricks/mailbricks/mailbox/imapsession is that server,
// on go-imap. For an HTTP API:
// [Store.List] with a cursor, [Store.Get], [Store.Open], [Store.MarkRead].
// For a search index: [Store.Watch] and [Store.Scan].
//
// # Backends
//
// The one-call setup opens the embedded default in a directory and returns
// a ready Store (blobs from filededup.OpenStore, index optional):
//
//	store, err := lsmmailbox.OpenStore("/var/lib/mail/mailbox", blobs, &lsmmailbox.Options{Store: &mailbox.Options{Index: idx}})
//
// or, for mailbox, blobs and index together, embedded.Open("/var/lib/mail", nil).
//
//   - [github.com/mailbricks/mailbricks/mailbox/lsmmailbox]: embedded, on
//     the lsm engine (the default).
//   - [github.com/mailbricks/mailbricks/mailbox/pgmailbox]: PostgreSQL, with
//     hash-partitioned tables and a change feed over LISTEN/NOTIFY.
//
// # Errors
//
// [ErrNotFound] for a message that does not exist or belongs to another
// user (the two are indistinguishable), [ErrNoFolder], [ErrFolderExists],
// [ErrFolderNotEmpty], [ErrInvalidFolder], [ErrInvalidArgument],
// [ErrTooLarge] and [ErrClosed]; invalid user IDs wrap
// [mailbricks.ErrInvalidUser]. Match them with errors.Is.
//
// # Implementing a Backend
//
// A [Backend] stores records and keeps the tables consistent; [Store] does
// the parsing, validation, blob handling and threading rules. Each write
// method is one atomic transaction that assigns UIDs and MODSEQs, moves
// rows between the unread and read tables, updates counts, writes expunge
// tombstones and emits events together; writes of one user are
// linearizable. Errors must match the sentinels above as each method's
// documentation says. Run [github.com/mailbricks/mailbricks/mailbox/mailboxtest.Run]
// against it.
package mailbox
