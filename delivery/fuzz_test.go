package delivery

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// ruleHolds is the smuggling rule written the obvious way: no NUL, every
// LF after a CR, every CR before an LF.
func ruleHolds(b []byte) bool {
	for i, c := range b {
		switch {
		case c == 0:
			return false
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return false
		case c == '\r' && (i == len(b)-1 || b[i+1] != '\n'):
			return false
		}
	}
	return true
}

// FuzzDataChecker checks that the streaming checker agrees with ruleHolds
// whatever the read sizes, passes accepted data through unchanged, and
// keeps every captured field inside the data at its offsets.
func FuzzDataChecker(f *testing.F) {
	for _, s := range []string{
		testMsg,
		"From: a@b.c\r\n\r\nhi\n.\r\n",
		"a\r.\r",
		"\r\n",
		"X: y\r\n\tz\r\nAuthentication-Results: mx.example.net; spf=pass\r\n\r\n",
		"From: a\x00\r\n",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var r io.Reader = bytes.NewReader(data)
		if chunk%2 == 1 {
			r = iotest.OneByteReader(r)
		} else {
			r = io.LimitReader(r, int64(len(data))) // multi-byte reads
		}
		c := newDataChecker(r, 64, 1<<10, 20)
		out, err := io.ReadAll(c)
		if ruleErr := !ruleHolds(data); ruleErr {
			if err == nil {
				t.Fatalf("data breaking the rule accepted: %q", data)
			}
			if !errors.Is(err, ErrBareLineEnding) && !errors.Is(err, ErrNUL) && !errors.Is(err, ErrHeaderTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrHeaderTooLarge) {
				t.Fatalf("data keeping the rule refused: %v: %q", err, data)
			}
			return
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("checker changed the data")
		}
		for _, h := range append(c.from, c.authRes...) {
			if h.start < 0 || h.end > int64(len(data)) || !bytes.Equal(data[h.start:h.end], h.raw) {
				t.Fatalf("captured field %q does not match data[%d:%d]", h.raw, h.start, h.end)
			}
		}
	})
}

// FuzzValidate checks that no accepted address or EHLO name holds a
// control character, and that validation never panics.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		"alice@example.org", "", "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "\"a b\"@example.org",
		"a\r\n@example.org", "a\x00@b.c", "mx.example.net", "[127.0.0.1]", "a..b", "-a.b", "é@bücher.de",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, err := range []error{ValidateAddress(s), ValidateHelo(s)} {
			if err != nil {
				continue
			}
			for i := 0; i < len(s); i++ {
				if s[i] < 0x20 || s[i] == 0x7f {
					t.Fatalf("accepted %q with a control character", s)
				}
			}
		}
		if ValidateHelo(s) == nil && s == "" {
			t.Fatalf("accepted an empty EHLO name")
		}
	})
}
