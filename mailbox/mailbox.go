package mailbox

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailbricks/mailbricks"
)

// Errors returned by [Store] and required of every [Backend]; match them
// with errors.Is.
var (
	// ErrNotFound is returned for a message that does not exist. A message
	// of another user is indistinguishable from a missing one.
	ErrNotFound = errors.New("mailbox: not found")
	// ErrNoFolder is returned for a folder that does not exist.
	ErrNoFolder = errors.New("mailbox: no such folder")
	// ErrFolderExists is returned when creating or renaming to a folder
	// name that is taken.
	ErrFolderExists = errors.New("mailbox: folder exists")
	// ErrFolderNotEmpty is returned by [Backend.DeleteFolder] for a folder
	// that still holds messages.
	ErrFolderNotEmpty = errors.New("mailbox: folder not empty")
	// ErrInvalidFolder is returned for a folder name that is not valid (see
	// [ValidateFolderName]) or an operation a folder does not allow, such
	// as deleting or renaming INBOX.
	ErrInvalidFolder = errors.New("mailbox: invalid folder")
	// ErrInvalidArgument is returned for a bad flag, key, cursor or
	// option.
	ErrInvalidArgument = errors.New("mailbox: invalid argument")
	// ErrTooLarge is returned by [Store.Append] for a message larger than
	// [Options.MaxMessageSize].
	ErrTooLarge = errors.New("mailbox: message too large")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("mailbox: closed")
)

// System flags (RFC 9051 section 2.3.2). Any other flag is a keyword: an
// IMAP atom without a leading backslash, such as "$Forwarded" or "work".
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

var systemFlags = []string{FlagAnswered, FlagDeleted, FlagDraft, FlagFlagged, FlagSeen}

// MaxKeywordLen is the maximum length of a keyword in bytes.
const MaxKeywordLen = 128

// MaxFlags is the maximum number of flags and keywords a message can
// carry. [CanonicalFlags] refuses more, and a [Store.SetFlags] that would
// leave a message with more fails with [ErrInvalidArgument] and changes
// nothing. Gmail allows some 500 labels per message; IMAP clients use a
// handful.
const MaxFlags = 256

// CanonicalFlags validates flags and returns them canonicalized: system
// flags in their canonical case (`\seen` becomes `\Seen`), duplicates
// removed, sorted. A flag that is neither a system flag nor a keyword (1 to
// [MaxKeywordLen] printable ASCII characters other than the IMAP atom
// specials `(){ %*"\]`), or more than [MaxFlags] of them, yields an error
// wrapping [ErrInvalidArgument].
func CanonicalFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		c, err := canonicalFlag(f)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxFlags {
		return nil, fmt.Errorf("%w: %d flags, more than %d", ErrInvalidArgument, len(out), MaxFlags)
	}
	return out, nil
}

func canonicalFlag(f string) (string, error) {
	if strings.HasPrefix(f, `\`) {
		for _, s := range systemFlags {
			if strings.EqualFold(f, s) {
				return s, nil
			}
		}
		return "", fmt.Errorf("%w: unknown system flag %q", ErrInvalidArgument, f)
	}
	if f == "" || len(f) > MaxKeywordLen {
		return "", fmt.Errorf("%w: keyword of %d bytes", ErrInvalidArgument, len(f))
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return "", fmt.Errorf("%w: keyword %q has byte %#x", ErrInvalidArgument, f, c)
		}
	}
	return f, nil
}

// HasFlag reports whether flags, as canonicalized by [CanonicalFlags],
// holds flag.
func HasFlag(flags []string, flag string) bool {
	_, ok := slices.BinarySearch(flags, flag)
	return ok
}

// Role is the special use of a folder (RFC 6154), or "" for none.
type Role string

// Roles of special-use folders. A folder for each is created on first use
// under the name [RoleFolder] gives.
const (
	RoleInbox   Role = "inbox"
	RoleSent    Role = "sent"
	RoleDrafts  Role = "drafts"
	RoleTrash   Role = "trash"
	RoleJunk    Role = "junk"
	RoleArchive Role = "archive"
)

var roleNames = map[Role]string{
	RoleInbox: Inbox, RoleSent: "Sent", RoleDrafts: "Drafts",
	RoleTrash: "Trash", RoleJunk: "Junk", RoleArchive: "Archive",
}

// Inbox is the name of the inbox folder. Folder names are case-sensitive,
// except that any case of "inbox" means Inbox (RFC 9051 section 5.1).
const Inbox = "INBOX"

// Delimiter separates the levels of a folder name: "Projects/2025".
const Delimiter = "/"

// MaxFolderNameLen is the maximum length of a folder name in bytes.
const MaxFolderNameLen = 512

// RoleFolder returns the name of the folder created on first use for role,
// or "" for a role that is not one of the special-use roles.
func RoleFolder(role Role) string { return roleNames[role] }

// FolderRole returns the role of the special-use folder called name, or ""
// if name is not one of the names [RoleFolder] returns.
func FolderRole(name string) Role {
	name = CanonicalFolderName(name)
	for r, n := range roleNames {
		if n == name {
			return r
		}
	}
	return ""
}

// CanonicalFolderName returns name with any case of "inbox", alone or as
// the first level, spelled [Inbox].
func CanonicalFolderName(name string) string {
	if len(name) >= 5 && strings.EqualFold(name[:5], Inbox) && (len(name) == 5 || name[5] == '/') {
		return Inbox + name[5:]
	}
	return name
}

// ValidateFolderName reports whether name is a valid folder name: 1 to
// [MaxFolderNameLen] bytes of valid UTF-8 without control characters, no
// empty level (no leading, trailing or doubled [Delimiter]). If it is not,
// the error wraps [ErrInvalidFolder].
func ValidateFolderName(name string) error {
	switch {
	case name == "" || len(name) > MaxFolderNameLen:
		return fmt.Errorf("%w: name of %d bytes", ErrInvalidFolder, len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not UTF-8", ErrInvalidFolder, name)
	case strings.HasPrefix(name, Delimiter) || strings.HasSuffix(name, Delimiter) || strings.Contains(name, Delimiter+Delimiter):
		return fmt.Errorf("%w: %q has an empty level", ErrInvalidFolder, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q has control character %#x", ErrInvalidFolder, name, r)
		}
	}
	return nil
}

// CheckUserFolders validates user ([mailbricks.UserID.Validate]) and each
// folder name ([ValidateFolderName]): the checks [Store] makes, for
// backends, which repeat them rather than trust their caller with the key
// layout or another user's rows.
func CheckUserFolders(user mailbricks.UserID, names ...string) error {
	if err := user.Validate(); err != nil {
		return err
	}
	for _, n := range names {
		if err := ValidateFolderName(n); err != nil {
			return err
		}
	}
	return nil
}

// Counts are the sizes of a folder.
type Counts struct {
	// Total is the number of messages.
	Total int64
	// Unread is the number of messages without [FlagSeen].
	Unread int64
	// Size is the sum of the messages' sizes in bytes.
	Size int64
}

// Folder is an IMAP mailbox: a named set of messages with its own UID
// sequence.
type Folder struct {
	// Name is the full name, levels separated by [Delimiter].
	Name string
	// Role is the special use, or "".
	Role Role
	// UIDValidity identifies this incarnation of the folder: a folder
	// deleted and created again under the same name gets a new, different
	// UIDValidity, so clients know their cached UIDs are void. Renaming
	// keeps it.
	UIDValidity uint32
	// UIDNext is the UID the next message appended to the folder gets.
	// UIDs are strictly increasing and never reused.
	UIDNext uint32
	// HighestModSeq is the highest MODSEQ of any change in the folder
	// (RFC 7162); it increases with every append, flag change and expunge.
	HighestModSeq uint64
	// Counts are the folder's sizes, kept in the same transaction as every
	// change.
	Counts
}

// Address is a mailbox address from a message header.
type Address struct {
	// Name is the display name, decoded, or "".
	Name string
	// Addr is the address, such as "alice@example.com".
	Addr string
}

// Message is a message's metadata: where it is, its flags and what was
// extracted from its header and structure at [Store.Append].
type Message struct {
	// ID is the message's ID, unique across all users and ordered by the
	// time the message was stored.
	ID mailbricks.MessageID
	// Folder is the name of the folder the message is in.
	Folder string
	// UID is the message's IMAP UID in Folder.
	UID uint32
	// UIDValidity is the UIDVALIDITY of Folder (see [Folder.UIDValidity]),
	// so that a UID read with it, such as the one [Store.Append] returns,
	// names the message unambiguously (RFC 4315 APPENDUID) even if the
	// folder is deleted and created again meanwhile.
	UIDValidity uint32
	// ModSeq is the MODSEQ of the message's last change (RFC 7162).
	ModSeq uint64
	// Flags are the message's flags and keywords, canonicalized by
	// [CanonicalFlags].
	Flags []string
	// InternalDate is the IMAP internal date: when the message was
	// received, or as set by [AppendOptions.InternalDate].
	InternalDate time.Time
	// Size is the length of the message in bytes.
	Size int64
	// ThreadID is the ID of the first message of the message's thread.
	ThreadID mailbricks.MessageID

	// From, Sender, ReplyTo, To, Cc and Bcc are the addresses of the header
	// fields of those names.
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	// Subject is the decoded Subject header.
	Subject string
	// Date is the Date header, or the zero time if it is missing or bad.
	Date time.Time
	// MessageIDHeader is the Message-ID header without angle brackets.
	MessageIDHeader string
	// InReplyTo and References are the message IDs of those headers,
	// without angle brackets.
	InReplyTo, References []string
	// HasAttachments reports whether the message has a part that is an
	// attachment.
	HasAttachments bool
	// Snippet is the start of the message's first text part, whitespace
	// collapsed, at most [Options.SnippetLen] characters.
	Snippet string
	// ParseError, when not "", says why the message could not be fully
	// parsed. Such a message is stored, byte for byte, like any other;
	// the metadata holds what could be extracted.
	ParseError string
}

// Unread reports whether m lacks [FlagSeen].
func (m *Message) Unread() bool { return !HasFlag(m.Flags, FlagSeen) }

// FlagOp says how [Store.SetFlags] combines flags with a message's flags.
type FlagOp int

// Flag operations.
const (
	// FlagAdd adds the flags (IMAP +FLAGS).
	FlagAdd FlagOp = iota
	// FlagRemove removes the flags (IMAP -FLAGS).
	FlagRemove
	// FlagReplace replaces all flags (IMAP FLAGS).
	FlagReplace
)

// Apply returns flags, canonicalized, changed by op with change, also
// canonicalized.
func (op FlagOp) Apply(flags, change []string) []string {
	var out []string
	switch op {
	case FlagAdd:
		out = append(slices.Clone(flags), change...)
		slices.Sort(out)
		out = slices.Compact(out)
	case FlagRemove:
		for _, f := range flags {
			if !HasFlag(change, f) {
				out = append(out, f)
			}
		}
	default:
		out = slices.Clone(change)
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// FlagChange is one flag update of a set of messages.
type FlagChange struct {
	// Op says how Flags are combined with each message's flags.
	Op FlagOp
	// Flags are the flags, canonicalized by [CanonicalFlags].
	Flags []string
	// UnchangedSince, when not 0, leaves alone every message whose ModSeq
	// is greater (RFC 7162 UNCHANGEDSINCE) and reports it as a conflict.
	UnchangedSince uint64
}

// FlagResult is the outcome of a flag update.
type FlagResult struct {
	// Updated are the messages whose flags changed, as they are now.
	// Messages whose flags were already as asked are not in it.
	Updated []Message
	// Conflicts are the messages left alone because of
	// [FlagChange.UnchangedSince].
	Conflicts []mailbricks.MessageID
}

// UIDMap maps a message's source UID to its UID in the destination folder
// after [Store.Move] or [Store.Copy] (RFC 4315 COPYUID).
type UIDMap struct {
	// SourceID and SourceUID identify the message in the source folder.
	SourceID  mailbricks.MessageID
	SourceUID uint32
	// ID and UID identify it in the destination folder. Move keeps the ID;
	// Copy makes a new message with a new ID.
	ID  mailbricks.MessageID
	UID uint32
}

// Changes is what changed in a folder since a MODSEQ (RFC 7162 CONDSTORE
// and QRESYNC).
type Changes struct {
	// UIDValidity is the folder's UIDValidity; if it differs from the
	// client's, everything the client knows about the folder is void.
	UIDValidity uint32
	// HighestModSeq is the folder's HighestModSeq as of the changes.
	HighestModSeq uint64
	// Changed are the messages appended or changed since, as they are now,
	// by increasing UID.
	Changed []Message
	// Expunged are the UIDs of messages expunged or moved out since, in
	// increasing order.
	Expunged []uint32
}

// EventKind is the kind of an [Event].
type EventKind int

// Event kinds.
const (
	// EventAppend: a message appeared in a folder (Append, Copy, or the
	// destination side of Move).
	EventAppend EventKind = iota + 1
	// EventFlags: a message's flags changed.
	EventFlags
	// EventExpunge: a message left a folder (Expunge, or the source side of
	// Move).
	EventExpunge
	// EventFolder: a folder was created, renamed or deleted; Folder is its
	// (new) name.
	EventFolder
	// EventOverflow: the watcher fell behind and events were dropped; it
	// should resynchronize with [Store.Changes].
	EventOverflow
)

// String returns the kind's name, such as "append".
func (k EventKind) String() string {
	switch k {
	case EventAppend:
		return "append"
	case EventFlags:
		return "flags"
	case EventExpunge:
		return "expunge"
	case EventFolder:
		return "folder"
	case EventOverflow:
		return "overflow"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change of a user's mailbox, as streamed by [Store.Watch].
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// User is the user whose mailbox changed.
	User mailbricks.UserID
	// Folder is the folder the change happened in.
	Folder string
	// ID and UID identify the message, for message events.
	ID  mailbricks.MessageID
	UID uint32
	// ModSeq is the MODSEQ of the change, for message events.
	ModSeq uint64
	// Flags are the message's flags after the change, for EventAppend and
	// EventFlags.
	Flags []string
}
