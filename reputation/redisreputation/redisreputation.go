// Package redisreputation is the [reputation.Backend] on Redis (go-redis
// v9), so that every sending machine shares one view of the token
// buckets, warm-up caps, rates, pauses and the suppression list.
//
// # Semantics
//
// Each method is one atomic Redis operation: a Lua script run with
// EVALSHA (token buckets, reservations, counters, compare-and-set of
// states, sums, suppression deletes) or a MULTI transaction (suppression
// puts), so concurrent Trackers on many machines never lose an update.
// Durability is Redis's: with AOF and appendfsync always, every call that
// returned survives a crash; with the defaults, the last second or the
// last snapshot interval may be lost. Errors a retry may cure (a dropped
// connection, a timeout, LOADING, TRYAGAIN, CLUSTERDOWN) satisfy
// [mailbricks.IsTemporary].
//
// Times come from the Trackers' clocks, so the sending machines' clocks
// should agree to well under a token's refill time; a bucket never gains
// tokens from a clock that runs behind. Counters and reservations expire
// at the absolute times the Tracker gives (PEXPIREAT, by the Redis
// server's clock); a token bucket expires an hour after it was last used,
// when it would be full anyway.
//
// # Losing Redis's data
//
// While Redis is down or restarting, every call fails with an error that
// satisfies [mailbricks.IsTemporary] (Decide included: a caller should
// defer the message, not send it unchecked); go-redis reconnects by itself
// and the same Backend and Tracker work again as soon as Redis answers,
// reloading the Lua scripts it no longer has. Nothing needs reopening.
//
// If Redis comes back without its data (no persistence, --save "" and
// no AOF, or a replica promoted before it had caught up), every key reads
// as absent and the Tracker treats the state as new:
//
//   - the suppression list is empty: addresses suppressed by bounces,
//     complaints or by hand are mailed again, so keep the list's source
//     of truth elsewhere or persist Redis (appendonly yes) and re-import
//     it (Tracker.Suppress) after such a loss;
//   - pauses are forgotten: a paused IP sends again at once;
//   - an IP marked Warmup starts its warm-up again at the first stage,
//     with today's count at zero, and one that had graduated warms up
//     again too (slower, never faster, than before the loss); an IP not
//     marked Warmup is active;
//   - rates count from zero: a pause needs MinVolume new outcomes;
//   - token buckets are full: each IP and provider may send one burst
//     at once.
//
// TestRedisRestart checks each of these on a private redis-server.
//
// # Keys
//
// Every key starts with Options.Prefix:
//
//	t:{key}            hash  tk (tokens), ts (last refill, Unix µs)
//	r:{key}            string  reserved count
//	c:{key}:<bucket>   hash  d f s h c: delivered, deferred, soft
//	                   bounces, hard bounces, complaints
//	ci:{key}           sorted set of the buckets of c:{key}, scored by
//	                   bucket number
//	s:{key}            hash  v (value), ver (version)
//	sup                hash  address → reputation.Suppression encoding
//	supi               sorted set of addresses, all scored 0 (for
//	                   ordered listing with ZRANGEBYLEX)
//
// The braces are Redis Cluster hash tags: a counter's buckets and index
// share one slot, as the sum script, which reads the buckets the index
// names, requires.
package redisreputation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/redis/go-redis/v9"
)

// Options configures [Open]. A nil *Options and every zero field mean the
// default.
type Options struct {
	// Prefix starts every key, so that several Trackers (or tests) can
	// share one Redis. The default is "mailbricks:reputation:".
	Prefix string
}

// Backend is the Redis-backed [reputation.Backend]. It is safe for
// concurrent use.
type Backend struct {
	c      redis.UniversalClient
	p      string
	closed atomic.Bool
}

var _ reputation.Backend = (*Backend)(nil)

// Open returns a Backend on client after checking that Redis answers. The
// caller keeps ownership of client: Close does not close it.
func Open(ctx context.Context, client redis.UniversalClient, o *Options) (*Backend, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Prefix == "" {
		opts.Prefix = "mailbricks:reputation:"
	}
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redisreputation: open: %w", classify(err))
	}
	return &Backend{c: client, p: opts.Prefix}, nil
}

// Close marks the Backend closed; it does not close the client. It is
// idempotent.
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

func (b *Backend) check() error {
	if b.closed.Load() {
		return reputation.ErrClosed
	}
	return nil
}

// checkKey is check, and rejects an empty key, which
// [reputation.Backend] rules out, with [reputation.ErrInvalid].
func (b *Backend) checkKey(key string) error {
	if err := b.check(); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("redisreputation: %w: empty key", reputation.ErrInvalid)
	}
	return nil
}

// checkAddr is check, and rejects with [reputation.ErrInvalidAddress] an
// address that is not what [reputation.NormalizeAddress] makes of it: the
// Tracker passes only normalized addresses, and one stored in another
// spelling would never be found.
func (b *Backend) checkAddr(addr string) error {
	if err := b.check(); err != nil {
		return err
	}
	n, err := reputation.NormalizeAddress(addr)
	if err != nil {
		return fmt.Errorf("redisreputation: %w", err)
	}
	if n != addr {
		return fmt.Errorf("redisreputation: %w: %q is not normalized", reputation.ErrInvalidAddress, addr)
	}
	return nil
}

func wrap(op, key string, err error) error {
	return fmt.Errorf("redisreputation: %s %q: %w", op, key, classify(err))
}

// takeScript refills and takes from a token bucket; timestamps are in
// microseconds, which doubles hold exactly until the year 2255.
var takeScript = redis.NewScript(`
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tk'))
local last = tonumber(redis.call('HGET', KEYS[1], 'ts'))
local n, rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if tokens == nil or last == nil then tokens = burst; last = now end
if now > last then
  tokens = math.min(burst, tokens + (now - last) / 1e6 * rate)
  last = now
end
if tokens > burst then tokens = burst end
local ok = 0
if tokens >= n then tokens = tokens - n; ok = 1 end
redis.call('HSET', KEYS[1], 'tk', string.format('%.17g', tokens), 'ts', string.format('%.0f', last))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {ok, string.format('%.17g', n - tokens)}
`)

// Take implements [reputation.Backend.Take].
func (b *Backend) Take(ctx context.Context, key string, n, rate, burst float64, now time.Time) (bool, time.Duration, error) {
	if err := b.checkKey(key); err != nil {
		return false, 0, err
	}
	ttl := int64(3_600_000)
	if rate > 0 {
		ttl += int64(math.Min(burst/rate*1000, 1e12))
	}
	res, err := takeScript.Run(ctx, b.c, []string{b.p + "t:{" + key + "}"},
		n, rate, burst, now.UnixMicro(), ttl).Slice()
	if err != nil {
		return false, 0, wrap("take", key, err)
	}
	if len(res) != 2 {
		return false, 0, wrap("take", key, fmt.Errorf("unexpected reply %v", res))
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return true, 0, nil
	}
	s, _ := res[1].(string)
	need, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return false, 0, wrap("take", key, err)
	}
	if rate <= 0 {
		return false, time.Duration(math.MaxInt64), nil
	}
	return false, time.Duration(math.Ceil(need / rate * 1e9)), nil
}

var reserveScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local n, max = tonumber(ARGV[1]), tonumber(ARGV[2])
if n > 0 and cur + n > max then return 0 end
cur = cur + n
if cur < 0 then cur = 0 end
redis.call('SET', KEYS[1], cur)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
`)

// Reserve implements [reputation.Backend.Reserve].
func (b *Backend) Reserve(ctx context.Context, key string, n, max int64, expire time.Time) (bool, error) {
	if err := b.checkKey(key); err != nil {
		return false, err
	}
	ok, err := reserveScript.Run(ctx, b.c, []string{b.p + "r:{" + key + "}"}, n, max, expire.UnixMilli()).Int()
	if err != nil {
		return false, wrap("reserve", key, err)
	}
	return ok == 1, nil
}

var addScript = redis.NewScript(`
local fields = {'d', 'f', 's', 'h', 'c'}
for i = 1, 5 do
  local n = tonumber(ARGV[2 + i])
  if n ~= 0 then redis.call('HINCRBY', KEYS[1], fields[i], n) end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[2])
return 1
`)

func (b *Backend) countKeys(key string) (prefix, index string) {
	return b.p + "c:{" + key + "}:", b.p + "ci:{" + key + "}"
}

// AddCounts implements [reputation.Backend.AddCounts].
func (b *Backend) AddCounts(ctx context.Context, key string, bucket int64, c reputation.Counts, expire time.Time) error {
	if err := b.checkKey(key); err != nil {
		return err
	}
	pre, idx := b.countKeys(key)
	bs := strconv.FormatInt(bucket, 10)
	err := addScript.Run(ctx, b.c, []string{pre + bs, idx}, bs, expire.UnixMilli(),
		c.Delivered, c.Deferred, c.SoftBounce, c.HardBounce, c.Complaint).Err()
	if err != nil {
		return wrap("add counts", key, err)
	}
	return nil
}

var sumScript = redis.NewScript(`
local bs = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])
local sum = {0, 0, 0, 0, 0}
for _, b in ipairs(bs) do
  local v = redis.call('HMGET', ARGV[3] .. b, 'd', 'f', 's', 'h', 'c')
  local any = false
  for i = 1, 5 do
    if v[i] then sum[i] = sum[i] + tonumber(v[i]); any = true end
  end
  if not any and redis.call('EXISTS', ARGV[3] .. b) == 0 then redis.call('ZREM', KEYS[1], b) end
end
return sum
`)

// SumCounts implements [reputation.Backend.SumCounts]; it also drops
// index entries of expired buckets.
func (b *Backend) SumCounts(ctx context.Context, key string, from, to int64) (reputation.Counts, error) {
	if err := b.checkKey(key); err != nil {
		return reputation.Counts{}, err
	}
	if to < from {
		return reputation.Counts{}, nil
	}
	pre, idx := b.countKeys(key)
	v, err := sumScript.Run(ctx, b.c, []string{idx}, from, to, pre).Int64Slice()
	if err != nil {
		return reputation.Counts{}, wrap("sum counts", key, err)
	}
	if len(v) != 5 {
		return reputation.Counts{}, wrap("sum counts", key, fmt.Errorf("unexpected reply %v", v))
	}
	return reputation.Counts{Delivered: v[0], Deferred: v[1], SoftBounce: v[2], HardBounce: v[3], Complaint: v[4]}, nil
}

// GetState implements [reputation.Backend.GetState].
func (b *Backend) GetState(ctx context.Context, key string) ([]byte, int64, error) {
	if err := b.checkKey(key); err != nil {
		return nil, 0, err
	}
	v, err := b.c.HMGet(ctx, b.p+"s:{"+key+"}", "v", "ver").Result()
	if err != nil {
		return nil, 0, wrap("get state", key, err)
	}
	val, ok1 := v[0].(string)
	verS, ok2 := v[1].(string)
	if !ok1 || !ok2 {
		return nil, 0, nil
	}
	ver, err := strconv.ParseInt(verS, 10, 64)
	if err != nil {
		return nil, 0, wrap("get state", key, fmt.Errorf("%w: version %q", reputation.ErrMalformed, verS))
	}
	return append([]byte{}, val...), ver, nil
}

var setStateScript = redis.NewScript(`
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if ver ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[3], 'ver', ver + 1)
end
return 1
`)

// SetState implements [reputation.Backend.SetState].
func (b *Backend) SetState(ctx context.Context, key string, value []byte, version int64) (bool, error) {
	if err := b.checkKey(key); err != nil {
		return false, err
	}
	del := "0"
	if value == nil {
		del = "1"
	}
	ok, err := setStateScript.Run(ctx, b.c, []string{b.p + "s:{" + key + "}"}, version, del, value).Int()
	if err != nil {
		return false, wrap("set state", key, err)
	}
	return ok == 1, nil
}

// PutSuppression implements [reputation.Backend.PutSuppression].
func (b *Backend) PutSuppression(ctx context.Context, s reputation.Suppression) error {
	if err := b.checkAddr(s.Address); err != nil {
		return err
	}
	v, _ := s.MarshalBinary()
	_, err := b.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, b.p+"sup", s.Address, v)
		p.ZAdd(ctx, b.p+"supi", redis.Z{Member: s.Address})
		return nil
	})
	if err != nil {
		return wrap("put suppression", s.Address, err)
	}
	return nil
}

// GetSuppression implements [reputation.Backend.GetSuppression].
func (b *Backend) GetSuppression(ctx context.Context, addr string) (reputation.Suppression, error) {
	if err := b.checkAddr(addr); err != nil {
		return reputation.Suppression{}, err
	}
	v, err := b.c.HGet(ctx, b.p+"sup", addr).Bytes()
	if errors.Is(err, redis.Nil) {
		return reputation.Suppression{}, reputation.ErrNotFound
	}
	if err != nil {
		return reputation.Suppression{}, wrap("get suppression", addr, err)
	}
	var s reputation.Suppression
	if err := s.UnmarshalBinary(v); err != nil {
		return reputation.Suppression{}, wrap("get suppression", addr, err)
	}
	return s, nil
}

var delSupScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// DeleteSuppression implements [reputation.Backend.DeleteSuppression].
func (b *Backend) DeleteSuppression(ctx context.Context, addr string) error {
	if err := b.checkAddr(addr); err != nil {
		return err
	}
	n, err := delSupScript.Run(ctx, b.c, []string{b.p + "sup", b.p + "supi"}, addr).Int()
	if err != nil {
		return wrap("delete suppression", addr, err)
	}
	if n == 0 {
		return reputation.ErrNotFound
	}
	return nil
}

// ListSuppressions implements [reputation.Backend.ListSuppressions].
func (b *Backend) ListSuppressions(ctx context.Context, after string, limit int) ([]reputation.Suppression, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	min := "-"
	if after != "" {
		min = "(" + after
	}
	addrs, err := b.c.ZRangeByLex(ctx, b.p+"supi", &redis.ZRangeBy{Min: min, Max: "+", Count: int64(limit)}).Result()
	if err != nil {
		return nil, wrap("list suppressions", after, err)
	}
	if len(addrs) == 0 {
		return nil, nil
	}
	vals, err := b.c.HMGet(ctx, b.p+"sup", addrs...).Result()
	if err != nil {
		return nil, wrap("list suppressions", after, err)
	}
	out := make([]reputation.Suppression, 0, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // deleted between the two reads
		}
		var sp reputation.Suppression
		if err := sp.UnmarshalBinary([]byte(s)); err != nil {
			return nil, wrap("list suppressions", addrs[i], err)
		}
		out = append(out, sp)
	}
	return out, nil
}
