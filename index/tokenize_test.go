package index

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func terms(s string) []string {
	var out []string
	for _, tk := range Tokenize(s) {
		out = append(out, tk.Term)
	}
	return out
}

// englishText is a paragraph of ordinary English mail.
var englishText = strings.Repeat("Hi Bob, the quarterly report is attached: revenue grew 3.14% to $1,000,000 "+
	"and we'll send the final figures to alice.smith@example.com before Friday. Thanks! ", 20)

var benchTexts = []struct{ name, text string }{
	{"English", englishText},
	{"German", strings.Repeat("Grüße aus Köln, die Straße ist für Fußgänger gesperrt. ", 30)},
	{"Japanese", strings.Repeat("東京都の会議は来週の月曜日に開かれます。カタカナーです。", 30)},
	{"Thai", strings.Repeat("สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย ", 30)},
}

// BenchmarkTokenize measures the indexing path: terms handed to a
// callback, as Document.Analyze does.
func BenchmarkTokenize(b *testing.B) {
	for _, bc := range benchTexts {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			var t tokenizer
			n := 0
			for b.Loop() {
				t.tokenize(bc.text, 0, MaxFieldPositions, true, func([]byte, int, int, int) { n++ })
			}
		})
	}
}

// BenchmarkTokenizeTokens measures [Tokenize], which also allocates each
// token.
func BenchmarkTokenizeTokens(b *testing.B) {
	for _, bc := range benchTexts {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			for b.Loop() {
				Tokenize(bc.text)
			}
		})
	}
}

// TestTokenizeGolden pins the analysis of text in many scripts. Each case
// says why its terms are right.
func TestTokenizeGolden(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"English", "The QUICK brown fox can't jump", []string{"the", "quick", "brown", "fox", "cant", "jump"}},
		// ß case-folds to ss; umlauts are diacritics.
		{"German", "Straße GROSS Fußgänger Grüße", []string{"strasse", "gross", "fussganger", "grusse"}},
		// The elided article stays with its word (UAX #29 WB6/WB7).
		{"French", "Élève à l'école, déjà-vu", []string{"eleve", "a", "lecole", "deja", "vu"}},
		// Tonos dropped, final sigma folded.
		{"Greek", "Καλημέρα κόσμε ΆΣΤΡΟΣ", []string{"καλημερα", "κοσμε", "αστροσ"}},
		// ё folds to е, as Russian search engines do.
		{"Russian", "Привет, Ёлка! Съешь ещё", []string{"привет", "елка", "съешь", "еще"}},
		// Harakat are optional vowel marks: dropped.
		{"Arabic", "مَرْحَبًا بالعالم", []string{"مرحبا", "بالعالم"}},
		// Niqqud likewise.
		{"Hebrew", "שָׁלוֹם עוֹלָם", []string{"שלום", "עולם"}},
		// Viramas and vowel signs are letters: kept.
		{"Hindi", "नमस्ते दुनिया हिन्दी", []string{"नमस्ते", "दुनिया", "हिन्दी"}},
		// Bigrams of characters with their vowel and tone marks.
		{"Thai", "สวัสดีครับ", []string{"สวั", "วัส", "สดี", "ดีค", "ครั", "รับ"}},
		{"Lao", "ພາສາລາວ", []string{"ພາ", "າສ", "ສາ", "າລ", "ລາ", "າວ"}},
		{"Khmer", "ភាសាខ្មែរ", []string{"ភាសា", "សាខ្", "ខ្មែ", "មែរ"}},
		{"Myanmar", "မြန်မာစာ", []string{"မြန်", "န်မာ", "မာစာ"}},
		{"Chinese", "中华人民共和国", []string{"中华", "华人", "人民", "民共", "共和", "和国"}},
		// One run across kanji, hiragana and katakana; the prolonged
		// sound mark belongs to the run.
		{"Japanese", "東京都の会議はカタカナーです", []string{"東京", "京都", "都の", "の会", "会議", "議は", "はカ", "カタ", "タカ", "カナ", "ナー", "ーで", "です"}},
		{"Korean", "한국어 텍스트입니다", []string{"한국", "국어", "텍스", "스트", "트입", "입니", "니다"}},
		{"Mixed scripts", "abc한국어def 東京 tokyo東京", []string{"abc", "한국", "국어", "def", "東京", "tokyo", "東京"}},
		// Emoji are not words, and they separate words.
		{"Emoji", "Party 🎉 time 👩\u200d👩\u200d👧 ok❤️go", []string{"party", "time", "ok", "go"}},
		// A colon separates; addresses and host names are words with
		// their parts.
		{"Addresses and URLs", "mailto:Bob@Example.COM https://www.example.com/path?q=1",
			[]string{"mailto", "bob@example.com", "bob", "example.com", "example", "com", "https", "www.example.com", "example.com", "www", "example", "com", "path", "q", "1"}},
		{"Host with digits", "mx1.example.org", []string{"mx1.example.org", "example.org", "mx1", "example", "org"}},
		// Numbers keep their separators (UAX #29 WB11, WB12); a dotted
		// number also yields its parts.
		{"Numbers", "3.14 1,000 2024-01-31", []string{"3.14", "3", "14", "1,000", "2024", "01", "31"}},
		{"Fullwidth and ligature", "ＦＵＬＬＷＩＤＴＨ ﬁle", []string{"fullwidth", "file"}},
		{"Soft hyphen", "co\u00adoperate", []string{"cooperate"}},
		{"Curly apostrophe", "don’t", []string{"dont"}},
		{"Colon", "Re:Meeting ＲＥ：ok", []string{"re", "meeting", "re", "ok"}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, terms(c.in), "%s: Tokenize(%q)", c.name, c.in)
	}
}

// TestTokenizeNoLetterLost checks that folding drops no letter of the
// scripts that write vowels as marks: the folded term has as many
// non-mark characters as the word, and a word differing only in a
// vowel sign stays a different term.
func TestTokenizeNoLetterLost(t *testing.T) {
	require.NotEqual(t, QueryTerms("कुल"), QueryTerms("कल"), "Hindi: the vowel sign u is a letter")
	require.NotEqual(t, QueryTerms("ครับ"), QueryTerms("ครบ"), "Thai: the vowel sign is a letter")
	require.Equal(t, []string{"ครั", "รับ"}, QueryTerms("ครับ"), "a Thai query word is the phrase of its bigrams")
	require.NotEqual(t, QueryTerms("ガギ"), QueryTerms("カキ"), "Japanese: the voicing mark is part of the kana")
	require.Equal(t, QueryTerms("ガギ"), QueryTerms("ｶﾞｷﾞ"), "halfwidth kana fold to fullwidth")
	require.Equal(t, QueryTerms("cafe"), QueryTerms("café"), "Latin diacritics fold")
}

// TestTokenizeScriptRuns checks the substring property: any substring of
// two characters or more of a run is the phrase of bigrams of its
// characters, found at consecutive positions of the run's terms.
func TestTokenizeScriptRuns(t *testing.T) {
	for _, run := range []string{"สวัสดีครับ", "中华人民共和国", "東京都の会議", "ພາສາລາວ"} {
		doc := QueryTerms(run)
		chars := splitChars(run)
		for i := 0; i < len(chars); i++ {
			for j := i + 2; j <= len(chars); j++ {
				q := QueryTerms(strings.Join(chars[i:j], ""))
				require.Equal(t, doc[i:i+len(q)], q, "substring %q of %q", strings.Join(chars[i:j], ""), run)
			}
		}
	}
}

// splitChars splits s into characters: a base with its marks.
func splitChars(s string) []string {
	var out []string
	for _, r := range s {
		if isAttached(r) && len(out) > 0 {
			out[len(out)-1] += string(r)
			continue
		}
		out = append(out, string(r))
	}
	return out
}

// tokenizeSlow is Tokenize without the ASCII fast path.
func tokenizeSlow(text string) []Token {
	t := tokenizer{slow: true}
	var out []Token
	t.tokenize(text, 0, MaxFieldPositions, true, func(term []byte, pos, start, end int) {
		out = append(out, Token{Term: string(term), Pos: pos, Start: start, End: end})
	})
	return out
}

// TestTokenizeASCIIFastPath checks that the ASCII fast path yields exactly
// the tokens of uniseg's segmentation, on random strings over the ASCII
// characters that matter to word boundaries.
func TestTokenizeASCIIFastPath(t *testing.T) {
	const alphabet = "aZ09_.',;:@-!/ \n"
	rnd := uint64(1)
	for range 50000 {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		n := int(rnd>>59) + 1
		b := make([]byte, n)
		for i := range b {
			rnd = rnd*6364136223846793005 + 1442695040888963407
			b[i] = alphabet[(rnd>>33)%uint64(len(alphabet))]
		}
		s := string(b)
		require.Equal(t, tokenizeSlow(s), Tokenize(s), "Tokenize(%q)", s)
	}
	require.Equal(t, tokenizeSlow(englishText), Tokenize(englishText))
}

// FuzzTokenizeASCIIFastPath is TestTokenizeASCIIFastPath on fuzzed input.
func FuzzTokenizeASCIIFastPath(f *testing.F) {
	for _, s := range []string{"Hello, WORLD!", "can't 3.14 1,000", "a.b@c.d", "x:y'z", "1'2;3", "a_.b", "__", "re:ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, slow := Tokenize(s), tokenizeSlow(s)
		if len(fast) != len(slow) {
			t.Fatalf("Tokenize(%q): fast path %v, uniseg %v", s, fast, slow)
		}
		for i := range fast {
			if fast[i] != slow[i] {
				t.Fatalf("Tokenize(%q): fast path %v, uniseg %v", s, fast, slow)
			}
		}
	})
}

// TestFoldedRunFastPath checks that the shortcut of bigrams already in
// folded form agrees with folding: for every character of the scripts
// without spaces, alone and with each mark of its block after it.
func TestFoldedRunFastPath(t *testing.T) {
	check := func(w string) {
		if isFoldedRun(w) {
			require.Equal(t, w, string(appendFoldedSlow(nil, w)), "folding %q (%U)", w, []rune(w))
		}
	}
	n := 0
	for _, r16 := range runScripts.R16 {
		for r := rune(r16.Lo); r <= rune(r16.Hi); r += rune(r16.Stride) {
			check(string(r))
			n++
			if r < 0x1100 || (0x1780 <= r && r < 0x1800) {
				// Thai, Lao, Myanmar, Khmer: with each mark of the
				// block.
				for m := r &^ 0x7F; m < r&^0x7F+0x80; m++ {
					if isAttached(m) {
						check(string(r) + string(m))
					}
				}
			}
		}
	}
	for _, r32 := range runScripts.R32 {
		for r := rune(r32.Lo); r <= rune(r32.Hi); r += rune(r32.Stride) {
			check(string(r))
			n++
		}
	}
	require.Greater(t, n, 90000, "every character of the scripts is checked")
}
