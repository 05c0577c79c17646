package mailbricks

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestUserIDValidate(t *testing.T) {
	valid := []string{
		"a",
		"alice@example.com",
		strings.Repeat("x", MaxUserIDLen),
		"user with spaces\tand tabs",
		"ünïcödé",
	}
	for _, s := range valid {
		u, err := ParseUserID(s)
		require.NoError(t, err, "%q is a valid user ID", s)
		require.Equal(t, UserID(s), u)
		require.NoError(t, u.Validate())
	}

	invalid := []string{
		"",
		strings.Repeat("x", MaxUserIDLen+1),
		"a\x00b",
		"a\rb",
		"a\nb",
		"\n",
		"alice\r\nRCPT TO:<bob@example.com>",
	}
	for _, s := range invalid {
		u, err := ParseUserID(s)
		require.ErrorIs(t, err, ErrInvalidUser, "%q must be rejected", s)
		require.Empty(t, u, "ParseUserID returns the zero UserID on error")
		require.ErrorIs(t, UserID(s).Validate(), ErrInvalidUser)
	}
}

func TestNewMessageIDIsVersion7(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	m := NewMessageID()
	after := time.Now()

	u := uuid.UUID(m)
	require.Equal(t, uuid.Version(7), u.Version())
	require.Equal(t, uuid.RFC4122, u.Variant())
	require.False(t, m.IsZero())
	// The sequence may push the time up to a few ms past now when IDs are
	// made faster than one per 256 ns, so allow slack on the upper side.
	require.False(t, m.Time().Before(before), "ID time %v before %v", m.Time(), before)
	require.False(t, m.Time().After(after.Add(time.Second)), "ID time %v after %v", m.Time(), after)
}

func TestNewMessageIDStrictlyIncreasing(t *testing.T) {
	const n = 100_000
	prev := NewMessageID()
	for i := range n {
		m := NewMessageID()
		if m.Compare(prev) <= 0 {
			t.Fatalf("ID %d (%s) does not sort after the previous ID (%s): IDs from one process must strictly increase", i, m, prev)
		}
		if string(m.Bytes()) <= string(prev.Bytes()) {
			t.Fatalf("ID %d: bytewise order disagrees with Compare", i)
		}
		prev = m
	}
}

func TestNewMessageIDConcurrentUnique(t *testing.T) {
	const workers, per = 8, 5_000
	out := make(chan []MessageID, workers)
	for range workers {
		go func() {
			ids := make([]MessageID, per)
			for i := range ids {
				ids[i] = NewMessageID()
			}
			out <- ids
		}()
	}
	seen := make(map[MessageID]struct{}, workers*per)
	for range workers {
		ids := <-out
		require.True(t, slices.IsSortedFunc(ids, MessageID.Compare), "IDs made by one goroutine must increase")
		for _, id := range ids {
			_, dup := seen[id]
			require.False(t, dup, "duplicate ID %s", id)
			seen[id] = struct{}{}
		}
	}
}

func TestNewMessageIDAt(t *testing.T) {
	at := time.Date(2009, 11, 10, 23, 0, 0, 123_456_789, time.UTC)
	a, b := NewMessageIDAt(at), NewMessageIDAt(at)
	require.NotEqual(t, a, b, "IDs for the same time must still differ")
	for _, m := range []MessageID{a, b} {
		require.Equal(t, uuid.Version(7), uuid.UUID(m).Version())
		require.Equal(t, uuid.RFC4122, uuid.UUID(m).Variant())
		require.True(t, m.Time().Equal(at.Truncate(time.Millisecond)), "got %v", m.Time())
		back, err := ParseMessageID(m.String())
		require.NoError(t, err)
		require.Equal(t, m, back)
	}

	later := NewMessageIDAt(at.Add(time.Millisecond))
	require.Negative(t, a.Compare(later), "an earlier time must sort first")
	require.Negative(t, b.Compare(later), "an earlier time must sort first")
	require.Negative(t, later.Compare(NewMessageID()), "2009 must sort before now")

	require.Equal(t, int64(0), NewMessageIDAt(time.Unix(-100, 0)).Time().UnixMilli(), "times before the epoch clamp to it")
	require.Equal(t, int64(1<<48-1), NewMessageIDAt(time.Unix(1<<50, 0)).Time().UnixMilli(), "times past 48 bits clamp")
}

func TestSortingByBytesIsSortingByTime(t *testing.T) {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []MessageID
	for i := range 1000 {
		// Spread over ~35 years so high and low timestamp bytes both vary.
		ids = append(ids, NewMessageIDAt(base.Add(-time.Duration(i*i)*1117*time.Second)))
	}
	slices.SortFunc(ids, MessageID.Compare)
	for i := 1; i < len(ids); i++ {
		require.False(t, ids[i].Time().Before(ids[i-1].Time()), "bytewise order must be time order at %d", i)
	}
}

func TestParseMessageID(t *testing.T) {
	const s = "0190a6b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b"
	m, err := ParseMessageID(s)
	require.NoError(t, err)
	require.Equal(t, s, m.String())
	require.Equal(t, int64(0x0190a6b23c4d), m.Time().UnixMilli())

	upper, err := ParseMessageID(strings.ToUpper(s))
	require.NoError(t, err, "hex digits are case-insensitive")
	require.Equal(t, m, upper)

	bad := []string{
		"",
		"not-a-uuid",
		"0190a6b2-3c4d-4e5f-8a6b-7c8d9e0f1a2b",          // version 4
		"0190a6b2-3c4d-1e5f-8a6b-7c8d9e0f1a2b",          // version 1
		"0190a6b2-3c4d-7e5f-ca6b-7c8d9e0f1a2b",          // Microsoft variant
		"00000000-0000-0000-0000-000000000000",          // nil UUID
		"0190a6b23c4d7e5f8a6b7c8d9e0f1a2b",              // no hyphens
		"{0190a6b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b}",        // braces
		"urn:uuid:0190a6b2-3c4d-7e5f-8a6b-7c8d9e0f1a2b", // URN
		"0190a6b2+3c4d-7e5f-8a6b-7c8d9e0f1a2b",          // wrong separator
		"0190a6b2-3c4d-7e5f-8a6b-7c8d9e0f1a2g",          // not hex
		strings.Repeat("0", 10_000),
	}
	for _, s := range bad {
		m, err := ParseMessageID(s)
		require.ErrorIs(t, err, ErrInvalidMessageID, "%.40q must be rejected", s)
		require.True(t, m.IsZero(), "ParseMessageID returns the zero ID on error")
	}
}

func TestMessageIDText(t *testing.T) {
	type doc struct {
		ID   MessageID
		None MessageID
	}
	in := doc{ID: NewMessageID()}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	require.Contains(t, string(data), `"`+in.ID.String()+`"`)
	var out doc
	require.NoError(t, json.Unmarshal(data, &out))
	require.Equal(t, in, out, "MessageID, including the zero ID, must round-trip through JSON")

	var m MessageID
	err = m.UnmarshalText([]byte("0190a6b2-3c4d-4e5f-8a6b-7c8d9e0f1a2b"))
	require.ErrorIs(t, err, ErrInvalidMessageID)
	require.True(t, errors.Is(json.Unmarshal([]byte(`{"ID":"x"}`), &out), ErrInvalidMessageID))
}

func TestMessageIDBytes(t *testing.T) {
	m := NewMessageID()
	b := m.Bytes()
	require.Len(t, b, 16)
	require.Equal(t, m[:], b)
	b[0] ^= 0xff
	require.NotEqual(t, m[:], b, "Bytes must return a copy")
	require.True(t, MessageID{}.IsZero())
	require.Zero(t, m.Compare(m))
}
