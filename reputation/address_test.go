package reputation_test

import (
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"jane@example.com":             "jane@example.com",
		"Jane@Example.COM":             "jane@example.com",
		" <jane+news@example.com> ":    "jane@example.com",
		"jane@example.com.":            "jane@example.com",
		"Jane.Doe+x@gmail.com":         "janedoe@gmail.com",
		"j.a.n.e.doe@googlemail.com":   "janedoe@gmail.com",
		"jane.doe@workspace.example":   "jane.doe@workspace.example",
		"+tagonly@example.com":         "+tagonly@example.com",
		"yahoo-base-keyword@yahoo.com": "yahoo-base-keyword@yahoo.com",
		"\"quoted@local\"@example.com": "\"quoted@local\"@example.com",
		"Jane.Doe+a+b@outlook.com":     "jane.doe@outlook.com",
	} {
		got, err := reputation.NormalizeAddress(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, "NormalizeAddress(%q)", in)
		again, err := reputation.NormalizeAddress(got)
		require.NoError(t, err)
		assert.Equal(t, got, again, "normalization is idempotent")
	}
	for _, bad := range []string{"", "jane", "@example.com", "jane@", "ja ne@example.com", "a@b@c", "jane@exa\x00mple.com", ".+x@gmail.com", "0@..", "a@b..c", "a@.b"} {
		_, err := reputation.NormalizeAddress(bad)
		assert.ErrorIs(t, err, reputation.ErrInvalidAddress, "NormalizeAddress(%q)", bad)
	}
}

func FuzzNormalizeAddress(f *testing.F) {
	f.Add("Jane.Doe+x@gmail.com")
	f.Add("<a@b>")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := reputation.NormalizeAddress(s)
		slow, serr := reputation.NormalizeSlow(s)
		if n != slow || (err == nil) != (serr == nil) {
			t.Fatalf("fast path %q, %v; slow path %q, %v", n, err, slow, serr)
		}
		if err != nil {
			return
		}
		again, err := reputation.NormalizeAddress(n)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, n, again, err)
		}
	})
}

func TestSuppressionEncoding(t *testing.T) {
	now := time.UnixMilli(1741000000123).UTC()
	for _, s := range []reputation.Suppression{
		{Address: "a@example.com", Reason: reputation.ReasonHardBounce, Detail: "550 5.1.1 user unknown", Created: now},
		{Address: "b@example.com", Reason: reputation.ReasonManual, Created: now, Expires: now.Add(time.Hour)},
		{},
	} {
		b, err := s.MarshalBinary()
		require.NoError(t, err)
		var got reputation.Suppression
		require.NoError(t, got.UnmarshalBinary(b))
		assert.Equal(t, s, got)
		for i := range b {
			var x reputation.Suppression
			assert.Error(t, x.UnmarshalBinary(b[:i]), "a record cut at %d bytes must not decode", i)
		}
		assert.ErrorIs(t, got.UnmarshalBinary(append(b, 0)), reputation.ErrMalformed, "trailing bytes")
	}
	c := reputation.Counts{Delivered: 1, Deferred: 2, SoftBounce: 3, HardBounce: 4, Complaint: -5}
	b, _ := c.MarshalBinary()
	var got reputation.Counts
	require.NoError(t, got.UnmarshalBinary(b))
	assert.Equal(t, c, got)
	assert.ErrorIs(t, got.UnmarshalBinary(b[:39]), reputation.ErrMalformed)
}
