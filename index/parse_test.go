package index

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	d := func(y, m, day int) int64 { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC).Unix() }
	cases := []struct {
		in   string
		want Query
	}{
		{"", All()},
		{"hello", Text(FieldAny, "hello")},
		{"hello world", And(Text(FieldAny, "hello"), Text(FieldAny, "world"))},
		{`"exact phrase"`, Text(FieldAny, "exact phrase")},
		{"repo*", Prefix(FieldAny, "repo")},
		{"from:alice", Text(FieldFrom, "alice")},
		{"FROM:alice", Text(FieldFrom, "alice")},
		{`subject:"weekly report"`, Text(FieldSubject, "weekly report")},
		{"to:bob cc:carol bcc:dave filename:pdf", And(Text(FieldTo, "bob"), Text(FieldCc, "carol"), Text(FieldBcc, "dave"), Text(FieldFilename, "pdf"))},
		{"from:(alice OR bob)", Or(Text(FieldFrom, "alice"), Text(FieldFrom, "bob"))},
		{"has:attachment", HasFlag(FlagAttachment)},
		{"is:unread", Not(HasFlag(FlagSeen))},
		{"is:read is:starred", And(HasFlag(FlagSeen), HasFlag(FlagFlagged))},
		{"in:Archive", InFolder("Archive")},
		{"in:anywhere", All()},
		{"label:work", HasKeyword("work")},
		{"before:2024/01/31", Between(RangeDate, math.MinInt64, d(2024, 1, 31))},
		{"after:2024-1-5", Between(RangeDate, d(2024, 1, 5), math.MaxInt64)},
		{"after:1700000000", Between(RangeDate, 1700000000, math.MaxInt64)},
		{"older_than:7d", Query{Kind: KindOlder, Age: 7 * 24 * time.Hour}},
		{"newer_than:2m", Query{Kind: KindNewer, Age: 60 * 24 * time.Hour}},
		{"newer_than:1y", Query{Kind: KindNewer, Age: 365 * 24 * time.Hour}},
		{"larger:5M", Between(RangeSize, 5<<20+1, math.MaxInt64)},
		{"smaller:100k", Between(RangeSize, math.MinInt64, 100<<10)},
		{"smaller:1000", Between(RangeSize, math.MinInt64, 1000)},
		{"-spam", Not(Text(FieldAny, "spam"))},
		{"a OR b c", And(Or(Text(FieldAny, "a"), Text(FieldAny, "b")), Text(FieldAny, "c"))},
		{"a | b", Or(Text(FieldAny, "a"), Text(FieldAny, "b"))},
		{"a AND b", And(Text(FieldAny, "a"), Text(FieldAny, "b"))},
		{"(a OR b) -(c d)", And(Or(Text(FieldAny, "a"), Text(FieldAny, "b")), Not(And(Text(FieldAny, "c"), Text(FieldAny, "d"))))},
		{"foo:bar", Text(FieldAny, "foo:bar")},
		{"e-mail", Text(FieldAny, "e-mail")},
		{"a - b", And(Text(FieldAny, "a"), Text(FieldAny, "-"), Text(FieldAny, "b"))},
		{"or and", And(Text(FieldAny, "or"), Text(FieldAny, "and"))},
	}
	for _, c := range cases {
		got, err := Parse(c.in)
		require.NoError(t, err, "Parse(%q)", c.in)
		require.Equal(t, c.want, got, "Parse(%q)", c.in)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in  string
		pos int
		msg string
	}{
		{`"open`, 0, "unterminated"},
		{`a "open`, 2, "unterminated"},
		{"(a b", 0, "unclosed"},
		{"a b)", 3, "unexpected"},
		{"OR a", 0, "OR needs a term before"},
		{"a OR", 4, "OR needs a term after"},
		{"a OR OR b", 5, "OR needs a term after"},
		{"AND a", 0, "AND needs a term before"},
		{"from:", 0, "needs a value"},
		{"from: alice", 5, "needs a value"},
		{"has:pictures", 4, "has: knows attachment"},
		{"is:important", 3, "is: knows"},
		{"before:yesterday", 7, "bad date"},
		{"older_than:7x", 11, "bad age unit"},
		{"older_than:d", 11, "bad age"},
		{"larger:5Q", 7, "bad size"},
		{"larger:99999999999999G", 7, "too large"},
		{"-(", 1, "unclosed"},
		{"a -)", 2, "nothing to negate"},
		// A group may add two levels (an AND of ORs): 32 parentheses.
		{"x " + strings.Repeat("(", 100), 34, "nested deeper"},
		{strings.Repeat("-", 10000), 62, "nested deeper"},
		{strings.Repeat("-", 10000) + "a", 62, "nested deeper"},
		{strings.Repeat("a ", 10000), MaxQueryLen, "longer than 16384 bytes"},
		{strings.Repeat("a ", 1000), 2 * MaxQueryTerms, "more than 256 terms"},
		{strings.Repeat("- ", 1000), 2 * MaxQueryTerms, "more than 256 terms"},
		{strings.Repeat("()", 1000), 2*MaxQueryTerms + 1, "more than 256 terms"}, // at the empty group
		{strings.Repeat("is:read ", 300), 8 * MaxQueryTerms, "more than 256 terms"},
		{`"` + strings.Repeat("a ", 300) + `"`, 0, "more than 256 terms"},
		{strings.Repeat("東京", 200), 0, "more than 256 terms"},
		{strings.Repeat("a", MaxQueryLen+1), MaxQueryLen, "longer than 16384 bytes"},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		var pe *ParseError
		require.True(t, errors.As(err, &pe), "Parse(%.80q) must fail with a *ParseError, got %v", c.in, err)
		require.ErrorIs(t, err, ErrBadQuery)
		in := c.in
		if len(in) > 80 {
			in = in[:80] + "…"
		}
		require.Equal(t, c.pos, pe.Pos, "Parse(%q): error position (%v)", in, err)
		require.Contains(t, pe.Msg, c.msg, "Parse(%q)", in)
	}
}

// FuzzParse checks that Parse never panics, that errors carry a position
// inside the query, and that a parsed query resolves and prints.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "hello", `from:alice "quarterly report" has:attachment`, "a OR (b -c)", "before:2024/01/02 larger:5M",
		`subject:(a OR "b c") -in:Spam newer_than:2d`, "(((", `"`, "東京都 café", "x:y:z", "a*", "-(-a)", "older_than:99999999999y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q): error %v is not a *ParseError", s, err)
			}
			if pe.Pos < 0 || pe.Pos > len(s) {
				t.Fatalf("Parse(%q): position %d outside the query", s, pe.Pos)
			}
			return
		}
		if err := validate(q); err != nil {
			t.Fatalf("Parse(%q) returned an invalid query: %v", s, err)
		}
		r := q.Resolve(time.Unix(1700000000, 0))
		_ = r.String()
	})
}

func TestTokenize(t *testing.T) {
	terms := func(s string) []string {
		var out []string
		for _, tk := range Tokenize(s) {
			out = append(out, tk.Term)
		}
		return out
	}
	require.Equal(t, []string{"hello", "world"}, terms("Hello, WORLD!"))
	require.Equal(t, []string{"cafe", "naive", "strasse", "resume"}, terms("Café naïve Straße RÉSUMÉ"))
	require.Equal(t, []string{"cant", "3.14", "3", "14"}, terms("can't 3.14"))
	require.Equal(t, []string{"東京", "京都"}, terms("東京都"))
	require.Equal(t, []string{"日"}, terms("日"))
	require.Equal(t, []string{"fullwidth"}, terms("ＦＵＬＬＷＩＤＴＨ"))
	require.Equal(t, []string{"alice.smith@mail.example.com", "alice.smith", "mail.example.com", "example.com", "alice", "smith", "mail", "example", "com"},
		terms("<Alice.Smith@Mail.Example.com>"))
	// Parts share the position of the whole.
	for _, tk := range Tokenize("x a@b.c y") {
		switch tk.Term {
		case "x":
			require.Equal(t, 0, tk.Pos)
		case "y":
			require.Equal(t, 2, tk.Pos)
		default:
			require.Equal(t, 1, tk.Pos, tk.Term)
		}
	}
	// Offsets point at the source word.
	s := "Grüße aus Köln"
	for _, tk := range Tokenize(s) {
		require.True(t, utf8.ValidString(s[tk.Start:tk.End]))
	}
	require.Equal(t, []string{"alice@example.com", "said"}, QueryTerms("alice@example.com said"))
	long := strings.Repeat("x", 100)
	require.Equal(t, []string{long[:MaxTermLen]}, QueryTerms(long), "long terms are cut, the same on both sides")
	require.Equal(t, []string{"hello", "world"}, QueryTerms("hello-world"))
}

// FuzzTokenize checks that tokenizing never panics, that terms are
// non-empty, bounded, valid UTF-8 when the input is, with positions that
// never decrease and offsets inside the text, and that folding is
// idempotent on the query side.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"Hello, WORLD!", "Café naïve Straße", "東京都の会議", "alice@example.com", "a.b.c@d", "can't", "\xff\xfe", "ＡＢＣ", "e\u0301", "@@..''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		last := 0
		for _, tk := range Tokenize(s) {
			if tk.Term == "" || len(tk.Term) > MaxTermLen {
				t.Fatalf("bad term %q", tk.Term)
			}
			if tk.Pos < last {
				t.Fatalf("position went back: %d after %d", tk.Pos, last)
			}
			last = tk.Pos
			if tk.Start < 0 || tk.End > len(s) || tk.Start >= tk.End {
				t.Fatalf("bad offsets %d..%d", tk.Start, tk.End)
			}
			if utf8.ValidString(s) && !utf8.ValidString(tk.Term) {
				t.Fatalf("invalid UTF-8 term %q from valid input", tk.Term)
			}
		}
		for _, term := range QueryTerms(s) {
			again := QueryTerms(term)
			if len(again) == 0 {
				t.Fatalf("term %q yields no query term", term)
			}
		}
	})
}

func TestHTMLToText(t *testing.T) {
	got := HTMLToText(`<html><head><style>p{color:red}</style><script>var x = "<b>";</script></head>` +
		`<body><p>Hello&nbsp;<b>World</b> &amp; friends</p><!-- hidden --><div>Next&#33;</div></body></html>`)
	require.Contains(t, got, "Hello\u00a0World & friends")
	require.Contains(t, got, "Next!")
	require.NotContains(t, got, "color")
	require.NotContains(t, got, "var x")
	require.NotContains(t, got, "hidden")
	require.Equal(t, "a < b", HTMLToText("a < b"))
}

func TestSnippet(t *testing.T) {
	body := strings.Repeat("lorem ipsum ", 40) + "the Quarterly report\nis here " + strings.Repeat("dolor sit ", 40)
	s, hl := makeSnippet(body, []hlTerm{{term: "quarterly"}, {term: "rep", prefix: true}}, 100)
	require.LessOrEqual(t, len(s), 100)
	require.Len(t, hl, 2)
	require.Equal(t, "Quarterly", s[hl[0][0]:hl[0][1]])
	require.Equal(t, "report", s[hl[1][0]:hl[1][1]])
	require.NotContains(t, s, "\n")
	s, hl = makeSnippet("ok สวัสดีครับ ok", []hlTerm{{term: "สวั"}, {term: "วัส"}, {term: "สดี"}}, 100)
	require.Equal(t, [][2]int{{3, 3 + len("สวัสดี")}}, hl, "the bigrams of a run highlight as one range")
	require.Equal(t, "สวัสดี", s[hl[0][0]:hl[0][1]])
	s, hl = makeSnippet("short body", nil, 100)
	require.Equal(t, "short body", s)
	require.Empty(t, hl)
}
