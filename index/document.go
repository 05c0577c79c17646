package index

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailbricks/mailbricks"
)

// Field names a searchable part of a message.
type Field uint8

// The fields. [FieldAny] is only for queries: it matches a term in any of
// the [ContentFields], like IMAP's TEXT and an unqualified Gmail word.
// [FieldHeader] holds the terms of [Document].Headers for IMAP HEADER
// searches ([HeaderText]); FieldAny does not search it.
const (
	FieldAny Field = iota
	FieldFrom
	FieldTo
	FieldCc
	FieldBcc
	FieldSubject
	FieldBody
	FieldFilename
	FieldHeader
)

// NumFields is one more than the largest Field.
const NumFields = int(FieldHeader) + 1

var fieldNames = [...]string{"any", "from", "to", "cc", "bcc", "subject", "body", "filename", "header"}

// String returns the field's name, as the query language spells it.
func (f Field) String() string {
	if int(f) < len(fieldNames) {
		return fieldNames[f]
	}
	return "field(" + itoa(int(f)) + ")"
}

// Fields lists the document fields.
var Fields = []Field{FieldFrom, FieldTo, FieldCc, FieldBcc, FieldSubject, FieldBody, FieldFilename, FieldHeader}

// ContentFields lists the fields [FieldAny] searches: a message's content
// (addresses and display names, subject, body, attachment file names).
// [FieldHeader] is not among them: its terms are "name:value" pairs, so a
// plain prefix such as "rep*" would match every message with a Reply-To
// header, and a plain word is meant for what the message says, not for
// its header fields. The values of the further headers (List-Id,
// Message-ID, …) are found with [HeaderText] (IMAP HEADER) only.
var ContentFields = []Field{FieldFrom, FieldTo, FieldCc, FieldBcc, FieldSubject, FieldBody, FieldFilename}

// Flag is a set of message flags as bits: the IMAP system flags, plus
// whether the message has an attachment. These are not IMAP flag strings:
// mailbox.FlagSeen is the string `\Seen`, index.FlagSeen its bit here.
// mailbox.IndexFlags and mailbox.IndexValues convert a mailbox message's
// flags and state, and a mailbox Store with an index attached does it
// itself.
type Flag uint16

// The flag bits.
const (
	FlagSeen Flag = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
	FlagRecent
	// FlagAttachment marks a message with at least one attachment.
	FlagAttachment
)

// Address is a mailbox address with its display name.
type Address struct {
	// Name is the display name, decoded; it may be empty.
	Name string
	// Addr is the address, local@domain.
	Addr string
}

// Header is one message header indexed for IMAP HEADER searches.
type Header struct {
	// Name is the header's field name; matching ignores case.
	Name string
	// Value is the decoded value.
	Value string
}

// Values are a document's doc values: the attributes queries filter and
// sort on, which change without the text being indexed again (see
// [Index.Update]).
type Values struct {
	// Date is when the message arrived (IMAP internal date); it orders
	// results. Backends keep it to the second.
	Date time.Time
	// SentDate is the Date header's time (IMAP SENTBEFORE and friends),
	// to the second; zero if absent.
	SentDate time.Time
	// Size is the message's size in bytes (RFC 822 size).
	Size int64
	// Folder is the folder (mailbox) the message is in.
	Folder string
	// Flags are the message's flags.
	Flags Flag
	// Keywords are IMAP keywords (Gmail labels), matched exactly.
	Keywords []string
	// Thread identifies the message's conversation; may be empty.
	Thread string
	// UID is the IMAP UID of the message in its folder; 0 if unknown.
	UID uint32
	// ModSeq is the IMAP modification sequence; 0 if unknown.
	ModSeq uint64
}

// Document is what the index knows of a message: its searchable text and
// its [Values]. Build one from a raw message with [DocumentFromMessage], or
// fill it in directly. Backends only read a Document; it must not be
// modified while a call that was given it runs.
type Document struct {
	// ID identifies the message; indexing a document with the ID of one
	// already indexed replaces it.
	ID mailbricks.MessageID
	// From, To, Cc and Bcc are the addresses.
	From, To, Cc, Bcc []Address
	// Subject is the decoded subject.
	Subject string
	// Body is the decoded text of every text part, HTML reduced to text,
	// parts separated by blank lines.
	Body string
	// Filenames are the attachments' file names.
	Filenames []string
	// Headers are further headers searchable with IMAP HEADER.
	Headers []Header
	// Values are the doc values.
	Values
}

// Analyze calls fn with every term of d in field order, each field's
// positions starting at 0 and increasing; several terms may share a
// position (address parts). term is valid only during the call. Backends
// index exactly these terms, and queries look up [QueryTerms] of the same
// tokenizer, so all backends agree on what matches.
//
// Header terms are the lowercased header name, a colon and a value term
// ("list-id:announce"); every header also yields its bare name and colon
// ("list-id:") at its first position, so a HEADER search with an empty
// string finds every message that has the header.
func (d *Document) Analyze(fn func(f Field, term []byte, pos int)) {
	var t tokenizer
	addrs := func(f Field, list []Address) {
		pos := 0
		for i, a := range list {
			if i > 0 {
				pos += valueGap
			}
			emit := func(term []byte, p, _, _ int) { fn(f, term, p) }
			pos = t.tokenize(a.Name, pos, MaxFieldPositions, true, emit)
			pos = t.tokenize(a.Addr, pos, MaxFieldPositions, true, emit)
		}
	}
	addrs(FieldFrom, d.From)
	addrs(FieldTo, d.To)
	addrs(FieldCc, d.Cc)
	addrs(FieldBcc, d.Bcc)
	t.tokenize(d.Subject, 0, MaxFieldPositions, true, func(term []byte, p, _, _ int) { fn(FieldSubject, term, p) })
	t.tokenize(d.Body, 0, MaxFieldPositions, true, func(term []byte, p, _, _ int) { fn(FieldBody, term, p) })
	pos := 0
	for i, name := range d.Filenames {
		if i > 0 {
			pos += valueGap
		}
		pos = t.tokenize(name, pos, MaxFieldPositions, true, func(term []byte, p, _, _ int) { fn(FieldFilename, term, p) })
	}
	pos = 0
	var pre, hb []byte
	for i, h := range d.Headers {
		if i > 0 {
			pos += valueGap
		}
		if pos >= MaxFieldPositions {
			break
		}
		pre = append(appendLower(pre[:0], h.Name), ':')
		hb = append(hb[:0], pre...)
		fn(FieldHeader, hb, pos)
		pos++
		pos = t.tokenize(h.Value, pos, MaxFieldPositions, true, func(term []byte, p, _, _ int) {
			hb = append(append(hb[:0], pre...), term...)
			fn(FieldHeader, hb, p)
		})
	}
}

// appendLower appends strings.ToLower(s) to dst, without allocating for
// an ASCII s (header names are ASCII).
func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return append(dst, strings.ToLower(s)...)
		}
	}
	return appendLowerASCII(dst, s)
}

// appendLowerASCII appends s, an ASCII string, to dst with its letters
// lowercased.
func appendLowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// HeaderTerms returns the terms a HEADER search for name and value looks
// up as a phrase: the value's query terms, each prefixed with the
// lowercased name and a colon, or the bare "name:" term when value has
// none.
func HeaderTerms(name, value string) []string {
	prefix := strings.ToLower(name) + ":"
	ts := QueryTerms(value)
	if len(ts) == 0 {
		return []string{prefix}
	}
	for i, t := range ts {
		ts[i] = prefix + t
	}
	return ts
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
