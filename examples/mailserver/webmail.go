package main

import (
	"bytes"
	"embed"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode the charsets mail uses
	"github.com/microcosm-cc/bluemonday"

	"github.com/mailbricks/mailbricks"
)

// The webmail is a small single-page app (web/: HTML, JS and CSS, no build
// step) over the JSON API, served at /.
//
//go:embed web
var webFiles embed.FS

// webCSP is the Content-Security-Policy of the webmail's own pages: its
// scripts and styles from this origin only, no plug-ins, no framing by
// others. A message's HTML is shown in an iframe with sandbox="" and a CSP
// of its own (app.js), so it runs no script and loads nothing remote.
const webCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// extraRoutes are the API routes served beside the routes table: the
// message body for the webmail, and this API's own OpenAPI document. They
// are registered by mountExtras and documented in /api/openapi.json.
var extraRoutes = []route{
	{Method: "GET", Path: "/api/messages/{id}/body", Summary: "the message's text and sanitized HTML bodies, for display", handle: (*api).body},
	{Method: "GET", Path: "/api/openapi.json", Summary: "this API as an OpenAPI 3.1 document", Public: true},
}

func init() {
	// Set here: the document handler refers to extraRoutes itself.
	extraRoutes[1].handle = (*api).openapi
}

// mountExtras registers, on the API's mux, the extra routes, /metrics and
// the webmail at / (any other path under /api/ stays a JSON 404).
func (h *api) mountExtras(mux *http.ServeMux) {
	for _, rt := range extraRoutes {
		mux.HandleFunc(rt.Path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != rt.Method && !(rt.Method == "GET" && r.Method == "HEAD") {
				w.Header().Set("Allow", rt.Method)
				writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed here"})
				return
			}
			h.serve(rt, w, r)
		})
	}
	mux.Handle("/metrics", metricsHandler(h.a))
	sub, _ := fs.Sub(webFiles, "web")
	files := http.FileServerFS(sub)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || (r.Method != "GET" && r.Method != "HEAD") {
			writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", webCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		if r.URL.Path != "/" {
			if _, err := fs.Stat(sub, strings.TrimPrefix(r.URL.Path, "/")); err != nil {
				writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such page"})
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}

// bodyJSON is the display form of a message: its first text/plain part and
// its first text/html part, sanitized (no scripts, event handlers, forms,
// frames or remote resources), both decoded to UTF-8.
type bodyJSON struct {
	Text string `json:"text"`
	HTML string `json:"html,omitempty"`
	// RemoteBlocked counts the remote resources (images, style URLs)
	// removed from the HTML.
	RemoteBlocked int `json:"remote_blocked,omitempty"`
}

// maxBodyPart bounds each body part read for display.
const maxBodyPart = 4 << 20

func (h *api) body(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	m, err := h.message(r, user)
	if err != nil {
		return err
	}
	rc, err := h.a.b.Mailbox.Open(r.Context(), user, m.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	b := extractBody(rc)
	writeJSON(w, http.StatusOK, b)
	return nil
}

// extractBody reads a message's display bodies. A message that does not
// parse is shown as its raw text.
func extractBody(r io.Reader) bodyJSON {
	var out bodyJSON
	raw, _ := io.ReadAll(io.LimitReader(r, 64<<20))
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		out.Text = strings.ToValidUTF8(string(raw[:min(len(raw), maxBodyPart)]), "\uFFFD")
		return out
	}
	var text, html string
	var haveText, haveHTML bool
	_ = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if part == nil || part.MultipartReader() != nil {
			return nil
		}
		if disp, _, _ := part.Header.ContentDisposition(); strings.EqualFold(disp, "attachment") {
			return nil
		}
		ct, _, cerr := part.Header.ContentType()
		if cerr != nil || ct == "" {
			ct = "text/plain"
		}
		switch {
		case ct == "text/plain" && !haveText:
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxBodyPart))
			text, haveText = string(b), true
		case ct == "text/html" && !haveHTML:
			b, _ := io.ReadAll(io.LimitReader(part.Body, maxBodyPart))
			html, haveHTML = string(b), true
		}
		return nil
	})
	out.Text = strings.ToValidUTF8(text, "\uFFFD")
	if haveHTML {
		out.HTML, out.RemoteBlocked = sanitizeHTML(strings.ToValidUTF8(html, "\uFFFD"))
	}
	return out
}

var (
	mailPolicy = func() *bluemonday.Policy {
		p := bluemonday.UGCPolicy()
		p.AllowStyling()
		p.AllowAttrs("style").Globally()
		p.AllowAttrs("bgcolor", "color", "align", "valign", "width", "height", "border", "cellpadding", "cellspacing").Globally()
		p.AllowElements("font", "center")
		p.AllowAttrs("face", "size").OnElements("font")
		// Images only inline (data:); remote ones are removed below.
		p.AllowDataURIImages()
		p.RequireNoReferrerOnLinks(true)
		p.AddTargetBlankToFullyQualifiedLinks(true)
		return p
	}()
	remoteImgRE = regexp.MustCompile(`(?is)<img\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//[^>]*>`)
	cssURLRE    = regexp.MustCompile(`(?i)url\s*\(\s*['"]?\s*(?:https?:)?//[^)]*\)`)
	bgAttrRE    = regexp.MustCompile(`(?i)\sbackground\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)`)
)

// sanitizeHTML strips what a mail's HTML must not do when displayed: no
// script, no handler, no form, no frame, no remote image or style URL
// (counted). The webmail adds a sandboxed iframe with a CSP on top.
func sanitizeHTML(s string) (string, int) {
	n := len(remoteImgRE.FindAllStringIndex(s, -1)) + len(cssURLRE.FindAllStringIndex(s, -1))
	s = remoteImgRE.ReplaceAllString(s, "")
	s = cssURLRE.ReplaceAllString(s, "none")
	s = bgAttrRE.ReplaceAllString(s, "")
	out := mailPolicy.Sanitize(s)
	// The sanitizer may have decoded entities into new URLs: check again.
	out = remoteImgRE.ReplaceAllString(out, "")
	out = cssURLRE.ReplaceAllString(out, "none")
	return out, n
}

func init() {
	// Make sure the embedded files are served with fitting types.
	_ = mime.AddExtensionType(".js", "text/javascript; charset=utf-8")
	_ = mime.AddExtensionType(".css", "text/css; charset=utf-8")
}
