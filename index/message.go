package index

import (
	"fmt"
	"io"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// IndexedHeaders are the headers, besides the address fields and Subject,
// that [DocumentFromMessage] copies into [Document.Headers].
var IndexedHeaders = []string{"Message-Id", "In-Reply-To", "References", "Reply-To", "Sender", "List-Id", "Return-Path", "X-Mailer"}

// Bounds of [DocumentFromMessage].
const (
	// MaxMessageBytes bounds the part of a message DocumentFromMessage
	// parses; the rest is only counted for [Values.Size].
	MaxMessageBytes = 64 << 20
	// MaxHeaders bounds the [Document.Headers] DocumentFromMessage keeps.
	MaxHeaders = 100
)

// DocumentFromMessage reads a raw RFC 5322 message from r and returns its
// [Document] with the given ID and values.
//
// It parses the message once with the module's message parser, the one
// mailbox uses too, so both decode a message the same way: header fields
// are decoded (RFC 2047 encoded words; raw UTF-8 kept; other raw 8-bit
// text decoded with the declared charset, else as windows-1252), control
// characters become spaces, and every subject, name, address, header value
// and file name is valid UTF-8 of at most 4 KiB; text parts are decoded
// (transfer encodings, charsets), HTML is reduced to text ([HTMLToText]),
// a multipart/alternative keeps its text/plain version, attachment file
// names are collected and [FlagAttachment] is set when there is an
// attachment. A leading mbox "From " line is skipped. If v.Size is 0 it
// becomes the message's length; if v.SentDate is zero it becomes the Date
// header's time.
//
// Malformed input is indexed as far as it can be read: DocumentFromMessage
// accepts every message mailbox stores. It reads at most [MaxMessageBytes]
// of r for parsing, at most 1000 addresses per field, [MaxHeaders] headers,
// 256 file names, 4 MiB of text per part and 16 MiB in all. It fails only
// when r is nil (an error matching [ErrInvalidDocument]) or reading r
// fails.
func DocumentFromMessage(id mailbricks.MessageID, r io.Reader, v Values) (*Document, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: DocumentFromMessage with a nil reader", ErrInvalidDocument)
	}
	raw, err := io.ReadAll(io.LimitReader(r, MaxMessageBytes))
	if err != nil {
		return nil, fmt.Errorf("index: reading message: %w", err)
	}
	size := int64(len(raw))
	if size == MaxMessageBytes {
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return nil, fmt.Errorf("index: reading message: %w", err)
		}
		size += n
	}
	p := mailparse.Parse(raw, nil)
	if v.Size == 0 {
		v.Size = size
	}
	return documentFromParsed(id, p, v), nil
}

// documentFromParsed builds a Document from a parsed message. mailbox
// builds its documents from its own parse the same way (its test checks
// that the two agree).
func documentFromParsed(id mailbricks.MessageID, p *mailparse.Message, v Values) *Document {
	d := &Document{ID: id, Values: v}
	d.From = addresses(p.From)
	d.To = addresses(p.To)
	d.Cc = addresses(p.Cc)
	d.Bcc = addresses(p.Bcc)
	d.Subject = p.Subject
	for _, name := range IndexedHeaders {
		for _, val := range p.HeaderValues(name) {
			if len(d.Headers) < MaxHeaders {
				d.Headers = append(d.Headers, Header{Name: name, Value: val})
			}
		}
	}
	if d.SentDate.IsZero() {
		d.SentDate = p.Date
	}
	d.Body = p.Body()
	d.Filenames = p.Filenames
	if p.HasAttachment {
		d.Flags |= FlagAttachment
	}
	return d
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

// HTMLToText reduces an HTML document to its text with the tokenizer of
// golang.org/x/net/html: tags and comments are dropped (block elements
// become line breaks), the contents of script, style, template and head
// are skipped, and character references are decoded. It is lenient: any
// input gives some text. It is the function mailbox's snippets use too.
func HTMLToText(s string) string { return mailparse.HTMLToText(s) }
