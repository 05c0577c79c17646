package mailboxtest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// victim is the user whose data the invalid-input cases try to reach.
const victim = mailbricks.UserID("v")

// InvalidUsers returns user IDs a backend must reject with an error
// matching [mailbricks.ErrInvalidUser]: empty, 256 and 257 bytes (a
// one-byte length prefix wraps to 0 and 1: the 257-byte ones start with
// "v" and a table byte, so that a key layout with such a prefix puts them
// in the key range of user "v"), and with NUL, CR or LF.
func InvalidUsers() []mailbricks.UserID {
	pad := func(head string, n int) mailbricks.UserID {
		return mailbricks.UserID(head + strings.Repeat("x", n-len(head)))
	}
	var us []mailbricks.UserID
	us = append(us, "", pad("", 256), pad("v", 256))
	// Every table byte of a one-byte-length layout: the rest of the user
	// then reads as that table's key within user "v".
	for _, tb := range "abcfhklmnrtux" {
		us = append(us, pad("v"+string(tb), 257))
	}
	// Under such a layout these read as entries of user "v"'s unread and
	// read tables of its first folder (ID 1), where v's List finds them.
	us = append(us, pad("vu\x00\x00\x00\x01", 257), pad("vr\x00\x00\x00\x01", 257))
	us = append(us, "v\x00", "v\x00n", "a\rb", "a\nb", "v\r\n")
	return us
}

// testInvalidInput calls the backend directly, past [mailbox.Store]'s
// checks, with invalid users, folder names and keys: each call must fail
// with the error Store would return, and user "v", written first, must be
// unchanged afterwards.
func testInvalidInput(t *testing.T, s *mailbox.Store) {
	b := s.Backend()
	m := appendMsg(t, s, victim, mailbox.Inbox, Msg("victim", "the victim's message"), &mailbox.AppendOptions{Key: "victim-key"})
	folders, err := b.Folders(ctx, victim)
	require.NoError(t, err)
	inbox, err := b.Folder(ctx, victim, mailbox.Inbox)
	require.NoError(t, err)

	rec := func(folder, key string) *mailbox.Record {
		r := &mailbox.Record{Skeleton: []byte("skeleton"), Key: key}
		r.ID = mailbricks.NewMessageID()
		r.ThreadID = r.ID
		r.Folder = folder
		r.Flags = []string{}
		r.Size = 8
		r.Subject = "intruder"
		return r
	}
	// calls are the backend methods that take a user, each given the user
	// and a valid folder name; they return only the error.
	calls := map[string]func(u mailbricks.UserID, folder string) error{
		"CreateFolder": func(u mailbricks.UserID, f string) error {
			_, err := b.CreateFolder(ctx, u, f, "")
			return err
		},
		"Folders": func(u mailbricks.UserID, f string) error { _, err := b.Folders(ctx, u); return err },
		"Folder":  func(u mailbricks.UserID, f string) error { _, err := b.Folder(ctx, u, f); return err },
		"RenameFolder": func(u mailbricks.UserID, f string) error {
			return b.RenameFolder(ctx, u, f, f+"2")
		},
		"DeleteFolder": func(u mailbricks.UserID, f string) error { return b.DeleteFolder(ctx, u, f) },
		"Append": func(u mailbricks.UserID, f string) error {
			_, _, err := b.Append(ctx, u, rec(f, "intruder-key"))
			return err
		},
		"LookupKey": func(u mailbricks.UserID, f string) error { _, err := b.LookupKey(ctx, u, "victim-key"); return err },
		"Get":       func(u mailbricks.UserID, f string) error { _, err := b.Get(ctx, u, m.ID); return err },
		"Skeleton":  func(u mailbricks.UserID, f string) error { _, err := b.Skeleton(ctx, u, m.ID); return err },
		"List": func(u mailbricks.UserID, f string) error {
			_, err := b.List(ctx, u, f, mailbox.ListQuery{Limit: 10})
			return err
		},
		"FetchUIDs": func(u mailbricks.UserID, f string) error { _, err := b.FetchUIDs(ctx, u, f, 1, 10); return err },
		"Scan": func(u mailbricks.UserID, f string) error {
			_, err := b.Scan(ctx, u, mailbricks.MessageID{}, 10)
			return err
		},
		"SetFlags": func(u mailbricks.UserID, f string) error {
			_, err := b.SetFlags(ctx, u, []mailbricks.MessageID{m.ID}, mailbox.FlagChange{Op: mailbox.FlagAdd, Flags: []string{mailbox.FlagSeen}})
			return err
		},
		"Move": func(u mailbricks.UserID, f string) error {
			_, err := b.Move(ctx, u, []mailbricks.MessageID{m.ID}, f)
			return err
		},
		"Copy": func(u mailbricks.UserID, f string) error {
			_, err := b.Copy(ctx, u, []mailbox.CopyPair{{Source: m.ID, ID: mailbricks.NewMessageID()}}, f)
			return err
		},
		"Expunge": func(u mailbricks.UserID, f string) error {
			_, err := b.Expunge(ctx, u, []mailbricks.MessageID{m.ID})
			return err
		},
		"Changes": func(u mailbricks.UserID, f string) error { _, err := b.Changes(ctx, u, f, 0); return err },
		"FindThread": func(u mailbricks.UserID, f string) error {
			_, _, err := b.FindThread(ctx, u, []string{"k"})
			return err
		},
		"Thread":  func(u mailbricks.UserID, f string) error { _, err := b.Thread(ctx, u, m.ThreadID); return err },
		"Recount": func(u mailbricks.UserID, f string) error { _, err := b.Recount(ctx, u, f); return err },
	}

	t.Run("User", func(t *testing.T) {
		// CreateFolder and Append first, so that on a backend that
		// wrongly accepts the user the other calls find data.
		order := []string{"CreateFolder", "Append"}
		for _, name := range slices.Sorted(maps.Keys(calls)) {
			if name != "CreateFolder" && name != "Append" {
				order = append(order, name)
			}
		}
		for _, u := range InvalidUsers() {
			for _, name := range order {
				call := calls[name]
				err := safely(func() error { return call(u, "Junk") })
				assert.ErrorIs(t, err, mailbricks.ErrInvalidUser,
					"Backend.%s with an invalid user (%d bytes, %q) must fail with mailbricks.ErrInvalidUser", name, len(u), truncUser(u))
			}
		}
	})
	t.Run("Folder", func(t *testing.T) {
		for _, f := range []string{"", "a\x00b", "a\rb", "a\nb", "a//b", strings.Repeat("x", 2000)} {
			for _, name := range []string{"CreateFolder", "Folder", "RenameFolder", "DeleteFolder", "Append", "List", "FetchUIDs", "Move", "Copy", "Changes", "Recount"} {
				err := safely(func() error { return calls[name]("w", f) })
				assert.ErrorIs(t, err, mailbox.ErrInvalidFolder,
					"Backend.%s with an invalid folder name %q must fail with mailbox.ErrInvalidFolder", name, truncUser(mailbricks.UserID(f)))
			}
		}
	})
	t.Run("Key", func(t *testing.T) {
		long := strings.Repeat("k", mailbox.MaxKeyLen+1)
		_, _, err := b.Append(ctx, "w", rec(mailbox.Inbox, long))
		assert.ErrorIs(t, err, mailbox.ErrInvalidArgument, "Backend.Append with a key over MaxKeyLen must fail with mailbox.ErrInvalidArgument")
		_, err = b.LookupKey(ctx, "w", long)
		assert.ErrorIs(t, err, mailbox.ErrInvalidArgument, "Backend.LookupKey with a key over MaxKeyLen must fail with mailbox.ErrInvalidArgument")
	})

	after, err := b.Folders(ctx, victim)
	require.NoError(t, err, "invalid calls must not damage another user's folders")
	require.Equal(t, folders, after, "invalid calls must not change another user's folders")
	inbox2, err := b.Folder(ctx, victim, mailbox.Inbox)
	require.NoError(t, err, "invalid calls must not damage another user's folder")
	require.Equal(t, inbox, inbox2, "invalid calls must not change another user's folder")
	got, err := b.Get(ctx, victim, m.ID)
	require.NoError(t, err, "invalid calls must not remove another user's message")
	require.Equal(t, m.Flags, got.Flags, "invalid calls must not change another user's flags")
	require.Equal(t, m.UID, got.UID)
	list, err := b.List(ctx, victim, mailbox.Inbox, mailbox.ListQuery{Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{m.ID}, ids(list), "invalid calls must not add messages to another user's folder")
	all, err := b.Scan(ctx, victim, mailbricks.MessageID{}, 100)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{m.ID}, ids(all), "invalid calls must not add messages to another user")
	k, err := b.LookupKey(ctx, victim, "intruder-key")
	require.True(t, errors.Is(err, mailbox.ErrNotFound), "invalid calls must not add keys to another user (got %v, %v)", k.ID, err)
	c, err := b.Recount(ctx, victim, mailbox.Inbox)
	require.NoError(t, err)
	require.Equal(t, inbox.Counts, c, "invalid calls must not change another user's counts")
}

func truncUser(u mailbricks.UserID) string {
	if len(u) > 20 {
		return string(u[:20]) + "…"
	}
	return string(u)
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
