package lsmmailbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/mailboxtest"
)

func newBackend(t *testing.T) mailbox.Backend {
	b, err := Open("db", &Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	mailboxtest.Run(t, newBackend)
}

// TestCorpusAll appends all 6,046 messages of the SpamAssassin corpus and
// reads every one back byte-exact.
func TestCorpusAll(t *testing.T) {
	if testing.Short() {
		t.Skip("appends the whole corpus")
	}
	b := newBackend(t)
	mailboxtest.RunCorpus(t, mailboxtest.NewStore(t, b), 1)
}

var ctx = context.Background()

// checkConsistent verifies, from the raw keys, every invariant the key
// layout promises for user: each message in a folder has one UID map
// entry, one entry in exactly the read or unread table (as its flags say),
// one log entry at its MODSEQ; no table entry lacks its message; the
// counters equal what the messages add up to; UIDs and MODSEQs are below
// UIDNEXT and at most HIGHESTMODSEQ.
func checkConsistent(t *testing.T, b *Backend, user mailbricks.UserID) {
	t.Helper()
	fs, err := b.Folders(ctx, user)
	require.NoError(t, err)
	for _, f := range fs {
		fid := f.UIDValidity
		scan := func(tb byte) map[string][]byte {
			p := key(user, tb, u32(fid))
			it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
			require.NoError(t, err)
			out := map[string][]byte{}
			for ok := it.First(); ok; ok = it.Next() {
				out[string(it.Key()[len(p):])] = slices.Clone(it.Value())
			}
			require.NoError(t, it.Close())
			return out
		}
		uids, unread, read, log := scan(tUID), scan(tUnread), scan(tRead), scan(tLog)
		var c counts
		live := 0
		for k, v := range uids {
			uid := binary.BigEndian.Uint32([]byte(k))
			id := mailbricks.MessageID(v)
			rec, err := getMsg(b.db, user, id)
			require.NoError(t, err, "folder %s UID %d: UID map entry without message", f.Name, uid)
			require.Equal(t, fid, rec.FID)
			require.Equal(t, uid, rec.UID)
			require.Less(t, uid, f.UIDNext)
			require.LessOrEqual(t, rec.ModSeq, f.HighestModSeq)
			_, inU := unread[string(desc(id))]
			_, inR := read[string(desc(id))]
			require.True(t, inU != inR, "message %s must be in exactly one of the unread and read tables", id)
			require.Equal(t, rec.Unread(), inU, "message %s: table must follow \\Seen", id)
			e, ok := log[string(u64(rec.ModSeq))]
			require.True(t, ok, "message %s: no log entry at its MODSEQ", id)
			require.Equal(t, logEntry(logChange, uid, id), e)
			c.add(msgCounts(&rec.Message, 1))
			live++
		}
		require.Len(t, unread, int(c.unread), "unread table has entries without messages")
		require.Len(t, read, int(c.total-c.unread), "read table has entries without messages")
		changes := 0
		for _, e := range log {
			if e[0] == logChange {
				changes++
			}
		}
		require.Equal(t, live, changes, "log must hold one change entry per live message")
		require.Equal(t, mailbox.Counts{Total: c.total, Unread: c.unread, Size: c.size}, f.Counts, "folder %s: counters must match the messages", f.Name)
	}
}

func rec(folder string, i int, seen bool) *mailbox.Record {
	r := &mailbox.Record{Skeleton: []byte(fmt.Sprintf("skeleton %d", i))}
	r.ID = mailbricks.NewMessageID()
	r.ThreadID = r.ID
	r.Folder = folder
	r.Size = int64(100 + i)
	r.Subject = fmt.Sprint("m", i)
	r.Flags = []string{}
	if seen {
		r.Flags = []string{mailbox.FlagSeen}
	}
	return r
}

// TestConsistentAfterWorkload checks the raw-key invariants after the
// conformance-style random workload.
func TestConsistentAfterWorkload(t *testing.T) {
	b, err := Open("db", &Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	defer b.Close()
	user := mailbricks.UserID("u")
	for _, f := range []string{mailbox.Inbox, "Archive"} {
		_, err := b.CreateFolder(ctx, user, f, "")
		require.NoError(t, err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var ids []mailbricks.MessageID
	for i := 0; i < 300; i++ {
		switch r.IntN(4) {
		case 0, 1:
			m, _, err := b.Append(ctx, user, rec([]string{mailbox.Inbox, "Archive"}[r.IntN(2)], i, r.IntN(2) == 0))
			require.NoError(t, err)
			ids = append(ids, m.ID)
		case 2:
			_, err := b.SetFlags(ctx, user, []mailbricks.MessageID{ids[r.IntN(len(ids))]}, mailbox.FlagChange{Op: mailbox.FlagReplace, Flags: []string{}})
			require.NoError(t, err)
		case 3:
			_, err := b.Move(ctx, user, []mailbricks.MessageID{ids[r.IntN(len(ids))]}, []string{mailbox.Inbox, "Archive"}[r.IntN(2)])
			require.NoError(t, err)
		}
	}
	checkConsistent(t, b, user)
	v, err := b.db.Get(key(user, tMessage, ids[0][:]))
	require.NoError(t, err)
	m, err := decodeRecord(v)
	require.NoError(t, err)
	require.Equal(t, ids[0], m.ID)
}
