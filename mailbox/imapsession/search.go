package imapsession

import (
	"bufio"
	"bytes"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/mailbox"
)

func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sel := s.sel
	idxs, err := s.search(criteria)
	if err != nil {
		return nil, err
	}
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for _, i := range idxs {
		seqs.AddNum(uint32(i + 1))
		uids.AddNum(imap.UID(sel.msgs[i].uid))
	}
	if options != nil && options.ReturnSave {
		sel.saved = sel.saved[:0]
		for _, i := range idxs {
			sel.saved = append(sel.saved, sel.msgs[i].uid)
		}
	}
	num := func(i int) uint32 {
		if kind == imapserver.NumKindUID {
			return sel.msgs[i].uid
		}
		return uint32(i + 1)
	}
	if kind == imapserver.NumKindUID {
		data.All = append(imap.UIDSet{}, uids...)
	} else {
		data.All = append(imap.SeqSet{}, seqs...)
	}
	if len(idxs) > 0 {
		data.Min, data.Max = num(idxs[0]), num(idxs[len(idxs)-1])
	}
	data.Count = uint32(len(idxs))
	return data, nil
}

// search returns the indexes in the view of the messages that match c, in
// increasing order. With an index and criteria it can answer, it is one
// index query; otherwise every message is evaluated (see the package
// documentation).
func (s *session) search(c *imap.SearchCriteria) ([]int, error) {
	sel := s.sel
	if x := s.h.opts.Index; x != nil {
		if q, ok := s.query(c); ok {
			byID := make(map[mailbricks.MessageID]int, len(sel.msgs))
			for i := range sel.msgs {
				byID[sel.msgs[i].id] = i
			}
			q = index.And(index.InFolder(sel.name), q)
			var out []int
			opts := &index.SearchOptions{Limit: 1000, NoSnippets: true, Sort: index.SortOldest}
			for {
				res, err := x.Search(s.ctx, s.user, q, opts)
				if err != nil {
					return nil, s.fail("search", err)
				}
				for _, h := range res.Hits {
					if i, ok := byID[h.ID]; ok {
						out = append(out, i)
					}
				}
				if res.Cursor == "" || len(res.Hits) == 0 {
					break
				}
				opts.Cursor = res.Cursor
			}
			slices.Sort(out)
			return slices.Compact(out), nil
		}
	}
	msgs, err := s.h.store.FetchUIDs(s.ctx, s.user, sel.name, 1, 0)
	if err != nil {
		return nil, s.fail("search", err)
	}
	meta := make(map[uint32]*mailbox.Message, len(msgs))
	for i := range msgs {
		meta[msgs[i].UID] = &msgs[i]
	}
	var out []int
	for i := range sel.msgs {
		m := meta[sel.msgs[i].uid]
		if m == nil {
			continue
		}
		ev := &evaluation{s: s, i: i, m: m}
		ok, err := ev.match(c)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, i)
		}
	}
	return out, nil
}

// critRanges turns a sequence set or UID set of a criterion into UID
// ranges of the view, and reports false when they are too many for the
// index.
func (s *session) critRanges(set imap.NumSet) ([]index.UIDRange, bool) {
	idxs, err := s.resolve(set)
	if err != nil {
		// An out-of-range sequence number matches nothing in SEARCH.
		return nil, true
	}
	var rs []index.UIDRange
	for _, r := range s.sel.uidRanges(idxs) {
		rs = append(rs, index.UIDRange{Start: r.First, Stop: r.Last})
	}
	return rs, len(rs) <= index.MaxQueryUIDRanges
}

var flagBits = map[string]index.Flag{
	mailbox.FlagSeen: index.FlagSeen, mailbox.FlagAnswered: index.FlagAnswered,
	mailbox.FlagFlagged: index.FlagFlagged, mailbox.FlagDeleted: index.FlagDeleted,
	mailbox.FlagDraft: index.FlagDraft,
}

// canonicalFlag spells a system flag in its canonical case.
func canonicalFlag(f imap.Flag) string {
	fl, err := mailbox.CanonicalFlags([]string{string(f)})
	if err != nil || len(fl) != 1 {
		return string(f)
	}
	return fl[0]
}

var addressFields = map[string]index.Field{"from": index.FieldFrom, "to": index.FieldTo, "cc": index.FieldCc, "bcc": index.FieldBcc, "subject": index.FieldSubject}

// query translates c into an index query, or reports false if some
// criterion is one the index cannot answer.
func (s *session) query(c *imap.SearchCriteria) (index.Query, bool) {
	var qs []index.Query
	none := index.Or()
	for _, set := range c.SeqNum {
		rs, ok := s.critRanges(set)
		if !ok {
			return index.Query{}, false
		}
		if len(rs) == 0 {
			return none, true
		}
		qs = append(qs, index.UIDIn(rs...))
	}
	for _, set := range c.UID {
		rs, ok := s.critRanges(set)
		if !ok {
			return index.Query{}, false
		}
		if len(rs) == 0 {
			return none, true
		}
		qs = append(qs, index.UIDIn(rs...))
	}
	if !c.Since.IsZero() {
		qs = append(qs, index.Since(index.RangeDate, c.Since))
	}
	if !c.Before.IsZero() {
		qs = append(qs, index.Before(index.RangeDate, c.Before))
	}
	if !c.SentSince.IsZero() {
		qs = append(qs, index.Since(index.RangeSentDate, c.SentSince))
	}
	if !c.SentBefore.IsZero() {
		qs = append(qs, index.Before(index.RangeSentDate, c.SentBefore))
	}
	for _, h := range c.Header {
		name := strings.ToLower(h.Key)
		if f, ok := addressFields[name]; ok {
			qs = append(qs, index.Text(f, h.Value))
			continue
		}
		if !slices.ContainsFunc(index.IndexedHeaders, func(n string) bool { return strings.EqualFold(n, name) }) {
			return index.Query{}, false
		}
		qs = append(qs, index.HeaderText(h.Key, h.Value))
	}
	for _, b := range c.Body {
		qs = append(qs, index.Text(index.FieldBody, b))
	}
	for _, t := range c.Text {
		qs = append(qs, index.Text(index.FieldAny, t))
	}
	for _, f := range c.Flag {
		q, ok := flagQuery(f)
		if !ok {
			return none, true
		}
		qs = append(qs, q)
	}
	for _, f := range c.NotFlag {
		if q, ok := flagQuery(f); ok {
			qs = append(qs, index.Not(q))
		}
	}
	if c.Larger > 0 {
		qs = append(qs, index.Between(index.RangeSize, c.Larger+1, math.MaxInt64))
	}
	if c.Smaller > 0 {
		qs = append(qs, index.Between(index.RangeSize, 0, c.Smaller))
	}
	if c.ModSeq != nil {
		qs = append(qs, index.Between(index.RangeModSeq, int64(min(c.ModSeq.ModSeq, math.MaxInt64)), math.MaxInt64))
	}
	for i := range c.Not {
		q, ok := s.query(&c.Not[i])
		if !ok {
			return index.Query{}, false
		}
		qs = append(qs, index.Not(q))
	}
	for i := range c.Or {
		a, ok := s.query(&c.Or[i][0])
		if !ok {
			return index.Query{}, false
		}
		b, ok := s.query(&c.Or[i][1])
		if !ok {
			return index.Query{}, false
		}
		qs = append(qs, index.Or(a, b))
	}
	return index.And(qs...), true
}

// flagQuery is the query of a FLAG or KEYWORD criterion; false for
// \Recent, which no message has here.
func flagQuery(f imap.Flag) (index.Query, bool) {
	name := canonicalFlag(f)
	if strings.EqualFold(name, `\Recent`) {
		return index.Query{}, false
	}
	if bit, ok := flagBits[name]; ok {
		return index.HasFlag(bit), true
	}
	return index.HasKeyword(name), true
}

// evaluation evaluates criteria on one message without an index.
type evaluation struct {
	s   *session
	i   int
	m   *mailbox.Message
	raw []byte
	err error
}

func (ev *evaluation) bytes() []byte {
	if ev.raw == nil && ev.err == nil {
		ev.raw, ev.err = ev.s.read(ev.m.ID)
		if ev.raw == nil {
			ev.raw = []byte{}
		}
	}
	return ev.raw
}

func day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func addrText(as []mailbox.Address) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Name + " <" + a.Addr + "> ")
	}
	return b.String()
}

func (ev *evaluation) match(c *imap.SearchCriteria) (bool, error) {
	e, m := &ev.s.sel.msgs[ev.i], ev.m
	for _, set := range c.SeqNum {
		idxs, err := ev.s.resolve(set)
		if err != nil || !slices.Contains(idxs, ev.i) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		idxs, _ := ev.s.resolve(set)
		if !slices.Contains(idxs, ev.i) {
			return false, nil
		}
	}
	if !c.Since.IsZero() && day(m.InternalDate).Before(day(c.Since)) {
		return false, nil
	}
	if !c.Before.IsZero() && !day(m.InternalDate).Before(day(c.Before)) {
		return false, nil
	}
	if !c.SentSince.IsZero() && (m.Date.IsZero() || day(m.Date).Before(day(c.SentSince))) {
		return false, nil
	}
	if !c.SentBefore.IsZero() && (m.Date.IsZero() || !day(m.Date).Before(day(c.SentBefore))) {
		return false, nil
	}
	for _, h := range c.Header {
		var text string
		switch strings.ToLower(h.Key) {
		case "from":
			text = addrText(m.From)
		case "to":
			text = addrText(m.To)
		case "cc":
			text = addrText(m.Cc)
		case "bcc":
			text = addrText(m.Bcc)
		case "subject":
			text = m.Subject
		default:
			hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(ev.bytes())))
			if err != nil && !hdr.Has(h.Key) {
				return false, nil
			}
			vals := hdr.Values(h.Key)
			if len(vals) == 0 {
				return false, nil
			}
			text = strings.Join(vals, "\n")
		}
		if !containsFold(text, h.Value) {
			return false, nil
		}
	}
	for _, b := range c.Body {
		raw := ev.bytes()
		body := raw
		if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
			body = raw[i+4:]
		} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
			body = raw[i+2:]
		}
		if !containsFold(string(body), b) {
			return false, nil
		}
	}
	for _, t := range c.Text {
		if !containsFold(string(ev.bytes()), t) {
			return false, nil
		}
	}
	if ev.err != nil {
		return false, ev.s.fail("search", ev.err)
	}
	for _, f := range c.Flag {
		if !mailbox.HasFlag(e.flags, canonicalFlag(f)) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if mailbox.HasFlag(e.flags, canonicalFlag(f)) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.Size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if c.ModSeq != nil && e.modseq < c.ModSeq.ModSeq {
		return false, nil
	}
	for i := range c.Not {
		ok, err := ev.match(&c.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := ev.match(&c.Or[i][0])
		if err != nil {
			return false, err
		}
		if !a {
			b, err := ev.match(&c.Or[i][1])
			if err != nil || !b {
				return false, err
			}
		}
	}
	return true, nil
}
