// Package reputation protects the reputation of outbound mail: it chooses
// the sending IP and pace of every message, warms new IPs up, pauses IPs
// that draw complaints or bounces, keeps the suppression list, and parses
// the feedback receivers send back: delivery status notifications (RFC
// 3464, RFC 6522 multipart/report) and abuse reports (RFC 5965 ARF),
// classified by RFC 3463 enhanced status codes.
//
// A [Tracker] holds the policy over a [Backend] that holds the state:
//
//	t, err := reputation.New(backend, &reputation.Options{Pools: []reputation.Pool{
//		{Class: reputation.ClassTransactional, IPs: []reputation.IP{{Addr: "192.0.2.10"}}},
//		{Class: reputation.ClassBulk, IPs: []reputation.IP{{Addr: "192.0.2.20", Warmup: true}}},
//	}})
//	d, err := t.Decide(ctx, reputation.Send{To: "jane@example.com", Class: reputation.ClassBulk})
//	if d.Allow { /* send from d.IP */ } else { /* retry after d.RetryAfter, or drop if 0 */ }
//	err = t.Record(ctx, reputation.Outcome{IP: d.IP, Recipient: "jane@example.com",
//		Kind: reputation.KindHardBounce, Code: 550, Enhanced: "5.1.1"})
//
// # Providers
//
// Limits apply per sending IP and destination provider: recipient domains
// roll up to a provider by a list of its domains and by the host names of
// their MX records ([Provider], [DefaultProviders]), so gmail.com,
// googlemail.com and every Google Workspace domain share Google's warm-up
// cap, rate limit and pause. A domain no provider claims is its own
// destination. MX lookups go through [Options.Resolver] and are cached.
//
// # Warm-up
//
// An IP marked [IP.Warmup] starts at every provider at the first stage of
// a schedule of daily caps ([DefaultWarmup]: 30 days from 50 to 300,000
// messages). Each UTC day is judged when the IP is next used: a day with
// low bounce, complaint and deferral rates advances one stage, a day with
// deferrals holds, a day with bounces or complaints steps back; after the
// last stage the IP graduates to active at that provider.
//
// # Pauses
//
// A hard bounce or complaint makes the Tracker check the IP's rates at the
// provider over [Options.Window] (time-bucketed counters): a complaint
// rate above 0.3% or a hard-bounce rate above 5% (with at least MinVolume
// outcomes) pauses the IP there for [Options.CoolDown], and Decide moves
// its traffic to the pool's healthy IPs. The pause ends by itself or with
// [Tracker.Resume]; rates then count from the resume.
//
// # Suppression
//
// Addresses are suppressed under a normalized form ([NormalizeAddress]:
// case, subaddress, Gmail's dots) with a [Reason] and an optional expiry:
// automatically on a hard bounce about the address, a complaint, or soft
// bounces on [Options.SoftBounceDays] days; by hand with
// [Tracker.Suppress].
//
// # Backends
//
// The one-call setup opens the embedded default in a directory and returns
// a ready Tracker:
//
//	t, err := lsmreputation.OpenTracker("/var/lib/mail/reputation", &lsmreputation.Options{Tracker: &reputation.Options{Pools: pools}})
//
// The embedded default is lsmreputation, on the lsm engine, for one
// sending machine. redisreputation keeps the state in Redis, so many
// sending machines share one view of every limit and pause.
// reputationtest.Run is the conformance suite both pass.
//
// # Errors
//
// [ErrNotFound] (no suppression entry), [ErrClosed] (after Close),
// [ErrNoPool] (Decide for a class without a pool), [ErrInvalidAddress],
// [ErrInvalid] (bad arguments or Options), and for the parsers
// [ErrNotReport] and [ErrMalformed]; match them with errors.Is. Backend
// failures are returned wrapped with the operation.
//
// # Implementing a Backend
//
// A [Backend] is a small set of atomic primitives: token buckets, capped
// counters, time-bucketed counters, versioned records with
// compare-and-set, and the suppression set; the Tracker keeps all policy.
// Each method documents its contract. Pass the conformance suite,
// reputationtest.Run, which checks every primitive and drives a Tracker
// over the backend through simulated weeks with an injected clock.
package reputation
