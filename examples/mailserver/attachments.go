package main

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/emersion/go-message"

	"github.com/mailbricks/mailbricks"
)

// attachmentJSON describes one attachment of a message. Attachments are
// numbered in MIME walk order and reached only through their message
// (/api/messages/{id}/attachments/{n}), so a caller who does not own the
// message gets 404 whatever number or content hash it guesses.
type attachmentJSON struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename,omitempty"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	URL         string `json:"url"`
}

// maxAttachments bounds the attachments listed for one message.
const maxAttachments = 1000

var errStopWalk = errors.New("stop")

// walkAttachments calls fn with each attachment part of the message, its
// index, its Content-Type and file name, and its decoded body. fn returns
// errStopWalk to end the walk early. Malformed parts end the walk without an
// error: what was found is what the message has.
func walkAttachments(r io.Reader, fn func(i int, ctype, filename string, body io.Reader) error) error {
	e, err := message.ReadWithOptions(r, &message.ReadOptions{MaxHeaderBytes: 256 << 10})
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil
	}
	i := 0
	err = e.Walk(func(path []int, part *message.Entity, err error) error {
		if part == nil || part.MultipartReader() != nil {
			return nil
		}
		disp, dparams, _ := part.Header.ContentDisposition()
		ctype, cparams, cerr := part.Header.ContentType()
		if cerr != nil || ctype == "" {
			ctype = "application/octet-stream"
		}
		name := dparams["filename"]
		if name == "" {
			name = cparams["name"]
		}
		if !strings.EqualFold(disp, "attachment") && name == "" {
			return nil
		}
		if i >= maxAttachments {
			return errStopWalk
		}
		if err := fn(i, ctype, name, part.Body); err != nil {
			return err
		}
		i++
		return nil
	})
	if errors.Is(err, errStopWalk) || err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return err
	}
	return nil // a malformed part: stop there
}

func (h *api) attachments(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) ([]attachmentJSON, error) {
	rc, err := h.a.b.Mailbox.Open(ctx, user, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var out []attachmentJSON
	err = walkAttachments(rc, func(i int, ctype, name string, body io.Reader) error {
		n, _ := io.Copy(io.Discard, body)
		out = append(out, attachmentJSON{Index: i, Filename: name, ContentType: ctype, Size: n,
			URL: "/api/messages/" + id.String() + "/attachments/" + strconv.Itoa(i)})
		return nil
	})
	return out, err
}

func (h *api) attachment(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	m, err := h.message(r, user)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= maxAttachments {
		return badRequest("invalid attachment number")
	}
	rc, err := h.a.b.Mailbox.Open(r.Context(), user, m.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	found := false
	err = walkAttachments(rc, func(i int, ctype, name string, body io.Reader) error {
		if i != n {
			return nil
		}
		found = true
		hd := w.Header()
		if mt, _, err := mime.ParseMediaType(ctype); err == nil {
			hd.Set("Content-Type", mt)
		} else {
			hd.Set("Content-Type", "application/octet-stream")
		}
		// Always a download, never rendered on the API's origin.
		disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
		if name == "" || disp == "" {
			disp = "attachment"
		}
		hd.Set("Content-Disposition", disp)
		hd.Set("Content-Security-Policy", "sandbox; default-src 'none'")
		if r.Method != "HEAD" {
			io.Copy(w, body)
		}
		return errStopWalk
	})
	if err != nil {
		return err
	}
	if !found {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such attachment"}
	}
	return nil
}
