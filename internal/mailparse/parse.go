// Package mailparse is the one message parser of the module: mailbox's
// metadata and index's documents both come from one [Parse] of a message
// (RFC 5322, MIME per RFC 2045-2049, encoded words per RFC 2047,
// parameters per RFC 2231, UTF-8 headers per RFC 6532), under one header
// decoding policy ([DecodeHeader]) and one charset set-up
// ([CharsetReader]). It is internal: its API may change with its users.
//
// Parse never fails and never panics: what it cannot parse is recorded in
// [Message.Notes] and the fields found so far are kept. Every list and
// string it returns is bounded (see [Limits] and the Max constants).
package mailparse

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// The defaults of [Limits]; mailbox.Options documents and uses the same.
const (
	DefaultMaxHeaderBytes = 256 << 10
	DefaultMaxParts       = 1000
	DefaultMaxDepth       = 32
)

// Limits bounds the work of [Parse]. Zero fields mean the default.
type Limits struct {
	// MaxHeaderBytes bounds the header of the message and of each part;
	// reading a header stops there. The default is 256 KiB.
	MaxHeaderBytes int64
	// MaxParts bounds the number of MIME entities visited (multiparts
	// included). The default is 1000.
	MaxParts int
	// MaxDepth bounds the nesting of multiparts and message/rfc822 parts.
	// The default is 32.
	MaxDepth int
	// MaxPartTextBytes bounds the decoded text read from one part. The
	// default is 4 MiB.
	MaxPartTextBytes int64
	// MaxTextBytes bounds the text of all parts together. The default is
	// 16 MiB.
	MaxTextBytes int64
}

func (l *Limits) withDefaults() Limits {
	var r Limits
	if l != nil {
		r = *l
	}
	if r.MaxHeaderBytes <= 0 {
		r.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if r.MaxParts <= 0 {
		r.MaxParts = DefaultMaxParts
	}
	if r.MaxDepth <= 0 {
		r.MaxDepth = DefaultMaxDepth
	}
	if r.MaxPartTextBytes <= 0 {
		r.MaxPartTextBytes = 4 << 20
	}
	if r.MaxTextBytes <= 0 {
		r.MaxTextBytes = 16 << 20
	}
	return r
}

// Bounds on the lists of a [Message].
const (
	// MaxAddresses bounds the addresses kept from one address field.
	MaxAddresses = 1000
	// MaxMsgIDs bounds the message IDs kept from one header field (the
	// last ones, the nearest references).
	MaxMsgIDs = 64
	// MaxHeaderValues bounds the values [Message.HeaderValues] returns.
	MaxHeaderValues = 100
	// MaxFilenames bounds [Message.Filenames].
	MaxFilenames = 256
	// MaxNotes bounds [Message.Notes].
	MaxNotes = 4
)

// Address is a mailbox address with its decoded display name.
type Address struct {
	// Name is the display name; it may be empty.
	Name string
	// Addr is the address, local@domain. When a field cannot be parsed
	// at all, its decoded text is kept as one Address with only a Name.
	Addr string
}

// Field is a raw header field.
type Field struct {
	// Name is the field name as written.
	Name string
	// Value is the value, unfolded and trimmed but not decoded.
	Value string
}

// TextKind says where a [Text] came from.
type TextKind uint8

// The text kinds.
const (
	// KindPlain is a text/plain part (or a part with no Content-Type).
	KindPlain TextKind = iota
	// KindHTML is a text/html part, reduced to text.
	KindHTML
	// KindOther is any other text/* part.
	KindOther
)

// Text is the decoded text of one part.
type Text struct {
	// Kind is the part's kind of text.
	Kind TextKind
	// Text is the text: valid UTF-8 without NUL bytes, HTML reduced to
	// text ([HTMLToText]).
	Text string
}

// Message is the result of [Parse]. It is not safe for concurrent
// modification; its methods only read it.
type Message struct {
	// Header holds the fields of the top-level header, in order, undecoded
	// (at most Limits.MaxHeaderBytes of them).
	Header []Field
	// Charset is the charset the top-level Content-Type declares, the
	// first guess for raw 8-bit header text.
	Charset string
	// Subject is the decoded Subject ([DecodeHeader]).
	Subject string
	// Date is the Date header's time; zero if it is missing or bad.
	Date time.Time
	// From, Sender, ReplyTo, To, Cc and Bcc are the decoded addresses of
	// those fields, at most [MaxAddresses] each.
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	// MessageID is the first Message-ID, without angle brackets.
	MessageID string
	// InReplyTo and References are message IDs without angle brackets,
	// at most [MaxMsgIDs] each.
	InReplyTo, References []string
	// Texts are the text parts in order; of a multipart/alternative only
	// the text/plain version is kept, or else the HTML one, or else all.
	Texts []Text
	// Filenames are the decoded file names of the parts that have one,
	// at most [MaxFilenames].
	Filenames []string
	// HasAttachment reports a part that is an attachment: one with
	// Content-Disposition attachment, or a file name and a type other than
	// text/plain and text/html, or a non-text type other than message/*
	// and the signature types.
	HasAttachment bool
	// Notes say what could not be parsed, at most [MaxNotes].
	Notes []string
}

// ParseError returns the notes joined by "; ", or "" if there are none.
func (m *Message) ParseError() string { return strings.Join(m.Notes, "; ") }

// Get returns the raw value of the first field named name (any case).
func (m *Message) Get(name string) string { return get(m.Header, name) }

// HeaderValues returns the decoded values ([DecodeHeader]) of the fields
// named name, in order, at most [MaxHeaderValues].
func (m *Message) HeaderValues(name string) []string {
	var out []string
	for _, f := range m.Header {
		if strings.EqualFold(f.Name, name) && len(out) < MaxHeaderValues {
			out = append(out, DecodeHeader(f.Value, m.Charset))
		}
	}
	return out
}

// Body returns the texts joined by blank lines.
func (m *Message) Body() string {
	var b strings.Builder
	for i, t := range m.Texts {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(t.Text)
	}
	return b.String()
}

// Snippet returns the start of the first text/plain text that has any,
// else of the first HTML one, whitespace folded, at most n characters.
func (m *Message) Snippet(n int) string {
	for _, k := range []TextKind{KindPlain, KindHTML} {
		for _, t := range m.Texts {
			if t.Kind == k {
				if s := Snippet(t.Text, n); s != "" {
					return s
				}
			}
		}
	}
	return ""
}

var errLimit = errors.New("limit reached")

type parser struct {
	lim   Limits
	m     *Message
	parts int
	text  int64
}

func (p *parser) note(format string, args ...any) {
	if len(p.m.Notes) < MaxNotes {
		p.m.Notes = append(p.m.Notes, clean(fmt.Sprintf(format, args...), 512))
	}
}

// Parse parses raw, a message as stored. A first line that is an mbox
// envelope line ("From sender date") is skipped, so a message exported
// from an mbox file parses like the message itself. Parse keeps no
// reference to raw.
func Parse(raw []byte, lim *Limits) *Message {
	p := &parser{lim: lim.withDefaults(), m: &Message{}}
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		} else {
			raw = nil
		}
	}
	h, body, ok := p.readHeader(raw)
	p.m.Header = h
	p.fillHeader()
	if ok {
		p.entity(h, body, 0, "")
	}
	return p.m
}

// readHeader splits raw into its header fields and body, leniently: a line
// that is neither a field nor a continuation is skipped (and noted), and a
// header without the blank line that ends it is all header. At most
// MaxHeaderBytes are read; ok is false when the header is longer (the
// body cannot be told apart), and the field cut there keeps what was read.
func (p *parser) readHeader(raw []byte) (fields []Field, body []byte, ok bool) {
	max := p.lim.MaxHeaderBytes
	rest := raw
	cut := false
	if int64(len(rest)) > max {
		rest, cut = rest[:max], true
	}
	var name string
	var val []byte
	consumed := 0
	flush := func() {
		if name != "" {
			fields = append(fields, Field{Name: name, Value: string(bytes.TrimSpace(val))})
		}
		name, val = "", nil
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		} else if cut {
			break
		}
		rest = rest[len(line):]
		consumed += len(line)
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			flush()
			return fields, raw[consumed:], true
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			if name != "" {
				val = append(val, ' ')
				val = append(val, trimmed...)
			}
			continue
		}
		flush()
		c := bytes.IndexByte(trimmed, ':')
		if c <= 0 || !validKey(bytes.TrimRight(trimmed[:c], " \t")) {
			p.note("header: malformed line %q", truncate(string(trimmed), 40))
			continue
		}
		name, val = string(bytes.TrimRight(trimmed[:c], " \t")), append([]byte(nil), trimmed[c+1:]...)
	}
	if cut {
		// A partial line at the cut still counts: keep what it holds.
		if len(rest) > 0 && name != "" && (rest[0] == ' ' || rest[0] == '\t') {
			val = append(val, ' ')
			val = append(val, bytes.TrimRight(rest, "\r\n")...)
		} else if len(rest) > 0 {
			flush()
			if c := bytes.IndexByte(rest, ':'); c > 0 && validKey(rest[:c]) {
				name, val = string(rest[:c]), append([]byte(nil), rest[c+1:]...)
			}
		}
		flush()
		p.note("header longer than %d bytes: %v", max, errLimit)
		return fields, nil, false
	}
	flush()
	return fields, nil, true
}

func validKey(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func get(h []Field, name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// mediaType parses a Content-Type or Content-Disposition value leniently:
// a value mime rejects still yields its lowercased first token, and the
// parameters mime could read.
func mediaType(v string) (string, map[string]string) {
	if v == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && mt == "" {
		mt, _, _ = strings.Cut(v, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt, params
}

func (p *parser) fillHeader() {
	m := p.m
	_, ctParams := mediaType(get(m.Header, "Content-Type"))
	m.Charset = ctParams["charset"]
	m.Subject = DecodeHeader(get(m.Header, "Subject"), m.Charset)
	if d := preclean(get(m.Header, "Date"), ""); strings.TrimSpace(d) != "" {
		if t, err := mail.ParseDate(strings.TrimSpace(d)); err == nil {
			m.Date = t
		} else {
			p.note("date: %v", err)
		}
	}
	m.From = p.addrs("From")
	m.Sender = p.addrs("Sender")
	m.ReplyTo = p.addrs("Reply-To")
	m.To = p.addrs("To")
	m.Cc = p.addrs("Cc")
	m.Bcc = p.addrs("Bcc")
	if ids := msgIDs(get(m.Header, "Message-Id")); len(ids) > 0 {
		m.MessageID = ids[0]
	}
	m.InReplyTo = msgIDs(get(m.Header, "In-Reply-To"))
	m.References = msgIDs(get(m.Header, "References"))
}

// addrs parses an address field (see [AddressList]) and notes an error.
func (p *parser) addrs(key string) []Address {
	raw := get(p.m.Header, key)
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	l, err := AddressList(raw, p.m.Charset)
	if err != nil {
		p.note("%s: %v", key, err)
	}
	return l
}

// AddressList parses the raw value of an address field (From, To, …)
// under the header decoding policy, with charset as the first guess for
// raw 8-bit text. An address that cannot be parsed is skipped; when none
// can be, the field's decoded text is returned as one Address with only a
// Name, so it stays visible and searchable, with the parse error. It
// returns at most [MaxAddresses] addresses.
func AddressList(raw, charset string) ([]Address, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	v := preclean(raw, charset)
	ap := mail.AddressParser{WordDecoder: wordDecoder}
	list, err := ap.ParseList(v)
	if err != nil {
		list = nil
		for part := range strings.SplitSeq(v, ",") {
			if len(list) >= MaxAddresses {
				break
			}
			if a, err := ap.Parse(part); err == nil {
				list = append(list, a)
			}
		}
	}
	if len(list) == 0 {
		if s := DecodeHeader(raw, charset); s != "" {
			return []Address{{Name: s}}, err
		}
		return nil, err
	}
	out := make([]Address, 0, min(len(list), MaxAddresses))
	for _, a := range list {
		if len(out) >= MaxAddresses {
			break
		}
		out = append(out, Address{Name: clean(a.Name, MaxValueBytes), Addr: clean(a.Address, MaxValueBytes)})
	}
	return out, nil
}

// msgIDs returns the message IDs in v: the text inside each <…>, or, if
// there is none, each whitespace-separated word. It keeps at most the last
// MaxMsgIDs (the nearest references) and drops IDs over MaxValueBytes.
func msgIDs(v string) []string {
	v = preclean(v, "")
	var ids []string
	add := func(id string) {
		if id = strings.TrimSpace(id); id != "" && len(id) <= MaxValueBytes {
			ids = append(ids, strings.Join(strings.Fields(id), ""))
		}
	}
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		add(v[i+1 : i+j])
		v = v[i+j+1:]
	}
	if ids == nil {
		for _, f := range strings.Fields(v) {
			add(f)
		}
	}
	if len(ids) > MaxMsgIDs {
		ids = ids[len(ids)-MaxMsgIDs:]
	}
	return ids
}

// entity handles one MIME entity with header h and raw body.
func (p *parser) entity(h []Field, body []byte, depth int, parentType string) {
	p.parts++
	if p.parts > p.lim.MaxParts {
		if p.parts == p.lim.MaxParts+1 {
			p.note("more than %d parts: %v", p.lim.MaxParts, errLimit)
		}
		return
	}
	mt, params := mediaType(get(h, "Content-Type"))
	if mt == "" {
		mt = "text/plain"
		if parentType == "multipart/digest" {
			mt = "message/rfc822"
		}
	}
	disp, dparams := mediaType(get(h, "Content-Disposition"))
	charset := params["charset"]
	if strings.HasPrefix(mt, "multipart/") && disp != "attachment" {
		if depth >= p.lim.MaxDepth {
			p.note("multipart nested deeper than %d: %v", p.lim.MaxDepth, errLimit)
			return
		}
		p.multipart(mt, params["boundary"], body, depth)
		return
	}
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	if filename != "" {
		if f := DecodeHeader(filename, charset); f != "" && len(p.m.Filenames) < MaxFilenames {
			p.m.Filenames = append(p.m.Filenames, f)
		}
	}
	isText := mt == "text/plain" || mt == "text/html"
	if disp == "attachment" || (filename != "" && !isText) {
		p.m.HasAttachment = true
		return
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		p.textPart(mt, charset, get(h, "Content-Transfer-Encoding"), body)
	case mt == "message/rfc822" || mt == "message/global":
		if depth >= p.lim.MaxDepth {
			p.note("message nested deeper than %d: %v", p.lim.MaxDepth, errLimit)
			return
		}
		inner, _ := p.decodeTransfer(get(h, "Content-Transfer-Encoding"), body, int64(len(body)))
		ih, ibody, ok := p.readHeader(inner)
		if ok {
			p.entity(ih, ibody, depth+1, "")
		}
	case strings.HasPrefix(mt, "message/"), mt == "application/pgp-signature", mt == "application/pkcs7-signature":
	default:
		p.m.HasAttachment = true
	}
}

// multipart splits body at its boundary (RFC 2046 section 5.1.1) and
// handles each part; a multipart/alternative keeps one version's text.
func (p *parser) multipart(mt, boundary string, body []byte, depth int) {
	if boundary == "" {
		p.note("multipart: no boundary parameter")
		return
	}
	parts, closed := splitParts(body, boundary, p.lim.MaxParts-p.parts+1)
	if !closed {
		p.note("multipart: missing final boundary %q", truncate(boundary, 40))
	}
	if mt != "multipart/alternative" {
		for _, part := range parts {
			p.part(part, depth, mt)
		}
		return
	}
	// Parse each version into its own text list, then keep one.
	before := p.m.Texts
	var versions [][]Text
	for _, part := range parts {
		p.m.Texts = nil
		p.part(part, depth, mt)
		versions = append(versions, p.m.Texts)
	}
	p.m.Texts = before
	var chosen []Text
	for _, k := range []TextKind{KindPlain, KindHTML} {
		for _, v := range versions {
			if len(v) == 1 && v[0].Kind == k && chosen == nil {
				chosen = v
			}
		}
	}
	if chosen == nil {
		for _, v := range versions {
			chosen = append(chosen, v...)
		}
	}
	p.m.Texts = append(p.m.Texts, chosen...)
}

func (p *parser) part(raw []byte, depth int, parentType string) {
	h, body, ok := p.readHeader(raw)
	if !ok {
		return
	}
	p.entity(h, body, depth+1, parentType)
}

// splitParts returns the parts of a multipart body: the bytes between
// delimiter lines ("--" boundary, at the start of a line, followed by
// optional "--" and white space), without the line break before each
// delimiter; the preamble and epilogue are dropped. closed reports whether
// the final delimiter was found; at most max parts are returned.
func splitParts(body []byte, boundary string, max int) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	start := -1 // start of the current part
	pos := 0
	for pos <= len(body) {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		pos = i + len(delim)
		if i > 0 && body[i-1] != '\n' {
			continue
		}
		after := body[pos:]
		final := bytes.HasPrefix(after, []byte("--"))
		if final {
			after = after[2:]
		}
		rest := bytes.TrimLeft(after, " \t")
		if len(rest) > 0 && rest[0] != '\r' && rest[0] != '\n' {
			continue // a longer boundary
		}
		if start >= 0 {
			end := i
			if end > start && body[end-1] == '\n' {
				end--
				if end > start && body[end-1] == '\r' {
					end--
				}
			}
			parts = append(parts, body[start:end])
			if len(parts) >= max {
				return parts, true
			}
		}
		if final {
			return parts, true
		}
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return parts, false
		}
		start = len(body) - len(rest) + nl + 1
		pos = start
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// textPart decodes a text part and adds it to the texts.
func (p *parser) textPart(mt, charset, cte string, body []byte) {
	budget := min(p.lim.MaxPartTextBytes, p.lim.MaxTextBytes-p.text)
	if budget <= 0 {
		p.note("text longer than %d bytes: %v", p.lim.MaxTextBytes, errLimit)
		return
	}
	b, truncated := p.decodeTransfer(cte, body, budget)
	if truncated {
		p.note("text part longer than %d bytes: %v", budget, errLimit)
	}
	s, known := ToUTF8(b, charset)
	if !known {
		p.note("charset %q unknown", truncate(charset, 40))
	}
	kind := KindOther
	switch mt {
	case "text/plain":
		kind = KindPlain
	case "text/html":
		kind = KindHTML
		s = HTMLToText(s)
	}
	s = cleanBody(s)
	p.text += int64(len(s))
	if strings.TrimSpace(s) != "" {
		p.m.Texts = append(p.m.Texts, Text{Kind: kind, Text: s})
	}
}

// decodeTransfer undoes a Content-Transfer-Encoding, returning at most max
// bytes; truncated reports that there were more. It is lenient: a broken
// encoding keeps what could be decoded, an unknown one the raw bytes.
func (p *parser) decodeTransfer(cte string, body []byte, max int64) (out []byte, truncated bool) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		b, err := io.ReadAll(io.LimitReader(quotedprintable.NewReader(bytes.NewReader(body)), max+1))
		if err != nil {
			p.note("quoted-printable: %v", err)
		}
		out = b
	case "base64":
		out = decodeBase64(body, max+1)
	case "", "7bit", "8bit", "binary":
		out = body
	default:
		p.note("unknown transfer encoding %q", truncate(cte, 40))
		out = body
	}
	if int64(len(out)) > max {
		return out[:max], true
	}
	return out, false
}

// TransferReader returns a reader that undoes the Content-Transfer-Encoding
// cte of r, as leniently as [Parse] does: base64 skips characters outside
// its alphabet, quoted-printable keeps a bare "=", and an unknown encoding
// (reported by known) reads r unchanged.
func TransferReader(cte string, r io.Reader) (dec io.Reader, known bool) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r), true
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, base64Filter{r}), true
	case "", "7bit", "8bit", "binary":
		return r, true
	}
	return r, false
}

// base64Filter drops every byte outside the base64 alphabet and padding.
type base64Filter struct{ r io.Reader }

func (f base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '+' || c == '/' || c == '=' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// decodeBase64 decodes base64 leniently: characters outside the alphabet
// (line breaks, spaces, garbage) are skipped, decoding stops at padding,
// and a final partial group decodes as far as it goes. At most max bytes
// are returned.
func decodeBase64(body []byte, max int64) []byte {
	in := make([]byte, 0, min(int64(len(body)), max/3*4+8))
	for _, c := range body {
		if c == '=' {
			break
		}
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '+' || c == '/' {
			in = append(in, c)
			if int64(len(in)) >= max/3*4+8 {
				break
			}
		}
	}
	if len(in)%4 == 1 {
		in = in[:len(in)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(in)))
	n, _ := base64.RawStdEncoding.Decode(out, in)
	return out[:min(int64(n), max)]
}
