// Package pgmailbox is a [mailbox.Backend] on PostgreSQL, through pgx v5.
//
// # Semantics
//
// Every write is one SQL transaction (READ COMMITTED): the UID and MODSEQ
// come from UPDATE folders … RETURNING in the same transaction as the
// message rows, the read/unread table move and the counts, so they commit
// or roll back together. Row locks give one writer order per folder:
// writers lock the messages they change (ordered by ID), then the folders
// (ordered by folder ID), so concurrent writers never deadlock. Reads
// that touch several tables run in one REPEATABLE READ transaction and
// see whole changes only. Any number of processes may share the schema.
//
// Watch uses LISTEN/NOTIFY on the channel "<schema>_mailbox": each write
// sends its events with pg_notify in its transaction, so they are
// delivered at commit, in commit order, to every process listening; one
// connection of the pool per Backend listens and fans events out to its
// watchers. If that connection breaks, watchers get
// [mailbox.EventOverflow] and it reconnects.
//
// User IDs and idempotency keys are opaque bytes, stored as bytea, so any
// valid [mailbricks.UserID] and any [mailbox.AppendOptions].Key round-trip
// exactly. Text that PostgreSQL cannot store (a NUL, invalid UTF-8) in a
// text or jsonb column is rejected with an error wrapping
// [mailbox.ErrInvalidArgument]; errors a retry may cure (a dropped
// connection, a failover, a deadlock) satisfy [mailbricks.IsTemporary].
//
// # Schema
//
// [Open] creates, if missing, the schema [Options.Schema] and applies the
// embedded migrations (migrations/*.sql) it has not applied yet, in one
// transaction under an advisory lock, recording them in the schema's
// mailbricks_migrations table (the mechanism pgindex and pgqueue share).
// Every table is PARTITION BY HASH (user_id) with [Options.Partitions]
// partitions and has user_id (bytea) first in its primary key:
//
//	users(user_id, next_folder)                       folder ID allocation
//	folders(user_id, folder_id, name, role, uidnext, highestmodseq,
//	        total, unread, size)                      folder_id is UIDVALIDITY
//	messages(user_id, id, folder_id, uid, modseq, flags, thread_id,
//	         size, meta jsonb, skeleton)              metadata and skeleton
//	unread(user_id, folder_id, id)                    messages without \Seen
//	read(user_id, folder_id, id)                      messages with \Seen
//	expunged(user_id, folder_id, modseq, uid)         expunge tombstones
//	msgkeys(user_id, key bytea, id)                   idempotency keys
//	thread_keys(user_id, tkey, thread_id)             thread lookup
//	subscriptions(user_id, name)                      IMAP subscriptions
//
// "List 50 newest unread" is an index range scan of unread's primary key
// backwards, joined to messages by primary key: its cost follows the page.
package pgmailbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/pgerr"
	"github.com/mailbricks/mailbricks/internal/pgmigrate"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/internal/feed"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configures [Open]. A nil *Options and every zero field mean the
// default. Options are copied by Open.
type Options struct {
	// Schema is the PostgreSQL schema of the tables, created if missing:
	// letters, digits and '_', starting with a letter or '_', at most 48
	// bytes. The default is "mailbricks_mailbox".
	Schema string
	// Partitions is the number of hash partitions of each table, used
	// when the schema is created. The default is 16.
	Partitions int
}

// Backend is the PostgreSQL [mailbox.Backend]. It is safe for concurrent
// use.
type Backend struct {
	pool    *pgxpool.Pool
	schema  string // quoted
	channel string
	hub     feed.Hub

	listenMu   sync.Mutex
	listening  bool
	stopListen context.CancelFunc
	listenDone chan struct{}

	closed atomic.Bool
}

var _ mailbox.Backend = (*Backend)(nil)

// Open applies the schema's migrations (see the package documentation) and
// returns a backend on pool. The caller owns pool and closes it after the
// backend; the backend takes connections from it for its transactions,
// and one for as long as any Watch is open.
func Open(ctx context.Context, pool *pgxpool.Pool, opts *Options) (*Backend, error) {
	o := Options{Schema: "mailbricks_mailbox", Partitions: 16}
	if opts != nil {
		if opts.Schema != "" {
			o.Schema = opts.Schema
		}
		if opts.Partitions > 0 {
			o.Partitions = opts.Partitions
		}
	}
	if !pgmigrate.ValidSchema(o.Schema) {
		return nil, fmt.Errorf("%w: pgmailbox: schema name %q", mailbox.ErrInvalidArgument, o.Schema)
	}
	b := &Backend{pool: pool, schema: pgx.Identifier{o.Schema}.Sanitize(), channel: o.Schema + "_mailbox"}
	steps, err := pgmigrate.Load(migrations, "migrations", map[string]string{
		"schema": b.schema, "schema_name": o.Schema, "partitions": strconv.Itoa(o.Partitions),
	})
	if err == nil {
		_, err = pgmigrate.Apply(ctx, pool, o.Schema, "pgmailbox", steps)
	}
	if err != nil {
		return nil, fmt.Errorf("pgmailbox: migrate schema %s: %w", o.Schema, pgerr.Classify(err, mailbox.ErrInvalidArgument))
	}
	return b, nil
}

// Close stops the listener and ends every Watch. It does not close the
// pool. It is idempotent; afterwards methods return [mailbox.ErrClosed].
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.listenMu.Lock()
	stop, done := b.stopListen, b.listenDone
	b.listenMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	b.hub.Close()
	return nil
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return mailbox.ErrClosed
	}
	return nil
}

// checkUser returns ErrClosed if b is closed, and an error wrapping
// [mailbricks.ErrInvalidUser] if user is not valid, as [mailbox.Store]
// does: the backend does not trust its caller with another user's rows.
func (b *Backend) checkUser(user mailbricks.UserID) error { return b.checkFolder(user) }

// checkFolder is checkUser and [mailbox.ValidateFolderName] of each name.
func (b *Backend) checkFolder(user mailbricks.UserID, names ...string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := mailbox.CheckUserFolders(user, names...); err != nil {
		return fmt.Errorf("pgmailbox: %w", err)
	}
	return nil
}

// t qualifies a table name with the schema.
func (b *Backend) t(name string) string { return b.schema + "." + name }

func (b *Backend) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, sentinel := range []error{mailbox.ErrNotFound, mailbox.ErrNoFolder, mailbox.ErrFolderExists, mailbox.ErrFolderNotEmpty, mailbox.ErrInvalidArgument, mailbox.ErrClosed} {
		if errors.Is(err, sentinel) {
			return err
		}
	}
	if b.closed.Load() {
		return mailbox.ErrClosed
	}
	return fmt.Errorf("pgmailbox: %s: %w", op, pgerr.Classify(err, mailbox.ErrInvalidArgument))
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// write runs f in a transaction and then publishes nothing itself: events
// travel by NOTIFY, sent by f through notify.
func (b *Backend) write(ctx context.Context, op string, f func(tx pgx.Tx) error) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.wrap(op, pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{}, f))
}

func (b *Backend) read(ctx context.Context, op string, f func(tx pgx.Tx) error) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.wrap(op, pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, f))
}

// query runs f on a connection without a transaction: for reads that are
// one statement.
func (b *Backend) query(ctx context.Context, op string, f func(q querier) error) error {
	if err := b.check(); err != nil {
		return err
	}
	return b.wrap(op, f(b.pool))
}

// wireEvent is the NOTIFY payload: JSON of the event.
type wireEvent struct {
	K mailbox.EventKind    `json:"k"`
	U []byte               `json:"u"` // base64: user IDs are opaque bytes
	F string               `json:"f,omitempty"`
	I mailbricks.MessageID `json:"i"`
	D uint32               `json:"d,omitempty"`
	M uint64               `json:"m,omitempty"`
	L []string             `json:"l,omitempty"`
}

func (b *Backend) notify(ctx context.Context, tx pgx.Tx, evs ...mailbox.Event) error {
	for _, ev := range evs {
		p, _ := json.Marshal(wireEvent{ev.Kind, []byte(ev.User), ev.Folder, ev.ID, ev.UID, ev.ModSeq, ev.Flags})
		if len(p) > 7900 {
			// NOTIFY payloads are limited to 8000 bytes; drop the flags,
			// which a watcher can read back with Get.
			p, _ = json.Marshal(wireEvent{ev.Kind, []byte(ev.User), ev.Folder, ev.ID, ev.UID, ev.ModSeq, nil})
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, b.channel, string(p)); err != nil {
			return err
		}
	}
	return nil
}

type folderRow struct {
	id   int64
	name string
	role string
	uidnext, hms,
	total, unread, size int64
}

func (r folderRow) folder() mailbox.Folder {
	return mailbox.Folder{
		Name: r.name, Role: mailbox.Role(r.role), UIDValidity: uint32(r.id), UIDNext: uint32(r.uidnext),
		HighestModSeq: uint64(r.hms), Counts: mailbox.Counts{Total: r.total, Unread: r.unread, Size: r.size},
	}
}

const folderCols = `folder_id, name, role, uidnext, highestmodseq, total, unread, size`

func scanFolder(row pgx.Row) (folderRow, error) {
	var r folderRow
	err := row.Scan(&r.id, &r.name, &r.role, &r.uidnext, &r.hms, &r.total, &r.unread, &r.size)
	return r, err
}

// Folders implements [mailbox.Backend.Folders].
func (b *Backend) Folders(ctx context.Context, user mailbricks.UserID) ([]mailbox.Folder, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	var out []mailbox.Folder
	err := b.read(ctx, "folders", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+folderCols+` FROM `+b.t("folders")+` WHERE user_id = $1 ORDER BY name COLLATE "C"`, []byte(user))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanFolder(rows)
			if err != nil {
				return err
			}
			out = append(out, r.folder())
		}
		return rows.Err()
	})
	return out, err
}

func (b *Backend) folderRow(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, user mailbricks.UserID, name string) (folderRow, error) {
	r, err := scanFolder(q.QueryRow(ctx, `SELECT `+folderCols+` FROM `+b.t("folders")+` WHERE user_id = $1 AND name = $2`, []byte(user), name))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("%w: %q", mailbox.ErrNoFolder, name)
	}
	return r, err
}

// Folder implements [mailbox.Backend.Folder].
func (b *Backend) Folder(ctx context.Context, user mailbricks.UserID, name string) (mailbox.Folder, error) {
	if err := b.checkFolder(user, name); err != nil {
		return mailbox.Folder{}, err
	}
	var r folderRow
	err := b.query(ctx, "folder", func(q querier) error {
		var err error
		r, err = b.folderRow(ctx, q, user, name)
		return err
	})
	return r.folder(), err
}

// CreateFolder implements [mailbox.Backend.CreateFolder].
func (b *Backend) CreateFolder(ctx context.Context, user mailbricks.UserID, name string, role mailbox.Role) (mailbox.Folder, error) {
	if err := b.checkFolder(user, name); err != nil {
		return mailbox.Folder{}, err
	}
	var f mailbox.Folder
	err := b.write(ctx, "create folder", func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO `+b.t("users")+` AS u (user_id) VALUES ($1)
			ON CONFLICT (user_id) DO UPDATE SET next_folder = u.next_folder + 1 RETURNING next_folder`, []byte(user)).Scan(&id)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+b.t("folders")+` (user_id, folder_id, name, role) VALUES ($1, $2, $3, $4)`, []byte(user), id, name, string(role))
		if isUnique(err) {
			return fmt.Errorf("%w: %q", mailbox.ErrFolderExists, name)
		}
		if err != nil {
			return err
		}
		f = mailbox.Folder{Name: name, Role: role, UIDValidity: uint32(id), UIDNext: 1}
		return b.notify(ctx, tx, mailbox.Event{Kind: mailbox.EventFolder, User: user, Folder: name})
	})
	return f, err
}

// RenameFolder implements [mailbox.Backend.RenameFolder].
func (b *Backend) RenameFolder(ctx context.Context, user mailbricks.UserID, from, to string) error {
	if err := b.checkFolder(user, from, to); err != nil {
		return err
	}
	return b.write(ctx, "rename folder", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT folder_id, name FROM `+b.t("folders")+`
			WHERE user_id = $1 AND (name = $2 OR left(name, length($2) + 1) = $2 || '/') FOR UPDATE`, []byte(user), from)
		if err != nil {
			return err
		}
		type fr struct {
			id   int64
			name string
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fr, error) {
			var f fr
			return f, r.Scan(&f.id, &f.name)
		})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(list, func(f fr) bool { return f.name == from }) {
			return fmt.Errorf("%w: %q", mailbox.ErrNoFolder, from)
		}
		// Move the names out of the way first (to names no valid folder
		// name can take: they start with a control character), so that
		// renaming "a" to
		// "a2" with a child "a/b" never collides with itself.
		for _, f := range list {
			if _, err := tx.Exec(ctx, `UPDATE `+b.t("folders")+` SET name = $3 WHERE user_id = $1 AND folder_id = $2`, []byte(user), f.id, "\x01"+strconv.FormatInt(f.id, 10)); err != nil {
				return err
			}
		}
		for _, f := range list {
			nn := to + f.name[len(from):]
			_, err := tx.Exec(ctx, `UPDATE `+b.t("folders")+` SET name = $3, role = $4 WHERE user_id = $1 AND folder_id = $2`, []byte(user), f.id, nn, string(mailbox.FolderRole(nn)))
			if isUnique(err) {
				return fmt.Errorf("%w: %q", mailbox.ErrFolderExists, nn)
			}
			if err != nil {
				return err
			}
			if err := b.notify(ctx, tx, mailbox.Event{Kind: mailbox.EventFolder, User: user, Folder: nn}); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteFolder implements [mailbox.Backend.DeleteFolder].
func (b *Backend) DeleteFolder(ctx context.Context, user mailbricks.UserID, name string) error {
	if err := b.checkFolder(user, name); err != nil {
		return err
	}
	return b.write(ctx, "delete folder", func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `SELECT folder_id FROM `+b.t("folders")+` WHERE user_id = $1 AND name = $2 FOR UPDATE`, []byte(user), name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", mailbox.ErrNoFolder, name)
		}
		if err != nil {
			return err
		}
		var nonEmpty bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+b.t("messages")+` WHERE user_id = $1 AND folder_id = $2)`, []byte(user), id).Scan(&nonEmpty); err != nil {
			return err
		}
		if nonEmpty {
			return fmt.Errorf("%w: %q", mailbox.ErrFolderNotEmpty, name)
		}
		for _, q := range []string{
			`DELETE FROM ` + b.t("folders") + ` WHERE user_id = $1 AND folder_id = $2`,
			`DELETE FROM ` + b.t("expunged") + ` WHERE user_id = $1 AND folder_id = $2`,
		} {
			if _, err := tx.Exec(ctx, q, []byte(user), id); err != nil {
				return err
			}
		}
		return b.notify(ctx, tx, mailbox.Event{Kind: mailbox.EventFolder, User: user, Folder: name})
	})
}

func seenTable(flags []string) string {
	if mailbox.HasFlag(flags, mailbox.FlagSeen) {
		return "read"
	}
	return "unread"
}

func unread(flags []string) int64 {
	if mailbox.HasFlag(flags, mailbox.FlagSeen) {
		return 0
	}
	return 1
}

// metaJSON is the meta column: the message without the fields that have
// columns of their own.
func metaJSON(m *mailbox.Message) []byte {
	c := *m
	c.Folder, c.UID, c.ModSeq, c.Flags, c.UIDValidity = "", 0, 0, nil, 0
	p, _ := json.Marshal(c)
	return p
}

// insertMsg inserts message m (UID and ModSeq set) into folder fid with its
// read/unread row.
func (b *Backend) insertMsg(ctx context.Context, tx pgx.Tx, user mailbricks.UserID, fid int64, m *mailbox.Message, skel []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+b.t("messages")+` (user_id, id, folder_id, uid, modseq, flags, thread_id, size, meta, skeleton)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		[]byte(user), [16]byte(m.ID), fid, int64(m.UID), int64(m.ModSeq), m.Flags, [16]byte(m.ThreadID), m.Size, metaJSON(m), skel)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+b.t(seenTable(m.Flags))+` (user_id, folder_id, id) VALUES ($1, $2, $3)`, []byte(user), fid, [16]byte(m.ID))
	return err
}

// Append implements [mailbox.Backend.Append].
func (b *Backend) Append(ctx context.Context, user mailbricks.UserID, rec *mailbox.Record) (mailbox.Message, bool, error) {
	if err := b.checkFolder(user, rec.Folder); err != nil {
		return mailbox.Message{}, false, err
	}
	for _, k := range append([]string{rec.Key}, rec.ThreadKeys...) {
		if err := mailbox.ValidateKey(k); err != nil {
			return mailbox.Message{}, false, err
		}
	}
	var m mailbox.Message
	var existed bool
	err := b.write(ctx, "append", func(tx pgx.Tx) error {
		if rec.Key != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO `+b.t("msgkeys")+` (user_id, key, id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, []byte(user), []byte(rec.Key), [16]byte(rec.ID))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				existed = true
				var err error
				m, err = b.lookupKey(ctx, tx, user, rec.Key)
				return err
			}
		}
		m = rec.Message
		if m.Flags == nil {
			m.Flags = []string{}
		}
		var fid, uid, hms int64
		err := tx.QueryRow(ctx, `UPDATE `+b.t("folders")+` SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1,
			total = total + 1, unread = unread + $3, size = size + $4
			WHERE user_id = $1 AND name = $2 RETURNING folder_id, uidnext - 1, highestmodseq`,
			[]byte(user), rec.Folder, unread(m.Flags), m.Size).Scan(&fid, &uid, &hms)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", mailbox.ErrNoFolder, rec.Folder)
		}
		if err != nil {
			return err
		}
		m.UID, m.ModSeq, m.UIDValidity = uint32(uid), uint64(hms), uint32(fid)
		if err := b.insertMsg(ctx, tx, user, fid, &m, rec.Skeleton); err != nil {
			return err
		}
		for _, k := range rec.ThreadKeys {
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.t("thread_keys")+` (user_id, tkey, thread_id) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, tkey) DO UPDATE SET thread_id = excluded.thread_id`, []byte(user), k, [16]byte(m.ThreadID)); err != nil {
				return err
			}
		}
		return b.notify(ctx, tx, mailbox.Event{Kind: mailbox.EventAppend, User: user, Folder: m.Folder, ID: m.ID, UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags})
	})
	if err != nil {
		return mailbox.Message{}, false, err
	}
	return m, existed, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (b *Backend) lookupKey(ctx context.Context, q querier, user mailbricks.UserID, key string) (mailbox.Message, error) {
	var id [16]byte
	err := q.QueryRow(ctx, `SELECT id FROM `+b.t("msgkeys")+` WHERE user_id = $1 AND key = $2`, []byte(user), []byte(key)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return mailbox.Message{}, fmt.Errorf("%w: key %q", mailbox.ErrNotFound, key)
	}
	if err != nil {
		return mailbox.Message{}, err
	}
	msgs, err := b.messages(ctx, q, `WHERE m.user_id = $1 AND m.id = $2`, []byte(user), id)
	if err != nil {
		return mailbox.Message{}, err
	}
	if len(msgs) == 0 {
		return mailbox.Message{ID: id}, nil
	}
	return msgs[0], nil
}

// LookupKey implements [mailbox.Backend.LookupKey].
func (b *Backend) LookupKey(ctx context.Context, user mailbricks.UserID, key string) (mailbox.Message, error) {
	if err := b.checkUser(user); err != nil {
		return mailbox.Message{}, err
	}
	if err := mailbox.ValidateKey(key); err != nil {
		return mailbox.Message{}, err
	}
	var m mailbox.Message
	err := b.read(ctx, "lookup key", func(tx pgx.Tx) error {
		var err error
		m, err = b.lookupKey(ctx, tx, user, key)
		return err
	})
	return m, err
}

const msgCols = `m.id, f.name, m.uid, m.modseq, m.flags, m.meta, m.folder_id`

// messages runs a query over messages m joined to folders f, with where
// (and any ORDER BY/LIMIT) appended.
func (b *Backend) messages(ctx context.Context, q querier, where string, args ...any) ([]mailbox.Message, error) {
	rows, err := q.Query(ctx, `SELECT `+msgCols+` FROM `+b.t("messages")+` m JOIN `+b.t("folders")+
		` f ON f.user_id = m.user_id AND f.folder_id = m.folder_id `+where, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanMsg)
}

func scanMsg(row pgx.CollectableRow) (mailbox.Message, error) {
	var (
		id      [16]byte
		folder  string
		uid     int64
		modseq  int64
		flags   []string
		metaRaw []byte
		fid     int64
	)
	if err := row.Scan(&id, &folder, &uid, &modseq, &flags, &metaRaw, &fid); err != nil {
		return mailbox.Message{}, err
	}
	var m mailbox.Message
	if err := json.Unmarshal(metaRaw, &m); err != nil {
		return m, fmt.Errorf("corrupt metadata of message %s: %w", mailbricks.MessageID(id), err)
	}
	m.ID, m.Folder, m.UID, m.ModSeq, m.Flags = id, folder, uint32(uid), uint64(modseq), flags
	m.UIDValidity = uint32(fid)
	if m.Flags == nil {
		m.Flags = []string{}
	}
	return m, nil
}

// Get implements [mailbox.Backend.Get].
func (b *Backend) Get(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (mailbox.Message, error) {
	if err := b.checkUser(user); err != nil {
		return mailbox.Message{}, err
	}
	var msgs []mailbox.Message
	err := b.query(ctx, "get", func(q querier) error {
		var err error
		msgs, err = b.messages(ctx, q, `WHERE m.user_id = $1 AND m.id = $2`, []byte(user), [16]byte(id))
		return err
	})
	if err != nil {
		return mailbox.Message{}, err
	}
	if len(msgs) == 0 {
		return mailbox.Message{}, fmt.Errorf("%w: message %s", mailbox.ErrNotFound, id)
	}
	return msgs[0], nil
}

// Skeleton implements [mailbox.Backend.Skeleton].
func (b *Backend) Skeleton(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) ([]byte, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	var skel []byte
	err := b.query(ctx, "skeleton", func(q querier) error {
		err := q.QueryRow(ctx, `SELECT skeleton FROM `+b.t("messages")+` WHERE user_id = $1 AND id = $2`, []byte(user), [16]byte(id)).Scan(&skel)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: message %s", mailbox.ErrNotFound, id)
		}
		return err
	})
	return skel, err
}

// List implements [mailbox.Backend.List]. It is one statement, the folder
// lookup folded in, so the common call is one round trip; only an empty
// page pays a second query to tell an empty folder from a missing one.
func (b *Backend) List(ctx context.Context, user mailbricks.UserID, folder string, q mailbox.ListQuery) ([]mailbox.Message, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return nil, err
	}
	before := [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if !q.Before.IsZero() {
		before = q.Before
	}
	var out []mailbox.Message
	err := b.query(ctx, "list", func(c querier) error {
		var err error
		if q.Unread {
			out, err = b.messages(ctx, c, `WHERE m.user_id = $1 AND f.name = $2 AND m.id IN (
				SELECT id FROM `+b.t("unread")+` WHERE user_id = $1 AND id < $3
				AND folder_id = (SELECT folder_id FROM `+b.t("folders")+` WHERE user_id = $1 AND name = $2)
				ORDER BY id DESC LIMIT $4) ORDER BY m.id DESC`, []byte(user), folder, before, q.Limit)
		} else {
			out, err = b.messages(ctx, c, `WHERE m.user_id = $1 AND f.name = $2 AND m.id < $3 ORDER BY m.id DESC LIMIT $4`,
				[]byte(user), folder, before, q.Limit)
		}
		if err != nil || len(out) > 0 {
			return err
		}
		_, err = b.folderRow(ctx, c, user, folder)
		return err
	})
	return out, err
}

// FetchUIDs implements [mailbox.Backend.FetchUIDs].
func (b *Backend) FetchUIDs(ctx context.Context, user mailbricks.UserID, folder string, first, last uint32) ([]mailbox.Message, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return nil, err
	}
	var out []mailbox.Message
	err := b.read(ctx, "fetch", func(tx pgx.Tx) error {
		f, err := b.folderRow(ctx, tx, user, folder)
		if err != nil {
			return err
		}
		hi := int64(last)
		if last == 0 {
			hi = 1 << 32
		}
		out, err = b.messages(ctx, tx, `WHERE m.user_id = $1 AND m.folder_id = $2 AND m.uid BETWEEN $3 AND $4 ORDER BY m.uid`, []byte(user), f.id, int64(first), hi)
		return err
	})
	return out, err
}

// Scan implements [mailbox.Backend.Scan].
func (b *Backend) Scan(ctx context.Context, user mailbricks.UserID, after mailbricks.MessageID, limit int) ([]mailbox.Message, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	var out []mailbox.Message
	err := b.read(ctx, "scan", func(tx pgx.Tx) error {
		var err error
		out, err = b.messages(ctx, tx, `WHERE m.user_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3`, []byte(user), [16]byte(after), limit)
		return err
	})
	return out, err
}

// locked is a message row locked for change.
type locked struct {
	id       mailbricks.MessageID
	fid, uid int64
	modseq   int64
	flags    []string
	size     int64
	thread   [16]byte
}

// lockMsgs locks the rows of the messages among ids, in ID order.
func (b *Backend) lockMsgs(ctx context.Context, tx pgx.Tx, user mailbricks.UserID, ids []mailbricks.MessageID) ([]locked, error) {
	arr := make([][16]byte, 0, len(ids))
	for _, id := range ids {
		arr = append(arr, id)
	}
	rows, err := tx.Query(ctx, `SELECT id, folder_id, uid, modseq, flags, size, thread_id FROM `+b.t("messages")+`
		WHERE user_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE`, []byte(user), arr)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (locked, error) {
		var l locked
		var id [16]byte
		err := r.Scan(&id, &l.fid, &l.uid, &l.modseq, &l.flags, &l.size, &l.thread)
		l.id = id
		if l.flags == nil {
			l.flags = []string{}
		}
		return l, err
	})
}

// bump reserves n MODSEQs (and uids UIDs) in folder fid and applies the
// count deltas; it returns the folder's name and its first new MODSEQ
// and UID.
func (b *Backend) bump(ctx context.Context, tx pgx.Tx, user mailbricks.UserID, fid int64, n, uids int64, d mailbox.Counts) (name string, modseq, uid int64, err error) {
	err = tx.QueryRow(ctx, `UPDATE `+b.t("folders")+` SET highestmodseq = highestmodseq + $3, uidnext = uidnext + $4,
		total = total + $5, unread = unread + $6, size = size + $7
		WHERE user_id = $1 AND folder_id = $2 RETURNING name, highestmodseq - $3 + 1, uidnext - $4`,
		[]byte(user), fid, n, uids, d.Total, d.Unread, d.Size).Scan(&name, &modseq, &uid)
	return name, modseq, uid, err
}

func sortedFolders(m map[int64][]int) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SetFlags implements [mailbox.Backend.SetFlags].
func (b *Backend) SetFlags(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, ch mailbox.FlagChange) (mailbox.FlagResult, error) {
	if err := b.checkUser(user); err != nil {
		return mailbox.FlagResult{}, err
	}
	var res mailbox.FlagResult
	err := b.write(ctx, "set flags", func(tx pgx.Tx) error {
		res = mailbox.FlagResult{}
		msgs, err := b.lockMsgs(ctx, tx, user, ids)
		if err != nil {
			return err
		}
		byFolder := map[int64][]int{}
		newFlags := make([][]string, len(msgs))
		for i, l := range msgs {
			if ch.UnchangedSince != 0 && uint64(l.modseq) > ch.UnchangedSince {
				res.Conflicts = append(res.Conflicts, l.id)
				continue
			}
			nf := ch.Op.Apply(l.flags, ch.Flags)
			if slices.Equal(nf, l.flags) {
				continue
			}
			if len(nf) > mailbox.MaxFlags {
				// Returning the error rolls the transaction back, so no
				// message of the call changes.
				return fmt.Errorf("pgmailbox: %w: message %s would have %d flags, more than %d",
					mailbox.ErrInvalidArgument, l.id, len(nf), mailbox.MaxFlags)
			}
			newFlags[i] = nf
			byFolder[l.fid] = append(byFolder[l.fid], i)
		}
		var evs []mailbox.Event
		for _, fid := range sortedFolders(byFolder) {
			idx := byFolder[fid]
			var d mailbox.Counts
			for _, i := range idx {
				d.Unread += unread(newFlags[i]) - unread(msgs[i].flags)
			}
			name, modseq, _, err := b.bump(ctx, tx, user, fid, int64(len(idx)), 0, d)
			if err != nil {
				return err
			}
			for j, i := range idx {
				l := msgs[i]
				ms := modseq + int64(j)
				if _, err := tx.Exec(ctx, `UPDATE `+b.t("messages")+` SET flags = $3, modseq = $4 WHERE user_id = $1 AND id = $2`,
					[]byte(user), [16]byte(l.id), newFlags[i], ms); err != nil {
					return err
				}
				if from, to := seenTable(l.flags), seenTable(newFlags[i]); from != to {
					if _, err := tx.Exec(ctx, `DELETE FROM `+b.t(from)+` WHERE user_id = $1 AND folder_id = $2 AND id = $3`, []byte(user), fid, [16]byte(l.id)); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, `INSERT INTO `+b.t(to)+` (user_id, folder_id, id) VALUES ($1, $2, $3)`, []byte(user), fid, [16]byte(l.id)); err != nil {
						return err
					}
				}
				evs = append(evs, mailbox.Event{Kind: mailbox.EventFlags, User: user, Folder: name, ID: l.id, UID: uint32(l.uid), ModSeq: uint64(ms), Flags: newFlags[i]})
			}
		}
		if len(evs) > 0 {
			idsChanged := make([][16]byte, len(evs))
			for i, ev := range evs {
				idsChanged[i] = ev.ID
			}
			updated, err := b.messages(ctx, tx, `WHERE m.user_id = $1 AND m.id = ANY($2) ORDER BY m.id`, []byte(user), idsChanged)
			if err != nil {
				return err
			}
			res.Updated = updated
		}
		return b.notify(ctx, tx, evs...)
	})
	return res, err
}

// remove deletes the folder rows of locked messages (UID row, read/unread
// row) and leaves expunge tombstones, with the counts, folder by folder.
// It returns the events. The message rows themselves are left to the
// caller (Expunge deletes them, Move updates them).
func (b *Backend) remove(ctx context.Context, tx pgx.Tx, user mailbricks.UserID, msgs []locked) ([]mailbox.Event, error) {
	byFolder := map[int64][]int{}
	for i, l := range msgs {
		byFolder[l.fid] = append(byFolder[l.fid], i)
	}
	var evs []mailbox.Event
	for _, fid := range sortedFolders(byFolder) {
		idx := byFolder[fid]
		var d mailbox.Counts
		for _, i := range idx {
			d.Total--
			d.Unread -= unread(msgs[i].flags)
			d.Size -= msgs[i].size
		}
		name, modseq, _, err := b.bump(ctx, tx, user, fid, int64(len(idx)), 0, d)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			l := msgs[i]
			ms := modseq + int64(j)
			if _, err := tx.Exec(ctx, `DELETE FROM `+b.t(seenTable(l.flags))+` WHERE user_id = $1 AND folder_id = $2 AND id = $3`, []byte(user), fid, [16]byte(l.id)); err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.t("expunged")+` (user_id, folder_id, modseq, uid) VALUES ($1, $2, $3, $4)`, []byte(user), fid, ms, l.uid); err != nil {
				return nil, err
			}
			evs = append(evs, mailbox.Event{Kind: mailbox.EventExpunge, User: user, Folder: name, ID: l.id, UID: uint32(l.uid), ModSeq: uint64(ms)})
		}
	}
	return evs, nil
}

func (b *Backend) destFolder(ctx context.Context, tx pgx.Tx, user mailbricks.UserID, dest string) (int64, error) {
	var fid int64
	err := tx.QueryRow(ctx, `SELECT folder_id FROM `+b.t("folders")+` WHERE user_id = $1 AND name = $2`, []byte(user), dest).Scan(&fid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: %q", mailbox.ErrNoFolder, dest)
	}
	return fid, err
}

// Move implements [mailbox.Backend.Move].
func (b *Backend) Move(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, dest string) ([]mailbox.UIDMap, error) {
	if err := b.checkFolder(user, dest); err != nil {
		return nil, err
	}
	var out []mailbox.UIDMap
	err := b.write(ctx, "move", func(tx pgx.Tx) error {
		out = nil
		dfid, err := b.destFolder(ctx, tx, user, dest)
		if err != nil {
			return err
		}
		msgs, err := b.lockMsgs(ctx, tx, user, ids)
		if err != nil {
			return err
		}
		msgs = slices.DeleteFunc(msgs, func(l locked) bool { return l.fid == dfid })
		// Keep the caller's order for the UID map.
		pos := map[mailbricks.MessageID]int{}
		for i, id := range ids {
			if _, ok := pos[id]; !ok {
				pos[id] = i
			}
		}
		slices.SortFunc(msgs, func(a, b locked) int { return pos[a.id] - pos[b.id] })
		if len(msgs) == 0 {
			return nil
		}
		// Lock the source and destination folders in ID order before
		// changing any, so that two opposite moves cannot deadlock.
		fids := []int64{dfid}
		for _, l := range msgs {
			fids = append(fids, l.fid)
		}
		slices.Sort(fids)
		if _, err := tx.Exec(ctx, `SELECT 1 FROM `+b.t("folders")+` WHERE user_id = $1 AND folder_id = ANY($2) ORDER BY folder_id FOR UPDATE`, []byte(user), slices.Compact(fids)); err != nil {
			return err
		}
		evs, err := b.remove(ctx, tx, user, msgs)
		if err != nil {
			return err
		}
		var d mailbox.Counts
		for _, l := range msgs {
			d.Total++
			d.Unread += unread(l.flags)
			d.Size += l.size
		}
		n := int64(len(msgs))
		name, modseq, uid, err := b.bump(ctx, tx, user, dfid, n, n, d)
		if err != nil {
			return err
		}
		for j, l := range msgs {
			nu, ms := uid+int64(j), modseq+int64(j)
			if _, err := tx.Exec(ctx, `UPDATE `+b.t("messages")+` SET folder_id = $3, uid = $4, modseq = $5 WHERE user_id = $1 AND id = $2`,
				[]byte(user), [16]byte(l.id), dfid, nu, ms); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.t(seenTable(l.flags))+` (user_id, folder_id, id) VALUES ($1, $2, $3)`, []byte(user), dfid, [16]byte(l.id)); err != nil {
				return err
			}
			out = append(out, mailbox.UIDMap{SourceID: l.id, SourceUID: uint32(l.uid), ID: l.id, UID: uint32(nu)})
			evs = append(evs, mailbox.Event{Kind: mailbox.EventAppend, User: user, Folder: name, ID: l.id, UID: uint32(nu), ModSeq: uint64(ms), Flags: l.flags})
		}
		return b.notify(ctx, tx, evs...)
	})
	return out, err
}

// Copy implements [mailbox.Backend.Copy].
func (b *Backend) Copy(ctx context.Context, user mailbricks.UserID, pairs []mailbox.CopyPair, dest string) ([]mailbox.UIDMap, error) {
	if err := b.checkFolder(user, dest); err != nil {
		return nil, err
	}
	var out []mailbox.UIDMap
	err := b.write(ctx, "copy", func(tx pgx.Tx) error {
		out = nil
		dfid, err := b.destFolder(ctx, tx, user, dest)
		if err != nil {
			return err
		}
		srcIDs := make([]mailbricks.MessageID, len(pairs))
		for i, p := range pairs {
			srcIDs[i] = p.Source
		}
		// Lock the sources so that none is expunged while it is copied.
		msgs, err := b.lockMsgs(ctx, tx, user, srcIDs)
		if err != nil {
			return err
		}
		byID := map[mailbricks.MessageID]locked{}
		for _, l := range msgs {
			byID[l.id] = l
		}
		var todo []mailbox.CopyPair
		var d mailbox.Counts
		for _, p := range pairs {
			if l, ok := byID[p.Source]; ok {
				todo = append(todo, p)
				d.Total++
				d.Unread += unread(l.flags)
				d.Size += l.size
			}
		}
		if len(todo) == 0 {
			return nil
		}
		n := int64(len(todo))
		name, modseq, uid, err := b.bump(ctx, tx, user, dfid, n, n, d)
		if err != nil {
			return err
		}
		var evs []mailbox.Event
		for j, p := range todo {
			l := byID[p.Source]
			nu, ms := uid+int64(j), modseq+int64(j)
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.t("messages")+` (user_id, id, folder_id, uid, modseq, flags, thread_id, size, meta, skeleton)
				SELECT user_id, $3, $4, $5, $6, flags, thread_id, size, meta || jsonb_build_object('ID', $7::text), skeleton
				FROM `+b.t("messages")+` WHERE user_id = $1 AND id = $2`,
				[]byte(user), [16]byte(p.Source), [16]byte(p.ID), dfid, nu, ms, p.ID.String()); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+b.t(seenTable(l.flags))+` (user_id, folder_id, id) VALUES ($1, $2, $3)`, []byte(user), dfid, [16]byte(p.ID)); err != nil {
				return err
			}
			out = append(out, mailbox.UIDMap{SourceID: p.Source, SourceUID: uint32(l.uid), ID: p.ID, UID: uint32(nu)})
			evs = append(evs, mailbox.Event{Kind: mailbox.EventAppend, User: user, Folder: name, ID: p.ID, UID: uint32(nu), ModSeq: uint64(ms), Flags: l.flags})
		}
		return b.notify(ctx, tx, evs...)
	})
	return out, err
}

// Expunge implements [mailbox.Backend.Expunge].
func (b *Backend) Expunge(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID) ([]mailbox.Removed, error) {
	return b.expunge(ctx, user, ids, "")
}

// ExpungeFlagged implements [mailbox.Backend.ExpungeFlagged].
func (b *Backend) ExpungeFlagged(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, flag string) ([]mailbox.Removed, error) {
	if flag == "" {
		return nil, fmt.Errorf("pgmailbox: %w: empty flag", mailbox.ErrInvalidArgument)
	}
	return b.expunge(ctx, user, ids, flag)
}

// expunge removes the messages among ids that carry flag (any, if flag is
// ""), checking the flag on the rows it holds locked, so a concurrent
// flag change cannot slip between the check and the removal.
func (b *Backend) expunge(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, flag string) ([]mailbox.Removed, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	var out []mailbox.Removed
	err := b.write(ctx, "expunge", func(tx pgx.Tx) error {
		out = nil
		msgs, err := b.lockMsgs(ctx, tx, user, ids)
		if err != nil {
			return err
		}
		if flag != "" {
			msgs = slices.DeleteFunc(msgs, func(l locked) bool { return !mailbox.HasFlag(l.flags, flag) })
		}
		if len(msgs) == 0 {
			return nil
		}
		arr := make([][16]byte, len(msgs))
		for i, l := range msgs {
			arr[i] = l.id
		}
		full, err := b.messages(ctx, tx, `WHERE m.user_id = $1 AND m.id = ANY($2) ORDER BY m.id`, []byte(user), arr)
		if err != nil {
			return err
		}
		evs, err := b.remove(ctx, tx, user, msgs)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM `+b.t("messages")+` WHERE user_id = $1 AND id = ANY($2) RETURNING id, skeleton`, []byte(user), arr)
		if err != nil {
			return err
		}
		skels := map[mailbricks.MessageID][]byte{}
		var id [16]byte
		var skel []byte
		if _, err := pgx.ForEachRow(rows, []any{&id, &skel}, func() error {
			skels[id] = slices.Clone(skel)
			return nil
		}); err != nil {
			return err
		}
		for _, m := range full {
			out = append(out, mailbox.Removed{Message: m, Skeleton: skels[m.ID]})
		}
		return b.notify(ctx, tx, evs...)
	})
	return out, err
}

// Changes implements [mailbox.Backend.Changes].
func (b *Backend) Changes(ctx context.Context, user mailbricks.UserID, folder string, since uint64) (mailbox.Changes, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return mailbox.Changes{}, err
	}
	var ch mailbox.Changes
	err := b.read(ctx, "changes", func(tx pgx.Tx) error {
		ch = mailbox.Changes{}
		f, err := b.folderRow(ctx, tx, user, folder)
		if err != nil {
			return err
		}
		ch.UIDValidity, ch.HighestModSeq = uint32(f.id), uint64(f.hms)
		ch.Changed, err = b.messages(ctx, tx, `WHERE m.user_id = $1 AND m.folder_id = $2 AND m.modseq > $3 ORDER BY m.uid`, []byte(user), f.id, int64(since))
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT uid FROM `+b.t("expunged")+` WHERE user_id = $1 AND folder_id = $2 AND modseq > $3 ORDER BY uid`, []byte(user), f.id, int64(since))
		if err != nil {
			return err
		}
		uids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		for _, u := range uids {
			ch.Expunged = append(ch.Expunged, uint32(u))
		}
		return err
	})
	return ch, err
}

// FindThread implements [mailbox.Backend.FindThread].
func (b *Backend) FindThread(ctx context.Context, user mailbricks.UserID, keys []string) (mailbricks.MessageID, bool, error) {
	if err := b.checkUser(user); err != nil {
		return mailbricks.MessageID{}, false, err
	}
	for _, k := range keys {
		if err := mailbox.ValidateKey(k); err != nil {
			return mailbricks.MessageID{}, false, err
		}
	}
	found := map[string][16]byte{}
	err := b.read(ctx, "find thread", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT tkey, thread_id FROM `+b.t("thread_keys")+` WHERE user_id = $1 AND tkey = ANY($2)`, []byte(user), keys)
		if err != nil {
			return err
		}
		var k string
		var id [16]byte
		_, err = pgx.ForEachRow(rows, []any{&k, &id}, func() error { found[k] = id; return nil })
		return err
	})
	if err != nil {
		return mailbricks.MessageID{}, false, err
	}
	for _, k := range keys {
		if id, ok := found[k]; ok {
			return id, true, nil
		}
	}
	return mailbricks.MessageID{}, false, nil
}

// Thread implements [mailbox.Backend.Thread].
func (b *Backend) Thread(ctx context.Context, user mailbricks.UserID, thread mailbricks.MessageID) ([]mailbox.Message, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	var out []mailbox.Message
	err := b.read(ctx, "thread", func(tx pgx.Tx) error {
		var err error
		out, err = b.messages(ctx, tx, `WHERE m.user_id = $1 AND m.thread_id = $2 ORDER BY m.id`, []byte(user), [16]byte(thread))
		return err
	})
	return out, err
}

// Recount implements [mailbox.Backend.Recount].
func (b *Backend) Recount(ctx context.Context, user mailbricks.UserID, folder string) (mailbox.Counts, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return mailbox.Counts{}, err
	}
	var c mailbox.Counts
	err := b.write(ctx, "recount", func(tx pgx.Tx) error {
		var fid int64
		err := tx.QueryRow(ctx, `SELECT folder_id FROM `+b.t("folders")+` WHERE user_id = $1 AND name = $2 FOR UPDATE`, []byte(user), folder).Scan(&fid)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", mailbox.ErrNoFolder, folder)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT ('\Seen' = ANY(flags))), coalesce(sum(size), 0)
			FROM `+b.t("messages")+` WHERE user_id = $1 AND folder_id = $2`, []byte(user), fid).Scan(&c.Total, &c.Unread, &c.Size)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+b.t("folders")+` SET total = $3, unread = $4, size = $5 WHERE user_id = $1 AND folder_id = $2`,
			[]byte(user), fid, c.Total, c.Unread, c.Size)
		return err
	})
	return c, err
}

// Watch implements [mailbox.Backend.Watch].
func (b *Backend) Watch(ctx context.Context, user mailbricks.UserID) (<-chan mailbox.Event, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	ready, err := b.startListener(ctx)
	if err != nil {
		return nil, err
	}
	<-ready
	return b.hub.Subscribe(ctx, user), nil
}

// startListener starts the LISTEN connection once; the returned channel is
// closed once it listens.
func (b *Backend) startListener(ctx context.Context) (<-chan struct{}, error) {
	b.listenMu.Lock()
	defer b.listenMu.Unlock()
	ready := make(chan struct{})
	if b.listening {
		close(ready)
		return ready, nil
	}
	conn, err := b.listen(ctx)
	if err != nil {
		return nil, b.wrap("watch", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	b.listening, b.stopListen, b.listenDone = true, cancel, make(chan struct{})
	go b.listenLoop(lctx, conn, b.listenDone)
	close(ready)
	return ready, nil
}

func (b *Backend) listen(ctx context.Context) (*pgxpool.Conn, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		conn.Release()
		return nil, err
	}
	return conn, nil
}

// unlisten returns a listening connection to the pool, no longer
// listening, or closes it if UNLISTEN fails.
func unlisten(conn *pgxpool.Conn) {
	c, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := conn.Exec(c, "UNLISTEN *"); err != nil {
		conn.Conn().Close(c)
	}
	conn.Release()
}

func (b *Backend) listenLoop(ctx context.Context, conn *pgxpool.Conn, done chan struct{}) {
	defer close(done)
	defer func() {
		if conn != nil {
			unlisten(conn)
		}
	}()
	for ctx.Err() == nil {
		if conn == nil {
			c, err := b.listen(ctx)
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			conn = c
		}
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			conn.Conn().Close(context.Background())
			conn.Release()
			conn = nil
			// Events may have been missed while reconnecting.
			b.hub.Overflow()
			continue
		}
		var w wireEvent
		if json.Unmarshal([]byte(n.Payload), &w) != nil {
			continue
		}
		b.hub.Publish(mailbox.Event{Kind: w.K, User: mailbricks.UserID(w.U), Folder: w.F, ID: w.I, UID: w.D, ModSeq: w.M, Flags: w.L})
	}
}

// Subscribe implements [mailbox.Backend.Subscribe].
func (b *Backend) Subscribe(ctx context.Context, user mailbricks.UserID, name string, subscribed bool) error {
	if err := b.checkFolder(user, name); err != nil {
		return err
	}
	return b.write(ctx, "subscribe", func(tx pgx.Tx) error {
		var err error
		if subscribed {
			_, err = tx.Exec(ctx, `INSERT INTO `+b.t("subscriptions")+` (user_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, []byte(user), name)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM `+b.t("subscriptions")+` WHERE user_id = $1 AND name = $2`, []byte(user), name)
		}
		return err
	})
}

// Subscriptions implements [mailbox.Backend.Subscriptions].
func (b *Backend) Subscriptions(ctx context.Context, user mailbricks.UserID) ([]string, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	var out []string
	err := b.query(ctx, "subscriptions", func(q querier) error {
		rows, err := q.Query(ctx, `SELECT name FROM `+b.t("subscriptions")+` WHERE user_id = $1 ORDER BY name COLLATE "C"`, []byte(user))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if out == nil {
		out = []string{}
	}
	return out, err
}
