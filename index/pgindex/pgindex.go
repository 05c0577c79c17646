// Package pgindex is an [index.Backend] on PostgreSQL full-text search,
// for deployments where many stateless servers share one (or a
// Postgres-wire distributed) database.
//
// # Semantics
//
// Each document is one row. Its terms are the ones [index.Document.Analyze]
// yields — the same tokenizer as every backend, not a PostgreSQL text
// search configuration — stored as a tsvector whose lexemes are a field
// letter followed by the term ("sreport" is "report" in the subject), with
// positions, under a GIN index. A phrase is a tsquery of lexemes joined by
// <-> (what phraseto_tsquery builds), a prefix a lexeme with :*, a
// word in any field an OR of the fields' lexemes. Doc values are columns;
// results are ordered by (date, msg_id) through a B-tree index.
//
// Writes are transactions: [Backend.Index] commits all of its documents
// or none. Reads see committed data (READ COMMITTED); a search and its
// total count are two statements of one read-only REPEATABLE READ
// transaction, so they agree.
//
// User IDs are opaque bytes, stored as bytea, so every valid
// [mailbricks.UserID] works and stays apart from every other. Subjects,
// bodies, folders, threads and keywords are stored as text with NUL bytes
// removed and invalid UTF-8 replaced by U+FFFD, in documents and queries
// alike. Errors a retry may cure (a dropped connection, a failover, a
// deadlock) satisfy [mailbricks.IsTemporary].
//
// A restart or failover of the server needs only retries: calls fail with
// such errors while it is down and the same pool and Backend work again
// once it is back (pgxpool replaces broken connections). An Index that
// returned nil survives a crash of the server; one that failed committed
// all of its documents or none, and may simply be repeated (it replaces
// documents by ID). TestServerRestart (MAILBRICKS_LONG=1) restarts a
// private server twice, cleanly and as a crash, under 6 writers and 2
// searchers: 3,600 acknowledged documents, none lost, every error
// temporary.
//
// Limits: a tsvector keeps at most 256 positions of one lexeme, so only
// the first 256 occurrences of a term in a field of a message count for
// phrase matching (a term alone still matches). [index.MaxFieldPositions]
// keeps positions under PostgreSQL's 16,383.
//
// # Schema
//
// [Open] creates, if missing, the schema [Options.Schema] and applies the
// embedded migrations (migrations/*.sql) it has not applied yet, in one
// transaction under an advisory lock, recording them in the schema's
// mailbricks_migrations table (the mechanism pgmailbox and pgqueue
// share). Version 1:
//
//	CREATE TABLE docs (
//	  user_id   bytea    NOT NULL,
//	  msg_id    bytea    NOT NULL,  -- 16-byte MessageID, sorts by time
//	  date      bigint   NOT NULL,  -- Unix seconds, 0 = none
//	  sent_date bigint   NOT NULL,
//	  size      bigint   NOT NULL,
//	  folder    text     NOT NULL,
//	  flags     integer  NOT NULL,  -- index.Flag bits
//	  keywords  text[]   NOT NULL,
//	  thread    text     NOT NULL,
//	  uid       bigint   NOT NULL,
//	  modseq    bigint   NOT NULL,
//	  terms     tsvector NOT NULL,
//	  subject   text     NOT NULL,  -- stored for snippets
//	  body      text     NOT NULL,
//	  PRIMARY KEY (user_id, msg_id)
//	) PARTITION BY HASH (user_id);   -- Options.Partitions partitions
//	CREATE INDEX ON docs USING gin (terms);
//	CREATE INDEX ON docs (user_id, date, msg_id);
package pgindex

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/pgerr"
	"github.com/mailbricks/mailbricks/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configures [Open]. A nil *Options and every zero field mean the
// default. Options are copied by Open.
type Options struct {
	// Schema is the PostgreSQL schema of the table, created if missing:
	// letters, digits and '_', starting with a letter or '_', at most 48
	// bytes. The default is "mailbricks_index".
	Schema string
	// Partitions is the number of hash partitions by user, used when the
	// schema is created. The default is 8.
	Partitions int
}

// Backend is the PostgreSQL [index.Backend]. It is safe for concurrent
// use.
type Backend struct {
	pool   *pgxpool.Pool
	schema string // quoted
	closed atomic.Bool
}

var _ index.GetBackend = (*Backend)(nil)

// Open applies the schema's migrations (see the package documentation) and
// returns a backend on pool. The caller owns pool and closes it after the
// backend.
func Open(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*Backend, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = "mailbricks_index"
	}
	if o.Partitions <= 0 {
		o.Partitions = 8
	}
	if !pgmigrate.ValidSchema(o.Schema) {
		return nil, fmt.Errorf("%w: pgindex: schema name %q", index.ErrInvalidDocument, o.Schema)
	}
	b := &Backend{pool: pool, schema: pgx.Identifier{o.Schema}.Sanitize()}
	steps, err := pgmigrate.Load(migrations, "migrations", map[string]string{
		"schema": b.schema, "schema_name": o.Schema, "partitions": strconv.Itoa(o.Partitions),
	})
	if err == nil {
		_, err = pgmigrate.Apply(ctx, pool, o.Schema, "pgindex", steps)
	}
	if err != nil {
		return nil, fmt.Errorf("pgindex: migrate schema %s: %w", o.Schema, pgerr.Classify(err, index.ErrInvalidDocument))
	}
	return b, nil
}

// Close marks the backend closed. It does not close the pool. It is
// idempotent; other methods then return [index.ErrClosed].
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

// fieldLetters are the lexeme prefixes of the fields.
var fieldLetters = [index.NumFields]byte{0, 'f', 't', 'c', 'b', 's', 'x', 'n', 'h'}

// maxLexemePositions is PostgreSQL's limit of positions per lexeme.
const maxLexemePositions = 256

// tsvector builds the tsvector literal of d: each lexeme quoted, with its
// 1-based positions.
func tsvector(d *index.Document) string {
	type lex struct {
		pos []int
	}
	m := map[string]*lex{}
	var order []string
	var kb []byte
	d.Analyze(func(f index.Field, term []byte, pos int) {
		kb = append(append(kb[:0], fieldLetters[f]), term...)
		l := m[string(kb)]
		if l == nil {
			l = &lex{}
			m[string(kb)] = l
			order = append(order, string(kb))
		}
		if n := len(l.pos); n < maxLexemePositions && (n == 0 || l.pos[n-1] != pos+1) {
			l.pos = append(l.pos, pos+1)
		}
	})
	var sb strings.Builder
	for i, k := range order {
		if i > 0 {
			sb.WriteByte(' ')
		}
		quoteLexeme(&sb, k)
		sb.WriteByte(':')
		for j, p := range m[k].pos {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.Itoa(p))
		}
	}
	return sb.String()
}

// quoteLexeme writes a lexeme in tsvector/tsquery literal syntax: single
// quotes, with quotes and backslashes escaped by a backslash.
func quoteLexeme(sb *strings.Builder, s string) {
	sb.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('\'')
}

// check returns an error wrapping [mailbricks.ErrInvalidUser] if u is not
// valid, as [index.Index] does: the backend does not trust its caller
// with another user's rows. Every entry point calls it first.
func check(u mailbricks.UserID) error {
	if err := u.Validate(); err != nil {
		return fmt.Errorf("pgindex: %w", err)
	}
	return nil
}

// Index implements [index.Backend] with one transaction of upserts.
func (b *Backend) Index(ctx context.Context, u mailbricks.UserID, docs []*index.Document) error {
	if err := check(u); err != nil {
		return err
	}
	for _, d := range docs {
		if d == nil || d.ID.IsZero() {
			return fmt.Errorf("pgindex: %w: nil document or zero ID", index.ErrInvalidDocument)
		}
	}
	last := map[mailbricks.MessageID]int{}
	for i, d := range docs {
		last[d.ID] = i
	}
	batch := &pgx.Batch{}
	q := `INSERT INTO ` + b.schema + `.docs (user_id, msg_id, date, sent_date, size, folder, flags, keywords, thread, uid, modseq, terms, subject, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::tsvector, $13, $14)
		ON CONFLICT (user_id, msg_id) DO UPDATE SET date = EXCLUDED.date, sent_date = EXCLUDED.sent_date,
		size = EXCLUDED.size, folder = EXCLUDED.folder, flags = EXCLUDED.flags, keywords = EXCLUDED.keywords,
		thread = EXCLUDED.thread, uid = EXCLUDED.uid, modseq = EXCLUDED.modseq, terms = EXCLUDED.terms,
		subject = EXCLUDED.subject, body = EXCLUDED.body`
	for i, d := range docs {
		if last[d.ID] != i {
			continue
		}
		v := &d.Values
		batch.Queue(q, []byte(u), d.ID[:], index.UnixOrZero(v.Date), index.UnixOrZero(v.SentDate), v.Size,
			clean(v.Folder), int32(v.Flags), cleanAll(v.Keywords), clean(v.Thread), int64(v.UID), int64(v.ModSeq),
			tsvector(d), clean(d.Subject), clean(d.Body))
	}
	return b.tx(ctx, pgx.ReadWrite, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, batch).Close()
	})
}

// clean removes NUL bytes and invalid UTF-8, which PostgreSQL text
// rejects.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 && isValidUTF8(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

func cleanAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}

// Delete implements [index.Backend].
func (b *Backend) Delete(ctx context.Context, u mailbricks.UserID, ids []mailbricks.MessageID) error {
	if err := check(u); err != nil {
		return err
	}
	keys := make([][]byte, len(ids))
	for i := range ids {
		keys[i] = ids[i][:]
	}
	return b.tx(ctx, pgx.ReadWrite, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM `+b.schema+`.docs WHERE user_id = $1 AND msg_id = ANY($2)`, []byte(u), keys)
		return err
	})
}

// Update implements [index.Backend].
func (b *Backend) Update(ctx context.Context, u mailbricks.UserID, id mailbricks.MessageID, v index.Values) error {
	if err := check(u); err != nil {
		return err
	}
	return b.tx(ctx, pgx.ReadWrite, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE `+b.schema+`.docs SET date = $3, sent_date = $4, size = $5, folder = $6,
			flags = $7, keywords = $8, thread = $9, uid = $10, modseq = $11 WHERE user_id = $1 AND msg_id = $2`,
			[]byte(u), id[:], index.UnixOrZero(v.Date), index.UnixOrZero(v.SentDate), v.Size, clean(v.Folder),
			int32(v.Flags), cleanAll(v.Keywords), clean(v.Thread), int64(v.UID), int64(v.ModSeq))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return index.ErrNotFound
		}
		return nil
	})
}

// DeleteUser implements [index.Backend].
func (b *Backend) DeleteUser(ctx context.Context, u mailbricks.UserID) error {
	if err := check(u); err != nil {
		return err
	}
	return b.tx(ctx, pgx.ReadWrite, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM `+b.schema+`.docs WHERE user_id = $1`, []byte(u))
		return err
	})
}

const valueCols = `msg_id, date, sent_date, size, folder, flags, keywords, thread, uid, modseq`

func scanValues(row pgx.Row, extra ...any) (mailbricks.MessageID, index.Values, error) {
	var id mailbricks.MessageID
	var v index.Values
	var raw []byte
	var date, sent, uid, modseq int64
	var flags int32
	dst := append([]any{&raw, &date, &sent, &v.Size, &v.Folder, &flags, &v.Keywords, &v.Thread, &uid, &modseq}, extra...)
	if err := row.Scan(dst...); err != nil {
		return id, v, err
	}
	if len(raw) != len(id) {
		return id, v, fmt.Errorf("pgindex: msg_id of %d bytes", len(raw))
	}
	copy(id[:], raw)
	v.Date, v.SentDate = index.TimeOrZero(date), index.TimeOrZero(sent)
	v.Flags, v.UID, v.ModSeq = index.Flag(flags), uint32(uid), uint64(modseq)
	if len(v.Keywords) == 0 {
		v.Keywords = nil
	}
	return id, v, nil
}

// Get implements [index.GetBackend]: one indexed point read.
func (b *Backend) Get(ctx context.Context, u mailbricks.UserID, id mailbricks.MessageID) (index.Values, error) {
	if err := check(u); err != nil {
		return index.Values{}, err
	}
	var v index.Values
	err := b.tx(ctx, pgx.ReadOnly, func(tx pgx.Tx) error {
		var err error
		_, v, err = scanValues(tx.QueryRow(ctx, `SELECT `+valueCols+` FROM `+b.schema+`.docs WHERE user_id = $1 AND msg_id = $2`, []byte(u), id[:]))
		if errors.Is(err, pgx.ErrNoRows) {
			return index.ErrNotFound
		}
		return err
	})
	return v, err
}

// List implements [index.Backend].
func (b *Backend) List(ctx context.Context, u mailbricks.UserID, fn func(mailbricks.MessageID, index.Values) error) error {
	if err := check(u); err != nil {
		return err
	}
	return b.tx(ctx, pgx.ReadOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+valueCols+` FROM `+b.schema+`.docs WHERE user_id = $1`, []byte(u))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			id, v, err := scanValues(rows)
			if err != nil {
				return err
			}
			if err := fn(id, v); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// Search implements [index.Backend].
func (b *Backend) Search(ctx context.Context, u mailbricks.UserID, req *index.Request) (*index.Results, error) {
	if err := check(u); err != nil {
		return nil, err
	}
	w := &where{args: []any{[]byte(u)}}
	w.build(req.Query)
	cond := w.sb.String()
	res := &index.Results{}
	err := b.tx(ctx, pgx.ReadOnly, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+b.schema+`.docs WHERE user_id = $1 AND `+cond, w.args...).Scan(&res.Total); err != nil {
			return err
		}
		dir, cmp := "DESC", "<"
		if req.Sort == index.SortOldest {
			dir, cmp = "ASC", ">"
		}
		args := w.args
		page := cond
		if req.After != nil {
			args = append(slices.Clone(args), req.After.Date, req.After.ID[:])
			page += fmt.Sprintf(" AND (date, msg_id) %s ($%d, $%d)", cmp, len(args)-1, len(args))
		}
		cols := valueCols
		if req.WithText {
			cols += ", subject, body"
		}
		args = append(args, req.Limit)
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s.docs WHERE user_id = $1 AND %s ORDER BY date %s, msg_id %s LIMIT $%d`,
			cols, b.schema, page, dir, dir, len(args)), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h index.Hit
			var extra []any
			if req.WithText {
				extra = []any{&h.Subject, &h.Snippet}
			}
			h.ID, h.Values, err = scanValues(rows, extra...)
			if err != nil {
				return err
			}
			res.Hits = append(res.Hits, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// where compiles a resolved query to a SQL condition with arguments.
type where struct {
	sb   strings.Builder
	args []any
}

func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) build(q index.Query) {
	sb := &w.sb
	switch q.Kind {
	case index.KindAll:
		sb.WriteString("TRUE")
	case index.KindAnd, index.KindOr:
		if len(q.Sub) == 0 {
			if q.Kind == index.KindAnd {
				sb.WriteString("TRUE")
			} else {
				sb.WriteString("FALSE")
			}
			return
		}
		op := " AND "
		if q.Kind == index.KindOr {
			op = " OR "
		}
		sb.WriteByte('(')
		for i, s := range q.Sub {
			if i > 0 {
				sb.WriteString(op)
			}
			w.build(s)
		}
		sb.WriteByte(')')
	case index.KindNot:
		sb.WriteString("NOT (")
		w.build(q.Sub[0])
		sb.WriteByte(')')
	case index.KindText:
		if len(q.Terms) == 0 {
			sb.WriteString("TRUE")
			return
		}
		sb.WriteString("terms @@ " + w.arg(tsquery(q)) + "::tsquery")
	case index.KindFlag:
		a := w.arg(int32(q.Flag))
		sb.WriteString("(flags & " + a + ") = " + a)
	case index.KindKeyword:
		sb.WriteString(w.arg(clean(q.Text)) + " = ANY(keywords)")
	case index.KindFolder:
		sb.WriteString("folder = " + w.arg(clean(q.Text)))
	case index.KindThread:
		sb.WriteString("thread = " + w.arg(clean(q.Text)))
	case index.KindRange:
		col := [...]string{"date", "sent_date", "size", "modseq"}[q.Range]
		sb.WriteString("(TRUE")
		if q.Min != math.MinInt64 {
			sb.WriteString(" AND " + col + " >= " + w.arg(q.Min))
		}
		if q.Max != math.MaxInt64 {
			sb.WriteString(" AND " + col + " < " + w.arg(q.Max))
		} else if q.Min == math.MaxInt64 {
			sb.WriteString(" AND FALSE")
		}
		sb.WriteByte(')')
	case index.KindUID:
		sb.WriteString("(FALSE")
		for _, r := range q.UIDs {
			sb.WriteString(" OR uid BETWEEN " + w.arg(int64(r.Start)) + " AND " + w.arg(int64(r.Stop)))
		}
		sb.WriteByte(')')
	default:
		sb.WriteString("FALSE")
	}
}

// tsquery builds the tsquery literal of a resolved text node.
func tsquery(q index.Query) string {
	var sb strings.Builder
	fields := []index.Field{q.Field}
	if q.Field == index.FieldAny {
		fields = index.ContentFields
	}
	for i, f := range fields {
		if i > 0 {
			sb.WriteString(" | ")
		}
		sb.WriteByte('(')
		for j, t := range q.Terms {
			if j > 0 {
				sb.WriteString(" <-> ")
			}
			quoteLexeme(&sb, string(fieldLetters[f])+t)
			if q.Prefix && j == len(q.Terms)-1 {
				sb.WriteString(":*")
			}
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// tx runs fn in a transaction on a connection of the pool.
func (b *Backend) tx(ctx context.Context, mode pgx.TxAccessMode, fn func(pgx.Tx) error) error {
	if b.closed.Load() {
		return index.ErrClosed
	}
	iso := pgx.ReadCommitted
	if mode == pgx.ReadOnly {
		iso = pgx.RepeatableRead
	}
	err := pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: iso, AccessMode: mode}, fn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, index.ErrNotFound):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("pgindex: %w", pgerr.Classify(err, index.ErrInvalidDocument))
}

func isValidUTF8(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return strings.ToValidUTF8(s, "\uFFFD") == s
		}
	}
	return true
}
