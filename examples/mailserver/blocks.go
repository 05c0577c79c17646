package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/dedup/s3dedup"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/embedded"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/index/pgindex"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
	"github.com/mailbricks/mailbricks/mailbox/pgmailbox"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/lsmqueue"
	"github.com/mailbricks/mailbricks/queue/natsqueue"
	"github.com/mailbricks/mailbricks/queue/pgqueue"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/mailbricks/mailbricks/reputation/redisreputation"
)

// blocks are the mailbricks blocks the server runs on, each on its embedded
// backend in the data directory or on the server backend its flag selects.
type blocks struct {
	// Blocks holds the five blocks, on whichever backends the flags chose;
	// its Close closes them in dependency order (mailbox first, blobs last).
	embedded.Blocks
	// State is the outbound worker's delivery state: the reputation
	// backend, whose records it shares.
	State delivery.StateStore
	Users userStore

	// Where says where each block lives, for the banner.
	Where [][2]string

	pool   *pgxpool.Pool
	nc     *nats.Conn
	rdb    *redis.Client
	closed bool
}

// openBlocks opens every block. Without server URLs it is what
// embedded.Open does, plus the accounts file; each URL moves its blocks:
// -pg-url the mailbox, the index, the queue and the accounts, -nats-url the
// queue, -redis-url reputation, -s3-url the blobs.
func openBlocks(ctx context.Context, c *config, logger *slog.Logger) (b *blocks, err error) {
	// Every error return below sets b to nil, so the deferred cleanup closes
	// what was opened through its own reference.
	opened := &blocks{}
	b = opened
	defer func() {
		if err != nil {
			err = errors.Join(err, opened.Close())
		}
	}()
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return nil, err
	}
	dir := func(name string) string { return filepath.Join(c.Data, name) }
	where := func(block, desc string) { b.Where = append(b.Where, [2]string{block, desc}) }

	if c.PGURL != "" {
		if b.pool, err = newPool(ctx, c.PGURL); err != nil {
			return nil, err
		}
	}

	// Blobs first: the mailbox keeps bodies in it.
	if c.S3URL != "" {
		client, err := s3dedup.NewClient(c.S3URL)
		if err != nil {
			return nil, fmt.Errorf("-s3-url: %w", err)
		}
		if err := ensureBucket(ctx, client, c.S3Bucket); err != nil {
			return nil, fmt.Errorf("-s3-url: bucket %s: %w", c.S3Bucket, err)
		}
		if err := os.MkdirAll(dir("tmp"), 0o700); err != nil {
			return nil, err
		}
		be, err := s3dedup.Open(ctx, client, c.S3Bucket, c.Prefix+"/blobs/", &s3dedup.Options{TempDir: dir("tmp")})
		if err != nil {
			return nil, fmt.Errorf("-s3-url: %w", err)
		}
		b.Blobs = dedup.New(be, &dedup.Options{Grace: c.BlobGrace})
		where("blobs", "S3 bucket "+c.S3Bucket+", prefix "+c.Prefix+"/blobs/")
	} else {
		if b.Blobs, err = filededup.OpenStore(dir("blobs"), &filededup.Options{Store: &dedup.Options{Grace: c.BlobGrace}}); err != nil {
			return nil, err
		}
		where("blobs", dir("blobs"))
	}

	if b.pool != nil {
		be, err := pgindex.Open(ctx, b.pool, &pgindex.Options{Schema: c.Prefix + "_index"})
		if err != nil {
			return nil, err
		}
		b.Index = index.New(be, nil)
		mb, err := pgmailbox.Open(ctx, b.pool, &pgmailbox.Options{Schema: c.Prefix + "_mailbox"})
		if err != nil {
			return nil, err
		}
		b.Mailbox = mailbox.New(mb, b.Blobs, &mailbox.Options{Index: b.Index, Logger: logger})
		where("mailbox", "PostgreSQL schema "+c.Prefix+"_mailbox")
		where("index", "PostgreSQL schema "+c.Prefix+"_index")
		if b.Users, err = openPGUsers(ctx, b.pool, c.Prefix+"_server"); err != nil {
			return nil, err
		}
		where("accounts", "PostgreSQL schema "+c.Prefix+"_server")
	} else {
		if b.Index, err = lsmindex.OpenIndex(dir("index"), &lsmindex.Options{Logger: logger, NoSync: c.bulk}); err != nil {
			return nil, err
		}
		if b.Mailbox, err = lsmmailbox.OpenStore(dir("mailbox"), b.Blobs, &lsmmailbox.Options{NoSync: c.bulk, Store: &mailbox.Options{Index: b.Index, Logger: logger}}); err != nil {
			return nil, err
		}
		where("mailbox", dir("mailbox"))
		where("index", dir("index"))
		if b.Users, err = openFileUsers(c.Data); err != nil {
			return nil, err
		}
		where("accounts", filepath.Join(c.Data, "users.json"))
	}

	switch {
	case c.NATSURL != "":
		if b.nc, err = nats.Connect(c.NATSURL, nats.Name("mailbricks-mailserver"), nats.MaxReconnects(-1)); err != nil {
			return nil, fmt.Errorf("-nats-url: %w", err)
		}
		prefix := strings.ToUpper(c.Prefix) + "_QUEUE"
		be, err := natsqueue.Open(ctx, b.nc, &natsqueue.Options{Prefix: prefix, LeaseTTL: leaseTTL})
		if err != nil {
			return nil, err
		}
		b.Queue = queue.New(be, nil)
		where("queue", "NATS JetStream streams "+prefix+"_*")
	case b.pool != nil:
		be, err := pgqueue.Open(ctx, b.pool, &pgqueue.Options{Schema: c.Prefix + "_queue"})
		if err != nil {
			return nil, err
		}
		b.Queue = queue.New(be, nil)
		where("queue", "PostgreSQL schema "+c.Prefix+"_queue")
	default:
		if b.Queue, err = lsmqueue.OpenQueue(dir("queue"), nil); err != nil {
			return nil, err
		}
		where("queue", dir("queue"))
	}

	if c.RedisURL != "" {
		opt, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		b.rdb = redis.NewClient(opt)
		be, err := redisreputation.Open(ctx, b.rdb, &redisreputation.Options{Prefix: c.Prefix + ":reputation:"})
		if err != nil {
			return nil, fmt.Errorf("-redis-url: %w", err)
		}
		if b.Reputation, err = reputation.New(be, c.reputationOptions()); err != nil {
			return nil, err
		}
		b.State = be
		where("reputation", "Redis, keys "+c.Prefix+":reputation:*")
	} else {
		// lsmreputation.OpenTracker, keeping the backend for State.
		be, err := lsmreputation.Open(dir("reputation"), &lsmreputation.Options{Logger: logger})
		if err != nil {
			return nil, err
		}
		if b.Reputation, err = reputation.New(be, c.reputationOptions()); err != nil {
			be.Close()
			return nil, err
		}
		b.State = be
		where("reputation", dir("reputation"))
	}
	return b, nil
}

// newPool connects to PostgreSQL.
func newPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("-pg-url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// Each Watch listener and the queue's wake-ups hold a
		// connection; the pgx default (4 on 2 cores) is too few.
		pc.MaxConns = 32
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("-pg-url: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("-pg-url: %w", err)
	}
	return pool, nil
}

func ensureBucket(ctx context.Context, client *minio.Client, bucket string) error {
	ok, err := client.BucketExists(ctx, bucket)
	if err != nil || ok {
		return err
	}
	err = client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
	if err != nil {
		// Another instance may have made it meanwhile.
		if ok, err2 := client.BucketExists(ctx, bucket); err2 == nil && ok {
			return nil
		}
	}
	return err
}

// Close closes the blocks in dependency order: the mailbox (which writes to
// the index and the blobs) first, the blobs last, then the connections.
func (b *blocks) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	errs := []error{b.Blocks.Close()}
	if b.Users != nil {
		errs = append(errs, b.Users.Close())
	}
	if b.rdb != nil {
		errs = append(errs, b.rdb.Close())
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.pool != nil {
		b.pool.Close()
	}
	return errors.Join(errs...)
}
