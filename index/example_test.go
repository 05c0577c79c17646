package index_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func Example() {
	ctx := context.Background()
	b, err := lsmindex.Open("index", &lsmindex.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	x := index.New(b, nil)
	defer x.Close()

	raw := "From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Quarterly report\r\n" +
		"Content-Type: text/plain\r\n\r\nHi Alice, the quarterly report is ready.\r\n"
	received := time.Date(2024, 1, 10, 9, 0, 0, 0, time.UTC)
	doc, err := index.DocumentFromMessage(mailbricks.NewMessageIDAt(received), strings.NewReader(raw),
		index.Values{Date: received, Folder: "INBOX"})
	if err != nil {
		panic(err)
	}
	if err := x.Index(ctx, "alice@example.com", doc); err != nil {
		panic(err)
	}

	res, err := x.SearchString(ctx, "alice@example.com", `from:bob "quarterly report" is:unread`, nil)
	if err != nil {
		panic(err)
	}
	for _, h := range res.Hits {
		fmt.Printf("%d hit: %s\n", res.Total, h.Subject)
		for _, r := range h.Highlights {
			fmt.Printf("  matched %q\n", h.Snippet[r[0]:r[1]])
		}
	}
	// Output:
	// 1 hit: Quarterly report
	//   matched "quarterly"
	//   matched "report"
}

func ExampleParse() {
	q, err := index.Parse(`from:alice (budget OR invoice) -"draft version" larger:1M`)
	fmt.Println(q, err)

	_, err = index.Parse(`subject:"unterminated`)
	var pe *index.ParseError
	if errors.As(err, &pe) {
		fmt.Printf("error at byte %d: %s\n", pe.Pos, pe.Msg)
	}
	// Output:
	// (from:"alice" ("budget" OR "invoice") -"draft version" [range 2 1048577 9223372036854775807]) <nil>
	// error at byte 8: unterminated quoted phrase
}

func ExampleQuery_imap() {
	// IMAP: SEARCH UNSEEN FROM "bob" SINCE 1-Jan-2024 NOT HEADER List-Id ""
	q := index.And(
		index.Not(index.HasFlag(index.FlagSeen)),
		index.Text(index.FieldFrom, "bob"),
		index.Since(index.RangeDate, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)),
		index.Not(index.HeaderText("List-Id", "")),
	)
	fmt.Println(q)
	// Output:
	// (-[flags 1] from:"bob" [range 0 1704067200 9223372036854775807] -[header "List-Id"]:"")
}
