package indextest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// opaqueUsers are valid user IDs that are not text: every backend must
// store them as bytes, so they stay apart ("\xff\xfe" and "\xff\xfd"
// would both become U+FFFD U+FFFD if decoded as UTF-8).
var opaqueUsers = []mailbricks.UserID{
	"\xff\xfe",
	"\xff\xfd",
	"a\tb",
	mailbricks.UserID(strings.Repeat("\xe9", mailbricks.MaxUserIDLen)),
}

// testOpaque checks that any valid user ID works and is isolated from
// every other: in Index, Search, Update, Delete and Reindex.
func testOpaque(t *testing.T, x *index.Index) {
	docs := basicDocs()
	for i, u := range opaqueUsers {
		require.NoError(t, x.Index(ctx, u, docs[i]), "indexing for the valid user ID %q must succeed", u)
	}
	for i, u := range opaqueUsers {
		expect(t, x, u, "", docs, i)
	}
	// An update or delete of another user's document is a no-op for the
	// owner.
	err := x.Update(ctx, opaqueUsers[1], docs[0].ID, index.Values{Folder: "Moved"})
	require.ErrorIs(t, err, index.ErrNotFound, "user %q must not update the document of user %q", opaqueUsers[1], opaqueUsers[0])
	require.NoError(t, x.Delete(ctx, opaqueUsers[1], docs[0].ID))
	expect(t, x, opaqueUsers[0], "in:INBOX", docs, 0)
	require.NoError(t, x.Update(ctx, opaqueUsers[0], docs[0].ID, index.Values{Date: docs[0].Values.Date, Folder: "Moved"}))
	expect(t, x, opaqueUsers[0], "in:Moved", docs, 0)
	require.NoError(t, x.Delete(ctx, opaqueUsers[0], docs[0].ID))
	expect(t, x, opaqueUsers[0], "", docs)
	expect(t, x, opaqueUsers[1], "", docs, 1)
}
