package lsmreputation_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/mailbricks/mailbricks/reputation/reputationtest"
)

// BenchmarkDecideRecord measures the sending path: Decide for a random
// recipient, then Record of its delivery.
func BenchmarkDecideRecord(b *testing.B) {
	be, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	var ips []reputation.IP
	for i := range 8 {
		ips = append(ips, reputation.IP{Addr: fmt.Sprintf("192.0.2.%d", 10+i)})
	}
	var provs []reputation.Provider
	for _, p := range reputation.DefaultProviders() {
		p.Rate, p.Burst = 1e9, 1e9
		provs = append(provs, p)
	}
	t, err := reputation.New(be, &reputation.Options{
		Resolver:  reputationtest.NewResolver(map[string][]string{"corp.example": {"aspmx.l.google.com"}}),
		Pools:     []reputation.Pool{{IPs: ips}},
		Providers: provs, DefaultRate: 1e9, DefaultBurst: 1e9,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	domains := []string{"gmail.com", "outlook.com", "yahoo.com", "corp.example", "small.example"}
	rcpts := make([]string, 100_000)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@%s", i, domains[i%len(domains)])
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			to := rcpts[rng.IntN(len(rcpts))]
			d, err := t.Decide(ctx, reputation.Send{To: to})
			if err != nil || !d.Allow {
				b.Fatal(err, d)
			}
			if err := t.Record(ctx, reputation.Outcome{IP: d.IP, Recipient: to, Kind: reputation.KindDelivered}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
