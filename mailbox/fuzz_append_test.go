package mailbox_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
	"github.com/mailbricks/mailbricks/mailbox/mailboxtest"
)

// FuzzAppend appends arbitrary bytes, with the search index attached, and
// checks that each is stored, reads back byte-exact, and leaves the
// folder's counts exact.
func FuzzAppend(f *testing.F) {
	for _, m := range mailboxtest.Malformed() {
		if len(m) < 4096 {
			f.Add(m)
		}
	}
	f.Add(mailboxtest.AttachmentMsg("x", 20<<10, 1))
	b, err := lsmmailbox.Open("db", &lsmmailbox.Options{FS: vfs.NewMem(), NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	fb, err := filededup.Open("blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		f.Fatal(err)
	}
	blobs := dedup.New(fb, nil)
	defer blobs.Close()
	ib, err := lsmindex.Open("index", &lsmindex.Options{FS: vfs.NewMem(), NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	x := index.New(ib, nil)
	defer x.Close()
	s := mailbox.New(b, blobs, &mailbox.Options{MaxMessageSize: 1 << 20, Index: x})
	defer s.Close()
	ctx := context.Background()
	var total int64
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := s.Append(ctx, "fuzz", mailbox.Inbox, bytes.NewReader(raw), nil)
		if err != nil {
			t.Fatalf("Append must store any input up to the size limit: %v", err)
		}
		total++
		rc, err := s.Open(ctx, "fuzz", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("Open must return the appended bytes exactly (err %v)", err)
		}
		c, err := s.Counts(ctx, "fuzz", mailbox.Inbox)
		if err != nil || c.Total != total {
			t.Fatalf("counts %+v after %d appends (err %v)", c, total, err)
		}
	})
}
