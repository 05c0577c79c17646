package reputation_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/mailbricks/mailbricks/reputation/reputationtest"
)

func ExampleTracker() {
	ctx := context.Background()
	backend, err := lsmreputation.Open("reputation", &lsmreputation.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	clock := reputationtest.NewClock(time.Date(2030, 1, 7, 9, 0, 0, 0, time.UTC))
	t, err := reputation.New(backend, &reputation.Options{
		Now:      clock.Now,
		Resolver: reputationtest.NewResolver(map[string][]string{"corp.example": {"aspmx.l.google.com"}}),
		Pools: []reputation.Pool{
			{Class: reputation.ClassTransactional, IPs: []reputation.IP{{Addr: "192.0.2.10"}}},
			{Class: reputation.ClassBulk, IPs: []reputation.IP{{Addr: "192.0.2.20", Warmup: true}}},
		},
		Warmup: []int64{2, 4},
	})
	if err != nil {
		panic(err)
	}
	defer t.Close()

	// A new bulk IP may send its first-day cap to Google, which also
	// receives corp.example's mail.
	for _, to := range []string{"a@gmail.com", "b@corp.example", "c@gmail.com"} {
		d, err := t.Decide(ctx, reputation.Send{To: to, Class: reputation.ClassBulk})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s → %s allow=%v ip=%q reason=%q\n", to, d.Provider, d.Allow, d.IP, d.Reason)
	}

	// A hard bounce suppresses the address in all its spellings.
	err = t.Record(ctx, reputation.Outcome{IP: "192.0.2.10", Recipient: "Jane.Doe+shop@gmail.com",
		Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1"})
	if err != nil {
		panic(err)
	}
	d, _ := t.Decide(ctx, reputation.Send{To: "janedoe@gmail.com", Class: reputation.ClassTransactional})
	fmt.Println(d.Allow, d.Reason)
	// Output:
	// a@gmail.com → google allow=true ip="192.0.2.20" reason=""
	// b@corp.example → google allow=true ip="192.0.2.20" reason=""
	// c@gmail.com → google allow=false ip="" reason="warm-up cap reached"
	// false suppressed: hard-bounce
}

func ExampleParseDSN() {
	f, err := os.Open("testdata/dsn-hard-bounce.eml")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	outcomes, err := reputation.ParseDSN(f)
	if err != nil {
		panic(err)
	}
	for _, o := range outcomes {
		c := reputation.Classify(o.Code, o.Enhanced, o.Text)
		fmt.Println(o.Recipient, o.Kind, o.Code, o.Enhanced, c.Category, c.SuppressRecipient)
	}
	// Output:
	// jane.doe@gmail.com hard-bounce 550 5.1.1 bad-mailbox true
}

func ExampleClassify() {
	for _, r := range []struct {
		code     int
		enhanced string
		text     string
	}{
		{550, "5.1.1", "user unknown"},
		{452, "4.2.2", "mailbox full"},
		{421, "4.7.0", "Too many connections, try again later"},
		{550, "5.7.1", "client host blocked using zen.spamhaus.org"},
	} {
		c := reputation.Classify(r.code, r.enhanced, r.text)
		fmt.Println(r.code, r.enhanced, c.Kind, c.Category, c.SuppressRecipient)
	}
	// Output:
	// 550 5.1.1 hard-bounce bad-mailbox true
	// 452 4.2.2 soft-bounce mailbox-full false
	// 421 4.7.0 deferred rate-limited false
	// 550 5.7.1 hard-bounce blocked false
}

func ExampleNormalizeAddress() {
	for _, a := range []string{"Jane.Doe+news@googlemail.com", "Jane.Doe+news@Example.com"} {
		n, _ := reputation.NormalizeAddress(a)
		fmt.Println(n)
	}
	// Output:
	// janedoe@gmail.com
	// jane.doe@example.com
}
