package imapsession_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// TestTwoClients: two sessions on one folder see each other's new mail,
// flag changes and expunges, with numbers renumbered, in NOOP and IDLE.
func TestTwoClients(t *testing.T) {
	e := newEnv(t, nil, false)
	var ua, ub updates
	a := e.dial(t, "alice", &ua)
	b := e.dial(t, "alice", &ub)
	for i := range 4 {
		appendClient(t, a, "INBOX", msg(fmt.Sprintf("m%d", i), "x"))
	}
	_, err := a.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	_, err = b.Select("INBOX", nil).Wait()
	require.NoError(t, err)

	// New mail from A reaches B at its next command.
	appendClient(t, a, "INBOX", msg("m4", "x"))
	require.NoError(t, b.Noop().Wait())
	_, exists, _ := ub.snapshot()
	require.Contains(t, exists, uint32(5), "B sees EXISTS 5")

	// A's flag change reaches B as FETCH FLAGS.
	_, err = a.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
	require.NoError(t, err)
	require.NoError(t, b.Noop().Wait())
	// imapclient hands unilateral FETCH data to the handler in a goroutine.
	ub.waitFor(t, "FETCH 2 FLAGS (\\Flagged)", func() bool {
		_, _, flags := ub.snapshot()
		return len(flags[2]) == 1 && flags[2][0] == `\Flagged`
	})

	// A expunges messages 2 and 4; B is told with renumbering, and B's
	// numbers then name the right messages.
	ub.reset()
	_, err = a.Store(imap.SeqSetNum(2, 4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
	require.NoError(t, err)
	exp, err := a.Expunge().Collect()
	require.NoError(t, err)
	require.Equal(t, []uint32{4, 2}, exp, "highest first, so each number is valid when sent")
	// B's FETCH must not carry EXPUNGE (RFC 9051 7.5.1); its NOOP does.
	msgs, err := b.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5), &imap.FetchOptions{UID: true}).Collect()
	require.NoError(t, err)
	gotExp, _, _ := ub.snapshot()
	require.Empty(t, gotExp, "no EXPUNGE during FETCH")
	_ = msgs
	require.NoError(t, b.Noop().Wait())
	gotExp, _, _ = ub.snapshot()
	require.Len(t, gotExp, 2)
	require.Equal(t, uint32(3), b.Mailbox().NumMessages)
	msgs, err = b.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{UID: true}).Collect()
	require.NoError(t, err)
	var uids []imap.UID
	for _, m := range msgs {
		uids = append(uids, m.UID)
	}
	require.Equal(t, []imap.UID{1, 3, 5}, uids, "B's numbers after renumbering")

	// IDLE: mail appended by another process (here: the Store directly,
	// as SMTP delivery would) reaches an idle client at once.
	ub.reset()
	idle, err := b.Idle()
	require.NoError(t, err)
	_, err = e.store.Append(ctx, "alice", mailbox.Inbox, strings.NewReader(msg("delivered", "y")), nil)
	require.NoError(t, err)
	ub.waitFor(t, "EXISTS 4 during IDLE", func() bool {
		_, ex, _ := ub.snapshot()
		return len(ex) > 0 && ex[len(ex)-1] == 4
	})
	// Flags and expunges during IDLE too.
	_, err = a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	require.NoError(t, err)
	ub.waitFor(t, "FETCH FLAGS during IDLE", func() bool {
		_, _, fl := ub.snapshot()
		return len(fl[1]) == 1 && fl[1][0] == `\Seen`
	})
	_, err = a.Move(imap.SeqSetNum(1), "Trash").Wait()
	require.NoError(t, err)
	ub.waitFor(t, "EXPUNGE during IDLE", func() bool {
		ex, _, _ := ub.snapshot()
		return len(ex) == 1 && ex[0] == 1
	})
	require.NoError(t, idle.Close())
	require.NoError(t, idle.Wait())
	require.Equal(t, uint32(3), b.Mailbox().NumMessages)

	// A message appended and expunged before B hears of either is never
	// announced: no EXPUNGE for a number B never had.
	ub.reset()
	m, err := e.store.Append(ctx, "alice", mailbox.Inbox, strings.NewReader(msg("fleeting", "y")), nil)
	require.NoError(t, err)
	_, err = e.store.Expunge(ctx, "alice", m.ID)
	require.NoError(t, err)
	require.NoError(t, b.Noop().Wait())
	ex, exists, _ := ub.snapshot()
	require.Empty(t, ex)
	require.Empty(t, exists)
	require.Equal(t, uint32(3), b.Mailbox().NumMessages)
}

// TestSelectedFolderDeleted: a session whose folder another session
// deletes is told BYE and closed; other sessions go on.
func TestSelectedFolderDeleted(t *testing.T) {
	e := newEnv(t, nil, false)
	a := e.dial(t, "alice", nil)
	b := e.dial(t, "alice", nil)
	require.NoError(t, a.Create("Doomed", nil).Wait())
	_, err := b.Select("Doomed", nil).Wait()
	require.NoError(t, err)
	require.NoError(t, a.Delete("Doomed").Wait())
	b.Noop().Wait()
	select {
	case <-b.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("the session of a deleted folder was not closed")
	}
	require.NoError(t, a.Noop().Wait())
}

// TestMalformed: bad commands get BAD and the session goes on; an
// over-long line ends only its own connection.
func TestMalformed(t *testing.T) {
	e := newEnv(t, nil, false)
	r := e.raw(t)
	r.login(t, "alice")
	for i, cmd := range []string{
		"FETCH",
		"FETCH 1 (FLAGS)",
		"SELECT",
		"SELECT INBOX extra garbage",
		"STORE 1 +FLAGS (\\Seen",
		"UID FETCH x:y FLAGS",
		"SEARCH (OR FROM)",
		"SEARCH UNDRAFT NOT",
		"LIST",
		"STATUS INBOX (BOGUS)",
		"APPEND INBOX (\\Seen) \"bad date\" {3}",
		"COPY 1:* ",
		"IDLE extra",
	} {
		tag := fmt.Sprintf("m%d", i)
		lines := r.expect(t, tag+" "+cmd, tag+" ")
		last := lines[len(lines)-1]
		require.True(t, strings.HasPrefix(last, tag+" BAD") || strings.HasPrefix(last, tag+" NO"), "%q: %q", cmd, last)
	}
	r.expect(t, "s SELECT INBOX", "s OK")
	for i, cmd := range []string{"FETCH 5 FLAGS", "FETCH 0 FLAGS", "STORE 9:10 +FLAGS (\\Seen)", "COPY 3 INBOX", "MOVE 1 INBOX", "SEARCH 7"} {
		tag := fmt.Sprintf("n%d", i)
		r.expect(t, tag+" "+cmd, tag+" ")
	}
	// COPY and MOVE of nothing, MOVE onto itself.
	r.expect(t, "o1 UID COPY 99 INBOX", "o1 OK")
	r.expect(t, "o2 UID MOVE 99 INBOX", "o2 OK")
	r.expect(t, "o3 APPEND INBOX {3}\r\nabc", "o3 OK")
	r.expect(t, "o4 MOVE 1 INBOX", "o4 OK")
	r.expect(t, "o5 FETCH 1 (UID)", "o5 OK")
	r.expect(t, "z NOOP", "z OK")

	// An over-long line, or a line without a valid tag, closes that
	// connection only (go-imap cannot resynchronize on it).
	other := e.dial(t, "alice", nil)
	for _, line := range []string{"x LOGIN " + strings.Repeat("a", 60<<10) + " b", "\x00\x01\x02", "* NOOP"} {
		bad := e.raw(t)
		bad.c.Write([]byte(line + "\r\n"))
		bad.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := bad.r.ReadString('\n')
		for err == nil {
			_, err = bad.r.ReadString('\n')
		}
		require.NoError(t, other.Noop().Wait(), "other sessions are not affected")
		r.expect(t, "y NOOP", "y OK")
	}
}

// TestSearchFreshness: a message is found by SEARCH as soon as the APPEND
// (or a delivery through the Store) that stored it returned.
func TestSearchFreshness(t *testing.T) {
	e := newEnv(t, nil, false)
	c := e.dial(t, "alice", nil)
	_, err := c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	const n = 30
	for i := range n {
		word := fmt.Sprintf("zebra%dword", i)
		if i%2 == 0 {
			appendClient(t, c, "INBOX", msg(fmt.Sprintf("fresh %d", i), word))
		} else {
			// Delivered by another path: the client learns of it at its
			// next command, as RFC 9051 has it (SEARCH answers only with
			// messages the client knows).
			_, err := e.store.Append(ctx, "alice", mailbox.Inbox, strings.NewReader(msg(fmt.Sprintf("fresh %d", i), word)), nil)
			require.NoError(t, err)
			require.NoError(t, c.Noop().Wait())
		}
		sr, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{word}}, nil).Wait()
		require.NoError(t, err)
		require.Equal(t, []imap.UID{imap.UID(i + 1)}, sr.AllUIDs(), "message %d found right after it was stored", i)
		// A flag change is searchable at once too.
		_, err = c.Store(imap.UIDSetNum(imap.UID(i+1)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Checked"}}, nil).Collect()
		require.NoError(t, err)
		sr, err = c.Search(&imap.SearchCriteria{Flag: []imap.Flag{"$Checked"}}, &imap.SearchOptions{ReturnCount: true}).Wait()
		require.NoError(t, err)
		require.EqualValues(t, i+1, sr.Count)
	}
	t.Logf("checked %d appends, each searched right after it returned", n)
}

// TestSearchWithoutIndex: without an index, text criteria are substrings.
func TestSearchWithoutIndex(t *testing.T) {
	e := newEnv(t, nil, true)
	c := e.dial(t, "alice", nil)
	appendClient(t, c, "INBOX", msg("quarterly report", "numbers inside"))
	appendClient(t, c, "INBOX", msg("lunch", "see the reporting tool"))
	_, err := c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	check := func(cr *imap.SearchCriteria, want ...uint32) {
		t.Helper()
		sr, err := c.Search(cr, nil).Wait()
		require.NoError(t, err)
		got := sr.AllSeqNums()
		if len(want) == 0 {
			require.Empty(t, got)
			return
		}
		require.Equal(t, want, got)
	}
	check(&imap.SearchCriteria{Body: []string{"port"}}, 2)
	check(&imap.SearchCriteria{Text: []string{"PORT"}}, 1, 2)
	check(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "QUARTER"}}}, 1)
	check(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "lunch@"}}}, 2)
	check(&imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"numbers"}}}}, 2)
	check(&imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2)}, Body: []string{"numbers"}})
	check(&imap.SearchCriteria{Since: time.Now().Add(-48 * time.Hour), Smaller: 10000}, 1, 2)
	check(&imap.SearchCriteria{Before: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)})
}

// TestIsolation: a session sees only its own user's mail.
func TestIsolation(t *testing.T) {
	e := newEnv(t, nil, false)
	_, err := e.store.Append(ctx, mailbricks.UserID("bob"), mailbox.Inbox, strings.NewReader(msg("bob's secret", "secret")), nil)
	require.NoError(t, err)
	c := e.dial(t, "alice", nil)
	sd, err := c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	require.EqualValues(t, 0, sd.NumMessages)
	sr, err := c.Search(&imap.SearchCriteria{Body: []string{"secret"}}, nil).Wait()
	require.NoError(t, err)
	require.Empty(t, sr.AllSeqNums())
}
