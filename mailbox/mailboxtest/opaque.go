package mailboxtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// opaqueUsers are valid user IDs that are not text: every backend must
// store them as bytes, so they round-trip and stay apart ("\xff\xfe" and
// "\xff\xfd" would both become U+FFFD U+FFFD if decoded as UTF-8).
var opaqueUsers = []mailbricks.UserID{
	"\xff\xfe",
	"\xff\xfd",
	"a\tb",
	mailbricks.UserID(strings.Repeat("\xe9", mailbricks.MaxUserIDLen)),
}

// opaqueKeys are valid AppendOptions.Keys that are not text.
var opaqueKeys = []string{"k\x00a", "k\x00b", "\xff\xfe", "\xff\xfd", strings.Repeat("\x00\xff", 256)}

// testOpaque checks that user IDs and append keys are opaque bytes:
// any valid value works, round-trips exactly and is isolated from every
// other.
func testOpaque(t *testing.T, s *mailbox.Store) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := s.Watch(wctx, opaqueUsers[0])
	require.NoError(t, err, "Watch of a valid non-UTF-8 user ID must succeed")

	own := map[mailbricks.UserID]mailbricks.MessageID{}
	for _, u := range opaqueUsers {
		m := appendMsg(t, s, u, mailbox.Inbox, Msg("opaque "+string(rune('a'+len(own))), "x"), nil)
		own[u] = m.ID
	}
	for _, u := range opaqueUsers {
		p, err := s.List(ctx, u, mailbox.Inbox, nil)
		require.NoError(t, err, "List of user %q", u)
		require.Equal(t, []mailbricks.MessageID{own[u]}, ids(p.Messages), "user %q must see exactly its own message", u)
		fs, err := s.Folders(ctx, u)
		require.NoError(t, err)
		require.Len(t, fs, 1, "user %q must have its own folders", u)
		require.Equal(t, int64(1), fs[0].Total, "user %q's INBOX counts must be its own", u)
		for _, v := range opaqueUsers {
			if v == u {
				continue
			}
			_, err := s.Get(ctx, u, own[v])
			require.ErrorIs(t, err, mailbox.ErrNotFound, "user %q must not see the message of user %q", u, v)
		}
	}

	select {
	case ev := <-watch:
		for ev.Kind == mailbox.EventFolder {
			select {
			case ev = <-watch:
			case <-time.After(10 * time.Second):
				t.Fatal("Watch must deliver the append of a non-UTF-8 user")
			}
		}
		require.Equal(t, opaqueUsers[0], ev.User, "a watch event must carry the user ID byte for byte")
		require.Equal(t, own[opaqueUsers[0]], ev.ID)
	case <-time.After(10 * time.Second):
		t.Fatal("Watch must deliver the append of a non-UTF-8 user")
	}

	// Keys: each is its own idempotency key, for one user only.
	u := opaqueUsers[0]
	byKey := map[string]mailbricks.MessageID{}
	for i, k := range opaqueKeys {
		m := appendMsg(t, s, u, mailbox.Inbox, Msg("keyed "+string(rune('a'+i)), "x"), &mailbox.AppendOptions{Key: k})
		for k2, id := range byKey {
			require.NotEqual(t, id, m.ID, "keys %q and %q must be distinct", k, k2)
		}
		byKey[k] = m.ID
	}
	for i, k := range opaqueKeys {
		m := appendMsg(t, s, u, mailbox.Inbox, Msg("keyed again "+string(rune('a'+i)), "x"), &mailbox.AppendOptions{Key: k})
		require.Equal(t, byKey[k], m.ID, "key %q must round-trip: a repeat must return the first message", k)
	}
	m := appendMsg(t, s, opaqueUsers[1], mailbox.Inbox, Msg("other user", "x"), &mailbox.AppendOptions{Key: opaqueKeys[0]})
	require.NotEqual(t, byKey[opaqueKeys[0]], m.ID, "one key for two users must make two messages")
}
