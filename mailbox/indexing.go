package mailbox

// Keeping an index current.
//
// With Options.Index set, every Store method that commits a change also
// applies it to the index before it returns: Append indexes the message
// (its document built from the one parse Append made for the metadata, so
// the two agree on every decoded string), SetFlags, Move and
// RenameFolder replace the Values of the messages they changed with their
// whole new state (never a read-modify-write: the mailbox knows every
// value, so a flag change cannot drop the attachment flag or the size),
// Copy indexes the copies, and Expunge, Delete and DeleteFolder remove what
// they removed.
//
// The mailbox commits first and the index follows. If the index write
// fails (or the process dies in between), the mailbox change stands and
// the method returns an error matching ErrIndex; the index is then behind
// by that change until one of these catches it up: an Append retried with
// the same AppendOptions.Key (which indexes the message if the index lacks
// it), a later change of the same message (an index update that finds the
// document missing indexes it from its stored body), or Store.Reindex /
// index.Index.Repair with the Store as the index.Source.

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/mailparse"
)

// ErrIndex is returned, wrapped with the cause, when a change was committed
// to the mailbox but could not be applied to [Options.Index]: the mailbox
// change stands, and the index lags behind until it is caught up (see
// [Store.Reindex]).
var ErrIndex = errors.New("mailbox: index not updated")

// IndexFlags returns the [index.Flag] bits of flags (as canonicalized by
// [CanonicalFlags]): the system flags, and [index.FlagAttachment] when
// hasAttachments. Keywords are not flags in the index; see [IndexValues].
func IndexFlags(flags []string, hasAttachments bool) index.Flag {
	var f index.Flag
	for _, fl := range flags {
		switch fl {
		case FlagSeen:
			f |= index.FlagSeen
		case FlagAnswered:
			f |= index.FlagAnswered
		case FlagFlagged:
			f |= index.FlagFlagged
		case FlagDeleted:
			f |= index.FlagDeleted
		case FlagDraft:
			f |= index.FlagDraft
		}
	}
	if hasAttachments {
		f |= index.FlagAttachment
	}
	return f
}

// IndexValues returns the [index.Values] of m: its whole state as an index
// filters and sorts on it (internal date, Date header, size, folder, flags,
// keywords, thread, UID and MODSEQ).
func IndexValues(m *Message) index.Values {
	v := index.Values{
		Date:     m.InternalDate,
		SentDate: m.Date,
		Size:     m.Size,
		Folder:   m.Folder,
		Flags:    IndexFlags(m.Flags, m.HasAttachments),
		UID:      m.UID,
		ModSeq:   m.ModSeq,
	}
	if !m.ThreadID.IsZero() {
		v.Thread = m.ThreadID.String()
	}
	for _, f := range m.Flags {
		if f != "" && f[0] != '\\' {
			v.Keywords = append(v.Keywords, f)
		}
	}
	return v
}

// document parses raw and returns m's index document.
func document(m *Message, raw io.Reader) (*index.Document, error) {
	return index.DocumentFromMessage(m.ID, raw, IndexValues(m))
}

// indexNew indexes a message just appended, from the parse Append made.
func (s *Store) indexNew(ctx context.Context, user mailbricks.UserID, m *Message, parsed *mailparse.Message) error {
	if err := s.idx.Index(ctx, user, indexDocument(m.ID, parsed, IndexValues(m))); err != nil {
		return fmt.Errorf("%w: append %s: %w", ErrIndex, m.ID, err)
	}
	return nil
}

// indexStored indexes a message from its stored body: for copies, and for
// messages found missing from the index.
func (s *Store) indexStored(ctx context.Context, user mailbricks.UserID, m *Message) error {
	rc, err := s.Open(ctx, user, m.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	doc, err := document(m, rc)
	if err != nil {
		return err
	}
	return s.idx.Index(ctx, user, doc)
}

// indexExisting makes sure a message that Append found already stored
// (an idempotent retry) is indexed: the earlier attempt may have stored it
// and died before the index write.
func (s *Store) indexExisting(ctx context.Context, user mailbricks.UserID, m *Message) error {
	if s.idx == nil || m.Folder == "" { // expunged since: nothing to index
		return nil
	}
	_, err := s.idx.Get(ctx, user, m.ID)
	if errors.Is(err, index.ErrNotFound) {
		err = s.indexStored(ctx, user, m)
	}
	if err != nil {
		return fmt.Errorf("%w: append %s: %w", ErrIndex, m.ID, err)
	}
	return nil
}

// indexUpdate replaces the Values of msgs with their state, indexing from
// the stored body any that the index lacks.
func (s *Store) indexUpdate(ctx context.Context, user mailbricks.UserID, op string, msgs []Message) error {
	if s.idx == nil {
		return nil
	}
	for i := range msgs {
		m := &msgs[i]
		err := s.idx.Update(ctx, user, m.ID, IndexValues(m))
		if errors.Is(err, index.ErrNotFound) {
			err = s.indexStored(ctx, user, m)
		}
		if err != nil {
			return fmt.Errorf("%w: %s %s: %w", ErrIndex, op, m.ID, err)
		}
	}
	return nil
}

// indexGetUpdate is indexUpdate for messages known by ID.
func (s *Store) indexGetUpdate(ctx context.Context, user mailbricks.UserID, op string, ids []mailbricks.MessageID) error {
	if s.idx == nil || len(ids) == 0 {
		return nil
	}
	msgs := make([]Message, 0, len(ids))
	for _, id := range ids {
		m, err := s.b.Get(ctx, user, id)
		if errors.Is(err, ErrNotFound) { // expunged meanwhile
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %s %s: %w", ErrIndex, op, id, err)
		}
		msgs = append(msgs, m)
	}
	return s.indexUpdate(ctx, user, op, msgs)
}

// indexDelete removes expunged messages from the index.
func (s *Store) indexDelete(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID) error {
	if s.idx == nil || len(ids) == 0 {
		return nil
	}
	if err := s.idx.Delete(ctx, user, ids...); err != nil {
		return fmt.Errorf("%w: expunge: %w", ErrIndex, err)
	}
	return nil
}

// Documents calls fn with the index document of each of user's messages,
// in ID order, parsed from the stored bodies: the Store is an
// [index.Source], so [index.Index.Reindex], Check and Repair can rebuild
// or verify an index from it. It stops at fn's first error and returns it.
func (s *Store) Documents(ctx context.Context, user mailbricks.UserID, fn func(*index.Document) error) error {
	for m, err := range s.Messages(ctx, user) {
		if err != nil {
			return err
		}
		rc, err := s.Open(ctx, user, m.ID)
		if errors.Is(err, ErrNotFound) { // expunged since the scan read it
			continue
		}
		if err != nil {
			return err
		}
		doc, err := document(&m, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("mailbox: documents: %s: %w", m.ID, err)
		}
		if err := fn(doc); err != nil {
			return err
		}
	}
	return nil
}

var _ index.Source = (*Store)(nil)

// ReindexOptions configures [Store.Reindex].
type ReindexOptions struct {
	// Progress, if not nil, is called after each batch of messages
	// indexed, with the number done so far and the number of messages the
	// user had when the rebuild started (messages appended meanwhile can
	// make done exceed total). The default is nil: no reports.
	Progress func(done, total int)
}

// Reindex rebuilds user's index in [Options.Index] from the mailbox: it
// drops every indexed document of the user, then indexes each stored
// message again from its body. Use it after index corruption, a change of
// the index's analysis, or attaching an index to a store that has mail.
// It returns the number of messages indexed. Searches during the rebuild
// see a partial index; changes made meanwhile are applied as usual. It
// returns [ErrInvalidArgument] when the Store has no index.
func (s *Store) Reindex(ctx context.Context, user mailbricks.UserID, opts *ReindexOptions) (int, error) {
	if err := s.check(user); err != nil {
		return 0, err
	}
	if s.idx == nil {
		return 0, fmt.Errorf("%w: reindex: the store has no index (Options.Index)", ErrInvalidArgument)
	}
	var o ReindexOptions
	if opts != nil {
		o = *opts
	}
	total := 0
	if o.Progress != nil {
		fs, err := s.Folders(ctx, user)
		if err != nil {
			return 0, err
		}
		for _, f := range fs {
			total += int(f.Total)
		}
	}
	done := 0
	src := index.SourceFunc(func(ctx context.Context, user mailbricks.UserID, fn func(*index.Document) error) error {
		return s.Documents(ctx, user, func(d *index.Document) error {
			if err := fn(d); err != nil {
				return err
			}
			done++
			if o.Progress != nil && done%100 == 0 {
				o.Progress(done, total)
			}
			return nil
		})
	})
	n, err := s.idx.Reindex(ctx, user, src)
	if err == nil && o.Progress != nil {
		o.Progress(n, total)
	}
	return n, err
}
