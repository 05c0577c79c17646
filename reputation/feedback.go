package reputation

// Feedback reports are MIME messages of type multipart/report (RFC 6522):
//
//	multipart/report; report-type=<type>
//	├── part 1: text/plain, a human-readable explanation (ignored)
//	├── part 2: the machine-readable report
//	│     delivery-status (RFC 3464): message/delivery-status, or
//	│       message/global-delivery-status (RFC 6533); its body is one
//	│       group of per-message fields, then one group per recipient,
//	│       groups separated by blank lines, each group header-shaped:
//	│         Reporting-MTA: dns; mx.example.net        (per message)
//	│         Original-Envelope-Id: 0191-…              (per message)
//	│         Arrival-Date: Mon, 3 Mar 2025 10:00:00 +0000
//	│
//	│         Final-Recipient: rfc822; jane@example.com (per recipient)
//	│         Action: failed | delayed | delivered | relayed | expanded
//	│         Status: 5.1.1
//	│         Diagnostic-Code: smtp; 550 5.1.1 user unknown
//	│         Last-Attempt-Date: Mon, 3 Mar 2025 10:00:05 +0000
//	│     feedback-report (RFC 5965): message/feedback-report, one
//	│       header-shaped group:
//	│         Feedback-Type: abuse | fraud | virus | other | not-spam | auth-failure
//	│         User-Agent: …    Version: 1
//	│         Original-Rcpt-To: <jane@example.com>      (repeatable)
//	│         Arrival-Date: …  Source-IP: 192.0.2.10
//	└── part 3: message/rfc822 or text/rfc822-headers, the original
//	      message or its header (only its header is read, for Message-Id,
//	      and for To when an ARF report has no Original-Rcpt-To)
//
// The parsers read at most maxReportBytes of the report part, and at most
// maxRecipients recipient groups.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/mailbricks/mailbricks/internal/mailparse"
)

const (
	maxReportBytes = 1 << 20
	maxRecipients  = 1000
	maxHeaderBytes = 256 << 10
)

// ParseReport parses a feedback report of either kind, a DSN ([ParseDSN])
// or an ARF complaint report ([ParseARF]), chosen by its report-type.
// Other messages return an error matching [ErrNotReport].
func ParseReport(r io.Reader) ([]Outcome, error) {
	return parseReport(r, "")
}

// ParseDSN parses a delivery status notification (RFC 3464: a
// multipart/report with report-type delivery-status) into one Outcome per
// recipient group, with the Recipient from Final-Recipient (or
// Original-Recipient), Enhanced from Status, Code and Text from an smtp
// Diagnostic-Code, At from Last-Attempt-Date (or the per-message
// Arrival-Date), and MessageID from the returned message's header. Kind
// comes from Action and [Classify]: delivered, relayed and expanded are
// delivered; delayed is a deferral (a soft bounce for a full mailbox);
// failed is a hard bounce, or a soft bounce when the status says the
// failure was temporary or the mailbox full (retries ran out).
//
// A DSN names no sending IP: IP is empty, and callers fill it in from
// their own record of the message (MessageID, EnvelopeID). Messages that
// are not DSNs return an error matching [ErrNotReport]; broken DSNs one
// matching [ErrMalformed].
func ParseDSN(r io.Reader) ([]Outcome, error) {
	return parseReport(r, "delivery-status")
}

// ParseARF parses an abuse feedback report (RFC 5965: a multipart/report
// with report-type feedback-report) into one complaint Outcome per
// Original-Rcpt-To, or per address in the original message's To header
// when the report has none (many feedback loops redact both; the one
// Outcome then has an empty Recipient and only MessageID to go by). IP is
// the Source-IP, At the Arrival-Date, Text the feedback type and user
// agent.
//
// Feedback types abuse, fraud, virus and other are complaints; not-spam
// and auth-failure (RFC 6591) reports are not, and return no Outcomes.
// Messages that are not ARF reports return an error matching
// [ErrNotReport]; broken ones one matching [ErrMalformed].
func ParseARF(r io.Reader) ([]Outcome, error) {
	return parseReport(r, "feedback-report")
}

func malformed(f string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(f, a...))
}

// parseReport reads the report with go-message's textproto layer only
// (headers and multipart framing), and undoes transfer encodings and
// charsets itself through internal/mailparse: go-message's higher layer
// would decode charsets through its package-level CharsetReader, which is
// set or not depending on what else a binary links, so the same report
// would parse differently from one program to another.
func parseReport(r io.Reader, want string) ([]Outcome, error) {
	lr := &io.LimitedReader{R: r, N: maxHeaderBytes}
	br := bufio.NewReader(lr)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		if lr.N <= 0 {
			return nil, malformed("header longer than %d bytes", maxHeaderBytes)
		}
		return nil, malformed("%v", err)
	}
	// The rest of the buffer, then what the limit kept back.
	body := io.MultiReader(br, r)
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "multipart/report" {
		return nil, fmt.Errorf("%w: content type %q", ErrNotReport, mt)
	}
	rt := strings.ToLower(params["report-type"])
	if want != "" && rt != want {
		return nil, fmt.Errorf("%w: report-type %q, want %q", ErrNotReport, rt, want)
	}
	if rt != "delivery-status" && rt != "feedback-report" {
		return nil, fmt.Errorf("%w: report-type %q", ErrNotReport, rt)
	}
	if params["boundary"] == "" {
		return nil, malformed("multipart/report without parts")
	}
	mr := textproto.NewMultipartReader(body, params["boundary"])
	var groups []textproto.Header
	var orig *textproto.Header
	var origCharset string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, malformed("%v", err)
		}
		pt, pparams, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "message/delivery-status", "message/global-delivery-status", "message/feedback-report":
			if groups != nil {
				continue
			}
			if groups, err = readGroups(partBody(p, pparams)); err != nil {
				return nil, err
			}
			if groups == nil {
				groups = []textproto.Header{}
			}
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			if orig != nil {
				continue
			}
			h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(partBody(p, pparams), maxHeaderBytes)))
			if err != nil && !errors.Is(err, io.EOF) {
				// A broken original is no reason to drop the report.
				h = textproto.Header{}
			}
			orig = &h
			if _, op, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil {
				origCharset = op["charset"]
			}
		}
	}
	if groups == nil {
		return nil, malformed("no %s part", rt)
	}
	var msgID string
	if orig != nil {
		msgID = strings.Trim(mailparse.DecodeHeader(orig.Get("Message-Id"), ""), "<>")
	}
	if rt == "delivery-status" {
		return dsnOutcomes(groups, msgID)
	}
	return arfOutcomes(groups, orig, origCharset, msgID)
}

// partBody returns a part's body with its transfer encoding undone and, if
// it declares a charset mailparse knows, converted to UTF-8.
func partBody(p *textproto.Part, params map[string]string) io.Reader {
	r, _ := mailparse.TransferReader(p.Header.Get("Content-Transfer-Encoding"), p)
	if cs := params["charset"]; cs != "" {
		if dec, err := mailparse.CharsetReader(cs, r); err == nil {
			return dec
		}
	}
	return r
}

// readGroups reads the header-shaped field groups of a report part.
func readGroups(body io.Reader) ([]textproto.Header, error) {
	br := bufio.NewReader(io.LimitReader(body, maxReportBytes))
	var groups []textproto.Header
	for len(groups) <= maxRecipients {
		// Skip blank lines between groups.
		for {
			b, err := br.Peek(1)
			if err != nil {
				return groups, nil
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			_, _ = br.ReadByte()
		}
		h, err := textproto.ReadHeader(br)
		if h.Len() > 0 {
			groups = append(groups, h)
		}
		if errors.Is(err, io.EOF) {
			return groups, nil
		}
		if err != nil {
			return nil, malformed("report fields: %v", err)
		}
	}
	return nil, malformed("more than %d recipient groups", maxRecipients)
}

// typedValue returns the value of a "type; value" field (RFC 3464
// address-type and diagnostic-type), with comments and spaces trimmed.
func typedValue(v string) (typ, val string) {
	v = strings.TrimSpace(v)
	t, rest, ok := strings.Cut(v, ";")
	if !ok {
		return "", v
	}
	return strings.ToLower(strings.TrimSpace(t)), strings.TrimSpace(rest)
}

func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// stripComment removes a trailing RFC 5322 comment: "5.1.1 (bad mailbox)".
func stripComment(v string) string {
	if i := strings.IndexByte(v, '('); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}

// cleanAddress returns the address in v as valid UTF-8 without control
// characters (raw 8-bit decoded under the module's header policy).
func cleanAddress(v string) string {
	v = mailparse.DecodeHeader(v, "")
	if a, err := mail.ParseAddress(v); err == nil {
		return a.Address
	}
	return strings.Trim(v, "<> ")
}

func dsnOutcomes(groups []textproto.Header, msgID string) ([]Outcome, error) {
	if len(groups) == 0 {
		return nil, malformed("delivery-status without fields")
	}
	perMsg := groups[0]
	envID := strings.TrimSpace(perMsg.Get("Original-Envelope-Id"))
	arrival := parseDate(perMsg.Get("Arrival-Date"))
	var out []Outcome
	for _, g := range groups[1:] {
		_, rcpt := typedValue(g.Get("Final-Recipient"))
		if rcpt == "" {
			_, rcpt = typedValue(g.Get("Original-Recipient"))
		}
		action := strings.ToLower(stripComment(g.Get("Action")))
		if rcpt == "" || action == "" {
			return nil, malformed("recipient group without Final-Recipient or Action")
		}
		o := Outcome{Recipient: cleanAddress(rcpt), Enhanced: stripComment(g.Get("Status")), MessageID: msgID, EnvelopeID: envID}
		// Diagnostic text may hold raw 8-bit or encoded words: decode it
		// under the module's header policy so Text is clean UTF-8.
		if dt, diag := typedValue(mailparse.DecodeHeader(g.Get("Diagnostic-Code"), "")); dt == "smtp" || dt == "" {
			o.Code, o.Text = splitReply(diag)
		} else {
			o.Text = diag
		}
		if o.At = parseDate(g.Get("Last-Attempt-Date")); o.At.IsZero() {
			o.At = arrival
		}
		cl := Classify(o.Code, o.Enhanced, o.Text)
		switch action {
		case "delivered", "relayed", "expanded":
			o.Kind = KindDelivered
		case "delayed":
			o.Kind = KindDeferred
			if cl.Kind == KindSoftBounce {
				o.Kind = KindSoftBounce
			}
		case "failed":
			switch cl.Kind {
			case KindSoftBounce, KindDeferred:
				o.Kind = KindSoftBounce
			default:
				o.Kind = KindHardBounce
			}
		default:
			return nil, malformed("action %q", action)
		}
		out = append(out, o)
	}
	if len(out) == 0 {
		return nil, malformed("delivery-status without recipients")
	}
	return out, nil
}

// splitReply splits "550 5.1.1 text" or "550-5.1.1 text" into 550 and the
// rest (which keeps the enhanced code for Classify to find).
func splitReply(s string) (int, string) {
	s = strings.TrimSpace(s)
	if len(s) >= 3 && isDigits(s[:3]) && (len(s) == 3 || s[3] == ' ' || s[3] == '-') {
		c, _ := strconv.Atoi(s[:3])
		return c, strings.TrimSpace(s[min(4, len(s)):])
	}
	return 0, s
}

func arfOutcomes(groups []textproto.Header, orig *textproto.Header, origCharset, msgID string) ([]Outcome, error) {
	if len(groups) == 0 {
		return nil, malformed("feedback-report without fields")
	}
	g := groups[0]
	ft := strings.ToLower(strings.TrimSpace(g.Get("Feedback-Type")))
	switch ft {
	case "abuse", "fraud", "virus", "other":
	case "not-spam", "auth-failure":
		return nil, nil
	case "":
		return nil, malformed("feedback-report without Feedback-Type")
	default:
		// RFC 5965 section 7.3: unknown types are treated as "other".
	}
	text := "feedback-type " + ft
	if ua := strings.TrimSpace(g.Get("User-Agent")); ua != "" {
		text += "; user-agent " + ua
	}
	base := Outcome{Kind: KindComplaint, IP: strings.TrimSpace(g.Get("Source-Ip")), At: parseDate(g.Get("Arrival-Date")),
		MessageID: msgID, Text: text}
	var rcpts []string
	for _, v := range g.Values("Original-Rcpt-To") {
		if a := cleanAddress(v); a != "" {
			rcpts = append(rcpts, a)
		}
	}
	if len(rcpts) == 0 && orig != nil {
		// The original's To may hold raw 8-bit display names: decode them
		// under the module's header policy rather than fail the list.
		l, _ := mailparse.AddressList(orig.Get("To"), origCharset)
		for _, a := range l {
			if a.Addr != "" && len(rcpts) < maxRecipients {
				rcpts = append(rcpts, a.Addr)
			}
		}
	}
	if len(rcpts) == 0 {
		return []Outcome{base}, nil
	}
	out := make([]Outcome, 0, len(rcpts))
	for _, r := range rcpts {
		o := base
		o.Recipient = r
		out = append(out, o)
	}
	return out, nil
}
