package delivery

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// normalizeRef is the byte-at-a-time definition of normState.normalize.
func normalizeRef(s *normState, dst, p []byte, stuff bool) []byte {
	if !s.start {
		s.start, s.bol = true, true
	}
	for _, b := range p {
		if s.cr {
			s.cr = false
			dst = append(dst, '\r', '\n')
			s.bol = true
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\r':
			s.cr = true
			continue
		case '\n':
			dst = append(dst, '\r', '\n')
			s.bol = true
			continue
		}
		if s.bol && b == '.' && stuff {
			dst = append(dst, '.')
		}
		s.bol = false
		dst = append(dst, b)
	}
	return dst
}

// FuzzNormalize checks the line-at-a-time normaliser against the
// byte-at-a-time definition, with the input cut into chunks at cut.
func FuzzNormalize(f *testing.F) {
	for _, seed := range []string{"", "a\r\nb", ".\r\n.\n..\r.", "\r\r\n\n\r", "x.y\n.z\r\n\r\n.\r\n", "line\rbare cr\nbare lf\r\n"} {
		f.Add([]byte(seed), uint8(3), true)
		f.Add([]byte(seed), uint8(1), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint8, stuff bool) {
		var a, b normState
		var got, want []byte
		n := int(cut%16) + 1
		for p := in; len(p) > 0; {
			k := min(n, len(p))
			got = a.normalize(got, p[:k], stuff)
			want = normalizeRef(&b, want, p[:k], stuff)
			p = p[k:]
		}
		require.Equal(t, want, got)
		require.Equal(t, b, a)
	})
}

func TestNormalizeLines(t *testing.T) {
	var s normState
	got := s.normalize(nil, []byte(".a\nb\r\n.c\rd\r"), true)
	require.Equal(t, "..a\r\nb\r\n..c\r\nd", string(got))
	require.True(t, s.cr, "a trailing CR waits for the next byte")
	require.True(t, bytes.Equal(s.normalize(nil, []byte("\n"), true), []byte("\r\n")))
}
