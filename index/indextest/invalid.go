package indextest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// InvalidUsers returns user IDs a backend must reject with an error
// matching [mailbricks.ErrInvalidUser]: empty, 256 and 257 bytes, and with
// NUL, CR or LF, several of them shaped to land in user "v"'s keys under
// a layout that trusted them (a one-byte length prefix, or a
// NUL-terminated user followed by a table byte).
func InvalidUsers() []mailbricks.UserID {
	pad := func(head string, n int) mailbricks.UserID {
		return mailbricks.UserID(head + strings.Repeat("x", n-len(head)))
	}
	us := []mailbricks.UserID{"", pad("", 256), pad("v", 256), pad("v", 257), pad("vD", 257), pad("vP", 257)}
	for _, tag := range "PDTXN" {
		us = append(us, mailbricks.UserID("v\x00"+string(tag)))
	}
	return append(us, "v\x00", "a\rb", "a\nb", "v\r\n")
}

// testInvalidInput calls the backend directly, past [index.Index]'s
// checks, with invalid users and documents: each call must fail with the
// error Index would return, and user "v", indexed first, must be
// unchanged afterwards.
func testInvalidInput(t *testing.T, x *index.Index) {
	const victim = mailbricks.UserID("v")
	b := x.Backend()
	doc := &index.Document{
		ID: mailbricks.NewMessageIDAt(day(2024, 5, 1)), Subject: "victim", Body: "the victim's words",
		Values: index.Values{Date: day(2024, 5, 1), Size: 100, Folder: "INBOX"},
	}
	require.NoError(t, x.Index(ctx, victim, doc))
	list := func(u mailbricks.UserID) (map[mailbricks.MessageID]index.Values, error) {
		out := map[mailbricks.MessageID]index.Values{}
		err := b.List(ctx, u, func(id mailbricks.MessageID, v index.Values) error { out[id] = v; return nil })
		return out, err
	}
	before, err := list(victim)
	require.NoError(t, err)

	calls := map[string]func(u mailbricks.UserID) error{
		"Index": func(u mailbricks.UserID) error {
			d := *doc
			d.ID = mailbricks.NewMessageIDAt(day(2024, 5, 2))
			return b.Index(ctx, u, []*index.Document{&d})
		},
		"Delete": func(u mailbricks.UserID) error { return b.Delete(ctx, u, []mailbricks.MessageID{doc.ID}) },
		"Update": func(u mailbricks.UserID) error {
			return b.Update(ctx, u, doc.ID, index.Values{Date: day(2024, 5, 3), Folder: "Trash"})
		},
		"Search": func(u mailbricks.UserID) error {
			_, err := b.Search(ctx, u, &index.Request{Query: index.HasFlag(index.FlagSeen), Limit: 10})
			return err
		},
		"List":       func(u mailbricks.UserID) error { _, err := list(u); return err },
		"DeleteUser": func(u mailbricks.UserID) error { return b.DeleteUser(ctx, u) },
	}
	t.Run("User", func(t *testing.T) {
		for _, u := range InvalidUsers() {
			for name, call := range calls {
				s := string(u)
				if len(s) > 20 {
					s = s[:20] + "…"
				}
				assert.ErrorIs(t, safely(func() error { return call(u) }), mailbricks.ErrInvalidUser,
					"Backend.%s with an invalid user (%d bytes, %q) must fail with mailbricks.ErrInvalidUser", name, len(u), s)
			}
		}
	})
	t.Run("Document", func(t *testing.T) {
		assert.ErrorIs(t, safely(func() error { return b.Index(ctx, "w", []*index.Document{nil}) }), index.ErrInvalidDocument,
			"Backend.Index with a nil document must fail with index.ErrInvalidDocument")
		d := *doc
		d.ID = mailbricks.MessageID{}
		assert.ErrorIs(t, safely(func() error { return b.Index(ctx, "w", []*index.Document{&d}) }), index.ErrInvalidDocument,
			"Backend.Index with a zero document ID must fail with index.ErrInvalidDocument")
	})

	after, err := list(victim)
	require.NoError(t, err, "invalid calls must not damage another user's index")
	require.Equal(t, before, after, "invalid calls must not change another user's documents")
	res, err := x.Search(ctx, victim, index.Text(index.FieldSubject, "victim"), nil)
	require.NoError(t, err)
	require.Len(t, res.Hits, 1, "invalid calls must not change another user's search results")
}

// safely runs call and turns a panic into an error, so that a backend that
// panics on bad input fails this case instead of the whole suite.
func safely(call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return call()
}
