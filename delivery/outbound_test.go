package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

// noJitter makes retry jitter zero and MX shuffles the identity.
func noJitter(o *OutboundOptions) { o.Rand = func(n int64) int64 { return n / 2 } }

func TestOutboundDeliversSplitsAndReuses(t *testing.T) {
	port := mxPort(t, "127.0.0.2", "127.0.0.3")
	cert := selfSigned(t, "mx1.a.test")
	mx1 := startMX(t, "127.0.0.2", port, &tls.Config{Certificates: []tls.Certificate{cert}})
	mx2 := startMX(t, "127.0.0.3", port, nil)
	env := newOutEnv(t, port, nil)
	env.mx("a.test", "mx1.a.test", "127.0.0.2")
	env.mx("b.test", "mx1.b.test", "127.0.0.3")

	env.submit("tx1", "alice@example.com", []string{"x@a.test", "bob@example.com", "y@b.test", "Z@A.test"}, testMessage("alice@example.com", "x@a.test", "m1"))
	require.Equal(t, 4, env.drain(), "the job splits into three per-domain jobs")

	got := mx1.messages()
	require.Len(t, got, 1, "one transaction for both a.test recipients")
	assert.Equal(t, []string{"x@a.test", "Z@A.test"}, got[0].Rcpts)
	assert.Equal(t, "alice@example.com", got[0].From)
	assert.True(t, got[0].TLS, "STARTTLS is used when offered, even with a self-signed certificate")
	body := string(got[0].Data)
	assert.Contains(t, body, "\r\n.this line starts with a dot\r\n", "dot-stuffing is undone by the receiver: the line arrives as sent")
	assert.Contains(t, body, "bare LF here\r\nand end.", "a bare LF goes out as CRLF")
	assert.NotContains(t, strings.ReplaceAll(body, "\r\n", ""), "\n")

	got2 := mx2.messages()
	require.Len(t, got2, 1)
	assert.False(t, got2[0].TLS, "plain text to a host without STARTTLS")
	assert.Equal(t, []string{"y@b.test"}, got2[0].Rcpts)

	local := env.inbox("bob@example.com")
	require.Len(t, local, 1, "the local recipient takes the same-domain shortcut")
	assert.Contains(t, local[0], "Subject: m1")

	for _, d := range []string{"a.test", "b.test", "example.com"} {
		st, done := env.status("tx1", d)
		assert.True(t, done, d)
		for _, r := range st {
			assert.Equal(t, "sent", r.State, r.Address)
		}
	}

	// A second message to a.test reuses the open connection.
	env.submit("tx2", "alice@example.com", []string{"x@a.test"}, testMessage("alice@example.com", "x@a.test", "m2"))
	require.Equal(t, 1, env.drain())
	require.Len(t, mx1.messages(), 2)
	mx1.mu.Lock()
	assert.Len(t, mx1.conns, 1, "the connection to mx1 is reused")
	mx1.mu.Unlock()

	// The split job handled again (a worker died before its ack) adds
	// nothing and sends nothing.
	payload, err := (&OutgoingJob{Version: 1, ID: "tx1", Blob: env.firstBlob, User: "alice@example.com", From: "alice@example.com",
		Recipients: []string{"x@a.test", "bob@example.com", "y@b.test", "Z@A.test"}, Received: env.clock.Now()}).marshalForTest()
	require.NoError(t, err)
	require.NoError(t, env.ob.Handle(context.Background(), queue.Job{ID: "again", Payload: payload}))
	assert.Equal(t, 0, env.drain())
	assert.Len(t, mx1.messages(), 2)
	assert.Len(t, mx2.messages(), 1)
	assert.Len(t, env.inbox("bob@example.com"), 1)

	// Handling the same jobs again sends nothing twice.
	env.submit("tx1", "alice@example.com", []string{"x@a.test"}, "ignored")
	assert.Equal(t, 0, env.drain(), "the idempotency key refuses a second job with the same ID")
}

func TestOutboundMXFallback(t *testing.T) {
	port := mxPort(t, "127.0.0.4", "127.0.0.5", "127.0.0.6")
	deferring := startMX(t, "127.0.0.5", port, nil)
	deferring.set(mxBehavior{mail: func(string) error { return smtpErr(421, [3]int{4, 3, 2}, "busy") }})
	good := startMX(t, "127.0.0.6", port, nil)
	env := newOutEnv(t, port, noJitter)
	// 127.0.0.4 has no server: connection refused.
	env.mx("c.test", "down.c.test", "127.0.0.4", "busy.c.test", "127.0.0.5", "good.c.test", "127.0.0.6")
	env.submit("tx1", "alice@example.com", []string{"u@c.test"}, testMessage("alice@example.com", "u@c.test", "fb"))
	env.drain()
	require.Len(t, good.messages(), 1, "down the MX list: refused, deferred at MAIL, then accepted")
	st, done := env.status("tx1", "c.test")
	require.True(t, done)
	assert.Equal(t, "good.c.test", st[0].Host)

	// A host that greets with 554 (no service here): the next host.
	port3 := mxPort(t, "127.0.0.23", "127.0.0.24")
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.23:%d", port3))
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("554 5.7.1 no service for you\r\n"))
			c.Close()
		}
	}()
	ok3 := startMX(t, "127.0.0.24", port3, nil)
	env3 := newOutEnv(t, port3, noJitter)
	env3.mx("n.test", "no.n.test", "127.0.0.23", "yes.n.test", "127.0.0.24")
	env3.submit("tx9", "alice@example.com", []string{"u@n.test"}, testMessage("alice@example.com", "u@n.test", "554"))
	env3.drain()
	require.Len(t, ok3.messages(), 1, "a 554 greeting sends the message to the next MX")

	// A host that drops the connection mid-DATA: the next host gets it.
	port2 := mxPort(t, "127.0.0.7", "127.0.0.8")
	drop := startMX(t, "127.0.0.7", port2, nil)
	drop.set(mxBehavior{dropAfter: 20})
	ok2 := startMX(t, "127.0.0.8", port2, nil)
	env2 := newOutEnv(t, port2, noJitter)
	env2.mx("d.test", "drop.d.test", "127.0.0.7", "ok.d.test", "127.0.0.8")
	env2.submit("tx2", "alice@example.com", []string{"u@d.test"}, testMessage("alice@example.com", "u@d.test", "drop"))
	env2.drain()
	assert.Empty(t, drop.messages())
	require.Len(t, ok2.messages(), 1)

	// Only the dropping host: the recipient stays pending with 4.4.2.
	env2.mx("e.test", "drop.e.test", "127.0.0.7")
	env2.submit("tx3", "alice@example.com", []string{"u@e.test"}, testMessage("alice@example.com", "u@e.test", "drop2"))
	env2.drain()
	st, done = env2.status("tx3", "e.test")
	require.False(t, done)
	assert.Equal(t, "pending", st[0].State)
	require.NotNil(t, st[0].Err)
	assert.Equal(t, [3]int{4, 4, 2}, st[0].Err.Enhanced, "a lost connection is 4.4.2: %v", st[0].Err)
}

// parseDSNOf finds the DSN in msgs and parses it with reputation's parser.
func parseDSNOf(t *testing.T, msg string) []reputation.Outcome {
	t.Helper()
	out, err := reputation.ParseDSN(strings.NewReader(msg))
	require.NoError(t, err, "our DSN must parse:\n%s", msg)
	return out
}

func TestOutboundRetryScheduleAndDSNs(t *testing.T) {
	port := mxPort(t, "127.0.0.9")
	mx := startMX(t, "127.0.0.9", port, nil)
	env := newOutEnv(t, port, noJitter)
	var attempts []time.Duration
	start := env.clock.Now()
	mx.set(mxBehavior{rcpt: func(string) error {
		attempts = append(attempts, env.clock.Now().Sub(start))
		return smtpErr(451, [3]int{4, 7, 1}, "greylisted, try later")
	}})
	env.mx("g.test", "mx.g.test", "127.0.0.9")
	env.submit("tx1", "alice@example.com", []string{"u@g.test"}, testMessage("alice@example.com", "u@g.test", "retry"))

	// Step the clock a minute at a time through 9 hours.
	for m := 0; m <= 9*60; m++ {
		env.drain()
		env.clock.Add(time.Minute)
	}
	want := []time.Duration{0, 7*time.Minute + 30*time.Second, 22*time.Minute + 30*time.Second, 52*time.Minute + 30*time.Second,
		time.Hour + 52*time.Minute + 30*time.Second, 3*time.Hour + 52*time.Minute + 30*time.Second, 7*time.Hour + 52*time.Minute + 30*time.Second}
	require.Len(t, attempts, len(want), "attempts at %v", attempts)
	for i, w := range want {
		// The loop steps a minute at a time: an attempt runs within a
		// minute after it is due.
		assert.GreaterOrEqual(t, attempts[i], w, "attempt %d", i+1)
		assert.Less(t, attempts[i], w+time.Minute, "attempt %d", i+1)
	}
	inbox := env.inbox("alice@example.com")
	require.Len(t, inbox, 1, "one delayed DSN, at the first attempt after 4 hours")
	out := parseDSNOf(t, inbox[0])
	require.Len(t, out, 1)
	assert.Equal(t, "u@g.test", out[0].Recipient)
	assert.Equal(t, reputation.KindDeferred, out[0].Kind)
	assert.Equal(t, "4.7.1", out[0].Enhanced)
	assert.Contains(t, inbox[0], "Action: delayed")
	assert.Contains(t, inbox[0], "Message-ID: <retry@example.com>", "the DSN returns the original header")

	// Now the server accepts: delivered, no more DSNs.
	mx.set(mxBehavior{})
	for h := 0; h < 17; h++ {
		env.clock.Add(time.Hour)
		env.drain()
	}
	require.Len(t, mx.messages(), 1)
	_, done := env.status("tx1", "g.test")
	assert.True(t, done)
	assert.Len(t, env.inbox("alice@example.com"), 1)
}

func TestOutboundExpiry(t *testing.T) {
	port := mxPort(t, "127.0.0.10")
	mx := startMX(t, "127.0.0.10", port, nil)
	mx.set(mxBehavior{rcpt: func(string) error { return smtpErr(450, [3]int{4, 2, 0}, "mailbox busy") }})
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		noJitter(o)
		o.Expire = 24 * time.Hour
		o.DelayedDSNAfter = -1
	})
	env.mx("h.test", "mx.h.test", "127.0.0.10")
	env.submit("tx1", "alice@example.com", []string{"u@h.test"}, testMessage("alice@example.com", "u@h.test", "exp"))
	for h := 0; h <= 26; h++ {
		env.drain()
		env.clock.Add(time.Hour)
	}
	st, done := env.status("tx1", "h.test")
	require.True(t, done)
	assert.Equal(t, "failed", st[0].State)
	assert.Equal(t, [3]int{4, 4, 7}, st[0].Err.Enhanced)
	inbox := env.inbox("alice@example.com")
	require.Len(t, inbox, 1, "one failure DSN, no delayed DSN (disabled)")
	assert.Contains(t, inbox[0], "Action: failed")
	assert.Contains(t, inbox[0], "Status: 4.4.7")
	out := parseDSNOf(t, inbox[0])
	require.Len(t, out, 1)
	assert.Equal(t, "u@h.test", out[0].Recipient)
	assert.Equal(t, reputation.KindSoftBounce, out[0].Kind, "a failure after retries ran out is a soft bounce")
}

func TestOutboundRejectRemoteDSNAndSuppression(t *testing.T) {
	port := mxPort(t, "127.0.0.11", "127.0.0.12", "127.0.0.13")
	mx := startMX(t, "127.0.0.11", port, nil)
	mx.set(mxBehavior{rcpt: func(to string) error {
		if strings.HasPrefix(to, "gone") {
			return smtpErr(550, [3]int{5, 1, 1}, "no such user")
		}
		return nil
	}})
	senderMX := startMX(t, "127.0.0.12", port, nil)
	fs := vfs.NewMem()
	var tracker *reputation.Tracker
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		noJitter(o)
		var err error
		tracker, err = lsmreputation.OpenTracker("rep", &lsmreputation.Options{FS: fs, Tracker: &reputation.Options{
			Pools:       []reputation.Pool{{IPs: []reputation.IP{{Addr: "127.0.0.13"}}}},
			Resolver:    o.Resolver,
			Now:         o.Now,
			DefaultRate: 1000, DefaultBurst: 1000,
		}})
		require.NoError(t, err)
		o.Reputation = tracker
	})
	t.Cleanup(func() { tracker.Close() })
	env.mx("r.test", "mx.r.test", "127.0.0.11")
	env.mx("sender.test", "mx.sender.test", "127.0.0.12")

	env.submit("tx1", "carol@sender.test", []string{"gone@r.test", "here@r.test"}, testMessage("carol@sender.test", "here@r.test", "rej"))
	env.drain()
	got := mx.messages()
	require.Len(t, got, 1)
	assert.Equal(t, []string{"here@r.test"}, got[0].Rcpts)
	st, done := env.status("tx1", "r.test")
	require.True(t, done)
	assert.Equal(t, "failed", st[0].State)
	assert.Equal(t, "127.0.0.13", st[0].IP, "sent from the IP Reputation chose")
	assert.Equal(t, "mx.r.test", st[0].Host)
	assert.Equal(t, 550, st[0].Err.Code)

	dsns := senderMX.messages()
	require.Len(t, dsns, 1, "the remote sender gets a failure DSN through the outgoing topic")
	assert.Equal(t, "", dsns[0].From, "a DSN has the null reverse-path")
	assert.Equal(t, []string{"carol@sender.test"}, dsns[0].Rcpts)
	out := parseDSNOf(t, string(dsns[0].Data))
	require.Len(t, out, 1)
	assert.Equal(t, "gone@r.test", out[0].Recipient)
	assert.Equal(t, "5.1.1", out[0].Enhanced)
	assert.Equal(t, 550, out[0].Code)
	assert.Equal(t, reputation.KindHardBounce, out[0].Kind)
	assert.Equal(t, "rej@example.com", out[0].MessageID)

	// The hard bounce suppressed the address: it is never attempted again.
	env.submit("tx2", "carol@sender.test", []string{"gone@r.test"}, testMessage("carol@sender.test", "gone@r.test", "rej2"))
	env.drain()
	assert.Len(t, mx.messages(), 1, "no transaction for a suppressed recipient")
	st, _ = env.status("tx2", "r.test")
	assert.Equal(t, "failed", st[0].State)
	assert.Contains(t, st[0].Err.Message, "suppressed")

	// A DSN that bounces gets no DSN.
	senderMX.set(mxBehavior{rcpt: func(string) error { return smtpErr(550, [3]int{5, 1, 1}, "no") }})
	env.submit("tx3", "nobody@sender.test", []string{"gone2@r.test"}, testMessage("nobody@sender.test", "gone2@r.test", "rej3"))
	env.drain()
	assert.Len(t, senderMX.messages(), 2, "the second DSN was refused and nothing followed it")
}

func TestOutboundDNSOutcomes(t *testing.T) {
	port := mxPort(t, "127.0.0.14")
	mx := startMX(t, "127.0.0.14", port, nil)
	env := newOutEnv(t, port, noJitter)
	env.dns.mu.Lock()
	env.dns.mx["null.test"] = []*net.MX{{Host: ".", Pref: 0}}
	env.dns.ip["amx.test"] = []net.IPAddr{{IP: net.ParseIP("127.0.0.14")}}
	env.dns.mu.Unlock()
	env.submit("tx1", "alice@example.com", []string{"u@null.test", "v@amx.test", "w@nxdomain.test"}, testMessage("alice@example.com", "u@null.test", "dns"))
	env.drain()
	require.Len(t, mx.messages(), 1, "no MX: the domain's A record is the host")
	st, _ := env.status("tx1", "null.test")
	assert.Equal(t, [3]int{5, 1, 10}, st[0].Err.Enhanced)
	st, _ = env.status("tx1", "nxdomain.test")
	assert.Equal(t, [3]int{5, 1, 2}, st[0].Err.Enhanced)
	inbox := env.inbox("alice@example.com")
	require.Len(t, inbox, 2, "one failure DSN per failed domain")
	var statuses []string
	for _, m := range inbox {
		for _, o := range parseDSNOf(t, m) {
			statuses = append(statuses, o.Recipient+" "+o.Enhanced)
		}
	}
	assert.ElementsMatch(t, []string{"u@null.test 5.1.10", "w@nxdomain.test 5.1.2"}, statuses)

	// A null reverse-path message that fails gets no DSN.
	env.submit("tx2", "", []string{"u@null.test"}, testMessage("x@y", "u@null.test", "dns2"))
	env.drain()
	assert.Len(t, env.inbox("alice@example.com"), 2)
}

func TestOutboundDKIM(t *testing.T) {
	port := mxPort(t, "127.0.0.15")
	mx := startMX(t, "127.0.0.15", port, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		o.DKIM = []DKIMKey{
			{Domain: "example.com", Selector: "rsa1", Signer: rsaKey},
			{Domain: "example.com", Selector: "ed1", Signer: edKey},
			{Domain: "esp.test", Selector: "all", Signer: edKey, All: true},
			{Domain: "other.test", Selector: "no", Signer: edKey},
		}
	})
	env.mx("k.test", "mx.k.test", "127.0.0.15")
	env.submit("tx1", "alice@example.com", []string{"u@k.test"}, testMessage("alice@example.com", "u@k.test", "dkim"))
	env.drain()
	got := mx.messages()
	require.Len(t, got, 1)

	rsaPub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	txt := map[string]string{
		"rsa1._domainkey.example.com": "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub),
		"ed1._domainkey.example.com":  "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub),
		"all._domainkey.esp.test":     "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub),
	}
	vs, err := dkim.VerifyWithOptions(strings.NewReader(string(got[0].Data)), &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) {
		if v, ok := txt[d]; ok {
			return []string{v}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: d, IsNotFound: true}
	}})
	require.NoError(t, err)
	require.Len(t, vs, 3, "RSA and Ed25519 for the From domain, and the All key; not other.test")
	var domains []string
	for _, v := range vs {
		require.NoError(t, v.Err, "signature of %s must verify", v.Domain)
		domains = append(domains, v.Domain)
	}
	assert.ElementsMatch(t, []string{"example.com", "example.com", "esp.test"}, domains)
	assert.Contains(t, string(got[0].Data), "c=relaxed/relaxed")
}

func TestOutboundSTARTTLSFallback(t *testing.T) {
	port := mxPort(t, "127.0.0.16")
	// A server that offers STARTTLS with a certificate the handshake
	// cannot use (no shared key type): the client falls back to plain.
	bad := &tls.Config{Certificates: []tls.Certificate{selfSigned(t, "mx.f.test")}, MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13}
	mx := startMX(t, "127.0.0.16", port, bad)
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		o.TLSConfig = &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	})
	env.mx("f.test", "mx.f.test", "127.0.0.16")
	env.submit("tx1", "alice@example.com", []string{"u@f.test"}, testMessage("alice@example.com", "u@f.test", "tlsfb"))
	env.drain()
	got := mx.messages()
	require.Len(t, got, 1, "after a failed handshake the message goes in plain text")
	assert.False(t, got[0].TLS)
}

func TestOutboundPacingHold(t *testing.T) {
	port := mxPort(t, "127.0.0.17")
	mx := startMX(t, "127.0.0.17", port, nil)
	fs := vfs.NewMem()
	var tracker *reputation.Tracker
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		noJitter(o)
		var err error
		tracker, err = lsmreputation.OpenTracker("rep", &lsmreputation.Options{FS: fs, Tracker: &reputation.Options{
			Pools:       []reputation.Pool{{IPs: []reputation.IP{{Addr: "127.0.0.1"}}}},
			Resolver:    o.Resolver,
			Now:         o.Now,
			DefaultRate: 1.0 / 600, DefaultBurst: 1, // one message per 10 minutes
		}})
		require.NoError(t, err)
		o.Reputation = tracker
	})
	t.Cleanup(func() { tracker.Close() })
	env.mx("p.test", "mx.p.test", "127.0.0.17")
	env.submit("tx1", "alice@example.com", []string{"a@p.test"}, testMessage("alice@example.com", "a@p.test", "p1"))
	env.submit("tx2", "alice@example.com", []string{"b@p.test"}, testMessage("alice@example.com", "b@p.test", "p2"))
	env.drain()
	require.Len(t, mx.messages(), 1, "the second message is held back by the rate limit")
	st, _ := env.status("tx2", "p.test")
	assert.Equal(t, "pending", st[0].State)
	assert.Nil(t, st[0].Err, "a hold is not an attempt")
	env.clock.Add(5 * time.Minute)
	env.drain()
	require.Len(t, mx.messages(), 1)
	env.clock.Add(6 * time.Minute)
	env.drain()
	require.Len(t, mx.messages(), 2, "sent once Decide allows it")
	_ = context.Background
}

// TestOutboundDKIMLargeAndSmall signs a body small enough to be read into
// memory once and one larger than maxMemoryBody, streamed twice: both
// verify and arrive whole, with bare LFs turned into CRLF and dots
// stuffed on the wire.
func TestOutboundDKIMLargeAndSmall(t *testing.T) {
	port := mxPort(t, "127.0.0.16")
	mx := startMX(t, "127.0.0.16", port, nil)
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		o.DKIM = []DKIMKey{{Domain: "example.com", Selector: "ed1", Signer: edKey}}
	})
	env.mx("k.test", "mx.k.test", "127.0.0.16")
	small := testMessage("alice@example.com", "u@k.test", "small")
	large := testMessage("alice@example.com", "v@k.test", "large") + strings.Repeat(".line\nof text\r\n", maxMemoryBody/10)
	require.Greater(t, len(large), maxMemoryBody)
	env.submit("tx-small", "alice@example.com", []string{"u@k.test"}, small)
	env.submit("tx-large", "alice@example.com", []string{"v@k.test"}, large)
	env.drain()
	got := mx.messages()
	require.Len(t, got, 2)
	txt := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub)
	sizes := map[string]int{}
	for _, m := range got {
		data := string(m.Data)
		vs, err := dkim.VerifyWithOptions(strings.NewReader(data), &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) {
			if d == "ed1._domainkey.example.com" {
				return []string{txt}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: d, IsNotFound: true}
		}})
		require.NoError(t, err)
		require.Len(t, vs, 1)
		require.NoError(t, vs[0].Err)
		assert.NotContains(t, strings.ReplaceAll(data, "\r\n", ""), "\n", "no bare LF")
		_, body, ok := strings.Cut(data, "\r\n\r\n")
		require.True(t, ok)
		sizes[m.Rcpts[0]] = len(body)
	}
	norm := func(msg string) int {
		_, body, _ := strings.Cut(msg, "\r\n\r\n")
		return len(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n"))
	}
	assert.Equal(t, norm(small), sizes["u@k.test"])
	assert.Equal(t, norm(large), sizes["v@k.test"])
}
