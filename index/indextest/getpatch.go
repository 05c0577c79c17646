package indextest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// testGetPatch checks Index.Get (through GetBackend when the backend has
// it, through List otherwise) and that Patch keeps every value it does not
// change: a mark-read must not drop the attachment flag or the size.
func testGetPatch(t *testing.T, x *index.Index) {
	docs := basicDocs()
	require.NoError(t, x.IndexBatch(ctx, user, docs))
	d := docs[0] // has an attachment, 2 MiB, \Seen

	v, err := x.Get(ctx, user, d.ID)
	require.NoError(t, err, "Get of an indexed document must succeed")
	require.True(t, index.EqualValues(d.Values, v), "Get must return the Values as indexed: got %+v, want %+v", v, d.Values)

	_, err = x.Get(ctx, user, mailbricks.NewMessageID())
	require.ErrorIs(t, err, index.ErrNotFound, "Get of a document never indexed must be ErrNotFound")
	_, err = x.Get(ctx, "someone-else", d.ID)
	require.ErrorIs(t, err, index.ErrNotFound, "Get of another user's document must be ErrNotFound")

	folder := "Archive"
	uid := uint32(77)
	got, err := x.Patch(ctx, user, d.ID, index.Patch{Folder: &folder, ClearFlags: index.FlagSeen, AddKeywords: []string{"work", "work"}, UID: &uid})
	require.NoError(t, err)
	want := d.Values
	want.Folder, want.Flags, want.Keywords, want.UID = "Archive", index.FlagAttachment, []string{"work"}, 77
	require.True(t, index.EqualValues(want, got), "Patch must change only what it names: got %+v, want %+v", got, want)
	v, err = x.Get(ctx, user, d.ID)
	require.NoError(t, err)
	require.True(t, index.EqualValues(want, v), "Get after Patch must see the patched Values")

	expect(t, x, user, "has:attachment is:unread", docs, 0)
	expect(t, x, user, "larger:1M", docs, 0)
	expect(t, x, user, "in:Archive label:work", docs, 0)

	_, err = x.Patch(ctx, user, mailbricks.NewMessageID(), index.Patch{SetFlags: index.FlagSeen})
	require.ErrorIs(t, err, index.ErrNotFound, "Patch of a document never indexed must be ErrNotFound")

	require.NoError(t, x.Delete(ctx, user, d.ID))
	_, err = x.Get(ctx, user, d.ID)
	require.ErrorIs(t, err, index.ErrNotFound, "Get of a deleted document must be ErrNotFound")
}
