package mailbricks_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/mailbricks/mailbricks"
)

func ExampleParseUserID() {
	u, err := mailbricks.ParseUserID("alice@example.com")
	fmt.Println(u, err)

	_, err = mailbricks.ParseUserID("alice\r\nRCPT TO:<mallory@example.com>")
	fmt.Println(errors.Is(err, mailbricks.ErrInvalidUser))
	fmt.Println(err)
	// Output:
	// alice@example.com <nil>
	// true
	// mailbricks: invalid user ID: CR byte at offset 5
}

func ExampleParseMessageID() {
	id, err := mailbricks.ParseMessageID("0190A6B2-3C4D-7E5F-8A6B-7C8D9E0F1A2B")
	if err != nil {
		panic(err)
	}
	fmt.Println(id)
	fmt.Println(id.Time().UTC().Format(time.RFC3339Nano))

	_, err = mailbricks.ParseMessageID("0190a6b2-3c4d-4e5f-8a6b-7c8d9e0f1a2b")
	fmt.Println(errors.Is(err, mailbricks.ErrInvalidMessageID))
	// Output:
	// 0190a6b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b
	// 2024-07-12T11:26:57.101Z
	// true
}

func ExampleNewMessageID() {
	older := mailbricks.NewMessageID()
	newer := mailbricks.NewMessageID()
	// IDs sort bytewise in creation order, so storage keys built from them
	// keep a mailbox in time order.
	fmt.Println(older.Compare(newer))
	// Output:
	// -1
}

func ExampleNewMessageIDAt() {
	received := time.Date(2009, 11, 10, 23, 0, 0, 0, time.UTC)
	id := mailbricks.NewMessageIDAt(received)
	fmt.Println(id.Time().UTC())
	fmt.Println(id.Compare(mailbricks.NewMessageID()) < 0)
	// Output:
	// 2009-11-10 23:00:00 +0000 UTC
	// true
}
