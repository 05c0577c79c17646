package mailbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// Options configures a [Store]. A nil *Options and every zero field mean
// the default. Options are copied by [New].
type Options struct {
	// MaxMessageSize is the largest message [Store.Append] accepts, in
	// bytes; a larger one fails with [ErrTooLarge]. The default is 64 MiB.
	MaxMessageSize int64
	// MaxHeaderBytes bounds the header of the message and of each part
	// that metadata extraction reads. The default is 256 KiB.
	MaxHeaderBytes int64
	// MaxParts bounds the number of MIME parts metadata extraction visits.
	// The default is 1000.
	MaxParts int
	// MaxDepth bounds the nesting of multiparts metadata extraction
	// follows. The default is 32.
	MaxDepth int
	// SnippetLen is the maximum length of [Message.Snippet] in
	// characters. The default is 200.
	SnippetLen int
	// Split configures how message bodies are split into blobs. The
	// default is nil, dedup's defaults.
	Split *dedup.SplitOptions
	// Now is the clock for internal dates. The default is time.Now.
	Now func() time.Time
	// Logger receives failures that do not fail the call, such as a blob
	// that could not be unlinked after an expunge. The default discards
	// them.
	Logger *slog.Logger
	// Index, if not nil, is kept current with the store: each method that
	// commits a change applies it to the index before it returns (see
	// [ErrIndex] for what happens when that fails, and [Store.Reindex]).
	// The Store does not own it: close it after the Store. The default is
	// nil: no index.
	Index *index.Index
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxMessageSize <= 0 {
		r.MaxMessageSize = 64 << 20
	}
	if r.MaxHeaderBytes <= 0 {
		r.MaxHeaderBytes = mailparse.DefaultMaxHeaderBytes
	}
	if r.MaxParts <= 0 {
		r.MaxParts = mailparse.DefaultMaxParts
	}
	if r.MaxDepth <= 0 {
		r.MaxDepth = mailparse.DefaultMaxDepth
	}
	if r.SnippetLen <= 0 {
		r.SnippetLen = 200
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Store is a mailbox store: the mailboxes of many users, kept by a
// [Backend], with message bodies in a [dedup.Store]. It is safe for
// concurrent use.
type Store struct {
	b      Backend
	blobs  *dedup.Store
	opts   Options
	lim    mailparse.Limits
	idx    *index.Index
	closed atomic.Bool
}

// New returns a Store over b, which it owns (Close closes it), keeping
// message bodies in blobs, which it does not own.
func New(b Backend, blobs *dedup.Store, opts *Options) *Store {
	if b == nil || blobs == nil {
		panic("mailbox: New with a nil Backend or dedup.Store")
	}
	o := opts.withDefaults()
	return &Store{b: b, blobs: blobs, opts: o, idx: o.Index, lim: mailparse.Limits{
		MaxHeaderBytes: o.MaxHeaderBytes, MaxParts: o.MaxParts, MaxDepth: o.MaxDepth,
	}}
}

// Backend returns the backend the store was made with, for callers that
// need an optional capability or a bulk path of a specific backend.
func (s *Store) Backend() Backend { return s.b }

// Close closes the backend. It is idempotent; afterwards every method
// returns [ErrClosed].
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.b.Close()
}

// BlobOwner returns the dedup owner string under which the blobs of message
// id of user are linked: "mailbox/" + 32 hexadecimal digits of the SHA-256
// of the user ID + "/" + the message ID. Hashing keeps it unambiguous and
// short (77 bytes) for any user ID.
func BlobOwner(user mailbricks.UserID, id mailbricks.MessageID) string {
	h := sha256.Sum256([]byte(user))
	return "mailbox/" + hex.EncodeToString(h[:16]) + "/" + id.String()
}

func (s *Store) check(user mailbricks.UserID) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := user.Validate(); err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	return nil
}

func (s *Store) checkFolder(user mailbricks.UserID, name string) (string, error) {
	if err := s.check(user); err != nil {
		return "", err
	}
	name = CanonicalFolderName(name)
	if err := ValidateFolderName(name); err != nil {
		return "", err
	}
	return name, nil
}

// ensure runs f and, if it fails with ErrNoFolder for a special-use folder
// name, creates that folder and runs f again: special-use folders are
// created on first use.
func (s *Store) ensure(ctx context.Context, user mailbricks.UserID, folder string, f func() error) error {
	err := f()
	if !errors.Is(err, ErrNoFolder) {
		return err
	}
	role := FolderRole(folder)
	if role == "" {
		return err
	}
	if _, cerr := s.b.CreateFolder(ctx, user, folder, role); cerr != nil && !errors.Is(cerr, ErrFolderExists) {
		return cerr
	}
	return f()
}

// Folders returns the user's folders sorted by name, creating INBOX on
// first use.
func (s *Store) Folders(ctx context.Context, user mailbricks.UserID) ([]Folder, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	var fs []Folder
	err := s.ensure(ctx, user, Inbox, func() error {
		var err error
		fs, err = s.b.Folders(ctx, user)
		if err == nil && !slices.ContainsFunc(fs, func(f Folder) bool { return f.Name == Inbox }) {
			return ErrNoFolder
		}
		return err
	})
	return fs, err
}

// Folder returns one folder, with its UIDValidity, UIDNext, HighestModSeq
// and counts (what IMAP SELECT needs). A special-use folder is created on
// first use; any other missing folder is [ErrNoFolder].
func (s *Store) Folder(ctx context.Context, user mailbricks.UserID, name string) (Folder, error) {
	name, err := s.checkFolder(user, name)
	if err != nil {
		return Folder{}, err
	}
	var f Folder
	err = s.ensure(ctx, user, name, func() error {
		var err error
		f, err = s.b.Folder(ctx, user, name)
		return err
	})
	return f, err
}

// Counts returns a folder's counts.
func (s *Store) Counts(ctx context.Context, user mailbricks.UserID, folder string) (Counts, error) {
	f, err := s.Folder(ctx, user, folder)
	return f.Counts, err
}

// Recount recomputes a folder's counts from its messages and stores them:
// a repair task for counts suspected wrong. The backends keep counts in
// the same transaction as every change, so it should find nothing to fix.
func (s *Store) Recount(ctx context.Context, user mailbricks.UserID, folder string) (Counts, error) {
	folder, err := s.checkFolder(user, folder)
	if err != nil {
		return Counts{}, err
	}
	return s.b.Recount(ctx, user, folder)
}

// CreateFolder creates a folder. Its role is the special-use role of its
// name, if any (see [FolderRole]). If the name is taken the error matches
// [ErrFolderExists].
func (s *Store) CreateFolder(ctx context.Context, user mailbricks.UserID, name string) (Folder, error) {
	name, err := s.checkFolder(user, name)
	if err != nil {
		return Folder{}, err
	}
	return s.b.CreateFolder(ctx, user, name, FolderRole(name))
}

// RenameFolder renames a folder and the folders below it, keeping their
// messages, UIDs and UIDValidity. INBOX cannot be renamed, nor a folder
// moved below itself ([ErrInvalidFolder]).
func (s *Store) RenameFolder(ctx context.Context, user mailbricks.UserID, from, to string) error {
	from, err := s.checkFolder(user, from)
	if err != nil {
		return err
	}
	if to, err = s.checkFolder(user, to); err != nil {
		return err
	}
	switch {
	case from == Inbox || to == Inbox:
		return fmt.Errorf("%w: cannot rename from or to %s", ErrInvalidFolder, Inbox)
	case from == to:
		return fmt.Errorf("%w: %q is already the name", ErrFolderExists, to)
	case len(to) > len(from) && to[:len(from)+1] == from+Delimiter:
		return fmt.Errorf("%w: cannot move %q below itself", ErrInvalidFolder, from)
	}
	if err := s.b.RenameFolder(ctx, user, from, to); err != nil {
		return err
	}
	return s.indexRenamed(ctx, user, to)
}

// indexRenamed updates the folder of every message in folder to and the
// folders below it, after a rename.
func (s *Store) indexRenamed(ctx context.Context, user mailbricks.UserID, to string) error {
	if s.idx == nil {
		return nil
	}
	fs, err := s.b.Folders(ctx, user)
	if err != nil {
		return fmt.Errorf("%w: rename: %w", ErrIndex, err)
	}
	for _, f := range fs {
		if f.Name != to && !strings.HasPrefix(f.Name, to+Delimiter) {
			continue
		}
		msgs, err := s.b.FetchUIDs(ctx, user, f.Name, 1, 0)
		if err != nil {
			return fmt.Errorf("%w: rename: %w", ErrIndex, err)
		}
		if err := s.indexUpdate(ctx, user, "rename", msgs); err != nil {
			return err
		}
	}
	return nil
}

// DeleteFolder expunges a folder's messages and deletes it. Folders below
// it are kept. INBOX cannot be deleted ([ErrInvalidFolder]).
func (s *Store) DeleteFolder(ctx context.Context, user mailbricks.UserID, name string) error {
	name, err := s.checkFolder(user, name)
	if err != nil {
		return err
	}
	if name == Inbox {
		return fmt.Errorf("%w: cannot delete %s", ErrInvalidFolder, Inbox)
	}
	for attempt := 0; ; attempt++ {
		msgs, err := s.b.FetchUIDs(ctx, user, name, 1, 0)
		if err != nil {
			return err
		}
		if _, err := s.expunge(ctx, user, ids(msgs)); err != nil {
			return err
		}
		err = s.b.DeleteFolder(ctx, user, name)
		if !errors.Is(err, ErrFolderNotEmpty) || attempt >= 8 {
			return err
		}
	}
}

func ids(msgs []Message) []mailbricks.MessageID {
	out := make([]mailbricks.MessageID, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].ID
	}
	return out
}

// AppendOptions configures [Store.Append].
type AppendOptions struct {
	// Flags are the message's initial flags. The default is none: the
	// message is unread.
	Flags []string
	// InternalDate is the IMAP internal date. The default is the time of
	// the Append.
	InternalDate time.Time
	// Key makes Append idempotent: if a message was appended for the user
	// with the same key before, Append stores nothing and returns that
	// message (with only its ID set if it has been expunged since). Use
	// the ID of the queue job or SMTP transaction that delivers the
	// message. At most [MaxKeyLen] bytes. The default is "": no key.
	Key string
}

// MaxKeyLen is the maximum length of [AppendOptions.Key] in bytes.
const MaxKeyLen = 512

// ValidateKey reports whether k is a valid idempotency or thread key: at
// most [MaxKeyLen] bytes, of any value. If not, the error wraps
// [ErrInvalidArgument]. [Store] checks it, and backends call it too,
// because [Store.Backend] hands them out to callers that skip the Store.
func ValidateKey(k string) error {
	if len(k) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes", ErrInvalidArgument, len(k))
	}
	return nil
}

// Append stores a message in a folder and returns its metadata. It reads
// r to the end (at most [Options.MaxMessageSize] bytes), extracts the
// metadata, threads the message, and stores its body through dedup (large
// parts become blobs shared with every other copy of them). A message that
// cannot be parsed is stored all the same, byte for byte, with
// [Message.ParseError] set. A special-use folder is created on first use;
// any other missing folder is [ErrNoFolder]. A nil r is
// [ErrInvalidArgument].
func (s *Store) Append(ctx context.Context, user mailbricks.UserID, folder string, r io.Reader, opts *AppendOptions) (Message, error) {
	if r == nil {
		return Message{}, fmt.Errorf("%w: append with a nil message reader", ErrInvalidArgument)
	}
	folder, err := s.checkFolder(user, folder)
	if err != nil {
		return Message{}, err
	}
	var o AppendOptions
	if opts != nil {
		o = *opts
	}
	flags, err := CanonicalFlags(o.Flags)
	if err != nil {
		return Message{}, err
	}
	if err := ValidateKey(o.Key); err != nil {
		return Message{}, err
	}
	if o.Key != "" {
		m, err := s.b.LookupKey(ctx, user, o.Key)
		if err == nil {
			return m, s.indexExisting(ctx, user, &m)
		}
		if !errors.Is(err, ErrNotFound) {
			return Message{}, err
		}
	}
	raw, err := io.ReadAll(io.LimitReader(r, s.opts.MaxMessageSize+1))
	if err != nil {
		return Message{}, fmt.Errorf("mailbox: append: reading message: %w", err)
	}
	if int64(len(raw)) > s.opts.MaxMessageSize {
		return Message{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.opts.MaxMessageSize)
	}
	rec := &Record{Key: o.Key}
	rec.ID = mailbricks.NewMessageID()
	rec.Folder = folder
	rec.Flags = flags
	rec.InternalDate = o.InternalDate
	if rec.InternalDate.IsZero() {
		rec.InternalDate = s.opts.Now()
	}
	rec.InternalDate = rec.InternalDate.UTC().Truncate(time.Second)
	rec.Size = int64(len(raw))
	// One parse per message: its result also yields the message's
	// index.Document (indexDocument) without a second parse.
	parsed := mailparse.Parse(raw, &s.lim)
	fillMetadata(parsed, s.opts.SnippetLen, &rec.Message)
	if err := s.thread(ctx, user, rec); err != nil {
		return Message{}, err
	}

	owner := BlobOwner(user, rec.ID)
	skel, err := dedup.Split(ctx, s.blobs, owner, bytes.NewReader(raw), s.opts.Split)
	if err != nil {
		return Message{}, fmt.Errorf("mailbox: append: storing body: %w", err)
	}
	rec.Skeleton = skel.Data
	var m Message
	var existed bool
	err = s.ensure(ctx, user, folder, func() error {
		var err error
		m, existed, err = s.b.Append(ctx, user, rec)
		return err
	})
	if err != nil || existed {
		// Nothing refers to the blobs linked under this new message's
		// owner: drop the links.
		s.unlink(ctx, owner, skel.Refs)
	}
	if err != nil {
		return Message{}, err
	}
	if existed {
		return m, s.indexExisting(ctx, user, &m)
	}
	if s.idx != nil {
		return m, s.indexNew(ctx, user, &m, parsed)
	}
	return m, nil
}

func (s *Store) unlink(ctx context.Context, owner string, refs []dedup.Ref) {
	ctx = context.WithoutCancel(ctx)
	for _, ref := range refs {
		if err := s.blobs.Unlink(ctx, ref, owner); err != nil {
			s.opts.Logger.Warn("mailbox: unlinking blob", "ref", ref.String(), "owner", owner, "err", err)
		}
	}
}

// threadKey returns the fixed-size key under which a thread is found by a
// Message-ID (kind 'm') or a normalized subject (kind 's').
func threadKey(kind byte, v string) string {
	h := sha256.Sum256(append([]byte{kind, 0}, v...))
	return string(kind) + hex.EncodeToString(h[:16])
}

// thread sets rec.ThreadID and rec.ThreadKeys.
//
// Threading follows the references first: the thread of the nearest
// message the new one refers to (In-Reply-To, then References from the
// last) that the user has. Failing that, a message that is a reply or
// refers to messages the user lacks joins the newest thread with the same
// normalized subject. Otherwise it starts a thread of its own.
func (s *Store) thread(ctx context.Context, user mailbricks.UserID, rec *Record) error {
	var keys []string
	for _, id := range rec.InReplyTo {
		keys = append(keys, threadKey('m', id))
	}
	for i := len(rec.References) - 1; i >= 0; i-- {
		keys = append(keys, threadKey('m', rec.References[i]))
	}
	base, isReply := normalizeSubject(rec.Subject)
	if base != "" && (isReply || len(keys) > 0) {
		keys = append(keys, threadKey('s', base))
	}
	rec.ThreadID = rec.ID
	if len(keys) > 0 {
		t, ok, err := s.b.FindThread(ctx, user, keys)
		if err != nil {
			return err
		}
		if ok {
			rec.ThreadID = t
		}
	}
	if rec.MessageIDHeader != "" {
		rec.ThreadKeys = append(rec.ThreadKeys, threadKey('m', rec.MessageIDHeader))
	}
	if base != "" {
		rec.ThreadKeys = append(rec.ThreadKeys, threadKey('s', base))
	}
	return nil
}

// Get returns a message's metadata. A message of another user is
// [ErrNotFound], like a missing one.
func (s *Store) Get(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (Message, error) {
	if err := s.check(user); err != nil {
		return Message{}, err
	}
	return s.b.Get(ctx, user, id)
}

// Open returns the message's bytes, exactly as appended, streaming its
// blobs as they are read. The caller must close it.
func (s *Store) Open(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (io.ReadCloser, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	skel, err := s.b.Skeleton(ctx, user, id)
	if err != nil {
		return nil, err
	}
	rc, err := dedup.Join(ctx, s.blobs, skel)
	if err != nil {
		return nil, fmt.Errorf("mailbox: open %s: %w", id, err)
	}
	return rc, nil
}

// ListOptions configures [Store.List].
type ListOptions struct {
	// Unread lists only unread messages, from the unread table: the cost
	// follows the page size, not the folder size. The default is false:
	// all messages.
	Unread bool
	// Limit is the page size, at most 1000. The default is 50.
	Limit int
	// Cursor continues a listing where the page that returned it ended.
	// The default is "": the newest messages.
	Cursor string
}

// Page is one page of [Store.List].
type Page struct {
	// Messages are the page's messages, newest first.
	Messages []Message
	// Cursor continues the listing after this page, or is "" after the
	// last page. It stays valid while messages come and go: the next page
	// starts after the last message of this one in ID order.
	Cursor string
}

// List returns a page of a folder's messages, newest first.
func (s *Store) List(ctx context.Context, user mailbricks.UserID, folder string, opts *ListOptions) (Page, error) {
	folder, err := s.checkFolder(user, folder)
	if err != nil {
		return Page{}, err
	}
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	if o.Limit <= 0 {
		o.Limit = 50
	}
	if o.Limit > 1000 {
		return Page{}, fmt.Errorf("%w: limit %d over 1000", ErrInvalidArgument, o.Limit)
	}
	q := ListQuery{Unread: o.Unread, Limit: o.Limit + 1}
	if o.Cursor != "" {
		id, err := mailbricks.ParseMessageID(o.Cursor)
		if err != nil {
			return Page{}, fmt.Errorf("%w: cursor %q", ErrInvalidArgument, o.Cursor)
		}
		q.Before = id
	}
	var msgs []Message
	err = s.ensure(ctx, user, folder, func() error {
		var err error
		msgs, err = s.b.List(ctx, user, folder, q)
		return err
	})
	if err != nil {
		return Page{}, err
	}
	p := Page{Messages: msgs}
	if len(msgs) > o.Limit {
		p.Messages = msgs[:o.Limit]
		p.Cursor = msgs[o.Limit-1].ID.String()
	}
	return p, nil
}

// FetchUIDs returns the messages of a folder whose UID is in [first,
// last], by increasing UID; last 0 means no upper bound (IMAP "*").
func (s *Store) FetchUIDs(ctx context.Context, user mailbricks.UserID, folder string, first, last uint32) ([]Message, error) {
	folder, err := s.checkFolder(user, folder)
	if err != nil {
		return nil, err
	}
	if first == 0 {
		first = 1
	}
	var msgs []Message
	err = s.ensure(ctx, user, folder, func() error {
		var err error
		msgs, err = s.b.FetchUIDs(ctx, user, folder, first, last)
		return err
	})
	return msgs, err
}

// Scan returns up to limit (default 1000) of the user's messages in any
// folder with an ID after after (zero: from the start), by increasing ID:
// pass the last ID returned to continue. It serves reindexing.
func (s *Store) Scan(ctx context.Context, user mailbricks.UserID, after mailbricks.MessageID, limit int) ([]Message, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	return s.b.Scan(ctx, user, after, limit)
}

// Messages returns an iterator over all of user's messages in every
// folder, by increasing ID (oldest first), reading them in pages of 1000
// with [Store.Scan]. Messages appended or expunged during the iteration may
// or may not be seen. An error ends the iteration, yielded with a zero
// Message.
//
//	for m, err := range store.Messages(ctx, user) {
//		if err != nil {
//			return err
//		}
//		…
//	}
func (s *Store) Messages(ctx context.Context, user mailbricks.UserID) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		var after mailbricks.MessageID
		for {
			page, err := s.Scan(ctx, user, after, 1000)
			if err != nil {
				yield(Message{}, err)
				return
			}
			for _, m := range page {
				if !yield(m, nil) {
					return
				}
			}
			if len(page) < 1000 {
				return
			}
			after = page[len(page)-1].ID
		}
	}
}

// Thread returns the messages of the thread message id belongs to, oldest
// first.
func (s *Store) Thread(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) ([]Message, error) {
	m, err := s.Get(ctx, user, id)
	if err != nil {
		return nil, err
	}
	return s.b.Thread(ctx, user, m.ThreadID)
}

// SetFlagsOptions configures [Store.SetFlags].
type SetFlagsOptions struct {
	// UnchangedSince, when not 0, leaves alone every message whose ModSeq
	// is greater and reports it in [FlagResult.Conflicts] (RFC 7162
	// UNCHANGEDSINCE). The default is 0: no condition.
	UnchangedSince uint64
}

// SetFlags changes the flags of messages, in one transaction. Messages
// that do not exist are skipped. A change of [FlagSeen] moves the message
// between the unread and read tables in the same transaction.
func (s *Store) SetFlags(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, op FlagOp, flags []string, opts *SetFlagsOptions) (FlagResult, error) {
	if err := s.check(user); err != nil {
		return FlagResult{}, err
	}
	if op < FlagAdd || op > FlagReplace {
		return FlagResult{}, fmt.Errorf("%w: flag op %d", ErrInvalidArgument, op)
	}
	fl, err := CanonicalFlags(flags)
	if err != nil {
		return FlagResult{}, err
	}
	ch := FlagChange{Op: op, Flags: fl}
	if opts != nil {
		ch.UnchangedSince = opts.UnchangedSince
	}
	if len(ids) == 0 {
		return FlagResult{}, nil
	}
	res, err := s.b.SetFlags(ctx, user, ids, ch)
	if err != nil {
		return res, err
	}
	return res, s.indexUpdate(ctx, user, "set flags", res.Updated)
}

// MarkRead marks messages read: each moves from the unread table to the
// read table, atomically with the counts.
func (s *Store) MarkRead(ctx context.Context, user mailbricks.UserID, ids ...mailbricks.MessageID) error {
	_, err := s.SetFlags(ctx, user, ids, FlagAdd, []string{FlagSeen}, nil)
	return err
}

// MarkUnread marks messages unread: each moves from the read table to the
// unread table, atomically with the counts.
func (s *Store) MarkUnread(ctx context.Context, user mailbricks.UserID, ids ...mailbricks.MessageID) error {
	_, err := s.SetFlags(ctx, user, ids, FlagRemove, []string{FlagSeen}, nil)
	return err
}

// Move moves messages to folder dest in one transaction, keeping their IDs
// and flags; they get new UIDs there (RFC 6851). It returns the UID map of
// the messages moved; messages that do not exist or are in dest already
// are skipped.
func (s *Store) Move(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, dest string) ([]UIDMap, error) {
	dest, err := s.checkFolder(user, dest)
	if err != nil {
		return nil, err
	}
	var out []UIDMap
	err = s.ensure(ctx, user, dest, func() error {
		var err error
		out, err = s.b.Move(ctx, user, ids, dest)
		return err
	})
	if err != nil {
		return out, err
	}
	return out, s.indexGetUpdate(ctx, user, "move", mapIDs(out))
}

func mapIDs(ms []UIDMap) []mailbricks.MessageID {
	out := make([]mailbricks.MessageID, len(ms))
	for i := range ms {
		out[i] = ms[i].ID
	}
	return out
}

// Copy copies messages to folder dest in one transaction: each copy is a
// new message with a new ID and UID, the same flags, and the same blobs
// (linked again, not stored again). It returns the UID map; messages that
// do not exist are skipped.
func (s *Store) Copy(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, dest string) ([]UIDMap, error) {
	dest, err := s.checkFolder(user, dest)
	if err != nil {
		return nil, err
	}
	type linked struct {
		owner string
		refs  []dedup.Ref
	}
	var pairs []CopyPair
	links := map[mailbricks.MessageID]linked{}
	undo := func(keep map[mailbricks.MessageID]bool) {
		for id, l := range links {
			if !keep[id] {
				s.unlink(ctx, l.owner, l.refs)
			}
		}
	}
	for _, src := range ids {
		skel, err := s.b.Skeleton(ctx, user, src)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			undo(nil)
			return nil, err
		}
		refs, err := dedup.Refs(skel)
		if err != nil {
			undo(nil)
			return nil, fmt.Errorf("mailbox: copy %s: %w", src, err)
		}
		id := mailbricks.NewMessageID()
		owner := BlobOwner(user, id)
		for i, ref := range refs {
			if err := s.blobs.Link(ctx, ref, owner); err != nil {
				s.unlink(ctx, owner, refs[:i])
				undo(nil)
				return nil, fmt.Errorf("mailbox: copy %s: linking %s: %w", src, ref, err)
			}
		}
		links[id] = linked{owner, refs}
		pairs = append(pairs, CopyPair{Source: src, ID: id})
	}
	var out []UIDMap
	err = s.ensure(ctx, user, dest, func() error {
		var err error
		out, err = s.b.Copy(ctx, user, pairs, dest)
		return err
	})
	keep := map[mailbricks.MessageID]bool{}
	if err == nil {
		for _, m := range out {
			keep[m.ID] = true
		}
	}
	undo(keep)
	if err != nil {
		return out, err
	}
	return out, s.indexGetUpdate(ctx, user, "copy", mapIDs(out))
}

// Delete moves messages to Trash; messages already in Trash are expunged.
func (s *Store) Delete(ctx context.Context, user mailbricks.UserID, ids ...mailbricks.MessageID) error {
	if err := s.check(user); err != nil {
		return err
	}
	trash := RoleFolder(RoleTrash)
	var move, exp []mailbricks.MessageID
	for _, id := range ids {
		m, err := s.b.Get(ctx, user, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if m.Folder == trash {
			exp = append(exp, id)
		} else {
			move = append(move, id)
		}
	}
	if len(move) > 0 {
		if _, err := s.Move(ctx, user, move, trash); err != nil {
			return err
		}
	}
	if len(exp) > 0 {
		if _, err := s.expunge(ctx, user, exp); err != nil {
			return err
		}
	}
	return nil
}

// Expunge removes messages for good, in one transaction, and returns them
// as they were. Each leaves an expunge tombstone for [Store.Changes]; their
// blobs are unlinked.
func (s *Store) Expunge(ctx context.Context, user mailbricks.UserID, ids ...mailbricks.MessageID) ([]Message, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	return s.expunge(ctx, user, ids)
}

// ExpungeDeleted expunges the messages of a folder flagged [FlagDeleted]
// (IMAP EXPUNGE) and returns them.
func (s *Store) ExpungeDeleted(ctx context.Context, user mailbricks.UserID, folder string) ([]Message, error) {
	msgs, err := s.FetchUIDs(ctx, user, folder, 1, 0)
	if err != nil {
		return nil, err
	}
	var del []mailbricks.MessageID
	for i := range msgs {
		if HasFlag(msgs[i].Flags, FlagDeleted) {
			del = append(del, msgs[i].ID)
		}
	}
	return s.ExpungeIfDeleted(ctx, user, del...)
}

func (s *Store) expunge(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID) ([]Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	removed, err := s.b.Expunge(ctx, user, ids)
	if err != nil {
		return nil, err
	}
	return s.afterExpunge(ctx, user, removed)
}

// afterExpunge unlinks the blobs of the removed messages and drops them
// from the index.
func (s *Store) afterExpunge(ctx context.Context, user mailbricks.UserID, removed []Removed) ([]Message, error) {
	out := make([]Message, len(removed))
	for i, r := range removed {
		out[i] = r.Message
		refs, err := dedup.Refs(r.Skeleton)
		if err != nil {
			s.opts.Logger.Warn("mailbox: expunge: bad skeleton", "id", r.ID.String(), "err", err)
			continue
		}
		s.unlink(ctx, BlobOwner(user, r.ID), refs)
	}
	gone := make([]mailbricks.MessageID, len(removed))
	for i := range removed {
		gone[i] = removed[i].ID
	}
	return out, s.indexDelete(ctx, user, gone)
}

// Changes returns what changed in a folder after MODSEQ since: messages
// appended or changed, and the UIDs of messages expunged or moved away
// (RFC 7162 CONDSTORE/QRESYNC).
func (s *Store) Changes(ctx context.Context, user mailbricks.UserID, folder string, since uint64) (Changes, error) {
	folder, err := s.checkFolder(user, folder)
	if err != nil {
		return Changes{}, err
	}
	return s.b.Changes(ctx, user, folder, since)
}

// Watch streams the user's changes (append, flags, expunge, folder) as
// they commit, from every process sharing the backend, until ctx is done;
// then the channel is closed. A watcher that falls behind receives
// [EventOverflow] and should resynchronize with [Store.Changes].
//
// Events report the mailbox commit. With [Options.Index], the index write
// follows that commit inside the same Append, SetFlags or Move call, so a
// watcher can see an event a moment before a search finds the change; a
// search issued after the call returned always finds it. A watcher that
// searches on an event (to notify "new mail matching …") should retry a
// miss briefly.
func (s *Store) Watch(ctx context.Context, user mailbricks.UserID) (<-chan Event, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	return s.b.Watch(ctx, user)
}
