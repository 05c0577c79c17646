package delivery

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
)

// MXResolver is the DNS the outbound worker uses: MX records of recipient
// domains and addresses of MX hosts. *net.Resolver implements it.
type MXResolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// MaxMXHosts is the most MX hosts of one domain tried in one attempt.
const MaxMXHosts = 10

var (
	errNullMX   = &Error{Code: 556, Enhanced: [3]int{5, 1, 10}, Message: "Recipient domain accepts no mail (null MX, RFC 7505)"}
	errNoDomain = &Error{Code: 550, Enhanced: [3]int{5, 1, 2}, Message: "Recipient domain does not exist"}
	errDNSTemp  = &Error{Code: 451, Enhanced: [3]int{4, 4, 3}, Message: "Temporary DNS failure looking up the recipient domain"}
	errNoMXHost = &Error{Code: 451, Enhanced: [3]int{4, 4, 4}, Message: "No usable MX host"}
)

// orderMX turns a domain's MX answer into the host names to try, in
// order (RFC 5321 section 5.1): by preference, lowest first, with hosts of
// equal preference shuffled by shuffle (which permutes a slice) so that
// load spreads over them. A null MX (one record whose host is ".",
// RFC 7505) is the permanent errNullMX. Hosts that are empty or "." amid
// other records are skipped, duplicates are dropped, names lose their
// trailing dot and are lower-cased, and at most MaxMXHosts are returned.
// An answer with no usable host is errNoMXHost.
func orderMX(mx []*net.MX, shuffle func([]string)) ([]string, error) {
	if len(mx) == 1 && mx[0] != nil && (mx[0].Host == "." || mx[0].Host == "") {
		return nil, errNullMX
	}
	recs := make([]*net.MX, 0, len(mx))
	for _, m := range mx {
		if m != nil {
			recs = append(recs, m)
		}
	}
	slices.SortStableFunc(recs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	var hosts []string
	seen := map[string]bool{}
	for i := 0; i < len(recs); {
		j := i
		var group []string
		for ; j < len(recs) && recs[j].Pref == recs[i].Pref; j++ {
			h := strings.ToLower(strings.TrimSuffix(recs[j].Host, "."))
			if h == "" || seen[h] || !validHost(h) {
				continue
			}
			seen[h] = true
			group = append(group, h)
		}
		if shuffle != nil && len(group) > 1 {
			shuffle(group)
		}
		hosts = append(hosts, group...)
		i = j
	}
	if len(hosts) == 0 {
		return nil, errNoMXHost
	}
	if len(hosts) > MaxMXHosts {
		hosts = hosts[:MaxMXHosts]
	}
	return hosts, nil
}

// validHost reports whether h can be a host name to connect to: no
// control characters, spaces or other bytes a DNS answer should not hold.
func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == '@' || c == '[' || c == ']' {
			return false
		}
	}
	return true
}

// mxHosts returns the hosts to try for domain: its MX hosts in order, or
// the domain itself when it has no MX records (the implicit MX of RFC
// 5321 section 5.1). An address literal ("[192.0.2.1]") is its own host.
// A permanent failure (null MX, no such domain) or a temporary DNS failure
// is returned as an *Error.
func mxHosts(ctx context.Context, r MXResolver, domain string, shuffle func([]string)) ([]string, *Error) {
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		lit := strings.TrimPrefix(domain[1:len(domain)-1], "IPv6:")
		if net.ParseIP(lit) == nil {
			return nil, errNoDomain
		}
		return []string{lit}, nil
	}
	mx, err := r.LookupMX(ctx, domain)
	if err != nil && !isNotFound(err) {
		// Go returns the usable records of a partly bad answer with an
		// error; use them if there are any.
		if len(mx) == 0 {
			return nil, errDNSTemp
		}
	}
	if len(mx) == 0 {
		// No MX: the domain's own address records, if it has any.
		addrs, err := r.LookupIPAddr(ctx, domain)
		if err != nil {
			if isNotFound(err) {
				return nil, errNoDomain
			}
			return nil, errDNSTemp
		}
		if len(addrs) == 0 {
			return nil, errNoDomain
		}
		return []string{domain}, nil
	}
	hosts, oerr := orderMX(mx, shuffle)
	if oerr != nil {
		var e *Error
		errors.As(oerr, &e)
		return nil, e
	}
	return hosts, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// hostAddrs returns the addresses of an MX host usable from localIP (same
// family), or the host itself when it is an IP address.
func hostAddrs(ctx context.Context, r MXResolver, host, localIP string) ([]net.IP, error) {
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := r.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if localIP == "" {
		return ips, nil
	}
	src := net.ParseIP(localIP)
	v4 := src != nil && src.To4() != nil
	var out []net.IP
	for _, ip := range ips {
		if (ip.To4() != nil) == v4 {
			out = append(out, ip)
		}
	}
	return out, nil
}
