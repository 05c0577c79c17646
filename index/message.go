package index

import (
	"bufio"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decoders for non-UTF-8 charsets
	"github.com/emersion/go-message/mail"

	"github.com/mailbricks/mailbricks"
)

// IndexedHeaders are the headers, besides the address fields and Subject,
// that [DocumentFromMessage] copies into [Document.Headers].
var IndexedHeaders = []string{"Message-Id", "In-Reply-To", "References", "Reply-To", "Sender", "List-Id", "Return-Path", "X-Mailer"}

// maxPartBytes bounds the decoded text read from one part, so a huge
// attachment mislabelled as text cannot blow up the index.
const maxPartBytes = 4 << 20

// maxDepth bounds MIME nesting.
const maxDepth = 16

// DocumentFromMessage parses a raw RFC 5322 message and returns its
// [Document] with the given ID and values.
//
// It decodes headers (RFC 2047) and text parts (transfer encodings and
// charsets, through go-message), reduces HTML to text, prefers text/plain
// in a multipart/alternative, collects attachment file names and sets
// [FlagAttachment] when there is an attachment. If v.Size is 0 it becomes
// the message's length; if v.SentDate is zero it becomes the Date header's
// time. A part that cannot be decoded (an unknown charset, a broken
// transfer encoding) is indexed as far as it could be read. If the header
// itself cannot be parsed, the error wraps [ErrMalformed].
func DocumentFromMessage(id mailbricks.MessageID, r io.Reader, v Values) (*Document, error) {
	cr := &countingReader{r: r}
	br := bufio.NewReader(cr)
	e, err := message.Read(br)
	if e == nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	d := &Document{ID: id, Values: v}
	h := mail.Header{Header: e.Header}
	d.From = addresses(h, "From")
	d.To = addresses(h, "To")
	d.Cc = addresses(h, "Cc")
	d.Bcc = addresses(h, "Bcc")
	if s, err := h.Subject(); err == nil {
		d.Subject = s
	} else {
		d.Subject = h.Get("Subject")
	}
	for _, name := range IndexedHeaders {
		for _, val := range h.Values(name) {
			if dec, err := (&mime.WordDecoder{CharsetReader: charsetReader}).DecodeHeader(val); err == nil {
				val = dec
			}
			d.Headers = append(d.Headers, Header{Name: name, Value: val})
		}
	}
	if d.SentDate.IsZero() {
		if t, err := h.Date(); err == nil {
			d.SentDate = t
		}
	}
	var p parts
	p.walk(e, 0)
	d.Body = strings.Join(p.texts, "\n\n")
	d.Filenames = p.files
	if p.attachment {
		d.Flags |= FlagAttachment
	}
	// Drain what the walk left so Size counts the whole message.
	_, _ = io.Copy(io.Discard, br)
	if d.Size == 0 {
		d.Size = cr.n
	}
	return d, nil
}

func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	return message.CharsetReader(charset, input)
}

func addresses(h mail.Header, key string) []Address {
	list, err := h.AddressList(key)
	if err != nil {
		// An unparsable list is still searchable as text.
		if raw := h.Get(key); raw != "" {
			return []Address{{Name: raw}}
		}
		return nil
	}
	out := make([]Address, 0, len(list))
	for _, a := range list {
		out = append(out, Address{Name: a.Name, Addr: a.Address})
	}
	return out
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// parts collects the text and attachments of a MIME tree.
type parts struct {
	texts      []string
	files      []string
	attachment bool
}

func (p *parts) walk(e *message.Entity, depth int) {
	mt, params, _ := e.Header.ContentType()
	if mt == "" {
		mt = "text/plain"
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxDepth {
			return
		}
		if mt == "multipart/alternative" {
			p.alternative(mr, depth)
			return
		}
		for {
			child, err := mr.NextPart()
			if err != nil {
				return
			}
			p.walk(child, depth+1)
		}
	}
	disp, dparams, _ := e.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if name != "" {
		if dec, err := (&mime.WordDecoder{CharsetReader: charsetReader}).DecodeHeader(name); err == nil {
			name = dec
		}
		p.files = append(p.files, name)
	}
	if disp == "attachment" || name != "" {
		p.attachment = true
		return
	}
	switch {
	case mt == "text/html":
		if s := readText(e.Body); s != "" {
			p.texts = append(p.texts, HTMLToText(s))
		}
	case strings.HasPrefix(mt, "text/"):
		if s := readText(e.Body); s != "" {
			p.texts = append(p.texts, s)
		}
	case mt == "message/rfc822":
		if depth >= maxDepth {
			return
		}
		if inner, err := message.Read(e.Body); inner != nil {
			_ = err
			p.walk(inner, depth+1)
		}
	default:
		if depth > 0 {
			p.attachment = true
		}
	}
}

// alternative keeps the text/plain version of a multipart/alternative,
// or the HTML one reduced to text, or else every part.
func (p *parts) alternative(mr message.MultipartReader, depth int) {
	var plain, htm string
	var others []*parts
	for {
		child, err := mr.NextPart()
		if err != nil {
			break
		}
		mt, _, _ := child.Header.ContentType()
		switch mt {
		case "text/plain", "":
			plain += readText(child.Body)
		case "text/html":
			htm += readText(child.Body)
		default:
			var q parts
			q.walk(child, depth+1)
			others = append(others, &q)
		}
	}
	switch {
	case plain != "":
		p.texts = append(p.texts, plain)
	case htm != "":
		p.texts = append(p.texts, HTMLToText(htm))
	default:
		for _, q := range others {
			p.texts = append(p.texts, q.texts...)
		}
	}
	for _, q := range others {
		p.files = append(p.files, q.files...)
		p.attachment = p.attachment || q.attachment
	}
}

// readText reads a decoded part body, keeping what could be read when the
// decoding fails midway.
func readText(r io.Reader) string {
	var b strings.Builder
	_, err := io.Copy(&b, io.LimitReader(r, maxPartBytes))
	if err != nil && !errors.Is(err, io.EOF) && b.Len() == 0 {
		return ""
	}
	return b.String()
}

// HTMLToText reduces an HTML document to its text: tags are dropped (block
// tags become line breaks), script and style contents and comments are
// skipped, and character references are decoded. It is lenient: any input
// gives some text.
func HTMLToText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	text := func(t string) {
		if strings.IndexByte(t, '&') >= 0 {
			t = html.UnescapeString(t)
		}
		b.WriteString(t)
	}
	for i := 0; i < len(s); {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			text(s[i:])
			break
		}
		text(s[i : i+lt])
		i += lt
		if strings.HasPrefix(s[i:], "<!--") {
			end := strings.Index(s[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		gt := strings.IndexByte(s[i:], '>')
		if gt < 0 {
			text(s[i:])
			break
		}
		tag := strings.ToLower(tagName(s[i+1 : i+gt]))
		i += gt + 1
		switch tag {
		case "script", "style":
			end := strings.Index(strings.ToLower(s[i:]), "</"+tag)
			if end < 0 {
				i = len(s)
				continue
			}
			i += end
		case "br", "p", "/p", "div", "/div", "tr", "/tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "/h1", "/h2", "/h3", "/h4", "/h5", "/h6", "table", "/table", "blockquote", "/blockquote":
			b.WriteByte('\n')
		case "td", "th":
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// tagName returns the element name of the inside of a tag ("/p", "br").
func tagName(s string) string {
	s = strings.TrimSpace(s)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '/', '>':
			if i == 0 && s[i] == '/' {
				continue
			}
			return s[:i]
		}
	}
	return s
}
