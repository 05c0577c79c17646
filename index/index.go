package index

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks"
)

// Errors. Backends return errors that match these with errors.Is.
var (
	// ErrNotFound means the message is not indexed for the user.
	ErrNotFound = errors.New("index: not found")
	// ErrClosed means the index or backend was closed.
	ErrClosed = errors.New("index: closed")
	// ErrBadQuery means a query does not parse or is not valid; parse
	// errors are *[ParseError] values.
	ErrBadQuery = errors.New("index: bad query")
	// ErrBadCursor means a search cursor is malformed or belongs to
	// another sort order.
	ErrBadCursor = errors.New("index: bad cursor")
	// ErrMalformed means a message could not be parsed at all.
	ErrMalformed = errors.New("index: malformed message")
	// ErrInvalidDocument means a document cannot be indexed: a zero ID,
	// or a list over its limit ([MaxKeywords] and the other document
	// limits).
	ErrInvalidDocument = errors.New("index: invalid document")
)

// Sort is the order of search results.
type Sort uint8

// The sort orders. Ties on Date break on the message ID, in the same
// direction.
const (
	// SortNewest orders by Date, newest first.
	SortNewest Sort = iota
	// SortOldest orders by Date, oldest first.
	SortOldest
)

// Position is a place in a result order: the Date (Unix seconds) and ID of
// the last hit seen. Backends return hits strictly after it.
type Position struct {
	Date int64
	ID   mailbricks.MessageID
}

// Request is what a [Backend] search receives: a resolved query (see
// [Query.Resolve]) and the page wanted.
type Request struct {
	// Query is resolved: KindText nodes have Terms, no KindNewer or
	// KindOlder nodes remain.
	Query Query
	// Limit is the number of hits wanted, at least 1.
	Limit int
	// Sort is the order.
	Sort Sort
	// After, if not nil, asks for the hits after this position in Sort
	// order.
	After *Position
	// WithText asks for each hit's Subject and, in Snippet, its stored
	// body text, from which [Index.Search] makes the snippet.
	WithText bool
}

// Hit is one search result.
type Hit struct {
	// ID is the message.
	ID mailbricks.MessageID
	// Values are its doc values.
	Values Values
	// Subject is the message's subject (empty when snippets were not
	// asked for).
	Subject string
	// Snippet is an excerpt of the body around the first match, and
	// Highlights the byte ranges [start, end) in Snippet of the words
	// that matched.
	Snippet    string
	Highlights [][2]int
}

// Results is a page of search results. It is plain data, owned by the
// caller.
type Results struct {
	// Hits are the page's hits in sort order.
	Hits []Hit
	// Total is the number of documents that match, over all pages.
	Total int
	// Cursor, if not empty, fetches the next page through
	// [SearchOptions].Cursor. It is empty when this page is not full;
	// after a full last page, the next page is empty.
	Cursor string
}

// Backend stores a per-user inverted index. [Index] does validation,
// query resolution, cursors and snippets, and calls a Backend for the
// rest. Implementations must be safe for concurrent use, must honor ctx
// cancellation, and must keep users apart: nothing done for one user may
// read or change another's documents, whatever user it is passed. Every
// method must reject an invalid user (see [mailbricks.UserID.Validate])
// with an error matching [mailbricks.ErrInvalidUser], as [Index] does,
// since [Index.Backend] hands the backend to callers that skip Index's
// checks; Index must reject a nil document or a zero ID with one matching
// [ErrInvalidDocument].
type Backend interface {
	// Index adds docs for user, replacing documents with the same ID
	// (also within docs: the last one wins). It is atomic: after an
	// error, either all or none of docs are indexed. docs are not empty
	// and their IDs are not zero; the backend must not keep them.
	Index(ctx context.Context, user mailbricks.UserID, docs []*Document) error
	// Delete removes the documents with ids; IDs not indexed are
	// ignored.
	Delete(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID) error
	// Update replaces the Values of document id. If id is not indexed
	// for user it must return an error matching [ErrNotFound].
	Update(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID, v Values) error
	// Search returns the page of hits req asks for and the total number
	// of matches. Hit.Values must hold every field as indexed or updated
	// (dates to the second, in UTC).
	Search(ctx context.Context, user mailbricks.UserID, req *Request) (*Results, error)
	// List calls fn with the ID and Values of each document of user,
	// in no particular order, and stops at fn's first error.
	List(ctx context.Context, user mailbricks.UserID, fn func(id mailbricks.MessageID, v Values) error) error
	// DeleteUser removes every document of user.
	DeleteUser(ctx context.Context, user mailbricks.UserID) error
	// Close releases the backend's resources. It is idempotent; other
	// methods then return an error matching [ErrClosed].
	Close() error
}

// Source is the message store an index is built from: [Index.Reindex] and
// [Index.Check] read every document of a user from it. A mailbox adapter
// implements it with [DocumentFromMessage].
type Source interface {
	// Documents calls fn for each of user's messages, in any order, and
	// stops at fn's first error, returning it.
	Documents(ctx context.Context, user mailbricks.UserID, fn func(*Document) error) error
}

// SourceFunc adapts a function to [Source].
type SourceFunc func(ctx context.Context, user mailbricks.UserID, fn func(*Document) error) error

// Documents calls f.
func (f SourceFunc) Documents(ctx context.Context, user mailbricks.UserID, fn func(*Document) error) error {
	return f(ctx, user, fn)
}

// Options configures an [Index]. A nil *Options and every zero field mean
// the default.
type Options struct {
	// Now is the clock that older_than: and newer_than: count from. The
	// default is time.Now.
	Now func() time.Time
	// BatchSize is the number of documents [Index.Reindex] writes per
	// backend call. The default is 500.
	BatchSize int
	// DefaultLimit is the page size when [SearchOptions].Limit is 0. The
	// default is 20.
	DefaultLimit int
	// MaxLimit caps [SearchOptions].Limit. The default is 1000.
	MaxLimit int
	// SnippetLen is the approximate length in bytes of a snippet. The
	// default is 160.
	SnippetLen int
}

// SearchOptions configures one search. A nil *SearchOptions means the
// defaults.
type SearchOptions struct {
	// Limit is the page size. The default is [Options].DefaultLimit.
	Limit int
	// Cursor continues from a previous page's [Results].Cursor. The
	// default, empty, starts at the first hit.
	Cursor string
	// Sort is the order. The default is [SortNewest].
	Sort Sort
	// NoSnippets skips subjects and snippets, saving a read per hit. The
	// default is false: every hit has its snippet.
	NoSnippets bool
}

// Index is a full-text index of users' messages over a [Backend]. It is
// safe for concurrent use.
type Index struct {
	b      Backend
	opts   Options
	closed atomic.Bool
	// patchLocks serialize Patch per user (striped by a hash of the
	// user), so concurrent patches in one process never lose an update.
	patchLocks [64]sync.Mutex
	seed       maphash.Seed
}

// New returns an Index over b. The Index owns b: [Index.Close] closes it.
func New(b Backend, opts *Options) *Index {
	if b == nil {
		panic("index: New with a nil Backend")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.DefaultLimit <= 0 {
		o.DefaultLimit = 20
	}
	if o.MaxLimit <= 0 {
		o.MaxLimit = 1000
	}
	if o.SnippetLen <= 0 {
		o.SnippetLen = 160
	}
	return &Index{b: b, opts: o, seed: maphash.MakeSeed()}
}

// Backend returns the index's backend, for backend-specific calls.
func (x *Index) Backend() Backend { return x.b }

func (x *Index) check(user mailbricks.UserID) error {
	if x.closed.Load() {
		return ErrClosed
	}
	return user.Validate()
}

// Index indexes doc for user, replacing any document with the same ID.
func (x *Index) Index(ctx context.Context, user mailbricks.UserID, doc *Document) error {
	return x.IndexBatch(ctx, user, []*Document{doc})
}

// IndexBatch indexes docs for user in one atomic backend write, replacing
// documents with the same IDs. Batching many documents is much faster than
// indexing them one by one.
func (x *Index) IndexBatch(ctx context.Context, user mailbricks.UserID, docs []*Document) error {
	if err := x.check(user); err != nil {
		return err
	}
	if len(docs) == 0 {
		return nil
	}
	for _, d := range docs {
		if err := validateDocument(d); err != nil {
			return err
		}
	}
	if err := x.b.Index(ctx, user, docs); err != nil {
		return fmt.Errorf("index: index %d documents of %s: %w", len(docs), user, err)
	}
	return nil
}

// Delete removes the documents with ids from user's index. IDs that are
// not indexed are ignored.
func (x *Index) Delete(ctx context.Context, user mailbricks.UserID, ids ...mailbricks.MessageID) error {
	if err := x.check(user); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	if err := x.b.Delete(ctx, user, ids); err != nil {
		return fmt.Errorf("index: delete from %s: %w", user, err)
	}
	return nil
}

// Update replaces the [Values] of an indexed document (a flag, folder or
// keyword change) without indexing its text again. If the document is not
// indexed for user the error matches [ErrNotFound].
func (x *Index) Update(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID, v Values) error {
	if err := x.check(user); err != nil {
		return err
	}
	if err := validateValues(&v); err != nil {
		return err
	}
	if err := x.b.Update(ctx, user, id, v); err != nil {
		return fmt.Errorf("index: update %s of %s: %w", id, user, err)
	}
	return nil
}

// GetBackend is the optional capability of a [Backend] to read one
// document's [Values] directly. [Index.Get] uses it when the backend has it
// and otherwise finds the document through [Backend.List].
type GetBackend interface {
	Backend
	// Get returns the Values of document id as indexed or last updated
	// (dates to the second, in UTC). If id is not indexed for user it
	// must return an error matching [ErrNotFound].
	Get(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (Values, error)
}

// errFound stops a List scan once the wanted document was seen.
var errFound = errors.New("index: found")

// Get returns the [Values] of an indexed document. If it is not indexed
// for user the error matches [ErrNotFound]. A backend without
// [GetBackend] is scanned, which costs a pass over the user's documents.
func (x *Index) Get(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (Values, error) {
	if err := x.check(user); err != nil {
		return Values{}, err
	}
	if gb, ok := x.b.(GetBackend); ok {
		v, err := gb.Get(ctx, user, id)
		if err != nil {
			return Values{}, fmt.Errorf("index: get %s of %s: %w", id, user, err)
		}
		return v, nil
	}
	var out Values
	err := x.b.List(ctx, user, func(got mailbricks.MessageID, v Values) error {
		if got == id {
			out = v
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return out, nil
	case err != nil:
		return Values{}, fmt.Errorf("index: get %s of %s: %w", id, user, err)
	}
	return Values{}, fmt.Errorf("index: get %s of %s: %w", id, user, ErrNotFound)
}

// Patch is a partial change of a document's [Values] for [Index.Patch]:
// nil pointers and zero flag sets leave the value as it is.
type Patch struct {
	// Folder, if not nil, replaces Values.Folder.
	Folder *string
	// SetFlags are added to and ClearFlags removed from Values.Flags,
	// in that order.
	SetFlags, ClearFlags Flag
	// Keywords, if not nil, replaces Values.Keywords. AddKeywords and
	// RemoveKeywords are then applied, in that order; the result has no
	// duplicates and keeps the order of first appearance.
	Keywords                    *[]string
	AddKeywords, RemoveKeywords []string
	// UID and ModSeq, if not nil, replace Values.UID and Values.ModSeq.
	UID    *uint32
	ModSeq *uint64
	// Thread, if not nil, replaces Values.Thread.
	Thread *string
}

// Apply returns v changed by p. v is not modified.
func (p *Patch) Apply(v Values) Values {
	if p.Folder != nil {
		v.Folder = *p.Folder
	}
	v.Flags = (v.Flags | p.SetFlags) &^ p.ClearFlags
	kw := v.Keywords
	if p.Keywords != nil {
		kw = *p.Keywords
	}
	if p.Keywords != nil || len(p.AddKeywords) > 0 || len(p.RemoveKeywords) > 0 {
		out := make([]string, 0, len(kw)+len(p.AddKeywords))
		for _, k := range slices.Concat(kw, p.AddKeywords) {
			if !slices.Contains(out, k) && !slices.Contains(p.RemoveKeywords, k) {
				out = append(out, k)
			}
		}
		v.Keywords = out
	}
	if p.UID != nil {
		v.UID = *p.UID
	}
	if p.ModSeq != nil {
		v.ModSeq = *p.ModSeq
	}
	if p.Thread != nil {
		v.Thread = *p.Thread
	}
	return v
}

// Patch changes some [Values] of an indexed document and leaves the rest
// (Size, Date, the attachment flag, …) as they are, so a caller that knows
// only what changed (a flag, the folder) never drops what it did not
// know. It returns the Values as stored. If the document is not indexed
// for user the error matches [ErrNotFound].
//
// Patch reads the document's Values and writes them back changed, holding
// a lock per user so that patches in this process do not lose each
// other's changes. Patches of one document from several processes at once
// may: writers that know a message's whole state (as mailbox.Store does)
// use [Index.Update] instead.
func (x *Index) Patch(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID, p Patch) (Values, error) {
	if err := x.check(user); err != nil {
		return Values{}, err
	}
	mu := &x.patchLocks[maphash.String(x.seed, string(user))%uint64(len(x.patchLocks))]
	mu.Lock()
	defer mu.Unlock()
	v, err := x.Get(ctx, user, id)
	if err != nil {
		return Values{}, err
	}
	v = p.Apply(v)
	if err := x.Update(ctx, user, id, v); err != nil {
		return Values{}, err
	}
	return v, nil
}

// SearchString parses q with [Parse] and searches with it.
func (x *Index) SearchString(ctx context.Context, user mailbricks.UserID, q string, opts *SearchOptions) (*Results, error) {
	pq, err := Parse(q)
	if err != nil {
		return nil, err
	}
	return x.Search(ctx, user, pq, opts)
}

// Search returns a page of user's documents that match q, newest first
// unless opts says otherwise, with the total number of matches and, unless
// opts.NoSnippets, a highlighted snippet per hit.
func (x *Index) Search(ctx context.Context, user mailbricks.UserID, q Query, opts *SearchOptions) (*Results, error) {
	if err := x.check(user); err != nil {
		return nil, err
	}
	var o SearchOptions
	if opts != nil {
		o = *opts
	}
	if o.Sort > SortOldest {
		return nil, fmt.Errorf("%w: unknown sort %d", ErrBadQuery, o.Sort)
	}
	if err := validate(q); err != nil {
		return nil, err
	}
	req := &Request{Query: q.Resolve(x.opts.Now()), Limit: o.Limit, Sort: o.Sort, WithText: !o.NoSnippets}
	if req.Limit <= 0 {
		req.Limit = x.opts.DefaultLimit
	}
	req.Limit = min(req.Limit, x.opts.MaxLimit)
	if o.Cursor != "" {
		p, err := decodeCursor(o.Cursor, o.Sort)
		if err != nil {
			return nil, err
		}
		req.After = &p
	}
	res, err := x.b.Search(ctx, user, req)
	if err != nil {
		return nil, fmt.Errorf("index: search %s: %w", user, err)
	}
	res.Cursor = ""
	if len(res.Hits) == req.Limit {
		last := res.Hits[len(res.Hits)-1]
		res.Cursor = encodeCursor(o.Sort, Position{Date: last.Values.Date.Unix(), ID: last.ID})
	}
	if req.WithText {
		terms := highlightTerms(req.Query)
		for i := range res.Hits {
			h := &res.Hits[i]
			h.Snippet, h.Highlights = makeSnippet(h.Snippet, terms, x.opts.SnippetLen)
		}
	} else {
		for i := range res.Hits {
			res.Hits[i].Subject, res.Hits[i].Snippet, res.Hits[i].Highlights = "", "", nil
		}
	}
	return res, nil
}

// validate rejects queries a backend cannot evaluate and queries over
// the limits (see [MaxQueryLen] and the other query limits).
func validate(q Query) error {
	var c queryCost
	return validateNode(&q, 0, &c)
}

func validateNode(q *Query, depth int, c *queryCost) error {
	if err := c.add(q); err != nil {
		return err
	}
	switch q.Kind {
	case KindAll, KindFlag, KindKeyword, KindFolder, KindThread, KindUID, KindNewer, KindOlder:
	case KindText:
		if int(q.Field) >= NumFields {
			return fmt.Errorf("%w: unknown field %d", ErrBadQuery, q.Field)
		}
	case KindRange:
		if q.Range > RangeModSeq {
			return fmt.Errorf("%w: unknown range field %d", ErrBadQuery, q.Range)
		}
	case KindNot:
		if len(q.Sub) != 1 {
			return fmt.Errorf("%w: NOT needs exactly one operand", ErrBadQuery)
		}
		fallthrough
	case KindAnd, KindOr:
		if len(q.Sub) > 0 && depth >= MaxQueryDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrBadQuery, MaxQueryDepth)
		}
		for i := range q.Sub {
			if err := validateNode(&q.Sub[i], depth+1, c); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrBadQuery, q.Kind)
	}
	return nil
}

// Cursor layout: base64url (no padding) of
//
//	[1] version 1
//	[1] sort
//	[8] date, big-endian two's complement
//	[16] message ID
func encodeCursor(s Sort, p Position) string {
	var b [26]byte
	b[0] = 1
	b[1] = byte(s)
	binary.BigEndian.PutUint64(b[2:], uint64(p.Date))
	copy(b[10:], p.ID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(c string, s Sort) (Position, error) {
	if len(c) > 64 { // a cursor is 35 bytes; do not decode a caller's megabytes
		return Position{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 26 || b[0] != 1 {
		return Position{}, ErrBadCursor
	}
	if Sort(b[1]) != s {
		return Position{}, fmt.Errorf("%w: made for another sort order", ErrBadCursor)
	}
	var p Position
	p.Date = int64(binary.BigEndian.Uint64(b[2:]))
	copy(p.ID[:], b[10:])
	return p, nil
}

// Less reports whether (date a, id a) comes before b in order s. Backends
// use it to order hits and to apply [Request].After.
func Less(s Sort, aDate int64, aID mailbricks.MessageID, bDate int64, bID mailbricks.MessageID) bool {
	if aDate != bDate {
		if s == SortNewest {
			return aDate > bDate
		}
		return aDate < bDate
	}
	c := aID.Compare(bID)
	if s == SortNewest {
		return c > 0
	}
	return c < 0
}

// Reindex rebuilds user's index from src: it deletes every indexed
// document of user, then indexes each document src yields, in batches. It
// returns the number of documents indexed. Searches during a rebuild see
// a partial index.
func (x *Index) Reindex(ctx context.Context, user mailbricks.UserID, src Source) (int, error) {
	if err := x.check(user); err != nil {
		return 0, err
	}
	if err := x.b.DeleteUser(ctx, user); err != nil {
		return 0, fmt.Errorf("index: reindex %s: %w", user, err)
	}
	n := 0
	batch := make([]*Document, 0, x.opts.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := x.IndexBatch(ctx, user, batch); err != nil {
			return err
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	err := src.Documents(ctx, user, func(d *Document) error {
		batch = append(batch, d)
		if len(batch) >= x.opts.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return n, fmt.Errorf("index: reindex %s: %w", user, err)
	}
	return n, nil
}

// Drift is what [Index.Check] found different between an index and its
// source.
type Drift struct {
	// Missing are messages of the source that are not indexed.
	Missing []mailbricks.MessageID
	// Extra are indexed messages the source no longer has.
	Extra []mailbricks.MessageID
	// Stale are messages indexed with Values that differ from the
	// source's (a lost flag or folder update).
	Stale []mailbricks.MessageID
	// Checked is the number of source messages compared.
	Checked int
}

// OK reports whether no drift was found.
func (d *Drift) OK() bool { return len(d.Missing)+len(d.Extra)+len(d.Stale) == 0 }

// Check compares user's index with src and reports the drift: messages
// missing from the index, indexed messages src no longer has, and indexed
// Values that differ from src's. It changes nothing; [Index.Repair] fixes
// what it finds. The ID lists are sorted.
func (x *Index) Check(ctx context.Context, user mailbricks.UserID, src Source) (*Drift, error) {
	d, _, err := x.check2(ctx, user, src, false)
	return d, err
}

// Repair is [Index.Check] followed by the fix: missing and stale documents
// are indexed from src, extra ones deleted. It returns the drift it
// repaired.
func (x *Index) Repair(ctx context.Context, user mailbricks.UserID, src Source) (*Drift, error) {
	d, docs, err := x.check2(ctx, user, src, true)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(docs); i += x.opts.BatchSize {
		if err := x.IndexBatch(ctx, user, docs[i:min(i+x.opts.BatchSize, len(docs))]); err != nil {
			return nil, err
		}
	}
	if err := x.Delete(ctx, user, d.Extra...); err != nil {
		return nil, err
	}
	return d, nil
}

func (x *Index) check2(ctx context.Context, user mailbricks.UserID, src Source, keep bool) (*Drift, []*Document, error) {
	if err := x.check(user); err != nil {
		return nil, nil, err
	}
	indexed := map[mailbricks.MessageID]Values{}
	err := x.b.List(ctx, user, func(id mailbricks.MessageID, v Values) error {
		indexed[id] = v
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("index: check %s: %w", user, err)
	}
	d := &Drift{}
	var fix []*Document
	seen := map[mailbricks.MessageID]bool{}
	err = src.Documents(ctx, user, func(doc *Document) error {
		d.Checked++
		seen[doc.ID] = true
		v, ok := indexed[doc.ID]
		switch {
		case !ok:
			d.Missing = append(d.Missing, doc.ID)
		case !EqualValues(v, doc.Values):
			d.Stale = append(d.Stale, doc.ID)
		default:
			return nil
		}
		if keep {
			fix = append(fix, doc)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("index: check %s: %w", user, err)
	}
	for id := range indexed {
		if !seen[id] {
			d.Extra = append(d.Extra, id)
		}
	}
	for _, l := range [][]mailbricks.MessageID{d.Missing, d.Extra, d.Stale} {
		slices.SortFunc(l, mailbricks.MessageID.Compare)
	}
	return d, fix, nil
}

// EqualValues reports whether a and b are equal as a backend stores them:
// dates to the second, keywords as a list.
func EqualValues(a, b Values) bool {
	return unixOrZero(a.Date) == unixOrZero(b.Date) && unixOrZero(a.SentDate) == unixOrZero(b.SentDate) &&
		a.Size == b.Size && a.Folder == b.Folder && a.Flags == b.Flags && slices.Equal(a.Keywords, b.Keywords) &&
		a.Thread == b.Thread && a.UID == b.UID && a.ModSeq == b.ModSeq
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// UnixOrZero returns t in Unix seconds, or 0 for the zero time; backends
// store dates this way.
func UnixOrZero(t time.Time) int64 { return unixOrZero(t) }

// TimeOrZero is the inverse of [UnixOrZero]: 0 gives the zero time, other
// values a UTC time.
func TimeOrZero(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// Close closes the index and its backend. It is idempotent; other methods
// then return [ErrClosed].
func (x *Index) Close() error {
	if x.closed.Swap(true) {
		return nil
	}
	return x.b.Close()
}
