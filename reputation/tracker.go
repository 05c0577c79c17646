package reputation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Tracker decides which IP sends each message and when, and learns from
// the outcomes. It holds the policy; its Backend holds the state, so
// several Trackers on several machines over one shared Backend (Redis)
// act as one.
//
// A Tracker is safe for concurrent use.
type Tracker struct {
	b         Backend
	o         Options
	pools     map[Class]*pool
	providers *providerTable
	cache     *providerCache
	keys      keyCache
	closed    atomic.Bool
}

// New returns a Tracker over b. It returns an error matching [ErrInvalid]
// when the Options are inconsistent (a pool without IPs, an empty warm-up
// schedule, a provider without a name).
func New(b Backend, o *Options) (*Tracker, error) {
	if b == nil {
		return nil, fmt.Errorf("reputation: new: %w: nil Backend", ErrInvalid)
	}
	opts, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Tracker{b: b, o: opts, pools: map[Class]*pool{}}
	byClass := map[Class][]IP{}
	for _, p := range opts.Pools {
		byClass[p.Class] = append(byClass[p.Class], p.IPs...)
	}
	for c, ips := range byClass {
		t.pools[c] = newPool(ips)
	}
	t.providers = newProviderTable(opts.Providers)
	var all []IP
	for _, p := range t.pools {
		all = append(all, p.ips...)
	}
	t.keys.init(all, opts.Providers)
	t.cache = &providerCache{table: t.providers, resolver: opts.Resolver, now: opts.Now,
		ttl: opts.MXCacheTTL, negTTL: time.Minute, max: opts.MXCacheSize}
	return t, nil
}

// Close closes the Tracker and its Backend. It is idempotent; afterwards
// every method returns an error matching [ErrClosed].
func (t *Tracker) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	return t.b.Close()
}

func (t *Tracker) check() error {
	if t.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (t *Tracker) now() time.Time { return t.o.Now() }

func (t *Tracker) normalize(addr string) (string, error) { return t.o.Normalize(addr) }

// Provider returns the provider a recipient domain rolls up to: the name
// of a provider in the table that lists the domain or matches its most
// preferred MX host, or else the lower-cased domain itself. An MX lookup
// failure is not an error: the domain is then its own destination for a
// minute.
func (t *Tracker) Provider(ctx context.Context, domain string) string {
	return t.cache.lookup(ctx, strings.ToLower(strings.TrimSuffix(domain, ".")), t.now())
}

func (t *Tracker) provider(name string) *Provider { return t.providers.byName[name] }

func (t *Tracker) limits(prov string) (rate, burst float64, p *Provider) {
	rate, burst = t.o.DefaultRate, t.o.DefaultBurst
	if p = t.provider(prov); p != nil {
		if p.Rate > 0 {
			rate = p.Rate
		}
		if p.Burst > 0 {
			burst = p.Burst
		}
	}
	return rate, burst, p
}

func (t *Tracker) schedule(prov string) []int64 {
	if p := t.provider(prov); p != nil && p.Warmup != nil {
		return p.Warmup
	}
	return t.o.Warmup
}

func (t *Tracker) findIP(addr string) (IP, bool) {
	for _, p := range t.pools {
		for _, ip := range p.ips {
			if ip.Addr == addr {
				return ip, true
			}
		}
	}
	return IP{}, false
}

func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s < 0 && s%86400 != 0 {
		d--
	}
	return d
}

func dayStart(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

func (t *Tracker) bucket(at time.Time) int64 {
	n := at.UnixNano()
	w := int64(t.o.BucketWidth)
	b := n / w
	if n < 0 && n%w != 0 {
		b--
	}
	return b
}

func warmKey(ip, prov string, day int64) string {
	return "w/" + ip + "/" + prov + "/" + strconv.FormatInt(day, 10)
}

// Decide chooses the IP that sends s now, or says why none may and when to
// ask again. It applies, in order: the suppression list (a suppressed
// recipient is refused with RetryAfter zero), then for each IP of the
// class's pool, in the recipient's weighted rendezvous order (so a
// recipient keeps its IP while the pool is healthy, and IPs get recipients
// in proportion to their weights): the IP's pause at the recipient's
// provider, its warm-up cap for today there, and its token buckets there.
// The first IP that passes all of them is chosen and its send counted.
// When none does, RetryAfter is the soonest any IP could take the message.
//
// Decide returns an error for an invalid recipient ([ErrInvalidAddress]),
// a class without a pool ([ErrNoPool]), and backend failures.
func (t *Tracker) Decide(ctx context.Context, s Send) (Decision, error) {
	if err := t.check(); err != nil {
		return Decision{}, err
	}
	to, err := t.normalize(s.To)
	if err != nil {
		return Decision{}, err
	}
	pl, ok := t.pools[s.Class]
	if !ok {
		if pl, ok = t.pools[""]; !ok {
			return Decision{}, fmt.Errorf("reputation: decide for %q: %w", s.Class, ErrNoPool)
		}
	}
	now := t.now()
	prov := t.cache.lookup(ctx, domainOf(to), now)
	d := Decision{Provider: prov}
	if sup, err := t.suppressedAt(ctx, to, now); err == nil {
		d.Reason = "suppressed: " + sup.Reason.String()
		return d, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Decision{}, err
	}

	var scoreBuf [16]float64
	scores := rendezvous(to, pl, scoreBuf[:0])
	rate, burst, p := t.limits(prov)
	retry := time.Duration(math.MaxInt64)
	var reasons []string
	refuse := func(r string, after time.Duration) {
		if !containsString(reasons, r) {
			reasons = append(reasons, r)
		}
		if after < retry {
			retry = after
		}
	}
	for range scores {
		// The next IP in rendezvous order: a selection, not a sort, since
		// the first IP nearly always takes the message.
		i := 0
		for j, sc := range scores {
			if sc < scores[i] {
				i = j
			}
		}
		scores[i] = math.Inf(1)
		ip := pl.ips[i]
		st, _, err := t.loadState(ctx, ip, prov, now)
		if err != nil {
			return Decision{}, err
		}
		if until := st.pausedUntil; until > now.UnixMilli() {
			refuse("paused", time.UnixMilli(until).Sub(now))
			continue
		}
		var wkey string
		if st.status == statusWarming {
			sched := t.schedule(prov)
			limit := sched[min(st.stage, len(sched)-1)]
			day := dayOf(now)
			wkey = warmKey(ip.Addr, prov, day)
			ok, err := t.b.Reserve(ctx, wkey, 1, limit, dayStart(day+2))
			if err != nil {
				return Decision{}, fmt.Errorf("reputation: decide: warm-up cap %s: %w", wkey, err)
			}
			if !ok {
				refuse("warm-up cap reached", dayStart(day+1).Sub(now))
				continue
			}
		}
		release := func() error {
			if wkey == "" {
				return nil
			}
			_, err := t.b.Reserve(ctx, wkey, -1, 0, dayStart(dayOf(now)+2))
			return err
		}
		keys := t.keys.get(ip.Addr, prov)
		key := keys.bucket
		ok, after, err := t.b.Take(ctx, key, 1, rate, burst, now)
		if err == nil && ok && p != nil && p.ByteRate > 0 && s.Size > 0 {
			bb := max(p.ByteBurst, p.ByteRate)
			ok, after, err = t.b.Take(ctx, keys.byteBucket, min(float64(s.Size), bb), p.ByteRate, bb, now)
		}
		if err != nil {
			return Decision{}, errors.Join(fmt.Errorf("reputation: decide: rate %s: %w", key, err), release())
		}
		if !ok {
			if err := release(); err != nil {
				return Decision{}, fmt.Errorf("reputation: decide: release %s: %w", wkey, err)
			}
			refuse("rate limited", after)
			continue
		}
		d.IP, d.Allow = ip.Addr, true
		return d, nil
	}
	d.RetryAfter = max(retry, time.Millisecond)
	d.Reason = strings.Join(reasons, ", ")
	return d, nil
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// pool is a class's IPs with their rendezvous hash seeds.
type pool struct {
	ips     []IP
	seeds   []uint64
	uniform bool // all weights equal
}

func newPool(ips []IP) *pool {
	p := &pool{ips: ips, seeds: make([]uint64, len(ips)), uniform: true}
	for i, ip := range ips {
		p.seeds[i] = mix64(fnv64(ip.Addr))
		p.uniform = p.uniform && ip.Weight == ips[0].Weight
	}
	return p
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for j := 0; j < len(s); j++ {
		h ^= uint64(s[j])
		h *= 1099511628211
	}
	return h
}

// rendezvous appends to scores the weighted rendezvous (highest random
// weight) hashing score of addr at each of p's IPs, in p's order; the
// lowest score comes first. Each IP scores -ln(u)/weight for a hash u of
// (addr, IP) uniform in (0, 1), so an IP's chance to come first is its
// share of the total weight, and removing an IP moves only the recipients
// it had. Scores are finite.
func rendezvous(addr string, p *pool, scores []float64) []float64 {
	base := fnv64(addr)
	for i, ip := range p.ips {
		h := mix64(base ^ p.seeds[i])
		var sc float64
		if p.uniform {
			// Equal weights: -ln(u) is monotonic in u, so the hash
			// order is the score order and the logarithm can go.
			sc = float64(h >> 11)
		} else {
			u := (float64(h>>11) + 0.5) / (1 << 53)
			sc = -math.Log(u) / float64(ip.Weight)
		}
		scores = append(scores, sc)
	}
	return scores
}

// mix64 is the splitmix64 finalizer; FNV's low bits mix poorly.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// loadState returns the state of (ip, prov), creating it for a warming IP
// and advancing its warm-up to today (see advance) with a compare-and-set,
// so that concurrent Trackers agree on one transition per day.
func (t *Tracker) loadState(ctx context.Context, ip IP, prov string, now time.Time) (ipState, int64, error) {
	key := t.keys.get(ip.Addr, prov).state
	today := dayOf(now)
	for range 32 {
		val, ver, err := t.b.GetState(ctx, key)
		if err != nil {
			return ipState{}, 0, fmt.Errorf("reputation: state %s: %w", key, err)
		}
		var st ipState
		if val == nil {
			st = ipState{status: statusActive, day: today}
			if !ip.Warmup {
				return st, 0, nil
			}
			st.status = statusWarming
		} else {
			if st, err = decodeIPState(val); err != nil {
				return ipState{}, 0, fmt.Errorf("reputation: state %s: %w", key, err)
			}
			if st.status != statusWarming || st.day >= today {
				return st, ver, nil
			}
			if st, err = t.advance(ctx, ip.Addr, prov, st, today); err != nil {
				return ipState{}, 0, err
			}
		}
		ok, err := t.b.SetState(ctx, key, st.encode(), ver)
		if err != nil {
			return ipState{}, 0, fmt.Errorf("reputation: state %s: %w", key, err)
		}
		if ok {
			return st, ver + 1, nil
		}
	}
	return ipState{}, 0, fmt.Errorf("reputation: state %s: too many concurrent updates", key)
}

// advance moves a warming IP's state from the day it was last evaluated to
// today, judging that day by its outcomes at the provider:
//
//   - no final outcomes: hold (there is no evidence either way);
//   - hard-bounce rate above WarmupHardBounceRate or complaint rate above
//     WarmupComplaintRate: step back one stage;
//   - deferrals and soft bounces above WarmupDeferralRate of attempts:
//     hold (the provider is throttling);
//   - otherwise advance one stage, and after the last stage graduate to
//     active.
//
// Days between that day and today had no traffic through this IP at this
// provider (every Decide evaluates first), so they hold.
func (t *Tracker) advance(ctx context.Context, ip, prov string, st ipState, today int64) (ipState, error) {
	from := t.bucket(dayStart(st.day))
	to := t.bucket(dayStart(st.day+1)) - 1
	c, err := t.b.SumCounts(ctx, t.keys.get(ip, prov).count, from, to)
	if err != nil {
		return st, fmt.Errorf("reputation: warm-up %s at %s: %w", ip, prov, err)
	}
	old, evaluated := st.stage, st.day
	verdict := "advance"
	final := c.Final()
	switch {
	case final == 0:
		verdict = "hold: no outcomes"
	case float64(c.HardBounce)/float64(final) > t.o.WarmupHardBounceRate,
		c.Delivered > 0 && float64(c.Complaint)/float64(c.Delivered) > t.o.WarmupComplaintRate,
		c.Delivered == 0 && c.Complaint > 0:
		verdict = "step back"
		if st.stage > 0 {
			st.stage--
		}
	case float64(c.Deferred+c.SoftBounce)/float64(final+c.Deferred) > t.o.WarmupDeferralRate:
		verdict = "hold: deferrals"
	default:
		st.stage++
		if st.stage >= len(t.schedule(prov)) {
			st.status = statusActive
			verdict = "graduate"
		}
	}
	st.day = today
	t.o.Logger.Info("reputation: warm-up day", "ip", ip, "provider", prov, "day", dayStart(evaluated).Format("2006-01-02"),
		"verdict", verdict, "from_stage", old, "to_stage", st.stage, "delivered", c.Delivered, "hard_bounces", c.HardBounce, "complaints", c.Complaint)
	return st, nil
}

// updateState applies f to the state of (ip, prov) with compare-and-set,
// retrying on conflicts; f reports whether to write.
func (t *Tracker) updateState(ctx context.Context, ip IP, prov string, f func(st *ipState, now time.Time) bool) error {
	key := t.keys.get(ip.Addr, prov).state
	for range 32 {
		now := t.now()
		st, ver, err := t.loadState(ctx, ip, prov, now)
		if err != nil {
			return err
		}
		if !f(&st, now) {
			return nil
		}
		ok, err := t.b.SetState(ctx, key, st.encode(), ver)
		if err != nil {
			return fmt.Errorf("reputation: state %s: %w", key, err)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("reputation: state %s: too many concurrent updates", key)
}

// Record learns from the outcome of a delivery attempt or from feedback
// about one:
//
//   - with an IP and a recipient, the outcome counts toward the IP's rates
//     at the recipient's provider, in the time bucket it is recorded in;
//   - a hard bounce suppresses the recipient when [Classify] says the
//     address is bad (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.2.1, or a
//     reply text such as "user unknown"), or when it carries no code or
//     text at all (the caller judged it);
//   - a complaint suppresses the recipient;
//   - a hard bounce or a complaint then checks the IP's rates over Window
//     and pauses it at the provider for CoolDown if a rate is above its
//     threshold (see [Options.ComplaintRate]);
//   - a soft bounce counts a day toward SoftBounceDays, which suppress;
//   - a delivery clears the address's soft-bounce days.
func (t *Tracker) Record(ctx context.Context, o Outcome) error {
	if err := t.check(); err != nil {
		return err
	}
	if !o.Kind.Valid() {
		return fmt.Errorf("reputation: record: %w: kind %d", ErrInvalid, int(o.Kind))
	}
	rcpt, err := t.normalize(o.Recipient)
	if err != nil {
		return err
	}
	now := t.now()
	at := o.At
	if at.IsZero() {
		at = now
	}
	prov := t.cache.lookup(ctx, domainOf(rcpt), now)
	if o.IP != "" {
		var c Counts
		c.Inc(o.Kind, 1)
		b := t.bucket(now)
		keep := max(t.o.Window, 48*time.Hour) + t.o.BucketWidth
		if err := t.b.AddCounts(ctx, t.keys.get(o.IP, prov).count, b, c, now.Add(keep)); err != nil {
			return fmt.Errorf("reputation: record %s: %w", o.IP, err)
		}
	}
	switch o.Kind {
	case KindDelivered:
		return t.clearSoftBounces(ctx, rcpt)
	case KindSoftBounce:
		return t.softBounce(ctx, rcpt, o, at)
	case KindHardBounce:
		cl := Classify(o.Code, o.Enhanced, o.Text)
		if cl.SuppressRecipient || (o.Code == 0 && o.Enhanced == "" && o.Text == "") {
			if err := t.suppressAuto(ctx, rcpt, ReasonHardBounce, detail(o), t.o.HardBounceExpiry, now); err != nil {
				return err
			}
		}
	case KindComplaint:
		if err := t.suppressAuto(ctx, rcpt, ReasonComplaint, detail(o), t.o.ComplaintExpiry, now); err != nil {
			return err
		}
	default:
		return nil
	}
	if o.IP == "" {
		return nil
	}
	return t.checkRates(ctx, o.IP, prov)
}

func detail(o Outcome) string {
	var parts []string
	if o.Code != 0 {
		parts = append(parts, strconv.Itoa(o.Code))
	}
	if o.Enhanced != "" {
		parts = append(parts, o.Enhanced)
	}
	if o.Text != "" {
		txt := o.Text
		if len(txt) > 200 {
			txt = txt[:200]
		}
		parts = append(parts, txt)
	}
	return strings.Join(parts, " ")
}

func (t *Tracker) suppressAuto(ctx context.Context, addr string, r Reason, detail string, ttl time.Duration, now time.Time) error {
	s := Suppression{Address: addr, Reason: r, Detail: detail, Created: now}
	if ttl > 0 {
		s.Expires = now.Add(ttl)
	}
	if err := t.b.PutSuppression(ctx, s); err != nil {
		return fmt.Errorf("reputation: suppress %s: %w", addr, err)
	}
	return nil
}

func (t *Tracker) clearSoftBounces(ctx context.Context, addr string) error {
	key := "b/" + addr
	val, ver, err := t.b.GetState(ctx, key)
	if err != nil {
		return fmt.Errorf("reputation: soft bounces %s: %w", addr, err)
	}
	if val == nil {
		return nil
	}
	// Losing the race to a concurrent soft bounce is fine: that bounce is
	// newer than this delivery.
	if _, err := t.b.SetState(ctx, key, nil, ver); err != nil {
		return fmt.Errorf("reputation: soft bounces %s: %w", addr, err)
	}
	return nil
}

// softBounce counts the day of at toward the address's soft-bounce days;
// on the SoftBounceDays-th distinct day within SoftBounceWindow of the
// first, the address is suppressed and the record dropped.
func (t *Tracker) softBounce(ctx context.Context, addr string, o Outcome, at time.Time) error {
	key := "b/" + addr
	day := dayOf(at)
	window := int64(t.o.SoftBounceWindow / (24 * time.Hour))
	for range 32 {
		val, ver, err := t.b.GetState(ctx, key)
		if err != nil {
			return fmt.Errorf("reputation: soft bounces %s: %w", addr, err)
		}
		var sb softBounces
		if val != nil {
			if sb, err = decodeSoftBounces(val); err != nil {
				return fmt.Errorf("reputation: soft bounces %s: %w", addr, err)
			}
		}
		switch {
		case val == nil || day-sb.first >= window || day < sb.first:
			sb = softBounces{first: day, last: day, days: 1}
		case day > sb.last:
			sb.last, sb.days = day, sb.days+1
		default:
			return nil // this day is already counted
		}
		var next []byte
		if sb.days < t.o.SoftBounceDays {
			next = sb.encode()
		}
		ok, err := t.b.SetState(ctx, key, next, ver)
		if err != nil {
			return fmt.Errorf("reputation: soft bounces %s: %w", addr, err)
		}
		if !ok {
			continue
		}
		if next != nil {
			return nil
		}
		exp := t.o.SoftBounceExpiry
		if exp < 0 {
			exp = 0
		}
		d := fmt.Sprintf("soft bounces on %d days; last: %s", sb.days, detail(o))
		return t.suppressAuto(ctx, addr, ReasonSoftBounce, strings.TrimSuffix(d, "; last: "), exp, t.now())
	}
	return fmt.Errorf("reputation: soft bounces %s: too many concurrent updates", addr)
}

// checkRates pauses ip at prov when its complaint or hard-bounce rate over
// the window passes its threshold. The window starts at the later of
// now-Window and the end of the IP's last pause, so that a resumed IP is
// judged only by what it did since.
func (t *Tracker) checkRates(ctx context.Context, addr, prov string) error {
	ip, ok := t.findIP(addr)
	if !ok {
		ip = IP{Addr: addr, Weight: 1}
	}
	return t.updateState(ctx, ip, prov, func(st *ipState, now time.Time) bool {
		nowMs := now.UnixMilli()
		if st.pausedUntil > nowMs {
			return false
		}
		from := now.Add(-t.o.Window)
		if st.pausedUntil != 0 {
			if end := time.UnixMilli(st.pausedUntil); end.After(from) {
				from = end
			}
		}
		c, err := t.b.SumCounts(ctx, t.keys.get(addr, prov).count, t.bucket(from), t.bucket(now))
		if err != nil {
			t.o.Logger.Error("reputation: rates", "ip", addr, "provider", prov, "err", err)
			return false
		}
		var reason string
		switch {
		case c.Delivered >= t.o.MinVolume && float64(c.Complaint)/float64(c.Delivered) > t.o.ComplaintRate:
			reason = fmt.Sprintf("complaint rate %.2f%% (%d of %d delivered)", 100*float64(c.Complaint)/float64(c.Delivered), c.Complaint, c.Delivered)
		case c.Final() >= t.o.MinVolume && float64(c.HardBounce)/float64(c.Final()) > t.o.HardBounceRate:
			reason = fmt.Sprintf("hard-bounce rate %.2f%% (%d of %d)", 100*float64(c.HardBounce)/float64(c.Final()), c.HardBounce, c.Final())
		default:
			return false
		}
		st.pausedUntil = now.Add(t.o.CoolDown).UnixMilli()
		st.manual = false
		st.reason = reason
		if st.status == statusWarming && st.stage > 0 {
			st.stage--
		}
		t.o.Logger.Warn("reputation: paused", "ip", addr, "provider", prov, "reason", reason, "until", time.UnixMilli(st.pausedUntil))
		return true
	})
}

// State is the state of a sending IP at one provider.
type State int

// The IP states.
const (
	// StateWarming: the IP sends up to its warm-up stage's daily cap.
	StateWarming State = iota + 1
	// StateActive: the IP sends at the provider's rate limit.
	StateActive
	// StatePaused: the IP sends nothing to the provider until the pause
	// ends; Decide moves its traffic to the pool's other IPs.
	StatePaused
)

// String returns "warming", "active" or "paused".
func (s State) String() string {
	switch s {
	case StateWarming:
		return "warming"
	case StateActive:
		return "active"
	case StatePaused:
		return "paused"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// IPStatus describes one IP at one provider.
type IPStatus struct {
	// IP is the sending IP.
	IP string
	// Provider is the provider name (or domain) the status is for.
	Provider string
	// State is the IP's state now.
	State State
	// Warming reports whether the IP is still warming up (also while
	// paused).
	Warming bool
	// Stage is the warm-up stage, an index into the schedule.
	Stage int
	// DailyCap is today's warm-up cap; 0 when not warming.
	DailyCap int64
	// PausedUntil is when the current pause ends; zero when not paused,
	// and far in the future for a manual pause.
	PausedUntil time.Time
	// PauseReason says why the IP is paused.
	PauseReason string
}

// Status returns the state of ip at provider (a provider name, or a
// domain no provider claims), advancing its warm-up to today. An IP that
// is in no pool returns an error matching [ErrInvalid].
func (t *Tracker) Status(ctx context.Context, ip, provider string) (IPStatus, error) {
	if err := t.check(); err != nil {
		return IPStatus{}, err
	}
	cfg, ok := t.findIP(ip)
	if !ok {
		return IPStatus{}, fmt.Errorf("reputation: status: %w: IP %q is in no pool", ErrInvalid, ip)
	}
	now := t.now()
	st, _, err := t.loadState(ctx, cfg, provider, now)
	if err != nil {
		return IPStatus{}, err
	}
	s := IPStatus{IP: ip, Provider: provider, State: StateActive, Stage: st.stage}
	if st.status == statusWarming {
		sched := t.schedule(provider)
		s.State, s.Warming, s.DailyCap = StateWarming, true, sched[min(st.stage, len(sched)-1)]
	}
	if st.pausedUntil > now.UnixMilli() {
		s.State, s.PausedUntil, s.PauseReason = StatePaused, time.UnixMilli(st.pausedUntil), st.reason
	}
	return s, nil
}

// manualPauseEnd stands for "until Resume": year 9999.
var manualPauseEnd = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Pause stops ip from sending to provider until until, or until [Tracker.Resume]
// when until is zero. An IP that is in no pool returns an error matching
// [ErrInvalid].
func (t *Tracker) Pause(ctx context.Context, ip, provider string, until time.Time, reason string) error {
	if err := t.check(); err != nil {
		return err
	}
	cfg, ok := t.findIP(ip)
	if !ok {
		return fmt.Errorf("reputation: pause: %w: IP %q is in no pool", ErrInvalid, ip)
	}
	manual := until.IsZero()
	if manual {
		until = manualPauseEnd
	}
	return t.updateState(ctx, cfg, provider, func(st *ipState, _ time.Time) bool {
		st.pausedUntil, st.manual, st.reason = until.UnixMilli(), manual, reason
		return true
	})
}

// Resume ends a pause of ip at provider now; rates for the next automatic
// pause are counted from now. Resuming an IP that is not paused does
// nothing. An IP that is in no pool returns an error matching [ErrInvalid].
func (t *Tracker) Resume(ctx context.Context, ip, provider string) error {
	if err := t.check(); err != nil {
		return err
	}
	cfg, ok := t.findIP(ip)
	if !ok {
		return fmt.Errorf("reputation: resume: %w: IP %q is in no pool", ErrInvalid, ip)
	}
	return t.updateState(ctx, cfg, provider, func(st *ipState, now time.Time) bool {
		if st.pausedUntil <= now.UnixMilli() {
			return false
		}
		st.pausedUntil, st.manual, st.reason = now.UnixMilli(), false, ""
		t.o.Logger.Info("reputation: resumed", "ip", ip, "provider", provider)
		return true
	})
}

// Counts returns the outcomes recorded for ip at provider in the time
// buckets that overlap [from, to].
func (t *Tracker) Counts(ctx context.Context, ip, provider string, from, to time.Time) (Counts, error) {
	if err := t.check(); err != nil {
		return Counts{}, err
	}
	c, err := t.b.SumCounts(ctx, t.keys.get(ip, provider).count, t.bucket(from), t.bucket(to))
	if err != nil {
		return Counts{}, fmt.Errorf("reputation: counts %s at %s: %w", ip, provider, err)
	}
	return c, nil
}
