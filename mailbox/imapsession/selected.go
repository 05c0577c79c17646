package imapsession

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// entry is a message as the client knows it.
type entry struct {
	uid    uint32
	id     mailbricks.MessageID
	modseq uint64
	flags  []string
}

// selected is the state of the selected folder: the messages the client
// knows, by sequence number (msgs[i] is number i+1), in increasing UID
// order as RFC 9051 section 2.3.1.2 requires.
//
// Between commands the client knows exactly msgs. Changes reach it from
// the Watch channel (see applyEvents): a new message is appended and
// announced with EXISTS, a flag change is sent as FETCH FLAGS when its
// MODSEQ is newer than the one the session has, and an expunge is sent as
// EXPUNGE with the message's number at that moment, then the entry is
// removed, so later numbers shift down exactly as they do at the client.
// Expunges are held back (pending) while a FETCH, STORE or SEARCH is
// answered, where RFC 9051 section 7.5.1 forbids them.
//
// The session's own writes update msgs at once; their events come back
// through Watch later and change nothing: an append whose UID the session
// has passed, a flag change whose MODSEQ it has, an expunge of a UID it no
// longer lists.
type selected struct {
	name        string
	uidValidity uint32
	readOnly    bool
	msgs        []entry
	keywords    map[string]bool
	pending     []uint32 // UIDs expunged elsewhere, not yet announced
	saved       []uint32 // the last SEARCH result saved with SAVE ($)
	gone        bool     // the folder was deleted or recreated
	// flagsChanged says the session's own STORE added a keyword that the
	// client has not been sent in FLAGS yet.
	flagsChanged bool
}

// find returns the index of uid in msgs.
func (sel *selected) find(uid uint32) (int, bool) {
	i := sort.Search(len(sel.msgs), func(i int) bool { return sel.msgs[i].uid >= uid })
	return i, i < len(sel.msgs) && sel.msgs[i].uid == uid
}

func (sel *selected) maxUID() uint32 {
	if len(sel.msgs) == 0 {
		return 0
	}
	return sel.msgs[len(sel.msgs)-1].uid
}

// addKeywords records the keywords of flags and reports whether any was
// new to the folder's FLAGS.
func (sel *selected) addKeywords(flags []string) bool {
	added := false
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) && !sel.keywords[f] {
			sel.keywords[f] = true
			added = true
		}
	}
	return added
}

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

func (sel *selected) flagList() []imap.Flag {
	out := slices.Clone(systemFlags)
	kws := make([]string, 0, len(sel.keywords))
	for k := range sel.keywords {
		kws = append(kws, k)
	}
	slices.Sort(kws)
	for _, k := range kws {
		out = append(out, imap.Flag(k))
	}
	return out
}

func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.sel = nil
	s.discardEvents()
	name = folderName(name)
	f, err := s.h.store.Folder(s.ctx, s.user, name)
	if err != nil {
		return nil, s.fail("select", err)
	}
	msgs, err := s.h.store.FetchUIDs(s.ctx, s.user, f.Name, 1, 0)
	if err != nil {
		return nil, s.fail("select", err)
	}
	if len(msgs) > 0 && msgs[0].UIDValidity != f.UIDValidity {
		// Deleted and created again between the two reads.
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeInUse, Text: "Mailbox changed, try again"}
	}
	sel := &selected{name: f.Name, uidValidity: f.UIDValidity, keywords: map[string]bool{}, msgs: make([]entry, len(msgs))}
	sel.readOnly = options != nil && options.ReadOnly
	var firstUnseen uint32
	for i := range msgs {
		m := &msgs[i]
		sel.msgs[i] = entry{uid: m.UID, id: m.ID, modseq: m.ModSeq, flags: m.Flags}
		sel.addKeywords(m.Flags)
		if firstUnseen == 0 && m.Unread() {
			firstUnseen = uint32(i + 1)
		}
	}
	s.sel = sel
	perm := append(sel.flagList(), imap.FlagWildcard)
	if sel.readOnly {
		perm = nil
	}
	return &imap.SelectData{
		Flags:             sel.flagList(),
		PermanentFlags:    perm,
		NumMessages:       uint32(len(msgs)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(max(f.UIDNext, sel.maxUID()+1)),
		UIDValidity:       f.UIDValidity,
	}, nil
}

func (s *session) Unselect() error {
	s.sel = nil
	return nil
}

// discardEvents drops the events waiting in the Watch channel.
func (s *session) discardEvents() {
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				s.events = nil
				return
			}
		default:
			return
		}
	}
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		s.discardEvents()
		return nil
	}
	var evs []mailbox.Event
	for len(evs) < 10000 {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.events = nil
				return s.applyEvents(w, evs, allowExpunge)
			}
			evs = append(evs, ev)
			continue
		default:
		}
		break
	}
	return s.applyEvents(w, evs, allowExpunge)
}

func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.Poll(w, true); err != nil {
		return err
	}
	for {
		select {
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		case ev, ok := <-s.events:
			if !ok {
				s.events = nil
				<-stop
				return nil
			}
			if s.sel == nil {
				continue
			}
			if err := s.applyEvents(w, []mailbox.Event{ev}, true); err != nil {
				return err
			}
			if err := s.Poll(w, true); err != nil {
				return err
			}
		}
	}
}

// applyEvents brings the client's view of the selected folder up to date
// with evs (see [selected]) and writes the untagged responses.
func (s *session) applyEvents(w *imapserver.UpdateWriter, evs []mailbox.Event, allowExpunge bool) error {
	sel := s.sel
	announced := len(sel.msgs) // messages the client knows
	newFlags := sel.flagsChanged
	sel.flagsChanged = false
	for _, ev := range evs {
		if ev.Kind == mailbox.EventOverflow {
			if err := s.resync(); err != nil {
				return err
			}
			continue
		}
		if ev.Kind == mailbox.EventFolder {
			f, err := s.h.store.Folder(s.ctx, s.user, sel.name)
			if errors.Is(err, mailbox.ErrNoFolder) || (err == nil && f.UIDValidity != sel.uidValidity) {
				sel.gone = true
			}
			continue
		}
		if ev.Folder != sel.name {
			continue
		}
		switch ev.Kind {
		case mailbox.EventAppend:
			if ev.UID > sel.maxUID() {
				sel.msgs = append(sel.msgs, entry{uid: ev.UID, id: ev.ID, modseq: ev.ModSeq, flags: ev.Flags})
				newFlags = sel.addKeywords(ev.Flags) || newFlags
			}
		case mailbox.EventFlags:
			i, ok := sel.find(ev.UID)
			if !ok || ev.ModSeq <= sel.msgs[i].modseq {
				continue
			}
			sel.msgs[i].flags, sel.msgs[i].modseq = ev.Flags, ev.ModSeq
			newFlags = sel.addKeywords(ev.Flags) || newFlags
			if i < announced {
				if err := w.WriteMessageFlags(uint32(i+1), imap.UID(ev.UID), imapFlags(ev.Flags)); err != nil {
					return err
				}
			}
		case mailbox.EventExpunge:
			if _, ok := sel.find(ev.UID); ok && !slices.Contains(sel.pending, ev.UID) {
				sel.pending = append(sel.pending, ev.UID)
			}
		}
	}
	if sel.gone {
		return s.conn.Bye("Selected mailbox was deleted")
	}
	if allowExpunge {
		for _, uid := range sel.pending {
			i, ok := sel.find(uid)
			if !ok {
				continue
			}
			if i < announced {
				if err := w.WriteExpunge(uint32(i + 1)); err != nil {
					return err
				}
				announced--
			}
			sel.msgs = slices.Delete(sel.msgs, i, i+1)
		}
		sel.pending = sel.pending[:0]
	}
	if newFlags {
		if err := w.WriteMailboxFlags(sel.flagList()); err != nil {
			return err
		}
	}
	if len(sel.msgs) != announced {
		return w.WriteNumMessages(uint32(len(sel.msgs)))
	}
	return nil
}

// resync compares the view with the folder after the watcher overflowed:
// expunged messages become pending expunges, new ones are appended, and
// changed flags are taken over (the client learns them when it fetches
// FLAGS; the events that would have announced them were lost).
func (s *session) resync() error {
	sel := s.sel
	msgs, err := s.h.store.FetchUIDs(s.ctx, s.user, sel.name, 1, 0)
	if errors.Is(err, mailbox.ErrNoFolder) {
		sel.gone = true
		return nil
	}
	if err != nil {
		return s.fail("resync", err)
	}
	if len(msgs) > 0 && msgs[0].UIDValidity != sel.uidValidity {
		sel.gone = true
		return nil
	}
	live := make(map[uint32]*mailbox.Message, len(msgs))
	for i := range msgs {
		live[msgs[i].UID] = &msgs[i]
	}
	for i := range sel.msgs {
		e := &sel.msgs[i]
		m, ok := live[e.uid]
		if !ok {
			if !slices.Contains(sel.pending, e.uid) {
				sel.pending = append(sel.pending, e.uid)
			}
			continue
		}
		if m.ModSeq > e.modseq {
			e.flags, e.modseq = m.Flags, m.ModSeq
			sel.addKeywords(m.Flags)
		}
	}
	top := sel.maxUID()
	for i := range msgs {
		if m := &msgs[i]; m.UID > top {
			sel.msgs = append(sel.msgs, entry{uid: m.UID, id: m.ID, modseq: m.ModSeq, flags: m.Flags})
			sel.addKeywords(m.Flags)
		}
	}
	return nil
}

// resolve returns the indexes in msgs of the messages numSet names, in
// increasing order, each once. "*" is the last message (or the highest
// UID); a UID set may name UIDs that do not exist, which are skipped, and
// "$" is the saved search result.
func (s *session) resolve(numSet imap.NumSet) ([]int, error) {
	sel := s.sel
	var out []int
	switch set := numSet.(type) {
	case imap.SeqSet:
		n := uint32(len(sel.msgs))
		for _, r := range set {
			lo, hi := r.Start, r.Stop
			if lo == 0 {
				lo = n
			}
			if hi == 0 {
				hi = n
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo == 0 || hi > n {
				return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Message sequence number out of range"}
			}
			for i := lo; i <= hi; i++ {
				out = append(out, int(i-1))
			}
		}
	case imap.UIDSet:
		if imap.IsSearchRes(set) {
			for _, uid := range sel.saved {
				if i, ok := sel.find(uid); ok {
					out = append(out, i)
				}
			}
			break
		}
		top := sel.maxUID()
		for _, r := range set {
			lo, hi := uint32(r.Start), uint32(r.Stop)
			if lo == 0 {
				lo = top
			}
			if hi == 0 {
				hi = top
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			i, _ := sel.find(lo)
			for ; i < len(sel.msgs) && sel.msgs[i].uid <= hi; i++ {
				out = append(out, i)
			}
		}
	default:
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Bad message set"}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// uidRanges returns the UIDs of the entries at idxs as ranges of
// consecutive entries, to read them from the Store in few calls.
func (sel *selected) uidRanges(idxs []int) []mailbox.UIDRange {
	var rs []mailbox.UIDRange
	for k := 0; k < len(idxs); {
		j := k
		for j+1 < len(idxs) && idxs[j+1] == idxs[j]+1 {
			j++
		}
		rs = append(rs, mailbox.UIDRange{First: sel.msgs[idxs[k]].uid, Last: sel.msgs[idxs[j]].uid})
		k = j + 1
	}
	return rs
}

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sel := s.sel
	idxs, err := s.resolve(numSet)
	if err != nil || len(idxs) == 0 {
		return err
	}
	needMeta := options.Envelope || options.InternalDate || options.RFC822Size
	needBody := options.BodyStructure != nil || len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	setSeen := false
	if !sel.readOnly {
		for _, bs := range options.BodySection {
			setSeen = setSeen || !bs.Peek
		}
		setSeen = setSeen || len(options.BinarySection) > 0 && slices.ContainsFunc(options.BinarySection, func(b *imap.FetchItemBinarySection) bool { return !b.Peek })
	}
	seenNow := map[uint32]bool{}
	if setSeen {
		var ids []mailbricks.MessageID
		for _, i := range idxs {
			if !mailbox.HasFlag(sel.msgs[i].flags, mailbox.FlagSeen) {
				ids = append(ids, sel.msgs[i].id)
			}
		}
		if len(ids) > 0 {
			res, err := s.h.store.SetFlags(s.ctx, s.user, ids, mailbox.FlagAdd, []string{mailbox.FlagSeen}, nil)
			if err != nil {
				return s.fail("fetch", err)
			}
			s.took(res.Updated)
			for _, m := range res.Updated {
				seenNow[m.UID] = true
			}
		}
	}
	meta := map[uint32]*mailbox.Message{}
	if needMeta {
		msgs, err := s.h.store.FetchUIDSet(s.ctx, s.user, sel.name, sel.uidRanges(idxs))
		if err != nil {
			return s.fail("fetch", err)
		}
		for i := range msgs {
			meta[msgs[i].UID] = &msgs[i]
		}
	}
	for _, i := range idxs {
		e := &sel.msgs[i]
		m := meta[e.uid]
		if needMeta && m == nil {
			continue // expunged meanwhile; the EXPUNGE follows
		}
		var raw []byte
		if needBody {
			raw, err = s.read(e.id)
			if errors.Is(err, mailbox.ErrNotFound) {
				continue
			}
			if err != nil {
				return s.fail("fetch", err)
			}
		}
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(e.uid))
		if options.Flags || seenNow[e.uid] {
			rw.WriteFlags(imapFlags(e.flags))
		}
		if options.InternalDate {
			rw.WriteInternalDate(m.InternalDate)
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(m.Size)
		}
		if options.Envelope {
			rw.WriteEnvelope(envelope(m))
		}
		if options.BodyStructure != nil {
			rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(raw)))
		}
		for _, bs := range options.BodySection {
			buf := bodySection(raw, bs)
			if err := writeSection(rw.WriteBodySection(bs, int64(len(buf))), buf); err != nil {
				return err
			}
		}
		for _, bs := range options.BinarySection {
			buf := imapserver.ExtractBinarySection(bytes.NewReader(raw), bs)
			if err := writeSection(rw.WriteBinarySection(bs, int64(len(buf))), buf); err != nil {
				return err
			}
		}
		for _, bss := range options.BinarySectionSize {
			rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(raw), bss))
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func writeSection(wc io.WriteCloser, buf []byte) error {
	_, err := wc.Write(buf)
	return errors.Join(err, wc.Close())
}

// read returns a message's bytes.
func (s *session) read(id mailbricks.MessageID) ([]byte, error) {
	rc, err := s.h.store.Open(s.ctx, s.user, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// took updates the view with messages the session itself changed.
func (s *session) took(updated []mailbox.Message) {
	sel := s.sel
	for _, m := range updated {
		if m.Folder != sel.name {
			continue
		}
		if i, ok := sel.find(m.UID); ok && m.ModSeq > sel.msgs[i].modseq {
			sel.msgs[i].flags, sel.msgs[i].modseq = m.Flags, m.ModSeq
		}
	}
}

func envelope(m *mailbox.Message) *imap.Envelope {
	addrs := func(as []mailbox.Address) []imap.Address {
		var out []imap.Address
		for _, a := range as {
			i := strings.LastIndexByte(a.Addr, '@')
			if i < 0 {
				out = append(out, imap.Address{Name: a.Name, Mailbox: a.Addr})
				continue
			}
			out = append(out, imap.Address{Name: a.Name, Mailbox: a.Addr[:i], Host: a.Addr[i+1:]})
		}
		return out
	}
	return &imap.Envelope{
		Date:      m.Date,
		Subject:   m.Subject,
		From:      addrs(m.From),
		Sender:    addrs(m.Sender),
		ReplyTo:   addrs(m.ReplyTo),
		To:        addrs(m.To),
		Cc:        addrs(m.Cc),
		Bcc:       addrs(m.Bcc),
		InReplyTo: m.InReplyTo,
		MessageID: m.MessageIDHeader,
	}
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	sel := s.sel
	if sel.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	idxs, err := s.resolve(numSet)
	if err != nil || len(idxs) == 0 {
		return err
	}
	op := map[imap.StoreFlagsOp]mailbox.FlagOp{imap.StoreFlagsSet: mailbox.FlagReplace, imap.StoreFlagsAdd: mailbox.FlagAdd, imap.StoreFlagsDel: mailbox.FlagRemove}[flags.Op]
	fl := storeFlags(flags.Flags)
	if _, err := mailbox.CanonicalFlags(fl); err != nil {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Invalid flag"}
	}
	ids := make([]mailbricks.MessageID, len(idxs))
	for k, i := range idxs {
		ids[k] = sel.msgs[i].id
	}
	res, err := s.h.store.SetFlags(s.ctx, s.user, ids, op, fl, nil)
	if err != nil {
		return s.fail("store", err)
	}
	s.took(res.Updated)
	for _, m := range res.Updated {
		// A new keyword changes the folder's FLAGS: the poll that follows
		// this command announces it.
		sel.flagsChanged = sel.addKeywords(m.Flags) || sel.flagsChanged
	}
	if flags.Silent {
		return nil
	}
	for _, i := range idxs {
		e := &sel.msgs[i]
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(e.uid))
		rw.WriteFlags(imapFlags(e.flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	idxs, err := s.resolve(numSet)
	if err != nil {
		return nil, err
	}
	dest = folderName(dest)
	f, err := s.h.store.Folder(s.ctx, s.user, dest)
	if errors.Is(err, mailbox.ErrNoFolder) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return nil, s.fail("copy", err)
	}
	ids := make([]mailbricks.MessageID, len(idxs))
	for k, i := range idxs {
		ids[k] = s.sel.msgs[i].id
	}
	maps, err := s.h.store.Copy(s.ctx, s.user, ids, dest)
	if err != nil {
		return nil, s.fail("copy", err)
	}
	return copyData(f.UIDValidity, maps), nil
}

// copyData is the COPYUID of maps, or nil when nothing was copied (an
// empty set cannot be written).
func copyData(uidValidity uint32, maps []mailbox.UIDMap) *imap.CopyData {
	if len(maps) == 0 {
		return nil
	}
	sort.Slice(maps, func(i, j int) bool { return maps[i].SourceUID < maps[j].SourceUID })
	data := &imap.CopyData{UIDValidity: uidValidity}
	for _, m := range maps {
		data.SourceUIDs.AddNum(imap.UID(m.SourceUID))
		data.DestUIDs.AddNum(imap.UID(m.UID))
	}
	return data
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sel := s.sel
	if sel.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only"}
	}
	idxs, err := s.resolve(numSet)
	if err != nil {
		return err
	}
	dest = folderName(dest)
	f, err := s.h.store.Folder(s.ctx, s.user, dest)
	if errors.Is(err, mailbox.ErrNoFolder) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	if err != nil {
		return s.fail("move", err)
	}
	ids := make([]mailbricks.MessageID, len(idxs))
	for k, i := range idxs {
		ids[k] = sel.msgs[i].id
	}
	maps, err := s.h.store.Move(s.ctx, s.user, ids, dest)
	if err != nil {
		return s.fail("move", err)
	}
	if data := copyData(f.UIDValidity, maps); data != nil {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	if f.Name == sel.name {
		return nil
	}
	uids := make([]uint32, len(maps))
	for k, m := range maps {
		uids[k] = m.SourceUID
	}
	return s.expunged(uids, w.WriteExpunge)
}

// expunged removes uids from the view, writing EXPUNGE for each with its
// number at that moment, highest first so that the numbers of the rest do
// not move.
func (s *session) expunged(uids []uint32, write func(uint32) error) error {
	sel := s.sel
	var idxs []int
	for _, uid := range uids {
		if i, ok := sel.find(uid); ok {
			idxs = append(idxs, i)
		}
	}
	slices.Sort(idxs)
	idxs = slices.Compact(idxs)
	for k := len(idxs) - 1; k >= 0; k-- {
		if err := write(uint32(idxs[k] + 1)); err != nil {
			return err
		}
		sel.msgs = slices.Delete(sel.msgs, idxs[k], idxs[k]+1)
	}
	return nil
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sel := s.sel
	if sel.readOnly {
		// Nothing to expunge in a read-only (EXAMINEd) folder. go-imap
		// calls Expunge for CLOSE too, which must succeed there.
		return nil
	}
	// The candidates are read fresh, not from the view: a message another
	// session flagged \Deleted a moment ago is expunged too. The Store
	// checks \Deleted again in the expunge's own transaction.
	msgs, err := s.h.store.FetchUIDs(s.ctx, s.user, sel.name, 1, 0)
	if err != nil {
		return s.fail("expunge", err)
	}
	var ids []mailbricks.MessageID
	for i := range msgs {
		m := &msgs[i]
		if !mailbox.HasFlag(m.Flags, mailbox.FlagDeleted) {
			continue
		}
		if _, ok := sel.find(m.UID); !ok {
			continue // not known to the client yet
		}
		if uids != nil && !uids.Contains(imap.UID(m.UID)) {
			continue
		}
		ids = append(ids, m.ID)
	}
	gone, err := s.h.store.ExpungeIfDeleted(s.ctx, s.user, ids...)
	if err != nil {
		return s.fail("expunge", err)
	}
	removed := make([]uint32, len(gone))
	for k := range gone {
		removed[k] = gone[k].UID
	}
	return s.expunged(removed, w.WriteExpunge)
}

// bodySection returns a BODY[section]<partial> of raw. The whole message,
// its header and its text are cut from raw, so they are the stored bytes
// exactly (go-imap's ExtractBodySection rewrites header line ends); other
// sections come from ExtractBodySection.
func bodySection(raw []byte, bs *imap.FetchItemBodySection) []byte {
	if len(bs.Part) > 0 || len(bs.HeaderFields) > 0 || len(bs.HeaderFieldsNot) > 0 {
		return imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
	}
	var b []byte
	switch bs.Specifier {
	case imap.PartSpecifierNone:
		b = raw
	case imap.PartSpecifierHeader, imap.PartSpecifierText:
		end := len(raw)
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			end = i + 4
		}
		if i := bytes.Index(raw, []byte("\n\n")); i >= 0 && i+2 < end {
			end = i + 2
		}
		if bs.Specifier == imap.PartSpecifierHeader {
			b = raw[:end]
		} else {
			b = raw[end:]
		}
	default:
		return imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
	}
	if p := bs.Partial; p != nil {
		if p.Offset >= int64(len(b)) {
			return nil
		}
		b = b[p.Offset:]
		if p.Size >= 0 && p.Size < int64(len(b)) {
			b = b[:p.Size]
		}
	}
	return b
}
