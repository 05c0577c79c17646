package reputation

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Resolver looks up MX records. *net.Resolver implements it.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// Provider is a mailbox provider: many recipient domains whose mail is
// received by the same infrastructure and judged by the same reputation
// system, so they share one warm-up state, one rate limit and one pause
// per sending IP (after KumoMTA's sites).
type Provider struct {
	// Name identifies the provider, such as "google".
	Name string
	// Domains are recipient domains known to belong to the provider
	// without an MX lookup, such as "gmail.com".
	Domains []string
	// MX are patterns of MX host names: "*.google.com" matches any host
	// name ending in ".google.com"; other patterns match one host name.
	// A domain whose most preferred matching MX host matches belongs to
	// the provider (Google Workspace and Microsoft 365 customer domains).
	MX []string
	// Rate is the number of messages per second each sending IP may send
	// to the provider; 0 means the Options' DefaultRate.
	Rate float64
	// Burst is the token bucket's size; 0 means the Options' DefaultBurst.
	Burst float64
	// ByteRate, when positive, also limits each IP to ByteRate bytes of
	// messages per second to the provider; 0 means no byte limit.
	ByteRate float64
	// ByteBurst is the byte bucket's size; it should hold the largest
	// message (larger ones take a full bucket). 0 means ByteRate.
	ByteBurst float64
	// Warmup is the provider's warm-up schedule; nil means the Options'
	// Warmup.
	Warmup []int64
}

// DefaultProviders returns the built-in provider table: the large
// consumer mailbox providers and the big hosted mail and filtering
// services, identified by their MX host names. Their rates are
// deliberately conservative, per IP; tune them from your own deferrals.
func DefaultProviders() []Provider {
	return []Provider{
		{Name: "google", Domains: []string{"gmail.com", "googlemail.com"},
			MX: []string{"*.google.com", "*.googlemail.com", "*.smtp.goog"}, Rate: 20, Burst: 50},
		{Name: "microsoft", Domains: []string{"outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "hotmail.fr", "outlook.de", "live.co.uk"},
			MX: []string{"*.protection.outlook.com", "*.outlook.com", "*.hotmail.com"}, Rate: 10, Burst: 20},
		{Name: "yahoo", Domains: []string{"yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "yahoo.co.uk", "yahoo.fr", "yahoo.co.jp"},
			MX: []string{"*.yahoodns.net", "*.yahoo.com", "*.aol.com"}, Rate: 10, Burst: 20},
		{Name: "apple", Domains: []string{"icloud.com", "me.com", "mac.com"},
			MX: []string{"*.mail.icloud.com"}, Rate: 10, Burst: 20},
		{Name: "gmx-webde", Domains: []string{"gmx.de", "gmx.net", "gmx.com", "web.de"},
			MX: []string{"*.gmx.net", "*.web.de", "*.gmx.com"}, Rate: 5, Burst: 10},
		{Name: "yandex", Domains: []string{"yandex.ru", "yandex.com"}, MX: []string{"*.yandex.net", "*.yandex.ru"}, Rate: 5, Burst: 10},
		{Name: "mailru", Domains: []string{"mail.ru", "bk.ru", "inbox.ru", "list.ru"}, MX: []string{"*.mail.ru"}, Rate: 5, Burst: 10},
		{Name: "proton", Domains: []string{"proton.me", "protonmail.com", "pm.me"}, MX: []string{"*.protonmail.ch"}, Rate: 5, Burst: 10},
		{Name: "fastmail", Domains: []string{"fastmail.com", "fastmail.fm"}, MX: []string{"*.messagingengine.com"}, Rate: 5, Burst: 10},
		{Name: "zoho", Domains: []string{"zoho.com", "zohomail.com"}, MX: []string{"*.zoho.com", "*.zoho.eu", "*.zoho.in"}, Rate: 5, Burst: 10},
		{Name: "mimecast", MX: []string{"*.mimecast.com", "*.mimecast.co.za"}, Rate: 10, Burst: 20},
		{Name: "proofpoint", MX: []string{"*.pphosted.com", "*.ppe-hosted.com"}, Rate: 10, Burst: 20},
		{Name: "barracuda", MX: []string{"*.barracudanetworks.com"}, Rate: 10, Burst: 20},
	}
}

// providerTable matches domains and MX hosts to providers.
type providerTable struct {
	byName   map[string]*Provider
	byDomain map[string]*Provider
	exactMX  map[string]*Provider
	suffixMX []suffixRule // longest suffix first
}

type suffixRule struct {
	suffix string // ".google.com"
	p      *Provider
}

func newProviderTable(ps []Provider) *providerTable {
	t := &providerTable{byName: map[string]*Provider{}, byDomain: map[string]*Provider{}, exactMX: map[string]*Provider{}}
	for i := range ps {
		p := &ps[i]
		t.byName[p.Name] = p
		for _, d := range p.Domains {
			t.byDomain[strings.ToLower(strings.TrimSuffix(d, "."))] = p
		}
		for _, m := range p.MX {
			m = strings.ToLower(strings.TrimSuffix(m, "."))
			if rest, ok := strings.CutPrefix(m, "*"); ok {
				t.suffixMX = append(t.suffixMX, suffixRule{rest, p})
			} else {
				t.exactMX[m] = p
			}
		}
	}
	sort.SliceStable(t.suffixMX, func(i, j int) bool { return len(t.suffixMX[i].suffix) > len(t.suffixMX[j].suffix) })
	return t
}

func (t *providerTable) matchMX(host string) *Provider {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if p := t.exactMX[host]; p != nil {
		return p
	}
	for _, r := range t.suffixMX {
		if strings.HasSuffix(host, r.suffix) {
			return r.p
		}
	}
	return nil
}

// providerCache maps recipient domains to providers, looking up MX
// records once per domain and TTL; concurrent lookups of one domain share
// one query.
type providerCache struct {
	table    *providerTable
	resolver Resolver
	now      func() time.Time
	ttl      time.Duration
	negTTL   time.Duration
	max      int
	shards   [16]cacheShard
	group    singleflight.Group
}

// cacheShard is a plain map under a read-write lock: unlike sync.Map, a
// lookup by string key does not allocate.
type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cacheEntry
	_  [32]byte // one shard per 64-byte cache line: no false sharing
}

type cacheEntry struct {
	provider string
	expires  time.Time
}

// lookup returns the provider name of domain: a provider's name, or the
// domain itself when no provider claims it or its MX lookup fails (mail
// then still flows, limited per domain).
func (c *providerCache) lookup(ctx context.Context, domain string, now time.Time) string {
	if p := c.table.byDomain[domain]; p != nil {
		return p.Name
	}
	s := &c.shards[strHash(domain)%uint32(len(c.shards))]
	s.mu.RLock()
	e, ok := s.m[domain]
	s.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.provider
	}
	v, _, _ := c.group.Do(domain, func() (any, error) {
		name, ttl := c.resolve(ctx, domain)
		s.mu.Lock()
		if s.m == nil || len(s.m) >= max(1, c.max/len(c.shards)) {
			s.m = map[string]cacheEntry{}
		}
		s.m[domain] = cacheEntry{name, c.now().Add(ttl)}
		s.mu.Unlock()
		return name, nil
	})
	return v.(string)
}

func (c *providerCache) resolve(ctx context.Context, domain string) (string, time.Duration) {
	mxs, err := c.resolver.LookupMX(ctx, domain)
	if err != nil && len(mxs) == 0 {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return domain, c.ttl
		}
		return domain, c.negTTL
	}
	sorted := make([]*net.MX, 0, len(mxs))
	for _, mx := range mxs {
		if mx != nil {
			sorted = append(sorted, mx)
		}
	}
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Pref < sorted[j].Pref })
	for _, mx := range sorted {
		if p := c.table.matchMX(mx.Host); p != nil {
			return p.Name, c.ttl
		}
	}
	return domain, c.ttl
}
