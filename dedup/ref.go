package dedup

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Hash is the SHA-256 digest of a blob's bytes: the blob's name in every
// backend. Backends derive every path and object key from a Hash (in
// lowercase hexadecimal), never from anything a message contains.
type Hash [32]byte

// String returns h as 64 lowercase hexadecimal digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses 64 hexadecimal digits (either case) as a [Hash]. Bad
// input is an error for which errors.Is(err, ErrInvalidRef).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: hash %q: want %d hex digits", ErrInvalidRef, s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: hash %q: %v", ErrInvalidRef, s, err)
	}
	return h, nil
}

// Ref names one blob: its SHA-256 hash and its length in bytes. The zero
// Ref names no blob.
type Ref struct {
	// Hash is the SHA-256 of the blob's bytes.
	Hash Hash
	// Size is the blob's length in bytes.
	Size int64
}

const refPrefix = "sha256-"

// String returns r as "sha256-<64 lowercase hex digits>-<decimal size>",
// which contains only [a-z0-9-] and so is safe in keys, paths and headers.
func (r Ref) String() string {
	var b strings.Builder
	b.Grow(len(refPrefix) + 64 + 1 + 20)
	b.WriteString(refPrefix)
	b.WriteString(r.Hash.String())
	b.WriteByte('-')
	b.WriteString(strconv.FormatInt(r.Size, 10))
	return b.String()
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r == Ref{} }

// ParseRef parses the form [Ref.String] returns. Bad input is an error for
// which errors.Is(err, ErrInvalidRef).
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, refPrefix)
	if !ok || len(rest) < 64+2 || rest[64] != '-' {
		return Ref{}, fmt.Errorf("%w: %q", ErrInvalidRef, s)
	}
	h, err := ParseHash(rest[:64])
	if err != nil {
		return Ref{}, err
	}
	num := rest[65:]
	// Only the canonical decimal form: no sign, no leading zeros.
	if num == "" || (len(num) > 1 && num[0] == '0') || num[0] < '0' || num[0] > '9' {
		return Ref{}, fmt.Errorf("%w: size in %q", ErrInvalidRef, s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return Ref{}, fmt.Errorf("%w: size in %q", ErrInvalidRef, s)
	}
	if strings.ToLower(rest[:64]) != rest[:64] {
		return Ref{}, fmt.Errorf("%w: %q: hash must be lowercase", ErrInvalidRef, s)
	}
	return Ref{Hash: h, Size: n}, nil
}

// MarshalText implements encoding.TextMarshaler with [Ref.String].
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseRef].
func (r *Ref) UnmarshalText(b []byte) error {
	v, err := ParseRef(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
