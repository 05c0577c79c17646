package imapsession_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// modelMsg is a message of the fuzz model of INBOX.
type modelMsg struct {
	uid   uint32
	flags []string
}

var fuzzFlags = []string{mailbox.FlagSeen, mailbox.FlagDeleted, mailbox.FlagFlagged, "$a", "b"}

// FuzzSession runs random sequences of commands, from this client and
// from "another process" (the Store directly), against a model of INBOX:
// after every step the client's view — numbers, UIDs, flags, the message
// count, SEARCH results — must equal the model's, and nothing panics.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 0, 2, 1, 3, 0, 4, 0, 0, 2})
	f.Add([]byte{1, 3, 1, 4, 2, 0, 2, 1, 8, 1, 4, 1, 3, 0, 7, 1, 5, 0})
	f.Add([]byte{0, 1, 0, 2, 6, 0, 6, 1, 2, 9, 3, 0, 8, 3, 4, 2, 7, 3, 5, 1, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 80 {
			ops = ops[:80]
		}
		e := newEnv(t, nil, false)
		user := mailbricks.UserID("alice")
		c := e.dial(t, "alice", nil)
		_, err := e.store.CreateFolder(ctx, user, "Other")
		require.NoError(t, err)
		_, err = c.Select("INBOX", nil).Wait()
		require.NoError(t, err)
		var model []modelMsg
		n := 0
		idOf := func(uid uint32) mailbricks.MessageID {
			msgs, err := e.store.FetchUIDs(ctx, user, mailbox.Inbox, uid, uid)
			require.NoError(t, err)
			require.Len(t, msgs, 1, "UID %d in the store", uid)
			return msgs[0].ID
		}
		pick := func(b byte) int { return int(b) % len(model) }
		for k := 0; k+1 < len(ops); k += 2 {
			op, arg := ops[k]%9, ops[k+1]
			n++
			flag := fuzzFlags[int(arg)%len(fuzzFlags)]
			switch op {
			case 0: // APPEND from this client
				raw := msg(fmt.Sprintf("fz %d", n), "word"+fmt.Sprint(n))
				cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.Flag(flag)}})
				cmd.Write([]byte(raw))
				cmd.Close()
				ad, err := cmd.Wait()
				require.NoError(t, err)
				model = append(model, modelMsg{uid: uint32(ad.UID), flags: []string{flag}})
			case 1: // delivery by another process
				m, err := e.store.Append(ctx, user, mailbox.Inbox, strings.NewReader(msg(fmt.Sprintf("ext %d", n), "x")), nil)
				require.NoError(t, err)
				model = append(model, modelMsg{uid: m.UID, flags: []string{}})
			case 2: // STORE +FLAGS or -FLAGS from this client
				if len(model) == 0 {
					continue
				}
				i := pick(arg)
				add := arg%2 == 0
				sop := imap.StoreFlagsAdd
				if !add {
					sop = imap.StoreFlagsDel
				}
				_, err := c.Store(imap.SeqSetNum(uint32(i+1)), &imap.StoreFlags{Op: sop, Silent: true, Flags: []imap.Flag{imap.Flag(flag)}}, nil).Collect()
				require.NoError(t, err)
				model[i].flags = applyFlag(model[i].flags, flag, add)
			case 3: // EXPUNGE from this client
				_, err := c.Expunge().Collect()
				require.NoError(t, err)
				model = slices.DeleteFunc(model, func(m modelMsg) bool { return slices.Contains(m.flags, mailbox.FlagDeleted) })
			case 4: // expunge by another process
				if len(model) == 0 {
					continue
				}
				i := pick(arg)
				_, err := e.store.Expunge(ctx, user, idOf(model[i].uid))
				require.NoError(t, err)
				model = slices.Delete(model, i, i+1)
			case 5: // MOVE away from this client
				if len(model) == 0 {
					continue
				}
				i := pick(arg)
				_, err := c.Move(imap.SeqSetNum(uint32(i+1)), "Other").Wait()
				require.NoError(t, err)
				model = slices.Delete(model, i, i+1)
			case 6: // COPY within INBOX
				if len(model) == 0 {
					continue
				}
				i := pick(arg)
				cd, err := c.Copy(imap.SeqSetNum(uint32(i+1)), "INBOX").Wait()
				require.NoError(t, err)
				uids, _ := cd.DestUIDs.Nums()
				require.Len(t, uids, 1)
				model = append(model, modelMsg{uid: uint32(uids[0]), flags: slices.Clone(model[i].flags)})
			case 7: // flag change by another process
				if len(model) == 0 {
					continue
				}
				i := pick(arg)
				_, err := e.store.SetFlags(ctx, user, []mailbricks.MessageID{idOf(model[i].uid)}, mailbox.FlagAdd, []string{flag}, nil)
				require.NoError(t, err)
				model[i].flags = applyFlag(model[i].flags, flag, true)
			case 8: // SEARCH, checked against the model
				sr, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.Flag(flag)}}, nil).Wait()
				require.NoError(t, err)
				require.NoError(t, c.Noop().Wait())
				var want []imap.UID
				for _, m := range model {
					if slices.Contains(m.flags, flag) {
						want = append(want, imap.UID(m.uid))
					}
				}
				got := sr.AllUIDs()
				// SEARCH may answer before the client learned of new
				// external mail: compare over the UIDs the client knew.
				require.Subset(t, want, got, "SEARCH %s after step %d", flag, k/2)
			}
			require.NoError(t, c.Noop().Wait())
			require.EqualValues(t, len(model), c.Mailbox().NumMessages, "message count after step %d (op %d)", k/2, op)
			if len(model) == 0 {
				continue
			}
			msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
			require.NoError(t, err)
			require.Len(t, msgs, len(model))
			for i, m := range msgs {
				require.EqualValues(t, i+1, m.SeqNum)
				require.EqualValues(t, model[i].uid, m.UID, "UID of number %d after step %d (op %d)", i+1, k/2, op)
				got := flagStrings(m.Flags)
				want := slices.Clone(model[i].flags)
				slices.Sort(want)
				if len(got) == 0 {
					got = nil
				}
				if len(want) == 0 {
					want = nil
				}
				require.Equal(t, want, got, "flags of UID %d after step %d", m.UID, k/2)
			}
		}
	})
}

func applyFlag(flags []string, flag string, add bool) []string {
	flags = slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return f == flag })
	if add {
		flags = append(flags, flag)
	}
	return flags
}

// FuzzCommandLine sends arbitrary command lines to a selected session:
// each is answered (tagged OK, NO or BAD) or ends that connection, and
// the server keeps serving other sessions.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[1.MIME]<0.10>)",
		"UID FETCH 1:4294967295 (BINARY[1] BINARY.SIZE[1])",
		"STORE 1 +FLAGS.SILENT (\\Deleted $x)",
		"SEARCH OR (FROM a) (NOT TO b) UID 1:* LARGER 1 MODSEQ 5 HEADER X-Y z",
		"UID SEARCH RETURN (MIN MAX COUNT SAVE) TEXT hello",
		"UID FETCH $ FLAGS",
		"COPY 1:2 Archive",
		"MOVE * INBOX",
		"UID EXPUNGE 1:*",
		"LIST (SPECIAL-USE SUBSCRIBED) \"\" (* %) RETURN (CHILDREN STATUS (MESSAGES DELETED SIZE))",
		"STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE APPENDLIMIT)",
		"RENAME INBOX Saved",
		"CREATE a/b/c/",
		"SEARCH CHARSET UTF-8 BODY \"\xc3\xa9t\xc3\xa9\"",
		"FETCH 0:0 UID",
	} {
		f.Add(s)
	}
	e := newEnv(f, nil, false)
	seed := e.dial(f, "alice", nil)
	for i := range 3 {
		appendClient(f, seed, "INBOX", msg(fmt.Sprintf("fuzz seed %d", i), "hello body"))
	}
	require.NoError(f, seed.Create("Archive", nil).Wait())
	seed.Close()
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n{") {
			return // one line, no literals: a literal would wait for bytes
		}
		r := e.raw(t)
		r.login(t, "alice")
		r.expect(t, "s SELECT INBOX", "s OK")
		r.c.Write([]byte("f " + line + "\r\nz NOOP\r\n"))
		// An unterminated quoted string makes go-imap wait for its end,
		// past the NOOP: give up on this connection after a while (the
		// fuzzer counts an input running 10 s as hung).
		r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			l, err := r.r.ReadString('\n')
			if err != nil {
				break // the server closed this connection: allowed
			}
			if strings.HasPrefix(l, "z ") {
				require.True(t, strings.HasPrefix(l, "z OK"), "NOOP after %q: %q", line, l)
				break
			}
		}
		r.c.Close()
		other := e.raw(t)
		other.login(t, "alice")
		other.expect(t, "n NOOP", "n OK")
		other.c.Close()
	})
}
