package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
)

// flakyIndex is an index backend whose writes fail while fail is set.
type flakyIndex struct {
	index.Backend
	fail atomic.Bool
}

var errInjected = errors.New("injected index failure")

func (f *flakyIndex) Index(ctx context.Context, u mailbricks.UserID, docs []*index.Document) error {
	if f.fail.Load() {
		return errInjected
	}
	return f.Backend.Index(ctx, u, docs)
}

func (f *flakyIndex) Update(ctx context.Context, u mailbricks.UserID, id mailbricks.MessageID, v index.Values) error {
	if f.fail.Load() {
		return errInjected
	}
	return f.Backend.Update(ctx, u, id, v)
}

func openIndexed(t *testing.T) (*mailbox.Store, *index.Index, *flakyIndex) {
	t.Helper()
	fs := vfs.NewMem()
	blobs, err := filededup.OpenStore("blobs", &filededup.Options{FS: fs})
	require.NoError(t, err)
	xb, err := lsmindex.Open("index", &lsmindex.Options{FS: fs})
	require.NoError(t, err)
	flaky := &flakyIndex{Backend: xb}
	x := index.New(flaky, nil)
	store, err := lsmmailbox.OpenStore("mailbox", blobs, &lsmmailbox.Options{FS: fs, Store: &mailbox.Options{Index: x}})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, store.Close())
		require.NoError(t, x.Close())
		require.NoError(t, blobs.Close())
	})
	return store, x, flaky
}

const withAttachment = "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Quarterly report\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XYZ\r\n\r\n" +
	"--XYZ\r\nContent-Type: text/plain\r\n\r\nThe figures are attached.\r\n" +
	"--XYZ\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=q4.pdf\r\n\r\n%s\r\n--XYZ--\r\n"

func hits(t *testing.T, x *index.Index, user mailbricks.UserID, q string) []mailbricks.MessageID {
	t.Helper()
	res, err := x.SearchString(context.Background(), user, q, &index.SearchOptions{Limit: 1000, NoSnippets: true})
	require.NoError(t, err, "query %q", q)
	out := []mailbricks.MessageID{}
	for _, h := range res.Hits {
		out = append(out, h.ID)
	}
	return out
}

func TestIndexFollowsMailbox(t *testing.T) {
	ctx := context.Background()
	store, x, _ := openIndexed(t)
	const user = mailbricks.UserID("alice@example.com")
	raw := fmt.Sprintf(withAttachment, strings.Repeat("A", 200<<10))
	m, err := store.Append(ctx, user, mailbox.Inbox, strings.NewReader(raw), nil)
	require.NoError(t, err)
	one := []mailbricks.MessageID{m.ID}

	require.Equal(t, one, hits(t, x, user, "quarterly"), "Append must index the message before it returns")
	require.Equal(t, one, hits(t, x, user, "has:attachment larger:100K is:unread in:INBOX filename:q4.pdf"))

	// The measured newcomer bug: a mark-read must not drop has:attachment
	// or larger: (the mailbox writes the whole state, not a guess).
	require.NoError(t, store.MarkRead(ctx, user, m.ID))
	require.Equal(t, one, hits(t, x, user, "has:attachment larger:100K is:read"), "mark-read must keep every other value")
	require.Empty(t, hits(t, x, user, "is:unread"))

	_, err = store.SetFlags(ctx, user, one, mailbox.FlagAdd, []string{"work", mailbox.FlagFlagged}, nil)
	require.NoError(t, err)
	require.Equal(t, one, hits(t, x, user, "label:work is:starred has:attachment"))

	_, err = store.Move(ctx, user, one, "Archive")
	require.NoError(t, err)
	require.Equal(t, one, hits(t, x, user, "in:Archive label:work has:attachment"), "Move must update the folder")
	require.Empty(t, hits(t, x, user, "in:INBOX"))
	got, err := store.Get(ctx, user, m.ID)
	require.NoError(t, err)
	v, err := x.Get(ctx, user, m.ID)
	require.NoError(t, err)
	require.True(t, index.EqualValues(mailbox.IndexValues(&got), v), "index Values must equal the message's state after Move: %+v vs %+v", v, mailbox.IndexValues(&got))

	cp, err := store.Copy(ctx, user, one, mailbox.Inbox)
	require.NoError(t, err)
	require.Len(t, cp, 1)
	require.ElementsMatch(t, []mailbricks.MessageID{m.ID, cp[0].ID}, hits(t, x, user, "quarterly"), "Copy must index the copy")

	_, err = store.CreateFolder(ctx, user, "Projects")
	require.NoError(t, err)
	_, err = store.CreateFolder(ctx, user, "Projects/Q4")
	require.NoError(t, err)
	_, err = store.Move(ctx, user, []mailbricks.MessageID{cp[0].ID}, "Projects/Q4")
	require.NoError(t, err)
	require.NoError(t, store.RenameFolder(ctx, user, "Projects", "Work"))
	require.Equal(t, []mailbricks.MessageID{cp[0].ID}, hits(t, x, user, `in:"Work/Q4"`), "RenameFolder must update the folder of the messages below it")

	_, err = store.Expunge(ctx, user, cp[0].ID)
	require.NoError(t, err)
	require.Equal(t, one, hits(t, x, user, "quarterly"), "Expunge must remove the message from the index")
	require.NoError(t, store.Delete(ctx, user, m.ID))
	require.Equal(t, one, hits(t, x, user, "in:Trash"))
	require.NoError(t, store.Delete(ctx, user, m.ID))
	require.Empty(t, hits(t, x, user, "quarterly"), "Delete from Trash must remove the message from the index")

	drift, err := x.Check(ctx, user, store)
	require.NoError(t, err)
	require.True(t, drift.OK(), "the index must match the mailbox exactly: %+v", drift)
}

func TestIndexCatchesUp(t *testing.T) {
	ctx := context.Background()
	store, x, flaky := openIndexed(t)
	const user = mailbricks.UserID("bob")
	body := "Subject: invoice 17\r\n\r\npay me\r\n"

	// The index write fails after the mailbox committed: the append stands,
	// the error says the index is behind.
	flaky.fail.Store(true)
	m, err := store.Append(ctx, user, mailbox.Inbox, strings.NewReader(body), &mailbox.AppendOptions{Key: "job-17"})
	require.ErrorIs(t, err, mailbox.ErrIndex)
	require.ErrorIs(t, err, errInjected)
	require.Empty(t, hits(t, x, user, "invoice"))
	flaky.fail.Store(false)

	// The queue redelivers the job: the retry stores nothing new and
	// indexes the stored message.
	again, err := store.Append(ctx, user, mailbox.Inbox, strings.NewReader(body), &mailbox.AppendOptions{Key: "job-17"})
	require.NoError(t, err)
	require.Equal(t, m.ID, again.ID, "a retried Append with the same key must return the stored message")
	require.Equal(t, []mailbricks.MessageID{m.ID}, hits(t, x, user, "invoice"), "the retry must index the message the first attempt stored")
	page, err := store.List(ctx, user, mailbox.Inbox, nil)
	require.NoError(t, err)
	require.Len(t, page.Messages, 1, "the retry must not store a duplicate")

	// An unkeyed append whose index write failed is caught up by the
	// next change of the message.
	flaky.fail.Store(true)
	m2, err := store.Append(ctx, user, mailbox.Inbox, strings.NewReader("Subject: receipt 18\r\n\r\nthanks\r\n"), nil)
	require.ErrorIs(t, err, mailbox.ErrIndex)
	flaky.fail.Store(false)
	require.NoError(t, store.MarkRead(ctx, user, m2.ID))
	require.Equal(t, []mailbricks.MessageID{m2.ID}, hits(t, x, user, "receipt is:read"), "an update of a message the index lacks must index it")
}

func TestReindex(t *testing.T) {
	ctx := context.Background()
	store, x, flaky := openIndexed(t)
	const user = mailbricks.UserID("carol")
	flaky.fail.Store(true) // the index misses everything
	var want []mailbricks.MessageID
	for i := range 250 {
		m, err := store.Append(ctx, user, mailbox.Inbox, strings.NewReader(fmt.Sprintf("Subject: note %d\r\n\r\nsharedword\r\n", i)), nil)
		require.ErrorIs(t, err, mailbox.ErrIndex)
		want = append(want, m.ID)
	}
	flaky.fail.Store(false)
	drift, err := x.Check(ctx, user, store)
	require.NoError(t, err)
	require.Len(t, drift.Missing, 250)

	var reports [][2]int
	n, err := store.Reindex(ctx, user, &mailbox.ReindexOptions{Progress: func(done, total int) { reports = append(reports, [2]int{done, total}) }})
	require.NoError(t, err)
	require.Equal(t, 250, n)
	require.Equal(t, [][2]int{{100, 250}, {200, 250}, {250, 250}}, reports, "progress must be reported per 100 messages and at the end")
	require.ElementsMatch(t, want, hits(t, x, user, "sharedword"))
	drift, err = x.Check(ctx, user, store)
	require.NoError(t, err)
	require.True(t, drift.OK(), "after Reindex the index must match the mailbox: %+v", drift)

}
