// Package mailboxtest is the conformance suite of [mailbox.Backend]: every
// backend's tests call [Run], and so can the tests of a backend of your
// own.
package mailboxtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/internal/corpus"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
)

// NewBackend returns a fresh, empty backend for one test; the suite closes
// it (through [mailbox.Store.Close]).
type NewBackend func(t *testing.T) mailbox.Backend

// Options configures [Run]. A nil *Options means the defaults.
type Options struct {
	// CorpusEvery appends every n-th message of the SpamAssassin corpus in
	// the corpus test; 1 appends all 6,046. The default is 10.
	CorpusEvery int
}

// Run runs the conformance suite against the backends newBackend makes,
// each subtest on a fresh one. Failure messages name the rule broken.
func Run(t *testing.T, newBackend NewBackend) { RunWithOptions(t, newBackend, nil) }

// RunWithOptions is [Run] with options.
func RunWithOptions(t *testing.T, newBackend NewBackend, opts *Options) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.CorpusEvery <= 0 {
		o.CorpusEvery = 10
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s *mailbox.Store)
	}{
		{"Folders", testFolders},
		{"AppendGetOpen", testAppendGetOpen},
		{"Attachments", testAttachments},
		{"Malformed", testMalformed},
		{"Isolation", testIsolation},
		{"UIDsNeverReused", testUIDs},
		{"UIDValidityOnRecreate", testUIDValidity},
		{"ListUnread", testListUnread},
		{"CountsAfterEveryOp", testCounts},
		{"MarkReadAtomic", testMarkReadAtomic},
		{"MoveCopy", testMoveCopy},
		{"Changes", testChanges},
		{"UnchangedSince", testUnchangedSince},
		{"Watch", testWatch},
		{"IdempotentAppend", testIdempotent},
		{"ConcurrentAppend", testConcurrentAppend},
		{"ConcurrentMoves", testConcurrentMoves},
		{"Thread", testThread},
		{"DeleteToTrash", testDelete},
		{"Scan", testScan},
		{"Closed", testClosed},
		{"OpaqueValues", testOpaque},
		{"InvalidInput", testInvalidInput},
		{"FlagLimit", testFlagLimit},
		{"Subscriptions", testSubscriptions},
		{"UIDValidityEverywhere", testUIDValidityEverywhere},
		{"FetchUIDSet", testFetchUIDSet},
		{"Status", testStatus},
		{"ExpungeIfDeleted", testExpungeIfDeleted},
		{"Corpus", func(t *testing.T, s *mailbox.Store) { RunCorpus(t, s, o.CorpusEvery) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, NewStore(t, newBackend(t)))
		})
	}
}

// NewStore returns a [mailbox.Store] over b with an in-memory dedup store,
// closed when the test ends.
func NewStore(t testing.TB, b mailbox.Backend) *mailbox.Store {
	t.Helper()
	fb, err := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	blobs := dedup.New(fb, nil)
	s := mailbox.New(b, blobs, nil)
	t.Cleanup(func() {
		s.Close()
		blobs.Close()
	})
	return s
}

var ctx = context.Background()

const (
	alice = mailbricks.UserID("alice@example.com")
	bob   = mailbricks.UserID("bob@example.com")
)

// Msg returns a small RFC 5322 message.
func Msg(subject, body string, extra ...string) []byte {
	h := "From: Alice <alice@example.com>\r\nTo: bob@example.com, Carol <carol@example.org>\r\n" +
		"Subject: " + subject + "\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return []byte(h + "\r\n" + body + "\r\n")
}

func appendMsg(t testing.TB, s *mailbox.Store, user mailbricks.UserID, folder string, raw []byte, opts *mailbox.AppendOptions) mailbox.Message {
	t.Helper()
	m, err := s.Append(ctx, user, folder, bytes.NewReader(raw), opts)
	require.NoError(t, err, "Append to %s must succeed", folder)
	return m
}

func openAll(t testing.TB, s *mailbox.Store, user mailbricks.UserID, id mailbricks.MessageID) []byte {
	t.Helper()
	rc, err := s.Open(ctx, user, id)
	require.NoError(t, err, "Open of a stored message must succeed")
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// checkCounts checks that the folder's counts equal what its messages add
// up to, and that the unread and read listings partition the folder.
func checkCounts(t testing.TB, s *mailbox.Store, user mailbricks.UserID, folder string) mailbox.Counts {
	t.Helper()
	f, err := s.Folder(ctx, user, folder)
	require.NoError(t, err)
	msgs, err := s.FetchUIDs(ctx, user, folder, 1, 0)
	require.NoError(t, err)
	var want mailbox.Counts
	unread := []mailbricks.MessageID{}
	for i, m := range msgs {
		want.Total++
		want.Size += m.Size
		if m.Unread() {
			want.Unread++
			unread = append(unread, m.ID)
		}
		require.Equal(t, folder, m.Folder, "FetchUIDs must return messages of the folder")
		if i > 0 {
			require.Greater(t, m.UID, msgs[i-1].UID, "FetchUIDs must return increasing UIDs")
		}
		require.Less(t, m.UID, f.UIDNext, "every UID must be below UIDNext")
		require.LessOrEqual(t, m.ModSeq, f.HighestModSeq, "every MODSEQ must be at most HIGHESTMODSEQ")
	}
	require.Equal(t, want, f.Counts, "folder %s: counts must equal what its messages add up to", folder)
	got := listAll(t, s, user, folder, true)
	slices.SortFunc(unread, func(a, b mailbricks.MessageID) int { return b.Compare(a) })
	require.Equal(t, unread, ids(got), "folder %s: the unread table must hold exactly the unread messages, newest first", folder)
	all := listAll(t, s, user, folder, false)
	require.Len(t, all, len(msgs), "folder %s: List must return every message once", folder)
	return f.Counts
}

func listAll(t testing.TB, s *mailbox.Store, user mailbricks.UserID, folder string, unread bool) []mailbox.Message {
	t.Helper()
	var out []mailbox.Message
	cursor := ""
	for {
		p, err := s.List(ctx, user, folder, &mailbox.ListOptions{Unread: unread, Limit: 7, Cursor: cursor})
		require.NoError(t, err)
		out = append(out, p.Messages...)
		if p.Cursor == "" {
			return out
		}
		cursor = p.Cursor
	}
}

func ids(msgs []mailbox.Message) []mailbricks.MessageID {
	out := []mailbricks.MessageID{}
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

func testFolders(t *testing.T, s *mailbox.Store) {
	fs, err := s.Folders(ctx, alice)
	require.NoError(t, err)
	require.Len(t, fs, 1, "a new user must have exactly INBOX")
	require.Equal(t, mailbox.Inbox, fs[0].Name)
	require.Equal(t, mailbox.RoleInbox, fs[0].Role)

	_, err = s.Folder(ctx, alice, "Projects")
	require.ErrorIs(t, err, mailbox.ErrNoFolder, "a folder that was never created must be ErrNoFolder")
	_, err = s.Append(ctx, alice, "Projects", bytes.NewReader(Msg("x", "y")), nil)
	require.ErrorIs(t, err, mailbox.ErrNoFolder, "Append to a missing ordinary folder must be ErrNoFolder")

	sent, err := s.Folder(ctx, alice, "Sent")
	require.NoError(t, err, "special-use folders must be created on first use")
	require.Equal(t, mailbox.RoleSent, sent.Role)

	_, err = s.CreateFolder(ctx, alice, "Projects")
	require.NoError(t, err)
	_, err = s.CreateFolder(ctx, alice, "Projects/2025")
	require.NoError(t, err)
	_, err = s.CreateFolder(ctx, alice, "Projects")
	require.ErrorIs(t, err, mailbox.ErrFolderExists)
	_, err = s.CreateFolder(ctx, alice, "bad//name")
	require.ErrorIs(t, err, mailbox.ErrInvalidFolder)
	_, err = s.Folder(ctx, alice, "inbox")
	require.NoError(t, err, "any case of INBOX must name the inbox")

	m := appendMsg(t, s, alice, "Projects/2025", Msg("plan", "text"), nil)
	before, err := s.Folder(ctx, alice, "Projects/2025")
	require.NoError(t, err)
	require.NoError(t, s.RenameFolder(ctx, alice, "Projects", "Work"))
	_, err = s.Folder(ctx, alice, "Projects/2025")
	require.ErrorIs(t, err, mailbox.ErrNoFolder, "rename must move the folders below too")
	after, err := s.Folder(ctx, alice, "Work/2025")
	require.NoError(t, err, "rename must move the folders below too")
	require.Equal(t, before.UIDValidity, after.UIDValidity, "rename must keep UIDVALIDITY")
	require.Equal(t, before.Counts, after.Counts)
	got, err := s.Get(ctx, alice, m.ID)
	require.NoError(t, err)
	require.Equal(t, "Work/2025", got.Folder, "a message must report its folder's new name")
	require.Equal(t, m.UID, got.UID, "rename must keep UIDs")
	require.ErrorIs(t, s.RenameFolder(ctx, alice, "Nope", "X"), mailbox.ErrNoFolder)
	require.ErrorIs(t, s.RenameFolder(ctx, alice, "Work", "Sent"), mailbox.ErrFolderExists)
	require.ErrorIs(t, s.RenameFolder(ctx, alice, mailbox.Inbox, "X"), mailbox.ErrInvalidFolder)
	require.ErrorIs(t, s.DeleteFolder(ctx, alice, mailbox.Inbox), mailbox.ErrInvalidFolder)

	require.NoError(t, s.DeleteFolder(ctx, alice, "Work/2025"), "deleting a folder with messages expunges them")
	_, err = s.Get(ctx, alice, m.ID)
	require.ErrorIs(t, err, mailbox.ErrNotFound, "a deleted folder's messages must be gone")
	require.ErrorIs(t, s.DeleteFolder(ctx, alice, "Work/2025"), mailbox.ErrNoFolder)

	fs, err = s.Folders(ctx, alice)
	require.NoError(t, err)
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{mailbox.Inbox, "Sent", "Work"}, names, "Folders must list the folders sorted by name")
}

func testAppendGetOpen(t *testing.T, s *mailbox.Store) {
	raw := Msg("Hello there", "Hi Bob,\r\n\r\n  how   are you?", "Cc: =?utf-8?q?J=C3=BCrgen?= <j@example.de>")
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	m := appendMsg(t, s, alice, mailbox.Inbox, raw, &mailbox.AppendOptions{Flags: []string{`\flagged`, "work"}, InternalDate: date})
	require.False(t, m.ID.IsZero())
	require.Equal(t, uint32(1), m.UID, "the first message of a folder must get UID 1")
	require.Equal(t, mailbox.Inbox, m.Folder)
	require.Equal(t, []string{mailbox.FlagFlagged, "work"}, m.Flags, "flags must be canonicalized")
	require.True(t, m.InternalDate.Equal(date))
	require.Equal(t, int64(len(raw)), m.Size)

	g, err := s.Get(ctx, alice, m.ID)
	require.NoError(t, err)
	require.Equal(t, "Hello there", g.Subject)
	require.Equal(t, []mailbox.Address{{Name: "Alice", Addr: "alice@example.com"}}, g.From)
	require.Equal(t, []mailbox.Address{{Addr: "bob@example.com"}, {Name: "Carol", Addr: "carol@example.org"}}, g.To)
	require.Equal(t, []mailbox.Address{{Name: "Jürgen", Addr: "j@example.de"}}, g.Cc, "encoded words must be decoded")
	require.Equal(t, "Hello.there@example.com", g.MessageIDHeader)
	require.Equal(t, "Hi Bob, how are you?", g.Snippet, "the snippet must collapse whitespace")
	require.False(t, g.HasAttachments)
	require.Empty(t, g.ParseError)
	require.True(t, g.Date.Equal(time.Date(2006, 1, 2, 22, 4, 5, 0, time.UTC)))
	require.Equal(t, m.ID, g.ThreadID, "a message that refers to nothing starts its own thread")
	require.True(t, g.Unread())
	require.Equal(t, raw, openAll(t, s, alice, m.ID), "Open must return the appended bytes exactly")

	_, err = s.Get(ctx, alice, mailbricks.NewMessageID())
	require.ErrorIs(t, err, mailbox.ErrNotFound)
	_, err = s.Open(ctx, alice, mailbricks.NewMessageID())
	require.ErrorIs(t, err, mailbox.ErrNotFound)
	_, err = s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(raw), &mailbox.AppendOptions{Flags: []string{`\Bogus`}})
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument)
	_, err = s.Append(ctx, "", mailbox.Inbox, bytes.NewReader(raw), nil)
	require.ErrorIs(t, err, mailbricks.ErrInvalidUser)
}

// AttachmentMsg returns a multipart message with a text part and a
// base64 attachment of n bytes made from seed.
func AttachmentMsg(subject string, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	var b strings.Builder
	b.WriteString("From: alice@example.com\r\nTo: bob@example.com\r\nSubject: " + subject + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n")
	b.WriteString("--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n")
	b.WriteString("--XYZ\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := make([]byte, 0, n*4/3+4)
	const tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i+2 < len(data); i += 3 {
		v := uint(data[i])<<16 | uint(data[i+1])<<8 | uint(data[i+2])
		enc = append(enc, tbl[v>>18&63], tbl[v>>12&63], tbl[v>>6&63], tbl[v&63])
	}
	for i := 0; i < len(enc); i += 76 {
		b.Write(enc[i:min(i+76, len(enc))])
		b.WriteString("\r\n")
	}
	b.WriteString("--XYZ--\r\n")
	return []byte(b.String())
}

func testAttachments(t *testing.T, s *mailbox.Store) {
	raw := AttachmentMsg("report", 200<<10, 1)
	m := appendMsg(t, s, alice, mailbox.Inbox, raw, nil)
	require.True(t, m.HasAttachments, "an attachment part must set HasAttachments")
	require.Equal(t, "See attached.", m.Snippet)
	require.Equal(t, raw, openAll(t, s, alice, m.ID), "Open must reassemble a split message exactly")

	// The same attachment for another user is stored once and reads back.
	m2 := appendMsg(t, s, bob, mailbox.Inbox, raw, nil)
	require.Equal(t, raw, openAll(t, s, bob, m2.ID))

	cp, err := s.Copy(ctx, alice, []mailbricks.MessageID{m.ID}, "Archive")
	require.NoError(t, err)
	require.Len(t, cp, 1)
	_, err = s.Expunge(ctx, alice, m.ID)
	require.NoError(t, err)
	require.Equal(t, raw, openAll(t, s, alice, cp[0].ID), "a copy must stay readable after its original is expunged")
	require.Equal(t, raw, openAll(t, s, bob, m2.ID), "another user's message must stay readable after an expunge")
}

// Malformed returns messages that are not valid MIME in various ways.
func Malformed() [][]byte {
	return [][]byte{
		{},
		[]byte("no header at all, just text"),
		[]byte("\x00\x01\x02\xff\xfe binary \r\n\r\n garbage"),
		[]byte("Subject: missing body separator"),
		[]byte("Subject: bad line\r\nthis line has no colon\r\nFrom: a@b\r\n\r\nbody"),
		[]byte("Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nunterminated part"),
		[]byte("Content-Type: multipart/mixed\r\n\r\nno boundary parameter"),
		[]byte("Content-Type: text/plain; charset=x-unknown-charset\r\nContent-Transfer-Encoding: x-weird\r\n\r\n\xff\xfe"),
		[]byte("Subject: =?bogus?Q?=ZZ?=\r\nDate: not a date\r\nFrom: <<<@>>>\r\n\r\nx"),
		[]byte("Subject: " + strings.Repeat("long ", 100000) + "\r\n\r\nhuge header"),
		nested(100),
		[]byte("Subject: nul\x00in =?utf-8?q?a=0D=0A=00b?=\r\nFrom: \"Ann\x00\" <ann@example.com>\r\nMessage-Id: <a\x00b@x>\r\n\r\nbody\x00"),
		[]byte("Subject: Gr\xfc\xdfe\r\nFrom: J\xfcrgen <j@example.de>\r\n\r\nK\xf6ln"),
	}
}

func nested(depth int) []byte {
	var b strings.Builder
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}

func testMalformed(t *testing.T, s *mailbox.Store) {
	for i, raw := range Malformed() {
		m, err := s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(raw), nil)
		require.NoError(t, err, "malformed message %d must be stored, not rejected", i)
		require.Equal(t, raw, openAll(t, s, alice, m.ID), "malformed message %d must read back byte for byte", i)
		meta := []string{m.Subject, m.Snippet, m.MessageIDHeader}
		for _, a := range m.From {
			meta = append(meta, a.Name, a.Addr)
		}
		for _, v := range meta {
			require.True(t, utf8.ValidString(v) && !strings.ContainsAny(v, "\x00\r\n"),
				"metadata of malformed message %d must be valid UTF-8 without NUL, CR or LF: %q", i, v)
		}
	}
	m, err := s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(nested(100)), nil)
	require.NoError(t, err)
	require.NotEmpty(t, m.ParseError, "a multipart nested beyond the limit must be marked with a parse error")
	checkCounts(t, s, alice, mailbox.Inbox)
}

func testIsolation(t *testing.T, s *mailbox.Store) {
	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("for alice", "secret"), &mailbox.AppendOptions{Key: "k1"})
	b := appendMsg(t, s, bob, mailbox.Inbox, Msg("for bob", "other"), &mailbox.AppendOptions{Key: "k1"})
	require.NotEqual(t, a.ID, b.ID, "the same key for two users must make two messages")
	require.Equal(t, uint32(1), b.UID, "UIDs are per user and folder")

	_, err := s.Get(ctx, bob, a.ID)
	require.ErrorIs(t, err, mailbox.ErrNotFound, "another user's message ID must be ErrNotFound")
	_, err = s.Open(ctx, bob, a.ID)
	require.ErrorIs(t, err, mailbox.ErrNotFound, "another user's message must not open")
	r, err := s.SetFlags(ctx, bob, []mailbricks.MessageID{a.ID}, mailbox.FlagAdd, []string{mailbox.FlagSeen}, nil)
	require.NoError(t, err)
	require.Empty(t, r.Updated, "SetFlags must not touch another user's message")
	mv, err := s.Move(ctx, bob, []mailbricks.MessageID{a.ID}, "Archive")
	require.NoError(t, err)
	require.Empty(t, mv, "Move must not touch another user's message")
	cp, err := s.Copy(ctx, bob, []mailbricks.MessageID{a.ID}, "Archive")
	require.NoError(t, err)
	require.Empty(t, cp, "Copy must not copy another user's message")
	ex, err := s.Expunge(ctx, bob, a.ID)
	require.NoError(t, err)
	require.Empty(t, ex, "Expunge must not touch another user's message")
	require.NoError(t, s.Delete(ctx, bob, a.ID))

	got, err := s.Get(ctx, alice, a.ID)
	require.NoError(t, err)
	require.Equal(t, a.Flags, got.Flags)
	require.Equal(t, mailbox.Inbox, got.Folder)
	p, err := s.List(ctx, bob, mailbox.Inbox, nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{b.ID}, ids(p.Messages), "List must return only the user's messages")
	all, err := s.Scan(ctx, bob, mailbricks.MessageID{}, 0)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{b.ID}, ids(all), "Scan must return only the user's messages")
	f, err := s.Folder(ctx, alice, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, int64(1), f.Total)

	// User IDs that are prefixes of each other stay apart.
	c := appendMsg(t, s, "al", mailbox.Inbox, Msg("short", "x"), nil)
	p, err = s.List(ctx, "al", mailbox.Inbox, nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{c.ID}, ids(p.Messages), "a user ID that is a prefix of another must not see its data")
}

func testUIDs(t *testing.T, s *mailbox.Store) {
	var last uint32
	var msgs []mailbox.Message
	for i := 0; i < 5; i++ {
		m := appendMsg(t, s, alice, mailbox.Inbox, Msg(fmt.Sprint("m", i), "x"), nil)
		require.Greater(t, m.UID, last, "UIDs must strictly increase")
		last = m.UID
		msgs = append(msgs, m)
	}
	_, err := s.Expunge(ctx, alice, msgs[4].ID, msgs[3].ID)
	require.NoError(t, err)
	m := appendMsg(t, s, alice, mailbox.Inbox, Msg("after", "x"), nil)
	require.Greater(t, m.UID, last, "a UID must never be reused after an expunge")
	f, err := s.Folder(ctx, alice, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, m.UID+1, f.UIDNext)

	got, err := s.FetchUIDs(ctx, alice, mailbox.Inbox, 2, 3)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{msgs[1].ID, msgs[2].ID}, ids(got), "FetchUIDs must return the UID range")
	got, err = s.FetchUIDs(ctx, alice, mailbox.Inbox, 3, 0)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{msgs[2].ID, m.ID}, ids(got), "FetchUIDs with last 0 must run to the end")
}

func testUIDValidity(t *testing.T, s *mailbox.Store) {
	f1, err := s.CreateFolder(ctx, alice, "Lists")
	require.NoError(t, err)
	appendMsg(t, s, alice, "Lists", Msg("a", "x"), nil)
	require.NoError(t, s.DeleteFolder(ctx, alice, "Lists"))
	f2, err := s.CreateFolder(ctx, alice, "Lists")
	require.NoError(t, err)
	require.NotEqual(t, f1.UIDValidity, f2.UIDValidity, "a re-created folder must get a new UIDVALIDITY")
	require.NotZero(t, f2.UIDValidity)
	f3, err := s.CreateFolder(ctx, bob, "Lists")
	require.NoError(t, err)
	require.NotZero(t, f3.UIDValidity)
}

func testListUnread(t *testing.T, s *mailbox.Store) {
	var all []mailbox.Message
	for i := 0; i < 30; i++ {
		all = append(all, appendMsg(t, s, alice, mailbox.Inbox, Msg(fmt.Sprint("n", i), "x"), nil))
	}
	var read []mailbricks.MessageID
	for i := 0; i < 30; i += 3 {
		read = append(read, all[i].ID)
	}
	require.NoError(t, s.MarkRead(ctx, alice, read...))
	require.NoError(t, s.MarkRead(ctx, alice, read...), "MarkRead of read messages must be a no-op")
	c := checkCounts(t, s, alice, mailbox.Inbox)
	require.Equal(t, mailbox.Counts{Total: 30, Unread: 20, Size: c.Size}, c)

	p, err := s.List(ctx, alice, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 5})
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{all[29].ID, all[28].ID, all[26].ID, all[25].ID, all[23].ID}, ids(p.Messages), "List Unread must return the newest unread messages")
	// A new message does not disturb the cursor of the next page.
	appendMsg(t, s, alice, mailbox.Inbox, Msg("late", "x"), nil)
	require.NoError(t, s.MarkRead(ctx, alice, all[22].ID))
	p2, err := s.List(ctx, alice, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 3, Cursor: p.Cursor})
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{all[20].ID, all[19].ID, all[17].ID}, ids(p2.Messages), "a cursor must continue after the last message of its page")

	require.NoError(t, s.MarkUnread(ctx, alice, all[0].ID))
	u := listAll(t, s, alice, mailbox.Inbox, true)
	require.Equal(t, all[0].ID, u[len(u)-1].ID, "MarkUnread must put the message back in the unread table")
	_, err = s.List(ctx, alice, mailbox.Inbox, &mailbox.ListOptions{Cursor: "garbage"})
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument)
	checkCounts(t, s, alice, mailbox.Inbox)
}

func testCounts(t *testing.T, s *mailbox.Store) {
	r := rand.New(rand.NewPCG(7, 7))
	folders := []string{mailbox.Inbox, "Archive", "Trash"}
	var live []mailbricks.MessageID
	pick := func() []mailbricks.MessageID {
		var out []mailbricks.MessageID
		for i := 0; i < 1+r.IntN(3) && len(live) > 0; i++ {
			out = append(out, live[r.IntN(len(live))])
		}
		return out
	}
	for step := 0; step < 120; step++ {
		var err error
		op := r.IntN(8)
		switch {
		case op <= 1 || len(live) == 0:
			m := appendMsg(t, s, alice, folders[r.IntN(3)], Msg(fmt.Sprint("c", step), strings.Repeat("x", r.IntN(100))), nil)
			live = append(live, m.ID)
		case op == 2:
			err = s.MarkRead(ctx, alice, pick()...)
		case op == 3:
			err = s.MarkUnread(ctx, alice, pick()...)
		case op == 4:
			_, err = s.Move(ctx, alice, pick(), folders[r.IntN(3)])
		case op == 5:
			var cp []mailbox.UIDMap
			cp, err = s.Copy(ctx, alice, pick(), folders[r.IntN(3)])
			for _, c := range cp {
				live = append(live, c.ID)
			}
		case op == 6:
			_, err = s.SetFlags(ctx, alice, pick(), mailbox.FlagReplace, []string{mailbox.FlagFlagged}, nil)
		case op == 7:
			victims := pick()
			_, err = s.Expunge(ctx, alice, victims...)
			live = slices.DeleteFunc(live, func(id mailbricks.MessageID) bool { return slices.Contains(victims, id) })
		}
		require.NoError(t, err, "step %d op %d", step, op)
		for _, f := range folders {
			checkCounts(t, s, alice, f)
		}
	}
	for _, f := range folders {
		want := checkCounts(t, s, alice, f)
		got, err := s.Recount(ctx, alice, f)
		require.NoError(t, err)
		require.Equal(t, want, got, "Recount must agree with counts kept in every transaction")
	}
}

func testMarkReadAtomic(t *testing.T, s *mailbox.Store) {
	const n = 40
	var msgs []mailbricks.MessageID
	for i := 0; i < n; i++ {
		msgs = append(msgs, appendMsg(t, s, alice, mailbox.Inbox, Msg(fmt.Sprint("r", i), "x"), nil).ID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for i := 0; i < 100; i++ {
				batch := []mailbricks.MessageID{msgs[r.IntN(n)], msgs[r.IntN(n)], msgs[r.IntN(n)]}
				var err error
				if r.IntN(2) == 0 {
					err = s.MarkRead(ctx, alice, batch...)
				} else {
					err = s.MarkUnread(ctx, alice, batch...)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p, err := s.List(ctx, alice, mailbox.Inbox, &mailbox.ListOptions{Limit: 1000})
			if err != nil {
				t.Error(err)
				return
			}
			seen := map[mailbricks.MessageID]int{}
			for _, m := range p.Messages {
				seen[m.ID]++
			}
			if len(p.Messages) != n || len(seen) != n {
				t.Errorf("mark-read must move a message between the tables atomically: List saw %d entries of %d distinct messages, want %d", len(p.Messages), len(seen), n)
				return
			}
			f, err := s.Folder(ctx, alice, mailbox.Inbox)
			if err != nil {
				t.Error(err)
				return
			}
			if f.Total != n || f.Unread < 0 || f.Unread > n {
				t.Errorf("counts out of range during mark-read: %+v", f.Counts)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	checkCounts(t, s, alice, mailbox.Inbox)
}

func testMoveCopy(t *testing.T, s *mailbox.Store) {
	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("a", "x"), &mailbox.AppendOptions{Flags: []string{mailbox.FlagSeen}})
	b := appendMsg(t, s, alice, mailbox.Inbox, Msg("b", "x"), nil)
	_, err := s.CreateFolder(ctx, alice, "Keep")
	require.NoError(t, err)
	appendMsg(t, s, alice, "Keep", Msg("k", "x"), nil)

	mv, err := s.Move(ctx, alice, []mailbricks.MessageID{a.ID, b.ID, mailbricks.NewMessageID()}, "Keep")
	require.NoError(t, err)
	require.Equal(t, []mailbox.UIDMap{
		{SourceID: a.ID, SourceUID: a.UID, ID: a.ID, UID: 2},
		{SourceID: b.ID, SourceUID: b.UID, ID: b.ID, UID: 3},
	}, mv, "Move must return the source→destination UID map, keeping IDs")
	got, err := s.Get(ctx, alice, a.ID)
	require.NoError(t, err)
	require.Equal(t, "Keep", got.Folder)
	require.Equal(t, []string{mailbox.FlagSeen}, got.Flags, "Move must keep flags")
	mv, err = s.Move(ctx, alice, []mailbricks.MessageID{a.ID}, "Keep")
	require.NoError(t, err)
	require.Empty(t, mv, "moving a message to its own folder must do nothing")

	cp, err := s.Copy(ctx, alice, []mailbricks.MessageID{a.ID, b.ID}, mailbox.Inbox)
	require.NoError(t, err)
	require.Len(t, cp, 2)
	require.Equal(t, a.ID, cp[0].SourceID)
	require.Equal(t, uint32(2), cp[0].SourceUID)
	require.NotEqual(t, a.ID, cp[0].ID, "a copy must be a new message")
	require.Equal(t, uint32(3), cp[0].UID, "copies must get the destination's next UIDs")
	require.Equal(t, uint32(4), cp[1].UID)
	c, err := s.Get(ctx, alice, cp[0].ID)
	require.NoError(t, err)
	require.Equal(t, []string{mailbox.FlagSeen}, c.Flags, "Copy must keep flags")
	require.Equal(t, "a", c.Subject)
	require.Equal(t, Msg("a", "x"), openAll(t, s, alice, cp[0].ID))
	_, err = s.Move(ctx, alice, []mailbricks.MessageID{a.ID}, "Nowhere")
	require.ErrorIs(t, err, mailbox.ErrNoFolder)
	checkCounts(t, s, alice, mailbox.Inbox)
	checkCounts(t, s, alice, "Keep")
}

func testChanges(t *testing.T, s *mailbox.Store) {
	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("a", "x"), nil)
	b := appendMsg(t, s, alice, mailbox.Inbox, Msg("b", "x"), nil)
	c := appendMsg(t, s, alice, mailbox.Inbox, Msg("c", "x"), nil)
	f, err := s.Folder(ctx, alice, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, c.ModSeq, f.HighestModSeq)
	mark := f.HighestModSeq

	ch, err := s.Changes(ctx, alice, mailbox.Inbox, 0)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{a.ID, b.ID, c.ID}, ids(ch.Changed), "Changes since 0 must list every message by UID")
	require.Equal(t, f.UIDValidity, ch.UIDValidity)

	r, err := s.SetFlags(ctx, alice, []mailbricks.MessageID{b.ID}, mailbox.FlagAdd, []string{mailbox.FlagAnswered}, nil)
	require.NoError(t, err)
	require.Len(t, r.Updated, 1)
	require.Greater(t, r.Updated[0].ModSeq, mark, "a flag change must raise the message's MODSEQ")
	_, err = s.Expunge(ctx, alice, a.ID)
	require.NoError(t, err)
	_, err = s.Move(ctx, alice, []mailbricks.MessageID{c.ID}, "Archive")
	require.NoError(t, err)
	d := appendMsg(t, s, alice, mailbox.Inbox, Msg("d", "x"), nil)

	ch, err = s.Changes(ctx, alice, mailbox.Inbox, mark)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{b.ID, d.ID}, ids(ch.Changed), "Changes must list the messages changed or appended since")
	require.Equal(t, []string{mailbox.FlagAnswered}, ch.Changed[0].Flags)
	require.Equal(t, []uint32{a.UID, c.UID}, ch.Expunged, "Changes must list UIDs expunged or moved out since")
	f2, err := s.Folder(ctx, alice, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, f2.HighestModSeq, ch.HighestModSeq)
	require.Equal(t, d.ModSeq, f2.HighestModSeq)

	ch, err = s.Changes(ctx, alice, mailbox.Inbox, f2.HighestModSeq)
	require.NoError(t, err)
	require.Empty(t, ch.Changed, "nothing changed since HIGHESTMODSEQ")
	require.Empty(t, ch.Expunged)
	_, err = s.Changes(ctx, alice, "Nope", 0)
	require.ErrorIs(t, err, mailbox.ErrNoFolder)
}

func testUnchangedSince(t *testing.T, s *mailbox.Store) {
	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("a", "x"), nil)
	b := appendMsg(t, s, alice, mailbox.Inbox, Msg("b", "x"), nil)
	_, err := s.SetFlags(ctx, alice, []mailbricks.MessageID{b.ID}, mailbox.FlagAdd, []string{"x"}, nil)
	require.NoError(t, err)
	r, err := s.SetFlags(ctx, alice, []mailbricks.MessageID{a.ID, b.ID}, mailbox.FlagAdd, []string{mailbox.FlagFlagged}, &mailbox.SetFlagsOptions{UnchangedSince: b.ModSeq})
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{b.ID}, r.Conflicts, "UNCHANGEDSINCE must refuse messages changed since")
	require.Equal(t, []mailbricks.MessageID{a.ID}, ids(r.Updated))
	got, err := s.Get(ctx, alice, b.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"x"}, got.Flags, "a refused message must keep its flags")
}

func testWatch(t *testing.T, s *mailbox.Store) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, alice)
	require.NoError(t, err)
	other, err := s.Watch(wctx, bob)
	require.NoError(t, err)

	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("a", "x"), nil)
	require.NoError(t, s.MarkRead(ctx, alice, a.ID))
	mv, err := s.Move(ctx, alice, []mailbricks.MessageID{a.ID}, "Archive")
	require.NoError(t, err)
	_, err = s.Expunge(ctx, alice, a.ID)
	require.NoError(t, err)

	next := func() mailbox.Event {
		t.Helper()
		for {
			select {
			case ev, ok := <-ch:
				require.True(t, ok, "the watch channel closed early")
				if ev.Kind == mailbox.EventFolder {
					continue
				}
				return ev
			case <-time.After(10 * time.Second):
				t.Fatal("Watch must deliver each committed change")
			}
		}
	}
	ev := next()
	require.Equal(t, mailbox.EventAppend, ev.Kind)
	require.Equal(t, alice, ev.User)
	require.Equal(t, a.ID, ev.ID)
	require.Equal(t, a.UID, ev.UID)
	require.Equal(t, mailbox.Inbox, ev.Folder)
	ev = next()
	require.Equal(t, mailbox.EventFlags, ev.Kind)
	require.Equal(t, []string{mailbox.FlagSeen}, ev.Flags)
	ev = next()
	require.Equal(t, mailbox.EventExpunge, ev.Kind, "Move must emit an expunge in the source")
	require.Equal(t, mailbox.Inbox, ev.Folder)
	ev = next()
	require.Equal(t, mailbox.EventAppend, ev.Kind, "Move must emit an append in the destination")
	require.Equal(t, "Archive", ev.Folder)
	require.Equal(t, mv[0].UID, ev.UID)
	ev = next()
	require.Equal(t, mailbox.EventExpunge, ev.Kind)
	require.Equal(t, "Archive", ev.Folder)

	select {
	case ev := <-other:
		t.Fatalf("a watcher of another user must see nothing, got %+v", ev)
	default:
	}
	cancel()
	for range ch {
	}
}

func testIdempotent(t *testing.T, s *mailbox.Store) {
	raw := Msg("once", "x")
	m1 := appendMsg(t, s, alice, mailbox.Inbox, raw, &mailbox.AppendOptions{Key: "job-1"})
	m2 := appendMsg(t, s, alice, mailbox.Inbox, raw, &mailbox.AppendOptions{Key: "job-1"})
	require.Equal(t, m1.ID, m2.ID, "the same key must return the existing message")
	require.Equal(t, m1.UID, m2.UID)

	const n = 16
	var wg sync.WaitGroup
	got := make([]mailbricks.MessageID, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m, err := s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(AttachmentMsg("dup", 20<<10, 5)), &mailbox.AppendOptions{Key: "job-2"})
			got[i], errs[i] = m.ID, err
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		require.NoError(t, errs[i])
		require.Equal(t, got[0], got[i], "concurrent appends with one key must all return the same message")
	}
	c := checkCounts(t, s, alice, mailbox.Inbox)
	require.Equal(t, int64(2), c.Total, "concurrent appends with one key must store one message")

	_, err := s.Expunge(ctx, alice, m1.ID)
	require.NoError(t, err)
	m3 := appendMsg(t, s, alice, mailbox.Inbox, raw, &mailbox.AppendOptions{Key: "job-1"})
	require.Equal(t, m1.ID, m3.ID, "a key stays used after its message is expunged")
	require.Zero(t, m3.UID)
	require.Equal(t, int64(1), checkCounts(t, s, alice, mailbox.Inbox).Total, "a redelivery after an expunge must not bring the message back")
}

func testConcurrentAppend(t *testing.T, s *mailbox.Store) {
	const workers, each = 16, 8
	var wg sync.WaitGroup
	uids := make([][]uint32, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m, err := s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(Msg(fmt.Sprint("w", w, "i", i), "x")), nil)
				if err != nil {
					t.Error(err)
					return
				}
				uids[w] = append(uids[w], m.UID)
			}
		}(w)
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, us := range uids {
		require.True(t, slices.IsSorted(us), "one appender's UIDs must increase")
		for _, u := range us {
			require.False(t, seen[u], "UID %d given twice", u)
			seen[u] = true
		}
	}
	require.Len(t, seen, workers*each)
	for u := uint32(1); u <= workers*each; u++ {
		require.True(t, seen[u], "UIDs must be dense from 1 without concurrent expunges; %d missing", u)
	}
	c := checkCounts(t, s, alice, mailbox.Inbox)
	require.Equal(t, int64(workers*each), c.Total, "counts must be exact after concurrent appends")
	require.Equal(t, int64(workers*each), c.Unread)
}

func testConcurrentMoves(t *testing.T, s *mailbox.Store) {
	folders := []string{mailbox.Inbox, "Archive"}
	var msgs [2][]mailbricks.MessageID
	for i := 0; i < 10; i++ {
		for f := range folders {
			msgs[f] = append(msgs[f], appendMsg(t, s, alice, folders[f], Msg(fmt.Sprint("mv", f, i), "x"), nil).ID)
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; i < 15; i++ {
				// Opposite moves, flag changes and copies between two
				// folders at once must neither fail nor lose a message.
				src := r.IntN(2)
				batch := []mailbricks.MessageID{msgs[0][r.IntN(10)], msgs[1][r.IntN(10)], msgs[src][r.IntN(10)]}
				var err error
				switch r.IntN(3) {
				case 0:
					_, err = s.Move(ctx, alice, batch, folders[1-src])
				case 1:
					_, err = s.SetFlags(ctx, alice, batch, mailbox.FlagAdd, []string{fmt.Sprint("k", i)}, nil)
				default:
					_, err = s.Move(ctx, alice, batch, folders[src])
				}
				if err != nil {
					t.Errorf("concurrent writes must not fail (no deadlock): %v", err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	total := int64(0)
	for _, f := range folders {
		total += checkCounts(t, s, alice, f).Total
	}
	require.Equal(t, int64(20), total, "moves must neither lose nor duplicate messages")
}

func testThread(t *testing.T, s *mailbox.Store) {
	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("Lunch plans", "x"), nil)
	b := appendMsg(t, s, alice, mailbox.Inbox, Msg("reply one", "y", "In-Reply-To: <Lunch.plans@example.com>"), nil)
	c := appendMsg(t, s, alice, "Sent", Msg("RE: Lunch plans", "z"), nil)
	d := appendMsg(t, s, alice, mailbox.Inbox, Msg("Lunch plans", "new topic, same words"), nil)
	require.Equal(t, a.ID, b.ThreadID, "In-Reply-To must join the referenced message's thread")
	require.Equal(t, a.ID, c.ThreadID, "a reply subject must join the thread of the same base subject")
	require.Equal(t, d.ID, d.ThreadID, "a non-reply with a known subject starts its own thread")
	th, err := s.Thread(ctx, alice, c.ID)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{a.ID, b.ID, c.ID}, ids(th), "Thread must list the thread oldest first, across folders")
	_, err = s.Thread(ctx, bob, c.ID)
	require.ErrorIs(t, err, mailbox.ErrNotFound)
}

func testDelete(t *testing.T, s *mailbox.Store) {
	a := appendMsg(t, s, alice, mailbox.Inbox, Msg("a", "x"), nil)
	require.NoError(t, s.Delete(ctx, alice, a.ID))
	got, err := s.Get(ctx, alice, a.ID)
	require.NoError(t, err)
	require.Equal(t, "Trash", got.Folder, "Delete must move to Trash")
	require.NoError(t, s.Delete(ctx, alice, a.ID))
	_, err = s.Get(ctx, alice, a.ID)
	require.ErrorIs(t, err, mailbox.ErrNotFound, "Delete in Trash must expunge")

	b := appendMsg(t, s, alice, mailbox.Inbox, Msg("b", "x"), nil)
	c := appendMsg(t, s, alice, mailbox.Inbox, Msg("c", "x"), nil)
	_, err = s.SetFlags(ctx, alice, []mailbricks.MessageID{b.ID}, mailbox.FlagAdd, []string{mailbox.FlagDeleted}, nil)
	require.NoError(t, err)
	ex, err := s.ExpungeDeleted(ctx, alice, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{b.ID}, ids(ex), "ExpungeDeleted must expunge exactly the \\Deleted messages")
	_, err = s.Get(ctx, alice, c.ID)
	require.NoError(t, err)
	checkCounts(t, s, alice, mailbox.Inbox)
	checkCounts(t, s, alice, "Trash")
}

func testScan(t *testing.T, s *mailbox.Store) {
	var want []mailbricks.MessageID
	for i := 0; i < 12; i++ {
		folder := []string{mailbox.Inbox, "Sent", "Archive"}[i%3]
		want = append(want, appendMsg(t, s, alice, folder, Msg(fmt.Sprint("s", i), "x"), nil).ID)
	}
	var got []mailbricks.MessageID
	var after mailbricks.MessageID
	for {
		page, err := s.Scan(ctx, alice, after, 5)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		after = page[len(page)-1].ID
	}
	require.Equal(t, want, got, "Scan must return every message of the user once, by ID")
}

func testClosed(t *testing.T, s *mailbox.Store) {
	m := appendMsg(t, s, alice, mailbox.Inbox, Msg("a", "x"), nil)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close must be idempotent")
	_, err := s.Get(ctx, alice, m.ID)
	require.ErrorIs(t, err, mailbox.ErrClosed)
	_, err = s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(Msg("b", "x")), nil)
	require.ErrorIs(t, err, mailbox.ErrClosed)
	_, err = s.Backend().Get(ctx, alice, m.ID)
	require.ErrorIs(t, err, mailbox.ErrClosed, "a closed backend must return ErrClosed")
	_, err = s.Backend().Folders(ctx, alice)
	require.ErrorIs(t, err, mailbox.ErrClosed, "a closed backend must return ErrClosed")
	require.NoError(t, s.Backend().Close(), "backend Close must be idempotent")
}

// RunCorpus appends every n-th message of the SpamAssassin corpus (all of
// them for 1) to s and checks that each reads back byte-exact with sane
// metadata and exact counts.
func RunCorpus(t *testing.T, s *mailbox.Store, every int) {
	msgs := corpus.ForTest(t)
	type stored struct {
		id  mailbricks.MessageID
		raw []byte
	}
	var all []stored
	for i := 0; i < len(msgs); i += every {
		m, err := s.Append(ctx, alice, mailbox.Inbox, bytes.NewReader(msgs[i].Raw), nil)
		require.NoError(t, err, "corpus message %s/%s must be stored", msgs[i].Group, msgs[i].Name)
		require.Equal(t, int64(len(msgs[i].Raw)), m.Size)
		require.True(t, strings.ToValidUTF8(m.Subject, "") == m.Subject, "subjects must be valid UTF-8")
		all = append(all, stored{m.ID, msgs[i].Raw})
	}
	withFrom := 0
	for _, st := range all {
		got := openAll(t, s, alice, st.id)
		require.True(t, bytes.Equal(st.raw, got), "corpus message %s must read back byte-exact", st.id)
		m, err := s.Get(ctx, alice, st.id)
		require.NoError(t, err)
		if len(m.From) > 0 {
			withFrom++
		}
	}
	require.Greater(t, withFrom, len(all)*9/10, "metadata must be sane: most corpus messages have a parsable From")
	c := checkCounts(t, s, alice, mailbox.Inbox)
	require.Equal(t, int64(len(all)), c.Total)
}
