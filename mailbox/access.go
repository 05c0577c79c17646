package mailbox

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/mailbricks/mailbricks"
)

// What IMAP access needs beyond the storage calls of store.go:
// subscriptions, UID sets, the per-folder state SELECT and STATUS report,
// and the conditional expunge. None of it is protocol: the protocol lives
// in github.com/mailbricks/mailbricks/mailbox/imapsession.

// UIDRange is an inclusive range of UIDs, one element of an IMAP UID set.
// Last 0 means no upper bound (IMAP "*").
type UIDRange struct {
	First, Last uint32
}

// FolderStatus is what IMAP SELECT and STATUS report about a folder beyond
// [Folder]: the keywords in use and the number of messages flagged
// [FlagDeleted].
type FolderStatus struct {
	Folder
	// Keywords are the keywords (flags other than the system flags) that
	// at least one message of the folder carries, sorted: the folder's
	// part of the IMAP FLAGS response.
	Keywords []string
	// Deleted is the number of messages flagged [FlagDeleted] (IMAP
	// STATUS DELETED, RFC 9051 section 6.3.11).
	Deleted int64
}

// Subscribe adds folder name to the user's subscriptions (IMAP SUBSCRIBE).
// The folder need not exist; subscribing twice is no error.
func (s *Store) Subscribe(ctx context.Context, user mailbricks.UserID, name string) error {
	name, err := s.checkFolder(user, name)
	if err != nil {
		return err
	}
	return s.b.Subscribe(ctx, user, name, true)
}

// Unsubscribe removes folder name from the user's subscriptions (IMAP
// UNSUBSCRIBE). Removing a name that is not subscribed is no error.
func (s *Store) Unsubscribe(ctx context.Context, user mailbricks.UserID, name string) error {
	name, err := s.checkFolder(user, name)
	if err != nil {
		return err
	}
	return s.b.Subscribe(ctx, user, name, false)
}

// Subscriptions returns the folder names the user subscribed to, sorted.
// They are names: a subscribed folder may have been deleted since (IMAP
// LSUB reports it \NonExistent).
func (s *Store) Subscriptions(ctx context.Context, user mailbricks.UserID) ([]string, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	return s.b.Subscriptions(ctx, user)
}

// FetchUIDSet returns the messages of a folder whose UID is in any of
// set's ranges, by increasing UID, each once. An empty set returns none.
// It reads each range with [Backend.FetchUIDs]; ranges are read one
// after the other, not in one snapshot.
func (s *Store) FetchUIDSet(ctx context.Context, user mailbricks.UserID, folder string, set []UIDRange) ([]Message, error) {
	rs := normalizeRanges(set)
	var out []Message
	for _, r := range rs {
		msgs, err := s.FetchUIDs(ctx, user, folder, r.First, r.Last)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// normalizeRanges sorts set, orders each range's ends, and merges
// overlapping and adjacent ranges, so each UID is read once.
func normalizeRanges(set []UIDRange) []UIDRange {
	rs := make([]UIDRange, 0, len(set))
	for _, r := range set {
		if r.First == 0 {
			r.First = 1
		}
		if r.Last == 0 {
			r.Last = ^uint32(0)
		}
		if r.First > r.Last {
			r.First, r.Last = r.Last, r.First
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].Last == ^uint32(0) || r.First <= out[n-1].Last+1) {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	for i := range out {
		if out[i].Last == ^uint32(0) {
			out[i].Last = 0
		}
	}
	return out
}

// Status returns a folder with its keywords and \Deleted count. Its cost
// follows the size of the folder: it reads every message's metadata, as
// an IMAP SELECT does anyway to number the messages.
func (s *Store) Status(ctx context.Context, user mailbricks.UserID, folder string) (FolderStatus, error) {
	f, err := s.Folder(ctx, user, folder)
	if err != nil {
		return FolderStatus{}, err
	}
	msgs, err := s.FetchUIDs(ctx, user, f.Name, 1, 0)
	if err != nil {
		return FolderStatus{}, err
	}
	st := FolderStatus{Folder: f}
	st.Keywords, st.Deleted = FolderKeywords(msgs)
	return st, nil
}

// FolderKeywords returns the keywords the messages carry, sorted, and how
// many of them are flagged [FlagDeleted].
func FolderKeywords(msgs []Message) (keywords []string, deleted int64) {
	seen := map[string]bool{}
	for i := range msgs {
		for _, f := range msgs[i].Flags {
			if f == FlagDeleted {
				deleted++
			}
			if len(f) > 0 && f[0] != '\\' && !seen[f] {
				seen[f] = true
				keywords = append(keywords, f)
			}
		}
	}
	slices.Sort(keywords)
	if keywords == nil {
		keywords = []string{}
	}
	return keywords, deleted
}

// ExpungeIfDeleted expunges the messages among ids that are flagged
// [FlagDeleted] at the moment of the expunge, in one transaction, and
// returns them (IMAP EXPUNGE and UID EXPUNGE): a message whose \Deleted
// flag another session removed after the caller read it is kept.
func (s *Store) ExpungeIfDeleted(ctx context.Context, user mailbricks.UserID, ids ...mailbricks.MessageID) ([]Message, error) {
	if err := s.check(user); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	removed, err := s.b.ExpungeFlagged(ctx, user, ids, FlagDeleted)
	if err != nil {
		return nil, fmt.Errorf("mailbox: expunge: %w", err)
	}
	return s.afterExpunge(ctx, user, removed)
}
