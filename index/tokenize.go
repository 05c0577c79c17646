package index

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// The tokenizer turns text into terms. It is the one analysis every
// backend and the query side share, so a term found in a document is the
// same byte string a query looks up.
//
// Segmentation follows the spirit of Unicode word segmentation (UAX #29)
// over Unicode classes rather than its full rule table:
//
//   - A word is a run of letters, digits, combining marks and connector
//     punctuation. A joiner ('.', '@', an apostrophe) between two word
//     characters keeps the word together, so "can't", "3.14",
//     "example.com" and "alice@example.com" are each one word.
//   - Han, Hiragana, Katakana and Hangul have no spaces between words; a
//     run of them becomes overlapping bigrams ("東京都" → "東京", "京都"),
//     each at its own position, and a run of one character becomes that
//     character.
//   - Everything else separates words.
//
// A word is folded: compatibility decomposition (NFKD), combining marks
// dropped (diacritic folding: "Café" → "cafe"), Unicode case folding
// ("Straße" → "strasse"), apostrophes removed ("can't" → "cant"). ASCII
// words, the common case, take a fast path that only lowercases.
//
// Address awareness: a word with '@' or '.' is also indexed by its parts,
// at the same position as the whole, so a phrase query around it still
// lines up: "alice.smith@mail.example.com" yields the whole address, the
// local part "alice.smith", the domain "mail.example.com", every domain
// suffix of two labels or more ("example.com"), and each label ("alice",
// "smith", "mail", "example", "com"). A query never needs the parts: it
// looks up the whole word, which is why [QueryTerms] does not expand.
//
// Terms longer than [MaxTermLen] bytes are cut to that length (at a
// character boundary), on the document and the query side alike. A field indexes at most [MaxFieldPositions] positions; the rest
// of a long body is not searchable (PostgreSQL's tsvector has the same
// kind of bound, 16,383 positions, so both backends agree).

// MaxTermLen is the longest term in bytes; longer terms are cut.
const MaxTermLen = 64

// MaxFieldPositions is the number of positions indexed per field of a
// document; tokens past it are ignored.
const MaxFieldPositions = 16000

// valueGap is the position gap between two values of one field (two
// addresses, two attachment names) so a phrase never spans both.
const valueGap = 8

type runeClass uint8

const (
	classOther runeClass = iota
	classWord
	classCJK
	classJoiner
)

// asciiClass is classify for ASCII, by table.
var asciiClass = func() (t [utf8.RuneSelf]runeClass) {
	for c := range utf8.RuneSelf {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
			t[c] = classWord
		case c == '.' || c == '@' || c == '\'':
			t[c] = classJoiner
		}
	}
	return t
}()

func classify(r rune) runeClass {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case r == '’':
		return classJoiner
	case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
		return classCJK
	case unicode.In(r, unicode.L, unicode.N, unicode.M, unicode.Pc):
		return classWord
	}
	return classOther
}

// A tokenizer holds reusable buffers; it is not safe for concurrent use.
type tokenizer struct {
	buf   []byte
	parts []string
	runes []runeSpan
}

type runeSpan struct {
	start, end int
}

// emitFunc receives one term. term is valid only during the call. start
// and end are the byte offsets of the source word in the text.
type emitFunc func(term []byte, pos, start, end int)

// tokenize calls fn for each term of s, numbering positions from pos, and
// returns the position after the last token. With expand, address-like
// words also yield their parts. It stops at limit positions.
func (t *tokenizer) tokenize(s string, pos, limit int, expand bool, fn emitFunc) int {
	i := 0
	for i < len(s) && pos < limit {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		switch classify(r) {
		case classWord:
			end := wordEnd(s, i)
			t.word(s[i:end], pos, i, expand, fn)
			pos++
			i = end
		case classCJK:
			i, pos = t.cjk(s, i, pos, limit, fn)
		default:
			i += size
		}
	}
	return pos
}

// wordEnd returns the end of the word starting at i.
func wordEnd(s string, i int) int {
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf && asciiClass[c] == classWord {
			i++
			continue
		}
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		switch classify(r) {
		case classWord:
			i += size
			continue
		case classJoiner:
			if j := i + size; j < len(s) {
				r2, _ := utf8.DecodeRuneInString(s[j:])
				if classify(r2) == classWord {
					i = j
					continue
				}
			}
		}
		return i
	}
	return i
}

// cjk emits the bigrams of the CJK run starting at i and returns its end.
// Combining marks inside the run stay with the character before them. It
// returns the end of the run and the next position.
func (t *tokenizer) cjk(s string, i, pos, limit int, fn emitFunc) (int, int) {
	t.runes = t.runes[:0]
	j := i
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		c := classify(r)
		if c == classCJK {
			t.runes = append(t.runes, runeSpan{j, j + size})
		} else if unicode.Is(unicode.M, r) && len(t.runes) > 0 {
			t.runes[len(t.runes)-1].end = j + size
		} else {
			break
		}
		j += size
	}
	rs := t.runes
	if len(rs) == 1 {
		t.emitFolded(s[rs[0].start:rs[0].end], pos, rs[0].start, rs[0].end, fn)
		return j, pos + 1
	}
	for k := 0; k+1 < len(rs) && pos < limit; k++ {
		t.emitFolded(s[rs[k].start:rs[k+1].end], pos, rs[k].start, rs[k+1].end, fn)
		pos++
	}
	return j, pos
}

// word emits the folded word w (found at byte offset off) and, with
// expand, its address parts.
func (t *tokenizer) word(w string, pos, off int, expand bool, fn emitFunc) {
	t.emitFolded(w, pos, off, off+len(w), fn)
	if !expand || !strings.ContainsAny(w, ".@") {
		return
	}
	t.parts = addressParts(w, t.parts[:0])
	for _, p := range t.parts {
		t.emitFolded(p, pos, off, off+len(w), fn)
	}
}

// addressParts appends the parts of an address-like word (without the word
// itself) to dst, without duplicates.
func addressParts(w string, dst []string) []string {
	add := func(p string) {
		if p == "" || p == w {
			return
		}
		for _, q := range dst {
			if q == p {
				return
			}
		}
		dst = append(dst, p)
	}
	domain := w
	if at := strings.LastIndexByte(w, '@'); at >= 0 {
		add(w[:at])
		domain = w[at+1:]
		add(domain)
	}
	// Domain suffixes of two labels or more.
	for d := domain; ; {
		dot := strings.IndexByte(d, '.')
		if dot < 0 {
			break
		}
		d = d[dot+1:]
		if strings.IndexByte(d, '.') < 0 {
			break
		}
		add(d)
	}
	// Every label.
	start := 0
	for k := 0; k <= len(w); k++ {
		if k == len(w) || w[k] == '.' || w[k] == '@' {
			add(w[start:k])
			start = k + 1
		}
	}
	return dst
}

// emitFolded folds w and emits it if it is not empty; a term longer than
// MaxTermLen is cut at a character boundary.
func (t *tokenizer) emitFolded(w string, pos, start, end int, fn emitFunc) {
	t.buf = appendFolded(t.buf[:0], w)
	if len(t.buf) > MaxTermLen {
		n := MaxTermLen
		for n > 0 && !utf8.RuneStart(t.buf[n]) {
			n--
		}
		t.buf = t.buf[:n]
	}
	if len(t.buf) == 0 {
		return
	}
	fn(t.buf, pos, start, end)
}

// appendFolded appends the folded form of w to dst.
func appendFolded(dst []byte, w string) []byte {
	start := len(dst)
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c >= utf8.RuneSelf:
			return appendFoldedSlow(dst[:start], w)
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '\'':
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendFoldedSlow folds a word with non-ASCII characters.
func appendFoldedSlow(dst []byte, w string) []byte {
	d := norm.NFKD.String(w)
	var b strings.Builder
	for _, r := range d {
		// Compatibility decomposition can yield spaces or punctuation
		// ("ͺ" is a space and a combining mark): keep word characters.
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if c := classify(r); c != classWord && c != classCJK {
			continue
		}
		b.WriteRune(r)
	}
	f := cases.Fold().String(b.String())
	// Folding may reintroduce decomposable characters; compose to a
	// canonical form so equal words give equal bytes.
	return append(dst, norm.NFC.String(f)...)
}

// Token is one term of a text with its position and the byte offsets of
// the word it came from.
type Token struct {
	// Term is the folded term.
	Term string
	// Pos is the token's position; address parts share the position of
	// their whole address.
	Pos int
	// Start and End are the byte offsets of the source word in the text.
	Start, End int
}

// Tokenize returns the terms of text as a document field indexes them,
// address parts included. It is safe for concurrent use.
func Tokenize(text string) []Token {
	var t tokenizer
	var out []Token
	t.tokenize(text, 0, MaxFieldPositions, true, func(term []byte, pos, start, end int) {
		out = append(out, Token{Term: string(term), Pos: pos, Start: start, End: end})
	})
	return out
}

// QueryTerms returns the terms a query for text looks up, in order, one
// per position: address-like words stay whole, as they are indexed whole
// at their position. It is safe for concurrent use.
func QueryTerms(text string) []string {
	var t tokenizer
	var out []string
	last := -1
	t.tokenize(text, 0, MaxFieldPositions, false, func(term []byte, pos, _, _ int) {
		if pos == last {
			return
		}
		last = pos
		out = append(out, string(term))
	})
	return out
}
