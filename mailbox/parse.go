package mailbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	message "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/text/encoding/htmlindex"
)

// Metadata extraction.
//
// parseMetadata reads a message with go-message under three bounds: the
// header of the message and of every part may be at most MaxHeaderBytes,
// the walk visits at most MaxParts parts, and multiparts nest at most
// MaxDepth deep. It never fails: whatever it cannot parse (a bad header, a
// missing boundary, a bound reached, an unknown charset in the snippet's
// part) is recorded in ParseError and the fields extracted so far are kept.
// The bytes themselves are stored unchanged by the caller either way.
//
// Header fields are decoded with RFC 2047 and any charset golang.org/x/text
// knows; go-message's global CharsetReader is neither needed nor set.

type parseLimits struct {
	maxHeaderBytes int64
	maxParts       int
	maxDepth       int
	snippetLen     int
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader converts from any charset golang.org/x/text knows to UTF-8.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf-8", "utf8", "us-ascii", "ascii", "":
		return input, nil
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, err
	}
	return enc.NewDecoder().Reader(input), nil
}

var errLimit = errors.New("limit reached")

type walker struct {
	lim      parseLimits
	parts    int
	snippet  string
	haveText bool // snippet comes from text/plain
	attach   bool
	errs     []string
}

func (w *walker) note(format string, args ...any) {
	if len(w.errs) < 4 {
		w.errs = append(w.errs, fmt.Sprintf(format, args...))
	}
}

// parseMetadata fills m's header fields, HasAttachments, Snippet and
// ParseError from raw.
func parseMetadata(raw []byte, lim parseLimits, m *Message) {
	w := &walker{lim: lim}
	h, body, ok := readHeader(raw, lim.maxHeaderBytes, w)
	fillHeader(message.Header{Header: h}, m, w)
	if ok {
		ent, err := message.New(message.Header{Header: h}, bytes.NewReader(body))
		if ent == nil {
			w.note("body: %v", err)
		} else {
			if err != nil && !message.IsUnknownCharset(err) {
				w.note("body: %v", err)
			}
			if werr := w.walk(ent, err, 0); werr != nil {
				w.note("%v", werr)
			}
		}
	}
	m.HasAttachments = w.attach
	m.Snippet = w.snippet
	m.ParseError = strings.Join(w.errs, "; ")
}

// readHeader splits raw into its header fields and body, leniently: a line
// that is neither a field nor a continuation is skipped (and noted), and a
// header without the blank line that ends it is all header. ok is false
// when the body cannot be told apart (the header is longer than max).
func readHeader(raw []byte, max int64, w *walker) (h textproto.Header, body []byte, ok bool) {
	var key string
	var val []byte
	var fields [][]byte
	flush := func() {
		if key != "" {
			fields = append(fields, append([]byte(key+":"), val...))
		}
		key, val = "", nil
	}
	// textproto.Header keeps fields in reverse order: add the last first so
	// that Get returns the first occurrence, as go-message's reader does.
	defer func() {
		for i := len(fields) - 1; i >= 0; i-- {
			h.AddRaw(fields[i])
		}
	}()
	rest := raw
	for len(rest) > 0 {
		if int64(len(raw)-len(rest)) > max {
			flush()
			w.note("header longer than %d bytes: %v", max, errLimit)
			return h, nil, false
		}
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			flush()
			return h, rest, true
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			if key != "" {
				val = append(val, line...)
			}
			continue
		}
		flush()
		c := bytes.IndexByte(trimmed, ':')
		if c <= 0 || !validKey(trimmed[:c]) {
			w.note("header: malformed line %q", truncate(string(trimmed), 40))
			continue
		}
		key, val = string(trimmed[:c]), append([]byte(nil), line[c+1:]...)
	}
	flush()
	return h, nil, true
}

func validKey(k []byte) bool {
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

func (w *walker) walk(e *message.Entity, entErr error, depth int) error {
	w.parts++
	if w.parts > w.lim.maxParts {
		return fmt.Errorf("more than %d parts: %w", w.lim.maxParts, errLimit)
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth >= w.lim.maxDepth {
			return fmt.Errorf("multipart nested deeper than %d: %w", w.lim.maxDepth, errLimit)
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if p == nil {
				return fmt.Errorf("multipart: %v", err)
			}
			if err := w.walk(p, err, depth+1); err != nil {
				return err
			}
		}
	}
	w.leaf(e, entErr)
	return nil
}

func (w *walker) leaf(e *message.Entity, entErr error) {
	mediaType, params, _ := e.Header.ContentType()
	if mediaType == "" {
		mediaType = "text/plain"
	}
	disp, dparams, _ := e.Header.ContentDisposition()
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	isText := mediaType == "text/plain" || mediaType == "text/html"
	if strings.EqualFold(disp, "attachment") || (filename != "" && !isText) ||
		(!isText && !strings.HasPrefix(mediaType, "text/") && !strings.HasPrefix(mediaType, "message/") && mediaType != "application/pgp-signature" && mediaType != "application/pkcs7-signature") {
		w.attach = true
		return
	}
	if !isText || (w.snippet != "" && (w.haveText || mediaType != "text/plain")) {
		return
	}
	body := e.Body
	if entErr != nil && message.IsUnknownCharset(entErr) {
		r, err := charsetReader(params["charset"], body)
		if err != nil {
			w.note("snippet: charset %q: %v", params["charset"], err)
			r = body
		}
		body = r
	}
	buf := make([]byte, w.lim.snippetLen*8+64)
	n, err := io.ReadFull(body, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		w.note("snippet: %v", err)
	}
	text := string(buf[:n])
	if mediaType == "text/html" {
		text = stripTags(text)
	}
	if s := makeSnippet(text, w.lim.snippetLen); s != "" {
		w.snippet = s
		w.haveText = mediaType == "text/plain"
	}
}

// makeSnippet collapses whitespace and cuts s to at most n characters of
// valid UTF-8.
func makeSnippet(s string, n int) string {
	var b strings.Builder
	space := false
	count := 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if count >= n {
			break
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			count++
			space = false
			if count >= n {
				break
			}
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// stripTags drops HTML tags and the content of style and script elements,
// well enough for a snippet.
func stripTags(s string) string {
	var b strings.Builder
	lower := strings.ToLower(s)
	for i := 0; i < len(s); {
		if s[i] != '<' {
			b.WriteByte(s[i])
			i++
			continue
		}
		for _, skip := range []string{"<style", "<script", "<head"} {
			if strings.HasPrefix(lower[i:], skip) {
				end := strings.Index(lower[i:], "</"+skip[1:])
				if end < 0 {
					return b.String()
				}
				i += end
				break
			}
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			break
		}
		i += j + 1
		b.WriteByte(' ')
	}
	return strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#39;", "'").Replace(b.String())
}

func fillHeader(h message.Header, m *Message, w *walker) {
	m.Subject = decodeText(h.Get("Subject"))
	if d := h.Get("Date"); d != "" {
		if t, err := mail.ParseDate(d); err == nil {
			m.Date = t
		} else {
			w.note("date: %v", err)
		}
	}
	addrs := func(key string) []Address {
		v := h.Get(key)
		if v == "" {
			return nil
		}
		p := mail.AddressParser{WordDecoder: wordDecoder}
		list, err := p.ParseList(v)
		if err != nil {
			// Keep what a lenient split finds rather than nothing.
			var out []Address
			for _, part := range strings.Split(v, ",") {
				if a, err := p.Parse(part); err == nil {
					out = append(out, Address{Name: a.Name, Addr: a.Address})
				}
			}
			if out == nil {
				w.note("%s: %v", key, err)
			}
			return out
		}
		out := make([]Address, len(list))
		for i, a := range list {
			out[i] = Address{Name: a.Name, Addr: a.Address}
		}
		return out
	}
	m.From = addrs("From")
	m.Sender = addrs("Sender")
	m.ReplyTo = addrs("Reply-To")
	m.To = addrs("To")
	m.Cc = addrs("Cc")
	m.Bcc = addrs("Bcc")
	if ids := msgIDs(h.Get("Message-Id")); len(ids) > 0 {
		m.MessageIDHeader = ids[0]
	}
	m.InReplyTo = msgIDs(h.Get("In-Reply-To"))
	m.References = msgIDs(h.Get("References"))
}

// decodeText decodes RFC 2047 encoded words, keeping the raw text when that
// fails, and returns valid UTF-8.
func decodeText(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		s = d
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimSpace(s)
}

// maxMsgIDs bounds the message IDs kept from one header.
const maxMsgIDs = 64

// msgIDs returns the message IDs in v: the text inside each <…>, or, if
// there is none, each whitespace-separated word. It keeps at most the last
// maxMsgIDs (the most recent references).
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" && utf8.ValidString(id) {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
	if ids == nil {
		for _, f := range strings.Fields(v) {
			if utf8.ValidString(f) {
				ids = append(ids, f)
			}
		}
	}
	if len(ids) > maxMsgIDs {
		ids = ids[len(ids)-maxMsgIDs:]
	}
	return ids
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
