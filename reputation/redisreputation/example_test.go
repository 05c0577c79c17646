package redisreputation_test

import (
	"context"
	"fmt"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/redisreputation"
	"github.com/redis/go-redis/v9"
)

// Every sending machine opens the same Redis; their Trackers then share
// token buckets, warm-up caps, pauses and the suppression list.
func ExampleOpen() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	b, err := redisreputation.Open(ctx, client, &redisreputation.Options{Prefix: "myservice:reputation:"})
	if err != nil {
		fmt.Println(err)
		return
	}
	t, err := reputation.New(b, &reputation.Options{Pools: []reputation.Pool{
		{IPs: []reputation.IP{{Addr: "192.0.2.10"}, {Addr: "192.0.2.11", Weight: 2}}},
	}})
	if err != nil {
		panic(err)
	}
	defer t.Close()
	d, err := t.Decide(ctx, reputation.Send{To: "jane@example.com"})
	fmt.Println(d.Allow, d.IP, err)
}
