package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/mailbox"
)

// route is one endpoint of the JSON API. The routes table below is the
// whole API: the server registers exactly these, and a document of the API
// can be generated from and checked against it.
type route struct {
	Method  string
	Path    string // a net/http ServeMux path pattern
	Summary string
	// Public routes need no credentials.
	Public bool
	// TokenInQuery also accepts the bearer token as ?access_token=, for
	// browsers' EventSource and download links, which cannot set headers.
	TokenInQuery bool
	// Query lists the query parameters the route reads.
	Query []string
	// Body names the JSON request body type, "" for none.
	Body   string
	handle func(h *api, w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error
}

var routes = []route{
	{Method: "GET", Path: "/healthz", Summary: "liveness: 200 while the server runs", Public: true, handle: (*api).health},
	{Method: "POST", Path: "/api/login", Summary: "exchange a user name and password for a bearer token", Public: true, Body: "loginRequest", handle: (*api).login},
	{Method: "GET", Path: "/api/me", Summary: "the authenticated user", handle: (*api).me},
	{Method: "GET", Path: "/api/folders", Summary: "the user's folders with total, unread and size counts", handle: (*api).folders},
	{Method: "POST", Path: "/api/folders", Summary: "create a folder", Body: "folderRequest", handle: (*api).createFolder},
	{Method: "GET", Path: "/api/messages", Summary: "a page of a folder's messages, newest first", Query: []string{"folder", "unread", "limit", "cursor"}, handle: (*api).list},
	{Method: "GET", Path: "/api/messages/{id}", Summary: "a message's metadata and attachment list", handle: (*api).get},
	{Method: "DELETE", Path: "/api/messages/{id}", Summary: "move a message to Trash, or expunge it if it is in Trash", handle: (*api).delete},
	{Method: "GET", Path: "/api/messages/{id}/raw", Summary: "the message as stored (message/rfc822)", TokenInQuery: true, handle: (*api).raw},
	{Method: "GET", Path: "/api/messages/{id}/attachments/{n}", Summary: "the n-th attachment of a message, decoded", TokenInQuery: true, handle: (*api).attachment},
	{Method: "POST", Path: "/api/messages/{id}/read", Summary: "mark a message read", handle: (*api).markRead},
	{Method: "POST", Path: "/api/messages/{id}/unread", Summary: "mark a message unread", handle: (*api).markUnread},
	{Method: "POST", Path: "/api/messages/{id}/flags", Summary: "add and remove flags and keywords", Body: "flagsRequest", handle: (*api).flags},
	{Method: "POST", Path: "/api/messages/{id}/move", Summary: "move a message to another folder", Body: "folderRequest", handle: (*api).move},
	{Method: "GET", Path: "/api/search", Summary: "search the user's mail with a Gmail-style query, newest first", Query: []string{"q", "limit", "cursor"}, handle: (*api).search},
	{Method: "POST", Path: "/api/send", Summary: "send a message: queued on the outgoing topic, copy in Sent", Body: "sendRequest", handle: (*api).send},
	{Method: "GET", Path: "/api/events", Summary: "Server-Sent Events: new mail, flag changes, expunges, folder changes", TokenInQuery: true, handle: (*api).events},
}

// Request body limits.
const (
	maxJSONBody = 1 << 20
	maxSendBody = 48 << 20 // a 32 MiB message, base64-encoded attachments included
)

type api struct {
	a   *app
	log *slog.Logger
}

type httpFront struct {
	srv *http.Server
	l   net.Listener
}

func newHTTP(a *app) (*httpFront, error) {
	h := &api{a: a, log: a.log.With("front", "http")}
	l, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("-http: %w", err)
	}
	return &httpFront{
		l: l,
		srv: &http.Server{
			Handler:           instrumentHTTP(a, h.handler()), // metrics.go
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		},
	}, nil
}

func (f *httpFront) addr() string { return f.l.Addr().String() }

func (f *httpFront) front() front {
	return front{name: "http", run: f.run, banner: []string{
		fmt.Sprintf("HTTP        %-22s webmail http://%s/ , JSON API /api/ , events /api/events, /metrics, /healthz", f.addr(), f.addr()),
	}}
}

// run serves until ctx is done, then shuts down: the listener closes,
// event streams end (their contexts derive from baseCtx), and requests in
// flight get shutdownGrace to finish.
func (f *httpFront) run(ctx context.Context) error {
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	f.srv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	f.srv.RegisterOnShutdown(cancelBase)
	errc := make(chan error, 1)
	go func() { errc <- f.srv.Serve(f.l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := f.srv.Shutdown(sctx); err != nil {
		f.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler registers the routes. Patterns are registered without their
// method so that a wrong method gets a JSON 405 with Allow, and anything
// else a JSON 404.
func (h *api) handler() http.Handler {
	mux := http.NewServeMux()
	byPath := map[string][]route{}
	var paths []string
	for _, rt := range routes {
		if _, ok := byPath[rt.Path]; !ok {
			paths = append(paths, rt.Path)
		}
		byPath[rt.Path] = append(byPath[rt.Path], rt)
	}
	for _, p := range paths {
		rts := byPath[p]
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			var allow []string
			for _, rt := range rts {
				if rt.Method == r.Method || (rt.Method == "GET" && r.Method == "HEAD") {
					h.serve(rt, w, r)
					return
				}
				allow = append(allow, rt.Method)
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed here"})
		})
	}
	h.mountExtras(mux) // webmail.go: the webmail at /, /metrics, extra API routes, JSON 404s
	return mux
}

func (h *api) serve(rt route, w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	var user mailbricks.UserID
	if !rt.Public {
		var err error
		if user, err = h.authenticate(r, rt.TokenInQuery); err != nil {
			if errors.Is(err, delivery.ErrAuthFailed) {
				w.Header().Set("WWW-Authenticate", `Basic realm="mailbricks", charset="UTF-8"`)
				writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "valid credentials required: HTTP basic auth or a bearer token from POST /api/login"})
				return
			}
			h.fail(w, r, err)
			return
		}
	}
	if err := rt.handle(h, w, r, user); err != nil {
		h.fail(w, r, err)
	}
}

func (h *api) authenticate(r *http.Request, tokenInQuery bool) (mailbricks.UserID, error) {
	ctx := r.Context()
	auth := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(auth, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		name, pw, ok := r.BasicAuth()
		if !ok {
			return "", delivery.ErrAuthFailed
		}
		return h.a.accounts.Verify(ctx, name, pw)
	case strings.EqualFold(scheme, "Bearer"):
		return h.a.accounts.CheckToken(ctx, strings.TrimSpace(cred), time.Now())
	case auth == "" && tokenInQuery && r.URL.Query().Get("access_token") != "":
		return h.a.accounts.CheckToken(ctx, r.URL.Query().Get("access_token"), time.Now())
	}
	return "", delivery.ErrAuthFailed
}

// apiError is an error response: {"error": {"code": …, "message": …}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

var errMessageNotFound = &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such message"}

// classify maps the blocks' errors to responses. Anything unexpected is a
// 500 whose details go to the log, not to the client; a temporary failure
// of a backend is a 503.
func classify(err error) *apiError {
	var ae *apiError
	var pe *index.ParseError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("request body over %d bytes", mbe.Limit)}
	case errors.As(err, &pe):
		return &apiError{Status: http.StatusBadRequest, Code: "bad_query", Message: pe.Error()}
	case errors.Is(err, mailbox.ErrNotFound):
		return errMessageNotFound
	case errors.Is(err, mailbox.ErrNoFolder):
		return &apiError{Status: http.StatusNotFound, Code: "no_folder", Message: "no such folder"}
	case errors.Is(err, mailbox.ErrFolderExists):
		return &apiError{Status: http.StatusConflict, Code: "folder_exists", Message: "the folder exists"}
	case errors.Is(err, mailbox.ErrInvalidFolder):
		return &apiError{Status: http.StatusBadRequest, Code: "bad_folder", Message: "invalid folder name or operation"}
	case errors.Is(err, mailbox.ErrInvalidArgument):
		return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: strings.TrimPrefix(err.Error(), "mailbox: ")}
	case errors.Is(err, mailbox.ErrTooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "message too large"}
	case errors.Is(err, index.ErrBadQuery):
		return &apiError{Status: http.StatusBadRequest, Code: "bad_query", Message: strings.TrimPrefix(err.Error(), "index: ")}
	case errors.Is(err, index.ErrBadCursor):
		return &apiError{Status: http.StatusBadRequest, Code: "bad_cursor", Message: "invalid cursor"}
	case errors.Is(err, mailbricks.ErrInvalidUser):
		return &apiError{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid user"}
	case errors.Is(err, context.Canceled):
		return &apiError{Status: 499, Code: "canceled", Message: "request canceled"}
	case mailbricks.IsTemporary(err), errors.Is(err, mailbox.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "temporarily unavailable, retry"}
	}
	return nil
}

func (h *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	if e == nil {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	writeError(w, e)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// decodeJSON reads a JSON body of at most limit bytes into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: more than one value")
	}
	return nil
}

// messageID parses the {id} path value. A malformed ID is a 400; a
// well-formed one that is not the caller's is a 404, like a missing one.
func messageID(r *http.Request) (mailbricks.MessageID, error) {
	id, err := mailbricks.ParseMessageID(r.PathValue("id"))
	if err != nil {
		return id, badRequest("invalid message id")
	}
	return id, nil
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s: an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("%s: true or false", name)
	}
	return b, nil
}

// JSON shapes.

type addressJSON struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
}

type messageJSON struct {
	ID             string           `json:"id"`
	Folder         string           `json:"folder"`
	UID            uint32           `json:"uid"`
	Flags          []string         `json:"flags"`
	Unread         bool             `json:"unread"`
	Received       time.Time        `json:"received"`
	Date           *time.Time       `json:"date,omitempty"`
	Size           int64            `json:"size"`
	ThreadID       string           `json:"thread_id"`
	From           []addressJSON    `json:"from"`
	To             []addressJSON    `json:"to"`
	Cc             []addressJSON    `json:"cc,omitempty"`
	Subject        string           `json:"subject"`
	Snippet        string           `json:"snippet"`
	MessageID      string           `json:"message_id,omitempty"`
	HasAttachments bool             `json:"has_attachments"`
	ParseError     string           `json:"parse_error,omitempty"`
	Attachments    []attachmentJSON `json:"attachments,omitempty"`
}

func addrs(as []mailbox.Address) []addressJSON {
	out := make([]addressJSON, 0, len(as))
	for _, a := range as {
		out = append(out, addressJSON{Name: a.Name, Email: a.Addr})
	}
	return out
}

func toJSON(m *mailbox.Message) *messageJSON {
	j := &messageJSON{
		ID: m.ID.String(), Folder: m.Folder, UID: m.UID, Flags: m.Flags, Unread: m.Unread(),
		Received: m.InternalDate.UTC(), Size: m.Size, ThreadID: m.ThreadID.String(),
		From: addrs(m.From), To: addrs(m.To), Cc: addrs(m.Cc), Subject: m.Subject, Snippet: m.Snippet,
		MessageID: m.MessageIDHeader, HasAttachments: m.HasAttachments, ParseError: m.ParseError,
	}
	if j.Flags == nil {
		j.Flags = []string{}
	}
	if !m.Date.IsZero() {
		d := m.Date.UTC()
		j.Date = &d
	}
	return j
}

// Handlers.

func (h *api) health(w http.ResponseWriter, r *http.Request, _ mailbricks.UserID) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (h *api) login(w http.ResponseWriter, r *http.Request, _ mailbricks.UserID) error {
	var req loginRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	user, err := h.a.accounts.Verify(r.Context(), req.Username, req.Password)
	if errors.Is(err, delivery.ErrAuthFailed) {
		return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "wrong user name or password"}
	}
	if err != nil {
		return err
	}
	tok, exp, err := h.a.accounts.Token(r.Context(), user, time.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires": exp.UTC(), "user": user})
	return nil
}

func (h *api) me(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	writeJSON(w, http.StatusOK, map[string]any{"user": user})
	return nil
}

type folderJSON struct {
	Name   string `json:"name"`
	Role   string `json:"role,omitempty"`
	Total  int64  `json:"total"`
	Unread int64  `json:"unread"`
	Size   int64  `json:"size"`
}

func (h *api) folders(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	fs, err := h.a.b.Mailbox.Folders(r.Context(), user)
	if err != nil {
		return err
	}
	out := make([]folderJSON, 0, len(fs))
	for _, f := range fs {
		out = append(out, folderJSON{Name: f.Name, Role: string(f.Role), Total: f.Total, Unread: f.Unread, Size: f.Size})
	}
	writeJSON(w, http.StatusOK, map[string]any{"folders": out})
	return nil
}

type folderRequest struct {
	Folder string `json:"folder"`
}

func (h *api) createFolder(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	var req folderRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	f, err := h.a.b.Mailbox.CreateFolder(r.Context(), user, req.Folder)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, folderJSON{Name: f.Name, Role: string(f.Role)})
	return nil
}

func (h *api) list(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	folder := r.URL.Query().Get("folder")
	if folder == "" {
		folder = mailbox.Inbox
	}
	if err := mailbox.ValidateFolderName(folder); err != nil {
		return err
	}
	unread, err := boolParam(r, "unread")
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 50, 1, 1000)
	if err != nil {
		return err
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 1024 {
		return badRequest("invalid cursor")
	}
	page, err := h.a.b.Mailbox.List(r.Context(), user, mailbox.CanonicalFolderName(folder), &mailbox.ListOptions{Unread: unread, Limit: limit, Cursor: cursor})
	if err != nil {
		return err
	}
	out := make([]*messageJSON, 0, len(page.Messages))
	for i := range page.Messages {
		out = append(out, toJSON(&page.Messages[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "cursor": page.Cursor})
	return nil
}

func (h *api) get(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	id, err := messageID(r)
	if err != nil {
		return err
	}
	m, err := h.a.b.Mailbox.Get(r.Context(), user, id)
	if err != nil {
		return err
	}
	j := toJSON(&m)
	if m.HasAttachments {
		if j.Attachments, err = h.attachments(r.Context(), user, id); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (h *api) raw(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	id, err := messageID(r)
	if err != nil {
		return err
	}
	m, err := h.a.b.Mailbox.Get(r.Context(), user, id)
	if err != nil {
		return err
	}
	rc, err := h.a.b.Mailbox.Open(r.Context(), user, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	hd := w.Header()
	hd.Set("Content-Type", "message/rfc822")
	hd.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	hd.Set("Content-Disposition", `attachment; filename="`+id.String()+`.eml"`)
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	if r.Method == "HEAD" {
		return nil
	}
	if _, err := io.Copy(w, rc); err != nil {
		h.log.Debug("raw: copy", "err", err)
	}
	return nil
}

// message checks that id is one of user's messages and returns it.
func (h *api) message(r *http.Request, user mailbricks.UserID) (mailbox.Message, error) {
	id, err := messageID(r)
	if err != nil {
		return mailbox.Message{}, err
	}
	return h.a.b.Mailbox.Get(r.Context(), user, id)
}

func (h *api) markRead(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	return h.setSeen(w, r, user, true)
}

func (h *api) markUnread(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	return h.setSeen(w, r, user, false)
}

func (h *api) setSeen(w http.ResponseWriter, r *http.Request, user mailbricks.UserID, seen bool) error {
	m, err := h.message(r, user)
	if err != nil {
		return err
	}
	if seen {
		err = h.a.b.Mailbox.MarkRead(r.Context(), user, m.ID)
	} else {
		err = h.a.b.Mailbox.MarkUnread(r.Context(), user, m.ID)
	}
	if err != nil {
		return err
	}
	return h.writeMessage(w, r, user, m.ID)
}

func (h *api) writeMessage(w http.ResponseWriter, r *http.Request, user mailbricks.UserID, id mailbricks.MessageID) error {
	m, err := h.a.b.Mailbox.Get(r.Context(), user, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toJSON(&m))
	return nil
}

type flagsRequest struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

func (h *api) flags(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	m, err := h.message(r, user)
	if err != nil {
		return err
	}
	var req flagsRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if len(req.Add)+len(req.Remove) == 0 {
		return badRequest("give flags to add or remove")
	}
	// Validate both lists before changing anything.
	add, err := mailbox.CanonicalFlags(req.Add)
	if err != nil {
		return err
	}
	remove, err := mailbox.CanonicalFlags(req.Remove)
	if err != nil {
		return err
	}
	if len(add) > 0 {
		if _, err := h.a.b.Mailbox.SetFlags(r.Context(), user, []mailbricks.MessageID{m.ID}, mailbox.FlagAdd, add, nil); err != nil {
			return err
		}
	}
	if len(remove) > 0 {
		if _, err := h.a.b.Mailbox.SetFlags(r.Context(), user, []mailbricks.MessageID{m.ID}, mailbox.FlagRemove, remove, nil); err != nil {
			return err
		}
	}
	return h.writeMessage(w, r, user, m.ID)
}

func (h *api) move(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	m, err := h.message(r, user)
	if err != nil {
		return err
	}
	var req folderRequest
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		return err
	}
	if err := mailbox.ValidateFolderName(req.Folder); err != nil {
		return err
	}
	dest := mailbox.CanonicalFolderName(req.Folder)
	// Create a special-use destination (Archive, Junk, …) on first use.
	if _, err := h.a.b.Mailbox.Folder(r.Context(), user, dest); err != nil {
		return err
	}
	if _, err := h.a.b.Mailbox.Move(r.Context(), user, []mailbricks.MessageID{m.ID}, dest); err != nil {
		return err
	}
	return h.writeMessage(w, r, user, m.ID)
}

func (h *api) delete(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	m, err := h.message(r, user)
	if err != nil {
		return err
	}
	if err := h.a.b.Mailbox.Delete(r.Context(), user, m.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type hitJSON struct {
	*messageJSON
	Highlights [][2]int `json:"highlights,omitempty"`
}

func (h *api) search(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	q := r.URL.Query().Get("q")
	limit, err := intParam(r, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 1024 {
		return badRequest("invalid cursor")
	}
	res, err := h.a.b.Index.SearchString(r.Context(), user, q, &index.SearchOptions{Limit: limit, Cursor: cursor})
	if err != nil {
		return err
	}
	hits := make([]hitJSON, 0, len(res.Hits))
	for _, hit := range res.Hits {
		m, err := h.a.b.Mailbox.Get(r.Context(), user, hit.ID)
		if errors.Is(err, mailbox.ErrNotFound) {
			continue // expunged after the index answered
		}
		if err != nil {
			return err
		}
		j := toJSON(&m)
		if hit.Snippet != "" {
			j.Snippet = hit.Snippet
		}
		hits = append(hits, hitJSON{messageJSON: j, Highlights: hit.Highlights})
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": res.Total, "hits": hits, "cursor": res.Cursor})
	return nil
}
