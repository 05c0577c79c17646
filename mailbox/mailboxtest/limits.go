package mailboxtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// testFlagLimit checks mailbox.MaxFlags: no message ever carries more
// flags, and a SetFlags that would give one more fails whole.
func testFlagLimit(t *testing.T, s *mailbox.Store) {
	kw := func(from, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("kw%04d", from+i)
		}
		return out
	}
	_, err := s.Append(ctx, alice, mailbox.Inbox, strings.NewReader("Subject: x\r\n\r\nx\r\n"), &mailbox.AppendOptions{Flags: kw(0, mailbox.MaxFlags+1)})
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument, "Append with more than MaxFlags flags must fail with ErrInvalidArgument")

	full, err := s.Append(ctx, alice, mailbox.Inbox, strings.NewReader("Subject: full\r\n\r\nx\r\n"), &mailbox.AppendOptions{Flags: kw(0, mailbox.MaxFlags-1)})
	require.NoError(t, err, "Append with MaxFlags-1 flags must succeed")
	few, err := s.Append(ctx, alice, mailbox.Inbox, strings.NewReader("Subject: few\r\n\r\nx\r\n"), nil)
	require.NoError(t, err)
	_, err = s.SetFlags(ctx, alice, []mailbricks.MessageID{full.ID}, mailbox.FlagAdd, kw(5000, 1), nil)
	require.NoError(t, err, "reaching exactly MaxFlags flags must succeed")

	_, err = s.SetFlags(ctx, alice, []mailbricks.MessageID{few.ID, full.ID}, mailbox.FlagAdd, kw(6000, 2), nil)
	require.ErrorIs(t, err, mailbox.ErrInvalidArgument, "a SetFlags that would leave a message with more than MaxFlags flags must fail with ErrInvalidArgument")
	got, err := s.Get(ctx, alice, few.ID)
	require.NoError(t, err)
	require.Empty(t, got.Flags, "a failed SetFlags must change no message, not even those that stayed under the limit")
	got, err = s.Get(ctx, alice, full.ID)
	require.NoError(t, err)
	require.Len(t, got.Flags, mailbox.MaxFlags)
}
