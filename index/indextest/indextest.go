// Package indextest is the conformance suite of [index.Backend]
// implementations, and a brute-force reference evaluator ([Brute]) for
// golden tests.
//
// A backend's test calls [Run] with a constructor that returns a fresh,
// empty backend:
//
//	func TestConformance(t *testing.T) {
//		indextest.Run(t, func(t *testing.T) index.Backend { return open(t) })
//	}
package indextest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// Now is the clock the suite gives [index.New], so relative ages are
// reproducible.
var Now = func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

// Run runs the conformance suite: each subtest gets a fresh backend from
// newBackend, which must also arrange for it to be cleaned up. Failure
// messages state the rule that was broken.
func Run(t *testing.T, newBackend func(t *testing.T) index.Backend) {
	open := func(t *testing.T) *index.Index {
		x := index.New(newBackend(t), &index.Options{Now: Now})
		t.Cleanup(func() { _ = x.Close() })
		return x
	}
	t.Run("Basic", func(t *testing.T) { testBasic(t, open(t)) })
	t.Run("ReplaceSameID", func(t *testing.T) { testReplace(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, open(t)) })
	t.Run("GetPatch", func(t *testing.T) { testGetPatch(t, open(t)) })
	t.Run("Paging", func(t *testing.T) { testPaging(t, open(t)) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, open(t)) })
	t.Run("OpaqueUsers", func(t *testing.T) { testOpaque(t, open(t)) })
	t.Run("ValuesRoundTrip", func(t *testing.T) { testValues(t, open(t)) })
	t.Run("Snippet", func(t *testing.T) { testSnippet(t, open(t)) })
	t.Run("CheckRepairReindex", func(t *testing.T) { testCheck(t, open(t)) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, open(t)) })
	t.Run("RandomModel", func(t *testing.T) { testModel(t, open(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, open(t)) })
	t.Run("HeaderNamesNotContent", func(t *testing.T) { testHeaderNames(t, open(t)) })
	t.Run("Scripts", func(t *testing.T) { testScripts(t, open(t)) })
	t.Run("InvalidInput", func(t *testing.T) { testInvalidInput(t, open(t)) })
	t.Run("NoTerms", func(t *testing.T) { testNoTerms(t, open(t)) })
}

// testNoTerms indexes documents that give the analyzer nothing (no
// addresses, subject, body or headers, as a message of one malformed
// header line parses), alone and in a batch: they are stored and found by
// their doc values.
func testNoTerms(t *testing.T, x *index.Index) {
	empty := func(d time.Time) *index.Document {
		return &index.Document{ID: mailbricks.NewMessageIDAt(d), Values: index.Values{Date: d, Folder: "INBOX"}}
	}
	docs := []*index.Document{empty(day(2024, 5, 1))}
	require.NoError(t, x.Index(ctx, user, docs[0]), "a document without terms alone")
	expect(t, x, user, "is:unread", docs, 0)
	docs = append(docs, empty(day(2024, 5, 2)), empty(day(2024, 5, 3)))
	require.NoError(t, x.IndexBatch(ctx, user, docs[1:]), "a batch of documents without terms")
	expect(t, x, user, "is:unread", docs, 0, 1, 2)
	expect(t, x, user, "report", docs)
}

const user = mailbricks.UserID("alice@example.com")

var ctx = context.Background()

func day(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 10, 0, 0, 0, time.UTC) }

func basicDocs() []*index.Document {
	mk := func(t time.Time, from, subject, body string, mod func(*index.Document)) *index.Document {
		d := &index.Document{
			ID:      mailbricks.NewMessageIDAt(t),
			From:    []index.Address{{Name: strings.Split(from, "@")[0], Addr: from}},
			To:      []index.Address{{Name: "Alice", Addr: "alice@example.com"}},
			Subject: subject,
			Body:    body,
			Values:  index.Values{Date: t, Size: 1000, Folder: "INBOX"},
		}
		if mod != nil {
			mod(d)
		}
		return d
	}
	return []*index.Document{
		mk(day(2024, 1, 10), "bob@example.org", "Quarterly report", "Please find the quarterly report attached. Regards, Bob", func(d *index.Document) {
			d.Filenames = []string{"report-q4.pdf"}
			d.Flags = index.FlagAttachment | index.FlagSeen
			d.Size = 2 << 20
		}),
		mk(day(2024, 2, 1), "carol@corp.test", "Lunch", "Café au lait at the naïve bistro? The report can wait.", func(d *index.Document) {
			d.Flags = index.FlagFlagged
			d.Cc = []index.Address{{Addr: "dave@corp.test"}}
		}),
		mk(day(2024, 3, 5), "dave@corp.test", "東京都の会議", "会議は東京都で行います。Straße meeting", func(d *index.Document) {
			d.Folder = "Archive"
			d.Keywords = []string{"travel"}
			d.Headers = []index.Header{{Name: "List-Id", Value: "Travel <travel.corp.test>"}}
		}),
		mk(day(2024, 3, 6), "eve@evil.test", "Re: report", "quarterly numbers report is wrong; reporting later", func(d *index.Document) {
			d.Flags = index.FlagSeen | index.FlagAnswered
		}),
	}
}

func ids(hs []index.Hit) []mailbricks.MessageID {
	out := make([]mailbricks.MessageID, len(hs))
	for i, h := range hs { // never nil, so empty results compare equal
		out[i] = h.ID
	}
	return out
}

// expect searches q and requires the hits (newest first) to be exactly
// want, given as indexes into docs.
func expect(t *testing.T, x *index.Index, u mailbricks.UserID, q string, docs []*index.Document, want ...int) {
	t.Helper()
	res, err := x.SearchString(ctx, u, q, &index.SearchOptions{Limit: 100, NoSnippets: true})
	require.NoError(t, err, "query %q", q)
	w := []mailbricks.MessageID{}
	for _, i := range want {
		w = append(w, docs[i].ID)
	}
	slices.SortFunc(w, func(a, b mailbricks.MessageID) int { return b.Compare(a) })
	require.Equal(t, w, ids(res.Hits), "query %q must match exactly docs %v, newest first", q, want)
	require.Equal(t, len(want), res.Total, "query %q: Total must count every match", q)
}

func testBasic(t *testing.T, x *index.Index) {
	docs := basicDocs()
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	expect(t, x, user, "quarterly", docs, 0, 3)
	expect(t, x, user, `"quarterly report"`, docs, 0)
	expect(t, x, user, `"report quarterly"`, docs)
	expect(t, x, user, "report", docs, 0, 1, 3)
	expect(t, x, user, "report*", docs, 0, 1, 3)
	expect(t, x, user, "cafe", docs, 1)
	expect(t, x, user, "NAIVE", docs, 1)
	expect(t, x, user, "strasse", docs, 2)
	expect(t, x, user, "東京", docs, 2)
	expect(t, x, user, "東京都", docs, 2)
	expect(t, x, user, "subject:東京都", docs, 2)
	expect(t, x, user, "from:bob", docs, 0)
	expect(t, x, user, "from:bob@example.org", docs, 0)
	expect(t, x, user, "from:example.org", docs, 0)
	expect(t, x, user, "from:corp.test", docs, 1, 2)
	expect(t, x, user, "cc:dave", docs, 1)
	expect(t, x, user, "to:alice", docs, 0, 1, 2, 3)
	expect(t, x, user, "subject:report", docs, 0, 3)
	expect(t, x, user, "filename:pdf", docs, 0)
	expect(t, x, user, "filename:report", docs, 0)
	expect(t, x, user, "has:attachment", docs, 0)
	expect(t, x, user, "is:unread", docs, 1, 2)
	expect(t, x, user, "is:read", docs, 0, 3)
	expect(t, x, user, "is:starred", docs, 1)
	expect(t, x, user, "in:archive", docs)
	expect(t, x, user, "in:Archive", docs, 2)
	expect(t, x, user, "label:travel", docs, 2)
	expect(t, x, user, "before:2024/02/01", docs, 0)
	expect(t, x, user, "after:2024/02/01", docs, 1, 2, 3)
	expect(t, x, user, "larger:1M", docs, 0)
	expect(t, x, user, "smaller:1M", docs, 1, 2, 3)
	expect(t, x, user, "report -quarterly", docs, 1)
	expect(t, x, user, "lunch OR meeting", docs, 1, 2)
	expect(t, x, user, "(lunch OR meeting) -cafe", docs, 2)
	expect(t, x, user, "from:(bob OR eve) report", docs, 0, 3)
	expect(t, x, user, "", docs, 0, 1, 2, 3)
	expect(t, x, user, "older_than:1y", docs, 0, 1)
	expect(t, x, user, "newer_than:1y", docs, 2, 3)
	expect(t, x, user, "nosuchword", docs)

	// Structured queries for IMAP criteria.
	res, err := x.Search(ctx, user, index.HeaderText("List-Id", "travel"), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[2].ID}, ids(res.Hits), "HEADER List-Id travel must match the message with that header")
	res, err = x.Search(ctx, user, index.HeaderText("list-id", ""), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[2].ID}, ids(res.Hits), `HEADER List-Id "" must match messages that have the header`)
	res, err = x.Search(ctx, user, index.And(index.HasFlag(index.FlagSeen), index.Not(index.HasFlag(index.FlagAnswered))), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[0].ID}, ids(res.Hits), "SEEN UNANSWERED")
	res, err = x.Search(ctx, user, index.On(index.RangeDate, day(2024, 3, 5)), nil)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[2].ID}, ids(res.Hits), "ON 5-Mar-2024")
}

func testReplace(t *testing.T, x *index.Index) {
	docs := basicDocs()
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	d := *docs[1]
	d.Body = "completely different words"
	d.Subject = "Dinner"
	require.NoError(t, x.Index(ctx, user, &d))
	expect(t, x, user, "lunch", docs)
	expect(t, x, user, "dinner", docs, 1)
	expect(t, x, user, "", docs, 0, 1, 2, 3)
	// Twice in one batch: the last wins.
	e1, e2 := *docs[0], *docs[0]
	e1.Subject, e2.Subject = "first", "second"
	require.NoError(t, x.IndexBatch(ctx, user, []*index.Document{&e1, &e2}))
	expect(t, x, user, "subject:first", docs)
	expect(t, x, user, "subject:second", docs, 0)
	expect(t, x, user, "", docs, 0, 1, 2, 3)
}

func testDelete(t *testing.T, x *index.Index) {
	docs := basicDocs()
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	require.NoError(t, x.Delete(ctx, user, docs[0].ID, mailbricks.NewMessageID()), "Delete must ignore IDs that are not indexed")
	expect(t, x, user, "quarterly", docs, 3)
	expect(t, x, user, "", docs, 1, 2, 3)
	require.NoError(t, x.Delete(ctx, user, docs[0].ID), "a second Delete is a no-op")
	require.NoError(t, x.Index(ctx, user, docs[0]), "a deleted message can be indexed again")
	expect(t, x, user, "quarterly", docs, 0, 3)
}

func testUpdate(t *testing.T, x *index.Index) {
	docs := basicDocs()
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	v := docs[1].Values
	v.Flags |= index.FlagSeen
	v.Folder = "Archive"
	v.Keywords = []string{"work"}
	require.NoError(t, x.Update(ctx, user, docs[1].ID, v))
	expect(t, x, user, "is:unread", docs, 2)
	expect(t, x, user, "in:Archive", docs, 1, 2)
	expect(t, x, user, "label:work", docs, 1)
	expect(t, x, user, "lunch", docs, 1)
	err := x.Update(ctx, user, mailbricks.NewMessageID(), v)
	require.True(t, errors.Is(err, index.ErrNotFound), "Update of a message that is not indexed must return ErrNotFound, got %v", err)
	err = x.Update(ctx, "bob", docs[1].ID, v)
	require.True(t, errors.Is(err, index.ErrNotFound), "Update of another user's message must return ErrNotFound, got %v", err)
	// A date change reorders.
	v.Date = day(2025, 1, 1)
	require.NoError(t, x.Update(ctx, user, docs[1].ID, v))
	res, err := x.SearchString(ctx, user, "", &index.SearchOptions{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, docs[1].ID, res.Hits[0].ID, "after Update of Date the newest message comes first")
}

func testPaging(t *testing.T, x *index.Index) {
	var docs []*index.Document
	base := day(2023, 1, 1)
	for i := range 57 {
		// Several documents share a date: ties break on the ID.
		dt := base.Add(time.Duration(i/3) * time.Hour)
		docs = append(docs, &index.Document{ID: mailbricks.NewMessageIDAt(base.Add(time.Duration(i) * time.Minute)), Subject: fmt.Sprintf("page %d", i), Body: "common", Values: index.Values{Date: dt}})
	}
	// Index in a scrambled order, in several batches.
	perm := slices.Clone(docs)
	for i := range perm {
		j := (i * 31) % len(perm)
		perm[i], perm[j] = perm[j], perm[i]
	}
	require.NoError(t, x.IndexBatch(ctx, user, perm[:20]))
	require.NoError(t, x.IndexBatch(ctx, user, perm[20:]))
	for _, s := range []index.Sort{index.SortNewest, index.SortOldest} {
		want := slices.Clone(docs)
		slices.SortFunc(want, func(a, b *index.Document) int {
			if index.Less(s, a.Date.Unix(), a.ID, b.Date.Unix(), b.ID) {
				return -1
			}
			return 1
		})
		var got []mailbricks.MessageID
		cursor := ""
		for page := 0; ; page++ {
			require.Less(t, page, 10, "paging must end")
			res, err := x.SearchString(ctx, user, "common", &index.SearchOptions{Limit: 10, Cursor: cursor, Sort: s, NoSnippets: true})
			require.NoError(t, err)
			require.Equal(t, 57, res.Total, "Total must count all matches on every page")
			got = append(got, ids(res.Hits)...)
			if res.Cursor == "" {
				break
			}
			cursor = res.Cursor
		}
		var w []mailbricks.MessageID
		for _, d := range want {
			w = append(w, d.ID)
		}
		require.Equal(t, w, got, "pages in sort order %d must list every match once, by date then ID", s)
	}
	_, err := x.SearchString(ctx, user, "common", &index.SearchOptions{Cursor: "garbage"})
	require.ErrorIs(t, err, index.ErrBadCursor)
}

func testIsolation(t *testing.T, x *index.Index) {
	docs := basicDocs()
	other := mailbricks.UserID("alice@example.co") // a prefix of user
	longer := mailbricks.UserID("alice@example.com2")
	require.NoError(t, x.IndexBatch(ctx, user, docs[:2]))
	require.NoError(t, x.IndexBatch(ctx, other, docs[2:]))
	require.NoError(t, x.IndexBatch(ctx, longer, docs[1:3]))
	expect(t, x, user, "", docs, 0, 1)
	expect(t, x, other, "", docs, 2, 3)
	expect(t, x, longer, "", docs, 1, 2)
	expect(t, x, user, "report*", docs, 0, 1)
	expect(t, x, other, "report*", docs, 3)
	require.NoError(t, x.Delete(ctx, other, docs[0].ID, docs[1].ID), "deleting another user's IDs is a no-op")
	expect(t, x, user, "", docs, 0, 1)
	_, err := x.Reindex(ctx, longer, index.SourceFunc(func(context.Context, mailbricks.UserID, func(*index.Document) error) error { return nil }))
	require.NoError(t, err)
	expect(t, x, longer, "", docs)
	expect(t, x, user, "", docs, 0, 1)
	expect(t, x, other, "", docs, 2, 3)
}

func testValues(t *testing.T, x *index.Index) {
	v := index.Values{
		Date: time.Date(2024, 5, 6, 7, 8, 9, 123, time.FixedZone("X", 3600)), SentDate: time.Date(2024, 5, 6, 1, 2, 3, 0, time.UTC),
		Size: 123456, Folder: "Läger/Sub", Flags: index.FlagSeen | index.FlagDraft | index.FlagAttachment,
		Keywords: []string{"a b", "$Junk"}, Thread: "thr-1", UID: 4000000000, ModSeq: 1 << 40,
	}
	d := &index.Document{ID: mailbricks.NewMessageID(), Subject: "values", Values: v}
	require.NoError(t, x.Index(ctx, user, d))
	res, err := x.SearchString(ctx, user, "values", nil)
	require.NoError(t, err)
	require.Len(t, res.Hits, 1)
	got := res.Hits[0].Values
	require.True(t, index.EqualValues(v, got), "Values must round-trip (dates to the second): got %+v", got)
	require.Equal(t, v.Date.Unix(), got.Date.Unix())
	var listed int
	require.NoError(t, x.Backend().List(ctx, user, func(id mailbricks.MessageID, lv index.Values) error {
		listed++
		require.Equal(t, d.ID, id)
		require.True(t, index.EqualValues(v, lv), "List must return the Values")
		return nil
	}))
	require.Equal(t, 1, listed)
	res, err = x.Search(ctx, user, index.UIDIn(index.UIDRange{Start: 3999999999, Stop: 4000000000}), nil)
	require.NoError(t, err)
	require.Len(t, res.Hits, 1, "UID ranges are inclusive")
	res, err = x.Search(ctx, user, index.Between(index.RangeModSeq, 1<<40, 1<<40+1), nil)
	require.NoError(t, err)
	require.Len(t, res.Hits, 1, "MODSEQ range")
}

func testSnippet(t *testing.T, x *index.Index) {
	body := strings.Repeat("filler words here. ", 30) + "The quarterly report is attached.\n" + strings.Repeat("tail text. ", 30)
	d := &index.Document{ID: mailbricks.NewMessageID(), Subject: "Snip", Body: body, Values: index.Values{Date: day(2024, 1, 1)}}
	require.NoError(t, x.Index(ctx, user, d))
	res, err := x.SearchString(ctx, user, `"quarterly report"`, nil)
	require.NoError(t, err)
	require.Len(t, res.Hits, 1)
	h := res.Hits[0]
	require.Equal(t, "Snip", h.Subject, "hits carry the subject")
	require.Contains(t, h.Snippet, "quarterly report", "the snippet shows the match")
	require.LessOrEqual(t, len(h.Snippet), 200, "the snippet is short")
	require.Len(t, h.Highlights, 2, "both words of the phrase are highlighted")
	for _, r := range h.Highlights {
		w := strings.ToLower(h.Snippet[r[0]:r[1]])
		require.True(t, w == "quarterly" || w == "report", "highlight %q must be a matched word", w)
	}
	res, err = x.SearchString(ctx, user, `"quarterly report"`, &index.SearchOptions{NoSnippets: true})
	require.NoError(t, err)
	require.Empty(t, res.Hits[0].Snippet)
}

type sliceSource []*index.Document

func (s sliceSource) Documents(_ context.Context, _ mailbricks.UserID, fn func(*index.Document) error) error {
	for _, d := range s {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func testCheck(t *testing.T, x *index.Index) {
	docs := basicDocs()
	require.NoError(t, x.IndexBatch(ctx, user, docs[:3]))
	drift, err := x.Check(ctx, user, sliceSource(docs))
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[3].ID}, drift.Missing, "Check must report a message missing from the index")
	require.Empty(t, drift.Extra)
	require.Empty(t, drift.Stale)
	require.Equal(t, 4, drift.Checked)

	changed := *docs[1]
	changed.Flags |= index.FlagSeen
	src := sliceSource{docs[0], &changed, docs[3]}
	drift, err = x.Check(ctx, user, src)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{docs[3].ID}, drift.Missing)
	require.Equal(t, []mailbricks.MessageID{docs[2].ID}, drift.Extra, "Check must report indexed messages the source lacks")
	require.Equal(t, []mailbricks.MessageID{docs[1].ID}, drift.Stale, "Check must report stale values")
	require.False(t, drift.OK())

	_, err = x.Repair(ctx, user, src)
	require.NoError(t, err)
	drift, err = x.Check(ctx, user, src)
	require.NoError(t, err)
	require.True(t, drift.OK(), "after Repair, Check must find no drift: %+v", drift)
	expect(t, x, user, "", docs, 0, 1, 3)

	n, err := x.Reindex(ctx, user, sliceSource(docs[2:]))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	expect(t, x, user, "", docs, 2, 3)
	expect(t, x, user, "lunch", docs)
}

func testErrors(t *testing.T, x *index.Index) {
	_, err := x.SearchString(ctx, user, `"unterminated`, nil)
	var pe *index.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 0, pe.Pos)
	require.ErrorIs(t, err, index.ErrBadQuery)
	_, err = x.SearchString(ctx, "", "x", nil)
	require.ErrorIs(t, err, mailbricks.ErrInvalidUser)
	err = x.Index(ctx, user, &index.Document{})
	require.ErrorIs(t, err, index.ErrInvalidDocument)
	_, err = x.Search(ctx, user, index.Query{Kind: index.KindNot}, nil)
	require.ErrorIs(t, err, index.ErrBadQuery)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = x.SearchString(cctx, user, "x", nil)
	require.ErrorIs(t, err, context.Canceled, "a cancelled context must fail the call")
}

func testClosed(t *testing.T, x *index.Index) {
	require.NoError(t, x.Close())
	require.NoError(t, x.Close(), "Close is idempotent")
	_, err := x.SearchString(ctx, user, "x", nil)
	require.ErrorIs(t, err, index.ErrClosed)
	require.ErrorIs(t, x.Index(ctx, user, basicDocs()[0]), index.ErrClosed)
}

// testModel runs random writes and queries and compares every answer with
// the brute-force evaluator.
func testModel(t *testing.T, x *index.Index) {
	docs := RandomDocuments(1, 300)
	brute := NewBrute()
	for i := 0; i < len(docs); i += 50 {
		batch := docs[i : i+50]
		require.NoError(t, x.IndexBatch(ctx, user, batch))
		for _, d := range batch {
			brute.Add(d)
		}
	}
	// Deletes, replacements and updates.
	for i := 0; i < 300; i += 7 {
		require.NoError(t, x.Delete(ctx, user, docs[i].ID))
		brute.Delete(docs[i].ID)
	}
	for i := 3; i < 300; i += 11 {
		d := *docs[(i*13)%300]
		d.Body = docs[i].Body
		require.NoError(t, x.Index(ctx, user, &d))
		brute.Add(&d)
	}
	for i := 5; i < 300; i += 9 {
		v := docs[i].Values
		v.Flags ^= index.FlagSeen | index.FlagFlagged
		v.Folder = "Moved"
		err := x.Update(ctx, user, docs[i].ID, v)
		if brute.Update(docs[i].ID, v) {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, index.ErrNotFound)
		}
	}
	Compare(t, x, user, brute, Queries(docs, 2, 400))
}

// Compare searches each query through x and requires the total and the
// hits, in order, to equal the brute-force evaluator's. Result lists
// longer than 2,000 are compared on their total and first page.
func Compare(t *testing.T, x *index.Index, u mailbricks.UserID, brute *Brute, queries []index.Query) {
	t.Helper()
	for _, q := range queries {
		want := brute.Search(q.Resolve(Now()), index.SortNewest)
		res, err := x.Search(ctx, u, q, &index.SearchOptions{Limit: 1000, NoSnippets: true})
		require.NoError(t, err, "query %s", q)
		require.Equal(t, len(want), res.Total, "query %s: Total must equal the brute-force count", q)
		got := ids(res.Hits)
		for res.Cursor != "" && len(want) <= 2000 {
			res, err = x.Search(ctx, u, q, &index.SearchOptions{Limit: 1000, NoSnippets: true, Cursor: res.Cursor})
			require.NoError(t, err, "query %s", q)
			got = append(got, ids(res.Hits)...)
		}
		if len(want) > len(got) {
			want = want[:len(got)]
		}
		if !slices.Equal(want, got) {
			t.Fatalf("query %s: hits differ from the brute-force evaluator's (%d vs %d hits)", q, len(got), len(want))
		}
	}
}
