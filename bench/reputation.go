package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/mailbricks/mailbricks/reputation/redisreputation"
	"github.com/redis/go-redis/v9"
)

// The reputation suite measures the sending path's cost: every recipient
// of every outgoing message asks Tracker.Decide for an IP and then
// reports the outcome with Tracker.Record.
//
// Workload decide: -goroutines goroutines (8) each loop for -duration on
// Decide for a random recipient (of -recipients addresses: 40% gmail.com,
// 20% outlook.com, 10% yahoo.com, 30% over 1,000 other domains whose MX
// records point to Google, Microsoft or their own hosts, answered by an
// in-memory resolver) from a pool of 8 IPs (2 of them warming up), then
// Record of an outcome from the IP Decide chose: delivered, or with
// probability -bad-pct percent a deferral, soft bounce, hard bounce
// (5.1.1, which suppresses the address) or complaint. Rate limits are set
// high, so nearly every Decide allows: the path measured is the full
// one. The suppression list starts with 10,000 entries. One op is one
// Decide plus one Record.
//
// Implementations: lsmreputation (embedded, in a temporary directory),
// redisreputation (when MAILBRICKS_REDIS_URL is set; its own key prefix,
// deleted afterwards), and limit: the floor any tracker meets, a plain
// mutex-guarded map lookup (the suppression check) plus one token-bucket
// update per call. The time is split into -rounds rounds on the same
// state, and the round with the most ops is reported (the machine this
// runs on is shared, and load comes in bursts). Extras: p50_us and p99_us
// latency of one op in that round (one op in 8 is timed), allowed_pct.
type reputationSuite struct {
	duration   time.Duration
	rounds     int
	goroutines int
	recipients int
	badPct     float64
}

func init() { register("reputation", newReputationSuite) }

func newReputationSuite() suite { return &reputationSuite{} }

func (s *reputationSuite) Impls() []string {
	impls := []string{"lsmreputation"}
	if os.Getenv("MAILBRICKS_REDIS_URL") != "" {
		impls = append(impls, "redisreputation")
	}
	return append(impls, "limit")
}

func (s *reputationSuite) Flags(fs *flag.FlagSet) {
	fs.DurationVar(&s.duration, "duration", 0, "measuring time per implementation (0: 10s, or 2s with -quick)")
	fs.IntVar(&s.rounds, "rounds", 0, "the duration is split into this many rounds and the best round is reported, to filter out bursts of load from other processes (0: 5, or 2 with -quick)")
	fs.IntVar(&s.goroutines, "goroutines", 8, "concurrent callers")
	fs.IntVar(&s.recipients, "recipients", 0, "distinct recipient addresses (0: 200000, or 50000 with -quick; -keys overrides)")
	fs.Float64Var(&s.badPct, "bad-pct", 1, "percent of outcomes that are deferrals, bounces or complaints")
}

// repWorkload is one implementation of the measured call.
type repWorkload interface {
	// op decides for recipient i and records its outcome; bad selects a
	// bad outcome (0: delivered).
	op(ctx context.Context, i int, bad int) (allowed bool, err error)
	close() error
}

func (s *reputationSuite) Run(impl string, c *config, r *reporter) error {
	dur := s.duration
	if dur <= 0 {
		dur = 10 * time.Second
		if c.Quick {
			dur = 2 * time.Second
		}
	}
	n := s.recipients
	if c.Keys > 0 {
		n = c.Keys
	}
	if n <= 0 {
		n = 200_000
		if c.Quick {
			n = 50_000
		}
	}
	if s.goroutines <= 0 {
		return errors.New("-goroutines must be positive")
	}
	rcpts, mx := repRecipients(n)
	ctx := context.Background()
	var w repWorkload
	var err error
	switch impl {
	case "lsmreputation":
		dir, err2 := os.MkdirTemp(c.Dir, "mailbricks-bench-reputation-")
		if err2 != nil {
			return err2
		}
		defer os.RemoveAll(dir)
		b, err2 := lsmreputation.Open(dir, nil)
		if err2 != nil {
			return err2
		}
		w, err = newTrackerWorkload(b, rcpts, mx)
	case "redisreputation":
		w, err = newRedisWorkload(ctx, rcpts, mx)
	case "limit":
		w = newLimitWorkload(rcpts)
	default:
		return fmt.Errorf("unknown implementation %q", impl)
	}
	if err != nil {
		return err
	}
	defer w.close()

	rounds := s.rounds
	if rounds <= 0 {
		rounds = 5
		if c.Quick {
			rounds = 2
		}
	}
	var best repRound
	for round := range rounds {
		res, err := s.round(ctx, w, len(rcpts), dur/time.Duration(rounds))
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "reputation %s round %d: %.0f ops/s from %d goroutines, %.1f%% allowed, p50 %.1fµs p99 %.1fµs\n",
			impl, round+1, res.opsPerSec, s.goroutines, res.allowedPct, res.p50, res.p99)
		if res.opsPerSec > best.opsPerSec {
			best = res
		}
	}
	r.result("decide", best.opsPerSec, kv{"p50_us", best.p50}, kv{"p99_us", best.p99}, kv{"allowed_pct", best.allowedPct})
	return nil
}

// repRound is one round's measurement.
type repRound struct {
	opsPerSec, p50, p99, allowedPct float64
}

func (s *reputationSuite) round(ctx context.Context, w repWorkload, nRcpts int, dur time.Duration) (repRound, error) {
	var stop atomic.Bool
	var ops, allowed atomic.Int64
	lats := make([][]time.Duration, s.goroutines)
	errs := make([]error, s.goroutines)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range s.goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(start.UnixNano())))
			var local, ok int64
			for !stop.Load() {
				i := rng.IntN(nRcpts)
				bad := 0
				if rng.Float64()*100 < s.badPct {
					bad = 1 + rng.IntN(100)
				}
				t0 := time.Now()
				a, err := w.op(ctx, i, bad)
				if err != nil {
					errs[g] = err
					return
				}
				if local%8 == 0 {
					lats[g] = append(lats[g], time.Since(t0))
				}
				local++
				if a {
					ok++
				}
			}
			ops.Add(local)
			allowed.Add(ok)
		})
	}
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return repRound{}, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Nanoseconds()) / 1e3
	}
	total := ops.Load()
	return repRound{
		opsPerSec:  float64(total) / elapsed.Seconds(),
		p50:        pct(0.5),
		p99:        pct(0.99),
		allowedPct: 100 * float64(allowed.Load()) / float64(max(total, 1)),
	}, nil
}

func (s *reputationSuite) Ratios(rs *results) []ratio {
	ours, ok1 := rs.get("decide", "lsmreputation")
	lim, ok2 := rs.get("decide", "limit")
	if !ok1 || !ok2 || lim.OpsPerSec == 0 {
		return nil
	}
	return []ratio{{"decide", "ours/limit", ours.OpsPerSec / lim.OpsPerSec}}
}

// repRecipients returns n recipient addresses and the MX records of
// their domains.
func repRecipients(n int) ([]string, map[string][]string) {
	rng := rand.New(rand.NewPCG(1, 2))
	mx := map[string][]string{}
	var others []string
	for i := range 1000 {
		d := fmt.Sprintf("d%03d.example", i)
		switch i % 3 {
		case 0:
			mx[d] = []string{"aspmx.l.google.com", "alt1.aspmx.l.google.com"}
		case 1:
			mx[d] = []string{strings.ReplaceAll(d, ".", "-") + ".mail.protection.outlook.com"}
		default:
			mx[d] = []string{"mx1." + d, "mx2." + d}
		}
		others = append(others, d)
	}
	rcpts := make([]string, n)
	for i := range rcpts {
		var d string
		switch p := rng.IntN(10); {
		case p < 4:
			d = "gmail.com"
		case p < 6:
			d = "outlook.com"
		case p < 7:
			d = "yahoo.com"
		default:
			d = others[rng.IntN(len(others))]
		}
		rcpts[i] = fmt.Sprintf("user%d@%s", i, d)
	}
	return rcpts, mx
}

// memResolver answers MX lookups from a map.
type memResolver map[string][]string

func (m memResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	hs, ok := m[strings.TrimSuffix(name, ".")]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	out := make([]*net.MX, len(hs))
	for i, h := range hs {
		out[i] = &net.MX{Host: h + ".", Pref: uint16(10 * (i + 1))}
	}
	return out, nil
}

type trackerWorkload struct {
	t     *reputation.Tracker
	rcpts []string
}

func newTrackerWorkload(b reputation.Backend, rcpts []string, mx map[string][]string) (*trackerWorkload, error) {
	var ips []reputation.IP
	for i := range 8 {
		ips = append(ips, reputation.IP{Addr: fmt.Sprintf("192.0.2.%d", 10+i), Warmup: i >= 6})
	}
	var provs []reputation.Provider
	for _, p := range reputation.DefaultProviders() {
		p.Rate, p.Burst = 1e7, 1e6
		provs = append(provs, p)
	}
	t, err := reputation.New(b, &reputation.Options{
		Resolver:     memResolver(mx),
		Pools:        []reputation.Pool{{Class: reputation.ClassBulk, IPs: ips}},
		Providers:    provs,
		DefaultRate:  1e7,
		DefaultBurst: 1e6,
		Warmup:       []int64{1e9},
	})
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	ctx := context.Background()
	for i := range 10_000 {
		err := t.Suppress(ctx, reputation.Suppression{Address: fmt.Sprintf("gone%d@gmail.com", i), Reason: reputation.ReasonHardBounce})
		if err != nil {
			return nil, errors.Join(err, t.Close())
		}
	}
	return &trackerWorkload{t: t, rcpts: rcpts}, nil
}

func (w *trackerWorkload) op(ctx context.Context, i, bad int) (bool, error) {
	to := w.rcpts[i]
	d, err := w.t.Decide(ctx, reputation.Send{From: "news@sender.example", To: to, Class: reputation.ClassBulk, Size: 20_000})
	if err != nil || !d.Allow {
		return false, err
	}
	o := reputation.Outcome{IP: d.IP, Recipient: to, Kind: reputation.KindDelivered}
	switch {
	case bad == 0:
	case bad <= 50:
		o.Kind, o.Code, o.Enhanced = reputation.KindDeferred, 421, "4.7.0"
	case bad <= 75:
		o.Kind, o.Code, o.Enhanced = reputation.KindSoftBounce, 452, "4.2.2"
	case bad <= 95:
		o.Kind, o.Code, o.Enhanced = reputation.KindHardBounce, 550, "5.1.1"
	default:
		o.Kind = reputation.KindComplaint
	}
	return true, w.t.Record(ctx, o)
}

func (w *trackerWorkload) close() error { return w.t.Close() }

type redisWorkload struct {
	*trackerWorkload
	c      *redis.Client
	prefix string
}

func newRedisWorkload(ctx context.Context, rcpts []string, mx map[string][]string) (*redisWorkload, error) {
	o, err := redis.ParseURL(os.Getenv("MAILBRICKS_REDIS_URL"))
	if err != nil {
		return nil, err
	}
	o.PoolSize = 32
	c := redis.NewClient(o)
	prefix := fmt.Sprintf("mailbricks-bench:reputation:%d:", time.Now().UnixNano())
	b, err := redisreputation.Open(ctx, c, &redisreputation.Options{Prefix: prefix})
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	tw, err := newTrackerWorkload(b, rcpts, mx)
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return &redisWorkload{tw, c, prefix}, nil
}

func (w *redisWorkload) close() error {
	err := w.trackerWorkload.close()
	ctx := context.Background()
	it := w.c.Scan(ctx, 0, w.prefix+"*", 1000).Iterator()
	var keys []string
	for it.Next(ctx) {
		keys = append(keys, it.Val())
		if len(keys) == 500 {
			err = errors.Join(err, w.c.Del(ctx, keys...).Err())
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		err = errors.Join(err, w.c.Del(ctx, keys...).Err())
	}
	return errors.Join(err, it.Err(), w.c.Close())
}

// limitWorkload is the floor: one mutex, one map lookup, one token-bucket
// update.
type limitWorkload struct {
	mu         sync.Mutex
	suppressed map[string]struct{}
	buckets    map[string]*limitBucket
	rcpts      []string
	keys       []string
}

type limitBucket struct {
	tokens float64
	last   time.Time
}

func newLimitWorkload(rcpts []string) *limitWorkload {
	w := &limitWorkload{suppressed: map[string]struct{}{}, buckets: map[string]*limitBucket{}, rcpts: rcpts}
	for i := range 10_000 {
		w.suppressed[fmt.Sprintf("gone%d@gmail.com", i)] = struct{}{}
	}
	for i := range 64 {
		k := fmt.Sprintf("192.0.2.%d/p%d", 10+i%8, i)
		w.keys = append(w.keys, k)
		w.buckets[k] = &limitBucket{tokens: 1e6, last: time.Now()}
	}
	return w
}

func (w *limitWorkload) op(_ context.Context, i, _ int) (bool, error) {
	to := w.rcpts[i]
	key := w.keys[i%len(w.keys)]
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.suppressed[to]; ok {
		return false, nil
	}
	b := w.buckets[key]
	b.tokens = min(1e6, b.tokens+now.Sub(b.last).Seconds()*1e7)
	b.last = now
	if b.tokens < 1 {
		return false, nil
	}
	b.tokens--
	return true, nil
}

func (w *limitWorkload) close() error { return nil }
