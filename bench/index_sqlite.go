package main

import (
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/mailbricks/mailbricks/index"
)

// sqliteIndex is the SQLite FTS5 peer (modernc.org/sqlite, pure Go): the
// full-text engine mail clients such as Thunderbird embed. One FTS5 table
// holds the same text fields as ours (from, to, cc, bcc, subject, body,
// attachment names; unicode61 tokenizer), a plain table beside it the doc
// values, keyed by the same rowid, with an index on date. The database is
// in WAL mode with synchronous=FULL, so a committed batch is on stable
// storage as ours is; each batch is one transaction. Settling is a WAL
// checkpoint (FTS5 merges its segments incrementally while inserting, so
// nothing else is deferred).
//
// A search returns the 20 newest hits and the total count: two statements,
// the page ordered by the date column (or, for the sqlite_rowid variant,
// by rowid descending, which in this corpus is the same order and lets
// FTS5 walk its doclists backwards without sorting) and a COUNT(*).
type sqliteIndex struct {
	db     *sql.DB
	byDate bool
}

func openSQLiteIndex(byDate bool) func(string) (searchEngine, error) {
	return func(dir string) (searchEngine, error) {
		db, err := sql.Open("sqlite", "file:"+dir+"/fts.db?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		for _, q := range []string{
			`CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(frm, rcpt, cc, bcc, subject, body, filename, tokenize='unicode61')`,
			`CREATE TABLE IF NOT EXISTS docs(rowid INTEGER PRIMARY KEY, id BLOB NOT NULL, date INTEGER NOT NULL, flags INTEGER NOT NULL, size INTEGER NOT NULL, folder TEXT NOT NULL)`,
			`CREATE INDEX IF NOT EXISTS docs_date ON docs(date)`,
		} {
			if _, err := db.Exec(q); err != nil {
				db.Close()
				return nil, fmt.Errorf("sqlite: %s: %w", q, err)
			}
		}
		return &sqliteIndex{db: db, byDate: byDate}, nil
	}
}

func (e *sqliteIndex) Index(docs []*benchDoc) error {
	tx, err := e.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var next int64
	if err := tx.QueryRow(`SELECT coalesce(max(rowid), 0) + 1 FROM docs`).Scan(&next); err != nil {
		return err
	}
	insFTS, err := tx.Prepare(`INSERT INTO fts(rowid, frm, rcpt, cc, bcc, subject, body, filename) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	insDoc, err := tx.Prepare(`INSERT INTO docs(rowid, id, date, flags, size, folder) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	for i, d := range docs {
		row := next + int64(i)
		if _, err := insFTS.Exec(row, addrText(d.From), addrText(d.To), addrText(d.Cc), addrText(d.Bcc), d.Subject, d.Body, strings.Join(d.Filenames, " ")); err != nil {
			return err
		}
		if _, err := insDoc.Exec(row, d.ID[:], d.Date.Unix(), int64(d.Flags), d.Size, d.Folder); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (e *sqliteIndex) Settle() error {
	_, err := e.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// ftsQuote quotes a word as an FTS5 string.
func ftsQuote(w string) string { return `"` + strings.ReplaceAll(w, `"`, `""`) + `"` }

func (e *sqliteIndex) Search(q benchQuery) (int, error) {
	var match, extra string
	var args []any
	switch q.kind {
	case "term":
		match = ftsQuote(q.words[0])
	case "and":
		match = ftsQuote(q.words[0]) + " AND " + ftsQuote(q.words[1])
	case "phrase":
		match = ftsQuote(strings.Join(q.words, " "))
	case "prefix":
		match = ftsQuote(q.words[0]) + "*"
	case "from":
		match = "frm : " + ftsQuote(q.words[0])
	case "mixed":
		match = "frm : " + ftsQuote(q.words[0])
		extra = ` AND d.flags & ? != 0 AND d.date >= ?`
		args = []any{int64(index.FlagAttachment), q.after.Unix()}
	}
	order := "d.date DESC, d.rowid DESC"
	if !e.byDate {
		order = "fts.rowid DESC"
	}
	all := append([]any{match}, args...)
	rows, err := e.db.Query(`SELECT d.id FROM fts JOIN docs d ON d.rowid = fts.rowid WHERE fts MATCH ?`+extra+` ORDER BY `+order+` LIMIT 20`, all...)
	if err != nil {
		return 0, err
	}
	var id []byte
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	var total int
	count := `SELECT count(*) FROM fts WHERE fts MATCH ?`
	if extra != "" {
		count = `SELECT count(*) FROM fts JOIN docs d ON d.rowid = fts.rowid WHERE fts MATCH ?` + extra
	}
	if err := e.db.QueryRow(count, all...).Scan(&total); err != nil {
		return 0, err
	}
	return total, nil
}

func (e *sqliteIndex) Close() error { return e.db.Close() }
