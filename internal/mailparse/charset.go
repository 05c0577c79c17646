package mailparse

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// Charsets.
//
// This file is the one place where the module sets up charset decoding.
// Nothing here touches a global of another package: go-message's
// message.CharsetReader is never set and its charset package is never
// imported (it sets that global in init), so what a message decodes to does
// not depend on which other packages a binary links.
//
// Names are looked up in the WHATWG encoding index first (htmlindex: the
// labels browsers and mail clients accept, with their aliases; it maps
// ISO-8859-1 to windows-1252, a superset, as they do), then in the IANA
// MIME index. UTF-8, US-ASCII and an empty name mean "UTF-8, with the
// fallback for invalid bytes" (see [ToUTF8]).

// fallback decodes bytes that are not valid UTF-8 and come with no usable
// charset: windows-1252, the superset of ISO-8859-1 that mail clients and
// browsers assume for unlabeled 8-bit text.
var fallback = charmap.Windows1252

// lookup returns the encoding for a charset name; nil for UTF-8 and its
// look-alikes, ok false for an unknown name.
func lookup(charset string) (enc encoding.Encoding, ok bool) {
	name := strings.ToLower(strings.Trim(strings.TrimSpace(charset), `"'`))
	switch name {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", "unicode-1-1-utf-8":
		return nil, true
	}
	if e, err := htmlindex.Get(name); err == nil && e != nil {
		if e == encoding.Nop {
			return nil, true
		}
		return e, true
	}
	if e, err := ianaindex.MIME.Encoding(name); err == nil && e != nil {
		return e, true
	}
	return nil, false
}

// KnownCharset reports whether charset names an encoding [CharsetReader]
// can decode.
func KnownCharset(charset string) bool {
	_, ok := lookup(charset)
	return ok
}

// CharsetReader returns a reader that converts input from charset to
// UTF-8. Bytes that are not valid in a UTF-8 input are decoded as
// windows-1252 (see [ToUTF8]). For a charset it does not know it returns an
// error. Its signature is that of mime.WordDecoder.CharsetReader and
// go-message's CharsetReader, so it can be passed to either explicitly.
func CharsetReader(charset string, input io.Reader) (io.Reader, error) {
	enc, ok := lookup(charset)
	if !ok {
		return nil, fmt.Errorf("mailparse: unknown charset %q", charset)
	}
	if enc == nil {
		b, err := io.ReadAll(input)
		if err != nil {
			return nil, err
		}
		return strings.NewReader(fixUTF8(b)), nil
	}
	return enc.NewDecoder().Reader(input), nil
}

// ToUTF8 decodes text declared to be in charset and returns valid UTF-8.
// A known charset other than UTF-8 decodes the whole text. For UTF-8,
// US-ASCII, an empty or an unknown charset, valid UTF-8 sequences are kept
// and each byte that is not part of one is decoded as windows-1252, as
// mail clients do with unlabeled 8-bit text; known reports whether the
// charset was known.
func ToUTF8(b []byte, charset string) (s string, known bool) {
	enc, known := lookup(charset)
	if enc != nil {
		if out, err := enc.NewDecoder().Bytes(b); err == nil {
			return fixUTF8(out), true
		}
	}
	return fixUTF8(b), known
}

// fixUTF8 returns b with every byte that does not belong to a valid UTF-8
// sequence decoded as windows-1252.
func fixUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			sb.WriteRune(fallback.DecodeByte(b[0]))
			b = b[1:]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

// headerToUTF8 makes a raw header value valid UTF-8 before any other
// decoding: raw UTF-8 is kept (RFC 6532); otherwise the text is decoded
// with the declared charset of the message or part when that is known and
// not UTF-8, else byte by byte with the fallback (see [ToUTF8]).
func headerToUTF8(v string, charset string) string {
	if utf8.ValidString(v) {
		return v
	}
	s, _ := ToUTF8([]byte(v), charset)
	return s
}

// wordDecoder decodes RFC 2047 encoded words. It never fails on a charset:
// an unknown one is treated like UTF-8 with the fallback, so the words
// around it still decode. A malformed word is kept as text (mime's
// behaviour).
var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	if r, err := CharsetReader(charset, input); err == nil {
		return r, nil
	}
	b, err := io.ReadAll(input)
	if err != nil {
		return nil, err
	}
	return bytes.NewReader([]byte(fixUTF8(b))), nil
}}
