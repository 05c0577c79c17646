package main

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	netmail "net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
)

// sendRequest is the body of POST /api/send.
type sendRequest struct {
	To          []string         `json:"to"`
	Cc          []string         `json:"cc,omitempty"`
	Bcc         []string         `json:"bcc,omitempty"`
	Subject     string           `json:"subject"`
	Text        string           `json:"text"`
	HTML        string           `json:"html,omitempty"`
	InReplyTo   string           `json:"in_reply_to,omitempty"`
	Attachments []sendAttachment `json:"attachments,omitempty"`
}

type sendAttachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type,omitempty"`
	// Content is the attachment's bytes, base64 (standard alphabet).
	Content string `json:"content"`
}

// maxSendRecipients matches delivery's default MaxRecipients.
const maxSendRecipients = delivery.DefaultMaxRecipients

// send composes a message from the request and hands it to
// delivery.Submission.Submit, which does what an SMTP submission does: the
// same data checks, the body stored and linked under
// delivery.OutgoingBlobOwner, a Received field "with HTTP" and a
// Message-ID <ID@hostname>, a copy in the user's Sent folder, seen, keyed
// "delivery/sent/<ID>", then one delivery.OutgoingJob keyed by its ID; only
// then 202. The outbound worker delivers it (to local recipients too, by
// its same-domain shortcut).
func (h *api) send(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	var req sendRequest
	if err := decodeJSON(w, r, maxSendBody, &req); err != nil {
		return err
	}
	to, err := parseRecipients("to", req.To)
	if err != nil {
		return err
	}
	cc, err := parseRecipients("cc", req.Cc)
	if err != nil {
		return err
	}
	bcc, err := parseRecipients("bcc", req.Bcc)
	if err != nil {
		return err
	}
	var rcpts []string
	for _, l := range [][]*mail.Address{to, cc, bcc} {
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 {
		return badRequest("no recipients: give to, cc or bcc")
	}
	if len(rcpts) > maxSendRecipients {
		return badRequest("at most %d recipients", maxSendRecipients)
	}
	if strings.ContainsAny(req.Subject, "\r\n") || len(req.Subject) > 998 {
		return badRequest("subject: one line of at most 998 bytes")
	}
	if req.InReplyTo != "" && (strings.ContainsAny(req.InReplyTo, "\r\n<> ") || len(req.InReplyTo) > 900) {
		return badRequest("in_reply_to: a Message-ID without angle brackets")
	}
	atts := make([][]byte, len(req.Attachments))
	for i, at := range req.Attachments {
		if atts[i], err = base64.StdEncoding.DecodeString(stripSpace(at.Content)); err != nil {
			return badRequest("attachments[%d].content: invalid base64", i)
		}
		if at.ContentType != "" {
			if _, _, err := mime.ParseMediaType(at.ContentType); err != nil {
				return badRequest("attachments[%d].content_type: invalid media type", i)
			}
		}
		if strings.ContainsAny(at.Filename, "\r\n\x00") || len(at.Filename) > 255 {
			return badRequest("attachments[%d].filename: at most 255 bytes, one line", i)
		}
	}

	ctx := r.Context()
	now := time.Now()
	hdr := mail.Header{}
	hdr.SetAddressList("From", []*mail.Address{{Address: string(user)}})
	hdr.SetAddressList("To", to)
	if len(cc) > 0 {
		hdr.SetAddressList("Cc", cc)
	}
	hdr.SetSubject(req.Subject)
	hdr.SetDate(now)
	if req.InReplyTo != "" {
		hdr.SetMsgIDList("In-Reply-To", []string{req.InReplyTo})
		hdr.SetMsgIDList("References", []string{req.InReplyTo})
	}

	// Compose straight into delivery's Submit: the same checks, storage,
	// Sent copy and outgoing job as an SMTP submission.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(compose(pw, hdr, &req, atts)) }()
	var o delivery.SubmitOptions
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		o.ClientIP = ap.Addr()
	}
	res, err := h.a.submission.Submit(ctx, user, string(user), rcpts, pr, &o)
	pr.CloseWithError(errors.New("send: abandoned"))
	switch {
	case errors.Is(err, delivery.ErrMessageTooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "message too large"}
	case errors.Is(err, delivery.ErrSenderNotAllowed):
		return &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "this user may not send from its address"}
	case errors.Is(err, delivery.ErrInvalidAddress), errors.Is(err, delivery.ErrTooManyRecipients),
		errors.Is(err, delivery.ErrHeaderTooLarge), errors.Is(err, delivery.ErrBareLineEnding), errors.Is(err, delivery.ErrNUL):
		return badRequest("%s", strings.TrimPrefix(err.Error(), "delivery: "))
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"id": res.Job.ID, "status": "queued", "sent": toJSON(&res.Sent)})
	return nil
}

// compose writes the MIME message: text (and HTML as an alternative), and
// the attachments, with CRLF line endings throughout.
func compose(w io.Writer, hdr mail.Header, req *sendRequest, atts [][]byte) error {
	inline := func(wr *mail.InlineWriter) error {
		parts := []struct{ ctype, body string }{{"text/plain", req.Text}}
		if req.HTML != "" {
			parts = append(parts, struct{ ctype, body string }{"text/html", req.HTML})
		}
		for _, p := range parts {
			var ih mail.InlineHeader
			ih.SetContentType(p.ctype, map[string]string{"charset": "utf-8"})
			pw, err := wr.CreatePart(ih)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(pw, crlf(p.body)); err != nil {
				return err
			}
			if err := pw.Close(); err != nil {
				return err
			}
		}
		return wr.Close()
	}
	if len(atts) == 0 {
		wr, err := mail.CreateInlineWriter(w, hdr)
		if err != nil {
			return err
		}
		return inline(wr)
	}
	mw, err := mail.CreateWriter(w, hdr)
	if err != nil {
		return err
	}
	iw, err := mw.CreateInline()
	if err != nil {
		return err
	}
	if err := inline(iw); err != nil {
		return err
	}
	for i, at := range req.Attachments {
		var ah mail.AttachmentHeader
		ct := at.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		mt, params, _ := mime.ParseMediaType(ct)
		ah.SetContentType(mt, params)
		if at.Filename != "" {
			ah.SetFilename(at.Filename)
		}
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return err
		}
		if _, err := aw.Write(atts[i]); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
	}
	return mw.Close()
}

// crlf normalizes line endings to CRLF, so no bare CR or LF reaches SMTP.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// parseRecipients parses "Name <addr>" or "addr" strings into addresses
// that delivery.ValidateAddress accepts.
func parseRecipients(field string, list []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for i, s := range list {
		a, err := netmail.ParseAddress(s)
		if err != nil || delivery.ValidateAddress(a.Address) != nil || !strings.Contains(a.Address, "@") {
			return nil, badRequest("%s[%d]: invalid address", field, i)
		}
		if strings.ContainsAny(a.Name, "\r\n") {
			return nil, badRequest("%s[%d]: invalid name", field, i)
		}
		out = append(out, &mail.Address{Name: a.Name, Address: a.Address})
	}
	if len(out) > maxSendRecipients {
		return nil, badRequest("%s: at most %d recipients", field, maxSendRecipients)
	}
	return out, nil
}
