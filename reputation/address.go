package reputation

import (
	"strings"
)

// NormalizeAddress returns the canonical form of an email address under
// which it is suppressed, so that the variants one mailbox receives mail
// under share one suppression entry. The rules:
//
//   - Surrounding spaces and angle brackets are removed, and the domain is
//     lower-cased with any trailing dot removed.
//   - The local part is lower-cased. RFC 5321 lets a server treat local
//     parts as case-sensitive, but no large provider does, and a missed
//     suppression costs more reputation than a shared one.
//   - A subaddress is removed: everything from the first "+" in the local
//     part, when the "+" is not its first character ("jane+news" becomes
//     "jane"). Google, Microsoft (Outlook.com and Microsoft 365), Apple
//     iCloud, Fastmail and Proton deliver "local+tag" to "local"; on other
//     hosts a "+" in a local part is rare, and suppressing a complaint
//     under every tag is what reputation needs.
//   - gmail.com and googlemail.com (Google documents both as the same
//     consumer mailbox, and that dots in the local part are ignored):
//     dots are removed and the domain becomes gmail.com, so
//     "Jane.Doe+x@googlemail.com" becomes "janedoe@gmail.com". Google
//     Workspace domains keep their dots: there "j.doe" and "jdoe" may be
//     different users.
//
// Yahoo's disposable addresses ("base-keyword") are separate mailboxes by
// design and are left alone. An address without exactly one "@" separating
// a non-empty local part from a non-empty domain, with an empty domain
// label, or with spaces or control characters, returns an error matching
// [ErrInvalidAddress].
func NormalizeAddress(addr string) (string, error) {
	// Fast path, for the sending path's common case: one scan, one table
	// load per byte, finds an address that is already normal.
	at, localDot := -1, false
	for i := 0; i < len(addr); i++ {
		switch addrClass[addr[i]] {
		case classPlain:
		case classAt:
			if at >= 0 {
				return normalizeSlow(addr)
			}
			at = i
		case classDot:
			if at < 0 {
				localDot = true
			} else if addr[i-1] == '.' || addr[i-1] == '@' {
				return normalizeSlow(addr)
			}
		default:
			return normalizeSlow(addr)
		}
	}
	if at > 0 && at < len(addr)-1 && addr[len(addr)-1] != '.' {
		switch addr[at+1:] {
		case "googlemail.com":
		case "gmail.com":
			if !localDot {
				return addr, nil
			}
		default:
			return addr, nil
		}
	}
	return normalizeSlow(addr)
}

// Byte classes of NormalizeAddress's fast path.
const (
	classPlain = iota
	classAt
	classDot
	classSlow // needs the slow path: upper case, '+', space, control, 8-bit, '<', '>', '"'
)

var addrClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == '@':
			t[c] = classAt
		case c == '.':
			t[c] = classDot
		case c >= 'A' && c <= 'Z', c == '+', c <= ' ', c >= 0x7f, c == '<', c == '>', c == '"':
			t[c] = classSlow
		}
	}
	return t
}()

func normalizeSlow(addr string) (string, error) {
	a := addr
	if a != "" && (a[0] <= ' ' || a[len(a)-1] <= ' ') {
		a = strings.TrimSpace(a)
	}
	if len(a) >= 2 && a[0] == '<' && a[len(a)-1] == '>' {
		a = a[1 : len(a)-1]
	}
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return "", invalidAddress(addr)
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return "", invalidAddress(addr)
		}
	}
	local, domain := a[:at], strings.TrimSuffix(a[at+1:], ".")
	if domain == "" || domain[0] == '.' || strings.Contains(a[at+1:], "..") || strings.IndexByte(domain, '@') >= 0 || (strings.IndexByte(local, '@') >= 0 && local[0] != '"') {
		return "", invalidAddress(addr)
	}
	changed := local != a[:at] || domain != a[at+1:] || len(a) != len(addr)
	if l := strings.ToLower(local); l != local {
		local, changed = l, true
	}
	if d := strings.ToLower(domain); d != domain {
		domain, changed = d, true
	}
	if i := strings.IndexByte(local, '+'); i > 0 {
		local, changed = local[:i], true
	}
	if domain == "gmail.com" || domain == "googlemail.com" {
		if strings.IndexByte(local, '.') >= 0 {
			local, changed = strings.ReplaceAll(local, ".", ""), true
		}
		if domain != "gmail.com" {
			domain, changed = "gmail.com", true
		}
		if local == "" {
			return "", invalidAddress(addr)
		}
	}
	if !changed {
		return addr, nil
	}
	return local + "@" + domain, nil
}

func invalidAddress(addr string) error {
	return &addrError{addr}
}

type addrError struct{ addr string }

func (e *addrError) Error() string { return "reputation: invalid address " + quote(e.addr) }
func (e *addrError) Unwrap() error { return ErrInvalidAddress }

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return "\"" + strings.ReplaceAll(s, "\"", "\\\"") + "\""
}

// domainOf returns the domain of a normalized address.
func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}
