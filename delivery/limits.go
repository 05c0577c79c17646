package delivery

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per client IP: each IP may spend burst
// tokens at once and regains perMinute tokens a minute. Buckets that are
// full again are dropped when the map grows, so memory stays bounded by
// the IPs active within the last refill period.
type rateLimiter struct {
	perMinute float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const pruneAt = 4096

func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &rateLimiter{perMinute: float64(perMinute), now: now, buckets: make(map[netip.Addr]*bucket)}
}

// allow takes a token for ip and reports whether there was one. A nil
// limiter allows everything.
func (l *rateLimiter) allow(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[ip]
	if b == nil {
		if len(l.buckets) >= pruneAt {
			l.prune(now)
		}
		b = &bucket{tokens: l.perMinute, last: now}
		l.buckets[ip] = b
	}
	b.refill(now, l.perMinute)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) refill(now time.Time, perMinute float64) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(perMinute, b.tokens+d.Minutes()*perMinute)
		b.last = now
	}
}

func (l *rateLimiter) prune(now time.Time) {
	for ip, b := range l.buckets {
		b.refill(now, l.perMinute)
		if b.tokens >= l.perMinute {
			delete(l.buckets, ip)
		}
	}
}

// connCounter counts open connections per client IP.
type connCounter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func (c *connCounter) acquire(ip netip.Addr) bool {
	if c.max <= 0 {
		return true
	}
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
