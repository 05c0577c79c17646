package redisreputation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/redisreputation"
	"github.com/mailbricks/mailbricks/reputation/reputationtest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// newClient returns a client on MAILBRICKS_REDIS_URL, or skips.
func newClient(t *testing.T) *redis.Client {
	u := os.Getenv("MAILBRICKS_REDIS_URL")
	if u == "" {
		t.Skip("MAILBRICKS_REDIS_URL is not set")
	}
	o, err := redis.ParseURL(u)
	require.NoError(t, err)
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newPrefix returns a random key prefix and deletes its keys when the
// test ends.
func newPrefix(t *testing.T, c *redis.Client) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	p := "mailbricks-test:reputation:" + hex.EncodeToString(r[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		it := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		for it.Next(ctx) {
			_ = c.Del(ctx, it.Val()).Err()
		}
	})
	return p
}

func TestConformance(t *testing.T) {
	c := newClient(t)
	reputationtest.Run(t, func(t *testing.T) reputation.Backend {
		b, err := redisreputation.Open(context.Background(), c, &redisreputation.Options{Prefix: newPrefix(t, c)})
		require.NoError(t, err)
		return b
	})
}
