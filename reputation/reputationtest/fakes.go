package reputationtest

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a settable clock for [reputation.Options.Now]. It is safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads start until moved.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Resolver is an in-memory [reputation.Resolver]: a map from domain to
// MX host names, most preferred first. Unknown domains return a not-found
// DNS error. It is safe for concurrent use.
type Resolver struct {
	mu      sync.Mutex
	mx      map[string][]string
	lookups atomic.Int64
}

// NewResolver returns a Resolver answering from mx (domain → hosts).
func NewResolver(mx map[string][]string) *Resolver {
	r := &Resolver{mx: map[string][]string{}}
	for d, hs := range mx {
		r.mx[strings.ToLower(d)] = append([]string(nil), hs...)
	}
	return r
}

// Set replaces the MX hosts of domain.
func (r *Resolver) Set(domain string, hosts ...string) {
	r.mu.Lock()
	r.mx[strings.ToLower(domain)] = append([]string(nil), hosts...)
	r.mu.Unlock()
}

// Lookups returns the number of LookupMX calls so far.
func (r *Resolver) Lookups() int64 { return r.lookups.Load() }

// LookupMX returns the hosts of name with preferences 10, 20, ….
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	r.lookups.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	hs, ok := r.mx[strings.ToLower(strings.TrimSuffix(name, "."))]
	r.mu.Unlock()
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	out := make([]*net.MX, len(hs))
	for i, h := range hs {
		out[i] = &net.MX{Host: h + ".", Pref: uint16(10 * (i + 1))}
	}
	return out, nil
}
