package mailparse

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// The header decoding policy.
//
// Every header text that reaches metadata or the index (subjects, display
// names, addresses, indexed header values, file names) goes through
// [DecodeHeader], so mailbox and index agree on it:
//
//  1. Raw bytes become valid UTF-8 (headerToUTF8): raw UTF-8 is kept
//     (RFC 6532); other 8-bit text is decoded with the charset the message
//     or part declares, or else as windows-1252, as mail clients do.
//  2. RFC 2047 encoded words are decoded, tolerantly: a malformed word is
//     kept as text, an unknown charset is read as UTF-8 with the fallback,
//     and decoded bytes that are not valid UTF-8 get the fallback too.
//  3. Every control character (C0, DEL, C1; NUL, CR and LF included, also
//     when they came from an encoded word) and every space character
//     becomes a space; runs of spaces fold into one; the ends are trimmed.
//  4. The result is cut, at a character boundary, to [MaxValueBytes].

// MaxValueBytes bounds every decoded header text: a subject, a display
// name, an address, a message ID, an indexed header value, a file name.
const MaxValueBytes = 4096

// DecodeHeader decodes a raw header value under the policy above, with
// charset (the message's or part's declared charset, "" if none) as the
// first guess for raw 8-bit text. The result is valid UTF-8, has no
// control characters and is at most [MaxValueBytes] long.
func DecodeHeader(v, charset string) string {
	v = headerToUTF8(v, charset)
	if strings.Contains(v, "=?") {
		if d, err := wordDecoder.DecodeHeader(v); err == nil {
			v = d
		}
	}
	return clean(v, MaxValueBytes)
}

// preclean makes a raw header value valid UTF-8 and turns its control
// characters into spaces, so that a structured parser (addresses, dates)
// sees no NUL, CR or LF.
func preclean(v, charset string) string {
	v = headerToUTF8(v, charset)
	if strings.IndexFunc(v, isCtlOrSpace) < 0 {
		return v
	}
	return strings.Map(func(r rune) rune {
		if isCtlOrSpace(r) {
			return ' '
		}
		return r
	}, v)
}

func isCtlOrSpace(r rune) bool {
	return r != ' ' && (unicode.IsControl(r) || unicode.IsSpace(r))
}

// clean applies steps 3 and 4 of the policy (with step 2's fallback for
// invalid UTF-8): control and space characters become one space, the ends
// are trimmed, and the result is at most max bytes of valid UTF-8.
func clean(s string, max int) string {
	s = fixUTF8([]byte(s))
	var b strings.Builder
	b.Grow(min(len(s), max))
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > max {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cleanBody makes body text valid UTF-8 without NUL bytes.
func cleanBody(s string) string {
	s = fixUTF8([]byte(s))
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

// Snippet returns the start of s with control and space characters folded
// into single spaces, at most n characters, valid UTF-8.
func Snippet(s string, n int) string {
	var b strings.Builder
	space := false
	count := 0
	for _, r := range fixUTF8([]byte(s)) {
		if count >= n {
			break
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			count++
			space = false
			if count >= n {
				break
			}
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// HTMLToText reduces an HTML document to its text with the tokenizer of
// golang.org/x/net/html: tags and comments are dropped, the contents of
// script, style, template and head elements are skipped, block elements
// and br become line breaks, table cells spaces, and character references
// are decoded. It is lenient: any input gives some text.
func HTMLToText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	z := html.NewTokenizer(strings.NewReader(s))
	skip := "" // the element whose content is skipped
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String()
		case html.TextToken:
			if skip == "" {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if skip != "" {
				if skip == "head" && tag == "body" {
					skip = ""
				}
				continue
			}
			switch tag {
			case "script", "style", "template", "head", "title", "noscript":
				if tt == html.StartTagToken {
					skip = tag
				}
			case "td", "th":
				b.WriteByte(' ')
			default:
				if blockTags[tag] {
					b.WriteByte('\n')
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if skip != "" {
				if tag == skip {
					skip = ""
				}
				continue
			}
			if blockTags[tag] && tag != "br" {
				b.WriteByte('\n')
			}
		}
	}
}

var blockTags = map[string]bool{
	"address": true, "article": true, "aside": true, "blockquote": true, "br": true, "dd": true, "div": true,
	"dl": true, "dt": true, "fieldset": true, "figure": true, "footer": true, "form": true, "h1": true,
	"h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "header": true, "hr": true, "li": true,
	"main": true, "nav": true, "ol": true, "p": true, "pre": true, "section": true, "table": true,
	"tr": true, "ul": true,
}
