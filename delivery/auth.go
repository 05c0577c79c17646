package delivery

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/mail"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// Resolver is the DNS the authentication checks use. *net.Resolver
// implements it; tests pass a fake. Implementations must be safe for
// concurrent use and should return a *net.DNSError with IsNotFound set for
// a name that does not exist, and one with IsTemporary set for a failure a
// retry may cure.
type Resolver interface {
	// LookupTXT returns the TXT records of name (SPF, DKIM keys, DMARC
	// policies).
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupMX returns the MX records of name (SPF's mx mechanism).
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	// LookupIPAddr returns the addresses of host (SPF's a and mx
	// mechanisms).
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	// LookupAddr returns the names of addr (SPF's ptr mechanism).
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

var _ Resolver = net.DefaultResolver

// AuthResults are the outcomes of the SPF, DKIM and DMARC checks of one
// message, as recorded in the incoming job.
type AuthResults struct {
	// SPF is the SPF result (RFC 7208) for the MAIL FROM domain, or for the
	// EHLO name when MAIL FROM is empty: "none", "neutral", "pass", "fail",
	// "softfail", "temperror" or "permerror".
	SPF string `json:"spf"`
	// SPFDomain is the domain SPF checked.
	SPFDomain string `json:"spf_domain,omitempty"`
	// DKIM has one entry per verified signature (at most
	// InboundOptions.MaxDKIMSignatures).
	DKIM []DKIMResult `json:"dkim,omitempty"`
	// DMARC is the DMARC result (RFC 7489): "none" (no policy or no
	// usable From), "pass", "fail", "temperror" or "permerror".
	DMARC string `json:"dmarc"`
	// FromDomain is the RFC5322.From domain DMARC evaluated, or "".
	FromDomain string `json:"from_domain,omitempty"`
	// Policy is the DMARC policy to apply: "" when DMARC did not fail,
	// else "none", "quarantine" or "reject", after pct sampling.
	Policy string `json:"policy,omitempty"`
}

// DKIMResult is the outcome of one DKIM signature.
type DKIMResult struct {
	// Result is "pass", "fail", "temperror", "permerror" or "none".
	Result string `json:"result"`
	// Domain is the signing domain (d=).
	Domain string `json:"domain,omitempty"`
	// Reason explains a failure.
	Reason string `json:"reason,omitempty"`
}

// checkSPF runs SPF for the client IP, EHLO name and MAIL FROM.
func checkSPF(ctx context.Context, r Resolver, ip net.IP, helo, from string) (result, domain string) {
	domain = helo
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		domain = from[at+1:]
	}
	res, _ := spf.CheckHostWithSender(ip, helo, from, spf.WithContext(ctx), spf.WithResolver(r))
	return string(res), strings.ToLower(domain)
}

// lookupTXT adapts r to go-msgauth's context-free LookupTXT hooks.
func lookupTXT(ctx context.Context, r Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
}

// verifyDKIM verifies the signatures of the message read from rd. It reads
// rd to its end, even after verification stops early, so that a writer on
// the other side of a pipe never blocks.
func verifyDKIM(ctx context.Context, r Resolver, rd io.Reader, max int) []DKIMResult {
	defer io.Copy(io.Discard, rd)
	vs, err := dkim.VerifyWithOptions(rd, &dkim.VerifyOptions{LookupTXT: lookupTXT(ctx, r), MaxVerifications: max})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return nil
	}
	out := make([]DKIMResult, 0, len(vs))
	for _, v := range vs {
		res := DKIMResult{Result: "pass", Domain: strings.ToLower(v.Domain)}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			res.Result, res.Reason = "temperror", v.Err.Error()
		case dkim.IsPermFail(v.Err):
			res.Result, res.Reason = "permerror", v.Err.Error()
		default:
			res.Result, res.Reason = "fail", v.Err.Error()
		}
		out = append(out, res)
	}
	return out
}

// fromDomain returns the domain of the one RFC5322.From address, or an
// error when there is not exactly one From field with addresses of one
// domain (RFC 7489 section 6.6.1).
func fromDomain(fields []headerField) (string, error) {
	if len(fields) != 1 {
		return "", errors.New("not exactly one From field")
	}
	_, value, _ := strings.Cut(string(fields[0].raw), ":")
	value = strings.ReplaceAll(value, "\r\n", "")
	addrs, err := mail.ParseAddressList(strings.TrimSpace(value))
	if err != nil || len(addrs) == 0 {
		return "", errors.New("unparsable From")
	}
	domain := ""
	for _, a := range addrs {
		at := strings.LastIndexByte(a.Address, '@')
		if at < 0 {
			return "", errors.New("from address without a domain")
		}
		d := strings.ToLower(a.Address[at+1:])
		if domain != "" && d != domain {
			return "", errors.New("from addresses of several domains")
		}
		domain = d
	}
	return domain, nil
}

// orgDomain is the organizational domain (RFC 7489 section 3.2): the public
// suffix plus one label.
func orgDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}

func aligned(mode dmarc.AlignmentMode, a, b string) bool {
	a, b = strings.TrimSuffix(strings.ToLower(a), "."), strings.TrimSuffix(strings.ToLower(b), ".")
	if mode == dmarc.AlignmentStrict {
		return a == b
	}
	return orgDomain(a) == orgDomain(b)
}

// checkDMARC evaluates DMARC (RFC 7489 section 6.6) for a message whose
// From domain is from, given the SPF and DKIM results, and fills
// res.DMARC, res.FromDomain and res.Policy. sample returns a number in
// [0, 100) for pct sampling.
func checkDMARC(ctx context.Context, r Resolver, fields []headerField, res *AuthResults, sample func() int) {
	from, err := fromDomain(fields)
	if err != nil {
		res.DMARC = "permerror"
		return
	}
	res.FromDomain = from
	opts := &dmarc.LookupOptions{LookupTXT: lookupTXT(ctx, r)}
	rec, err := dmarc.LookupWithOptions(from, opts)
	subdomain := false
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := orgDomain(from); org != from {
			rec, err = dmarc.LookupWithOptions(org, opts)
			subdomain = true
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		res.DMARC = "none"
		return
	case dmarc.IsTempFail(err):
		res.DMARC = "temperror"
		return
	case err != nil:
		res.DMARC = "permerror"
		return
	}
	pass := false
	if res.SPF == "pass" && aligned(rec.SPFAlignment, res.SPFDomain, from) {
		pass = true
	}
	for _, d := range res.DKIM {
		if d.Result == "pass" && aligned(rec.DKIMAlignment, d.Domain, from) {
			pass = true
		}
	}
	if pass {
		res.DMARC = "pass"
		return
	}
	res.DMARC = "fail"
	policy := rec.Policy
	if subdomain && rec.SubdomainPolicy != "" {
		policy = rec.SubdomainPolicy
	}
	// A message not selected by pct gets the next less strict policy
	// (RFC 7489 section 6.6.4).
	if rec.Percent != nil && *rec.Percent < 100 && sample() >= *rec.Percent {
		switch policy {
		case dmarc.PolicyReject:
			policy = dmarc.PolicyQuarantine
		case dmarc.PolicyQuarantine:
			policy = dmarc.PolicyNone
		}
	}
	res.Policy = string(policy)
}

func defaultSample() int { return rand.IntN(100) }

// authResultsHeader formats res as one Authentication-Results field (RFC
// 8601), CRLF-terminated, for host.
func authResultsHeader(host string, res *AuthResults, mailFrom, helo string) string {
	var rs []authres.Result
	spfRes := &authres.SPFResult{Value: authres.ResultValue(res.SPF)}
	if mailFrom != "" {
		spfRes.From = mailFrom
	} else {
		spfRes.Helo = helo
	}
	rs = append(rs, spfRes)
	if len(res.DKIM) == 0 {
		rs = append(rs, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range res.DKIM {
		rs = append(rs, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Domain: d.Domain})
	}
	rs = append(rs, &authres.DMARCResult{Value: authres.ResultValue(res.DMARC), From: res.FromDomain})
	return "Authentication-Results: " + authres.Format(host, rs) + "\r\n"
}

// claimsHost reports whether an incoming Authentication-Results field
// names host as its authserv-id, so that it must be removed (RFC 8601
// section 5). A field that does not parse is treated by its first token.
func claimsHost(f headerField, host string) bool {
	_, value, _ := strings.Cut(string(f.raw), ":")
	value = strings.ReplaceAll(value, "\r\n", "")
	id, _, err := authres.Parse(value)
	if err != nil {
		id, _, _ = strings.Cut(strings.TrimSpace(value), ";")
		id = strings.TrimSpace(id)
		if i := strings.IndexAny(id, " \t"); i >= 0 {
			id = id[:i]
		}
	}
	return strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(id), "."), strings.TrimSuffix(host, "."))
}
