package lsmmailbox

import (
	"testing"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
)

// BenchmarkListUnread lists the 50 newest unread messages of a folder of
// 20,000 with 1% unread.
func BenchmarkListUnread(b *testing.B) {
	be, err := Open("db", &Options{FS: vfs.NewMem(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	user := mailbricks.UserID("bench")
	if _, err := be.CreateFolder(ctx, user, mailbox.Inbox, mailbox.RoleInbox); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 20000; i++ {
		r := rec(mailbox.Inbox, i, i%100 != 0)
		r.Snippet = "A short snippet of the message text, as the list view shows it under the subject line."
		r.From = []mailbox.Address{{Name: "Sender", Addr: "sender@example.com"}}
		if _, _, err := be.Append(ctx, user, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msgs, err := be.List(ctx, user, mailbox.Inbox, mailbox.ListQuery{Unread: true, Limit: 50})
		if err != nil || len(msgs) != 50 {
			b.Fatal(err, len(msgs))
		}
	}
}
