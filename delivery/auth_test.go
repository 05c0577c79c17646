package delivery

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/dedup"
)

// testKey publishes a new ed25519 DKIM key for selector "s1" of domain in
// dns and returns the signing options.
func testKey(t *testing.T, dns *fakeDNS, domain string) *dkim.SignOptions {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	dns.setTXT("s1._domainkey."+domain, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	return &dkim.SignOptions{Domain: domain, Selector: "s1", Signer: priv}
}

func sign(t *testing.T, msg string, opts *dkim.SignOptions) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, dkim.Sign(&b, strings.NewReader(msg), opts))
	return b.String()
}

// auth sends msg and returns the job's authentication results.
func (env *testEnv) auth(t *testing.T, from, msg string) (*IncomingJob, error) {
	t.Helper()
	if err := env.send(t, from, []string{"bob@example.net"}, msg); err != nil {
		return nil, err
	}
	jobs := env.jobs(t)
	require.Len(t, jobs, 1)
	require.NoError(t, env.blocks.Queue.Ack(context.Background(), jobs[0]))
	j, err := ParseIncomingJob(jobs[0].Payload)
	require.NoError(t, err)
	return j, nil
}

func TestSPF(t *testing.T) {
	env := newEnv(t, nil)
	for _, tc := range []struct{ record, want string }{
		{"v=spf1 ip4:127.0.0.1 -all", "pass"},
		{"v=spf1 ip4:192.0.2.1 -all", "fail"},
		{"v=spf1 ip4:192.0.2.1 ~all", "softfail"},
		{"v=spf1 ?all", "neutral"},
		{"", "none"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			env.dns.mu.Lock()
			delete(env.dns.txt, "example.org")
			env.dns.mu.Unlock()
			if tc.record != "" {
				env.dns.setTXT("example.org", tc.record)
			}
			j, err := env.auth(t, "alice@example.org", testMsg)
			require.NoError(t, err)
			assert.Equal(t, tc.want, j.Auth.SPF)
			assert.Equal(t, "example.org", j.Auth.SPFDomain)
			assert.Contains(t, j.Header, "spf="+tc.want+" smtp.mailfrom=alice@example.org")
		})
	}
}

// TestDKIMAndDMARC runs with the message in its job (InlineMax
// DefaultInlineMax) and in the blob store (the default).
func TestDKIMAndDMARC(t *testing.T) {
	for _, mode := range []struct {
		name      string
		inlineMax int
	}{{"inline", DefaultInlineMax}, {"blob", 0}} {
		t.Run(mode.name, func(t *testing.T) { testDKIMAndDMARC(t, mode.inlineMax) })
	}
}

func testDKIMAndDMARC(t *testing.T, inlineMax int) {
	const from = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: signed\r\n\r\nHello Bob.\r\n"
	env := newEnv(t, &InboundOptions{InlineMax: inlineMax})
	key := testKey(t, env.dns, "example.org")
	env.dns.setTXT("_dmarc.example.org", "v=DMARC1; p=reject")
	signed := sign(t, from, key)

	t.Run("signed passes", func(t *testing.T) {
		j, err := env.auth(t, "alice@example.org", signed)
		require.NoError(t, err)
		require.Len(t, j.Auth.DKIM, 1)
		assert.Equal(t, DKIMResult{Result: "pass", Domain: "example.org"}, j.Auth.DKIM[0])
		assert.Equal(t, "pass", j.Auth.DMARC)
		assert.Equal(t, "example.org", j.Auth.FromDomain)
		assert.Contains(t, j.Header, "dkim=pass header.d=example.org")
		assert.Contains(t, j.Header, "dmarc=pass header.from=example.org")
		assert.False(t, j.Junk)
	})
	t.Run("tampered is rejected by p=reject", func(t *testing.T) {
		tampered := strings.Replace(signed, "Hello Bob.", "Hello Bob!", 1)
		code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, tampered))
		assert.Equal(t, 550, code)
		assert.Equal(t, smtp.EnhancedCode{5, 7, 1}, enh)
		assert.Empty(t, env.jobs(t), "nothing is queued")
		_, err := env.blocks.Blobs.Stat(context.Background(), dedup.Ref{Hash: sha256.Sum256([]byte(tampered)), Size: int64(len(tampered))})
		assert.ErrorIs(t, err, dedup.ErrNotFound, "a body DMARC refuses is never stored")
		_, err = env.blocks.Blobs.Stat(context.Background(), dedup.Ref{Hash: sha256.Sum256([]byte(signed)), Size: int64(len(signed))})
		if inlineMax <= 0 {
			assert.NoError(t, err, "the accepted body is stored as received (this test's way of finding a body works)")
		} else {
			assert.ErrorIs(t, err, dedup.ErrNotFound, "a small accepted body travels in its job, not the blob store")
		}
	})
	t.Run("unsigned is rejected by p=reject", func(t *testing.T) {
		code, _ := smtpCode(t, env.send(t, "alice@example.org", []string{"bob@example.net"}, from))
		assert.Equal(t, 550, code)
	})
	t.Run("aligned SPF passes DMARC", func(t *testing.T) {
		env.dns.setTXT("example.org", "v=spf1 ip4:127.0.0.1 -all")
		defer func() {
			env.dns.mu.Lock()
			delete(env.dns.txt, "example.org")
			env.dns.mu.Unlock()
		}()
		j, err := env.auth(t, "bounce@mail.example.org", from)
		require.Error(t, err, "SPF of mail.example.org has no record")
		_ = j
		j, err = env.auth(t, "bounce@example.org", from)
		require.NoError(t, err)
		assert.Equal(t, "pass", j.Auth.DMARC)
	})
}

func TestDMARCPolicies(t *testing.T) {
	msg := func(domain string) string {
		return "From: x@" + domain + "\r\nSubject: s\r\n\r\nbody\r\n"
	}
	for _, tc := range []struct {
		name, record, from string
		sample             int
		want, policy       string
		junk, rejected     bool
	}{
		{name: "none", record: "v=DMARC1; p=none", from: "example.org", want: "fail", policy: "none"},
		{name: "quarantine", record: "v=DMARC1; p=quarantine", from: "example.org", want: "fail", policy: "quarantine", junk: true},
		{name: "reject", record: "v=DMARC1; p=reject", from: "example.org", rejected: true},
		{name: "pct not sampled", record: "v=DMARC1; p=reject; pct=10", from: "example.org", sample: 50, want: "fail", policy: "quarantine", junk: true},
		{name: "pct sampled", record: "v=DMARC1; p=reject; pct=10", from: "example.org", sample: 5, rejected: true},
		{name: "org domain sp", record: "v=DMARC1; p=none; sp=reject", from: "sub.example.org", rejected: true},
		{name: "org domain p", record: "v=DMARC1; p=quarantine", from: "sub.example.org", want: "fail", policy: "quarantine", junk: true},
		{name: "no record", from: "example.com", want: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := &InboundOptions{sample: func() int { return tc.sample }}
			env := newEnv(t, opts)
			if tc.record != "" {
				env.dns.setTXT("_dmarc.example.org", tc.record)
			}
			j, err := env.auth(t, "x@"+tc.from, msg(tc.from))
			if tc.rejected {
				code, enh := smtpCode(t, err)
				assert.Equal(t, 550, code)
				assert.Equal(t, smtp.EnhancedCode{5, 7, 1}, enh)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, j.Auth.DMARC)
			assert.Equal(t, tc.policy, j.Auth.Policy)
			assert.Equal(t, tc.junk, j.Junk)
		})
	}
}

func TestDMARCAlignment(t *testing.T) {
	const body = "From: x@news.example.org\r\nSubject: s\r\n\r\nbody\r\n"
	for _, tc := range []struct{ adkim, want string }{{"r", "pass"}, {"s", "fail"}} {
		t.Run(tc.adkim, func(t *testing.T) {
			env := newEnv(t, &InboundOptions{sample: func() int { return 0 }})
			key := testKey(t, env.dns, "example.org")
			env.dns.setTXT("_dmarc.news.example.org", "v=DMARC1; p=quarantine; adkim="+tc.adkim)
			j, err := env.auth(t, "x@news.example.org", sign(t, body, key))
			require.NoError(t, err)
			assert.Equal(t, "pass", j.Auth.DKIM[0].Result)
			assert.Equal(t, tc.want, j.Auth.DMARC)
		})
	}
}

func TestPolicyHook(t *testing.T) {
	var stages []Stage
	env := newEnv(t, &InboundOptions{Policy: func(_ context.Context, c *PolicyCheck) error {
		stages = append(stages, c.Stage)
		if c.Stage == StageRcpt && c.Rcpt.Address == "grey@example.net" {
			return &Error{Code: 450, Enhanced: [3]int{4, 7, 1}, Message: "Greylisted, try again later"}
		}
		if c.Stage == StageData && c.Action == ActionReject && c.Auth.FromDomain == "example.org" {
			c.Action = ActionAccept // a local override of the DMARC reject
		}
		return nil
	}})
	env.dns.setTXT("_dmarc.example.org", "v=DMARC1; p=reject")

	code, enh := smtpCode(t, env.send(t, "alice@example.org", []string{"grey@example.net"}, testMsg))
	assert.Equal(t, 450, code)
	assert.Equal(t, smtp.EnhancedCode{4, 7, 1}, enh)

	stages = nil
	j, err := env.auth(t, "alice@example.org", testMsg)
	require.NoError(t, err, "the hook overrides DMARC p=reject")
	assert.Equal(t, "fail", j.Auth.DMARC)
	assert.Equal(t, []Stage{StageHelo, StageMail, StageRcpt, StageData}, stages)
}
