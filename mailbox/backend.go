package mailbox

import (
	"context"

	"github.com/mailbricks/mailbricks"
)

// Record is a message as [Store] hands it to [Backend.Append]: its
// metadata, the skeleton that [Store.Open] turns back into the message's
// bytes, the idempotency key and the thread keys.
type Record struct {
	// Message is the metadata. ID, Flags, InternalDate, Size, ThreadID and
	// the header fields are set; Folder is the destination; the backend
	// assigns UID and ModSeq.
	Message
	// Skeleton is the dedup skeleton of the message's bytes; the backend
	// stores it as is and returns it from [Backend.Skeleton].
	Skeleton []byte
	// Key, when not "", is the idempotency key of [AppendOptions.Key].
	Key string
	// ThreadKeys are the keys under which later messages find this
	// message's thread with [Backend.FindThread]: one per Message-ID and,
	// for messages threaded by subject, one for the normalized subject.
	ThreadKeys []string
}

// ListQuery selects a page of a folder for [Backend.List].
type ListQuery struct {
	// Unread selects only messages without [FlagSeen], from the unread
	// table.
	Unread bool
	// Before, when not zero, selects only messages whose ID sorts before
	// it (the cursor).
	Before mailbricks.MessageID
	// Limit is the maximum number of messages, at least 1.
	Limit int
}

// CopyPair names a message to copy and the ID of its copy.
type CopyPair struct {
	// Source is the message to copy.
	Source mailbricks.MessageID
	// ID is the new message's ID, made by [Store].
	ID mailbricks.MessageID
}

// Removed is a message [Backend.Expunge] removed.
type Removed struct {
	// Message is its metadata as it was.
	Message
	// Skeleton is its skeleton, so that [Store] can unlink its blobs.
	Skeleton []byte
}

// Backend stores the mailboxes of many users: folders, message metadata
// and skeletons, the read and unread tables, UIDs and MODSEQs, and the
// change feed. [Store] does everything else (parsing, validation, blob
// storage, threading rules) once for every backend.
//
// A backend must never return or change data of any other user than the
// one passed, whatever it is passed: it must reject an invalid user (see
// [mailbricks.UserID.Validate]) with an error matching
// [mailbricks.ErrInvalidUser], an invalid folder name with one matching
// [ErrInvalidFolder] and a key longer than [MaxKeyLen] with one matching
// [ErrInvalidArgument], as [Store] does, because [Store.Backend] hands the
// backend to callers that skip Store's checks. Every write method is one
// atomic transaction: after a crash or an error it happened entirely or
// not at all, and readers never see part of it. Writes of one user are
// linearizable: a read that starts after a write returned sees it.
//
// Folder names passed to a Backend are valid and canonical (see
// [CanonicalFolderName]). Methods must honor ctx cancellation where they
// block. Implementations must be safe for concurrent use.
type Backend interface {
	// Folders returns the user's folders, sorted by name.
	Folders(ctx context.Context, user mailbricks.UserID) ([]Folder, error)
	// Folder returns one folder. If it does not exist, the error must match
	// ErrNoFolder.
	Folder(ctx context.Context, user mailbricks.UserID, name string) (Folder, error)
	// CreateFolder creates an empty folder with a UIDValidity the user's
	// folders of that name never had, UIDNext 1 and HighestModSeq 0 (or
	// more). If the name is taken, the error must match ErrFolderExists.
	CreateFolder(ctx context.Context, user mailbricks.UserID, name string, role Role) (Folder, error)
	// RenameFolder renames folder from, and every folder below it
	// (from + "/" + …), keeping their UIDs and UIDValidity. If from does
	// not exist the error must match ErrNoFolder; if any new name is taken,
	// ErrFolderExists.
	RenameFolder(ctx context.Context, user mailbricks.UserID, from, to string) error
	// DeleteFolder deletes an empty folder. If it does not exist the error
	// must match ErrNoFolder; if it holds messages, ErrFolderNotEmpty.
	DeleteFolder(ctx context.Context, user mailbricks.UserID, name string) error

	// Append stores rec in folder rec.Folder with the folder's next UID
	// and MODSEQ, in the unread or read table after its flags, updating the
	// folder's counts, in one transaction. If rec.Key is not "" and a
	// message was stored with that key before (even concurrently), Append
	// stores nothing and returns that message (only its ID if it has been
	// expunged since) and existed true. If the folder does not exist the
	// error must match ErrNoFolder. Append may retain rec.
	Append(ctx context.Context, user mailbricks.UserID, rec *Record) (m Message, existed bool, err error)
	// LookupKey returns the message appended with key, as Append would.
	// If there is none, the error must match ErrNotFound.
	LookupKey(ctx context.Context, user mailbricks.UserID, key string) (Message, error)
	// Get returns a message's metadata. If it does not exist, the error
	// must match ErrNotFound.
	Get(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (Message, error)
	// Skeleton returns a message's skeleton. If it does not exist, the
	// error must match ErrNotFound.
	Skeleton(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) ([]byte, error)
	// List returns up to q.Limit messages of a folder, newest (highest ID)
	// first. With q.Unread it reads only the unread table, so its cost
	// follows the page, not the folder. If the folder does not exist the
	// error must match ErrNoFolder.
	List(ctx context.Context, user mailbricks.UserID, folder string, q ListQuery) ([]Message, error)
	// FetchUIDs returns the messages of a folder with first <= UID <=
	// last, by increasing UID. If the folder does not exist the error must
	// match ErrNoFolder. Every message a backend returns, here and from
	// every other method, has UIDValidity set to its folder's.
	FetchUIDs(ctx context.Context, user mailbricks.UserID, folder string, first, last uint32) ([]Message, error)
	// Scan returns up to limit messages of the user in any folder with an
	// ID greater than after, by increasing ID.
	Scan(ctx context.Context, user mailbricks.UserID, after mailbricks.MessageID, limit int) ([]Message, error)
	// SetFlags changes the flags of the messages that exist among ids; each
	// changed message gets a new MODSEQ of its folder and moves between the
	// unread and read tables when FlagSeen changes, with the counts, in one
	// transaction.
	SetFlags(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, ch FlagChange) (FlagResult, error)
	// Move moves the messages that exist among ids to folder dest, keeping
	// their IDs and flags, with new UIDs and MODSEQs there and expunge
	// tombstones in their source folders, in one transaction. Messages
	// already in dest are left alone. If dest does not exist the error
	// must match ErrNoFolder.
	Move(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, dest string) ([]UIDMap, error)
	// Copy stores, for each pair whose source exists, a copy of the source
	// (metadata, flags, skeleton) with ID pair.ID in folder dest, in one
	// transaction. If dest does not exist the error must match ErrNoFolder.
	Copy(ctx context.Context, user mailbricks.UserID, pairs []CopyPair, dest string) ([]UIDMap, error)
	// Expunge removes the messages that exist among ids, leaving expunge
	// tombstones with new MODSEQs, in one transaction, and returns them.
	Expunge(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID) ([]Removed, error)
	// ExpungeFlagged is Expunge restricted to the messages among ids that
	// carry flag (as [HasFlag] tests it) when the transaction runs: the
	// check and the removal are one atomic step, so a message whose flag a
	// concurrent SetFlags removed is kept (IMAP EXPUNGE of \Deleted
	// messages, RFC 9051 section 6.4.3). A flag of "" is
	// ErrInvalidArgument.
	ExpungeFlagged(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, flag string) ([]Removed, error)
	// Subscribe adds folder name to the user's subscriptions when
	// subscribed is true and removes it when false (IMAP SUBSCRIBE and
	// UNSUBSCRIBE). The folder need not exist: subscriptions are names,
	// kept when the folder is deleted, renamed or never created (RFC 9051
	// section 6.3.7). Both directions are idempotent.
	Subscribe(ctx context.Context, user mailbricks.UserID, name string, subscribed bool) error
	// Subscriptions returns the names the user subscribed to, sorted
	// bytewise, and an empty slice when there are none.
	Subscriptions(ctx context.Context, user mailbricks.UserID) ([]string, error)
	// Changes returns what changed in a folder after MODSEQ since. If the
	// folder does not exist the error must match ErrNoFolder.
	Changes(ctx context.Context, user mailbricks.UserID, folder string, since uint64) (Changes, error)
	// FindThread returns the thread ID stored under the first of keys that
	// has one (see [Record.ThreadKeys]), and whether there was one.
	FindThread(ctx context.Context, user mailbricks.UserID, keys []string) (mailbricks.MessageID, bool, error)
	// Thread returns the messages of a thread, oldest (lowest ID) first.
	Thread(ctx context.Context, user mailbricks.UserID, thread mailbricks.MessageID) ([]Message, error)
	// Recount recomputes a folder's counts from its messages, stores them,
	// and returns them. If the folder does not exist the error must match
	// ErrNoFolder.
	Recount(ctx context.Context, user mailbricks.UserID, folder string) (Counts, error)
	// Watch streams the user's events after every committed change until
	// ctx is done or the backend is closed, then closes the channel. A
	// backend shared by several processes must deliver the events of
	// every process. Events of one user arrive in commit order; a watcher
	// that does not keep up receives an EventOverflow in place of the
	// events it missed.
	Watch(ctx context.Context, user mailbricks.UserID) (<-chan Event, error)
	// Close releases the backend. It is idempotent; afterwards every
	// method returns an error matching ErrClosed.
	Close() error
}
