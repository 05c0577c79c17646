package delivery

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits of envelope syntax (RFC 5321 section 4.5.3.1).
const (
	maxPathLen   = 256
	maxLocalLen  = 64
	maxDomainLen = 255
)

// ValidateAddress checks an envelope address as go-smtp passed it (without
// angle brackets): "" (the null reverse-path) is valid; otherwise a
// local part of 1 to 64 bytes, '@', and a domain name or address literal.
// No byte below 0x20 and no DEL is allowed anywhere, quoted or not, and
// non-ASCII must be valid UTF-8. A violation wraps ErrInvalidAddress.
func ValidateAddress(addr string) error {
	if addr == "" {
		return nil
	}
	if len(addr) > maxPathLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidAddress, maxPathLen)
	}
	if err := noControls(addr); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidAddress, err)
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return fmt.Errorf("%w: %q has no local part and domain", ErrInvalidAddress, addr)
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) > maxLocalLen {
		return fmt.Errorf("%w: local part longer than %d bytes", ErrInvalidAddress, maxLocalLen)
	}
	if err := validDomainOrLiteral(domain); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidAddress, err)
	}
	return nil
}

// ValidateHelo checks an EHLO/HELO argument: a domain name or an address
// literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"). Labels may hold letters,
// digits, '-' and '_' (seen from real clients); no control character, space
// or other byte is allowed. A violation wraps ErrInvalidHelo.
func ValidateHelo(name string) error {
	if err := noControls(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidHelo, err)
	}
	if err := validDomainOrLiteral(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidHelo, err)
	}
	return nil
}

func noControls(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character %#02x at byte %d", c, i)
		}
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("invalid UTF-8")
	}
	return nil
}

func validDomainOrLiteral(d string) error {
	if d == "" {
		return fmt.Errorf("empty domain")
	}
	if len(d) > maxDomainLen {
		return fmt.Errorf("domain longer than %d bytes", maxDomainLen)
	}
	if d[0] == '[' {
		if d[len(d)-1] != ']' {
			return fmt.Errorf("unterminated address literal")
		}
		lit := d[1 : len(d)-1]
		v6 := false
		if len(lit) > 5 && strings.EqualFold(lit[:5], "IPv6:") {
			lit, v6 = lit[5:], true
		}
		ip, err := netip.ParseAddr(lit)
		if err != nil || ip.Is6() != v6 || ip.Zone() != "" {
			return fmt.Errorf("invalid address literal %q", d)
		}
		return nil
	}
	d = strings.TrimSuffix(d, ".")
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("invalid label in %q", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label starts or ends with '-' in %q", d)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80
			if !ok {
				return fmt.Errorf("invalid character %q in domain %q", c, d)
			}
		}
	}
	return nil
}
