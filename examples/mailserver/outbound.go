package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/reputation"
)

// outboundConfig holds the outbound worker's flags.
type outboundConfig struct {
	OutboundWorkers int
	// BounceAddress is delivery.OutboundOptions.BounceAddress; with it,
	// the incoming side runs delivery.Feedback on that address.
	BounceAddress string
	// MXPort is the TCP port of MX hosts (25).
	MXPort int
	// DNSOverride maps a domain to the IP address of its one MX host,
	// bypassing DNS (tests point a domain at an in-process MX).
	DNSOverride map[string]net.IP
	// Retry is the retry schedule; nil is delivery's default.
	Retry []time.Duration
	// DKIMDomains sign with the DKIM key besides every local domain.
	DKIMDomains []string
	// SourceIPs are the sending addresses, the reputation Tracker's pool.
	SourceIPs []string
}

// outboundFlags registers the outbound worker's flags.
func outboundFlags(fs *flag.FlagSet, c *outboundConfig) {
	fs.IntVar(&c.OutboundWorkers, "outbound-workers", 4, "outbound delivery workers (messages sent at once)")
	fs.StringVar(&c.BounceAddress, "bounce-address", "", "envelope sender of outgoing mail, tagged per message (bounces+TAG@domain); bounces and complaints arriving there are recorded with the sender reputation (default: the sender's own address)")
	fs.IntVar(&c.MXPort, "mx-port", 25, "TCP port of remote MX hosts (tests set another)")
	fs.Func("dns-override", "`domain=IP`: deliver mail for domain to an MX at IP instead of asking DNS (repeatable; for tests and private networks)", func(v string) error {
		d, ipStr, ok := strings.Cut(v, "=")
		ip := net.ParseIP(strings.TrimSpace(ipStr))
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if !ok || ip == nil || d == "" {
			return errors.New("want domain=IP")
		}
		if c.DNSOverride == nil {
			c.DNSOverride = map[string]net.IP{}
		}
		c.DNSOverride[d] = ip
		return nil
	})
	fs.Func("outbound-retry", "comma-separated waits between delivery attempts after temporary failures, the last one repeating (default: delivery's schedule, 7m30s, 15m, 30m, … 16h)", func(v string) error {
		c.Retry = nil
		for _, s := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil || d <= 0 {
				return fmt.Errorf("%q: want positive durations", s)
			}
			c.Retry = append(c.Retry, d)
		}
		return nil
	})
	fs.Func("source-ip", "comma-separated `addresses` outgoing mail is sent from, chosen per recipient by the sender reputation (warm-up, pacing, pauses) (default 0.0.0.0: the system's choice)", func(v string) error {
		c.SourceIPs = nil
		for _, s := range strings.Split(v, ",") {
			if net.ParseIP(strings.TrimSpace(s)) == nil {
				return fmt.Errorf("%q: not an IP address", s)
			}
			c.SourceIPs = append(c.SourceIPs, strings.TrimSpace(s))
		}
		return nil
	})
	fs.Func("dkim-domain", "`domain` to sign outgoing mail for with the DKIM key, besides the local domains (repeatable)", func(v string) error {
		c.DKIMDomains = append(c.DKIMDomains, strings.ToLower(strings.TrimSpace(v)))
		return nil
	})
}

func (c *outboundConfig) checkOutbound() error {
	if c.OutboundWorkers < 1 || c.OutboundWorkers > 1000 {
		return errors.New("-outbound-workers: 1 to 1000")
	}
	if c.MXPort < 1 || c.MXPort > 65535 {
		return errors.New("-mx-port: 1 to 65535")
	}
	if c.BounceAddress != "" {
		n, err := normalizeName(c.BounceAddress)
		if err != nil {
			return fmt.Errorf("-bounce-address: %w", err)
		}
		c.BounceAddress = n
	}
	return nil
}

// reputationOptions configures the sender reputation Tracker: one pool
// of the -source-ip addresses for every class of mail (the Tracker's
// Decide needs a pool), and the -dns-override MX hosts for its provider
// lookups.
func (c *outboundConfig) reputationOptions() *reputation.Options {
	ips := c.SourceIPs
	if len(ips) == 0 {
		// The wildcard: the dialer binds no particular address (it stands
		// for "::" too when the MX host is IPv6).
		ips = []string{"0.0.0.0"}
	}
	pool := reputation.Pool{}
	for _, ip := range ips {
		pool.IPs = append(pool.IPs, reputation.IP{Addr: ip})
	}
	o := &reputation.Options{Pools: []reputation.Pool{pool}}
	if len(c.DNSOverride) > 0 {
		o.Resolver = &overrideResolver{m: c.DNSOverride, next: net.DefaultResolver}
	}
	return o
}

// newOutbound wires delivery.Outbound as the worker of the outgoing topic:
// MX delivery with the sender reputation Tracker (source IP, pacing,
// suppression), DKIM signing with the app's key, opportunistic STARTTLS,
// retries; recipients at a local domain (the domain of any user) take the
// same-domain shortcut into their Inbox, and DSNs for local senders land in
// theirs. With -bounce-address it also sets a.feedback, which the SMTP
// front's Recipient hook and Deliver filter use (so call it before newSMTP).
func newOutbound(a *app) (front, error) {
	log := a.log.With("front", "outbound")
	oc := &a.cfg.outboundConfig
	local := &localDomains{users: a.b.Users, ttl: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := local.refresh(ctx); err != nil {
		return front{}, fmt.Errorf("outbound: local domains: %w", err)
	}
	signFor := append(local.list(), oc.DKIMDomains...)
	if a.cfg.Demo {
		signFor = append(signFor, strings.ToLower(a.cfg.DemoDomain))
	}
	slices.Sort(signFor)
	signFor = slices.Compact(signFor)
	var keys []delivery.DKIMKey
	for _, d := range signFor {
		keys = append(keys, delivery.DKIMKey{Domain: d, Selector: a.dkim.Selector, Signer: a.dkim.Signer})
	}
	opts := &delivery.OutboundOptions{
		Hostname:       a.cfg.Hostname,
		Mail:           a.b.Mailbox,
		LocalDomain:    local.has,
		LocalRecipient: a.recipient,
		Reputation:     a.b.Reputation,
		Port:           oc.MXPort,
		TLSConfig:      nil, // opportunistic: remote certificates are not verified (RFC 7435)
		DKIM:           keys,
		Retry:          oc.Retry,
		BounceAddress:  oc.BounceAddress,
		Logger:         log,
	}
	if len(oc.DNSOverride) > 0 {
		opts.Resolver = &overrideResolver{m: oc.DNSOverride, next: net.DefaultResolver}
	}
	ob, err := delivery.NewOutbound(a.b.Queue, a.b.Blobs, a.b.State, opts)
	if err != nil {
		return front{}, err
	}
	if oc.BounceAddress != "" {
		if a.feedback, err = delivery.NewFeedback(a.b.State, a.b.Reputation, oc.BounceAddress, &delivery.FeedbackOptions{Logger: log}); err != nil {
			return front{}, err
		}
	}
	w := queue.NewWorker(a.b.Queue, delivery.DefaultOutgoingTopic, ob, &queue.WorkerOptions{
		Concurrency: oc.OutboundWorkers,
		LeaseTTL:    leaseTTL,
		// A remote transaction may take minutes (RFC 5321 timeouts):
		// on shutdown it is cut after the grace period and its job
		// released; the state saved per step keeps recipients already
		// sent from being sent again.
		StopGrace: shutdownGrace,
		Logger:    log.With("worker", delivery.DefaultOutgoingTopic),
	})
	banner := []string{
		fmt.Sprintf("outbound    %d workers on topic %q: MX port %d, DKIM s=%s d=%s; local domains delivered in place",
			oc.OutboundWorkers, delivery.DefaultOutgoingTopic, oc.MXPort, a.dkim.Selector, strings.Join(signFor, ",")),
	}
	if oc.BounceAddress != "" {
		banner = append(banner, fmt.Sprintf("bounces     %s (tagged per message), reports recorded with the sender reputation", oc.BounceAddress))
	}
	for d, ip := range oc.DNSOverride {
		banner = append(banner, fmt.Sprintf("dns         %s → MX %s (override)", d, ip))
	}
	return front{name: "outbound", banner: banner, run: func(ctx context.Context) error {
		// The worker stops taking jobs when ctx is done; jobs in flight
		// finish within StopGrace or their leases are released.
		err := w.Run(ctx)
		ob.Close()
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}}, nil
}

// localDomains is the Outbound's LocalDomain hook: the domains of the
// users, reloaded when older than ttl (users are added while the server
// runs, by this instance or another).
type localDomains struct {
	users userStore
	ttl   time.Duration

	mu      sync.Mutex
	domains map[string]bool
	loaded  time.Time
}

func (l *localDomains) refresh(ctx context.Context) error {
	names, err := l.users.List(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]bool, 4)
	for _, n := range names {
		if at := strings.LastIndexByte(n, '@'); at >= 0 {
			m[strings.ToLower(n[at+1:])] = true
		}
	}
	l.mu.Lock()
	l.domains, l.loaded = m, time.Now()
	l.mu.Unlock()
	return nil
}

func (l *localDomains) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for d := range l.domains {
		out = append(out, d)
	}
	return out
}

// has reports whether domain is a user's domain. A reload that fails keeps
// the domains known before (and is retried on the next call).
func (l *localDomains) has(domain string) bool {
	l.mu.Lock()
	stale := time.Since(l.loaded) > l.ttl
	l.mu.Unlock()
	if stale {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.refresh(ctx)
		cancel()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.domains[strings.ToLower(domain)]
}

// overrideResolver answers for the -dns-override domains with one MX host
// at the given IP, and asks next for every other name.
type overrideResolver struct {
	m    map[string]net.IP
	next delivery.MXResolver
}

const overrideMXPrefix = "mx-override."

func (r *overrideResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	d := strings.ToLower(strings.TrimSuffix(name, "."))
	if _, ok := r.m[d]; ok {
		return []*net.MX{{Host: overrideMXPrefix + d + ".", Pref: 10}}, nil
	}
	return r.next.LookupMX(ctx, name)
}

func (r *overrideResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if d, ok := strings.CutPrefix(h, overrideMXPrefix); ok {
		if ip, ok := r.m[d]; ok {
			return []net.IPAddr{{IP: ip}}, nil
		}
	}
	if ip, ok := r.m[h]; ok { // a domain without MX records is its own host
		return []net.IPAddr{{IP: ip}}, nil
	}
	return r.next.LookupIPAddr(ctx, host)
}

// bounceUser is the mailbox user the incoming side maps the bounce address
// (any tag) to. Reports addressed only to it are recorded and not stored
// (delivery.Feedback.Filter); one that is also addressed to users is kept
// in their mailboxes and in this one.
func (a *app) bounceUser(addr string) (mailbricks.UserID, bool) {
	if a.feedback == nil {
		return "", false
	}
	if _, ok := a.feedback.IsBounce(addr); !ok {
		return "", false
	}
	return mailbricks.UserID(a.cfg.BounceAddress), true
}
