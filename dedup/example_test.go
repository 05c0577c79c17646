package dedup_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func Example() {
	ctx := context.Background()
	// An in-memory directory keeps the example hermetic; pass a real
	// directory and nil options in production.
	b, err := filededup.Open("/blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	store := dedup.New(b, nil)
	defer store.Close()

	ref, err := store.Put(ctx, strings.NewReader("quarterly report"))
	if err != nil {
		log.Fatal(err)
	}
	again, _ := store.Put(ctx, strings.NewReader("quarterly report"))
	fmt.Println(ref == again, ref.Size)

	if err := store.Link(ctx, ref, "alice/0191f2/2"); err != nil {
		log.Fatal(err)
	}
	rc, _ := store.Open(ctx, ref)
	data, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Println(string(data))
	// Output:
	// true 16
	// quarterly report
}

func ExampleSplit() {
	ctx := context.Background()
	b, err := filededup.Open("/blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	store := dedup.New(b, nil)
	defer store.Close()

	attachment := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n", 1000)
	msg := "From: a@example.com\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		attachment + "--b--\r\n"

	// The same message delivered to two users stores the attachment once.
	sk1, err := dedup.Split(ctx, store, "alice/0191f2", strings.NewReader(msg), nil)
	if err != nil {
		log.Fatal(err)
	}
	sk2, _ := dedup.Split(ctx, store, "bob/0191f3", strings.NewReader(msg), nil)
	fmt.Println(len(sk1.Refs), sk1.Refs[0] == sk2.Refs[0], len(sk1.Data) < len(msg)/10)

	rc, _ := dedup.Join(ctx, store, sk1.Data)
	back, _ := io.ReadAll(rc)
	rc.Close()
	fmt.Println(string(back) == msg)
	// Output:
	// 1 true true
	// true
}

func ExampleStore_GC() {
	ctx := context.Background()
	clock := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	b, err := filededup.Open("/blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	store := dedup.New(b, &dedup.Options{Grace: time.Hour, Now: func() time.Time { return clock }})
	defer store.Close()

	ref, _ := store.Put(ctx, strings.NewReader("attachment"))
	_ = store.Link(ctx, ref, "alice/1/2")
	_ = store.Unlink(ctx, ref, "alice/1/2")

	st, _ := store.GC(ctx, nil) // the Put's temporary link still protects it
	fmt.Println(st.Deleted)
	clock = clock.Add(2 * time.Hour)
	st, _ = store.GC(ctx, nil)
	fmt.Println(st.Deleted, st.DeletedBytes)
	// Output:
	// 0
	// 1 10
}
