package mailbricks

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ErrInvalidUser is the error, wrapped, for a [UserID] that is empty, longer
// than [MaxUserIDLen] bytes, or contains NUL, CR or LF.
var ErrInvalidUser = errors.New("mailbricks: invalid user ID")

// ErrInvalidMessageID is the error, wrapped, for text that is not a
// canonical UUID of version 7.
var ErrInvalidMessageID = errors.New("mailbricks: invalid message ID")

// MaxUserIDLen is the maximum length of a [UserID] in bytes.
const MaxUserIDLen = 255

// UserID identifies a mailbox owner. All per-user data is partitioned by it.
//
// A valid UserID is 1 to [MaxUserIDLen] bytes long and contains no NUL, CR or
// LF byte, so it can be embedded in storage keys, log lines and protocol
// text without escaping. Its content is otherwise opaque: an address, an
// account number or a UUID all work. Blocks validate UserIDs at their entry
// points and reject invalid ones with an error wrapping [ErrInvalidUser].
type UserID string

// ParseUserID returns s as a [UserID] after validating it. If s is not a
// valid UserID, the error wraps [ErrInvalidUser].
func ParseUserID(s string) (UserID, error) {
	u := UserID(s)
	if err := u.Validate(); err != nil {
		return "", err
	}
	return u, nil
}

// Validate reports whether u is a valid [UserID]. If it is not, the error
// wraps [ErrInvalidUser].
func (u UserID) Validate() error {
	switch {
	case len(u) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidUser)
	case len(u) > MaxUserIDLen:
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidUser, len(u), MaxUserIDLen)
	}
	for i := 0; i < len(u); i++ {
		switch u[i] {
		case 0:
			return fmt.Errorf("%w: NUL byte at offset %d", ErrInvalidUser, i)
		case '\r':
			return fmt.Errorf("%w: CR byte at offset %d", ErrInvalidUser, i)
		case '\n':
			return fmt.Errorf("%w: LF byte at offset %d", ErrInvalidUser, i)
		}
	}
	return nil
}

// MessageID identifies a message. It is a UUID of version 7 (RFC 9562): the
// first 48 bits are the creation time in Unix milliseconds, big-endian, and
// the rest are a sub-millisecond sequence and random bits.
//
// Because the time comes first, comparing MessageIDs bytewise (as storage
// keys are compared) orders them by creation time, so a user's newest mail
// is at the end of their key range. IDs made by [NewMessageID] in one
// process are strictly increasing.
//
// The zero MessageID is not a valid ID; it serves as "none".
type MessageID [16]byte

// NewMessageID returns a new [MessageID] for the current time. IDs returned
// by successive calls in one process are strictly increasing, even within
// one millisecond or when the wall clock steps back. It is safe for
// concurrent use.
//
// NewMessageID panics if the operating system's random source fails, as
// [crypto/rand.Read] does.
func NewMessageID() MessageID {
	// uuid.NewV7 keeps (milliseconds<<12 | sequence) strictly increasing
	// process-wide, so ordering does not depend on the random bits.
	return MessageID(uuid.Must(uuid.NewV7()))
}

// NewMessageIDAt returns a new [MessageID] whose time is t, truncated to the
// millisecond, for importing or backfilling mail received in the past. Its
// sub-millisecond and random bits make collisions as unlikely as for
// [NewMessageID] (74 bits vary), but IDs for the same millisecond are not
// ordered among themselves. Times before the Unix epoch or after the year
// 10889 are clamped to the representable range.
//
// NewMessageIDAt panics if the operating system's random source fails.
func NewMessageIDAt(t time.Time) MessageID {
	var m MessageID
	if _, err := rand.Read(m[6:]); err != nil {
		panic(fmt.Sprintf("mailbricks: reading random bits: %v", err))
	}
	ms := max(t.UnixMilli(), 0)
	ms = min(ms, 1<<48-1)
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ms))
	copy(m[:6], ts[2:])
	m[6] = 0x70 | m[6]&0x0f // version 7
	m[8] = 0x80 | m[8]&0x3f // RFC 9562 variant
	return m
}

// ParseMessageID parses the canonical text form of a UUID of version 7, as
// returned by [MessageID.String]: 36 characters, hexadecimal digits in
// either case, hyphens at offsets 8, 13, 18 and 23. Any other form (braces,
// a urn:uuid: prefix, no hyphens) or any other UUID version or variant
// yields an error wrapping [ErrInvalidMessageID].
func ParseMessageID(s string) (MessageID, error) {
	if len(s) != 36 {
		return MessageID{}, fmt.Errorf("%w: %q: want 36 characters", ErrInvalidMessageID, truncate(s))
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return MessageID{}, fmt.Errorf("%w: %q: %v", ErrInvalidMessageID, s, err)
	}
	if u.Variant() != uuid.RFC4122 || u.Version() != 7 {
		return MessageID{}, fmt.Errorf("%w: %q: not a UUID of version 7", ErrInvalidMessageID, s)
	}
	return MessageID(u), nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// String returns the canonical text form of m: 36 characters, lowercase
// hexadecimal with hyphens, such as "0190a6b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b".
func (m MessageID) String() string { return uuid.UUID(m).String() }

// Time returns the creation time recorded in m, with millisecond precision,
// in the local time zone.
func (m MessageID) Time() time.Time {
	var ts [8]byte
	copy(ts[2:], m[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ts[:])))
}

// Compare returns -1, 0 or +1 as m sorts before, equal to or after other.
// The order is bytewise, which is the order of creation time.
func (m MessageID) Compare(other MessageID) int { return bytes.Compare(m[:], other[:]) }

// IsZero reports whether m is the zero MessageID.
func (m MessageID) IsZero() bool { return m == MessageID{} }

// Bytes returns the 16 bytes of m in a new slice, the form used in storage
// keys.
func (m MessageID) Bytes() []byte { return m[:] }

// MarshalText implements [encoding.TextMarshaler]; the text is
// [MessageID.String].
func (m MessageID) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler]. It accepts what
// [ParseMessageID] accepts and, so that the zero MessageID round-trips, the
// nil UUID "00000000-0000-0000-0000-000000000000".
func (m *MessageID) UnmarshalText(text []byte) error {
	if string(text) == (MessageID{}).String() {
		*m = MessageID{}
		return nil
	}
	id, err := ParseMessageID(string(text))
	if err != nil {
		return err
	}
	*m = id
	return nil
}
