package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
)

// runPG measures pgmailbox: append_corpus through the Store, and the list
// workloads on folders filled in bulk with COPY into the documented schema
// (the rows Append would write, without a transaction per message). Next to
// each list_unread_<n> it measures list_unread_flagscan_<n>: the same page
// answered from the messages table by scanning its flags column newest
// first (the index on (user_id, folder_id, id) walked backwards with a
// filter), the flag-column design the unread table replaces.
func (s *mailboxSuite) runPG(url, base string, c *config, r *reporter) error {
	schema := fmt.Sprintf("mbbench_%x", rand.Uint64())
	conn, err := pgx.Connect(mbCtx, url)
	if err != nil {
		return err
	}
	defer conn.Close(mbCtx)
	defer conn.Exec(mbCtx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	pool, err := pgxpool.New(mbCtx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	b, err := pgmailbox.Open(mbCtx, pool, &pgmailbox.Options{Schema: schema})
	if err != nil {
		return err
	}
	st, blobs, err := mbStore(b, filepath.Join(base, "blobs"))
	if err != nil {
		return err
	}
	defer blobs.Close()
	defer st.Close()
	qc := *c
	if !c.Quick {
		qc.Quick = true // 1,500 messages: a transaction each
	}
	if err := mbAppendCorpus(st, &qc, r); err != nil {
		return err
	}
	sizes := mbSizes(c)
	for i, n := range sizes {
		user := mailbricks.UserID(fmt.Sprint("list", n, "@example.com"))
		t0 := time.Now()
		if err := mbFillPG(conn, b, schema, user, n); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mailbox: pgmailbox: filled %d messages in %v\n", n, time.Since(t0).Round(time.Millisecond))
		if err := mbMeasureList(r, n, s.listRuns, func() (int, error) {
			p, err := st.List(mbCtx, user, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 50})
			return len(p.Messages), err
		}); err != nil {
			return err
		}
		flagRes := &prefixReporter{r, "list_unread_flagscan_"}
		var fid int64
		if err := conn.QueryRow(mbCtx, `SELECT folder_id FROM `+schema+`.folders WHERE user_id = $1 AND name = 'INBOX'`, []byte(user)).Scan(&fid); err != nil {
			return err
		}
		if err := mbMeasureListTo(flagRes, n, s.listRuns, func() (int, error) {
			rows, err := conn.Query(mbCtx, `SELECT m.id, f.name, m.uid, m.modseq, m.flags, m.meta FROM `+schema+`.messages m
				JOIN `+schema+`.folders f ON f.user_id = m.user_id AND f.folder_id = m.folder_id
				WHERE m.user_id = $1 AND m.folder_id = $2 AND NOT ('\Seen' = ANY(m.flags)) ORDER BY m.id DESC LIMIT 50`, []byte(user), fid)
			if err != nil {
				return 0, err
			}
			k := 0
			for rows.Next() {
				var id [16]byte
				var name string
				var uid, modseq int64
				var flags []string
				var meta []byte
				if err := rows.Scan(&id, &name, &uid, &modseq, &flags, &meta); err != nil {
					return 0, err
				}
				var m mailbox.Message
				if err := json.Unmarshal(meta, &m); err != nil {
					return 0, err
				}
				k++
			}
			return k, rows.Err()
		}); err != nil {
			return err
		}
		if i == len(sizes)-1 {
			p, err := st.List(mbCtx, user, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 500})
			if err != nil {
				return err
			}
			t0 := time.Now()
			for _, m := range p.Messages {
				if err := st.MarkRead(mbCtx, user, m.ID); err != nil {
					return err
				}
			}
			r.result("mark_read", float64(len(p.Messages))/time.Since(t0).Seconds(), kv{"messages", float64(len(p.Messages))})
		}
	}
	return nil
}

// prefixReporter renames list_unread_<n> results to <prefix><n>.
type prefixReporter struct {
	r      *reporter
	prefix string
}

func mbMeasureListTo(pr *prefixReporter, n, runs int, list func() (int, error)) error {
	tmp := &reporter{suite: pr.r.suite, impl: pr.r.impl, w: &renameWriter{w: pr.r.w, from: "workload=list_unread_", to: "workload=" + pr.prefix}}
	return mbMeasureList(tmp, n, runs, list)
}

// renameWriter rewrites a workload name in the lines written through it.
type renameWriter struct {
	w        interface{ Write([]byte) (int, error) }
	from, to string
}

func (w *renameWriter) Write(p []byte) (int, error) {
	s := string(p)
	if i := indexOf(s, w.from); i >= 0 {
		s = s[:i] + w.to + s[i+len(w.from):]
	}
	if _, err := w.w.Write([]byte(s)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// mbFillPG creates user's INBOX through the backend, then COPYs n rows into
// messages and the unread/read tables and sets the folder's counters, as n
// Appends would have.
func mbFillPG(conn *pgx.Conn, b *pgmailbox.Backend, schema string, user mailbricks.UserID, n int) error {
	f, err := b.CreateFolder(mbCtx, user, mailbox.Inbox, mailbox.RoleInbox)
	if err != nil {
		return err
	}
	fid := int64(f.UIDValidity)
	unread := mbUnreadSet(n)
	var msgRows, unreadRows, readRows [][]any
	flush := func() error {
		if _, err := conn.CopyFrom(mbCtx, pgx.Identifier{schema, "messages"},
			[]string{"user_id", "id", "folder_id", "uid", "modseq", "flags", "thread_id", "size", "meta", "skeleton"}, pgx.CopyFromRows(msgRows)); err != nil {
			return err
		}
		if _, err := conn.CopyFrom(mbCtx, pgx.Identifier{schema, "unread"}, []string{"user_id", "folder_id", "id"}, pgx.CopyFromRows(unreadRows)); err != nil {
			return err
		}
		if _, err := conn.CopyFrom(mbCtx, pgx.Identifier{schema, "read"}, []string{"user_id", "folder_id", "id"}, pgx.CopyFromRows(readRows)); err != nil {
			return err
		}
		msgRows, unreadRows, readRows = msgRows[:0], unreadRows[:0], readRows[:0]
		return nil
	}
	for i := 0; i < n; i++ {
		rec := mbRecord(i, unread[i])
		meta, _ := json.Marshal(rec.Message)
		id := [16]byte(rec.ID)
		msgRows = append(msgRows, []any{[]byte(user), id, fid, int64(i + 1), int64(i + 1), rec.Flags, id, rec.Size, meta, rec.Skeleton})
		if unread[i] {
			unreadRows = append(unreadRows, []any{[]byte(user), fid, id})
		} else {
			readRows = append(readRows, []any{[]byte(user), fid, id})
		}
		if len(msgRows) >= 20000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	_, err = conn.Exec(mbCtx, `UPDATE `+schema+`.folders SET uidnext = $3, highestmodseq = $4, total = $5, unread = $6, size = $7
		WHERE user_id = $1 AND folder_id = $2`, []byte(user), fid, int64(n+1), int64(n), int64(n), int64(n/100), int64(n)*2000)
	if err != nil {
		return err
	}
	_, err = conn.Exec(mbCtx, `ANALYZE `+schema+`.messages; ANALYZE `+schema+`.unread; ANALYZE `+schema+`.read`)
	return err
}
