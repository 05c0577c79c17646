package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/internal/corpus"
)

// The index suite compares the index block on the lsm engine (ours:
// index/lsmindex) with bleve v2 (scorch) and SQLite FTS5 (sqlite, and
// sqlite_rowid ordered by rowid: see index_sqlite.go), all given the same
// parsed documents: the SpamAssassin public corpus (6,046 messages) expanded to
// -keys documents (default 100,000; 10,000 with -quick) by replicas whose
// subject, sender and body are perturbed (the body rotated at a word
// boundary, a replica tag in the subject, the sender's local part
// suffixed), all in one user's mailbox.
//
// Each implementation, in its own process:
//
//   - index_docs: indexes every document in batches of -batch and
//     settles (ours compacts its lsm tree; the time counts), ops =
//     documents per second, cpu_seconds = the process's CPU time for it
//     (RATIO index_docs_per_cpu compares documents per CPU-second); then
//     closes the index.
//   - size: the bytes the index directory takes after Close and reopening.
//   - cold_first_query: it reopens the index and times the first query
//     (a rare term), which for ours loads the user's doc values and the
//     touched tables' index and filter blocks: the median over
//     -cold-repeats close/reopen/query cycles of the wall time
//     (latency_us) and of the process's CPU time (cpu_us, which a loaded
//     machine inflates less); first_latency_us is the first cycle's
//     alone, open_us the median time the reopen itself took. cold_user_query (ours only): the
//     same with the DB open and warm but the user's doc values not
//     loaded, as after the memory budget unloaded the user; p50/p99 of
//     20 such queries.
//   - Then for each query workload it runs -queries queries one after
//     the other and reports the latency p50 and p99 in microseconds: term_rare (a word in 2–10
//     corpus messages), term_common (one of the 40 most frequent words),
//     and (two frequent words of one message), phrase2 and phrase3
//     (consecutive words of a message), prefix (four letters and *),
//     from (a sender word), mixed (from: a sender of a message with an
//     attachment, has:attachment, after: a date in the first half).
//
// Every search asks for the 20 newest hits and the total count, without
// snippets or highlighting; bleve sorts by -date to give the same
// answer. Query words are plain lowercase ASCII words of three letters or
// more that are not English stop words, so both analyzers see the same
// tokens.
type indexSuite struct {
	batch       int
	queries     int
	coldRepeats int
	coldProfile string
}

func init() { register("index", newIndexSuite) }

func newIndexSuite() suite { return &indexSuite{} }

func (s *indexSuite) Impls() []string { return []string{"ours", "bleve", "sqlite", "sqlite_rowid"} }

func (s *indexSuite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.batch, "batch", 1000, "documents per indexing batch")
	fs.IntVar(&s.queries, "queries", 0, "queries per query workload (0: 300, or 60 with -quick)")
	fs.IntVar(&s.coldRepeats, "cold-repeats", 9, "reopen-and-first-query samples of cold_first_query (the median is reported)")
	fs.StringVar(&s.coldProfile, "cold-cpuprofile", "", "write the CPU profile of the repeated cold_first_query samples to this path with \".<impl>\" appended")
}

// indexQueryWorkloads are the query workloads in report order.
var indexQueryWorkloads = []string{"term_rare", "term_common", "and", "phrase2", "phrase3", "prefix", "from", "mixed"}

// benchDoc is a document with the bits both implementations need.
type benchDoc = index.Document

// searchEngine is what the workloads need from an implementation.
type searchEngine interface {
	// Index indexes a batch.
	Index(docs []*benchDoc) error
	// Settle finishes the indexing work the implementation defers
	// (ours: flush and compact the lsm tree, folding the postings merge
	// operands; bleve: nothing, its merges run in the background).
	Settle() error
	// Search runs q and returns the total number of hits.
	Search(q benchQuery) (int, error)
	Close() error
}

// coldUserSearcher is implemented by engines that keep per-user state in
// memory (ours): ColdUserSearch runs q for a user whose state is not
// loaded, on the open DB, and returns its latency.
type coldUserSearcher interface {
	ColdUserSearch(q benchQuery) (time.Duration, error)
}

// benchQuery is one query in both forms.
type benchQuery struct {
	kind  string
	words []string  // term, and, phrase: the words; prefix: the prefix; from/mixed: the sender word
	after time.Time // mixed
}

func (q benchQuery) String() string { return q.kind + ":" + strings.Join(q.words, " ") }

func (s *indexSuite) Run(impl string, c *config, r *reporter) error {
	n := c.Keys
	if n <= 0 {
		n = 100_000
		if c.Quick {
			n = 10_000
		}
	}
	nq := s.queries
	if nq <= 0 {
		nq = 300
		if c.Quick {
			nq = 60
		}
	}
	if s.batch <= 0 {
		return errors.New("-batch must be positive")
	}
	ctx := context.Background()
	msgs, err := corpus.Load(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	docs, err := expandCorpus(msgs, n)
	if err != nil {
		return err
	}
	queries := makeBenchQueries(docs[:len(msgs)], nq)
	fmt.Fprintf(os.Stderr, "index %s: %d documents parsed and expanded in %v\n", impl, len(docs), time.Since(t0).Round(time.Millisecond))

	dir, err := os.MkdirTemp(c.Dir, "mailbricks-bench-index-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	open := map[string]func(string) (searchEngine, error){
		"ours": openOursIndex, "bleve": openBleveIndex,
		"sqlite": openSQLiteIndex(true), "sqlite_rowid": openSQLiteIndex(false),
	}[impl]
	if open == nil {
		return fmt.Errorf("unknown implementation %q", impl)
	}
	e, err := open(dir)
	if err != nil {
		return err
	}
	cpuIdx := cpuTime()
	t0 = time.Now()
	for i := 0; i < len(docs); i += s.batch {
		if err := e.Index(docs[i:min(i+s.batch, len(docs))]); err != nil {
			return err
		}
	}
	tIdx := time.Since(t0)
	if err := e.Settle(); err != nil {
		return err
	}
	d, cpu := time.Since(t0), cpuTime()-cpuIdx
	fmt.Fprintf(os.Stderr, "index %s: batches took %v, settle %v, CPU %v\n", impl, tIdx.Round(time.Millisecond), (d - tIdx).Round(time.Millisecond), cpu.Round(time.Millisecond))
	r.result("index_docs", float64(len(docs))/d.Seconds(), kv{"docs", float64(len(docs))}, kv{"seconds", d.Seconds()}, kv{"cpu_seconds", cpu.Seconds()})
	t1 := time.Now()
	if err := e.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "index %s: indexed in %v, closed in %v\n", impl, d.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	if e, err = open(dir); err != nil {
		return err
	}
	defer func() { e.Close() }()
	// Measured after reopening: files that the last compaction made
	// obsolete are deleted by then.
	data, _, byExt, err := dirBytes(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "index %s: size %d bytes (%s)\n", impl, data, byExt)
	r.result("size", 0, kv{"bytes", float64(data)}, kv{"bytes_per_doc", float64(data) / float64(len(docs))})
	cpu0 := cpuTime()
	t1 = time.Now()
	if _, err := e.Search(queries["term_rare"][0]); err != nil {
		return err
	}
	cold, coldCPU := time.Since(t1), cpuTime()-cpu0
	fmt.Fprintf(os.Stderr, "index %s: reopened, first query in %v (CPU %v)\n", impl, cold.Round(10*time.Microsecond), coldCPU.Round(10*time.Microsecond))
	// One sample swings with the machine's load: repeat close, reopen,
	// first query, and report the median of all samples, the reopen's
	// own time beside it.
	lats, cpus, opens := []float64{float64(cold.Microseconds())}, []float64{float64(coldCPU.Microseconds())}, []float64{}
	if s.coldProfile != "" {
		f, err := os.Create(s.coldProfile + "." + impl)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for i := 1; i < s.coldRepeats; i++ {
		if err := e.Close(); err != nil {
			return err
		}
		t := time.Now()
		if e, err = open(dir); err != nil {
			return err
		}
		opens = append(opens, float64(time.Since(t).Microseconds()))
		cpu0, t := cpuTime(), time.Now()
		if _, err := e.Search(queries["term_rare"][i%len(queries["term_rare"])]); err != nil {
			return err
		}
		lats = append(lats, float64(time.Since(t).Microseconds()))
		cpus = append(cpus, float64((cpuTime() - cpu0).Microseconds()))
	}
	if s.coldProfile != "" {
		pprof.StopCPUProfile()
	}
	sort.Float64s(lats)
	sort.Float64s(cpus)
	sort.Float64s(opens)
	kvs := []kv{{"latency_us", pct(lats, 50)}, {"cpu_us", pct(cpus, 50)}, {"first_latency_us", float64(cold.Microseconds())}, {"samples", float64(len(lats))}}
	if len(opens) > 0 {
		kvs = append(kvs, kv{"open_us", pct(opens, 50)})
	}
	r.result("cold_first_query", 1e6/pct(lats, 50), kvs...)
	if cu, ok := e.(coldUserSearcher); ok {
		// The DB is open and warm, the user is not: what a machine
		// serving many users pays when the memory budget unloaded one.
		var lat, cpu []float64
		for i := range 20 {
			cpu0 := cpuTime()
			d, err := cu.ColdUserSearch(queries["term_rare"][i%len(queries["term_rare"])])
			if err != nil {
				return err
			}
			lat = append(lat, float64(d.Microseconds()))
			cpu = append(cpu, float64((cpuTime() - cpu0).Microseconds()))
		}
		sort.Float64s(lat)
		sort.Float64s(cpu)
		r.result("cold_user_query", 1e6/pct(lat, 50), kv{"p50_us", pct(lat, 50)}, kv{"p99_us", pct(lat, 99)}, kv{"cpu_p50_us", pct(cpu, 50)})
	}
	for _, w := range indexQueryWorkloads {
		qs := queries[w]
		lat := make([]float64, 0, nq)
		hits := 0
		for i := 0; i < nq; i++ {
			q := qs[i%len(qs)]
			t := time.Now()
			h, err := e.Search(q)
			if err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			lat = append(lat, float64(time.Since(t).Nanoseconds())/1e3)
			hits += h
		}
		sort.Float64s(lat)
		mean := 0.0
		for _, l := range lat {
			mean += l
		}
		mean /= float64(len(lat))
		r.result(w, 1e6/mean, kv{"p50_us", pct(lat, 50)}, kv{"p99_us", pct(lat, 99)}, kv{"mean_hits", float64(hits) / float64(nq)})
	}
	return nil
}

// cpuTime returns the CPU time (user and system) the process has used,
// which a loaded machine inflates less than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(sorted []float64, p float64) float64 {
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func (s *indexSuite) Ratios(rs *results) []ratio {
	var out []ratio
	for _, peer := range []string{"bleve", "sqlite", "sqlite_rowid"} {
		label := peer + "/ours"
		ours, ok1 := rs.get("index_docs", "ours")
		p, ok2 := rs.get("index_docs", peer)
		if ok1 && ok2 && p.OpsPerSec > 0 {
			out = append(out, ratio{"index_docs", "ours/" + peer, ours.OpsPerSec / p.OpsPerSec})
			oc, _ := ours.ExtraValue("cpu_seconds")
			pc, _ := p.ExtraValue("cpu_seconds")
			if oc > 0 && pc > 0 {
				// Documents per CPU-second, which a loaded machine
				// disturbs less than documents per second.
				out = append(out, ratio{"index_docs_per_cpu", "ours/" + peer, pc / oc})
			}
		}
		// Lower is better for both: the ratio is peer over ours.
		for _, w := range []struct{ workload, key string }{{"size", "bytes"}, {"cold_first_query", "latency_us"}} {
			ours, ok1 := rs.get(w.workload, "ours")
			p, ok2 := rs.get(w.workload, peer)
			if !ok1 || !ok2 {
				continue
			}
			o, _ := ours.ExtraValue(w.key)
			pv, _ := p.ExtraValue(w.key)
			if o > 0 {
				out = append(out, ratio{w.workload, label, pv / o})
			}
		}
		for _, w := range indexQueryWorkloads {
			stats := []string{"p50"}
			switch {
			case strings.HasPrefix(w, "phrase"):
				stats = []string{"p99"}
			case w == "term_rare" || w == "mixed":
				stats = []string{"p50", "p99"}
			}
			ours, ok1 := rs.get(w, "ours")
			p, ok2 := rs.get(w, peer)
			if !ok1 || !ok2 {
				continue
			}
			for _, stat := range stats {
				o, _ := ours.ExtraValue(stat + "_us")
				pl, _ := p.ExtraValue(stat + "_us")
				if o > 0 {
					out = append(out, ratio{w + "_" + stat, label, pl / o})
				}
			}
		}
	}
	return out
}

// expandCorpus parses the corpus and expands it to n documents: replica r
// of message i has its body rotated at a word boundary, " r<r>" appended
// to the subject and "<r>" to the sender's local part. Dates increase
// with the document number, one every 5 minutes.
func expandCorpus(msgs []corpus.Message, n int) ([]*benchDoc, error) {
	base := make([]*benchDoc, len(msgs))
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range msgs {
		d, err := index.DocumentFromMessage(mailbricks.MessageID{}, strings.NewReader(string(m.Raw)), index.Values{Folder: m.Group})
		if err != nil {
			return nil, err
		}
		base[i] = d
	}
	docs := make([]*benchDoc, n)
	for j := range docs {
		i, rep := j%len(base), j/len(base)
		b := base[i]
		d := *b
		date := start.Add(time.Duration(j) * 5 * time.Minute)
		d.ID = mailbricks.NewMessageIDAt(date)
		d.Date = date
		if rep > 0 {
			d.Subject = fmt.Sprintf("%s r%d", b.Subject, rep)
			if len(b.From) > 0 {
				d.From = slices.Clone(b.From)
				a := d.From[0].Addr
				if at := strings.IndexByte(a, '@'); at > 0 {
					d.From[0].Addr = fmt.Sprintf("%s%d%s", a[:at], rep, a[at:])
				}
			}
			if len(b.Body) > 64 {
				k := (rep * 7919) % len(b.Body)
				for k < len(b.Body) && b.Body[k] != ' ' && b.Body[k] != '\n' {
					k++
				}
				d.Body = b.Body[k:] + "\n" + b.Body[:k]
			}
		}
		docs[j] = &d
	}
	return docs, nil
}

// stopWords are bleve's English stop words (analysis/lang/en), which its
// default analyzer drops; query words avoid them.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a about above after again against all am an and any are aren't as at be because been before being
below between both but by can't cannot could couldn't did didn't do does doesn't doing don't down during each few for from
further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's
i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
or other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such than that
that's the their theirs them themselves then there there's these they they'd they'll they're they've this those through to
too under until up very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while
who who's whom why why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves`) {
		stopWords[w] = true
	}
}

// plainWord reports whether w is a query word both analyzers agree on.
func plainWord(w string) bool {
	if len(w) < 3 || len(w) > 20 || stopWords[w] {
		return false
	}
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return true
}

// makeBenchQueries draws the queries of every workload from the base
// documents, deterministically.
func makeBenchQueries(base []*benchDoc, n int) map[string][]benchQuery {
	r := rand.New(rand.NewPCG(1, 2))
	df := map[string]int{}
	bodies := make([][]string, len(base)) // per doc: body words by position, "" where not plain
	for i, d := range base {
		seen := map[string]bool{}
		var byPos []string
		for _, t := range index.Tokenize(d.Body) {
			if t.Pos < len(byPos) {
				continue
			}
			w := ""
			if src := d.Body[t.Start:t.End]; src == t.Term && plainWord(t.Term) {
				w = t.Term
			}
			byPos = append(byPos, w)
			if w != "" && !seen[w] {
				seen[w] = true
				df[w]++
			}
		}
		bodies[i] = byPos
	}
	words := make([]string, 0, len(df))
	for w := range df {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		return df[words[i]] > df[words[j]] || df[words[i]] == df[words[j]] && words[i] < words[j]
	})
	var rare []string
	for _, w := range words {
		if df[w] >= 2 && df[w] <= 10 {
			rare = append(rare, w)
		}
	}
	common := words[:min(40, len(words))]
	frequent := words[:min(300, len(words))]
	isFrequent := map[string]bool{}
	for _, w := range frequent {
		isFrequent[w] = true
	}
	out := map[string][]benchQuery{}
	for range n {
		out["term_rare"] = append(out["term_rare"], benchQuery{kind: "term", words: []string{rare[r.IntN(len(rare))]}})
		out["term_common"] = append(out["term_common"], benchQuery{kind: "term", words: []string{common[r.IntN(len(common))]}})
		w := frequent[20+r.IntN(len(frequent)-20)]
		out["prefix"] = append(out["prefix"], benchQuery{kind: "prefix", words: []string{w[:min(4, len(w))]}})
	}
	phrase := func(k int) []string {
		for {
			b := bodies[r.IntN(len(bodies))]
			if len(b) < k {
				continue
			}
			i := r.IntN(len(b) - k + 1)
			ok := true
			for _, w := range b[i : i+k] {
				ok = ok && w != ""
			}
			if ok {
				return slices.Clone(b[i : i+k])
			}
		}
	}
	for range n {
		out["phrase2"] = append(out["phrase2"], benchQuery{kind: "phrase", words: phrase(2)})
		out["phrase3"] = append(out["phrase3"], benchQuery{kind: "phrase", words: phrase(3)})
		// AND: two frequent words of one message.
		for {
			b := bodies[r.IntN(len(bodies))]
			var f []string
			for _, w := range b {
				if isFrequent[w] && !slices.Contains(f, w) {
					f = append(f, w)
				}
			}
			if len(f) >= 2 {
				i := r.IntN(len(f))
				j := (i + 1 + r.IntN(len(f)-1)) % len(f)
				out["and"] = append(out["and"], benchQuery{kind: "and", words: []string{f[i], f[j]}})
				break
			}
		}
	}
	senderWord := func(d *benchDoc) string {
		if len(d.From) == 0 {
			return ""
		}
		var ws []string
		for _, t := range index.Tokenize(d.From[0].Name + " " + d.From[0].Addr) {
			if plainWord(t.Term) && t.Term != "com" && t.Term != "net" && t.Term != "org" {
				ws = append(ws, t.Term)
			}
		}
		if len(ws) == 0 {
			return ""
		}
		return ws[r.IntN(len(ws))]
	}
	mid := base[len(base)/2].Date
	for len(out["from"]) < n {
		if w := senderWord(base[r.IntN(len(base))]); w != "" {
			out["from"] = append(out["from"], benchQuery{kind: "from", words: []string{w}})
		}
	}
	var withAtt []*benchDoc
	for _, d := range base {
		if d.Flags&index.FlagAttachment != 0 {
			withAtt = append(withAtt, d)
		}
	}
	for len(out["mixed"]) < n && len(withAtt) > 0 {
		d := withAtt[r.IntN(len(withAtt))]
		if w := senderWord(d); w != "" {
			out["mixed"] = append(out["mixed"], benchQuery{kind: "mixed", words: []string{w}, after: mid.AddDate(0, 0, -r.IntN(30))})
		}
	}
	return out
}
