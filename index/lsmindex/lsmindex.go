package lsmindex

import (
	"bytes"
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/index"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// MergerName is the name of the merge operator the index's lsm DB uses.
const MergerName = "mailbricks.index.postings.v1"

// Merger is the merge operator a DB passed to [New] must be opened with:
// it concatenates postings chunks.
var Merger = &lsm.Merger{
	Name: MergerName,
	Merge: func(_, older, newer []byte) ([]byte, error) {
		out := make([]byte, 0, len(older)+len(newer))
		return append(append(out, older...), newer...), nil
	},
	MergeAll: func(_ []byte, values [][]byte) ([]byte, error) {
		n := 0
		for _, v := range values {
			n += len(v)
		}
		out := make([]byte, 0, n)
		for _, v := range values {
			out = append(out, v...)
		}
		return out, nil
	},
}

// Options configures [Open]. A nil *Options and every zero field mean the
// default.
type Options struct {
	// FS is the file system of the DB directory. The default is
	// vfs.Default, the operating system's.
	FS vfs.FS
	// NoSync makes writes return before they are on stable storage; a
	// machine crash may then lose the last acknowledged writes (the index
	// can be rebuilt with [index.Index.Reindex]). The default is false:
	// every write is synced.
	NoSync bool
	// CacheSize is the lsm block cache size in bytes. The default is the
	// lsm default, 64 MiB.
	CacheSize int64
	// MemTableSize is the lsm memtable size in bytes. The default is the
	// lsm default, 64 MiB.
	MemTableSize int
	// Compression is the lsm block compression. The default is
	// lsm.S2Compression.
	Compression lsm.Compression
	// LSM tunes the lsm engine beyond the fields above (MaxOpenFiles, for
	// one: every open table keeps its index and bloom filter in memory);
	// its FS, Merger and Logger are replaced by the backend's, and
	// CacheSize, MemTableSize and Compression by the fields above when
	// those are set. The default is nil: lsm's defaults.
	LSM *lsm.Options
	// PurgeAfter is the number of deleted documents of a user that makes
	// a Delete purge them from the postings (see [Backend.Purge]); a
	// negative value disables automatic purges. The default is 10000.
	PurgeAfter int
	// MemoryBudget bounds the bytes of doc values (and the doc-number
	// maps and orders built on them) that the backend keeps in memory for
	// all users together. Past it, the least recently used users not in
	// use are unloaded; their next call loads them again from the DB's
	// compact doc-value chunks (see the package doc). A user in use stays
	// loaded whatever its size. The lsm block cache and memtables are
	// budgeted by CacheSize and MemTableSize. The default is 256 MiB.
	MemoryBudget int64
	// Logger receives lsm background events. The default discards them.
	Logger *slog.Logger
	// Index configures the [index.Index] that [OpenIndex] returns. The
	// default is nil: index's defaults.
	Index *index.Options
}

// Backend is the embedded [index.Backend] on the lsm engine. It is safe for
// concurrent use.
type Backend struct {
	db     *lsm.DB
	ownDB  bool
	wo     *lsm.WriteOptions
	purge  int
	budget int64
	chunk  uint32
	reseal int
	mu     sync.Mutex // guards users, lru, cached, the users' refs and acct, and closed
	users  map[mailbricks.UserID]*userState
	lru    list.List // of *userState, most recently used first
	cached int64     // sum of the users' acct
	closed bool
	// batches holds Index's batches for reuse, Reset; tables its
	// analysis workers' term tables.
	batches, tables sync.Pool
}

// DefaultMemoryBudget is the default of [Options].MemoryBudget.
const DefaultMemoryBudget = 256 << 20

var _ index.GetBackend = (*Backend)(nil)

// Open opens (creating if needed) an index in directory dir.
func Open(dir string, opts *Options) (*Backend, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	var lo lsm.Options
	if o.LSM != nil {
		lo = *o.LSM
	}
	lo.FS, lo.Merger, lo.Logger = o.FS, Merger, o.Logger
	if o.CacheSize != 0 {
		lo.CacheSize = o.CacheSize
	}
	if o.MemTableSize != 0 {
		lo.MemTableSize = o.MemTableSize
	}
	if o.Compression != 0 {
		lo.Compression = o.Compression
	}
	db, err := lsm.Open(dir, &lo)
	if err != nil {
		return nil, fmt.Errorf("lsmindex: open %s: %w", dir, err)
	}
	b := New(db, &o)
	b.ownDB = true
	return b, nil
}

// New returns a Backend on db, which must have been opened with [Merger]
// as its Options.Merger and must hold no other data in the key ranges of
// the users indexed. The Backend does not close db; the caller does,
// after closing the Backend. Only opts.NoSync, opts.PurgeAfter and
// opts.MemoryBudget are used.
func New(db *lsm.DB, opts *Options) *Backend {
	var o Options
	if opts != nil {
		o = *opts
	}
	wo := lsm.Sync
	if o.NoSync {
		wo = lsm.NoSync
	}
	purge := o.PurgeAfter
	if purge == 0 {
		purge = 10000
	}
	budget := o.MemoryBudget
	if budget <= 0 {
		budget = DefaultMemoryBudget
	}
	b := &Backend{db: db, wo: wo, purge: purge, budget: budget, chunk: defaultChunkDocs, reseal: defaultResealAfter, users: map[mailbricks.UserID]*userState{}}
	b.batches.New = func() any { return db.NewBatch() }
	b.tables.New = func() any { return newTermTable(0) }
	return b
}

// CacheBytes returns the estimated bytes of doc values the backend holds
// in memory now, the figure [Options].MemoryBudget bounds (users in use
// may push it past the budget until they are released).
func (b *Backend) CacheBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cached
}

// CachedUsers returns the number of users whose doc values are in memory.
func (b *Backend) CachedUsers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.users)
}

// DB returns the underlying lsm DB, for flushes, compactions and metrics.
func (b *Backend) DB() *lsm.DB { return b.db }

// Close closes the backend and, if [Open] opened it, its DB. It is
// idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	if b.ownDB {
		return b.db.Close()
	}
	return nil
}

// userState is a user's doc values and doc-number bookkeeping, loaded
// from the DB on first use and kept in memory until the memory budget
// evicts it. mu serializes writers for the user (each holds it across its
// lsm commit, so chunks of one key are appended in doc-number order) and
// excludes them from searches.
//
// refs counts the calls that hold or wait for the state (guarded by the
// Backend's mu): only a state with none is evicted, so two states of one
// user never exist at once.
type atomicSeg = atomic.Pointer[segment]

type userState struct {
	u    mailbricks.UserID
	refs int
	elem *list.Element
	acct int64 // bytes accounted in Backend.cached

	mu     sync.RWMutex
	loaded bool
	next   uint32
	// The doc values, by doc number: dates (Unix seconds) and flags as
	// columns, loaded eagerly; the IDs and the rest of each document's
	// Values in one segment per chunk of doc numbers, decoded from the
	// DB's chunk the first time a call needs it (see docvalues.go).
	dates   []int64
	flags   []index.Flag
	liveSet bitset // the live documents
	segs    []atomicSeg
	segMu   sync.Mutex // guards decoding segments and segStrBytes
	errMu   sync.Mutex // guards err
	err     error      // a segment's read error met by id, for takeErr
	// segStrBytes estimates the bytes of the strings of the segments
	// decoded from chunks (strBytes counts those set by writes).
	segStrBytes int64
	db          *lsm.DB
	// byID maps the live documents' IDs to doc numbers; nil until a call
	// needs it (searches do not), then built under idMu or mu.
	byID map[mailbricks.MessageID]uint32
	idMu sync.Mutex
	// deleted holds the deleted doc numbers whose postings are not
	// purged; with deletedLoaded unset, only those deleted since the load
	// (the markers are read by the first write, see loadDeleted).
	deleted       []uint32
	deletedLoaded bool
	live          int
	// strBytes estimates the bytes of the doc values' strings.
	strBytes int64
	// layout is the doc-value layout version recorded for the user (0:
	// none); sealed is the number of leading chunks written; overlay the
	// sealed doc numbers with an overlay marker.
	layout  uint64
	sealed  uint32
	overlay []uint32
	chunk   uint32 // doc numbers per chunk
	reseal  int    // overlay markers that make a write reseal
	// analyzer is the analyzer version recorded for the user, 0 if none;
	// stale is set when the user has live documents analyzed by another
	// version than index.AnalyzerVersion (see Backend.Search).
	analyzer uint64
	stale    bool
	// order holds doc numbers sorted oldest first (date, then ID, both
	// ascending); it may hold dead doc numbers, which searches skip.
	order []uint32
}

// user returns the user's state, loaded, with mu held for writing if
// write, else for reading. The caller gives it back with release.
func (b *Backend) user(ctx context.Context, u mailbricks.UserID, write bool) (*userState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Every entry point comes through here: reject what the Index would,
	// since the key layout relies on a user without NUL (see layout.go).
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("lsmindex: %w", err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, index.ErrClosed
	}
	s := b.users[u]
	if s == nil {
		s = &userState{u: u, chunk: b.chunk, reseal: b.reseal, db: b.db}
		b.users[u] = s
		s.elem = b.lru.PushFront(s)
	} else {
		b.lru.MoveToFront(s.elem)
	}
	s.refs++
	b.mu.Unlock()
	for {
		if write {
			s.mu.Lock()
		} else {
			s.mu.RLock()
		}
		if s.loaded && (!write || s.deletedLoaded) {
			return s, nil
		}
		if s.loaded {
			// Loaded by a read: the deleted markers are not read yet.
			if err := b.loadDeleted(u, s); err != nil {
				s.reset()
				b.release(s, true)
				return nil, err
			}
			return s, nil
		}
		if !write {
			s.mu.RUnlock()
			s.mu.Lock()
		}
		if !s.loaded {
			err := b.load(u, s)
			if err == nil && write {
				err = b.loadDeleted(u, s)
			}
			if err != nil {
				s.reset()
				b.release(s, true)
				return nil, err
			}
		}
		if write {
			return s, nil
		}
		s.mu.Unlock()
	}
}

// release unlocks s (held for writing if write), accounts its size and
// evicts the least recently used states past the budget.
func (b *Backend) release(s *userState, write bool) {
	size := s.size()
	if write {
		s.mu.Unlock()
	} else {
		s.mu.RUnlock()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.refs--
	b.cached += size - s.acct
	s.acct = size
	for e := b.lru.Back(); e != nil && b.cached > b.budget; {
		prev := e.Prev()
		if v := e.Value.(*userState); v.refs == 0 {
			b.lru.Remove(e)
			delete(b.users, v.u)
			b.cached -= v.acct
			v.acct = 0
		}
		e = prev
	}
}

// perDoc is the bytes a document costs in the eager columns (date,
// flags, live bit).
const perDoc = 8 + 2 + 1

// size estimates the bytes s holds; the caller holds s.mu.
func (s *userState) size() int64 {
	n := int64(256) + int64(cap(s.dates))*perDoc + s.strBytes + int64(cap(s.deleted)+cap(s.overlay)+cap(s.order))*4
	s.segMu.Lock()
	defer s.segMu.Unlock()
	for i := range s.segs {
		if seg := s.segs[i].Load(); seg != nil {
			n += int64(cap(seg.vals))*int64(unsafe.Sizeof(index.Values{})) + int64(cap(seg.ids))*16
		}
	}
	n += s.segStrBytes

	s.idMu.Lock()
	if s.byID != nil {
		n += int64(len(s.byID)) * 48
	}
	s.idMu.Unlock()
	return n
}

// ensureByID builds the ID map, reading every chunk's IDs; the caller
// holds mu for writing, or for reading and idMu.
func (s *userState) ensureByID() error {
	if s.byID != nil {
		return nil
	}
	m := make(map[mailbricks.MessageID]uint32, s.live)
	var err error
	s.liveSet.each(func(n uint32) {
		if err != nil {
			return
		}
		var id mailbricks.MessageID
		if id, err = s.idOf(n); err == nil {
			m[id] = n
		}
	})
	if err != nil {
		return fmt.Errorf("lsmindex: %s: %w", s.u, err)
	}
	s.byID = m
	return nil
}

// load reads the user's doc values (sealed chunks, overlaid and unsealed
// doc records), deleted markers, next doc number and versions.
func (b *Backend) load(u mailbricks.UserID, s *userState) error {
	s.reset()
	v, err := b.db.Get(tableKey(u, tagNext))
	switch {
	case err == nil && len(v) == 4:
		s.next = binary.BigEndian.Uint32(v)
	case err == nil:
		return fmt.Errorf("lsmindex: load %s: %w: next doc number", u, errCorrupt)
	case !errors.Is(err, lsm.ErrNotFound):
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	s.grow(s.next)
	// The layout version is that of the first chunk's value if there is
	// one (a seal writes the version key in the batch of the chunks of
	// its version), so a user with chunks loads without reading the
	// version key, which sorts far from them.
	it, err := b.db.NewPrefixIter(tableKey(u, tagChunk))
	if err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	ok := it.First()
	if k := it.Key(); ok && len(k) >= 4 && binary.BigEndian.Uint32(k[len(k)-4:]) == 0 && len(it.Value()) > 0 {
		switch it.Value()[0] {
		case 1:
			s.layout = layoutV2
		case 2:
			s.layout = layoutVersion
		default:
			it.Close()
			return fmt.Errorf("lsmindex: load %s: %w: chunk version", u, errCorrupt)
		}
	} else {
		v, err = b.db.Get(tableKey(u, tagLayout))
		switch {
		case err == nil:
			n, k := binary.Uvarint(v)
			if k <= 0 || n != layoutVersion && n != layoutV2 {
				it.Close()
				return fmt.Errorf("lsmindex: load %s: %w: doc-value layout version", u, errCorrupt)
			}
			s.layout = n
		case !errors.Is(err, lsm.ErrNotFound):
			it.Close()
			return fmt.Errorf("lsmindex: load %s: %w", u, err)
		}
	}
	tail := uint32(0) // the first doc number read from doc records
	if s.layout != 0 {
		if err := b.loadChunks(u, s, it, ok); err != nil {
			return fmt.Errorf("lsmindex: load %s: %w", u, err)
		}
		tail = s.sealed * s.chunk
	} else if err := it.Close(); err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	lo := docKey(nil, u, tagDoc, tail)
	it, err = b.db.NewIter(&lsm.IterOptions{LowerBound: lo, UpperBound: lsm.PrefixUpperBound(tableKey(u, tagDoc))})
	if err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 4 {
			it.Close()
			return fmt.Errorf("lsmindex: load %s: %w: doc key", u, errCorrupt)
		}
		n := binary.BigEndian.Uint32(k[len(k)-4:])
		id, vals, err := decodeDoc(it.Value())
		if err != nil || n >= s.next {
			it.Close()
			return fmt.Errorf("lsmindex: load %s: doc %d: %w", u, n, errCorrupt)
		}
		if err := s.put(n, id, vals); err != nil {
			it.Close()
			return fmt.Errorf("lsmindex: load %s: %w", u, err)
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	v, err = b.db.Get(tableKey(u, tagAnalyzer))
	switch {
	case err == nil:
		n, k := binary.Uvarint(v)
		if k <= 0 {
			return fmt.Errorf("lsmindex: load %s: %w: analyzer version", u, errCorrupt)
		}
		s.analyzer = n
	case !errors.Is(err, lsm.ErrNotFound):
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	s.stale = s.live > 0 && s.analyzer != index.AnalyzerVersion
	if err := s.rebuildOrder(); err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	s.loaded = true
	if s.layout != layoutVersion && s.next > 0 {
		// Written before chunks existed, or with layout version 2:
		// migrate.
		if err := b.seal(u, s, nil); err != nil {
			return fmt.Errorf("lsmindex: load %s: %w", u, err)
		}
	}
	return nil
}

// loadDeleted reads the user's deleted markers, which only writes need
// (searches filter on the live set): the first write of a load reads
// them. The caller holds s.mu for writing.
func (b *Backend) loadDeleted(u mailbricks.UserID, s *userState) error {
	it, err := b.db.NewPrefixIter(tableKey(u, tagDeleted))
	if err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	var deleted []uint32
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		deleted = append(deleted, binary.BigEndian.Uint32(k[len(k)-4:]))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("lsmindex: load %s: %w", u, err)
	}
	s.deleted = append(deleted, s.deleted...)
	s.deletedLoaded = true
	return nil
}

// loadChunks reads the user's sealed chunks from it, at its first (ok
// reports whether there is one), then the doc records of the overlaid
// documents. It closes it.
func (b *Backend) loadChunks(u mailbricks.UserID, s *userState, it *lsm.Iterator, ok bool) error {
	var scratch []uint32
	for ; ok; ok = it.Next() {
		k := it.Key()
		c := binary.BigEndian.Uint32(k[len(k)-4:])
		if c != s.sealed || uint64(c+1)*uint64(s.chunk) > uint64(s.next) {
			break // chunks past a gap are not trusted
		}
		if err := decodeChunk(it.Value(), s, c, &scratch); err != nil {
			it.Close()
			return err
		}
		s.sealed++
	}
	if err := it.Close(); err != nil {
		return err
	}
	it, err := b.db.NewPrefixIter(tableKey(u, tagOverlay))
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		s.overlay = append(s.overlay, binary.BigEndian.Uint32(k[len(k)-4:]))
	}
	if err := it.Close(); err != nil {
		return err
	}
	var key []byte
	for _, n := range s.overlay {
		if n >= s.sealed*s.chunk {
			continue // its doc record is read with the tail
		}
		key = docKey(key, u, tagDoc, n)
		v, err := b.db.Get(key)
		if errors.Is(err, lsm.ErrNotFound) {
			if s.liveSet.has(n) {
				s.kill(n)
			}
			continue
		}
		if err != nil {
			return err
		}
		id, vals, err := decodeDoc(v)
		if err != nil {
			return fmt.Errorf("doc %d: %w", n, err)
		}
		if s.liveSet.has(n) {
			s.kill(n)
		}
		if err := s.put(n, id, vals); err != nil {
			return err
		}
	}
	return nil
}

// seal writes the chunks that are complete and not yet written, rewrites
// the chunks of the overlaid documents if there are resealAfter of them
// (or if rewrite is set), and records the layout version. The caller holds
// s.mu for writing and has published its writes to s.
func (b *Backend) seal(u mailbricks.UserID, s *userState, batch *lsm.Batch) error {
	full := s.next / s.chunk
	reseal := len(s.overlay) >= s.reseal
	if s.sealed == full && !reseal && s.layout == layoutVersion {
		return nil
	}
	if batch == nil {
		batch = b.db.NewBatch()
	}
	var key, val, rest []byte
	var err error
	from := s.sealed
	if s.layout != layoutVersion {
		// A migration writes every chunk in this version's layout.
		from = 0
		reseal = len(s.overlay) > 0
	}
	if reseal {
		touched := map[uint32]bool{}
		for _, n := range s.overlay {
			if c := n / s.chunk; c < s.sealed {
				touched[c] = true
			}
			key = docKey(key, u, tagOverlay, n)
			batch.Delete(key)
		}
		for c := range touched {
			if c >= from {
				continue // written below
			}
			if val, rest, err = encodeChunk(val[:0], rest[:0], s, c*s.chunk, s.chunk); err != nil {
				return fmt.Errorf("lsmindex: seal: %w", err)
			}
			batch.Set(chunkKey(key, u, c), val)
			batch.Set(docKey(key, u, tagRest, c), rest)
		}
	}
	for c := from; c < full; c++ {
		if val, rest, err = encodeChunk(val[:0], rest[:0], s, c*s.chunk, s.chunk); err != nil {
			return fmt.Errorf("lsmindex: seal: %w", err)
		}
		batch.Set(chunkKey(key, u, c), val)
		batch.Set(docKey(key, u, tagRest, c), rest)
	}
	if s.layout != layoutVersion {
		batch.Set(tableKey(u, tagLayout), binary.AppendUvarint(nil, layoutVersion))
	}
	if err := batch.Commit(b.wo); err != nil {
		return fmt.Errorf("lsmindex: seal: %w", err)
	}
	if reseal {
		s.overlay = nil
	}
	s.sealed = full
	s.layout = layoutVersion
	return nil
}

// touch records in batch that sealed document n's doc record changes.
func (s *userState) touch(batch *lsm.Batch, key []byte, u mailbricks.UserID, n uint32) []byte {
	if n < s.sealed*s.chunk && !slices.Contains(s.overlay, n) {
		key = docKey(key, u, tagOverlay, n)
		batch.Set(key, nil)
		s.overlay = append(s.overlay, n)
	}
	return key
}

// reset empties s, keeping its lock.
func (s *userState) reset() {
	s.loaded, s.next, s.deleted, s.live, s.order = false, 0, nil, 0, nil
	s.deletedLoaded = false
	s.analyzer, s.stale = 0, false
	s.flags, s.dates, s.liveSet, s.segs = nil, nil, nil, nil
	s.byID = nil
	s.strBytes, s.layout, s.sealed, s.overlay = 0, 0, 0, nil
	s.segStrBytes = 0
	_ = s.takeErr()
}

// cmpOldest orders doc numbers oldest first.
func (s *userState) cmpOldest(a, b uint32) int {
	switch {
	case s.newer(b, a):
		return -1
	case s.newer(a, b):
		return 1
	}
	return 0
}

// rebuildOrder sorts the live doc numbers oldest first. Doc numbers are
// usually allocated in date order (mail arrives in time order), so the
// order is checked before it is sorted. The sort is a radix sort of the
// dates (least significant byte first, over the bytes in which they
// differ), then a sort by ID of each run of equal dates.
func (s *userState) rebuildOrder() error {
	order := make([]uint32, 0, s.live)
	s.liveSet.each(func(n uint32) { order = append(order, n) })
	if !s.sortedOldest(order) {
		radixByDate(order, s.dates)
		for i := 0; i < len(order); {
			j := i + 1
			for j < len(order) && s.dates[order[j]] == s.dates[order[i]] {
				j++
			}
			if j-i > 1 {
				slices.SortFunc(order[i:j], s.cmpOldest)
			}
			i = j
		}
	}
	if err := s.takeErr(); err != nil {
		return err
	}
	s.order = order
	return nil
}

// sortedOldest reports whether order is sorted oldest first.
func (s *userState) sortedOldest(order []uint32) bool {
	for i := 1; i < len(order); i++ {
		a, b := s.dates[order[i-1]], s.dates[order[i]]
		if a > b || a == b && s.id(order[i-1]).Compare(s.id(order[i])) > 0 {
			return false
		}
	}
	return true
}

// radixByDate sorts doc numbers by dates[n], ascending, stably.
func radixByDate(order []uint32, dates []int64) {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, n := range order {
		lo, hi = min(lo, dates[n]), max(hi, dates[n])
	}
	span := uint64(hi - lo)
	tmp := make([]uint32, len(order))
	src, dst := order, tmp
	for shift := 0; shift < 64 && span>>shift != 0; shift += 8 {
		var count [257]int
		for _, n := range src {
			count[(uint64(dates[n]-lo)>>shift)&0xff+1]++
		}
		for i := 1; i < 257; i++ {
			count[i] += count[i-1]
		}
		for _, n := range src {
			d := (uint64(dates[n]-lo) >> shift) & 0xff
			dst[count[d]] = n
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &order[0] {
		copy(order, src)
	}
}

// mergeOrder merges the new doc numbers into order. New mail is usually
// the newest, which appends; otherwise the two are merged, dropping dead
// doc numbers on the way. Appending leaves dead doc numbers in order
// (searches skip them); they are dropped once they are half of it.
func (s *userState) mergeOrder(added []uint32) {
	slices.SortFunc(added, s.cmpOldest)
	if len(s.order) > 2*s.live+64 {
		s.order = slices.DeleteFunc(s.order, func(n uint32) bool { return !s.liveSet.has(n) })
	}
	if len(added) == 0 {
		return
	}
	if len(s.order) == 0 || s.newer(added[0], s.order[len(s.order)-1]) {
		s.order = append(s.order, added...)
		return
	}
	out := make([]uint32, 0, len(s.order)+len(added))
	i, j := 0, 0
	for i < len(s.order) || j < len(added) {
		if i < len(s.order) && !s.liveSet.has(s.order[i]) {
			i++
			continue
		}
		if j == len(added) || (i < len(s.order) && s.newer(added[j], s.order[i])) {
			out = append(out, s.order[i])
			i++
		} else {
			out = append(out, added[j])
			j++
		}
	}
	s.order = out
}

// Index implements [index.Backend]. All documents go into one lsm batch:
// for each (field, term) of the batch one postings chunk is appended with
// a merge operand, so indexing never reads postings.
func (b *Backend) Index(ctx context.Context, u mailbricks.UserID, docs []*index.Document) error {
	if len(docs) == 0 {
		if err := u.Validate(); err != nil {
			return fmt.Errorf("lsmindex: %w", err)
		}
		return ctx.Err()
	}
	for _, d := range docs {
		if d == nil || d.ID == (mailbricks.MessageID{}) {
			return fmt.Errorf("lsmindex: %w: nil document or zero ID", index.ErrInvalidDocument)
		}
	}
	s, err := b.user(ctx, u, true)
	if err != nil {
		return err
	}
	defer b.release(s, true)
	if err := s.ensureByID(); err != nil {
		return err
	}
	// The last document of an ID wins.
	last := make(map[mailbricks.MessageID]int, len(docs))
	for i, d := range docs {
		last[d.ID] = i
	}
	if uint64(s.next)+uint64(len(last)) >= math.MaxUint32 {
		return fmt.Errorf("lsmindex: user %s is out of doc numbers", u)
	}
	var replaced []uint32
	for id := range last {
		if n, ok := s.byID[id]; ok {
			replaced = append(replaced, n)
		}
	}
	slices.Sort(replaced)
	next := s.next
	added := make([]uint32, 0, len(last))
	var keep []*index.Document
	for i, d := range docs {
		if last[d.ID] == i {
			added = append(added, next)
			keep = append(keep, d)
			next++
		}
	}
	// Analysis, the bulk of the work, runs on up to GOMAXPROCS workers,
	// each over a contiguous run of the batch's documents, so each
	// worker's chunk of a term holds smaller doc numbers than the next
	// worker's and their concatenation is a valid postings value.
	workers := min(runtime.GOMAXPROCS(0), 8, (len(keep)+31)/32)
	tables := make([]*termTable, workers)
	defer func() {
		for _, t := range tables {
			b.tables.Put(t)
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(keep)/workers, (w+1)*len(keep)/workers
		tables[w] = b.tables.Get().(*termTable)
		wg.Add(1)
		go func() {
			defer wg.Done()
			analyze(tables[w], keep[lo:hi], added[lo:hi])
		}()
	}
	wg.Wait()
	// Every worker's terms, sorted by key and then worker: the entries
	// of one key are adjacent, in the order their chunks concatenate.
	terms := sortedTerms(tables)

	// The batch is written in ascending key order (doc records, next doc
	// number, postings, stored texts, deleted markers), which the memtable
	// inserts fastest. Its buffer (megabytes for a batch of a thousand
	// messages) is reused from the last Index call, saving the copies of
	// growing it.
	batch := b.batches.Get().(*lsm.Batch)
	defer func() { batch.Reset(); b.batches.Put(batch) }()
	var key, rec []byte
	for _, n := range replaced {
		batch.Delete(docKey(key, u, tagDoc, n))
	}
	for i, d := range keep {
		rec = encodeDoc(rec[:0], d.ID, &d.Values)
		key = docKey(key, u, tagDoc, added[i])
		batch.Set(key, rec)
	}
	// A user's first documents (or the first after all were deleted)
	// record the analyzer version; a stale user's stays as it is until
	// a rebuild.
	if s.live == 0 {
		s.stale = false
	}
	recordAnalyzer := s.analyzer != index.AnalyzerVersion && !s.stale
	if recordAnalyzer {
		batch.Set(tableKey(u, tagAnalyzer), binary.AppendUvarint(nil, index.AnalyzerVersion))
	}
	var nb [4]byte
	binary.BigEndian.PutUint32(nb[:], next)
	batch.Set(tableKey(u, tagNext), nb[:])
	var chunk []byte
	for i := 0; i < len(terms); {
		chunk = chunk[:0]
		t := tables[terms[i].w]
		k := t.key(int(terms[i].id))
		chunk = t.acc(int(terms[i].id)).chunk(chunk)
		for i++; i < len(terms); i++ {
			t := tables[terms[i].w]
			if !bytes.Equal(t.key(int(terms[i].id)), k) {
				break
			}
			chunk = t.acc(int(terms[i].id)).chunk(chunk)
		}
		key = append(append(append(key[:0], u...), 0, tagPostings), k...)
		batch.Merge(key, chunk)
	}
	for _, n := range replaced {
		batch.Delete(docKey(key, u, tagText, n))
	}
	for i, d := range keep {
		rec = encodeText(rec[:0], d.Subject, d.Body)
		key = docKey(key, u, tagText, added[i])
		batch.Set(key, rec)
	}
	for _, n := range replaced {
		batch.Set(docKey(key, u, tagDeleted, n), nil)
	}
	for _, n := range replaced {
		key = s.touch(batch, key, u, n)
	}
	newDocs := slices.Clone(added)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := batch.Commit(b.wo); err != nil {
		return fmt.Errorf("lsmindex: index: %w", err)
	}
	// Publish to memory only after the commit.
	if recordAnalyzer {
		s.analyzer = index.AnalyzerVersion
	}
	for _, n := range replaced {
		s.kill(n)
		s.deleted = append(s.deleted, n)
	}
	s.grow(next)
	for i, d := range docs {
		if last[d.ID] != i {
			continue
		}
		n := added[0]
		added = added[1:]
		v := d.Values
		v.Keywords = slices.Clone(v.Keywords)
		if err := s.put(n, d.ID, v); err != nil {
			// The write is committed; the state is not: load it again.
			s.reset()
			return fmt.Errorf("lsmindex: index: %w", err)
		}
	}
	s.next = next
	s.mergeOrder(newDocs)
	if err := s.takeErr(); err != nil {
		// The write is committed; the order may not be right: load
		// the state again.
		s.reset()
		return fmt.Errorf("lsmindex: index: %w", err)
	}
	return b.seal(u, s, nil)
}

// analyze accumulates the postings of docs, numbered nums, in t, keyed
// by field byte and term.
func analyze(t *termTable, docs []*index.Document, nums []uint32) {
	// About 40 keys a document in mail (most terms of a batch occur in
	// few of its documents).
	t.reset(min(64*len(docs), 1<<16))
	var kb []byte
	for i, d := range docs {
		n := nums[i]
		d.Analyze(func(f index.Field, term []byte, pos int) {
			kb = append(append(kb[:0], byte(f)), term...)
			t.get(kb).add(n, pos)
		})
	}
	// Finish every key's last document here, in id order (sequential
	// memory) and on the worker, rather than in key order on the
	// goroutine that writes the chunks.
	for id := range t.len() {
		if a := t.acc(id); a.has {
			a.finishDoc()
		}
	}
}

// Delete implements [index.Backend]: it removes the doc records and
// writes deleted markers; searches filter deleted documents out until a
// purge drops their postings.
func (b *Backend) Delete(ctx context.Context, u mailbricks.UserID, ids []mailbricks.MessageID) error {
	s, err := b.user(ctx, u, true)
	if err != nil {
		return err
	}
	defer b.release(s, true)
	if err := s.ensureByID(); err != nil {
		return err
	}
	batch := b.db.NewBatch()
	var key []byte
	var gone []uint32
	for _, id := range ids {
		n, ok := s.byID[id]
		if !ok || slices.Contains(gone, n) {
			continue
		}
		gone = append(gone, n)
		key = docKey(key, u, tagDoc, n)
		batch.Delete(key)
		key = docKey(key, u, tagText, n)
		batch.Delete(key)
		key = docKey(key, u, tagDeleted, n)
		batch.Set(key, nil)
		key = s.touch(batch, key, u, n)
	}
	if len(gone) == 0 {
		return nil
	}
	if err := batch.Commit(b.wo); err != nil {
		return fmt.Errorf("lsmindex: delete: %w", err)
	}
	for _, n := range gone {
		delete(s.byID, s.id(n))
		s.kill(n)
	}
	s.deleted = append(s.deleted, gone...)
	if err := b.seal(u, s, nil); err != nil {
		return err
	}
	if b.purge > 0 && len(s.deleted) >= b.purge {
		return b.purgeLocked(ctx, u, s)
	}
	return nil
}

// Update implements [index.Backend]: it rewrites the doc record only.
func (b *Backend) Update(ctx context.Context, u mailbricks.UserID, id mailbricks.MessageID, v index.Values) error {
	s, err := b.user(ctx, u, true)
	if err != nil {
		return err
	}
	defer b.release(s, true)
	if err := s.ensureByID(); err != nil {
		return err
	}
	n, ok := s.byID[id]
	if !ok {
		return index.ErrNotFound
	}
	batch := b.db.NewBatch()
	batch.Set(docKey(nil, u, tagDoc, n), encodeDoc(nil, id, &v))
	s.touch(batch, nil, u, n)
	if err := batch.Commit(b.wo); err != nil {
		return fmt.Errorf("lsmindex: update: %w", err)
	}
	v.Keywords = slices.Clone(v.Keywords)
	old := s.dates[n]
	if err := s.set(n, v); err != nil {
		s.reset()
		return fmt.Errorf("lsmindex: update: %w", err)
	}
	if s.dates[n] != old {
		if err := s.rebuildOrder(); err != nil {
			s.reset()
			return fmt.Errorf("lsmindex: update: %w", err)
		}
	}
	return b.seal(u, s, nil)
}

// Get implements [index.GetBackend].
func (b *Backend) Get(ctx context.Context, u mailbricks.UserID, id mailbricks.MessageID) (index.Values, error) {
	s, err := b.user(ctx, u, false)
	if err != nil {
		return index.Values{}, err
	}
	defer b.release(s, false)
	s.idMu.Lock()
	err = s.ensureByID()
	s.idMu.Unlock()
	if err != nil {
		return index.Values{}, err
	}
	n, ok := s.byID[id]
	if !ok || !s.liveSet.has(n) {
		return index.Values{}, index.ErrNotFound
	}
	p, err := s.value(n)
	if err != nil {
		return index.Values{}, fmt.Errorf("lsmindex: get: %w", err)
	}
	v := *p
	v.Keywords = slices.Clone(v.Keywords)
	return v, nil
}

// List implements [index.Backend].
func (b *Backend) List(ctx context.Context, u mailbricks.UserID, fn func(mailbricks.MessageID, index.Values) error) error {
	s, err := b.user(ctx, u, false)
	if err != nil {
		return err
	}
	type item struct {
		id mailbricks.MessageID
		v  index.Values
	}
	items := make([]item, 0, s.live)
	s.liveSet.each(func(n uint32) {
		p, e := s.value(n)
		if e != nil {
			err = e
			return
		}
		v := *p
		v.Keywords = slices.Clone(v.Keywords)
		items = append(items, item{s.id(n), v})
	})
	b.release(s, false)
	if err != nil {
		return fmt.Errorf("lsmindex: list: %w", err)
	}
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(it.id, it.v); err != nil {
			return err
		}
	}
	return nil
}

// DeleteUser implements [index.Backend] with one range deletion.
func (b *Backend) DeleteUser(ctx context.Context, u mailbricks.UserID) error {
	s, err := b.user(ctx, u, true)
	if err != nil {
		return err
	}
	defer b.release(s, true)
	p := userPrefix(u)
	if err := b.db.DeleteRange(p, lsm.PrefixUpperBound(p), b.wo); err != nil {
		return fmt.Errorf("lsmindex: delete user: %w", err)
	}
	s.reset()
	s.loaded, s.deletedLoaded = true, true
	return nil
}

// Purge drops the postings of user's deleted documents: it rewrites each
// of the user's postings values as one chunk without them (also folding
// the chunks of many merge operands into one) and removes the deleted
// markers. Delete calls it when [Options].PurgeAfter deletions have
// accumulated. Purge is safe to interrupt: a crash midway leaves markers
// that the next purge finishes.
func (b *Backend) Purge(ctx context.Context, u mailbricks.UserID) error {
	if err := u.Validate(); err != nil {
		return err
	}
	s, err := b.user(ctx, u, true)
	if err != nil {
		return err
	}
	defer b.release(s, true)
	return b.purgeLocked(ctx, u, s)
}

func (b *Backend) purgeLocked(ctx context.Context, u mailbricks.UserID, s *userState) error {
	if len(s.deleted) == 0 {
		return nil
	}
	dead := make(map[uint32]bool, len(s.deleted))
	for _, n := range s.deleted {
		dead[n] = true
	}
	drop := func(n uint32) bool { return dead[n] }
	it, err := b.db.NewPrefixIter(tableKey(u, tagPostings))
	if err != nil {
		return fmt.Errorf("lsmindex: purge: %w", err)
	}
	batch := b.db.NewBatch()
	var pl plist
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			it.Close()
			return err
		}
		if err := decodePostings(it.Value(), true, &pl); err != nil {
			it.Close()
			return fmt.Errorf("lsmindex: purge: %w", err)
		}
		touched := false
		for _, d := range pl.docs {
			if dead[d] {
				touched = true
				break
			}
		}
		if !touched {
			continue
		}
		k := slices.Clone(it.Key())
		if v := pl.rewrite(drop); v == nil {
			batch.Delete(k)
		} else {
			batch.Set(k, v)
		}
		if batch.Len() >= 4096 {
			if err := batch.Commit(b.wo); err != nil {
				it.Close()
				return fmt.Errorf("lsmindex: purge: %w", err)
			}
			batch = b.db.NewBatch()
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("lsmindex: purge: %w", err)
	}
	var key []byte
	for _, n := range s.deleted {
		key = docKey(key, u, tagDeleted, n)
		batch.Delete(key)
	}
	if err := batch.Commit(b.wo); err != nil {
		return fmt.Errorf("lsmindex: purge: %w", err)
	}
	s.deleted = nil
	return nil
}
