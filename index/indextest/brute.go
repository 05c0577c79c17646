package indextest

import (
	"slices"
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
)

// Brute is a brute-force evaluator: it keeps every document's terms and
// positions in maps and answers a query by testing each document in turn.
// It shares only the tokenizer ([index.Document.Analyze]) with the
// backends, so it is the reference the conformance suite and the golden
// tests compare them with. It is not safe for concurrent use.
type Brute struct {
	// PositionLimit, if positive, keeps only the first PositionLimit
	// positions of a term in a field of a document, as a backend with
	// that limit does (pgindex: 256).
	PositionLimit int

	docs map[mailbricks.MessageID]*bruteDoc
}

type bruteDoc struct {
	id     mailbricks.MessageID
	v      index.Values
	fields [index.NumFields]map[string][]int
}

// NewBrute returns an empty evaluator; the zero Brute is one too.
func NewBrute() *Brute { return &Brute{docs: map[mailbricks.MessageID]*bruteDoc{}} }

// Add adds or replaces a document.
func (b *Brute) Add(d *index.Document) {
	bd := &bruteDoc{id: d.ID, v: d.Values}
	bd.v.Keywords = slices.Clone(d.Keywords)
	for i := range bd.fields {
		bd.fields[i] = map[string][]int{}
	}
	d.Analyze(func(f index.Field, term []byte, pos int) {
		m := bd.fields[f]
		ps := m[string(term)]
		if len(ps) > 0 && ps[len(ps)-1] == pos || b.PositionLimit > 0 && len(ps) >= b.PositionLimit {
			return
		}
		m[string(term)] = append(ps, pos)
	})
	if b.docs == nil {
		b.docs = map[mailbricks.MessageID]*bruteDoc{}
	}
	b.docs[d.ID] = bd
}

// Delete removes a document.
func (b *Brute) Delete(id mailbricks.MessageID) { delete(b.docs, id) }

// Update replaces a document's values; it reports whether it exists.
func (b *Brute) Update(id mailbricks.MessageID, v index.Values) bool {
	d := b.docs[id]
	if d == nil {
		return false
	}
	d.v = v
	d.v.Keywords = slices.Clone(v.Keywords)
	return true
}

// Len returns the number of documents.
func (b *Brute) Len() int { return len(b.docs) }

// Search returns the IDs of the documents that match the resolved query
// q, in order s.
func (b *Brute) Search(q index.Query, s index.Sort) []mailbricks.MessageID {
	var out []*bruteDoc
	for _, d := range b.docs {
		if d.match(q) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(x, y *bruteDoc) int {
		if index.Less(s, index.UnixOrZero(x.v.Date), x.id, index.UnixOrZero(y.v.Date), y.id) {
			return -1
		}
		return 1
	})
	ids := make([]mailbricks.MessageID, len(out))
	for i, d := range out {
		ids[i] = d.id
	}
	return ids
}

func (d *bruteDoc) match(q index.Query) bool {
	switch q.Kind {
	case index.KindAll:
		return true
	case index.KindAnd:
		for _, s := range q.Sub {
			if !d.match(s) {
				return false
			}
		}
		return true
	case index.KindOr:
		for _, s := range q.Sub {
			if d.match(s) {
				return true
			}
		}
		return false
	case index.KindNot:
		return !d.match(q.Sub[0])
	case index.KindText:
		if len(q.Terms) == 0 {
			return true
		}
		if q.Field != index.FieldAny {
			return d.phrase(q.Field, q.Terms, q.Prefix)
		}
		for _, f := range index.ContentFields {
			if d.phrase(f, q.Terms, q.Prefix) {
				return true
			}
		}
		return false
	case index.KindFlag:
		return d.v.Flags&q.Flag == q.Flag
	case index.KindKeyword:
		return slices.Contains(d.v.Keywords, q.Text)
	case index.KindFolder:
		return d.v.Folder == q.Text
	case index.KindThread:
		return d.v.Thread == q.Text
	case index.KindUID:
		for _, r := range q.UIDs {
			if r.Start <= d.v.UID && d.v.UID <= r.Stop {
				return true
			}
		}
		return false
	case index.KindRange:
		var x int64
		switch q.Range {
		case index.RangeDate:
			x = index.UnixOrZero(d.v.Date)
		case index.RangeSentDate:
			x = index.UnixOrZero(d.v.SentDate)
		case index.RangeSize:
			x = d.v.Size
		case index.RangeModSeq:
			x = int64(d.v.ModSeq)
		}
		return q.Min <= x && x < q.Max
	}
	panic("indextest: unresolved or unknown query kind")
}

// positions returns the positions of slot i of a phrase in field f.
func (d *bruteDoc) positions(f index.Field, t string, prefix bool) []int {
	m := d.fields[f]
	if !prefix {
		return m[t]
	}
	var out []int
	for term, ps := range m {
		if strings.HasPrefix(term, t) {
			out = append(out, ps...)
		}
	}
	return out
}

func (d *bruteDoc) phrase(f index.Field, terms []string, prefix bool) bool {
	slots := make([][]int, len(terms))
	for i, t := range terms {
		slots[i] = d.positions(f, t, prefix && i == len(terms)-1)
		if len(slots[i]) == 0 {
			return false
		}
	}
	for _, p := range slots[0] {
		ok := true
		for i := 1; i < len(slots) && ok; i++ {
			ok = slices.Contains(slots[i], p+i)
		}
		if ok {
			return true
		}
	}
	return false
}
