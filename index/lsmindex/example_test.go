package lsmindex_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

func ExampleOpen() {
	ctx := context.Background()
	b, err := lsmindex.Open("index", &lsmindex.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	x := index.New(b, nil)
	defer x.Close()

	for i, subject := range []string{"Lunch on Friday", "Friday release notes", "Re: lunch"} {
		date := time.Date(2024, 3, 1+i, 12, 0, 0, 0, time.UTC)
		doc := &index.Document{ID: mailbricks.NewMessageIDAt(date), Subject: subject, Values: index.Values{Date: date}}
		if err := x.Index(ctx, "carol", doc); err != nil {
			panic(err)
		}
	}
	res, err := x.SearchString(ctx, "carol", "subject:lunch", nil)
	if err != nil {
		panic(err)
	}
	for _, h := range res.Hits {
		fmt.Println(h.Values.Date.Format("Jan 2"), h.Subject)
	}
	// Output:
	// Mar 3 Re: lunch
	// Mar 1 Lunch on Friday
}

// A machine serving many users bounds the doc values held in memory: the
// least recently used users are unloaded past the budget and loaded again
// from their chunks when they next search.
func ExampleOptions_memoryBudget() {
	ctx := context.Background()
	b, err := lsmindex.Open("index", &lsmindex.Options{FS: vfs.NewMem(), MemoryBudget: 8 << 10})
	if err != nil {
		panic(err)
	}
	x := index.New(b, nil)
	defer x.Close()

	date := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100 {
		user := mailbricks.UserID(fmt.Sprintf("user%d", i))
		doc := &index.Document{ID: mailbricks.NewMessageIDAt(date), Subject: "welcome", Values: index.Values{Date: date}}
		if err := x.Index(ctx, user, doc); err != nil {
			panic(err)
		}
	}
	res, err := x.SearchString(ctx, "user0", "welcome", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Total, b.CacheBytes() <= 8<<10, b.CachedUsers() < 100)
	// Output:
	// 1 true true
}
