package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
	"github.com/mailbricks/mailbricks/dedup/filededup"
	"github.com/mailbricks/mailbricks/internal/corpus"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/lsmmailbox"
)

// The mailbox suite measures the mailbox block.
//
// Implementations, each in its own process:
//
//   - lsmmailbox: the embedded backend (ours).
//   - flagscan: the baseline for "list the newest unread": the same lsm
//     engine holding one row per message keyed newest first, with the
//     \Seen flag as a column (the first byte of the value) that the query
//     scans until it has a page of unread messages. It runs only the list
//     workloads.
//   - pgmailbox: the PostgreSQL backend, when MAILBRICKS_PG_URL is set.
//
// Workloads:
//
//   - append_corpus: Store.Append of the SpamAssassin corpus (all 6,046;
//     -quick: 1,500) by 4 concurrent appenders (4 users), synced, full MIME
//     parsing and dedup; ops_per_sec is messages per second.
//   - list_unread_10k, _100k, _1m (-quick stops at 100k): one folder of N
//     messages, 1% of them unread at uniformly random positions, filled
//     through the backend with tiny records (no MIME parsing) and compacted
//     (the flagscan baseline likewise); then "list the 50 newest unread"
//     repeated; ops_per_sec is lists per second, latency_us the mean and
//     p50_us/p99_us the percentiles. The ratios use the medians.
//   - mark_read: Store.MarkRead of single messages, synced, by 4 concurrent
//     callers, on the largest folder.
//   - open_mbps: Store.Open of messages with a 256 KiB (base64) attachment, read to
//     the end; ops_per_sec is opens per second, mb_per_sec the throughput.
type mailboxSuite struct {
	listRuns int
}

func init() { register("mailbox", func() suite { return &mailboxSuite{} }) }

func (s *mailboxSuite) Impls() []string { return []string{"lsmmailbox", "flagscan", "pgmailbox"} }

func (s *mailboxSuite) Flags(fs *flag.FlagSet) {
	fs.IntVar(&s.listRuns, "list-runs", 300, "lists measured per folder size")
}

func mbSizes(c *config) []int {
	if c.Quick {
		return []int{10_000, 100_000}
	}
	if c.Keys > 0 {
		return []int{10_000, c.Keys}
	}
	return []int{10_000, 100_000, 1_000_000}
}

func mbSizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dm", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func (s *mailboxSuite) Run(impl string, c *config, r *reporter) error {
	base, err := os.MkdirTemp(c.Dir, "mailbricks-bench-mailbox-"+impl+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	switch impl {
	case "flagscan":
		return s.runFlagscan(base, c, r)
	case "pgmailbox":
		url := os.Getenv("MAILBRICKS_PG_URL")
		if url == "" {
			fmt.Fprintln(os.Stderr, "mailbox: pgmailbox skipped: MAILBRICKS_PG_URL is not set")
			return nil
		}
		return s.runPG(url, base, c, r)
	}
	return s.runLSM(base, c, r)
}

// mbStore opens a Store over b with a filededup store under dir.
func mbStore(b mailbox.Backend, dir string) (*mailbox.Store, *dedup.Store, error) {
	fb, err := filededup.Open(filepath.Join(dir, "blobs"), nil)
	if err != nil {
		return nil, nil, err
	}
	blobs := dedup.New(fb, nil)
	return mailbox.New(b, blobs, nil), blobs, nil
}

var mbCtx = context.Background()

func (s *mailboxSuite) runLSM(base string, c *config, r *reporter) error {
	open := func(name string, noSync bool) (*lsmmailbox.Backend, error) {
		return lsmmailbox.Open(filepath.Join(base, name), &lsmmailbox.Options{NoSync: noSync})
	}
	// append_corpus
	b, err := open("corpus", false)
	if err != nil {
		return err
	}
	st, blobs, err := mbStore(b, filepath.Join(base, "corpus-blobs"))
	if err != nil {
		return err
	}
	if err := mbAppendCorpus(st, c, r); err != nil {
		return err
	}
	if err := mbOpen(st, r); err != nil {
		return err
	}
	st.Close()
	blobs.Close()

	// list_unread_* and mark_read on the largest folder.
	sizes := mbSizes(c)
	for i, n := range sizes {
		name := fmt.Sprint("list", n)
		b, err := open(name, true)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := mbFillLSM(b, n); err != nil {
			return err
		}
		if err := b.Compact(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mailbox: lsmmailbox: filled and compacted %d messages in %v\n", n, time.Since(t0).Round(time.Millisecond))
		if err := b.Close(); err != nil {
			return err
		}
		b, err = open(name, false)
		if err != nil {
			return err
		}
		st, blobs, err := mbStore(b, filepath.Join(base, name+"-blobs"))
		if err != nil {
			return err
		}
		err = mbMeasureList(r, n, s.listRuns, func() (int, error) {
			p, err := st.List(mbCtx, mbUser, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 50})
			return len(p.Messages), err
		})
		if err == nil && i == len(sizes)-1 {
			err = mbMarkRead(st, c, r)
		}
		st.Close()
		blobs.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

const mbUser = mailbricks.UserID("bench@example.com")

// mbUnread reports whether message i of n is one of the 1% unread, at
// positions fixed by a seeded generator.
func mbUnreadSet(n int) []bool {
	u := make([]bool, n)
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	for k := 0; k < n/100; {
		i := rng.IntN(n)
		if !u[i] {
			u[i] = true
			k++
		}
	}
	return u
}

// mbRecord returns a tiny record as Store.Append would make it.
func mbRecord(i int, unread bool) *mailbox.Record {
	rec := &mailbox.Record{Skeleton: []byte("skeleton")}
	rec.ID = mailbricks.NewMessageID()
	rec.ThreadID = rec.ID
	rec.Folder = mailbox.Inbox
	rec.Flags = []string{mailbox.FlagSeen}
	if unread {
		rec.Flags = []string{}
	}
	rec.InternalDate = time.Unix(1700000000+int64(i), 0).UTC()
	rec.Size = 2000
	rec.From = []mailbox.Address{{Name: "Sender", Addr: fmt.Sprintf("sender%d@example.com", i%1000)}}
	rec.To = []mailbox.Address{{Addr: string(mbUser)}}
	rec.Subject = fmt.Sprintf("Message number %d about something", i)
	rec.Snippet = "A short snippet of the message text, as the list view shows it under the subject line."
	return rec
}

// mbFillLSM appends n tiny records straight through the backend (no MIME
// parsing, no blobs), from 4 goroutines in order of their IDs per
// goroutine; 1% are unread.
func mbFillLSM(b mailbox.Backend, n int) error {
	if _, err := b.CreateFolder(mbCtx, mbUser, mailbox.Inbox, mailbox.RoleInbox); err != nil {
		return err
	}
	unread := mbUnreadSet(n)
	for i := 0; i < n; i++ {
		if _, _, err := b.Append(mbCtx, mbUser, mbRecord(i, unread[i])); err != nil {
			return err
		}
	}
	return nil
}

// mbMeasureList reports list_unread_<n>: list runs times after 20
// warm-up lists.
func mbMeasureList(r *reporter, n, runs int, list func() (int, error)) error {
	for i := 0; i < 20; i++ {
		if _, err := list(); err != nil {
			return err
		}
	}
	lat := make([]time.Duration, runs)
	t0 := time.Now()
	for i := range lat {
		s := time.Now()
		got, err := list()
		if err != nil {
			return err
		}
		if got != 50 {
			return fmt.Errorf("list returned %d messages, want 50", got)
		}
		lat[i] = time.Since(s)
	}
	el := time.Since(t0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	mean := el / time.Duration(runs)
	r.result("list_unread_"+mbSizeName(n), float64(runs)/el.Seconds(),
		kv{"latency_us", float64(mean.Microseconds())},
		kv{"p50_us", float64(lat[runs/2].Microseconds())},
		kv{"p99_us", float64(lat[runs*99/100].Microseconds())},
		kv{"messages", float64(n)})
	return nil
}

func mbAppendCorpus(st *mailbox.Store, c *config, r *reporter) error {
	msgs, err := corpus.Load(mbCtx)
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	if c.Quick {
		msgs = msgs[:1500]
	}
	var next atomic.Int64
	var bytesIn atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	t0 := time.Now()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			user := mailbricks.UserID(fmt.Sprint("corpus", w, "@example.com"))
			for {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				if _, err := st.Append(mbCtx, user, mailbox.Inbox, bytes.NewReader(msgs[i].Raw), nil); err != nil {
					errs <- err
					return
				}
				bytesIn.Add(int64(len(msgs[i].Raw)))
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(t0)
	select {
	case err := <-errs:
		return err
	default:
	}
	r.result("append_corpus", float64(len(msgs))/el.Seconds(),
		kv{"messages", float64(len(msgs))}, kv{"mb_per_sec", float64(bytesIn.Load()) / el.Seconds() / 1e6})
	return nil
}

func mbMarkRead(st *mailbox.Store, c *config, r *reporter) error {
	p, err := st.List(mbCtx, mbUser, mailbox.Inbox, &mailbox.ListOptions{Unread: true, Limit: 1000})
	if err != nil {
		return err
	}
	ids := p.Messages
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	t0 := time.Now()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				if err := st.MarkRead(mbCtx, mbUser, ids[i].ID); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	select {
	case err := <-errs:
		return err
	default:
	}
	f, err := st.Folder(mbCtx, mbUser, mailbox.Inbox)
	if err != nil {
		return err
	}
	if want := f.Total/100 - int64(len(ids)); f.Unread != want {
		return fmt.Errorf("after mark-read: %d unread, want %d", f.Unread, want)
	}
	r.result("mark_read", float64(len(ids))/el.Seconds(), kv{"messages", float64(len(ids))})
	return nil
}

// mbAttachment returns a message with a 192 KiB random attachment (256
// KiB in base64).
func mbAttachment(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	data := make([]byte, 192<<10)
	for j := range data {
		data[j] = byte(rng.Uint32())
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.com\r\nTo: b@example.com\r\nSubject: file %d\r\nMIME-Version: 1.0\r\n", i)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nAttached.\r\n")
	b.WriteString("--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"f.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := make([]byte, 0, len(data)*4/3)
	const tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for j := 0; j+2 < len(data); j += 3 {
		v := uint(data[j])<<16 | uint(data[j+1])<<8 | uint(data[j+2])
		enc = append(enc, tbl[v>>18&63], tbl[v>>12&63], tbl[v>>6&63], tbl[v&63])
	}
	for j := 0; j < len(enc); j += 76 {
		b.Write(enc[j:min(j+76, len(enc))])
		b.WriteString("\r\n")
	}
	b.WriteString("--B--\r\n")
	return b.Bytes()
}

func mbOpen(st *mailbox.Store, r *reporter) error {
	const n = 64
	var ids []mailbricks.MessageID
	user := mailbricks.UserID("open@example.com")
	for i := 0; i < n; i++ {
		m, err := st.Append(mbCtx, user, mailbox.Inbox, bytes.NewReader(mbAttachment(i)), nil)
		if err != nil {
			return err
		}
		ids = append(ids, m.ID)
	}
	var total int64
	opens := 0
	t0 := time.Now()
	for round := 0; time.Since(t0) < 2*time.Second || round < 2; round++ {
		for _, id := range ids {
			rc, err := st.Open(mbCtx, user, id)
			if err != nil {
				return err
			}
			k, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
			total += k
			opens++
		}
	}
	el := time.Since(t0)
	r.result("open_mbps", float64(opens)/el.Seconds(), kv{"mb_per_sec", float64(total) / el.Seconds() / 1e6})
	return nil
}

// runFlagscan measures the baseline: rows keyed newest first with the
// \Seen flag in the value, scanned until 50 unread are found.
func (s *mailboxSuite) runFlagscan(base string, c *config, r *reporter) error {
	for _, n := range mbSizes(c) {
		db, err := lsm.Open(filepath.Join(base, fmt.Sprint("flag", n)), nil)
		if err != nil {
			return err
		}
		prefix := []byte("\x11bench@example.com\x01")
		unread := mbUnreadSet(n)
		t0 := time.Now()
		batch := db.NewBatch()
		for i := 0; i < n; i++ {
			rec := mbRecord(i, unread[i])
			v, _ := json.Marshal(rec.Message)
			flag := byte(1)
			if unread[i] {
				flag = 0
			}
			k := append(append([]byte(nil), prefix...), make([]byte, 16)...)
			for j := range rec.ID {
				k[len(prefix)+j] = ^rec.ID[j]
			}
			batch.Set(k, append([]byte{flag}, v...))
			if batch.Len() >= 1000 {
				if err := batch.Commit(lsm.NoSync); err != nil {
					return err
				}
				batch = db.NewBatch()
			}
		}
		if err := batch.Commit(lsm.NoSync); err != nil {
			return err
		}
		if err := db.Compact(nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "mailbox: flagscan: filled and compacted %d rows in %v\n", n, time.Since(t0).Round(time.Millisecond))
		err = mbMeasureList(r, n, s.listRuns, func() (int, error) {
			snap := db.NewSnapshot()
			defer snap.Close()
			it, err := snap.NewIter(&lsm.IterOptions{LowerBound: prefix, UpperBound: lsm.PrefixUpperBound(prefix)})
			if err != nil {
				return 0, err
			}
			// The baseline only copies the rows it keeps, without decoding
			// them (ours decodes its 50): a conservative comparison.
			var out [][]byte
			for ok := it.First(); ok && len(out) < 50; ok = it.Next() {
				v := it.Value()
				if v[0] != 0 {
					continue
				}
				out = append(out, append([]byte(nil), v[1:]...))
			}
			return len(out), errors.Join(it.Error(), it.Close())
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mbLatency is the median latency of a list result: the machine is shared,
// and the median resists the stalls that inflate the mean.
func mbLatency(r result) float64 {
	v, _ := r.ExtraValue("p50_us")
	return max(v, 0.5)
}

// Ratios compares median latencies: list_unread_flat is latency at the
// smallest folder over latency at the largest (1 = flat), and
// list_unread_vs_flagscan is the baseline's latency over ours at the
// largest folder.
func (s *mailboxSuite) Ratios(rs *results) []ratio {
	var out []ratio
	var sizes []int
	for _, res := range rs.list {
		if res.Impl == "lsmmailbox" {
			if n, ok := res.ExtraValue("messages"); ok && len(res.Workload) > 12 && res.Workload[:12] == "list_unread_" {
				sizes = append(sizes, int(n))
			}
		}
	}
	if len(sizes) < 2 {
		return nil
	}
	small, large := mbSizeName(sizes[0]), mbSizeName(sizes[len(sizes)-1])
	a, ok1 := rs.get("list_unread_"+small, "lsmmailbox")
	b, ok2 := rs.get("list_unread_"+large, "lsmmailbox")
	if ok1 && ok2 {
		out = append(out, ratio{"list_unread_" + large, "list_unread_flat", mbLatency(a) / mbLatency(b)})
	}
	if f, ok := rs.get("list_unread_"+large, "flagscan"); ok && ok2 {
		out = append(out, ratio{"list_unread_" + large, "list_unread_vs_flagscan", mbLatency(f) / mbLatency(b)})
	}
	pa, ok4 := rs.get("list_unread_"+small, "pgmailbox")
	pb, ok5 := rs.get("list_unread_"+large, "pgmailbox")
	if ok4 && ok5 {
		out = append(out, ratio{"list_unread_" + large, "pg_list_unread_flat", mbLatency(pa) / mbLatency(pb)})
	}
	if pf, ok := rs.get("list_unread_flagscan_"+large, "pgmailbox"); ok && ok5 {
		out = append(out, ratio{"list_unread_" + large, "pg_list_unread_vs_flagscan", mbLatency(pf) / mbLatency(pb)})
	}
	return out
}
