package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/index/lsmindex"
	"github.com/mailbricks/mailbricks/internal/corpus"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
)

// The scale suite measures many users on one machine: the embedded
// mailbox (lsmmailbox, bodies in filededup) with the search index
// (lsmindex) attached, so every append is indexed before it returns, all
// under configured memory budgets (below), printed as budget_bytes.
//
// Its two implementations are the same code at two user counts, each in
// its own process so that its peak RSS is its own: small (-users-small,
// default 1,000; -quick: 300) and large (-users-large, default 10,000;
// -quick: 1,000).
//
//   - fill: every user receives -per messages (default 100) through
//     mailbox.Store.Append: SpamAssassin corpus messages, each with a
//     header line naming its user and copy so no two are equal (their
//     bodies still deduplicate). 4 appenders, NoSync (the suite measures
//     memory and reads, not fsync). ops_per_sec = messages per second;
//     bytes_per_msg = the data directory's bytes per message after the
//     fill (closed and reopened, so obsolete files are gone).
//   - Then the backends are closed and reopened (every user cold), and
//     -ops random users (default 2,000; -quick: 500) each get, one after
//     the other: list_unread (Store.List of the inbox's 50 newest unread),
//     search (Index.SearchString of a word of one of the user's subjects,
//     20 newest hits with the total) and mark_read (Store.MarkRead of the
//     newest unread message, synced); p50_us and p99_us per operation.
//   - rss: the process's peak resident set size (VmHWM) over the whole
//     run, the budgets it is held to, and peak_over_budget, their ratio
//     (the target: at most 2 whatever the number of users). A
//     sampler reads the RSS and the Go runtime's memory classes every
//     20 ms and prints what the peak was made of: live and dead heap
//     objects, free heap, the memory outside the Go heap (memtable arenas
//     and the corpus) and the binary's pages.
//
// As a Go service embedding the library should, the run sets the Go
// soft memory limit (debug.SetMemoryLimit) to the sum of the budgets
// (-memlimit 1; 0 leaves the collector to GOGC alone), and holds its
// corpus outside the Go heap, so that the bench's 31 MiB of input does not
// raise the collector's heap goal by as much again.
//
// RATIO rss_flat small/large is the small run's peak RSS over the large
// run's: 1 when memory does not grow with the number of users (target
// ≥ 0.67).
//
// An lsm DB's tables keep their index and bloom filter blocks in the
// block cache, charged to CacheSize and loaded on demand, so a DB's
// memory is its cache and memtables whatever the number of tables;
// MaxOpenFiles (-open-files, lsm's default 1,000) bounds only the open
// file handles.
type scaleSuite struct {
	usersSmall, usersLarge int
	per, ops               int
	indexBudget            int64
	cacheSize              int64
	memtable               int
	openFiles              int
	memProfile             string
	memLimit               float64
}

func init() { register("scale", func() suite { return &scaleSuite{} }) }

func (s *scaleSuite) Impls() []string { return []string{"small", "large"} }

func (s *scaleSuite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.usersSmall, "users-small", 0, "users of the small run (0: 1000, or 300 with -quick)")
	fs.IntVar(&s.usersLarge, "users-large", 0, "users of the large run (0: 10000, or 1000 with -quick)")
	fs.IntVar(&s.per, "per", 100, "messages per user")
	fs.IntVar(&s.ops, "ops", 0, "users measured after the fill (0: 2000, or 500 with -quick)")
	fs.Int64Var(&s.indexBudget, "index-budget", 32<<20, "lsmindex MemoryBudget in bytes")
	fs.Int64Var(&s.cacheSize, "cache", 16<<20, "lsm block cache per DB in bytes")
	fs.IntVar(&s.memtable, "memtable", 8<<20, "lsm memtable size per DB in bytes")
	fs.IntVar(&s.openFiles, "open-files", 0, "lsm MaxOpenFiles per DB, the open table files (0: lsm's default, 1000)")
	fs.StringVar(&s.memProfile, "memprofile", "", "write each run's heap profile at its end to this path with \".<impl>\" appended, and at its peak RSS with \".<impl>.peak\"")
	fs.Float64Var(&s.memLimit, "memlimit", 1, "Go soft memory limit (debug.SetMemoryLimit) as a multiple of the budgets (0: none, GOGC alone)")
}

// scaleStores is the assembly under test.
type scaleStores struct {
	idx   *index.Index
	ib    *lsmindex.Backend
	idxDB *lsm.DB
	mb    *mailbox.Store
	blobs interface{ Close() error }
}

func (s *scaleSuite) lsmOpts() *lsm.Options {
	return &lsm.Options{CacheSize: s.cacheSize, MemTableSize: s.memtable, MaxOpenFiles: s.openFiles}
}

// budget is the sum of the configured budgets: the index's doc values,
// and per lsm DB (mailbox, index, blob links) its block cache and three
// memtables (one filling, two waiting for flush at most).
func (s *scaleSuite) budget() int64 {
	return s.indexBudget + 3*(s.cacheSize+3*int64(s.memtable))
}

func (s *scaleSuite) open(dir string, noSync bool) (*scaleStores, error) {
	blobs, err := filededup.OpenStore(filepath.Join(dir, "blobs"), &filededup.Options{MetaOptions: s.lsmOpts()})
	if err != nil {
		return nil, err
	}
	// The index's DB is opened here, to set MaxOpenFiles, which
	// lsmindex.Options does not carry.
	lo := s.lsmOpts()
	lo.Merger = lsmindex.Merger
	idb, err := lsm.Open(filepath.Join(dir, "index"), lo)
	if err != nil {
		blobs.Close()
		return nil, err
	}
	ib := lsmindex.New(idb, &lsmindex.Options{NoSync: noSync, MemoryBudget: s.indexBudget})
	idx := index.New(ib, nil)
	mb, err := lsmmailbox.OpenStore(filepath.Join(dir, "mailbox"), blobs, &lsmmailbox.Options{
		NoSync: noSync, LSM: s.lsmOpts(), Store: &mailbox.Options{Index: idx},
	})
	if err != nil {
		idx.Close()
		idb.Close()
		blobs.Close()
		return nil, err
	}
	return &scaleStores{idx: idx, ib: ib, idxDB: idb, mb: mb, blobs: blobs}, nil
}

func (st *scaleStores) Close() error {
	err := st.mb.Close()
	if e := st.idx.Close(); err == nil {
		err = e
	}
	if e := st.idxDB.Close(); err == nil {
		err = e
	}
	if e := st.blobs.Close(); err == nil {
		err = e
	}
	return err
}

func scaleUser(i int) mailbricks.UserID {
	return mailbricks.UserID(fmt.Sprintf("user%05d@example.com", i))
}

func (s *scaleSuite) Run(impl string, c *config, r *reporter) error {
	users := map[string]int{"small": s.usersSmall, "large": s.usersLarge}[impl]
	if users <= 0 {
		users = map[string]int{"small": 1000, "large": 10000}[impl]
		if c.Quick {
			users = map[string]int{"small": 300, "large": 1000}[impl]
		}
	}
	nops := s.ops
	if nops <= 0 {
		nops = 2000
		if c.Quick {
			nops = 500
		}
	}
	if s.memLimit > 0 {
		debug.SetMemoryLimit(int64(s.memLimit * float64(s.budget())))
	}
	peakProfile := ""
	if s.memProfile != "" {
		peakProfile = s.memProfile + "." + impl + ".peak"
	}
	sampler := startPeakSampler(peakProfile)
	ctx := context.Background()
	msgs, err := scaleCorpus(ctx)
	if err != nil {
		return err
	}
	// The subject words of each corpus message, for the searches.
	words := make([][]string, len(msgs))
	for i, m := range msgs {
		words[i] = subjectWords(m)
	}
	dir, err := os.MkdirTemp(c.Dir, "mailbricks-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := s.open(dir, true)
	if err != nil {
		return err
	}
	// Which corpus message is copy k of user u: a fixed pseudo-random
	// choice, so the searches can pick a word the user has.
	pick := func(u, k int) int { return int((uint64(u)*1_000_003 + uint64(k)*7919) % uint64(len(msgs))) }
	fmt.Fprintf(os.Stderr, "scale %s: %d users × %d messages, budgets %d MiB\n", impl, users, s.per, s.budget()>>20)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for {
				u := int(next.Add(1)) - 1
				if u >= users {
					return
				}
				for k := range s.per {
					buf.Reset()
					fmt.Fprintf(&buf, "X-Bench-Copy: %d %d\r\n", u, k)
					buf.Write(msgs[pick(u, k)])
					_, err := st.mb.Append(ctx, scaleUser(u), mailbox.Inbox, bytes.NewReader(buf.Bytes()), &mailbox.AppendOptions{InternalDate: start.Add(time.Duration(k) * time.Hour)})
					if err != nil {
						errs <- fmt.Errorf("append %s #%d: %w", scaleUser(u), k, err)
						return
					}
				}
				if done := u + 1; done%max(users/10, 1) == 0 {
					fmt.Fprintf(os.Stderr, "scale %s: %d users filled in %v, index cache %d MiB for %d users\n", impl, done, time.Since(t0).Round(time.Second), st.ib.CacheBytes()>>20, st.ib.CachedUsers())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		st.Close()
		return err
	}
	fill := time.Since(t0)
	total := users * s.per
	fmt.Fprintf(os.Stderr, "scale %s: filled in %v, RSS %d MiB (peak %d MiB)\n", impl, fill.Round(time.Second), rss()>>20, scalePeakRSS()>>20)
	if err := st.Close(); err != nil {
		return err
	}
	// Reopen: obsolete files are gone, and every user is cold.
	if st, err = s.open(dir, false); err != nil {
		return err
	}
	defer st.Close()
	data, _, _, err := dirBytes(dir)
	if err != nil {
		return err
	}
	r.result("fill", float64(total)/fill.Seconds(), kv{"users", float64(users)}, kv{"messages", float64(total)}, kv{"seconds", fill.Seconds()}, kv{"bytes_per_msg", float64(data) / float64(total)})

	rng := rand.New(rand.NewPCG(uint64(users), 7))
	lat := map[string][]float64{}
	measure := func(op string, fn func() error) error {
		t := time.Now()
		err := fn()
		lat[op] = append(lat[op], float64(time.Since(t).Nanoseconds())/1e3)
		return err
	}
	for range nops {
		ui := rng.IntN(users)
		u := scaleUser(ui)
		var page mailbox.Page
		if err := measure("list_unread", func() (err error) {
			page, err = st.mb.List(ctx, u, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 50})
			return err
		}); err != nil {
			return fmt.Errorf("list %s: %w", u, err)
		}
		q := "money"
		if ws := words[pick(ui, rng.IntN(s.per))]; len(ws) > 0 {
			q = ws[rng.IntN(len(ws))]
		}
		if err := measure("search", func() error {
			_, err := st.idx.SearchString(ctx, u, q, &index.SearchOptions{Limit: 20, NoSnippets: true})
			return err
		}); err != nil {
			return fmt.Errorf("search %s %q: %w", u, q, err)
		}
		if len(page.Messages) > 0 {
			if err := measure("mark_read", func() error {
				return st.mb.MarkRead(ctx, u, page.Messages[0].ID)
			}); err != nil {
				return fmt.Errorf("mark read %s: %w", u, err)
			}
		}
	}
	for _, op := range []string{"list_unread", "search", "mark_read"} {
		l := lat[op]
		if len(l) == 0 {
			continue
		}
		sort.Float64s(l)
		mean := 0.0
		for _, x := range l {
			mean += x
		}
		mean /= float64(len(l))
		r.result(op, 1e6/mean, kv{"p50_us", pct(l, 50)}, kv{"p99_us", pct(l, 99)}, kv{"n", float64(len(l))})
	}
	if s.memProfile != "" {
		runtime.GC()
		f, err := os.Create(s.memProfile + "." + impl)
		if err != nil {
			return err
		}
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	hwm := scalePeakRSS()
	pk := sampler.Stop()
	fmt.Fprintf(os.Stderr, "scale %s: at peak RSS %d MiB: go heap objects %d MiB (live at last GC %d MiB, goal %d MiB), heap free/unused %d MiB, go other %d MiB, off-heap (memtable arenas, the bench's corpus %d MiB) %d MiB, binary (file pages) %d MiB; %d GCs\n",
		impl, pk.RSS>>20, pk.HeapLive>>20, pk.LastLive>>20, pk.HeapGoal>>20, pk.HeapFree>>20, pk.GoOther>>20, corpusBytes>>20, pk.OffHeap>>20, pk.File>>20, pk.Collected)
	fmt.Fprintf(os.Stderr, "scale %s: peak RSS / budgets = %d MiB / %d MiB = %.2fx (target <= 2x)\n", impl, hwm>>20, s.budget()>>20, float64(hwm)/float64(s.budget()))
	fmt.Fprintf(os.Stderr, "scale %s: peak RSS %d MiB, budgets %d MiB, index cache %d MiB for %d users\n", impl, hwm>>20, s.budget()>>20, st.ib.CacheBytes()>>20, st.ib.CachedUsers())
	r.result("rss", 0, kv{"peak_rss_bytes", float64(hwm)}, kv{"budget_bytes", float64(s.budget())}, kv{"peak_over_budget", float64(hwm) / float64(s.budget())}, kv{"users", float64(users)})
	return nil
}

// subjectWords returns the plain words of raw's Subject header.
func subjectWords(raw []byte) []string {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if len(line) > 8 && strings.EqualFold(line[:8], "subject:") {
			var out []string
			for _, t := range index.Tokenize(line[8:]) {
				if plainWord(t.Term) {
					out = append(out, t.Term)
				}
			}
			return out
		}
	}
	return nil
}

// scalePeakRSS returns the process's peak resident set size (VmHWM), 0 if
// unknown.
func scalePeakRSS() int64 { return procStatus("VmHWM:") }

// rss returns the process's resident set size now (VmRSS), 0 if unknown.
func rss() int64 { return procStatus("VmRSS:") }

// procStatus returns a size field of /proc/self/status ("VmRSS:") in
// bytes, 0 if it cannot be read.
func procStatus(field string) int64 {
	kb, _ := procStatusKB(strings.TrimSuffix(field, ":"))
	return kb << 10
}

func (s *scaleSuite) Ratios(rs *results) []ratio {
	sm, ok1 := rs.get("rss", "small")
	lg, ok2 := rs.get("rss", "large")
	if !ok1 || !ok2 {
		return nil
	}
	a, _ := sm.ExtraValue("peak_rss_bytes")
	b, _ := lg.ExtraValue("peak_rss_bytes")
	if b <= 0 {
		return nil
	}
	return []ratio{{"rss_flat", "small/large", a / b}}
}

// peakSampler samples the process's RSS and the Go runtime's memory
// classes, and keeps the breakdown at the highest RSS seen, to show what
// the peak is made of.
type peakSampler struct {
	mu      sync.Mutex
	peak    int64
	at      peakBreakdown
	profile string // write a heap profile here at each new peak (rate-limited)
	lastPro int64
	stop    chan struct{}
	done    chan struct{}
}

// peakBreakdown is the memory of the process at one instant, in bytes.
type peakBreakdown struct {
	RSS       int64 // VmRSS
	HeapLive  int64 // heap objects: live and not yet swept dead ones
	HeapFree  int64 // heap spans free but not released to the OS, and fragmentation
	HeapGoal  int64 // the collector's goal
	GoOther   int64 // stacks, runtime metadata, profiling buckets
	GoResid   int64 // everything the Go runtime holds minus what it released
	OffHeap   int64 // RssAnon - GoResid: memtable arenas and the corpus (mmap)
	File      int64 // RssFile: the binary's pages
	LastLive  int64 // heap marked live by the last completed collection
	Collected int64 // GC cycles so far
}

var peakMetricNames = []string{
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
	"/gc/heap/goal:bytes",
	"/gc/heap/live:bytes",
	"/gc/cycles/total:gc-cycles",
}

func readBreakdown(samples []metrics.Sample) peakBreakdown {
	metrics.Read(samples)
	v := func(i int) int64 { return int64(samples[i].Value.Uint64()) }
	var b peakBreakdown
	b.RSS = rss()
	b.GoResid = v(0) - v(1)
	b.HeapLive = v(2)
	b.HeapFree = v(3) + v(4)
	b.HeapGoal = v(5)
	b.LastLive = v(6)
	b.Collected = v(7)
	b.GoOther = b.GoResid - b.HeapLive - b.HeapFree
	b.File = procStatus("RssFile:")
	b.OffHeap = procStatus("RssAnon:") - b.GoResid
	return b
}

func startPeakSampler(profile string) *peakSampler {
	p := &peakSampler{profile: profile, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		samples := make([]metrics.Sample, len(peakMetricNames))
		for i, n := range peakMetricNames {
			samples[i].Name = n
		}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			b := readBreakdown(samples)
			p.mu.Lock()
			if b.RSS > p.peak {
				p.peak, p.at = b.RSS, b
				if p.profile != "" && b.RSS > p.lastPro+p.lastPro/20 {
					p.lastPro = b.RSS
					if f, err := os.Create(p.profile); err == nil {
						pprof.WriteHeapProfile(f)
						f.Close()
					}
				}
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// Stop stops sampling and returns the breakdown at the highest RSS.
func (p *peakSampler) Stop() peakBreakdown {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at
}

// scaleCorpus returns the raw messages of the corpus, in corpus.Load's
// order, in one buffer mapped outside the Go heap (in memory still, and
// counted in the RSS). On the heap, the bench's 31 MiB of input would
// count as live heap and, with GOGC=100, let the collector grow the heap
// by as much again before it runs: memory that is the bench's, not the
// library's, and that a mail server does not have.
var corpusBytes int64 // the size of scaleCorpus's buffer

func scaleCorpus(ctx context.Context) ([][]byte, error) {
	p, err := corpus.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	msgs, err := corpus.ReadInto(p, func(n int64) ([]byte, error) {
		corpusBytes = n
		return syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	})
	if err != nil {
		return nil, err
	}
	raws := make([][]byte, len(msgs))
	for i, m := range msgs {
		raws[i] = m.Raw
	}
	return raws, nil
}
