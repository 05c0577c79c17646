package filededup_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func ExampleOpen() {
	// filededup.Open("/var/lib/mail/blobs", nil) in production.
	b, err := filededup.Open("/blobs", &filededup.Options{FS: vfs.NewMem()})
	if err != nil {
		log.Fatal(err)
	}
	store := dedup.New(b, nil)
	defer store.Close()
	ref, err := store.Put(context.Background(), strings.NewReader("hello"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ref)
	// Output:
	// sha256-2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824-5
}
