package mailbox

import (
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// Metadata extraction.
//
// [Store.Append] parses each message once with internal/mailparse, the
// parser index uses too, under the bounds of [Options] (MaxHeaderBytes for
// the header of the message and of every part, MaxParts, MaxDepth). The
// parse never fails: whatever it cannot parse (a bad header, a missing
// boundary, a bound reached, an unknown charset) is recorded in
// [Message.ParseError] and the fields extracted so far are kept. The bytes
// themselves are stored unchanged either way.
//
// Header fields follow mailparse's one decoding policy (shared with
// index): RFC 2047 encoded words decoded, raw UTF-8 kept, other raw 8-bit
// text decoded with the declared charset or else as windows-1252, control
// characters turned into spaces; every string is valid UTF-8 and at most
// 4 KiB, at most 1000 addresses per field and 64 message IDs per
// References or In-Reply-To are kept. No global of another package is set.

// fillMetadata fills m's header fields, HasAttachments, Snippet and
// ParseError from p.
func fillMetadata(p *mailparse.Message, snippetLen int, m *Message) {
	m.Subject = p.Subject
	m.Date = p.Date
	m.From = addresses(p.From)
	m.Sender = addresses(p.Sender)
	m.ReplyTo = addresses(p.ReplyTo)
	m.To = addresses(p.To)
	m.Cc = addresses(p.Cc)
	m.Bcc = addresses(p.Bcc)
	m.MessageIDHeader = p.MessageID
	m.InReplyTo = p.InReplyTo
	m.References = p.References
	m.HasAttachments = p.HasAttachment
	m.Snippet = p.Snippet(snippetLen)
	m.ParseError = p.ParseError()
}

func addresses(l []mailparse.Address) []Address {
	if l == nil {
		return nil
	}
	out := make([]Address, len(l))
	for i, a := range l {
		out[i] = Address(a)
	}
	return out
}

// indexDocument builds the [index.Document] of a message from the parse
// Append made, without parsing it again: the mailbox→index glue indexes
// what mailbox stored. It equals what [index.DocumentFromMessage] returns
// for the same bytes (TestIndexDocumentMatchesIndex checks it).
func indexDocument(id mailbricks.MessageID, p *mailparse.Message, v index.Values) *index.Document {
	d := &index.Document{ID: id, Values: v}
	d.From = indexAddresses(p.From)
	d.To = indexAddresses(p.To)
	d.Cc = indexAddresses(p.Cc)
	d.Bcc = indexAddresses(p.Bcc)
	d.Subject = p.Subject
	for _, name := range index.IndexedHeaders {
		for _, val := range p.HeaderValues(name) {
			if len(d.Headers) < index.MaxHeaders {
				d.Headers = append(d.Headers, index.Header{Name: name, Value: val})
			}
		}
	}
	if d.SentDate.IsZero() {
		d.SentDate = p.Date
	}
	d.Body = p.Body()
	d.Filenames = p.Filenames
	if p.HasAttachment {
		d.Flags |= index.FlagAttachment
	}
	return d
}

func indexAddresses(l []mailparse.Address) []index.Address {
	if l == nil {
		return nil
	}
	out := make([]index.Address, len(l))
	for i, a := range l {
		out[i] = index.Address(a)
	}
	return out
}

// normalizeSubject returns the base subject (RFC 5256 section 2.1, in
// short): reply and forward prefixes ("Re:", "Fwd:", "Fw:", "[list]"),
// and trailing "(fwd)" removed, whitespace collapsed, lowercased. isReply
// reports whether a reply or forward prefix was removed.
func normalizeSubject(s string) (base string, isReply bool) {
	s = strings.Join(strings.Fields(s), " ")
	for {
		t := strings.TrimSpace(s)
		lt := strings.ToLower(t)
		switch {
		case strings.HasSuffix(lt, "(fwd)"):
			t = t[:len(t)-5]
			isReply = true
		case strings.HasPrefix(lt, "["):
			if j := strings.IndexByte(t, ']'); j > 0 && j < len(t)-1 {
				t = t[j+1:]
			}
		}
		lt = strings.ToLower(strings.TrimSpace(t))
		for _, p := range []string{"re:", "fwd:", "fw:", "aw:", "sv:", "vs:", "re :", "fwd :"} {
			if strings.HasPrefix(lt, p) {
				t = strings.TrimSpace(t)[len(p):]
				isReply = true
				break
			}
		}
		t = strings.TrimSpace(t)
		if t == s {
			return strings.ToLower(t), isReply
		}
		s = t
	}
}
