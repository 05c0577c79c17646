package lsmmailbox

// Key layout.
//
// Every key starts with the user's partition prefix, so one user's data is
// one contiguous key range and no scan can cross into another user's:
//
//	prefix  = len(user) uvarint | user bytes
//
// The length prefix makes the user part prefix-free: no user's keys can
// start with another user's prefix, whatever the bytes and however long the
// user ID. (Every entry point also rejects an invalid user, see
// [mailbricks.UserID.Validate], so users are 1 to 255 bytes without NUL, CR
// or LF; below 128 bytes the uvarint is the single length byte.)
//
// followed by a table byte and the table's key. Integers are big-endian so
// that keys sort numerically. fid is the folder's ID (u32, never reused for
// the user; it is also the folder's UIDVALIDITY); id is a 16-byte
// mailbricks.MessageID; ^id is its bitwise complement, so that ascending key
// order is newest first.
//
//	prefix 'a'                     → next folder ID: u32
//	prefix 'n' | name              → fid: u32                 (folder by name)
//	prefix 'f' | fid u32           → folder record: JSON of folderRec
//	prefix 'c' | fid u32           → counters: total i64 | unread i64 | size i64,
//	                                 updated by merge operands of the same
//	                                 shape that the Merger sums
//	prefix 'm' | id                → message record (record.go)
//	prefix 'b' | id                → skeleton: the dedup skeleton bytes
//	prefix 'x' | fid u32 | uid u32 → id                        (UID map)
//	prefix 'u' | fid u32 | ^id     → message record, as 'm'    (unread table)
//	prefix 'r' | fid u32 | ^id     → message record, as 'm'    (read table)
//	prefix 'l' | fid u32 | modseq u64 → kind u8 | uid u32 | id (modseq log)
//	prefix 'k' | key               → id                        (idempotency keys)
//	prefix 't' | thread id | id    → empty                     (thread members)
//	prefix 'h' | thread key        → thread id                 (thread lookup)
//	prefix 's' | name              → empty                     (subscriptions)
//
// The read and unread tables are denormalized: their entries carry the
// whole message record, so listing a page reads one key range and nothing
// else; every write of a record rewrites its table entry in the same batch.
//
// Every message in a folder has exactly one 'x' entry, one entry in either
// 'u' (no \Seen) or 'r' (\Seen), and one 'l' entry of kind 'c' at its
// current MODSEQ; a change deletes the old 'l' entry and writes a new one,
// so the log holds one entry per live message plus the expunge tombstones
// (kind 'e', written when a message is expunged or moved out), and
// Changes(since) is one range scan from since+1.

import (
	"encoding/binary"

	"github.com/mailbricks/mailbricks"
)

const (
	tNextFolder = 'a'
	tFolderName = 'n'
	tFolder     = 'f'
	tCounts     = 'c'
	tMessage    = 'm'
	tSkeleton   = 'b'
	tUID        = 'x'
	tUnread     = 'u'
	tRead       = 'r'
	tLog        = 'l'
	tKey        = 'k'
	tThread     = 't'
	tThreadKey  = 'h'
	tSubscribed = 's'
)

const (
	logChange  = 'c'
	logExpunge = 'e'
)

func prefix(user mailbricks.UserID) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(user)+32)
	b = binary.AppendUvarint(b, uint64(len(user)))
	return append(b, user...)
}

func key(user mailbricks.UserID, table byte, parts ...[]byte) []byte {
	b := append(prefix(user), table)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func desc(id mailbricks.MessageID) []byte {
	b := make([]byte, 16)
	for i := range id {
		b[i] = ^id[i]
	}
	return b
}

func undesc(b []byte) mailbricks.MessageID {
	var id mailbricks.MessageID
	for i := range id {
		id[i] = ^b[i]
	}
	return id
}

// upper returns the exclusive upper bound of the keys starting with p.
func upper(p []byte) []byte {
	b := append([]byte(nil), p...)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// counts is the value of a 'c' key and of its merge operands.
type counts struct{ total, unread, size int64 }

func (c counts) encode() []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint64(b[0:], uint64(c.total))
	binary.BigEndian.PutUint64(b[8:], uint64(c.unread))
	binary.BigEndian.PutUint64(b[16:], uint64(c.size))
	return b
}

func decodeCounts(b []byte) (counts, bool) {
	if len(b) != 24 {
		return counts{}, false
	}
	return counts{
		int64(binary.BigEndian.Uint64(b[0:])),
		int64(binary.BigEndian.Uint64(b[8:])),
		int64(binary.BigEndian.Uint64(b[16:])),
	}, true
}
