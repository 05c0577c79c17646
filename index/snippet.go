package index

import (
	"strings"
	"unicode/utf8"
)

// hlTerm is a term to highlight; a prefix term matches words it starts.
type hlTerm struct {
	term   string
	prefix bool
}

// highlightTerms collects the terms of the positive text criteria of q
// that can match a body.
func highlightTerms(q Query) []hlTerm {
	var out []hlTerm
	var walk func(q Query, neg bool)
	walk = func(q Query, neg bool) {
		switch q.Kind {
		case KindNot:
			for _, s := range q.Sub {
				walk(s, !neg)
			}
		case KindAnd, KindOr:
			for _, s := range q.Sub {
				walk(s, neg)
			}
		case KindText:
			if neg || (q.Field != FieldAny && q.Field != FieldBody) {
				return
			}
			for i, t := range q.Terms {
				out = append(out, hlTerm{term: t, prefix: q.Prefix && i == len(q.Terms)-1})
			}
		}
	}
	walk(q, false)
	return out
}

// makeSnippet returns an excerpt of about n bytes of body around the
// first word that matches one of terms, and the byte ranges in it of the
// matching words. Without a match it is the start of the body. Line breaks
// and tabs become spaces.
//
// The excerpt starts a quarter of n before the first match, at a word
// boundary, and ends at a word boundary after n bytes.
func makeSnippet(body string, terms []hlTerm, n int) (string, [][2]int) {
	type match struct{ start, end int }
	var matches []match
	first := -1
	if len(terms) > 0 {
		var t tokenizer
		t.tokenize(body, 0, MaxFieldPositions, true, func(term []byte, _, start, end int) {
			if first >= 0 && start > first+n {
				return
			}
			for _, h := range terms {
				if string(term) == h.term || (h.prefix && strings.HasPrefix(string(term), h.term)) {
					if first < 0 {
						first = start
					}
					// Overlapping matches (the bigrams of a run, an
					// address and its parts) make one range.
					if k := len(matches) - 1; k >= 0 && start < matches[k].end {
						matches[k].end = max(matches[k].end, end)
					} else {
						matches = append(matches, match{start, end})
					}
					return
				}
			}
		})
	}
	from := 0
	if first > n/4 {
		from = first - n/4
		// Move to the next word boundary.
		for from < first && !isBoundary(body, from) {
			from++
		}
	}
	to := min(len(body), from+n)
	for to < len(body) && to > from && !isBoundary(body, to) {
		to--
	}
	if to == from {
		to = min(len(body), from+n)
		for to < len(body) && !utf8.RuneStart(body[to]) {
			to++
		}
	}
	for from < to && !utf8.RuneStart(body[from]) {
		from++
	}
	raw := body[from:to]
	sb := []byte(raw)
	for i, c := range sb {
		if c == '\n' || c == '\r' || c == '\t' {
			sb[i] = ' '
		}
	}
	snippet := string(sb)
	var hl [][2]int
	for _, m := range matches {
		if m.start >= from && m.end <= to {
			hl = append(hl, [2]int{m.start - from, m.end - from})
		}
	}
	return snippet, hl
}

// isBoundary reports whether byte offset i of s is just after a space.
func isBoundary(s string, i int) bool {
	return i > 0 && (s[i-1] == ' ' || s[i-1] == '\n' || s[i-1] == '\t' || s[i-1] == '\r')
}
