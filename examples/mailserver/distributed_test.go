package main

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup/s3dedup"
)

const e2eBucket = "mailbricks-e2e"

// distributedFlags returns the flags that put every block on the servers
// named by MAILBRICKS_{PG,NATS,REDIS,S3}_URL under a fresh -prefix, whose
// schemas, streams, keys and objects are removed when the test ends. It
// skips the test, naming the variable, when one is unset.
func distributedFlags(t *testing.T) []string {
	urls := map[string]string{}
	for _, v := range []string{"MAILBRICKS_PG_URL", "MAILBRICKS_NATS_URL", "MAILBRICKS_REDIS_URL", "MAILBRICKS_S3_URL"} {
		if urls[v] = os.Getenv(v); urls[v] == "" {
			t.Skipf("%s not set", v)
		}
	}
	prefix := "e2e" + strings.ToLower(rand.Text()[:12])
	t.Cleanup(func() { dropPrefix(t, urls, prefix) })
	return append([]string{
		"-pg-url", urls["MAILBRICKS_PG_URL"], "-nats-url", urls["MAILBRICKS_NATS_URL"],
		"-redis-url", urls["MAILBRICKS_REDIS_URL"], "-s3-url", urls["MAILBRICKS_S3_URL"],
		"-s3-bucket", e2eBucket, "-prefix", prefix,
	}, unlimited...)
}

// dropPrefix removes what a run under prefix left on the shared servers.
func dropPrefix(t *testing.T, urls map[string]string, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if pool, err := pgxpool.New(ctx, urls["MAILBRICKS_PG_URL"]); err == nil {
		for _, s := range []string{"mailbox", "index", "queue", "server"} {
			if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{prefix + "_" + s}.Sanitize()+" CASCADE"); err != nil {
				t.Logf("cleanup: drop schema: %v", err)
			}
		}
		pool.Close()
	}
	if nc, err := nats.Connect(urls["MAILBRICKS_NATS_URL"]); err == nil {
		if js, err := jetstream.New(nc); err == nil {
			up := strings.ToUpper(prefix)
			names := js.StreamNames(ctx)
			var drop []string
			for n := range names.Name() {
				if strings.HasPrefix(n, up+"_") || strings.HasPrefix(n, "KV_"+up+"_") {
					drop = append(drop, n)
				}
			}
			for _, n := range drop {
				if err := js.DeleteStream(ctx, n); err != nil {
					t.Logf("cleanup: delete stream %s: %v", n, err)
				}
			}
		}
		nc.Close()
	}
	if opt, err := redis.ParseURL(urls["MAILBRICKS_REDIS_URL"]); err == nil {
		rdb := redis.NewClient(opt)
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	}
	if mc, err := s3dedup.NewClient(urls["MAILBRICKS_S3_URL"]); err == nil {
		for obj := range mc.ListObjects(ctx, e2eBucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
			if obj.Err == nil {
				mc.RemoveObject(ctx, e2eBucket, obj.Key, minio.RemoveObjectOptions{})
			}
		}
	}
}

// TestDistributed runs two instances on the shared PostgreSQL, NATS, Redis
// and S3: mail entering through one is pushed to a client of the other and
// found by its search; isolation holds across them; then one instance is
// SIGKILLed in a loop while mail streams into it, and the other finishes
// the work.
func TestDistributed(t *testing.T) {
	flags := distributedFlags(t)
	dir := t.TempDir()
	a := newServer(t, filepath.Join(dir, "a"), flags...)
	b := newServer(t, filepath.Join(dir, "b"), flags...)
	for _, u := range [][2]string{{"alice@example.test", "alice-password"}, {"bob@example.test", "bob-password"},
		{"kill@example.test", "kill-password"}, {"bulk@example.test", "bulk-password"}} {
		a.user(u[0], u[1]) // the accounts are in PostgreSQL: b sees them too
	}
	a.start()
	b.start()

	alice := a.client("alice@example.test", "alice-password")
	testMailFlow(t, b, a, alice)
	// A change made through one instance is seen through the other.
	aliceB := b.client("alice@example.test", "alice-password")
	assert.Equal(t, alice.folder(t, "INBOX"), aliceB.folder(t, "INBOX"))
	var lr listResp
	aliceB.call(t, "GET", "/api/messages?limit=1", nil, 200, &lr)
	require.Len(t, lr.Messages, 1)
	aliceB.call(t, "POST", "/api/messages/"+lr.Messages[0].ID+"/unread", nil, 200, nil)
	assert.Equal(t, int64(1), alice.folder(t, "INBOX").Unread)

	testIsolation(t, a, b)

	a.stop()
	rounds := 3
	if os.Getenv("MAILBRICKS_LONG") == "1" {
		rounds = 15
	}
	r := killLoop(t, a, nil, rounds)
	r.check(t, b) // b's workers take the jobs a acknowledged before each kill
	a.start()
	r.check(t, a)
	a.stop()
	b.stop()
}
