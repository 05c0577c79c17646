package index

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ParseError reports a query that does not parse. Pos is the byte offset
// in the query of the offending input.
type ParseError struct {
	// Pos is the byte offset of the error in the query.
	Pos int
	// Msg describes the problem.
	Msg string
}

// Error returns the message with its position.
func (e *ParseError) Error() string {
	return fmt.Sprintf("index: query: at %d: %s", e.Pos, e.Msg)
}

// Is makes errors.Is(err, ErrBadQuery) true for a *ParseError.
func (e *ParseError) Is(target error) bool { return target == ErrBadQuery }

// Parse parses a query in the Gmail-style query language:
//
//	word             the word in any content field (not header field
//	                 names or the further headers: see [ContentFields])
//	"exact phrase"   the words at consecutive positions
//	prefix*          any word that starts with prefix
//	from: to: cc: bcc: subject: filename:
//	                 restrict a word, phrase or (group) to a field
//	has:attachment   messages with an attachment
//	is:unread is:read is:starred
//	in:<folder>      messages in the folder (in:anywhere is all)
//	label:<keyword>  messages with the keyword
//	before: after:   dates: 2024/01/31, 2024-01-31 (UTC days) or Unix seconds
//	older_than: newer_than:
//	                 ages: 7d, 2m, 1y (also h for hours)
//	larger: smaller: sizes: 5M, 100K, 2G or bytes
//	-x               not x
//	x OR y           either (OR binds tighter than the implicit AND)
//	( ... )          grouping; AND may be written
//
// An empty query matches everything. Errors are *[ParseError] values that
// also match [ErrBadQuery]. A query longer than [MaxQueryLen] bytes, with
// more than [MaxQueryTerms] terms or nested deeper than [MaxQueryDepth]
// is refused with the position where it crosses the limit; a query Parse
// accepts is within every query limit.
func Parse(s string) (Query, error) {
	if len(s) > MaxQueryLen {
		return Query{}, &ParseError{Pos: MaxQueryLen, Msg: fmt.Sprintf("query longer than %d bytes", MaxQueryLen)}
	}
	p := &parser{s: s}
	p.next()
	q, err := p.parseOr(0, FieldAny)
	if err != nil {
		return Query{}, err
	}
	if p.tok.kind != tkEOF {
		return Query{}, p.errorf(p.tok.pos, "unexpected %s", p.tok.describe())
	}
	return q, nil
}

type tokKind uint8

const (
	tkEOF tokKind = iota
	tkWord
	tkPhrase
	tkLParen
	tkRParen
	tkMinus
	tkOr
	tkAnd
	tkOp // op: name in text, followed by its value
)

type qtok struct {
	kind tokKind
	pos  int
	text string
}

func (t qtok) describe() string {
	switch t.kind {
	case tkEOF:
		return "end of query"
	case tkRParen:
		return `")"`
	case tkLParen:
		return `"("`
	case tkOr:
		return "OR"
	}
	return strconv.Quote(t.text)
}

type parser struct {
	s     string
	i     int
	tok   qtok
	err   *ParseError
	terms int // terms of the leaves made so far, for MaxQueryTerms
}

// leaf counts n terms of a leaf made at pos against MaxQueryTerms.
func (p *parser) leaf(pos, n int) error {
	p.terms += n
	if p.terms > MaxQueryTerms {
		return p.errorf(pos, "more than %d terms", MaxQueryTerms)
	}
	return nil
}

// text makes the leaf of a word or phrase at pos.
func (p *parser) text(q Query, pos int) (Query, error) {
	if err := p.leaf(pos, textTerms(q.Text)); err != nil {
		return Query{}, err
	}
	return q, nil
}

func (p *parser) errorf(pos int, format string, args ...any) *ParseError {
	return &ParseError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

// operators lists the field and filter operators.
var operators = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "filename": true,
	"has": true, "is": true, "in": true, "label": true, "before": true, "after": true,
	"older_than": true, "newer_than": true, "larger": true, "smaller": true,
}

// next scans the next token. A scan error is kept in p.err and reported
// by the caller through p.tok's position.
func (p *parser) next() {
	for p.i < len(p.s) {
		r, size := utf8.DecodeRuneInString(p.s[p.i:])
		if !isSpace(r) {
			break
		}
		p.i += size
	}
	start := p.i
	if p.i >= len(p.s) {
		p.tok = qtok{kind: tkEOF, pos: start}
		return
	}
	switch c := p.s[p.i]; c {
	case '(':
		p.i++
		p.tok = qtok{kind: tkLParen, pos: start}
		return
	case ')':
		p.i++
		p.tok = qtok{kind: tkRParen, pos: start}
		return
	case '-':
		if p.i+1 < len(p.s) {
			r, _ := utf8.DecodeRuneInString(p.s[p.i+1:])
			if !isSpace(r) {
				p.i++
				p.tok = qtok{kind: tkMinus, pos: start}
				return
			}
		}
	case '"':
		end := strings.IndexByte(p.s[p.i+1:], '"')
		if end < 0 {
			p.err = p.errorf(start, "unterminated quoted phrase")
			p.i = len(p.s)
			p.tok = qtok{kind: tkPhrase, pos: start}
			return
		}
		p.tok = qtok{kind: tkPhrase, pos: start, text: p.s[p.i+1 : p.i+1+end]}
		p.i += end + 2
		return
	}
	j := p.i
	for j < len(p.s) {
		r, size := utf8.DecodeRuneInString(p.s[j:])
		if isSpace(r) || r == '(' || r == ')' || r == '"' {
			break
		}
		if r == ':' {
			if name := strings.ToLower(p.s[p.i:j]); operators[name] {
				p.tok = qtok{kind: tkOp, pos: start, text: name}
				p.i = j + 1
				return
			}
		}
		j += size
	}
	w := p.s[p.i:j]
	p.i = j
	switch w {
	case "OR", "|":
		p.tok = qtok{kind: tkOr, pos: start, text: w}
	case "AND":
		p.tok = qtok{kind: tkAnd, pos: start, text: w}
	default:
		p.tok = qtok{kind: tkWord, pos: start, text: w}
	}
}

// parseOr parses a sequence of OR-groups joined by implicit AND, up to ")"
// or the end. depth is the number of And, Or and Not nodes above the
// result; its AND and OR nodes add up to two.
func (p *parser) parseOr(depth int, field Field) (Query, error) {
	if depth+2 > MaxQueryDepth {
		return Query{}, p.errorf(p.tok.pos, "nested deeper than %d", MaxQueryDepth)
	}
	start := p.tok.pos
	var and []Query
	for {
		if p.err != nil {
			return Query{}, p.err
		}
		switch p.tok.kind {
		case tkEOF, tkRParen:
			switch len(and) {
			case 0:
				if err := p.leaf(start, 1); err != nil {
					return Query{}, err
				}
				return All(), nil
			case 1:
				return and[0], nil
			}
			return And(and...), nil
		case tkOr:
			return Query{}, p.errorf(p.tok.pos, "OR needs a term before it")
		case tkAnd:
			if len(and) == 0 {
				return Query{}, p.errorf(p.tok.pos, "AND needs a term before it")
			}
			p.next()
			if p.tok.kind == tkEOF || p.tok.kind == tkRParen || p.tok.kind == tkOr || p.tok.kind == tkAnd {
				return Query{}, p.errorf(p.tok.pos, "AND needs a term after it")
			}
			continue
		}
		q, err := p.parseUnary(depth+2, field)
		if err != nil {
			return Query{}, err
		}
		ors := []Query{q}
		for p.tok.kind == tkOr {
			p.next()
			if p.err != nil {
				return Query{}, p.err
			}
			if p.tok.kind == tkEOF || p.tok.kind == tkRParen || p.tok.kind == tkOr || p.tok.kind == tkAnd {
				return Query{}, p.errorf(p.tok.pos, "OR needs a term after it")
			}
			q, err := p.parseUnary(depth+2, field)
			if err != nil {
				return Query{}, err
			}
			ors = append(ors, q)
		}
		if len(ors) == 1 {
			and = append(and, ors[0])
		} else {
			and = append(and, Or(ors...))
		}
	}
}

// parseUnary parses a term, a negation or a group; depth is the number of
// And, Or and Not nodes above the result.
func (p *parser) parseUnary(depth int, field Field) (Query, error) {
	if p.err != nil {
		return Query{}, p.err
	}
	switch p.tok.kind {
	case tkMinus:
		pos := p.tok.pos
		if depth >= MaxQueryDepth {
			return Query{}, p.errorf(pos, "nested deeper than %d", MaxQueryDepth)
		}
		p.next()
		if p.tok.kind == tkEOF || p.tok.kind == tkRParen || p.tok.kind == tkOr || p.tok.kind == tkAnd {
			return Query{}, p.errorf(pos, "nothing to negate after -")
		}
		q, err := p.parseUnary(depth+1, field)
		if err != nil {
			return Query{}, err
		}
		return Not(q), nil
	case tkLParen:
		pos := p.tok.pos
		p.next()
		q, err := p.parseOr(depth, field)
		if err != nil {
			return Query{}, err
		}
		if p.tok.kind != tkRParen {
			return Query{}, p.errorf(pos, "unclosed parenthesis")
		}
		p.next()
		return q, nil
	case tkRParen:
		return Query{}, p.errorf(p.tok.pos, `unexpected ")"`)
	case tkWord:
		t := p.tok
		p.next()
		return p.text(wordQuery(field, t.text), t.pos)
	case tkPhrase:
		t := p.tok
		p.next()
		return p.text(Text(field, t.text), t.pos)
	case tkOp:
		return p.parseOp(depth, field)
	}
	return Query{}, p.errorf(p.tok.pos, "unexpected %s", p.tok.describe())
}

// wordQuery makes the query of a bare word: a trailing * makes a prefix.
func wordQuery(field Field, w string) Query {
	if len(w) > 1 && strings.HasSuffix(w, "*") {
		return Prefix(field, strings.TrimRight(w, "*"))
	}
	return Text(field, w)
}

var opFields = map[string]Field{
	"from": FieldFrom, "to": FieldTo, "cc": FieldCc, "bcc": FieldBcc,
	"subject": FieldSubject, "filename": FieldFilename,
}

func (p *parser) parseOp(depth int, _ Field) (Query, error) {
	op := p.tok
	// The value follows the colon directly.
	if p.i >= len(p.s) {
		return Query{}, p.errorf(op.pos, "%s: needs a value", op.text)
	}
	if r, _ := utf8.DecodeRuneInString(p.s[p.i:]); isSpace(r) {
		return Query{}, p.errorf(p.i, "%s: needs a value", op.text)
	}
	p.next()
	if p.err != nil {
		return Query{}, p.err
	}
	if f, ok := opFields[op.text]; ok {
		switch p.tok.kind {
		case tkWord:
			t := p.tok
			p.next()
			return p.text(wordQuery(f, t.text), t.pos)
		case tkPhrase:
			t := p.tok
			p.next()
			return p.text(Text(f, t.text), t.pos)
		case tkLParen:
			return p.parseUnary(depth, f)
		}
		return Query{}, p.errorf(p.tok.pos, "%s: needs a word, phrase or group", op.text)
	}
	if p.tok.kind != tkWord && p.tok.kind != tkPhrase {
		return Query{}, p.errorf(p.tok.pos, "%s: needs a value", op.text)
	}
	v := p.tok
	p.next()
	if err := p.leaf(op.pos, 1); err != nil {
		return Query{}, err
	}
	val := strings.ToLower(v.text)
	switch op.text {
	case "has":
		if val == "attachment" {
			return HasFlag(FlagAttachment), nil
		}
		return Query{}, p.errorf(v.pos, "has: knows attachment, not %q", v.text)
	case "is":
		switch val {
		case "unread":
			return Not(HasFlag(FlagSeen)), nil
		case "read":
			return HasFlag(FlagSeen), nil
		case "starred", "flagged":
			return HasFlag(FlagFlagged), nil
		case "answered", "replied":
			return HasFlag(FlagAnswered), nil
		case "draft":
			return HasFlag(FlagDraft), nil
		}
		return Query{}, p.errorf(v.pos, "is: knows unread, read, starred, answered and draft, not %q", v.text)
	case "in":
		if val == "anywhere" {
			return All(), nil
		}
		return InFolder(v.text), nil
	case "label":
		return HasKeyword(v.text), nil
	case "before", "after":
		t, err := parseDate(v.text)
		if err != nil {
			return Query{}, p.errorf(v.pos, "%s: %v", op.text, err)
		}
		if op.text == "before" {
			return Between(RangeDate, math.MinInt64, t), nil
		}
		return Between(RangeDate, t, math.MaxInt64), nil
	case "older_than", "newer_than":
		d, err := parseAge(val)
		if err != nil {
			return Query{}, p.errorf(v.pos, "%s: %v", op.text, err)
		}
		if op.text == "older_than" {
			return Query{Kind: KindOlder, Age: d}, nil
		}
		return Query{Kind: KindNewer, Age: d}, nil
	case "larger", "smaller":
		n, err := parseSize(val)
		if err != nil {
			return Query{}, p.errorf(v.pos, "%s: %v", op.text, err)
		}
		if op.text == "larger" {
			if n == math.MaxInt64 {
				return Or(), nil
			}
			return Between(RangeSize, n+1, math.MaxInt64), nil
		}
		return Between(RangeSize, math.MinInt64, n), nil
	}
	return Query{}, p.errorf(op.pos, "unknown operator %s:", op.text)
}

// parseDate parses a day (UTC) or Unix seconds.
func parseDate(s string) (int64, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad date %q", s)
		}
		return n, nil
	}
	for _, layout := range []string{"2006/1/2", "2006-1-2", "2006/01/02", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), nil
		}
	}
	return 0, fmt.Errorf("bad date %q (want YYYY/MM/DD)", s)
}

// parseAge parses a Gmail age: a number and h, d, w, m (30 days) or y (365
// days).
func parseAge(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("bad age %q (want e.g. 7d, 2m, 1y)", s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad age %q (want e.g. 7d, 2m, 1y)", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	case 'm':
		unit = 30 * 24 * time.Hour
	case 'y':
		unit = 365 * 24 * time.Hour
	default:
		return 0, fmt.Errorf("bad age unit in %q (want h, d, w, m or y)", s)
	}
	if n > int64(math.MaxInt64/unit) {
		return 0, fmt.Errorf("age %q too large", s)
	}
	return time.Duration(n) * unit, nil
}

// parseSize parses a size: bytes, or a number with K, M or G (binary
// multiples), optionally followed by B.
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(s, "b")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult, t = 1<<10, t[:len(t)-1]
		case 'm':
			mult, t = 1<<20, t[:len(t)-1]
		case 'g':
			mult, t = 1<<30, t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 5M, 100K or bytes)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}
