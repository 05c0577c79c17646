package reputation

import (
	"strconv"
	"strings"
)

// Category is what a delivery status is about, as far as the sender's
// reaction goes.
type Category int

// The categories. CategoryOther covers everything not listed.
const (
	CategoryOther Category = iota
	// CategoryDelivered: the message was accepted.
	CategoryDelivered
	// CategoryBadMailbox: the mailbox does not exist or has moved
	// (X.1.1, X.1.6; "user unknown").
	CategoryBadMailbox
	// CategoryBadDomain: the domain does not exist or accepts no mail
	// (X.1.2, X.1.10 null MX, X.4.4 on a permanent failure).
	CategoryBadDomain
	// CategoryBadSyntax: the address is malformed (X.1.3).
	CategoryBadSyntax
	// CategoryMailboxDisabled: the mailbox exists but is disabled (X.2.1).
	CategoryMailboxDisabled
	// CategoryMailboxFull: the mailbox is over quota (X.2.2; "mailbox
	// full").
	CategoryMailboxFull
	// CategoryTooLarge: the message is too large (X.2.3, X.3.4).
	CategoryTooLarge
	// CategorySpam: the content was rejected as spam.
	CategorySpam
	// CategoryBlocked: the sending IP or domain is blocked or listed.
	CategoryBlocked
	// CategoryAuth: SPF, DKIM, DMARC or reverse DNS checks failed
	// (X.7.20–X.7.27).
	CategoryAuth
	// CategoryRateLimited: the receiver is throttling the sender
	// (421 4.7.0 "too many", X.7.28 "rate limited").
	CategoryRateLimited
	// CategoryGreylisted: a first-time temporary rejection.
	CategoryGreylisted
	// CategoryTransient: a network, routing or system problem (X.3.X,
	// X.4.X).
	CategoryTransient
	// CategoryPolicy: another policy refusal (X.7.X).
	CategoryPolicy
)

var categoryNames = [...]string{"other", "delivered", "bad-mailbox", "bad-domain", "bad-syntax", "mailbox-disabled",
	"mailbox-full", "too-large", "spam", "blocked", "auth", "rate-limited", "greylisted", "transient", "policy"}

// String returns the category's name, such as "bad-mailbox".
func (c Category) String() string {
	if c >= 0 && int(c) < len(categoryNames) {
		return categoryNames[c]
	}
	return "Category(" + strconv.Itoa(int(c)) + ")"
}

// Classification is the verdict of [Classify].
type Classification struct {
	// Kind is the outcome kind to record.
	Kind Kind
	// Category says what the status is about.
	Category Category
	// SuppressRecipient reports that the address itself is bad (it does
	// not exist, its domain takes no mail, it is malformed or disabled)
	// and must not be mailed again.
	SuppressRecipient bool
}

// Classify turns an SMTP reply or a DSN status into a Classification. Any
// argument may be missing (code 0, empty strings). It follows RFC 3463:
//
//   - The class (2 success, 4 temporary, 5 permanent) comes from the reply
//     code, else from the enhanced code, else from a code at the start of
//     text ("550 5.1.1 …" or "5.1.1 …").
//   - The category comes from the enhanced code's subject and detail when
//     they are specific (X.1.1 bad mailbox, X.2.2 mailbox full, …); when
//     they are generic (X.0.0, X.7.1, X.7.0, X.3.X, X.4.X) or absent, from
//     well-known reply texts: "user unknown", "no such user", "mailbox
//     full", "over quota", "blocked", "listed", "spam", "rate limit",
//     "too many", "greylisted", "DMARC", ….
//   - Kind: success is delivered; a full or disabled mailbox on a
//     temporary failure, or a full mailbox on a permanent one, is a soft
//     bounce; other temporary failures are deferrals; other permanent
//     failures are hard bounces. Without any class, a bad-address text
//     is a hard bounce, a full mailbox a soft bounce, anything else a
//     deferral.
//   - SuppressRecipient is true for permanent failures about the address:
//     bad mailbox, bad domain, bad syntax, disabled mailbox. Blocks, spam
//     rejections and authentication failures are about the sender, not
//     the recipient.
func Classify(code int, enhanced, text string) Classification {
	class, subj, det := parseEnhanced(enhanced)
	text = strings.TrimSpace(text)
	if code == 0 && len(text) >= 3 && isDigits(text[:3]) && (len(text) == 3 || text[3] == ' ' || text[3] == '-') {
		code, _ = strconv.Atoi(text[:3])
		text = strings.TrimSpace(text[min(4, len(text)):])
	}
	if class == 0 {
		class, subj, det = findEnhanced(text)
	}
	if c := code / 100; c == 2 || c == 4 || c == 5 {
		class = c
	}
	cat := enhancedCategory(class, subj, det)
	if cat == CategoryOther || cat == CategoryPolicy || cat == CategoryTransient {
		if tc := textCategory(strings.ToLower(text)); tc != CategoryOther {
			cat = tc
		}
	}
	if code == 421 && cat != CategoryRateLimited && cat != CategoryGreylisted {
		cat = CategoryTransient
	}
	var r Classification
	r.Category = cat
	badAddr := cat == CategoryBadMailbox || cat == CategoryBadDomain || cat == CategoryBadSyntax || cat == CategoryMailboxDisabled
	switch class {
	case 2:
		r.Kind, r.Category = KindDelivered, CategoryDelivered
	case 4:
		r.Kind = KindDeferred
		if cat == CategoryMailboxFull || cat == CategoryMailboxDisabled {
			r.Kind = KindSoftBounce
		}
	case 5:
		r.Kind = KindHardBounce
		if cat == CategoryMailboxFull {
			r.Kind = KindSoftBounce
		}
		r.SuppressRecipient = badAddr
	default:
		switch {
		case badAddr:
			r.Kind, r.SuppressRecipient = KindHardBounce, true
		case cat == CategoryMailboxFull:
			r.Kind = KindSoftBounce
		default:
			r.Kind = KindDeferred
		}
	}
	return r
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseEnhanced parses "class.subject.detail" (RFC 3463: class 2, 4 or 5,
// subject and detail of 1 to 3 digits); it returns class 0 when s is not
// one.
func parseEnhanced(s string) (class, subject, detail int) {
	s = strings.TrimSpace(s)
	a, rest, ok1 := strings.Cut(s, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || len(a) != 1 || len(b) < 1 || len(b) > 3 || len(c) < 1 || len(c) > 3 || !isDigits(a+b+c) {
		return 0, 0, 0
	}
	class = int(a[0] - '0')
	if class != 2 && class != 4 && class != 5 {
		return 0, 0, 0
	}
	subject, _ = strconv.Atoi(b)
	detail, _ = strconv.Atoi(c)
	return class, subject, detail
}

// findEnhanced finds the first enhanced status code in text that stands
// as a word of its own.
func findEnhanced(text string) (class, subject, detail int) {
	for i := 0; i+5 <= len(text); i++ {
		ch := text[i]
		if (ch != '2' && ch != '4' && ch != '5') || text[i+1] != '.' || (i > 0 && !isSep(text[i-1])) {
			continue
		}
		j := i + 2
		for j < len(text) && !isSep(text[j]) {
			j++
		}
		if cl, s, d := parseEnhanced(strings.TrimRight(text[i:j], ".,;:")); cl != 0 {
			return cl, s, d
		}
	}
	return 0, 0, 0
}

func isSep(c byte) bool {
	return c == ' ' || c == '\t' || c == '-' || c == '(' || c == '[' || c == '#' || c == '"' || c == '\'' || c == ';' || c == ',' || c == '\r' || c == '\n'
}

func enhancedCategory(class, subj, det int) Category {
	if class == 0 {
		return CategoryOther
	}
	switch subj {
	case 1:
		switch det {
		case 1, 6:
			return CategoryBadMailbox
		case 2, 10:
			return CategoryBadDomain
		case 3:
			return CategoryBadSyntax
		}
	case 2:
		switch det {
		case 1:
			return CategoryMailboxDisabled
		case 2:
			return CategoryMailboxFull
		case 3:
			return CategoryTooLarge
		}
	case 3:
		if det == 4 {
			return CategoryTooLarge
		}
		return CategoryTransient
	case 4:
		if det == 4 && class == 5 {
			return CategoryBadDomain
		}
		return CategoryTransient
	case 7:
		switch {
		case det >= 20 && det <= 27:
			return CategoryAuth
		case det == 28:
			return CategoryRateLimited
		}
		return CategoryPolicy
	}
	return CategoryOther
}

// textRules map well-known reply texts to categories; the first rule
// with a matching phrase wins, so the more specific come first.
var textRules = []struct {
	cat     Category
	phrases []string
}{
	{CategoryGreylisted, []string{"greylist", "graylist", "grey-list", "gray-list", "greylisted"}},
	{CategoryRateLimited, []string{"rate limit", "ratelimit", "rate-limit", "too many", "unusual rate", "throttl",
		"exceeded the maximum", "sending limit", "try again later", "temporarily deferred", "slow down"}},
	{CategoryMailboxFull, []string{"mailbox full", "mailbox is full", "over quota", "quota exceeded", "exceeded storage",
		"exceeds quota", "insufficient storage", "mailbox size limit", "storage limit", "out of storage", "quota"}},
	{CategoryMailboxDisabled, []string{"account disabled", "account has been disabled", "account is disabled",
		"mailbox disabled", "mailbox is disabled", "account inactive", "inactive account", "deactivated", "suspended"}},
	{CategoryBadMailbox, []string{"user unknown", "unknown user", "no such user", "no such mailbox", "no such recipient",
		"unknown recipient", "recipient unknown", "invalid recipient", "invalid mailbox", "mailbox not found",
		"mailbox unavailable", "address not found", "does not exist", "doesn't exist", "not a valid mailbox",
		"no mailbox here", "user not found", "recipient not found", "addressee unknown", "unrouteable address",
		"address rejected", "undeliverable address", "no longer available"}},
	{CategoryBadDomain, []string{"domain not found", "host not found", "no mx", "domain does not exist",
		"unknown domain", "no such domain", "nxdomain", "null mx"}},
	{CategoryAuth, []string{"dmarc", "spf", "dkim", "not authenticated", "authentication", "reverse dns", "ptr record"}},
	{CategoryBlocked, []string{"blocked", "blacklist", "blocklist", "block list", "listed", "spamhaus", "rbl",
		"poor reputation", "bad reputation", "banned", "not allowed to send"}},
	{CategorySpam, []string{"spam", "junk", "unsolicited", "content rejected", "message rejected", "suspicious"}},
	{CategoryTooLarge, []string{"too large", "too big", "size limit", "exceeds size"}},
	{CategoryTransient, []string{"timeout", "timed out", "connection refused", "connection reset", "temporar", "try again"}},
}

func textCategory(lower string) Category {
	if lower == "" {
		return CategoryOther
	}
	for _, r := range textRules {
		for _, p := range r.phrases {
			if strings.Contains(lower, p) {
				return r.cat
			}
		}
	}
	return CategoryOther
}
