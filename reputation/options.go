package reputation

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// IP is one sending IP address of a pool.
type IP struct {
	// Addr is the address, such as "192.0.2.10"; it names the IP in
	// Decisions, Outcomes and keys, so it must be stable.
	Addr string
	// Weight is the IP's share of its pool's recipients relative to the
	// other IPs; 0 means 1.
	Weight int
	// Warmup marks a new IP that must warm up: it starts at the first
	// stage of the warm-up schedule at every provider. An IP without
	// Warmup starts active.
	Warmup bool
}

// Pool is the set of IPs one mail class sends from.
type Pool struct {
	// Class is the mail class; the pool with the empty class serves
	// classes that have no pool of their own.
	Class Class
	// IPs are the pool's addresses; an address may be in several pools
	// and then shares its state between them.
	IPs []IP
}

// DefaultWarmup returns the default warm-up schedule: the number of
// messages a new IP may send to one provider on each day of its warm-up,
// 30 stages from 50 to 300,000, after the ramps the large providers and
// ESPs publish. An IP advances one stage per healthy day and graduates to
// active after the last one.
func DefaultWarmup() []int64 {
	return []int64{
		50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000,
		4_000, 5_000, 7_000, 9_000, 12_000, 15_000, 20_000, 25_000, 30_000, 40_000,
		50_000, 60_000, 75_000, 90_000, 110_000, 130_000, 160_000, 200_000, 250_000, 300_000,
	}
}

// Options configures a [Tracker]. A nil *Options and every zero field mean
// the default. New copies the Options; later changes have no effect.
type Options struct {
	// Now is the clock. The default is time.Now.
	Now func() time.Time
	// Resolver looks up the MX records that map recipient domains to
	// providers. The default is net.DefaultResolver.
	Resolver Resolver
	// Pools are the IP pools by mail class. The default is none: Decide
	// then returns ErrNoPool, while Record and the suppression list work.
	Pools []Pool
	// Providers is the provider table. The default is [DefaultProviders].
	Providers []Provider
	// DefaultRate is the messages per second per IP to a destination that
	// no provider claims (each such domain is its own destination), and to
	// providers without a Rate. The default is 2.
	DefaultRate float64
	// DefaultBurst is the token bucket size that goes with DefaultRate.
	// The default is 10.
	DefaultBurst float64
	// Warmup is the warm-up schedule of daily caps per provider. The
	// default is [DefaultWarmup].
	Warmup []int64
	// Window is the span over which complaint and hard-bounce rates are
	// computed for automatic pauses. The default is 24 hours.
	Window time.Duration
	// BucketWidth is the width of the time buckets outcomes are counted
	// in; windows are whole buckets. The default is 10 minutes.
	BucketWidth time.Duration
	// ComplaintRate is the complaint rate (complaints per delivered
	// message) over Window above which an IP is paused for a provider.
	// The default is 0.003 (0.3%, Google's and Yahoo's published limit).
	ComplaintRate float64
	// HardBounceRate is the hard-bounce rate (hard bounces per final
	// outcome) over Window above which an IP is paused for a provider.
	// The default is 0.05.
	HardBounceRate float64
	// MinVolume is the number of outcomes (delivered messages for the
	// complaint rate, final outcomes for the hard-bounce rate) a window
	// must hold before its rate can pause an IP. The default is 100.
	MinVolume int64
	// CoolDown is how long an automatic pause lasts. The default is 24
	// hours.
	CoolDown time.Duration
	// WarmupComplaintRate is the day's complaint rate above which a
	// warming IP steps back one stage. The default is 0.001.
	WarmupComplaintRate float64
	// WarmupHardBounceRate is the day's hard-bounce rate above which a
	// warming IP steps back one stage. The default is 0.02.
	WarmupHardBounceRate float64
	// WarmupDeferralRate is the day's rate of deferrals and soft bounces
	// (per attempt) above which a warming IP holds its stage. The default
	// is 0.1.
	WarmupDeferralRate float64
	// SoftBounceDays is the number of distinct days on which an address
	// must soft-bounce, with no delivery in between, to be suppressed. The
	// default is 3.
	SoftBounceDays int
	// SoftBounceWindow is the span the SoftBounceDays must fall in; older
	// soft bounces are forgotten. The default is 14 days.
	SoftBounceWindow time.Duration
	// SoftBounceExpiry is how long a soft-bounce suppression lasts. The
	// default is 30 days; a negative value means forever.
	SoftBounceExpiry time.Duration
	// HardBounceExpiry is how long a hard-bounce suppression lasts. The
	// default is 0: forever.
	HardBounceExpiry time.Duration
	// ComplaintExpiry is how long a complaint suppression lasts. The
	// default is 0: forever.
	ComplaintExpiry time.Duration
	// MXCacheTTL is how long a domain's provider is cached after an MX
	// lookup. The default is 1 hour; failed lookups are cached for a
	// minute.
	MXCacheTTL time.Duration
	// MXCacheSize bounds the number of cached domains; the cache is
	// emptied when it fills. The default is 100,000.
	MXCacheSize int
	// Normalize maps an address to the form it is suppressed under. The
	// default is [NormalizeAddress].
	Normalize func(addr string) (string, error)
	// Logger receives pauses, resumes and warm-up transitions. The
	// default discards them.
	Logger *slog.Logger
}

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Resolver == nil {
		r.Resolver = net.DefaultResolver
	}
	if r.Providers == nil {
		r.Providers = DefaultProviders()
	} else {
		r.Providers = append([]Provider(nil), r.Providers...)
	}
	setF := func(p *float64, d float64) {
		if *p == 0 {
			*p = d
		}
	}
	setD := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setF(&r.DefaultRate, 2)
	setF(&r.DefaultBurst, 10)
	if r.Warmup == nil {
		r.Warmup = DefaultWarmup()
	}
	r.Warmup = append([]int64(nil), r.Warmup...)
	setD(&r.Window, 24*time.Hour)
	setD(&r.BucketWidth, 10*time.Minute)
	setF(&r.ComplaintRate, 0.003)
	setF(&r.HardBounceRate, 0.05)
	if r.MinVolume == 0 {
		r.MinVolume = 100
	}
	setD(&r.CoolDown, 24*time.Hour)
	setF(&r.WarmupComplaintRate, 0.001)
	setF(&r.WarmupHardBounceRate, 0.02)
	setF(&r.WarmupDeferralRate, 0.1)
	if r.SoftBounceDays == 0 {
		r.SoftBounceDays = 3
	}
	setD(&r.SoftBounceWindow, 14*24*time.Hour)
	setD(&r.SoftBounceExpiry, 30*24*time.Hour)
	setD(&r.MXCacheTTL, time.Hour)
	if r.MXCacheSize == 0 {
		r.MXCacheSize = 100_000
	}
	if r.Normalize == nil {
		r.Normalize = NormalizeAddress
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	bad := func(f string, a ...any) (Options, error) {
		return Options{}, fmt.Errorf("reputation: options: %w: %s", ErrInvalid, fmt.Sprintf(f, a...))
	}
	if r.BucketWidth < 0 || r.Window < r.BucketWidth {
		return bad("BucketWidth %v and Window %v", r.BucketWidth, r.Window)
	}
	if r.DefaultRate < 0 || r.DefaultBurst < 1 {
		return bad("DefaultRate %v, DefaultBurst %v", r.DefaultRate, r.DefaultBurst)
	}
	if err := checkSchedule(r.Warmup); err != nil {
		return bad("Warmup: %v", err)
	}
	pools := make([]Pool, len(r.Pools))
	for i, p := range r.Pools {
		if len(p.IPs) == 0 {
			return bad("pool %q has no IPs", p.Class)
		}
		p.IPs = append([]IP(nil), p.IPs...)
		for j := range p.IPs {
			ip := &p.IPs[j]
			if ip.Addr == "" || ip.Weight < 0 {
				return bad("pool %q: IP %q with weight %d", p.Class, ip.Addr, ip.Weight)
			}
			if ip.Weight == 0 {
				ip.Weight = 1
			}
		}
		pools[i] = p
	}
	r.Pools = pools
	names := map[string]bool{}
	for i := range r.Providers {
		p := &r.Providers[i]
		if p.Name == "" || names[p.Name] {
			return bad("provider name %q empty or repeated", p.Name)
		}
		names[p.Name] = true
		if p.Warmup != nil {
			if err := checkSchedule(p.Warmup); err != nil {
				return bad("provider %s: Warmup: %v", p.Name, err)
			}
		}
		if p.Rate < 0 || p.Burst < 0 || (p.Burst > 0 && p.Burst < 1) || p.ByteRate < 0 || p.ByteBurst < 0 {
			return bad("provider %s: negative rate or burst", p.Name)
		}
	}
	return r, nil
}

func checkSchedule(s []int64) error {
	if len(s) == 0 {
		return fmt.Errorf("empty schedule")
	}
	for _, c := range s {
		if c <= 0 {
			return fmt.Errorf("cap %d is not positive", c)
		}
	}
	return nil
}
