package main

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
)

// benchUser owns every document of the index suite.
const benchUser = mailbricks.UserID("bench@example.com")

type oursIndex struct {
	b *lsmindex.Backend
	x *index.Index
}

func openOursIndex(dir string) (searchEngine, error) {
	b, err := lsmindex.Open(dir, nil)
	if err != nil {
		return nil, err
	}
	return &oursIndex{b: b, x: index.New(b, nil)}, nil
}

func (o *oursIndex) Index(docs []*benchDoc) error {
	return o.x.IndexBatch(context.Background(), benchUser, docs)
}

func (o *oursIndex) Search(q benchQuery) (int, error) {
	var iq index.Query
	switch q.kind {
	case "term":
		iq = index.Text(index.FieldAny, q.words[0])
	case "and":
		iq = index.And(index.Text(index.FieldAny, q.words[0]), index.Text(index.FieldAny, q.words[1]))
	case "phrase":
		iq = index.Text(index.FieldAny, strings.Join(q.words, " "))
	case "prefix":
		iq = index.Prefix(index.FieldAny, q.words[0])
	case "from":
		iq = index.Text(index.FieldFrom, q.words[0])
	case "mixed":
		iq = index.And(index.Text(index.FieldFrom, q.words[0]), index.HasFlag(index.FlagAttachment), index.Between(index.RangeDate, q.after.Unix(), math.MaxInt64))
	}
	res, err := o.x.Search(context.Background(), benchUser, iq, &index.SearchOptions{Limit: 20, NoSnippets: true})
	if err != nil {
		return 0, err
	}
	return res.Total, nil
}

// ColdUserSearch implements coldUserSearcher: a second Backend on the
// same DB starts with no user loaded.
func (o *oursIndex) ColdUserSearch(q benchQuery) (time.Duration, error) {
	cold := &oursIndex{b: lsmindex.New(o.b.DB(), nil)}
	cold.x = index.New(cold.b, nil)
	t := time.Now()
	_, err := cold.Search(q)
	return time.Since(t), err
}

func (o *oursIndex) Settle() error { return o.b.DB().Compact(nil, nil) }

func (e *bleveIndex) Settle() error { return nil }

func (o *oursIndex) Close() error { return o.x.Close() }

// bleveDoc is the document bleve indexes, mapped by bleve's default
// (dynamic) mapping: text fields with the standard analyzer, stored, with
// term vectors; Date as a datetime, HasAttachment as a boolean.
type bleveDoc struct {
	From          string    `json:"from"`
	To            string    `json:"to"`
	Cc            string    `json:"cc"`
	Subject       string    `json:"subject"`
	Body          string    `json:"body"`
	Filename      string    `json:"filename"`
	Folder        string    `json:"folder"`
	Date          time.Time `json:"date"`
	Size          float64   `json:"size"`
	HasAttachment bool      `json:"has_attachment"`
	Seen          bool      `json:"seen"`
}

type bleveIndex struct {
	idx bleve.Index
}

func openBleveIndex(dir string) (searchEngine, error) {
	path := dir + "/bleve"
	idx, err := bleve.Open(path)
	if err == bleve.ErrorIndexPathDoesNotExist {
		idx, err = bleve.New(path, bleve.NewIndexMapping())
	}
	if err != nil {
		return nil, err
	}
	return &bleveIndex{idx: idx}, nil
}

func addrText(as []index.Address) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Name)
		b.WriteByte(' ')
		b.WriteString(a.Addr)
		b.WriteByte(' ')
	}
	return b.String()
}

func (e *bleveIndex) Index(docs []*benchDoc) error {
	b := e.idx.NewBatch()
	for _, d := range docs {
		err := b.Index(d.ID.String(), bleveDoc{
			From: addrText(d.From), To: addrText(d.To), Cc: addrText(d.Cc),
			Subject: d.Subject, Body: d.Body, Filename: strings.Join(d.Filenames, " "),
			Folder: d.Folder, Date: d.Date, Size: float64(d.Size),
			HasAttachment: d.Flags&index.FlagAttachment != 0, Seen: d.Flags&index.FlagSeen != 0,
		})
		if err != nil {
			return err
		}
	}
	return e.idx.Batch(b)
}

func (e *bleveIndex) Search(q benchQuery) (int, error) {
	var bq query.Query
	switch q.kind {
	case "term":
		bq = bleve.NewMatchQuery(q.words[0])
	case "and":
		bq = bleve.NewConjunctionQuery(bleve.NewMatchQuery(q.words[0]), bleve.NewMatchQuery(q.words[1]))
	case "phrase":
		bq = bleve.NewMatchPhraseQuery(strings.Join(q.words, " "))
	case "prefix":
		bq = bleve.NewPrefixQuery(q.words[0])
	case "from":
		m := bleve.NewMatchQuery(q.words[0])
		m.SetField("from")
		bq = m
	case "mixed":
		m := bleve.NewMatchQuery(q.words[0])
		m.SetField("from")
		att := bleve.NewBoolFieldQuery(true)
		att.SetField("has_attachment")
		dr := bleve.NewDateRangeQuery(q.after, time.Time{})
		dr.SetField("date")
		bq = bleve.NewConjunctionQuery(m, att, dr)
	}
	req := bleve.NewSearchRequestOptions(bq, 20, 0, false)
	req.SortBy([]string{"-date"})
	res, err := e.idx.Search(req)
	if err != nil {
		return 0, err
	}
	return int(res.Total), nil
}

func (e *bleveIndex) Close() error { return e.idx.Close() }
