package lsmreputation_test

import (
	"context"
	"fmt"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

func ExampleOpen() {
	ctx := context.Background()
	// A directory on the OS file system in production; in memory here.
	b, err := lsmreputation.Open("reputation", &lsmreputation.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	t, err := reputation.New(b, nil)
	if err != nil {
		panic(err)
	}
	defer t.Close()
	err = t.Suppress(ctx, reputation.Suppression{Address: "Unsubscribed+list@Example.com", Reason: reputation.ReasonUnsubscribe})
	if err != nil {
		panic(err)
	}
	s, err := t.Suppressed(ctx, "unsubscribed@example.com")
	fmt.Println(s.Address, s.Reason, err)
	// Output:
	// unsubscribed@example.com unsubscribe <nil>
}
