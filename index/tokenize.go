package index

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rivo/uniseg"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
)

// The tokenizer turns text into terms. It is the one analysis every
// backend and the query side share, so a term found in a document is the
// same byte string a query looks up.
//
// Segmentation is Unicode word segmentation (UAX #29, by
// github.com/rivo/uniseg), with three tailorings for mail:
//
//   - A colon splits words ("Re:meeting" → "re", "meeting"); UAX #29
//     keeps letters around a colon together (Swedish "S:t").
//   - Address awareness: words joined by a lone '.' or '@' are one word
//     ("alice@example.com", "host1.example.com"; UAX #29 alone splits at
//     '@' and between a digit and a '.').
//   - Scripts written without spaces between words get character
//     bigrams, as in Lucene's CJK analyzer: a run of Han, Hiragana,
//     Katakana or Hangul, and likewise of Thai, Lao, Khmer or Myanmar,
//     becomes overlapping bigrams ("東京都" → "東京", "京都"), each at its
//     own position; a run of one character becomes that character. A
//     character here is a base with its combining marks (a Thai consonant
//     with its vowel and tone signs, a kana with its voicing mark), so
//     marks are never split from their letter. A query word in these
//     scripts is analyzed the same way and becomes the phrase of its
//     bigrams, so a whole run is found, and so is any substring of two
//     characters or more (a search for one character finds only runs of
//     one character). UAX #29 puts no boundary inside a Thai, Lao, Khmer
//     or Myanmar run (it needs a dictionary); bigrams need none.
//
// A segment is a word if it has a letter or a digit; punctuation, symbols
// and emoji are not indexed and only separate words. Numbers keep their
// separators as UAX #29 groups them ("3.14", "1,000").
//
// A word is folded: compatibility decomposition (NFKD: "ﬁ" → "fi",
// fullwidth → ASCII), then diacritics dropped, then Unicode case folding
// ("Straße" → "strasse"), apostrophes removed ("can't" → "cant"), and
// canonical composition (NFC). Diacritics are the nonspacing marks (Mn)
// on a Latin, Greek, Cyrillic or Common-script base ("Café" → "cafe",
// "ё" → "е"), and, a judgment call, on Hebrew and Arabic, whose vowel
// points and harakat are optional and absent from most text, so pointed
// and unpointed spellings match (Lucene's Arabic normalizer does the
// same). Every other mark belongs to its letter and is kept: Thai, Lao,
// Khmer, Myanmar, Devanagari and the other Brahmic scripts write vowels
// and viramas as marks, and dropping them would lose letters. Spacing
// marks (Mc) are never dropped.
//
// ASCII text, the common case, takes a fast path: a run of ASCII between
// spaces is segmented by the ASCII subset of the UAX #29 rules and folded
// by lowercasing; it yields the same tokens as the general path (a fuzz
// test checks it).
//
// Address parts: a word with '@' or '.' is also indexed by its parts,
// at the same position as the whole, so a phrase query around it still
// lines up: "alice.smith@mail.example.com" yields the whole address, the
// local part "alice.smith", the domain "mail.example.com", every domain
// suffix of two labels or more ("example.com"), and each label ("alice",
// "smith", "mail", "example", "com"). A query never needs the parts: it
// looks up the whole word, which is why [QueryTerms] does not expand.
//
// Terms longer than [MaxTermLen] bytes are cut to that length (at a
// character boundary), on the document and the query side alike. A field
// indexes at most [MaxFieldPositions] positions; the rest of a long body
// is not searchable (PostgreSQL's tsvector has the same kind of bound,
// 16,383 positions, so both backends agree).

// AnalyzerVersion identifies the analysis (segmentation and folding) of
// this package. Terms written by one version may not match queries
// analyzed by another, so a backend that stores terms records the version
// it indexed a user with and asks for [Index.Reindex] when it differs.
// Version 1 was the analysis before UAX #29 segmentation; version 2 is
// the current one.
const AnalyzerVersion = 2

// ErrStale means a user's index was built by another [AnalyzerVersion]
// than this package's, so searches could miss documents; rebuild it with
// [Index.Reindex]. Backends that record the version return it from
// Search; writes still succeed.
var ErrStale = errors.New("index: index built by another analyzer version; rebuild it with Index.Reindex")

// MaxTermLen is the longest term in bytes; longer terms are cut.
const MaxTermLen = 64

// MaxFieldPositions is the number of positions indexed per field of a
// document; tokens past it are ignored.
const MaxFieldPositions = 16000

// valueGap is the position gap between two values of one field (two
// addresses, two attachment names) so a phrase never spans both.
const valueGap = 8

// A tokenizer holds reusable buffers; it is not safe for concurrent use.
type tokenizer struct {
	buf   []byte
	parts []string
	runes []runeSpan
	// slow disables the ASCII fast path (for tests of identity).
	slow bool
	// state of the current chunk, see piece.
	wordStart, wordEnd int
	inWord, joiner     bool
	inRun              bool
}

type runeSpan struct {
	start, end int
}

// emitFunc receives one term. term is valid only during the call. start
// and end are the byte offsets of the source word in the text.
type emitFunc func(term []byte, pos, start, end int)

func isASCIISpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// tokenize calls fn for each term of s, numbering positions from pos, and
// returns the position after the last token. With expand, address-like
// words also yield their parts. It stops at limit positions.
//
// ASCII white space always separates words under UAX #29 (a combining mark
// after a space attaches to the space, which is no word), so the text is
// cut at it into chunks, and each chunk is segmented alone: by the ASCII
// rules if it is all ASCII, else by uniseg.
//
// Most chunks are one plain word, maybe with punctuation around it
// ("word", "(word),"): the scan that finds the chunk's end also checks
// for that shape, and such a chunk skips segmentation (see plainWord).
func (t *tokenizer) tokenize(s string, pos, limit int, expand bool, fn emitFunc) int {
	i := 0
	for i < len(s) && pos < limit {
		if byteClass[s[i]] == classSpace {
			i++
			continue
		}
		// state: 0 before the word, 1 in it, 2 after it; not plain: 3 a
		// second word, 4 an '_' (ASCII), 5 a non-ASCII byte.
		j, state, a, b := i, 0, 0, 0
	scan:
		for ; j < len(s); j++ {
			switch c := byteClass[s[j]]; {
			case c == classSpace:
				break scan
			case c == classAlnum:
				switch state {
				case 0:
					state, a = 1, j
				case 2:
					state = 3
				}
			case c == classPunct:
				if state == 1 {
					state, b = 2, j
				}
			default: // '_' or non-ASCII
				state = 4
				for ; j < len(s) && !isASCIISpace(s[j]); j++ {
					if s[j] >= utf8.RuneSelf {
						state = 5
					}
				}
				break scan
			}
		}
		switch {
		case t.slow || state >= 3:
			pos = t.chunk(s, i, j, state != 5 && !t.slow, pos, limit, expand, fn)
		case state == 1:
			pos = t.plainWord(s, a, j, pos, fn)
		case state == 2:
			pos = t.plainWord(s, a, b, pos, fn)
		}
		i = j
	}
	return pos
}

// Byte classes of the plain-word scan.
const (
	classPunct = iota // ASCII punctuation and symbols
	classAlnum        // ASCII letters and digits
	classSpace        // ASCII white space
	classOther        // '_' and non-ASCII bytes
)

var byteClass = func() (c [256]uint8) {
	for i := range c {
		switch b := byte(i); {
		case isASCIISpace(b):
			c[i] = classSpace
		case isASCIIAlnum(b):
			c[i] = classAlnum
		case b == '_' || b >= utf8.RuneSelf:
			c[i] = classOther
		}
	}
	return c
}()

// plainWord emits s[a:b], a run of ASCII letters and digits that makes
// up its chunk with only ASCII punctuation (no '_') around it. Such a run
// is one UAX #29 segment, and the punctuation around it is segments of
// one byte that join nothing (a joiner needs a word after it), so the
// run is the chunk's only word and has no address parts.
func (t *tokenizer) plainWord(s string, a, b, pos int, fn emitFunc) int {
	w := s[a:b]
	if len(w) > MaxTermLen {
		w = w[:MaxTermLen]
	}
	t.buf = appendLowerASCII(t.buf[:0], w)
	fn(t.buf, pos, a, b)
	return pos + 1
}

// Piece kinds: the pieces a chunk's segments are cut into.
const (
	pieceOther  = iota // no word: punctuation, symbols, emoji
	pieceWord          // a word
	pieceJoiner        // a lone '.' or '@'
	pieceRun           // characters of a script without spaces, in t.runes
)

// chunk tokenizes s[i:j], which has no ASCII white space.
func (t *tokenizer) chunk(s string, i, j int, ascii bool, pos, limit int, expand bool, fn emitFunc) int {
	t.inWord, t.joiner, t.inRun = false, false, false
	t.runes = t.runes[:0]
	if ascii {
		for k := i; k < j && pos < limit; {
			end := asciiSegmentEnd(s, k, j)
			pos = t.piece(s, asciiPieceKind(s[k:end]), k, end, pos, limit, expand, fn)
			k = end
		}
	} else {
		state := -1
		rest := s[i:j]
		for k := i; len(rest) > 0 && pos < limit; {
			var seg string
			seg, rest, state = uniseg.FirstWordInString(rest, state)
			pos = t.segment(s, k, k+len(seg), pos, limit, expand, fn)
			k += len(seg)
		}
	}
	return t.flush(s, pos, limit, expand, fn)
}

// isASCIIAlnum reports whether c is an ASCII letter or digit.
func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }

// asciiSegmentEnd returns the end of the UAX #29 word segment of ASCII
// text starting at i, with j the end of the chunk. In ASCII, letters,
// digits and '_' always join (WB5, WB8–WB10, WB13a, WB13b); a single '.'
// or apostrophe joins two letters (WB6, WB7) and a '.', apostrophe, ','
// or ';' two digits (WB11, WB12). ':' (MidLetter) is tailored out: it never joins.
// Anything else is a segment of one byte (WB999).
func asciiSegmentEnd(s string, i, j int) int {
	c := s[i]
	if !isASCIIAlnum(c) && c != '_' {
		return i + 1
	}
	k := i + 1
	for k < j {
		n := s[k]
		if isASCIIAlnum(n) || n == '_' {
			k++
			continue
		}
		if k+1 < j {
			p, m := s[k-1], s[k+1]
			switch {
			case (n == '.' || n == '\'') && isASCIILetter(p) && isASCIILetter(m):
				k += 2
				continue
			case (n == '.' || n == '\'' || n == ',' || n == ';') && isASCIIDigit(p) && isASCIIDigit(m):
				k += 2
				continue
			}
		}
		break
	}
	return k
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// asciiPieceKind classifies an ASCII segment.
func asciiPieceKind(seg string) int {
	if seg == "." || seg == "@" {
		return pieceJoiner
	}
	for k := 0; k < len(seg); k++ {
		if isASCIIAlnum(seg[k]) {
			return pieceWord
		}
	}
	return pieceOther
}

// isColon reports whether r is a colon, which the tailoring makes a word
// separator (the MidLetter colons of UAX #29).
func isColon(r rune) bool {
	return r == ':' || r == '\uFE13' || r == '\uFE55' || r == '\uFF1A'
}

// isRunScript reports whether r belongs to a script written without
// spaces between words, tokenized as bigrams.
func isRunScript(r rune) bool {
	if r < 0x0E00 {
		return false
	}
	switch r {
	case 0x3005, 0x3006, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x30FC, 0xFF70:
		// Iteration marks and the prolonged sound mark, Common script
		// but part of Japanese words.
		return true
	}
	return unicode.Is(runScripts, r)
}

// runScripts are the scripts written without spaces between words.
var runScripts = rangetable.Merge(unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul,
	unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)

// isAttached reports whether r belongs to the character before it: a
// combining mark, a variation selector, a zero-width joiner, or a
// halfwidth kana voicing mark (a letter that folds to a combining mark).
func isAttached(r rune) bool {
	return unicode.Is(unicode.M, r) || r == '\u200D' || r == '\uFF9E' || r == '\uFF9F'
}

// segment cuts a non-ASCII UAX #29 segment s[a:b] into pieces: runs of
// space-less scripts, words (split at colons) and the rest.
func (t *tokenizer) segment(s string, a, b, pos, limit int, expand bool, fn emitFunc) int {
	seg := s[a:b]
	if seg == "." || seg == "@" {
		return t.piece(s, pieceJoiner, a, b, pos, limit, expand, fn)
	}
	// Sub-pieces: maximal runs of run-script characters (with their
	// attached marks) and of other characters.
	k := a
	for k < b && pos < limit {
		r, size := utf8.DecodeRuneInString(s[k:b])
		if isRunScript(r) {
			// The run-script characters of s[k:], each with its marks,
			// appended to those of the run so far.
			if !t.inRun {
				t.runes = t.runes[:0]
			}
			e := k
			for e < b {
				r, size := utf8.DecodeRuneInString(s[e:b])
				switch {
				case isAttached(r) && e > k:
					t.runes[len(t.runes)-1].end = e + size
				case isRunScript(r):
					t.runes = append(t.runes, runeSpan{e, e + size})
				default:
					goto done
				}
				e += size
			}
		done:
			pos = t.piece(s, pieceRun, k, e, pos, limit, expand, fn)
			k = e
			continue
		}
		// Other characters up to the next run-script character or
		// colon, then the colon.
		e, word := k, false
		for e < b {
			r, size = utf8.DecodeRuneInString(s[e:b])
			if isRunScript(r) || isColon(r) {
				break
			}
			if unicode.IsLetter(r) || unicode.IsNumber(r) {
				word = true
			}
			e += size
		}
		if e > k {
			kind := pieceOther
			if word {
				kind = pieceWord
			}
			pos = t.piece(s, kind, k, e, pos, limit, expand, fn)
			k = e
			continue
		}
		// A colon.
		pos = t.piece(s, pieceOther, k, k+size, pos, limit, expand, fn)
		k += size
	}
	return pos
}

// piece takes the next piece s[a:b] of a chunk. Words joined by lone
// joiners are collected into one word; consecutive run pieces into one
// run (segment appends a run piece's characters to t.runes). Anything
// else ends the word or run, which is then emitted; a joiner that no word
// follows is left out of the word.
func (t *tokenizer) piece(s string, kind, a, b, pos, limit int, expand bool, fn emitFunc) int {
	switch kind {
	case pieceWord:
		if t.inWord && t.joiner {
			t.wordEnd, t.joiner = b, false
			return pos
		}
		pos = t.flush(s, pos, limit, expand, fn)
		t.inWord, t.wordStart, t.wordEnd = true, a, b
		return pos
	case pieceJoiner:
		if t.inWord && !t.joiner {
			t.joiner = true
			return pos
		}
	case pieceRun:
		if !t.inRun {
			pos = t.flush(s, pos, limit, expand, fn) // a pending word
			t.inRun = true
		}
		return pos
	}
	return t.flush(s, pos, limit, expand, fn)
}

// flush emits the pending word or run.
func (t *tokenizer) flush(s string, pos, limit int, expand bool, fn emitFunc) int {
	switch {
	case t.inWord:
		t.inWord, t.joiner = false, false
		if pos < limit {
			t.word(s[t.wordStart:t.wordEnd], pos, t.wordStart, expand, fn)
			pos++
		}
	case t.inRun:
		t.inRun = false
		pos = t.run(s, pos, limit, fn)
		t.runes = t.runes[:0]
	}
	return pos
}

// run emits the bigrams of the characters in t.runes and returns the next
// position.
func (t *tokenizer) run(s string, pos, limit int, fn emitFunc) int {
	rs := t.runes
	if len(rs) == 1 {
		if pos < limit {
			t.emitFolded(s[rs[0].start:rs[0].end], pos, rs[0].start, rs[0].end, fn)
			pos++
		}
		return pos
	}
	for k := 0; k+1 < len(rs) && pos < limit; k++ {
		w := s[rs[k].start:rs[k+1].end]
		if len(w) <= MaxTermLen && isFoldedRun(w) {
			fn(append(t.buf[:0], w...), pos, rs[k].start, rs[k+1].end)
		} else {
			t.emitFolded(w, pos, rs[k].start, rs[k+1].end, fn)
		}
		pos++
	}
	return pos
}

// isFoldedRun reports whether w, characters of a run, is its own folded
// form, the common case, which skips the cost of folding: its characters
// are all of the scripts without spaces (none has case or diacritics) and
// it is in NFKC.
func isFoldedRun(w string) bool {
	for i, r := range w {
		if !unicode.Is(runScripts, r) || i == 0 && isAttached(r) {
			return false
		}
	}
	return norm.NFKC.IsNormalString(w)
}

// word emits the folded word w (found at byte offset off) and, with
// expand, its address parts.
func (t *tokenizer) word(w string, pos, off int, expand bool, fn emitFunc) {
	t.emitFolded(w, pos, off, off+len(w), fn)
	if !expand || !hasJoiner(w) {
		return
	}
	t.parts = addressParts(w, t.parts[:0])
	for _, p := range t.parts {
		t.emitFolded(p, pos, off, off+len(w), fn)
	}
}

// hasJoiner reports whether w has a '.' or '@' (a byte loop: words are
// short, and strings.ContainsAny costs more than the rest of the word).
func hasJoiner(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] == '.' || w[i] == '@' {
			return true
		}
	}
	return false
}

// addressParts appends the parts of an address-like word (without the word
// itself) to dst, without duplicates.
func addressParts(w string, dst []string) []string {
	domain := w
	if at := strings.LastIndexByte(w, '@'); at >= 0 {
		dst = addPart(dst, w, w[:at])
		domain = w[at+1:]
		dst = addPart(dst, w, domain)
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
		dst = addPart(dst, w, d)
	}
	// Every label.
	start := 0
	for k := 0; k <= len(w); k++ {
		if k == len(w) || w[k] == '.' || w[k] == '@' {
			dst = addPart(dst, w, w[start:k])
			start = k + 1
		}
	}
	return dst
}

// addPart appends the part p of word w to dst unless it is empty, w
// itself or already in dst. (A function, not a closure over dst, which
// would move dst to the heap on every call of addressParts.)
func addPart(dst []string, w, p string) []string {
	if p == "" || p == w {
		return dst
	}
	for _, q := range dst {
		if q == p {
			return dst
		}
	}
	return append(dst, p)
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

// appendFoldedSlow folds a word with non-ASCII characters: NFKD,
// diacritics and apostrophes dropped, case folded, NFC.
func appendFoldedSlow(dst []byte, w string) []byte {
	d := norm.NFKD.String(w)
	b := make([]byte, 0, len(d))
	strip := true // whether a nonspacing mark here is a diacritic
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r):
			if strip {
				continue
			}
		case unicode.Is(unicode.M, r):
			// Spacing and enclosing marks are kept.
		case r == '\'' || r == '’':
			continue
		case unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			// Compatibility decomposition can yield spaces ("ͺ" is a
			// space and a combining mark); format characters (soft
			// hyphen, joiners) are invisible inside a word.
			continue
		default:
			strip = r < utf8.RuneSelf || unicode.Is(diacriticBases, r)
		}
		b = utf8.AppendRune(b, r)
	}
	f := cases.Fold().Bytes(b)
	// Folding may reintroduce decomposable characters; compose to a
	// canonical form so equal words give equal bytes.
	return norm.NFC.Append(dst, f...)
}

// diacriticBases are the scripts whose nonspacing marks are diacritics,
// dropped by folding (see the block comment at the top of the file).
var diacriticBases = rangetable.Merge(unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Common,
	unicode.Hebrew, unicode.Arabic)

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
