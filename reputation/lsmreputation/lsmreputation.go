// Package lsmreputation is the embedded [reputation.Backend], on the lsm
// engine: the state of one sending machine, in one local directory.
//
// It keeps its working set in memory, in 64 mutex-guarded shards, so that
// the sending path (Decide and Record for every recipient) costs map
// lookups, and writes to lsm behind it:
//
//   - suppression entries and state records (warm-up stages, pauses,
//     soft-bounce days) are written through with a synced write before
//     the call returns;
//   - outcome counters and warm-up reservations are written every
//     FlushInterval, as one synced batch of merge operands (counters) and
//     sets (reservations), and at Close;
//   - token buckets live only in memory.
//
// # Semantics
//
// Every method is atomic on its key and linearizable within the process;
// the lsm directory is locked to one process, so one Backend is the only
// writer. After a crash, Open recovers every suppression entry and state
// record that a call returned for, and counters and reservations as of the
// last flush: at most FlushInterval of outcomes, and of today's warm-up
// sends, are lost (an IP may then exceed that day's warm-up cap by what it
// sent in that interval). Token buckets start full after Open, so each
// (IP, provider) may send one burst at once.
//
// Counters and reservations are dropped once their expiry has passed by
// the wall clock, at Open and every minute. Everything else stays until
// deleted.
//
// # Memory budget
//
// What the backend keeps in memory does not grow with the suppression
// list or the number of destinations:
//
//   - suppression entries are read from lsm on demand and cached, found
//     or not, in a least-recently-used cache bounded by
//     [Options].MemoryBudget (default 64 MiB, [DefaultMemoryBudget]);
//     lsm's bloom filters make a lookup of an address that is not
//     suppressed cheap on a miss;
//   - a token bucket that has refilled to its burst is dropped every
//     minute (it is the same as a missing one), so buckets are held only
//     for keys that sent within their refill time;
//   - counters and reservations are held until they expire (the windows
//     the Tracker reads), state records (one per IP) always;
//   - the lsm engine holds a 64 MiB block cache and memtables of 16 MiB.
//
// # Keys
//
// lsm keys are a one-byte kind and the Tracker's key:
//
//	'c' uvarint(len(key)) key bucket(8 bytes, big-endian, sign bit
//	    flipped)   → counts: reputation.Counts encoding (40 bytes) then
//	                 expiry, Unix ms, int64 little-endian (48 bytes);
//	                 merged by adding the counts and keeping the later expiry
//	'r' key        → reservation: count int64 LE, expiry Unix ms int64 LE
//	's' key        → state record: version int64 LE, then the value
//	'x' address    → suppression: reputation.Suppression encoding
package lsmreputation

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
)

// Options configures [Open]. A nil *Options and every zero field mean the
// default.
type Options struct {
	// FS is the file system the lsm directory lives on. The default is
	// vfs.Default.
	FS vfs.FS
	// FlushInterval is how often counters and reservations are written to
	// lsm. The default is 1 second; a negative value disables the
	// background flush (only Flush and Close write them).
	FlushInterval time.Duration
	// Logger receives background errors. The default discards them.
	Logger *slog.Logger
	// MemoryBudget bounds the bytes of suppression entries (and of
	// addresses known not to be suppressed) cached in memory; past it the
	// least recently used are dropped and read again from lsm when asked
	// for. The default is 64 MiB ([DefaultMemoryBudget]).
	MemoryBudget int64
	// Tracker configures the [reputation.Tracker] that [OpenTracker]
	// returns. The default is nil: reputation's defaults (no IP pools).
	Tracker *reputation.Options
}

// Backend is the lsm-backed [reputation.Backend]. It is safe for
// concurrent use.
type Backend struct {
	db     *lsm.DB
	o      Options
	shards [nShards]shard
	closed atomic.Bool
	stop   chan struct{}
	done   chan struct{}
	// flushMu serializes flushes, so a counter's deltas reach lsm in order.
	flushMu sync.Mutex
	once    sync.Once
}

var _ reputation.Backend = (*Backend)(nil)

// DefaultMemoryBudget is the default of [Options].MemoryBudget.
const DefaultMemoryBudget = 64 << 20

const nShards = 64

type shard struct {
	mu       sync.Mutex
	buckets  map[string]*tokenBucket
	reserves map[string]*reserve
	series   map[string]*series
	// states is replaced, never changed, once Open returns: GetState, on
	// the sending path for every IP tried and every delivery, reads it
	// without a lock, and SetState, a synced write that is rare next to
	// reads, copies it under writeMu.
	states atomic.Pointer[map[string]state]
	// sup caches suppression lookups (see supCache); supGen counts the
	// shard's suppression writes, so a lookup that read lsm before a
	// write does not cache what the write replaced.
	sup    supCache
	supGen uint64
	dirtyC []cellRef
	dirtyR map[string]struct{}
	// writeMu orders the shard's synced writes (states, suppressions)
	// with their map updates; it is not held by readers, and shards
	// write in parallel, so their fdatasyncs are shared (group commit).
	writeMu sync.Mutex
	// The padding keeps two shards off one 64-byte cache line, so cores
	// locking neighbouring shards do not invalidate each other's.
	_ [40]byte
}

type tokenBucket struct {
	tokens      float64
	last        int64 // Unix ns of the last refill
	rate, burst float64
}

type reserve struct {
	n, expire int64
}

type series struct {
	cells map[int64]*cell
}

type cell struct {
	c, dirty reputation.Counts
	expire   int64 // Unix ms
	isDirty  bool
}

type cellRef struct {
	key    string
	bucket int64
}

type state struct {
	value   []byte
	version int64
}

// shardSeed seeds the shard hash; shards exist only in memory, so the
// seed may differ between processes.
var shardSeed = maphash.MakeSeed()

func (b *Backend) shard(key string) *shard {
	return &b.shards[maphash.String(shardSeed, key)%nShards]
}

// merger adds counter values; see the package doc's Keys.
var merger = &lsm.Merger{
	Name: "lsmreputation.counts",
	Merge: func(key, older, newer []byte) ([]byte, error) {
		if len(older) != 48 || len(newer) != 48 {
			return nil, fmt.Errorf("lsmreputation: merge of %q: values of %d and %d bytes", key, len(older), len(newer))
		}
		out := make([]byte, 48)
		for i := 0; i < 40; i += 8 {
			binary.LittleEndian.PutUint64(out[i:], binary.LittleEndian.Uint64(older[i:])+binary.LittleEndian.Uint64(newer[i:]))
		}
		binary.LittleEndian.PutUint64(out[40:], uint64(max(int64(binary.LittleEndian.Uint64(older[40:])), int64(binary.LittleEndian.Uint64(newer[40:])))))
		return out, nil
	},
}

// Open opens (creating if needed) the backend's lsm directory dir and
// loads its working set.
func Open(dir string, o *Options) (*Backend, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = DefaultMemoryBudget
	}
	db, err := lsm.Open(dir, &lsm.Options{FS: opts.FS, Merger: merger, Logger: opts.Logger, MemTableSize: 16 << 20})
	if err != nil {
		return nil, fmt.Errorf("lsmreputation: open %s: %w", dir, err)
	}
	b := &Backend{db: db, o: opts, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range b.shards {
		s := &b.shards[i]
		s.buckets = map[string]*tokenBucket{}
		s.reserves = map[string]*reserve{}
		s.series = map[string]*series{}
		s.states.Store(&map[string]state{})
		s.sup.init(opts.MemoryBudget / nShards)
		s.dirtyR = map[string]struct{}{}
	}
	if err := b.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if opts.FlushInterval > 0 {
		go b.flushLoop()
	} else {
		close(b.done)
	}
	return b, nil
}

func (b *Backend) load() error {
	it, err := b.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("lsmreputation: load: %w", err)
	}
	nowMs := time.Now().UnixMilli()
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) > 0 && k[0] == 'x' {
			// Suppressions are read on demand: skip the whole list.
			if !it.SeekGE([]byte{'x' + 1}) {
				break
			}
			k, v = it.Key(), it.Value()
		}
		if len(k) == 0 {
			continue
		}
		rest := k[1:]
		switch k[0] {
		case 'c':
			key, bucket, ok := decodeCountKey(rest)
			if !ok || len(v) != 48 {
				return errors.Join(fmt.Errorf("lsmreputation: load: %w: counter %q", reputation.ErrMalformed, k), it.Close())
			}
			var c reputation.Counts
			_ = c.UnmarshalBinary(v[:40])
			exp := int64(binary.LittleEndian.Uint64(v[40:]))
			if exp < nowMs {
				continue
			}
			s := b.shard(key)
			se := s.series[key]
			if se == nil {
				se = &series{cells: map[int64]*cell{}}
				s.series[key] = se
			}
			se.cells[bucket] = &cell{c: c, expire: exp}
		case 'r':
			if len(v) != 16 {
				return errors.Join(fmt.Errorf("lsmreputation: load: %w: reservation %q", reputation.ErrMalformed, k), it.Close())
			}
			n, exp := int64(binary.LittleEndian.Uint64(v)), int64(binary.LittleEndian.Uint64(v[8:]))
			if exp >= nowMs {
				b.shard(string(rest)).reserves[string(rest)] = &reserve{n, exp}
			}
		case 's':
			if len(v) < 8 {
				return errors.Join(fmt.Errorf("lsmreputation: load: %w: state %q", reputation.ErrMalformed, k), it.Close())
			}
			(*b.shard(string(rest)).states.Load())[string(rest)] = state{bytes.Clone(v[8:]), int64(binary.LittleEndian.Uint64(v))}
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func countKeyBytes(key string, bucket int64) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+8)
	k = append(k, 'c')
	k = binary.AppendUvarint(k, uint64(len(key)))
	k = append(k, key...)
	return binary.BigEndian.AppendUint64(k, uint64(bucket)^(1<<63))
}

func decodeCountKey(b []byte) (string, int64, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) || len(b)-k-int(n) != 8 {
		return "", 0, false
	}
	key := string(b[k : k+int(n)])
	return key, int64(binary.BigEndian.Uint64(b[k+int(n):]) ^ (1 << 63)), true
}

func (b *Backend) flushLoop() {
	defer close(b.done)
	tick := time.NewTicker(b.o.FlushInterval)
	defer tick.Stop()
	lastGC := time.Now()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
			if err := b.flush(lsm.Sync); err != nil {
				b.o.Logger.Error("lsmreputation: flush", "err", err)
			}
			if time.Since(lastGC) >= time.Minute {
				lastGC = time.Now()
				if err := b.gc(time.Now()); err != nil {
					b.o.Logger.Error("lsmreputation: gc", "err", err)
				}
			}
		}
	}
}

// Flush writes the pending counters and reservations to lsm with a synced
// write, so that they survive a crash.
func (b *Backend) Flush() error {
	if b.closed.Load() {
		return reputation.ErrClosed
	}
	return b.flush(lsm.Sync)
}

func (b *Backend) flush(wo *lsm.WriteOptions) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	batch := b.db.NewBatch()
	val := make([]byte, 48)
	var rv [16]byte
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for _, ref := range s.dirtyC {
			se := s.series[ref.key]
			if se == nil {
				continue
			}
			c := se.cells[ref.bucket]
			if c == nil || !c.isDirty {
				continue
			}
			val, _ = c.dirty.AppendBinary(val[:0])
			val = binary.LittleEndian.AppendUint64(val, uint64(c.expire))
			batch.Merge(countKeyBytes(ref.key, ref.bucket), val)
			c.dirty, c.isDirty = reputation.Counts{}, false
		}
		s.dirtyC = s.dirtyC[:0]
		for key := range s.dirtyR {
			r := s.reserves[key]
			if r == nil {
				continue
			}
			binary.LittleEndian.PutUint64(rv[:], uint64(r.n))
			binary.LittleEndian.PutUint64(rv[8:], uint64(r.expire))
			batch.Set(append([]byte{'r'}, key...), rv[:])
		}
		clear(s.dirtyR)
		s.mu.Unlock()
	}
	if batch.Empty() {
		return nil
	}
	if err := batch.Commit(wo); err != nil {
		return fmt.Errorf("lsmreputation: flush: %w", err)
	}
	return nil
}

// gc drops counters and reservations that expired before now.
func (b *Backend) gc(now time.Time) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	nowMs := now.UnixMilli()
	batch := b.db.NewBatch()
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		for key, se := range s.series {
			for bk, c := range se.cells {
				if c.expire < nowMs && !c.isDirty {
					delete(se.cells, bk)
					batch.Delete(countKeyBytes(key, bk))
				}
			}
			if len(se.cells) == 0 {
				delete(s.series, key)
			}
		}
		for key, r := range s.reserves {
			if _, dirty := s.dirtyR[key]; r.expire < nowMs && !dirty {
				delete(s.reserves, key)
				batch.Delete(append([]byte{'r'}, key...))
			}
		}
		ns := now.UnixNano()
		for key, tb := range s.buckets {
			if ns > tb.last && tb.tokens+float64(ns-tb.last)/1e9*tb.rate >= tb.burst {
				delete(s.buckets, key) // full: a new bucket is the same
			}
		}
		s.mu.Unlock()
	}
	if batch.Empty() {
		return nil
	}
	return batch.Commit(lsm.NoSync)
}

// Close flushes the pending counters and reservations and closes the lsm
// directory. It is idempotent.
func (b *Backend) Close() error {
	var err error
	b.once.Do(func() {
		b.closed.Store(true)
		close(b.stop)
		<-b.done
		// Wait out writers of states and suppressions in flight.
		for i := range b.shards {
			b.shards[i].writeMu.Lock()
		}
		err = b.flush(lsm.Sync)
		err = errors.Join(err, b.db.Close())
		for i := range b.shards {
			b.shards[i].writeMu.Unlock()
		}
	})
	return err
}

func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return reputation.ErrClosed
	}
	return ctx.Err()
}

// checkKey rejects an empty key, which [reputation.Backend] rules out.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("lsmreputation: %w: empty key", reputation.ErrInvalid)
	}
	return nil
}

// checkAddr rejects an address that is not what
// [reputation.NormalizeAddress] makes of it: the Tracker passes only
// normalized addresses, and one stored in another spelling would never be
// found.
func checkAddr(addr string) error {
	n, err := reputation.NormalizeAddress(addr)
	if err != nil {
		return fmt.Errorf("lsmreputation: %w", err)
	}
	if n != addr {
		return fmt.Errorf("lsmreputation: %w: %q is not normalized", reputation.ErrInvalidAddress, addr)
	}
	return nil
}

// Take implements [reputation.Backend.Take] with an in-memory bucket.
func (b *Backend) Take(ctx context.Context, key string, n, rate, burst float64, now time.Time) (bool, time.Duration, error) {
	if err := checkKey(key); err != nil {
		return false, 0, err
	}
	if b.closed.Load() {
		return false, 0, reputation.ErrClosed
	}
	s := b.shard(key)
	ns := now.UnixNano()
	s.mu.Lock()
	tb := s.buckets[key]
	if tb == nil {
		tb = &tokenBucket{tokens: burst, last: ns}
		s.buckets[key] = tb
	}
	tb.rate, tb.burst = rate, burst
	if ns > tb.last {
		tb.tokens = math.Min(burst, tb.tokens+float64(ns-tb.last)/1e9*rate)
		tb.last = ns
	}
	if tb.tokens > burst {
		tb.tokens = burst
	}
	if tb.tokens >= n {
		tb.tokens -= n
		s.mu.Unlock()
		return true, 0, nil
	}
	need := n - tb.tokens
	s.mu.Unlock()
	if rate <= 0 {
		return false, time.Duration(math.MaxInt64), nil
	}
	return false, time.Duration(math.Ceil(need / rate * 1e9)), nil
}

// Reserve implements [reputation.Backend.Reserve].
func (b *Backend) Reserve(ctx context.Context, key string, n, max int64, expire time.Time) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if b.closed.Load() {
		return false, reputation.ErrClosed
	}
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reserves[key]
	if r == nil {
		r = &reserve{}
		s.reserves[key] = r
	}
	if n > 0 && r.n+n > max {
		return false, nil
	}
	r.n = maxInt(r.n+n, 0)
	r.expire = maxInt(r.expire, expire.UnixMilli())
	s.dirtyR[key] = struct{}{}
	return true, nil
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// AddCounts implements [reputation.Backend.AddCounts].
func (b *Backend) AddCounts(ctx context.Context, key string, bucket int64, c reputation.Counts, expire time.Time) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if b.closed.Load() {
		return reputation.ErrClosed
	}
	s := b.shard(key)
	s.mu.Lock()
	se := s.series[key]
	if se == nil {
		se = &series{cells: map[int64]*cell{}}
		s.series[key] = se
	}
	ce := se.cells[bucket]
	if ce == nil {
		ce = &cell{}
		se.cells[bucket] = ce
	}
	ce.c = ce.c.Add(c)
	ce.dirty = ce.dirty.Add(c)
	ce.expire = maxInt(ce.expire, expire.UnixMilli())
	if !ce.isDirty {
		ce.isDirty = true
		s.dirtyC = append(s.dirtyC, cellRef{key, bucket})
	}
	s.mu.Unlock()
	return nil
}

// SumCounts implements [reputation.Backend.SumCounts].
func (b *Backend) SumCounts(ctx context.Context, key string, from, to int64) (reputation.Counts, error) {
	if err := checkKey(key); err != nil {
		return reputation.Counts{}, err
	}
	if b.closed.Load() {
		return reputation.Counts{}, reputation.ErrClosed
	}
	var sum reputation.Counts
	if to < from {
		return sum, nil
	}
	s := b.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.series[key]
	if se == nil {
		return sum, nil
	}
	if uint64(to-from) >= uint64(len(se.cells)) {
		for bk, c := range se.cells {
			if bk >= from && bk <= to {
				sum = sum.Add(c.c)
			}
		}
		return sum, nil
	}
	for bk := from; bk <= to; bk++ {
		if c := se.cells[bk]; c != nil {
			sum = sum.Add(c.c)
		}
	}
	return sum, nil
}

// GetState implements [reputation.Backend.GetState].
func (b *Backend) GetState(ctx context.Context, key string) ([]byte, int64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, err
	}
	if b.closed.Load() {
		return nil, 0, reputation.ErrClosed
	}
	st, ok := (*b.shard(key).states.Load())[key]
	if !ok {
		return nil, 0, nil
	}
	return bytes.Clone(st.value), st.version, nil
}

// SetState implements [reputation.Backend.SetState] with a synced write.
func (b *Backend) SetState(ctx context.Context, key string, value []byte, version int64) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	if err := b.check(ctx); err != nil {
		return false, err
	}
	s := b.shard(key)
	// writeMu orders writers; mu guards the map, and is not held across
	// the synced write so readers of the shard do not wait for the disk.
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if b.closed.Load() {
		return false, reputation.ErrClosed
	}
	cur := (*s.states.Load())[key]
	if cur.version != version {
		return false, nil
	}
	k := append([]byte{'s'}, key...)
	var err error
	if value == nil {
		err = b.db.Delete(k, lsm.Sync)
	} else {
		v := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(version+1))
		err = b.db.Set(k, append(v, value...), lsm.Sync)
	}
	if err != nil {
		return false, fmt.Errorf("lsmreputation: set state %q: %w", key, err)
	}
	old := *s.states.Load()
	next := maps.Clone(old)
	if value == nil {
		delete(next, key)
	} else {
		next[key] = state{bytes.Clone(value), version + 1}
	}
	s.states.Store(&next)
	return true, nil
}

// PutSuppression implements [reputation.Backend.PutSuppression] with a
// synced write.
func (b *Backend) PutSuppression(ctx context.Context, sp reputation.Suppression) error {
	if err := checkAddr(sp.Address); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	v, _ := sp.MarshalBinary()
	s := b.shard(sp.Address)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if b.closed.Load() {
		return reputation.ErrClosed
	}
	if err := b.db.Set(append([]byte{'x'}, sp.Address...), v, lsm.Sync); err != nil {
		return fmt.Errorf("lsmreputation: put suppression %q: %w", sp.Address, err)
	}
	s.mu.Lock()
	s.supGen++
	s.sup.put(sp.Address, sp, true)
	s.mu.Unlock()
	return nil
}

// GetSuppression implements [reputation.Backend.GetSuppression].
func (b *Backend) GetSuppression(ctx context.Context, addr string) (reputation.Suppression, error) {
	if err := checkAddr(addr); err != nil {
		return reputation.Suppression{}, err
	}
	if b.closed.Load() {
		return reputation.Suppression{}, reputation.ErrClosed
	}
	sp, ok, err := b.lookup(b.shard(addr), addr)
	if err != nil {
		return reputation.Suppression{}, err
	}
	if !ok {
		return reputation.Suppression{}, reputation.ErrNotFound
	}
	return sp, nil
}

// CacheBytes returns the estimated bytes of suppression lookups cached in
// memory, the figure [Options].MemoryBudget bounds.
func (b *Backend) CacheBytes() int64 {
	var n int64
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += s.sup.bytes
		s.mu.Unlock()
	}
	return n
}

// lookup returns addr's suppression entry from the shard's cache, or from
// lsm (then caching what it found, or that there is none).
func (b *Backend) lookup(s *shard, addr string) (reputation.Suppression, bool, error) {
	s.mu.Lock()
	sp, found, cached := s.sup.get(addr)
	gen := s.supGen
	s.mu.Unlock()
	if cached {
		return sp, found, nil
	}
	v, err := b.db.Get(append([]byte{'x'}, addr...))
	switch {
	case errors.Is(err, lsm.ErrNotFound):
		sp, found = reputation.Suppression{}, false
	case err != nil:
		return sp, false, fmt.Errorf("lsmreputation: get suppression %q: %w", addr, err)
	default:
		if err := sp.UnmarshalBinary(v); err != nil {
			return sp, false, fmt.Errorf("lsmreputation: get suppression %q: %w", addr, err)
		}
		found = true
	}
	s.mu.Lock()
	if s.supGen == gen {
		s.sup.put(addr, sp, found)
	}
	s.mu.Unlock()
	return sp, found, nil
}

// DeleteSuppression implements [reputation.Backend.DeleteSuppression] with
// a synced write.
func (b *Backend) DeleteSuppression(ctx context.Context, addr string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	s := b.shard(addr)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if b.closed.Load() {
		return reputation.ErrClosed
	}
	_, ok, err := b.lookup(s, addr)
	if err != nil {
		return err
	}
	if !ok {
		return reputation.ErrNotFound
	}
	if err := b.db.Delete(append([]byte{'x'}, addr...), lsm.Sync); err != nil {
		return fmt.Errorf("lsmreputation: delete suppression %q: %w", addr, err)
	}
	s.mu.Lock()
	s.supGen++
	s.sup.put(addr, reputation.Suppression{}, false)
	s.mu.Unlock()
	return nil
}

// ListSuppressions implements [reputation.Backend.ListSuppressions] from
// lsm, in key order.
func (b *Backend) ListSuppressions(ctx context.Context, after string, limit int) ([]reputation.Suppression, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	lower := append([]byte{'x'}, after...)
	if after != "" {
		lower = append(lower, 0)
	}
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: lower, UpperBound: []byte{'x' + 1}})
	if err != nil {
		return nil, fmt.Errorf("lsmreputation: list suppressions: %w", err)
	}
	var out []reputation.Suppression
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		var sp reputation.Suppression
		if err := sp.UnmarshalBinary(it.Value()); err != nil {
			return nil, errors.Join(fmt.Errorf("lsmreputation: list suppressions at %q: %w", it.Key(), err), it.Close())
		}
		out = append(out, sp)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, fmt.Errorf("lsmreputation: list suppressions: %w", err)
	}
	return out, nil
}
