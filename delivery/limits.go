package delivery

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// clientKey is the key the per-IP limits count a client under: an IPv4
// address is its own key (/32); an IPv6 address counts under its /64
// prefix, since one host or site usually holds a whole /64 and could
// otherwise evade every limit by changing addresses within it. An
// IPv4-mapped IPv6 address counts as the IPv4 address.
func clientKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// rateLimiter is a token bucket per client (clientKey): each client may
// spend size tokens at once and regains size tokens a period. Buckets that
// are full again are dropped when the map grows, so memory stays bounded by
// the clients active within the last refill period.
type rateLimiter struct {
	perMinute float64 // size tokens per period, as a rate a minute
	size      float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const pruneAt = 4096

// newRateLimiter returns a limiter of perMinute tokens a minute, or nil
// (no limit) if perMinute is not positive.
func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	return newRateLimiterPer(perMinute, time.Minute, now)
}

// newRateLimiterPer returns a limiter of n tokens a period, or nil (no
// limit) if n is not positive.
func newRateLimiterPer(n int, period time.Duration, now func() time.Time) *rateLimiter {
	if n <= 0 {
		return nil
	}
	return &rateLimiter{
		perMinute: float64(n) * float64(time.Minute) / float64(period),
		size:      float64(n),
		now:       now,
		buckets:   make(map[netip.Addr]*bucket),
	}
}

// allow takes a token for ip and reports whether there was one. A nil
// limiter allows everything.
func (l *rateLimiter) allow(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(ip)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// available reports whether ip has a token, without taking it. A nil
// limiter always has one.
func (l *rateLimiter) available(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bucket(ip).tokens >= 1
}

// bucket returns ip's bucket, refilled to now. l.mu is held.
func (l *rateLimiter) bucket(ip netip.Addr) *bucket {
	ip = clientKey(ip)
	now := l.now()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= pruneAt {
			l.prune(now)
		}
		b = &bucket{tokens: l.size, last: now}
		l.buckets[ip] = b
	}
	b.refill(now, l.perMinute, l.size)
	return b
}

func (b *bucket) refill(now time.Time, perMinute, size float64) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(size, b.tokens+d.Minutes()*perMinute)
		b.last = now
	}
}

func (l *rateLimiter) prune(now time.Time) {
	for ip, b := range l.buckets {
		b.refill(now, l.perMinute, l.size)
		if b.tokens >= l.size {
			delete(l.buckets, ip)
		}
	}
}

// connCounter counts open connections per client (clientKey).
type connCounter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func (c *connCounter) acquire(ip netip.Addr) bool {
	if c.max <= 0 {
		return true
	}
	ip = clientKey(ip)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip] >= c.max {
		return false
	}
	c.n[ip]++
	return true
}

func (c *connCounter) release(ip netip.Addr) {
	if c.max <= 0 {
		return
	}
	ip = clientKey(ip)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip]--; c.n[ip] <= 0 {
		delete(c.n, ip)
	}
}

// addrIP returns the IP of a TCP address, or the zero Addr.
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// limitListener applies the per-IP connection limits at accept time: a
// connection over a limit gets "421 4.7.0" and is closed before go-smtp
// sees it.
type limitListener struct {
	net.Listener
	in *Inbound
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrIP(c.RemoteAddr())
		if !l.in.connRate.allow(ip) {
			l.in.refuse(c, "Too many connections from your address, try again later")
			continue
		}
		if !l.in.conns.acquire(ip) {
			l.in.refuse(c, "Too many concurrent connections from your address")
			continue
		}
		return &limitConn{Conn: c, release: func() { l.in.conns.release(ip) }}, nil
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// refuse answers 421 4.7.0 and closes c, without blocking Accept for long.
func (in *Inbound) refuse(c net.Conn, msg string) {
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write([]byte("421 4.7.0 " + in.opts.Hostname + " " + msg + "\r\n"))
		_ = c.Close()
	}()
}
