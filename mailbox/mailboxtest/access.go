package mailboxtest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// testSubscriptions: subscriptions are per-user names, idempotent, kept
// across folder deletion, sorted.
func testSubscriptions(t *testing.T, s *mailbox.Store) {
	subs, err := s.Subscriptions(ctx, alice)
	require.NoError(t, err)
	require.Empty(t, subs, "a new user has no subscriptions")
	_, err = s.CreateFolder(ctx, alice, "Work")
	require.NoError(t, err)
	require.NoError(t, s.Subscribe(ctx, alice, "Work"))
	require.NoError(t, s.Subscribe(ctx, alice, "Work"), "subscribing twice is no error")
	require.NoError(t, s.Subscribe(ctx, alice, "inbox"), "INBOX in any case is canonicalized")
	require.NoError(t, s.Subscribe(ctx, alice, "Never/Created"), "a folder need not exist to be subscribed")
	subs, err = s.Subscriptions(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, []string{"INBOX", "Never/Created", "Work"}, subs)
	bobSubs, err := s.Subscriptions(ctx, bob)
	require.NoError(t, err)
	require.Empty(t, bobSubs, "subscriptions are per user")
	require.NoError(t, s.DeleteFolder(ctx, alice, "Work"))
	subs, err = s.Subscriptions(ctx, alice)
	require.NoError(t, err)
	require.Contains(t, subs, "Work", "deleting a folder keeps its subscription (RFC 9051 6.3.4)")
	require.NoError(t, s.Unsubscribe(ctx, alice, "Work"))
	require.NoError(t, s.Unsubscribe(ctx, alice, "Work"), "unsubscribing twice is no error")
	subs, err = s.Subscriptions(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, []string{"INBOX", "Never/Created"}, subs)
	require.ErrorIs(t, s.Subscribe(ctx, alice, "a//b"), mailbox.ErrInvalidFolder)
	require.ErrorIs(t, s.Backend().Subscribe(ctx, alice, "/x", true), mailbox.ErrInvalidFolder, "the backend checks names too")
	_, err = s.Backend().Subscriptions(ctx, mailbricks.UserID(""))
	require.ErrorIs(t, err, mailbricks.ErrInvalidUser)
}

// testUIDValidityEverywhere: Append and every read report the folder's
// UIDValidity with the message.
func testUIDValidityEverywhere(t *testing.T, s *mailbox.Store) {
	f, err := s.CreateFolder(ctx, alice, "V")
	require.NoError(t, err)
	m := appendMsg(t, s, alice, "V", Msg("uidvalidity", "x"), nil)
	require.Equal(t, f.UIDValidity, m.UIDValidity, "Append returns the folder's UIDValidity (APPENDUID)")
	got, err := s.Get(ctx, alice, m.ID)
	require.NoError(t, err)
	require.Equal(t, f.UIDValidity, got.UIDValidity, "Get")
	msgs, err := s.FetchUIDs(ctx, alice, "V", 1, 0)
	require.NoError(t, err)
	require.Equal(t, f.UIDValidity, msgs[0].UIDValidity, "FetchUIDs")
	again, err := s.Append(ctx, alice, "V", bytes.NewReader(Msg("uidvalidity2", "x")), &mailbox.AppendOptions{Key: "k1"})
	require.NoError(t, err)
	dup, err := s.Append(ctx, alice, "V", bytes.NewReader(Msg("uidvalidity2", "x")), &mailbox.AppendOptions{Key: "k1"})
	require.NoError(t, err)
	require.Equal(t, again.UIDValidity, dup.UIDValidity, "an idempotent repeat reports the UIDValidity too")
	res, err := s.SetFlags(ctx, alice, []mailbricks.MessageID{m.ID}, mailbox.FlagAdd, []string{"$Label"}, nil)
	require.NoError(t, err)
	require.Equal(t, f.UIDValidity, res.Updated[0].UIDValidity, "SetFlags")
	page, err := s.List(ctx, alice, "V", nil)
	require.NoError(t, err)
	require.Equal(t, f.UIDValidity, page.Messages[0].UIDValidity, "List")
}

// testFetchUIDSet: a UID set of several ranges, overlapping, reversed and
// open-ended, returns each message once by increasing UID.
func testFetchUIDSet(t *testing.T, s *mailbox.Store) {
	_, err := s.CreateFolder(ctx, alice, "S")
	require.NoError(t, err)
	for i := range 10 {
		appendMsg(t, s, alice, "S", Msg("set "+string(rune('a'+i)), "x"), nil)
	}
	uids := func(set ...mailbox.UIDRange) []uint32 {
		msgs, err := s.FetchUIDSet(ctx, alice, "S", set)
		require.NoError(t, err)
		var out []uint32
		for _, m := range msgs {
			out = append(out, m.UID)
		}
		return out
	}
	require.Equal(t, []uint32{1, 2, 3, 7, 8, 9, 10}, uids(mailbox.UIDRange{First: 7, Last: 0}, mailbox.UIDRange{First: 3, Last: 1}, mailbox.UIDRange{First: 2, Last: 2}))
	require.Equal(t, []uint32{4, 5, 6}, uids(mailbox.UIDRange{First: 4, Last: 5}, mailbox.UIDRange{First: 5, Last: 6}))
	require.Empty(t, uids())
	require.Empty(t, uids(mailbox.UIDRange{First: 11, Last: 20}))
	require.Equal(t, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, uids(mailbox.UIDRange{First: 5, Last: 0}, mailbox.UIDRange{First: 1, Last: 6}))
}

// testStatus: the keyword set and \Deleted count follow flag changes and
// expunges.
func testStatus(t *testing.T, s *mailbox.Store) {
	_, err := s.CreateFolder(ctx, alice, "K")
	require.NoError(t, err)
	a := appendMsg(t, s, alice, "K", Msg("kw a", "x"), &mailbox.AppendOptions{Flags: []string{"work", `\Deleted`}})
	b := appendMsg(t, s, alice, "K", Msg("kw b", "x"), &mailbox.AppendOptions{Flags: []string{"$Forwarded", `\Seen`}})
	st, err := s.Status(ctx, alice, "K")
	require.NoError(t, err)
	require.Equal(t, []string{"$Forwarded", "work"}, st.Keywords)
	require.EqualValues(t, 1, st.Deleted)
	require.EqualValues(t, 2, st.Total)
	_, err = s.SetFlags(ctx, alice, []mailbricks.MessageID{b.ID}, mailbox.FlagAdd, []string{`\Deleted`}, nil)
	require.NoError(t, err)
	st, err = s.Status(ctx, alice, "K")
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Deleted)
	_, err = s.Expunge(ctx, alice, a.ID)
	require.NoError(t, err)
	st, err = s.Status(ctx, alice, "K")
	require.NoError(t, err)
	require.Equal(t, []string{"$Forwarded"}, st.Keywords, "an expunged message's keywords leave the set")
	require.EqualValues(t, 1, st.Deleted)
	_, err = s.Status(ctx, alice, "Nope")
	require.ErrorIs(t, err, mailbox.ErrNoFolder)
}

// testExpungeIfDeleted: only messages still \Deleted at the expunge are
// removed, also when a concurrent writer clears the flag.
func testExpungeIfDeleted(t *testing.T, s *mailbox.Store) {
	_, err := s.CreateFolder(ctx, alice, "E")
	require.NoError(t, err)
	del := appendMsg(t, s, alice, "E", Msg("exp del", "x"), &mailbox.AppendOptions{Flags: []string{`\Deleted`}})
	keep := appendMsg(t, s, alice, "E", Msg("exp keep", "x"), nil)
	undel := appendMsg(t, s, alice, "E", Msg("exp undel", "x"), &mailbox.AppendOptions{Flags: []string{`\Deleted`}})
	_, err = s.SetFlags(ctx, alice, []mailbricks.MessageID{undel.ID}, mailbox.FlagRemove, []string{`\Deleted`}, nil)
	require.NoError(t, err)
	gone, err := s.ExpungeIfDeleted(ctx, alice, del.ID, keep.ID, undel.ID)
	require.NoError(t, err)
	require.Len(t, gone, 1)
	require.Equal(t, del.ID, gone[0].ID)
	msgs, err := s.FetchUIDs(ctx, alice, "E", 1, 0)
	require.NoError(t, err)
	require.Equal(t, []mailbricks.MessageID{keep.ID, undel.ID}, ids(msgs))
	_, err = s.Backend().ExpungeFlagged(ctx, alice, []mailbricks.MessageID{keep.ID}, "")
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument)
	other, err := s.ExpungeIfDeleted(ctx, bob, del.ID, keep.ID)
	require.NoError(t, err)
	require.Empty(t, other, "another user's IDs expunge nothing")

	// Race: one goroutine toggles \Deleted off while another expunges;
	// whatever was expunged must have been \Deleted at that moment, so a
	// message whose last state is "not deleted" after the toggle either
	// survives or was expunged before the toggle (then the toggle found
	// nothing).
	const n = 40
	var victims []mailbox.Message
	for i := range n {
		victims = append(victims, appendMsg(t, s, alice, "E", Msg("race "+string(rune('a'+i%26))+string(rune('a'+i/26)), "x"), &mailbox.AppendOptions{Flags: []string{`\Deleted`}}))
	}
	var wg sync.WaitGroup
	var cleared mailbox.FlagResult
	var expunged []mailbox.Message
	wg.Add(2)
	go func() {
		defer wg.Done()
		var err error
		cleared, err = s.SetFlags(ctx, alice, ids(victims), mailbox.FlagRemove, []string{`\Deleted`}, nil)
		require.NoError(t, err)
	}()
	go func() {
		defer wg.Done()
		var err error
		expunged, err = s.ExpungeIfDeleted(ctx, alice, ids(victims)...)
		require.NoError(t, err)
	}()
	wg.Wait()
	require.Equal(t, n, len(cleared.Updated)+len(expunged), "every message was either cleared or expunged, never both")
	for _, m := range cleared.Updated {
		_, err := s.Get(ctx, alice, m.ID)
		require.NoError(t, err, "a message cleared of \\Deleted survives")
	}
}
