package delivery

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":               "192.0.2.7",
		"::ffff:192.0.2.7":        "192.0.2.7",
		"2001:db8:1:2:3:4:5:6":    "2001:db8:1:2::",
		"2001:db8:1:2:ffff::1":    "2001:db8:1:2::",
		"2001:db8:1:3::1":         "2001:db8:1:3::",
		"::1":                     "::",
		"fe80::1234:5678:9abc:de": "fe80::",
	} {
		assert.Equal(t, netip.MustParseAddr(want), clientKey(netip.MustParseAddr(in)), in)
	}
}

func TestRateLimiterGroupsIPv6By64(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newRateLimiter(2, clock.Now)
	a1 := netip.MustParseAddr("2001:db8:1:2::1")
	a2 := netip.MustParseAddr("2001:db8:1:2:dead:beef:0:1") // same /64
	b := netip.MustParseAddr("2001:db8:1:3::1")             // next /64
	require.True(t, l.allow(a1))
	require.True(t, l.allow(a2))
	assert.False(t, l.allow(a1), "two addresses of one /64 share a bucket")
	assert.False(t, l.allow(a2))
	assert.True(t, l.allow(b), "another /64 has its own bucket")

	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	require.True(t, l.allow(v4a))
	require.True(t, l.allow(v4a))
	assert.False(t, l.allow(v4a))
	assert.True(t, l.allow(v4b), "IPv4 addresses count one by one (/32)")
	assert.False(t, l.allow(netip.MustParseAddr("::ffff:192.0.2.1")), "a mapped address counts as the IPv4 address")

	clock.Add(30 * time.Second)
	assert.True(t, l.available(a2), "one token back after half a minute")
	assert.True(t, l.allow(a2))
	assert.False(t, l.available(a1))

	var none *rateLimiter
	assert.True(t, none.allow(a1), "a nil limiter allows everything")
	assert.True(t, none.available(a1))
}

func TestRateLimiterPeriod(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newRateLimiterPer(4, time.Hour, clock.Now)
	ip := netip.MustParseAddr("198.51.100.9")
	for range 4 {
		require.True(t, l.allow(ip))
	}
	require.False(t, l.available(ip))
	clock.Add(14 * time.Minute)
	assert.False(t, l.available(ip), "a token takes a quarter of an hour")
	clock.Add(time.Minute)
	assert.True(t, l.available(ip))
	clock.Add(10 * time.Hour)
	for range 4 {
		require.True(t, l.allow(ip))
	}
	assert.False(t, l.allow(ip), "the bucket holds at most its size")
}

func TestConnCounterGroupsIPv6By64(t *testing.T) {
	c := connCounter{max: 2, n: map[netip.Addr]int{}}
	a1 := netip.MustParseAddr("2001:db8::1")
	a2 := netip.MustParseAddr("2001:db8::2")
	require.True(t, c.acquire(a1))
	require.True(t, c.acquire(a2))
	assert.False(t, c.acquire(a1), "one /64 holds at most MaxConnsPerIP connections")
	assert.True(t, c.acquire(netip.MustParseAddr("2001:db8:0:1::1")))
	c.release(a2)
	assert.True(t, c.acquire(a1), "a released connection of the /64 frees a slot")
}

// TestSubmissionAuthLimits checks the brute-force limits: a delayed 535
// per failure, 421 and a closed connection at MaxAuthFailuresPerConn, and
// 454 for every AUTH once the client's AuthFailuresPerIP are spent, even
// with the right password, until the bucket refills.
func TestSubmissionAuthLimits(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const delay = 100 * time.Millisecond
	env := newSubEnv(t, func(o *SubmissionOptions) {
		o.AllowInsecureAuth = true
		o.Now = clock.Now
		o.AuthFailureDelay = delay
		o.MaxAuthFailuresPerConn = 3
		o.AuthFailuresPerIP = 5
	})
	dial := func() *smtp.Client {
		c, err := smtp.Dial(env.addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.Hello("client.example.org"))
		return c
	}

	c := dial()
	for i := range 2 {
		start := time.Now()
		code, enh := smtpCode(t, c.Auth(sasl.NewPlainClient("", subUser, "guess")))
		assert.Equal(t, 535, code, "failure %d", i+1)
		assert.Equal(t, smtp.EnhancedCode{5, 7, 8}, enh)
		assert.GreaterOrEqual(t, time.Since(start), delay, "a failure is answered after AuthFailureDelay")
	}
	code, enh := smtpCode(t, c.Auth(sasl.NewLoginClient(subUser, "guess")))
	assert.Equal(t, 421, code, "the connection's third failure")
	assert.Equal(t, smtp.EnhancedCode{4, 7, 0}, enh)
	assert.Error(t, c.Noop(), "the connection is closed after 421")

	c = dial()
	for range 2 {
		code, _ := smtpCode(t, c.Auth(sasl.NewPlainClient("", subUser, "guess")))
		require.Equal(t, 535, code)
	}
	// Five failures from 127.0.0.1: the bucket is empty.
	code, enh = smtpCode(t, c.Auth(sasl.NewPlainClient("", subUser, subPass)))
	assert.Equal(t, 454, code, "no AUTH, even a right one, once the client's failures are spent")
	assert.Equal(t, smtp.EnhancedCode{4, 7, 0}, enh)
	code, _ = smtpCode(t, dial().Auth(sasl.NewPlainClient("", subUser, subPass)))
	assert.Equal(t, 454, code, "the limit is per client, not per connection")
	assert.Empty(t, env.outgoing(t))

	clock.Add(12 * time.Minute) // an hour / 5: one token back
	c = dial()
	require.NoError(t, c.Auth(sasl.NewPlainClient("", subUser, subPass)), "AUTH works again after the refill")
	require.NoError(t, c.SendMail(subUser, []string{"carol@remote.example"}, strings.NewReader(testMsg)))
	assert.Len(t, env.outgoing(t), 1)
}
