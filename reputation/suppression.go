package reputation

// A Suppression entry is stored by backends in the binary encoding of
// [Suppression.MarshalBinary]:
//
//	byte 0       format version, 1
//	byte 1       Reason
//	bytes 2-9    Created, Unix milliseconds, int64 little-endian
//	bytes 10-17  Expires, Unix milliseconds, int64 little-endian; 0 = never
//	uvarint n, n bytes   Address (normalized)
//	uvarint n, n bytes   Detail
//
// Nothing may follow. Unknown versions and short or long records decode to
// an error matching ErrMalformed.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Reason says why an address is suppressed.
type Reason uint8

// The suppression reasons. The zero Reason is invalid.
const (
	// ReasonHardBounce: a permanent failure about the address (5.1.1 …).
	ReasonHardBounce Reason = iota + 1
	// ReasonSoftBounce: soft bounces on several days.
	ReasonSoftBounce
	// ReasonComplaint: the recipient reported mail as spam.
	ReasonComplaint
	// ReasonUnsubscribe: the recipient unsubscribed.
	ReasonUnsubscribe
	// ReasonManual: an operator added the address.
	ReasonManual
)

var reasonNames = [...]string{"", "hard-bounce", "soft-bounce", "complaint", "unsubscribe", "manual"}

// String returns the reason's name, such as "complaint".
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Suppression is one entry of the suppression list: an address that must
// not be mailed, why, and until when.
type Suppression struct {
	// Address is the normalized address (see [NormalizeAddress]).
	Address string
	// Reason says why.
	Reason Reason
	// Detail is free text, such as the bounce "550 5.1.1 user unknown".
	Detail string
	// Created is when the entry was added.
	Created time.Time
	// Expires is when the entry stops applying; zero means never.
	Expires time.Time
}

// Active reports whether s applies at now.
func (s Suppression) Active(now time.Time) bool {
	return s.Expires.IsZero() || now.Before(s.Expires)
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// MarshalBinary encodes s in the layout at the top of this file.
func (s Suppression) MarshalBinary() ([]byte, error) {
	b := make([]byte, 18, 18+2*binary.MaxVarintLen16+len(s.Address)+len(s.Detail))
	b[0] = 1
	b[1] = byte(s.Reason)
	binary.LittleEndian.PutUint64(b[2:], uint64(unixMilli(s.Created)))
	binary.LittleEndian.PutUint64(b[10:], uint64(unixMilli(s.Expires)))
	b = binary.AppendUvarint(b, uint64(len(s.Address)))
	b = append(b, s.Address...)
	b = binary.AppendUvarint(b, uint64(len(s.Detail)))
	b = append(b, s.Detail...)
	return b, nil
}

// UnmarshalBinary decodes the encoding of [Suppression.MarshalBinary].
func (s *Suppression) UnmarshalBinary(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("%w: suppression entry: %s", ErrMalformed, what) }
	if len(b) < 18 {
		return bad("short")
	}
	if b[0] != 1 {
		return bad(fmt.Sprintf("version %d", b[0]))
	}
	var out Suppression
	out.Reason = Reason(b[1])
	out.Created = fromUnixMilli(int64(binary.LittleEndian.Uint64(b[2:])))
	out.Expires = fromUnixMilli(int64(binary.LittleEndian.Uint64(b[10:])))
	rest := b[18:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return "", false
		}
		v := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return v, true
	}
	var ok bool
	if out.Address, ok = str(); !ok {
		return bad("address")
	}
	if out.Detail, ok = str(); !ok {
		return bad("detail")
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	*s = out
	return nil
}

// Suppress adds s to the suppression list, replacing any entry for the
// same address. s.Address is normalized first; a zero Created becomes now.
func (t *Tracker) Suppress(ctx context.Context, s Suppression) error {
	if err := t.check(); err != nil {
		return err
	}
	addr, err := t.normalize(s.Address)
	if err != nil {
		return err
	}
	s.Address = addr
	if s.Reason == 0 || int(s.Reason) >= len(reasonNames) {
		return fmt.Errorf("reputation: suppress %s: %w: reason %d", addr, ErrInvalid, s.Reason)
	}
	if s.Created.IsZero() {
		s.Created = t.now()
	}
	if err := t.b.PutSuppression(ctx, s); err != nil {
		return fmt.Errorf("reputation: suppress %s: %w", addr, err)
	}
	return nil
}

// Unsuppress removes the entry for addr (normalized first). If there is
// none, it returns an error for which errors.Is(err, ErrNotFound).
func (t *Tracker) Unsuppress(ctx context.Context, addr string) error {
	if err := t.check(); err != nil {
		return err
	}
	n, err := t.normalize(addr)
	if err != nil {
		return err
	}
	if err := t.b.DeleteSuppression(ctx, n); err != nil {
		return fmt.Errorf("reputation: unsuppress %s: %w", n, err)
	}
	return nil
}

// Suppressed returns the active entry for addr (normalized first). If
// there is none, or it has expired, it returns an error for which
// errors.Is(err, ErrNotFound); an expired entry is then removed.
func (t *Tracker) Suppressed(ctx context.Context, addr string) (Suppression, error) {
	if err := t.check(); err != nil {
		return Suppression{}, err
	}
	n, err := t.normalize(addr)
	if err != nil {
		return Suppression{}, err
	}
	return t.suppressed(ctx, n)
}

func (t *Tracker) suppressed(ctx context.Context, n string) (Suppression, error) {
	return t.suppressedAt(ctx, n, t.now())
}

func (t *Tracker) suppressedAt(ctx context.Context, n string, now time.Time) (Suppression, error) {
	s, err := t.b.GetSuppression(ctx, n)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Suppression{}, err
		}
		return Suppression{}, fmt.Errorf("reputation: check %s: %w", n, err)
	}
	if !s.Active(now) {
		return Suppression{}, fmt.Errorf("reputation: check %s: %w", n, ErrNotFound)
	}
	return s, nil
}

// ListOptions selects a page of [Tracker.Suppressions].
type ListOptions struct {
	// After is the normalized address to start after; the default is ""
	// (from the first address).
	After string
	// Limit is the maximum number of entries; the default is 100.
	Limit int
	// IncludeExpired also returns entries past their expiry; the default
	// is false.
	IncludeExpired bool
}

// Suppressions returns a page of the suppression list in address order.
// To page, pass the last address returned as After.
func (t *Tracker) Suppressions(ctx context.Context, o *ListOptions) ([]Suppression, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	var lo ListOptions
	if o != nil {
		lo = *o
	}
	if lo.Limit <= 0 {
		lo.Limit = 100
	}
	now := t.now()
	var out []Suppression
	after := lo.After
	for len(out) < lo.Limit {
		want := lo.Limit - len(out)
		page, err := t.b.ListSuppressions(ctx, after, want)
		if err != nil {
			return nil, fmt.Errorf("reputation: list suppressions: %w", err)
		}
		for _, s := range page {
			if lo.IncludeExpired || s.Active(now) {
				out = append(out, s)
			}
		}
		if len(page) < want {
			break
		}
		after = page[len(page)-1].Address
	}
	return out, nil
}

// PurgeExpired removes every expired entry from the suppression list and
// returns how many it removed. An entry replaced concurrently by an active
// one may be removed too; the caller that replaced it can Suppress again.
func (t *Tracker) PurgeExpired(ctx context.Context) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	now := t.now()
	n, after := 0, ""
	for {
		page, err := t.b.ListSuppressions(ctx, after, 500)
		if err != nil {
			return n, fmt.Errorf("reputation: purge suppressions: %w", err)
		}
		for _, s := range page {
			if s.Active(now) {
				continue
			}
			if err := t.b.DeleteSuppression(ctx, s.Address); err != nil && !errors.Is(err, ErrNotFound) {
				return n, fmt.Errorf("reputation: purge %s: %w", s.Address, err)
			}
			n++
		}
		if len(page) < 500 {
			return n, nil
		}
		after = page[len(page)-1].Address
	}
}
