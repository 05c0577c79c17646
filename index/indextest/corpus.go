package indextest

import (
	"bytes"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/corpus"
)

// CorpusDocuments parses the first n messages of the SpamAssassin public
// corpus (all of them if n <= 0) with [index.DocumentFromMessage]. Each gets
// deterministic Values: a Date (the Date header's, or a synthetic one),
// its corpus group as folder, flags, a keyword, a thread, a UID and a
// MODSEQ, so every operator has something to match. The corpus is fetched
// on first use (see internal/corpus).
func CorpusDocuments(tb testing.TB, n int) []*index.Document {
	tb.Helper()
	msgs := corpus.ForTest(tb)
	if n <= 0 || n > len(msgs) {
		n = len(msgs)
	}
	docs := make([]*index.Document, 0, n)
	base := time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range msgs[:n] {
		date := base.Add(time.Duration(i) * 97 * time.Minute)
		v := index.Values{
			Date:   date,
			Folder: m.Group,
			Flags:  index.Flag(i*2654435761>>7) & (index.FlagSeen | index.FlagAnswered | index.FlagFlagged | index.FlagDraft),
			Thread: "t" + itoa(i/4),
			UID:    uint32(i + 1),
			ModSeq: uint64(i%500 + 1),
		}
		if i%5 == 0 {
			v.Keywords = []string{"five"}
		}
		d, err := index.DocumentFromMessage(mailbricks.NewMessageIDAt(date), bytes.NewReader(m.Raw), v)
		if err != nil {
			tb.Fatalf("corpus message %s/%s: %v", m.Group, m.Name, err)
		}
		docs = append(docs, d)
	}
	return docs
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

// Golden indexes docs for a user of x, in batches, and requires the
// answers to n generated queries ([Queries]) to equal those of brute, an
// empty evaluator configured like the backend.
func Golden(t *testing.T, x *index.Index, brute *Brute, docs []*index.Document, seed uint64, n int) {
	t.Helper()
	u := mailbricks.UserID("golden")
	for i := 0; i < len(docs); i += 500 {
		batch := docs[i:min(i+500, len(docs))]
		if err := x.IndexBatch(ctx, u, batch); err != nil {
			t.Fatal(err)
		}
		for _, d := range batch {
			brute.Add(d)
		}
	}
	Compare(t, x, u, brute, Queries(docs, seed, n))
}
