package index

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a [Query] node.
type Kind uint8

// The query kinds. The comment of each says which Query fields it uses.
const (
	// KindAll matches every document.
	KindAll Kind = iota
	// KindAnd matches documents every Sub matches; with no Sub, all.
	KindAnd
	// KindOr matches documents some Sub matches; with no Sub, none.
	KindOr
	// KindNot matches documents Sub[0] does not match.
	KindNot
	// KindText matches documents whose Field holds the words of Text as
	// a phrase (consecutive positions); one word is a plain term. With
	// Prefix the last word is a prefix. With FieldHeader, Header names
	// the header. Text with no words matches every document (IMAP
	// SUBJECT "" matches all).
	KindText
	// KindFlag matches documents with every flag in Flag.
	KindFlag
	// KindKeyword matches documents with the keyword Text.
	KindKeyword
	// KindFolder matches documents in folder Text.
	KindFolder
	// KindThread matches documents of thread Text.
	KindThread
	// KindRange matches documents whose Range value v has Min <= v < Max.
	KindRange
	// KindUID matches documents whose UID is in one of UIDs.
	KindUID
	// KindNewer matches documents whose Date is within Age of now
	// (Gmail newer_than:); [Query.Resolve] turns it into a KindRange.
	KindNewer
	// KindOlder matches documents whose Date is more than Age before now
	// (Gmail older_than:); [Query.Resolve] turns it into a KindRange.
	KindOlder
)

// RangeField names the doc value a [KindRange] query compares.
type RangeField uint8

// The range fields. Dates compare as Unix seconds.
const (
	RangeDate RangeField = iota
	RangeSentDate
	RangeSize
	RangeModSeq
)

// UIDRange is an inclusive range of IMAP UIDs.
type UIDRange struct {
	Start, Stop uint32
}

// Query is a search expression: a tree of nodes. Build one with [Parse]
// (the Gmail-style language), with the constructors ([And], [Text],
// [HasFlag], …), or as a literal. It can express every IMAP SEARCH
// criterion of RFC 3501 and RFC 9051 (see [Query] constructors' docs for
// the mapping); text criteria match whole words and phrases, not arbitrary
// substrings.
//
// A Query is a value; it is safe for concurrent use if not modified.
type Query struct {
	// Kind is the node's kind; it says which other fields are used.
	Kind Kind
	// Field is the field of a KindText node.
	Field Field
	// Header is the header name of a KindText node on FieldHeader.
	Header string
	// Text is the words of a KindText node, or the value of a
	// KindKeyword, KindFolder or KindThread node.
	Text string
	// Prefix makes the last word of a KindText node a prefix.
	Prefix bool
	// Terms are the terms a KindText node looks up, set by
	// [Query.Resolve] from Text (and Header).
	Terms []string
	// Flag is the flag set of a KindFlag node.
	Flag Flag
	// Range is the doc value of a KindRange node; Min and Max bound it.
	Range    RangeField
	Min, Max int64
	// Age is the age of a KindNewer or KindOlder node.
	Age time.Duration
	// UIDs are the ranges of a KindUID node.
	UIDs []UIDRange
	// Sub are the operands of KindAnd, KindOr and KindNot.
	Sub []Query
}

// All matches every document (IMAP ALL).
func All() Query { return Query{Kind: KindAll} }

// And matches documents all of qs match (IMAP criteria lists).
func And(qs ...Query) Query { return Query{Kind: KindAnd, Sub: qs} }

// Or matches documents any of qs matches (IMAP OR).
func Or(qs ...Query) Query { return Query{Kind: KindOr, Sub: qs} }

// Not matches documents q does not match (IMAP NOT; UNSEEN is
// Not(HasFlag(FlagSeen))).
func Not(q Query) Query { return Query{Kind: KindNot, Sub: []Query{q}} }

// Text matches documents whose field f holds the words of s as a phrase
// (IMAP FROM, TO, CC, BCC, SUBJECT, BODY; TEXT is FieldAny, which searches
// the [ContentFields]).
func Text(f Field, s string) Query { return Query{Kind: KindText, Field: f, Text: s} }

// Prefix is like [Text] with the last word taken as a prefix.
func Prefix(f Field, s string) Query { return Query{Kind: KindText, Field: f, Text: s, Prefix: true} }

// HeaderText matches documents with header name whose value holds the
// words of s (IMAP HEADER); an empty s matches documents that have the
// header. Only [IndexedHeaders] and the address and subject fields are
// searchable this way; for those the matching field is used.
func HeaderText(name, s string) Query {
	switch strings.ToLower(name) {
	case "from":
		return Text(FieldFrom, s)
	case "to":
		return Text(FieldTo, s)
	case "cc":
		return Text(FieldCc, s)
	case "bcc":
		return Text(FieldBcc, s)
	case "subject":
		return Text(FieldSubject, s)
	}
	return Query{Kind: KindText, Field: FieldHeader, Header: name, Text: s}
}

// HasFlag matches documents with every flag in f (IMAP SEEN, ANSWERED,
// FLAGGED, DELETED, DRAFT, RECENT; the UN- forms and OLD are Not of it, NEW
// is And(HasFlag(FlagRecent), Not(HasFlag(FlagSeen)))).
func HasFlag(f Flag) Query { return Query{Kind: KindFlag, Flag: f} }

// HasKeyword matches documents with keyword k (IMAP KEYWORD; UNKEYWORD is
// Not of it).
func HasKeyword(k string) Query { return Query{Kind: KindKeyword, Text: k} }

// InFolder matches documents in folder name.
func InFolder(name string) Query { return Query{Kind: KindFolder, Text: name} }

// InThread matches documents of thread id.
func InThread(id string) Query { return Query{Kind: KindThread, Text: id} }

// Between matches documents whose value of f is in [min, max) (IMAP
// LARGER n is Between(RangeSize, n+1, math.MaxInt64), SMALLER n is
// Between(RangeSize, 0, n), MODSEQ n is Between(RangeModSeq, n,
// math.MaxInt64)).
func Between(f RangeField, min, max int64) Query {
	return Query{Kind: KindRange, Range: f, Min: min, Max: max}
}

// Before matches documents whose date f is before the day of t (UTC)
// starts (IMAP BEFORE with RangeDate, SENTBEFORE with RangeSentDate).
func Before(f RangeField, t time.Time) Query {
	return Between(f, math.MinInt64, dayStart(t))
}

// On matches documents whose date f is on the day of t (UTC) (IMAP ON,
// SENTON).
func On(f RangeField, t time.Time) Query {
	d := dayStart(t)
	return Between(f, d, d+86400)
}

// Since matches documents whose date f is on or after the day of t (UTC)
// (IMAP SINCE, SENTSINCE).
func Since(f RangeField, t time.Time) Query {
	return Between(f, dayStart(t), math.MaxInt64)
}

// UIDIn matches documents whose UID is in one of the ranges (IMAP UID
// sets; a sequence-number set is translated to UIDs by the caller).
func UIDIn(ranges ...UIDRange) Query { return Query{Kind: KindUID, UIDs: ranges} }

func dayStart(t time.Time) int64 {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
}

// Resolve returns a copy of q ready for a backend: KindText nodes get
// their Terms, and KindNewer and KindOlder become date ranges relative to
// now.
func (q Query) Resolve(now time.Time) Query {
	switch q.Kind {
	case KindText:
		if q.Field == FieldHeader {
			q.Terms = HeaderTerms(q.Header, q.Text)
		} else {
			q.Terms = QueryTerms(q.Text)
		}
	case KindNewer:
		return Between(RangeDate, now.Add(-q.Age).Unix(), math.MaxInt64)
	case KindOlder:
		return Between(RangeDate, math.MinInt64, now.Add(-q.Age).Unix())
	case KindAnd, KindOr, KindNot:
		sub := make([]Query, len(q.Sub))
		for i, s := range q.Sub {
			sub[i] = s.Resolve(now)
		}
		q.Sub = sub
	}
	return q
}

// String returns q in the query language where it can be spelled there,
// and in a readable bracketed form for the IMAP-only kinds.
func (q Query) String() string {
	var b strings.Builder
	q.write(&b)
	return b.String()
}

func (q Query) write(b *strings.Builder) {
	switch q.Kind {
	case KindAll:
		b.WriteString("[all]")
	case KindAnd, KindOr:
		sep := " "
		if q.Kind == KindOr {
			sep = " OR "
		}
		b.WriteByte('(')
		for i, s := range q.Sub {
			if i > 0 {
				b.WriteString(sep)
			}
			s.write(b)
		}
		b.WriteByte(')')
	case KindNot:
		b.WriteByte('-')
		if len(q.Sub) > 0 {
			q.Sub[0].write(b)
		}
	case KindText:
		switch {
		case q.Field == FieldHeader:
			b.WriteString("[header " + strconv.Quote(q.Header) + "]:")
		case q.Field != FieldAny:
			b.WriteString(q.Field.String() + ":")
		}
		b.WriteString(strconv.Quote(q.Text))
		if q.Prefix {
			b.WriteByte('*')
		}
	case KindFlag:
		b.WriteString("[flags " + strconv.Itoa(int(q.Flag)) + "]")
	case KindKeyword:
		b.WriteString("label:" + strconv.Quote(q.Text))
	case KindFolder:
		b.WriteString("in:" + strconv.Quote(q.Text))
	case KindThread:
		b.WriteString("[thread " + strconv.Quote(q.Text) + "]")
	case KindRange:
		b.WriteString("[range " + strconv.Itoa(int(q.Range)) + " " + strconv.FormatInt(q.Min, 10) + " " + strconv.FormatInt(q.Max, 10) + "]")
	case KindUID:
		b.WriteString("[uid")
		for _, r := range q.UIDs {
			b.WriteString(" " + strconv.FormatUint(uint64(r.Start), 10) + ":" + strconv.FormatUint(uint64(r.Stop), 10))
		}
		b.WriteByte(']')
	case KindNewer:
		b.WriteString("newer_than:" + strconv.FormatInt(int64(q.Age/time.Hour), 10) + "h")
	case KindOlder:
		b.WriteString("older_than:" + strconv.FormatInt(int64(q.Age/time.Hour), 10) + "h")
	default:
		b.WriteString("[kind " + strconv.Itoa(int(q.Kind)) + "]")
	}
}
