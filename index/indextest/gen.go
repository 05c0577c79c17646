package indextest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

var vocab = strings.Fields(`alpha bravo charlie delta echo foxtrot golf hotel india juliet
kilo lima mike november oscar papa quebec romeo sierra tango report quarterly budget
meeting invoice café naïve Straße résumé 東京都 京都 東京 日本語 can't e-mail 3.14
release notes server outage`)

var people = []index.Address{
	{Name: "Alice Smith", Addr: "alice@example.com"},
	{Name: "Bob Jones", Addr: "bob.jones@mail.example.org"},
	{Name: "Carol", Addr: "carol@corp.test"},
	{Name: "Dave Müller", Addr: "dave@example.com"},
	{Name: "", Addr: "eve@evil.test"},
}

var folders = []string{"INBOX", "Sent", "Archive", "Spam"}
var keywords = []string{"$Important", "work", "travel"}

// RandomDocuments returns n random documents with a small vocabulary, so
// that terms, phrases and filters all have matches. The same seed gives
// the same documents.
func RandomDocuments(seed uint64, n int) []*index.Document {
	r := rand.New(rand.NewPCG(seed, 42))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	docs := make([]*index.Document, n)
	words := func(k int) string {
		w := make([]string, k)
		for i := range w {
			w[i] = vocab[r.IntN(len(vocab))]
		}
		return strings.Join(w, " ")
	}
	addrs := func(k int) []index.Address {
		out := make([]index.Address, k)
		for i := range out {
			out[i] = people[r.IntN(len(people))]
		}
		return out
	}
	for i := range docs {
		date := base.Add(time.Duration(r.IntN(400*24)) * time.Hour)
		d := &index.Document{
			ID:      mailbricks.NewMessageIDAt(date),
			From:    addrs(1),
			To:      addrs(1 + r.IntN(2)),
			Cc:      addrs(r.IntN(2)),
			Subject: words(1 + r.IntN(4)),
			Body:    words(5 + r.IntN(40)),
		}
		if r.IntN(5) == 0 {
			d.Bcc = addrs(1)
		}
		if r.IntN(4) == 0 {
			d.Filenames = []string{words(1) + ".pdf"}
			d.Flags |= index.FlagAttachment
		}
		if r.IntN(3) == 0 {
			d.Headers = []index.Header{{Name: "List-Id", Value: words(1) + " <list.example.com>"}}
		}
		d.Date = date
		if r.IntN(2) == 0 {
			d.SentDate = date.Add(-time.Duration(r.IntN(48)) * time.Hour)
		}
		d.Size = int64(500 + r.IntN(100000))
		d.Folder = folders[r.IntN(len(folders))]
		d.Flags |= index.Flag(r.IntN(64))
		if r.IntN(3) == 0 {
			d.Keywords = []string{keywords[r.IntN(len(keywords))]}
		}
		d.Thread = fmt.Sprintf("t%d", r.IntN(n/3+1))
		d.UID = uint32(i + 1)
		d.ModSeq = uint64(r.IntN(1000) + 1)
		docs[i] = d
	}
	return docs
}

// Queries returns n queries over docs that exercise every query kind and
// operator: terms, phrases of two and three words, prefixes, every field,
// headers, flags, keywords, folders, threads, every range, UID sets,
// relative ages and boolean combinations, some of them through [index.Parse].
// Terms are drawn from the documents so most queries match something.
func Queries(docs []*index.Document, seed uint64, n int) []index.Query {
	r := rand.New(rand.NewPCG(seed, 7))
	pick := func() *index.Document { return docs[r.IntN(len(docs))] }
	// word returns a query word from a random document's field.
	word := func(f index.Field) string {
		for range 20 {
			d := pick()
			var text string
			switch f {
			case index.FieldFrom, index.FieldTo, index.FieldCc, index.FieldBcc:
				var l []index.Address
				switch f {
				case index.FieldFrom:
					l = d.From
				case index.FieldTo:
					l = d.To
				case index.FieldCc:
					l = d.Cc
				default:
					l = d.Bcc
				}
				if len(l) == 0 {
					continue
				}
				a := l[r.IntN(len(l))]
				text = a.Name + " " + a.Addr
			case index.FieldSubject:
				text = d.Subject
			case index.FieldFilename:
				if len(d.Filenames) == 0 {
					continue
				}
				text = d.Filenames[0]
			default:
				text = d.Body
			}
			toks := index.Tokenize(text)
			if len(toks) == 0 {
				continue
			}
			return toks[r.IntN(len(toks))].Term
		}
		return "alpha"
	}
	phrase := func(k int) string {
		for range 20 {
			d := pick()
			toks := index.Tokenize(d.Body)
			// One token per position.
			var byPos []string
			for _, t := range toks {
				if len(byPos) == t.Pos {
					byPos = append(byPos, t.Term)
				}
			}
			if len(byPos) < k {
				continue
			}
			i := r.IntN(len(byPos) - k + 1)
			return strings.Join(byPos[i:i+k], " ")
		}
		return "alpha bravo"
	}
	prefix := func() string {
		w := word(index.FieldBody)
		rs := []rune(w)
		if len(rs) > 3 {
			rs = rs[:1+r.IntN(3)]
		}
		return string(rs)
	}
	dateOf := func() time.Time { return pick().Date }
	leaf := func() index.Query {
		switch r.IntN(26) {
		case 0, 1:
			return index.Text(index.FieldAny, word(index.FieldBody))
		case 2:
			return index.Text(index.FieldBody, word(index.FieldBody))
		case 3:
			return index.Text(index.FieldAny, phrase(2))
		case 4:
			return index.Text(index.FieldBody, phrase(3))
		case 5:
			return index.Prefix(index.FieldAny, prefix())
		case 6:
			return index.Text(index.FieldFrom, word(index.FieldFrom))
		case 7:
			return index.Text(index.FieldTo, word(index.FieldTo))
		case 8:
			return index.Text(index.FieldCc, word(index.FieldCc))
		case 9:
			return index.Text(index.FieldBcc, word(index.FieldBcc))
		case 10:
			return index.Text(index.FieldSubject, word(index.FieldSubject))
		case 11:
			return index.Text(index.FieldFilename, word(index.FieldFilename))
		case 12:
			d := pick()
			if len(d.Headers) == 0 {
				return index.HeaderText("List-Id", "")
			}
			h := d.Headers[r.IntN(len(d.Headers))]
			toks := index.Tokenize(h.Value)
			if len(toks) == 0 {
				return index.HeaderText(h.Name, "")
			}
			return index.HeaderText(h.Name, toks[r.IntN(len(toks))].Term)
		case 13:
			flags := []index.Flag{index.FlagSeen, index.FlagAnswered, index.FlagFlagged, index.FlagDeleted, index.FlagDraft, index.FlagRecent, index.FlagAttachment}
			return index.HasFlag(flags[r.IntN(len(flags))])
		case 14:
			d := pick()
			if len(d.Keywords) > 0 {
				return index.HasKeyword(d.Keywords[0])
			}
			return index.HasKeyword("work")
		case 15:
			return index.InFolder(pick().Folder)
		case 16:
			return index.InThread(pick().Thread)
		case 17:
			return index.Before(index.RangeDate, dateOf())
		case 18:
			return index.Since(index.RangeDate, dateOf())
		case 19:
			return index.On(index.RangeDate, dateOf())
		case 20:
			d := pick()
			if d.SentDate.IsZero() {
				return index.Since(index.RangeSentDate, dateOf())
			}
			switch r.IntN(3) {
			case 0:
				return index.Before(index.RangeSentDate, d.SentDate)
			case 1:
				return index.On(index.RangeSentDate, d.SentDate)
			}
			return index.Since(index.RangeSentDate, d.SentDate)
		case 21:
			s := pick().Size
			if r.IntN(2) == 0 {
				return index.Between(index.RangeSize, s+1, math.MaxInt64) // LARGER
			}
			return index.Between(index.RangeSize, 0, s) // SMALLER
		case 22:
			a, b := pick().UID, pick().UID
			if a > b {
				a, b = b, a
			}
			return index.UIDIn(index.UIDRange{Start: a, Stop: b}, index.UIDRange{Start: pick().UID, Stop: pick().UID})
		case 23:
			return index.Between(index.RangeModSeq, int64(pick().ModSeq), math.MaxInt64)
		case 24:
			if r.IntN(2) == 0 {
				return index.Query{Kind: index.KindNewer, Age: time.Duration(r.IntN(500)) * 24 * time.Hour}
			}
			return index.Query{Kind: index.KindOlder, Age: time.Duration(r.IntN(500)) * 24 * time.Hour}
		default:
			return index.All()
		}
	}
	var out []index.Query
	for len(out) < n {
		switch r.IntN(8) {
		case 0:
			out = append(out, index.And(leaf(), leaf()))
		case 1:
			out = append(out, index.Or(leaf(), leaf()))
		case 2:
			out = append(out, index.Not(leaf()))
		case 3:
			out = append(out, index.And(leaf(), index.Not(leaf())))
		case 4:
			// Through the query language.
			s := fmt.Sprintf("from:%s %s", quote(word(index.FieldFrom)), quote(word(index.FieldBody)))
			switch r.IntN(4) {
			case 0:
				s = fmt.Sprintf("%q OR %s*", phrase(2), prefix())
			case 1:
				s = fmt.Sprintf("subject:(%s) -%s has:attachment", quote(word(index.FieldSubject)), quote(word(index.FieldBody)))
			case 2:
				s = fmt.Sprintf("to:%s after:%s before:%s", quote(word(index.FieldTo)), dateOf().Format("2006/01/02"), dateOf().AddDate(0, 2, 0).Format("2006/01/02"))
			}
			q, err := index.Parse(s)
			if err != nil {
				panic(fmt.Sprintf("indextest: generated query %q does not parse: %v", s, err))
			}
			out = append(out, q)
		default:
			out = append(out, leaf())
		}
	}
	return out
}

// quote quotes w for the query language when it holds characters the
// parser treats specially.
func quote(w string) string {
	if w == "OR" || w == "AND" || strings.ContainsAny(w, " ()\":-*|") {
		return fmt.Sprintf("%q", strings.ReplaceAll(w, `"`, ""))
	}
	return w
}
