package imapsession

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// session is one connection's IMAP session. go-imap calls its methods one
// at a time, so only the Watch channel is shared with another goroutine
// (the backend's), and a channel needs no lock.
type session struct {
	h      *Handler
	conn   *imapserver.Conn
	ctx    context.Context
	cancel context.CancelFunc

	user   mailbricks.UserID
	events <-chan mailbox.Event
	sel    *selected
}

var (
	_ imapserver.Session            = (*session)(nil)
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func (s *session) Close() error {
	s.cancel()
	if s.user != "" {
		s.h.release(s.user)
		s.user = ""
	}
	return nil
}

func (s *session) AppendLimit() uint32 { return s.h.opts.AppendLimit }

func (s *session) Login(username, password string) error {
	if s.user != "" {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Already authenticated"}
	}
	if !s.h.plaintextOK(s.conn.NetConn()) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired, Text: "TLS is required to authenticate"}
	}
	user, err := s.h.auth(s.ctx, username, password)
	if err == nil {
		if verr := user.Validate(); verr != nil {
			err = verr
		}
	}
	if err != nil {
		if !errors.Is(err, ErrAuthFailed) {
			s.h.opts.Logger.Error("imapsession: authenticator failed", "err", err)
			return serverBug
		}
		if d := s.h.opts.LoginFailureDelay; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
			}
		}
		return imapserver.ErrAuthFailed
	}
	if !s.h.acquire(user) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many sessions for this user"}
	}
	events, err := s.h.store.Watch(s.ctx, user)
	if err != nil {
		s.h.release(user)
		return s.fail("login", err)
	}
	s.user, s.events = user, events
	return nil
}

var serverBug = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal server error"}

// fail turns a mailbox error into an IMAP NO with the response code
// clients act on; unexpected errors are logged and reported as a server
// failure without their text.
func (s *session) fail(op string, err error) error {
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		return err
	case errors.Is(err, mailbox.ErrNoFolder):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, mailbox.ErrFolderExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, mailbox.ErrFolderNotEmpty):
		return no(imap.ResponseCodeInUse, "Mailbox not empty")
	case errors.Is(err, mailbox.ErrTooLarge):
		return no(imap.ResponseCodeTooBig, "Message too large")
	case errors.Is(err, mailbox.ErrInvalidFolder), errors.Is(err, mailbox.ErrInvalidArgument), errors.Is(err, mailbricks.ErrInvalidUser):
		return no(imap.ResponseCodeCannot, strings.TrimPrefix(err.Error(), "mailbox: "))
	case errors.Is(err, mailbox.ErrClosed), errors.Is(err, context.Canceled):
		return no(imap.ResponseCodeUnavailable, "Server shutting down")
	}
	s.h.opts.Logger.Error("imapsession: "+op, "user", string(s.user), "err", err)
	return serverBug
}

// folderName turns an IMAP mailbox name into a folder name: without a
// trailing delimiter, INBOX in canonical case.
func folderName(name string) string {
	return mailbox.CanonicalFolderName(strings.TrimSuffix(name, mailbox.Delimiter))
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	name = folderName(name)
	if name == mailbox.Inbox {
		return s.fail("create", mailbox.ErrFolderExists)
	}
	// Create the missing superior folders too (RFC 9051 section 6.3.4).
	levels := strings.Split(name, mailbox.Delimiter)
	for i := 1; i < len(levels); i++ {
		parent := strings.Join(levels[:i], mailbox.Delimiter)
		if _, err := s.h.store.CreateFolder(s.ctx, s.user, parent); err != nil && !errors.Is(err, mailbox.ErrFolderExists) {
			return s.fail("create", err)
		}
	}
	if _, err := s.h.store.CreateFolder(s.ctx, s.user, name); err != nil {
		return s.fail("create", err)
	}
	return nil
}

func (s *session) Delete(name string) error {
	name = folderName(name)
	if name == mailbox.Inbox {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "INBOX cannot be deleted"}
	}
	if err := s.h.store.DeleteFolder(s.ctx, s.user, name); err != nil {
		return s.fail("delete", err)
	}
	return nil
}

func (s *session) Rename(from, to string, options *imap.RenameOptions) error {
	from, to = folderName(from), folderName(to)
	if to == mailbox.Inbox {
		return s.fail("rename", mailbox.ErrFolderExists)
	}
	if from != mailbox.Inbox {
		if err := s.h.store.RenameFolder(s.ctx, s.user, from, to); err != nil {
			return s.fail("rename", err)
		}
		return nil
	}
	// RENAME INBOX moves its messages to the new folder and leaves INBOX
	// in place, empty (RFC 9051 section 6.3.6).
	if err := s.Create(to, nil); err != nil {
		return err
	}
	msgs, err := s.h.store.FetchUIDs(s.ctx, s.user, mailbox.Inbox, 1, 0)
	if err != nil {
		return s.fail("rename", err)
	}
	ids := make([]mailbricks.MessageID, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].ID
	}
	for chunk := range slices.Chunk(ids, 1000) {
		if _, err := s.h.store.Move(s.ctx, s.user, chunk, to); err != nil {
			return s.fail("rename", err)
		}
	}
	return nil
}

func (s *session) Subscribe(name string) error {
	if err := s.h.store.Subscribe(s.ctx, s.user, folderName(name)); err != nil {
		return s.fail("subscribe", err)
	}
	return nil
}

func (s *session) Unsubscribe(name string) error {
	if err := s.h.store.Unsubscribe(s.ctx, s.user, folderName(name)); err != nil {
		return s.fail("unsubscribe", err)
	}
	return nil
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}}, nil
}

var roleAttrs = map[mailbox.Role]imap.MailboxAttr{
	mailbox.RoleSent:    imap.MailboxAttrSent,
	mailbox.RoleDrafts:  imap.MailboxAttrDrafts,
	mailbox.RoleTrash:   imap.MailboxAttrTrash,
	mailbox.RoleJunk:    imap.MailboxAttrJunk,
	mailbox.RoleArchive: imap.MailboxAttrArchive,
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if options == nil {
		options = &imap.ListOptions{}
	}
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		// LIST "" "" asks for the hierarchy delimiter.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/'})
	}
	folders, err := s.h.store.Folders(s.ctx, s.user)
	if err != nil {
		return s.fail("list", err)
	}
	byName := make(map[string]*mailbox.Folder, len(folders))
	names := make([]string, 0, len(folders))
	for i := range folders {
		byName[folders[i].Name] = &folders[i]
		names = append(names, folders[i].Name)
	}
	subscribed := map[string]bool{}
	if options.SelectSubscribed || options.ReturnSubscribed {
		subs, err := s.h.store.Subscriptions(s.ctx, s.user)
		if err != nil {
			return s.fail("list", err)
		}
		for _, n := range subs {
			subscribed[n] = true
		}
		if options.SelectSubscribed {
			names = subs
		}
	}
	all := make([]string, len(folders))
	for i := range folders {
		all[i] = folders[i].Name
	}
	slices.Sort(all)
	hasChildren := func(name string) bool {
		i, _ := slices.BinarySearch(all, name+mailbox.Delimiter)
		return i < len(all) && strings.HasPrefix(all[i], name+mailbox.Delimiter)
	}
	for _, name := range names {
		match := false
		for _, p := range patterns {
			if imapserver.MatchList(name, '/', ref, p) || (name == mailbox.Inbox && imapserver.MatchList("inbox", '/', strings.ToLower(ref), strings.ToLower(p))) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		f := byName[name]
		data := &imap.ListData{Delim: '/', Mailbox: name}
		if f == nil {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		} else {
			if a, ok := roleAttrs[f.Role]; ok {
				data.Attrs = append(data.Attrs, a)
			} else if options.SelectSpecialUse {
				continue
			}
			if hasChildren(name) {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
			} else {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
			}
		}
		if subscribed[name] && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil && f != nil {
			st, err := s.status(f, options.ReturnStatus)
			if err != nil {
				return err
			}
			data.Status = st
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.h.store.Folder(s.ctx, s.user, folderName(name))
	if err != nil {
		return nil, s.fail("status", err)
	}
	return s.status(&f, options)
}

func (s *session) status(f *mailbox.Folder, o *imap.StatusOptions) (*imap.StatusData, error) {
	u32 := func(v int64) *uint32 { n := uint32(v); return &n }
	data := &imap.StatusData{Mailbox: f.Name}
	if o.NumMessages {
		data.NumMessages = u32(f.Total)
	}
	if o.NumRecent {
		data.NumRecent = u32(0)
	}
	if o.UIDNext {
		data.UIDNext = imap.UID(f.UIDNext)
	}
	if o.UIDValidity {
		data.UIDValidity = f.UIDValidity
	}
	if o.NumUnseen {
		data.NumUnseen = u32(f.Unread)
	}
	if o.Size {
		size := f.Size
		data.Size = &size
	}
	if o.AppendLimit {
		l := s.h.opts.AppendLimit
		data.AppendLimit = &l
	}
	if o.NumDeleted {
		st, err := s.h.store.Status(s.ctx, s.user, f.Name)
		if err != nil {
			return nil, s.fail("status", err)
		}
		data.NumDeleted = u32(st.Deleted)
	}
	return data, nil
}

func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	o := &mailbox.AppendOptions{}
	if options != nil {
		o.InternalDate = options.Time
		o.Flags = storeFlags(options.Flags)
	}
	m, err := s.h.store.Append(s.ctx, s.user, folderName(name), r, o)
	if err != nil {
		_, _ = io.Copy(io.Discard, r)
		if errors.Is(err, mailbox.ErrNoFolder) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
		}
		return nil, s.fail("append", err)
	}
	return &imap.AppendData{UID: imap.UID(m.UID), UIDValidity: m.UIDValidity}, nil
}

// storeFlags converts IMAP flags to mailbox flags, leaving out \Recent,
// which clients cannot set.
func storeFlags(flags []imap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, string(f))
	}
	return out
}

func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}
