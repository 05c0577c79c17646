// Package lsmmailbox is the embedded [mailbox.Backend], on the [lsm]
// engine: one DB directory holds the mailboxes of every user.
//
// # Semantics
//
// Every write of a user (append, flags, move, copy, expunge, folder
// changes) reads what it needs and commits one lsm batch while holding
// that user's lock (a striped mutex): one writer order per user, and each
// change, with its UID, MODSEQ, read/unread table move and counter update,
// is atomic. Writes are synced before they return unless
// [Options.NoSync]; after a crash the store holds a prefix of the
// acknowledged writes and is consistent. Reads run on an lsm snapshot, so
// they see whole changes only. The DB directory is locked to one process;
// [mailbox.Backend.Watch] fans events out within it.
//
// # Memory
//
// The backend keeps no per-user or per-message state in memory: folders,
// counters and the read/unread tables are read from the DB on each call,
// so memory does not grow with the number of users or messages. What it
// holds is the lsm DB's block cache, which also holds the tables' index and
// bloom filter blocks, and its memtables (sized by [Options].LSM:
// CacheSize, MemTableSize; lsm's defaults otherwise; the lsm package doc's
// "Memory" lists the rest and how to set the Go memory limit from the
// budgets), and, per
// [mailbox.Backend.Watch] call, a buffer of 1,024 events allocated when the
// watcher subscribes (about 96 KiB each: 10,000 idle watchers hold about
// 1 GB, so an IMAP or push front serving that many should share one
// watcher per user).
//
// The key layout is documented in keys.go.
package lsmmailbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/mailbox"
	"github.com/mailbricks/mailbricks/mailbox/internal/feed"
)

// Options configures [Open]. A nil *Options and every zero field mean the
// default. Options are copied by Open.
type Options struct {
	// FS is the file system of the DB directory. The default is
	// [vfs.Default].
	FS vfs.FS
	// LSM configures the lsm DB; its FS and Merger are replaced by the
	// backend's. The default is nil: lsm's defaults.
	LSM *lsm.Options
	// NoSync acknowledges writes before they are synced: faster, and a
	// machine crash may lose the last writes (the store stays
	// consistent). The default is false: every write is synced.
	NoSync bool
	// Store configures the [mailbox.Store] that [OpenStore] returns, its
	// Index among others. The default is nil: mailbox's defaults.
	Store *mailbox.Options
}

// Merger is the lsm merge operator the backend's DB uses: it sums the
// counters of the 'c' keys (three big-endian int64s).
var Merger = &lsm.Merger{
	Name: "lsmmailbox.counts",
	Merge: func(key, older, newer []byte) ([]byte, error) {
		a, ok1 := decodeCounts(older)
		b, ok2 := decodeCounts(newer)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("lsmmailbox: bad counter operand for key %q", key)
		}
		return counts{a.total + b.total, a.unread + b.unread, a.size + b.size}.encode(), nil
	},
}

const stripes = 256

// Backend is the lsm-backed [mailbox.Backend]. It is safe for concurrent
// use.
type Backend struct {
	db     *lsm.DB
	wo     *lsm.WriteOptions
	seed   maphash.Seed
	locks  [stripes]sync.Mutex
	hub    feed.Hub
	closed atomic.Bool
}

var _ mailbox.Backend = (*Backend)(nil)

// Open opens (creating if needed) the backend's DB in directory dir.
func Open(dir string, opts *Options) (*Backend, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	var lo lsm.Options
	if o.LSM != nil {
		lo = *o.LSM
	}
	if o.FS != nil {
		lo.FS = o.FS
	}
	lo.Merger = Merger
	db, err := lsm.Open(dir, &lo)
	if err != nil {
		return nil, fmt.Errorf("lsmmailbox: open %s: %w", dir, err)
	}
	b := &Backend{db: db, wo: lsm.Sync, seed: maphash.MakeSeed()}
	if o.NoSync {
		b.wo = lsm.NoSync
	}
	return b, nil
}

// Close closes the DB and ends every Watch. It is idempotent.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.hub.Close()
	for i := range b.locks {
		// Wait for writers in flight, so none commits to a closed DB.
		b.locks[i].Lock()
		defer b.locks[i].Unlock()
	}
	return b.db.Close()
}

// Compact flushes the DB and compacts all of it, for operators after a
// bulk load or a large expunge; it is never needed for correctness.
func (b *Backend) Compact() error {
	if b.closed.Load() {
		return mailbox.ErrClosed
	}
	if err := b.db.Compact(nil, nil); err != nil {
		return b.wrap("compact", err)
	}
	return nil
}

// checkUser returns ErrClosed if b is closed, and an error wrapping
// [mailbricks.ErrInvalidUser] if user is not valid, as [mailbox.Store]
// does: the backend never trusts its caller with the key layout.
func (b *Backend) checkUser(user mailbricks.UserID) error { return b.checkFolder(user) }

// checkFolder is checkUser and [mailbox.ValidateFolderName] of each name.
func (b *Backend) checkFolder(user mailbricks.UserID, names ...string) error {
	if b.closed.Load() {
		return mailbox.ErrClosed
	}
	if err := mailbox.CheckUserFolders(user, names...); err != nil {
		return fmt.Errorf("lsmmailbox: %w", err)
	}
	return nil
}

func (b *Backend) lock(user mailbricks.UserID) (unlock func(), err error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	m := &b.locks[maphash.String(b.seed, string(user))%stripes]
	m.Lock()
	if b.closed.Load() {
		m.Unlock()
		return nil, mailbox.ErrClosed
	}
	return m.Unlock, nil
}

func (b *Backend) wrap(op string, err error) error {
	if errors.Is(err, lsm.ErrClosed) || b.closed.Load() {
		return mailbox.ErrClosed
	}
	return fmt.Errorf("lsmmailbox: %s: %w", op, err)
}

// reader is what reads need of a DB or snapshot.
type reader interface {
	Get(key []byte) ([]byte, error)
	NewIter(o *lsm.IterOptions) (*lsm.Iterator, error)
}

func (b *Backend) snapshot(user mailbricks.UserID) (*lsm.Snapshot, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	return b.db.NewSnapshot(), nil
}

// folderRec is the value of an 'f' key.
type folderRec struct {
	Name          string       `json:"name"`
	Role          mailbox.Role `json:"role,omitempty"`
	UIDNext       uint32       `json:"uidnext"`
	HighestModSeq uint64       `json:"hms"`
}

// msgRec is a message record (see record.go): the message's metadata with
// its folder's ID in place of its name.
type msgRec struct {
	FID uint32
	mailbox.Message
}

// folderState is a folder being changed by a write.
type folderState struct {
	id    uint32
	rec   folderRec
	delta counts
}

// tx collects one write's batch, folder changes and events.
type tx struct {
	b       *Backend
	user    mailbricks.UserID
	batch   *lsm.Batch
	folders map[uint32]*folderState
	events  []mailbox.Event
}

func (b *Backend) begin(user mailbricks.UserID) *tx {
	return &tx{b: b, user: user, batch: b.db.NewBatch(), folders: map[uint32]*folderState{}}
}

func (t *tx) commit() error {
	for _, f := range t.folders {
		v, _ := json.Marshal(f.rec)
		t.batch.Set(key(t.user, tFolder, u32(f.id)), v)
		if f.delta != (counts{}) {
			t.batch.Merge(key(t.user, tCounts, u32(f.id)), f.delta.encode())
		}
	}
	if t.batch.Empty() {
		return nil
	}
	if err := t.batch.Commit(t.b.wo); err != nil {
		return t.b.wrap("commit", err)
	}
	t.b.hub.Publish(t.events...)
	return nil
}

func getFID(r reader, user mailbricks.UserID, name string) (uint32, error) {
	v, err := r.Get(key(user, tFolderName, []byte(name)))
	if errors.Is(err, lsm.ErrNotFound) {
		return 0, fmt.Errorf("%w: %q", mailbox.ErrNoFolder, name)
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("lsmmailbox: corrupt folder entry for %q", name)
	}
	return binary.BigEndian.Uint32(v), nil
}

func getFolderRec(r reader, user mailbricks.UserID, fid uint32) (folderRec, error) {
	var f folderRec
	v, err := r.Get(key(user, tFolder, u32(fid)))
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(v, &f); err != nil {
		return f, fmt.Errorf("lsmmailbox: corrupt folder record %d: %w", fid, err)
	}
	return f, nil
}

// folder returns the state of folder fid for changing, loading it once.
func (t *tx) folder(fid uint32) (*folderState, error) {
	if f, ok := t.folders[fid]; ok {
		return f, nil
	}
	rec, err := getFolderRec(t.b.db, t.user, fid)
	if err != nil {
		return nil, err
	}
	f := &folderState{id: fid, rec: rec}
	t.folders[fid] = f
	return f, nil
}

func (t *tx) folderByName(name string) (*folderState, error) {
	fid, err := getFID(t.b.db, t.user, name)
	if err != nil {
		return nil, err
	}
	return t.folder(fid)
}

func getMsg(r reader, user mailbricks.UserID, id mailbricks.MessageID) (msgRec, error) {
	v, err := r.Get(key(user, tMessage, id[:]))
	if errors.Is(err, lsm.ErrNotFound) {
		return msgRec{}, fmt.Errorf("%w: message %s", mailbox.ErrNotFound, id)
	}
	if err != nil {
		return msgRec{}, err
	}
	m, err := decodeRecord(v)
	if err != nil {
		return m, fmt.Errorf("lsmmailbox: corrupt message record %s: %w", id, err)
	}
	return m, nil
}

func table(flags []string) byte {
	if mailbox.HasFlag(flags, mailbox.FlagSeen) {
		return tRead
	}
	return tUnread
}

func msgCounts(m *mailbox.Message, sign int64) counts {
	c := counts{total: sign, size: sign * m.Size}
	if m.Unread() {
		c.unread = sign
	}
	return c
}

func (c *counts) add(d counts) { c.total += d.total; c.unread += d.unread; c.size += d.size }

// putMsg writes message m (with m.UID, m.ModSeq set) into folder f: record,
// UID map, read or unread table, log entry, counts.
func (t *tx) putMsg(f *folderState, m *mailbox.Message) {
	rec := msgRec{FID: f.id, Message: *m}
	v := encodeRecord(&rec)
	u := t.user
	t.batch.Set(key(u, tMessage, m.ID[:]), v)
	t.batch.Set(key(u, tUID, u32(f.id), u32(m.UID)), m.ID[:])
	t.batch.Set(key(u, table(m.Flags), u32(f.id), desc(m.ID)), v)
	t.batch.Set(key(u, tLog, u32(f.id), u64(m.ModSeq)), logEntry(logChange, m.UID, m.ID))
	f.delta.add(msgCounts(m, 1))
}

// dropMsg removes message m from folder f (not its record or skeleton),
// leaving an expunge tombstone at a new MODSEQ.
func (t *tx) dropMsg(f *folderState, m *mailbox.Message) {
	u := t.user
	t.batch.Delete(key(u, tUID, u32(f.id), u32(m.UID)))
	t.batch.Delete(key(u, table(m.Flags), u32(f.id), desc(m.ID)))
	t.batch.Delete(key(u, tLog, u32(f.id), u64(m.ModSeq)))
	f.rec.HighestModSeq++
	t.batch.Set(key(u, tLog, u32(f.id), u64(f.rec.HighestModSeq)), logEntry(logExpunge, m.UID, m.ID))
	f.delta.add(msgCounts(m, -1))
	t.events = append(t.events, mailbox.Event{Kind: mailbox.EventExpunge, User: u, Folder: f.rec.Name, ID: m.ID, UID: m.UID, ModSeq: f.rec.HighestModSeq})
}

func logEntry(kind byte, uid uint32, id mailbricks.MessageID) []byte {
	b := make([]byte, 0, 21)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint32(b, uid)
	return append(b, id[:]...)
}

// Folders implements [mailbox.Backend.Folders].
func (b *Backend) Folders(ctx context.Context, user mailbricks.UserID) ([]mailbox.Folder, error) {
	snap, err := b.snapshot(user)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	p := key(user, tFolderName)
	it, err := snap.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return nil, b.wrap("folders", err)
	}
	var fids []uint32
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Value()) == 4 {
			fids = append(fids, binary.BigEndian.Uint32(it.Value()))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, b.wrap("folders", err)
	}
	out := make([]mailbox.Folder, 0, len(fids))
	for _, fid := range fids {
		f, err := b.loadFolder(snap, user, fid)
		if err != nil {
			return nil, b.wrap("folders", err)
		}
		out = append(out, f)
	}
	return out, nil
}

func (b *Backend) loadFolder(r reader, user mailbricks.UserID, fid uint32) (mailbox.Folder, error) {
	rec, err := getFolderRec(r, user, fid)
	if err != nil {
		return mailbox.Folder{}, err
	}
	f := mailbox.Folder{Name: rec.Name, Role: rec.Role, UIDValidity: fid, UIDNext: rec.UIDNext, HighestModSeq: rec.HighestModSeq}
	v, err := r.Get(key(user, tCounts, u32(fid)))
	if err == nil {
		c, ok := decodeCounts(v)
		if !ok {
			return f, fmt.Errorf("lsmmailbox: corrupt counts of folder %d", fid)
		}
		f.Counts = mailbox.Counts{Total: c.total, Unread: c.unread, Size: c.size}
	} else if !errors.Is(err, lsm.ErrNotFound) {
		return f, err
	}
	return f, nil
}

// Folder implements [mailbox.Backend.Folder].
func (b *Backend) Folder(ctx context.Context, user mailbricks.UserID, name string) (mailbox.Folder, error) {
	if err := b.checkFolder(user, name); err != nil {
		return mailbox.Folder{}, err
	}
	snap, err := b.snapshot(user)
	if err != nil {
		return mailbox.Folder{}, err
	}
	defer snap.Close()
	fid, err := getFID(snap, user, name)
	if err != nil {
		return mailbox.Folder{}, b.wrap("folder", err)
	}
	f, err := b.loadFolder(snap, user, fid)
	if err != nil {
		return f, b.wrap("folder", err)
	}
	return f, nil
}

// CreateFolder implements [mailbox.Backend.CreateFolder].
func (b *Backend) CreateFolder(ctx context.Context, user mailbricks.UserID, name string, role mailbox.Role) (mailbox.Folder, error) {
	if err := b.checkFolder(user, name); err != nil {
		return mailbox.Folder{}, err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return mailbox.Folder{}, err
	}
	defer unlock()
	if _, err := getFID(b.db, user, name); err == nil {
		return mailbox.Folder{}, fmt.Errorf("%w: %q", mailbox.ErrFolderExists, name)
	} else if !errors.Is(err, mailbox.ErrNoFolder) {
		return mailbox.Folder{}, b.wrap("create folder", err)
	}
	next := uint32(1)
	v, err := b.db.Get(key(user, tNextFolder))
	if err == nil && len(v) == 4 {
		next = binary.BigEndian.Uint32(v)
	} else if err != nil && !errors.Is(err, lsm.ErrNotFound) {
		return mailbox.Folder{}, b.wrap("create folder", err)
	}
	t := b.begin(user)
	t.batch.Set(key(user, tNextFolder), u32(next+1))
	t.batch.Set(key(user, tFolderName, []byte(name)), u32(next))
	t.folders[next] = &folderState{id: next, rec: folderRec{Name: name, Role: role, UIDNext: 1}}
	t.events = append(t.events, mailbox.Event{Kind: mailbox.EventFolder, User: user, Folder: name})
	if err := t.commit(); err != nil {
		return mailbox.Folder{}, err
	}
	return mailbox.Folder{Name: name, Role: role, UIDValidity: next, UIDNext: 1}, nil
}

// RenameFolder implements [mailbox.Backend.RenameFolder].
func (b *Backend) RenameFolder(ctx context.Context, user mailbricks.UserID, from, to string) error {
	if err := b.checkFolder(user, from, to); err != nil {
		return err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return err
	}
	defer unlock()
	p := key(user, tFolderName, []byte(from))
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return b.wrap("rename folder", err)
	}
	renames := map[string]uint32{}
	nameStart := len(key(user, tFolderName))
	for ok := it.First(); ok; ok = it.Next() {
		name := string(it.Key()[nameStart:])
		if (name == from || strings.HasPrefix(name, from+mailbox.Delimiter)) && len(it.Value()) == 4 {
			renames[name] = binary.BigEndian.Uint32(it.Value())
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return b.wrap("rename folder", err)
	}
	if _, ok := renames[from]; !ok {
		return fmt.Errorf("%w: %q", mailbox.ErrNoFolder, from)
	}
	t := b.begin(user)
	for old, fid := range renames {
		nn := to + old[len(from):]
		if _, err := getFID(b.db, user, nn); err == nil {
			return fmt.Errorf("%w: %q", mailbox.ErrFolderExists, nn)
		}
		f, err := t.folder(fid)
		if err != nil {
			return b.wrap("rename folder", err)
		}
		f.rec.Name = nn
		f.rec.Role = mailbox.FolderRole(nn)
		t.batch.Delete(key(user, tFolderName, []byte(old)))
		t.batch.Set(key(user, tFolderName, []byte(nn)), u32(fid))
		t.events = append(t.events, mailbox.Event{Kind: mailbox.EventFolder, User: user, Folder: nn})
	}
	return t.commit()
}

// DeleteFolder implements [mailbox.Backend.DeleteFolder].
func (b *Backend) DeleteFolder(ctx context.Context, user mailbricks.UserID, name string) error {
	if err := b.checkFolder(user, name); err != nil {
		return err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return err
	}
	defer unlock()
	fid, err := getFID(b.db, user, name)
	if err != nil {
		return b.wrap("delete folder", err)
	}
	p := key(user, tUID, u32(fid))
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return b.wrap("delete folder", err)
	}
	nonEmpty := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return b.wrap("delete folder", err)
	}
	if nonEmpty {
		return fmt.Errorf("%w: %q", mailbox.ErrFolderNotEmpty, name)
	}
	t := b.begin(user)
	t.batch.Delete(key(user, tFolderName, []byte(name)))
	t.batch.Delete(key(user, tFolder, u32(fid)))
	t.batch.Delete(key(user, tCounts, u32(fid)))
	lp := key(user, tLog, u32(fid))
	t.batch.DeleteRange(lp, upper(lp))
	t.events = append(t.events, mailbox.Event{Kind: mailbox.EventFolder, User: user, Folder: name})
	return t.commit()
}

// Append implements [mailbox.Backend.Append].
func (b *Backend) Append(ctx context.Context, user mailbricks.UserID, rec *mailbox.Record) (mailbox.Message, bool, error) {
	if err := b.checkFolder(user, rec.Folder); err != nil {
		return mailbox.Message{}, false, err
	}
	for _, k := range append([]string{rec.Key}, rec.ThreadKeys...) {
		if err := mailbox.ValidateKey(k); err != nil {
			return mailbox.Message{}, false, err
		}
	}
	unlock, err := b.lock(user)
	if err != nil {
		return mailbox.Message{}, false, err
	}
	defer unlock()
	if rec.Key != "" {
		m, err := b.lookupKey(b.db, user, rec.Key)
		if err == nil {
			return m, true, nil
		}
		if !errors.Is(err, mailbox.ErrNotFound) {
			return mailbox.Message{}, false, b.wrap("append", err)
		}
	}
	t := b.begin(user)
	f, err := t.folderByName(rec.Folder)
	if err != nil {
		return mailbox.Message{}, false, b.wrap("append", err)
	}
	m := rec.Message
	m.Folder = f.rec.Name
	m.UIDValidity = f.id
	m.UID = f.rec.UIDNext
	f.rec.UIDNext++
	f.rec.HighestModSeq++
	m.ModSeq = f.rec.HighestModSeq
	if m.Flags == nil {
		m.Flags = []string{}
	}
	t.putMsg(f, &m)
	t.batch.Set(key(user, tSkeleton, m.ID[:]), rec.Skeleton)
	if rec.Key != "" {
		t.batch.Set(key(user, tKey, []byte(rec.Key)), m.ID[:])
	}
	t.batch.Set(key(user, tThread, m.ThreadID[:], m.ID[:]), nil)
	for _, k := range rec.ThreadKeys {
		t.batch.Set(key(user, tThreadKey, []byte(k)), m.ThreadID[:])
	}
	if b.hub.Watching(user) {
		t.events = append(t.events, mailbox.Event{Kind: mailbox.EventAppend, User: user, Folder: m.Folder, ID: m.ID, UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags})
	}
	if err := t.commit(); err != nil {
		return mailbox.Message{}, false, err
	}
	return m, false, nil
}

func (b *Backend) lookupKey(r reader, user mailbricks.UserID, k string) (mailbox.Message, error) {
	v, err := r.Get(key(user, tKey, []byte(k)))
	if errors.Is(err, lsm.ErrNotFound) {
		return mailbox.Message{}, fmt.Errorf("%w: key %q", mailbox.ErrNotFound, k)
	}
	if err != nil {
		return mailbox.Message{}, err
	}
	if len(v) != 16 {
		return mailbox.Message{}, fmt.Errorf("lsmmailbox: corrupt key entry %q", k)
	}
	id := mailbricks.MessageID(v)
	m, err := b.get(r, user, id, nil)
	if errors.Is(err, mailbox.ErrNotFound) {
		return mailbox.Message{ID: id}, nil
	}
	return m, err
}

// LookupKey implements [mailbox.Backend.LookupKey].
func (b *Backend) LookupKey(ctx context.Context, user mailbricks.UserID, k string) (mailbox.Message, error) {
	if err := mailbox.ValidateKey(k); err != nil {
		return mailbox.Message{}, err
	}
	snap, err := b.snapshot(user)
	if err != nil {
		return mailbox.Message{}, err
	}
	defer snap.Close()
	m, err := b.lookupKey(snap, user, k)
	if err != nil && !errors.Is(err, mailbox.ErrNotFound) {
		return m, b.wrap("lookup key", err)
	}
	return m, err
}

// get reads a message and names its folder, caching folder names in names
// (if not nil).
func (b *Backend) get(r reader, user mailbricks.UserID, id mailbricks.MessageID, names map[uint32]string) (mailbox.Message, error) {
	rec, err := getMsg(r, user, id)
	if err != nil {
		return mailbox.Message{}, err
	}
	name, ok := names[rec.FID]
	if !ok {
		f, err := getFolderRec(r, user, rec.FID)
		if err != nil {
			return mailbox.Message{}, fmt.Errorf("folder %d of message %s: %w", rec.FID, id, err)
		}
		name = f.Name
		if names != nil {
			names[rec.FID] = name
		}
	}
	m := rec.Message
	m.Folder = name
	m.UIDValidity = rec.FID
	return m, nil
}

// Get implements [mailbox.Backend.Get].
func (b *Backend) Get(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) (mailbox.Message, error) {
	snap, err := b.snapshot(user)
	if err != nil {
		return mailbox.Message{}, err
	}
	defer snap.Close()
	m, err := b.get(snap, user, id, nil)
	if err != nil && !errors.Is(err, mailbox.ErrNotFound) {
		return m, b.wrap("get", err)
	}
	return m, err
}

// Skeleton implements [mailbox.Backend.Skeleton].
func (b *Backend) Skeleton(ctx context.Context, user mailbricks.UserID, id mailbricks.MessageID) ([]byte, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, mailbox.ErrClosed
	}
	v, err := b.db.Get(key(user, tSkeleton, id[:]))
	if errors.Is(err, lsm.ErrNotFound) {
		return nil, fmt.Errorf("%w: message %s", mailbox.ErrNotFound, id)
	}
	if err != nil {
		return nil, b.wrap("skeleton", err)
	}
	return v, nil
}

// List implements [mailbox.Backend.List]. With q.Unread it walks the
// unread table; otherwise it merges the unread and read tables, which
// together hold every message of the folder, both newest first.
func (b *Backend) List(ctx context.Context, user mailbricks.UserID, folder string, q mailbox.ListQuery) ([]mailbox.Message, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return nil, err
	}
	snap, err := b.snapshot(user)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	fid, err := getFID(snap, user, folder)
	if err != nil {
		return nil, b.wrap("list", err)
	}
	tables := []byte{tUnread}
	if !q.Unread {
		tables = append(tables, tRead)
	}
	type cursor struct {
		it  *lsm.Iterator
		ok  bool
		off int
	}
	var cs []*cursor
	defer func() {
		for _, c := range cs {
			c.it.Close()
		}
	}()
	for _, tb := range tables {
		p := key(user, tb, u32(fid))
		lo := p
		if !q.Before.IsZero() {
			lo = append(append(slices.Clip(p), desc(q.Before)...), 0)
		}
		it, err := snap.NewIter(&lsm.IterOptions{LowerBound: lo, UpperBound: upper(p)})
		if err != nil {
			return nil, b.wrap("list", err)
		}
		cs = append(cs, &cursor{it: it, ok: it.First(), off: len(p)})
	}
	out := make([]mailbox.Message, 0, min(q.Limit, 1024))
	for len(out) < q.Limit {
		var best *cursor
		for _, c := range cs {
			if c.ok && (best == nil || string(c.it.Key()[c.off:]) < string(best.it.Key()[best.off:])) {
				best = c
			}
		}
		if best == nil {
			break
		}
		// The tables are denormalized: each entry holds the message
		// record, so a page costs one range read, not a read per message.
		out = append(out, mailbox.Message{})
		m := &out[len(out)-1]
		if _, err := decodeRecordInto(best.it.Value(), m); err != nil {
			return nil, b.wrap("list", fmt.Errorf("corrupt table entry for message %s: %w", undesc(best.it.Key()[best.off:]), err))
		}
		m.Folder = folder
		m.UIDValidity = fid
		best.ok = best.it.Next()
	}
	for _, c := range cs {
		if err := c.it.Error(); err != nil {
			return nil, b.wrap("list", err)
		}
	}
	return out, nil
}

// FetchUIDs implements [mailbox.Backend.FetchUIDs].
func (b *Backend) FetchUIDs(ctx context.Context, user mailbricks.UserID, folder string, first, last uint32) ([]mailbox.Message, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return nil, err
	}
	snap, err := b.snapshot(user)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	fid, err := getFID(snap, user, folder)
	if err != nil {
		return nil, b.wrap("fetch", err)
	}
	p := key(user, tUID, u32(fid))
	hi := upper(p)
	if last != 0 && last != ^uint32(0) {
		hi = key(user, tUID, u32(fid), u32(last+1))
	}
	it, err := snap.NewIter(&lsm.IterOptions{LowerBound: key(user, tUID, u32(fid), u32(first)), UpperBound: hi})
	if err != nil {
		return nil, b.wrap("fetch", err)
	}
	var ids []mailbricks.MessageID
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Value()) == 16 {
			ids = append(ids, mailbricks.MessageID(it.Value()))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, b.wrap("fetch", err)
	}
	names := map[uint32]string{fid: folder}
	out := make([]mailbox.Message, 0, len(ids))
	for _, id := range ids {
		m, err := b.get(snap, user, id, names)
		if err != nil {
			return nil, b.wrap("fetch", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Scan implements [mailbox.Backend.Scan].
func (b *Backend) Scan(ctx context.Context, user mailbricks.UserID, after mailbricks.MessageID, limit int) ([]mailbox.Message, error) {
	snap, err := b.snapshot(user)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	p := key(user, tMessage)
	lo := p
	if !after.IsZero() {
		lo = append(key(user, tMessage, after[:]), 0)
	}
	it, err := snap.NewIter(&lsm.IterOptions{LowerBound: lo, UpperBound: upper(p)})
	if err != nil {
		return nil, b.wrap("scan", err)
	}
	var ids []mailbricks.MessageID
	for ok := it.First(); ok && len(ids) < limit; ok = it.Next() {
		ids = append(ids, mailbricks.MessageID(it.Key()[len(p):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, b.wrap("scan", err)
	}
	names := map[uint32]string{}
	out := make([]mailbox.Message, 0, len(ids))
	for _, id := range ids {
		m, err := b.get(snap, user, id, names)
		if err != nil {
			return nil, b.wrap("scan", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// SetFlags implements [mailbox.Backend.SetFlags].
func (b *Backend) SetFlags(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, ch mailbox.FlagChange) (mailbox.FlagResult, error) {
	var res mailbox.FlagResult
	unlock, err := b.lock(user)
	if err != nil {
		return res, err
	}
	defer unlock()
	t := b.begin(user)
	seen := map[mailbricks.MessageID]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		rec, err := getMsg(b.db, user, id)
		if errors.Is(err, mailbox.ErrNotFound) {
			continue
		}
		if err != nil {
			return res, b.wrap("set flags", err)
		}
		m := rec.Message
		if ch.UnchangedSince != 0 && m.ModSeq > ch.UnchangedSince {
			res.Conflicts = append(res.Conflicts, id)
			continue
		}
		nf := ch.Op.Apply(m.Flags, ch.Flags)
		if slices.Equal(nf, m.Flags) {
			continue
		}
		if len(nf) > mailbox.MaxFlags {
			return mailbox.FlagResult{}, fmt.Errorf("%w: message %s would have %d flags, more than %d", mailbox.ErrInvalidArgument, id, len(nf), mailbox.MaxFlags)
		}
		f, err := t.folder(rec.FID)
		if err != nil {
			return res, b.wrap("set flags", err)
		}
		// Take the message out of its table, log entry and counts, and put
		// it back as changed: the unread/read move is a delete and a set in
		// the same batch.
		t.batch.Delete(key(user, table(m.Flags), u32(f.id), desc(id)))
		t.batch.Delete(key(user, tLog, u32(f.id), u64(m.ModSeq)))
		f.delta.add(msgCounts(&m, -1))
		m.Flags = nf
		f.rec.HighestModSeq++
		m.ModSeq = f.rec.HighestModSeq
		t.putMsg(f, &m)
		m.Folder = f.rec.Name
		m.UIDValidity = f.id
		res.Updated = append(res.Updated, m)
		t.events = append(t.events, mailbox.Event{Kind: mailbox.EventFlags, User: user, Folder: m.Folder, ID: id, UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags})
	}
	if err := t.commit(); err != nil {
		return mailbox.FlagResult{}, err
	}
	return res, nil
}

// Move implements [mailbox.Backend.Move].
func (b *Backend) Move(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, dest string) ([]mailbox.UIDMap, error) {
	if err := b.checkFolder(user, dest); err != nil {
		return nil, err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t := b.begin(user)
	df, err := t.folderByName(dest)
	if err != nil {
		return nil, b.wrap("move", err)
	}
	var out []mailbox.UIDMap
	seen := map[mailbricks.MessageID]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		rec, err := getMsg(b.db, user, id)
		if errors.Is(err, mailbox.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, b.wrap("move", err)
		}
		if rec.FID == df.id {
			continue
		}
		sf, err := t.folder(rec.FID)
		if err != nil {
			return nil, b.wrap("move", err)
		}
		m := rec.Message
		t.dropMsg(sf, &m)
		srcUID := m.UID
		m.UID = df.rec.UIDNext
		df.rec.UIDNext++
		df.rec.HighestModSeq++
		m.ModSeq = df.rec.HighestModSeq
		t.putMsg(df, &m)
		out = append(out, mailbox.UIDMap{SourceID: id, SourceUID: srcUID, ID: id, UID: m.UID})
		t.events = append(t.events, mailbox.Event{Kind: mailbox.EventAppend, User: user, Folder: df.rec.Name, ID: id, UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags})
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// Copy implements [mailbox.Backend.Copy].
func (b *Backend) Copy(ctx context.Context, user mailbricks.UserID, pairs []mailbox.CopyPair, dest string) ([]mailbox.UIDMap, error) {
	if err := b.checkFolder(user, dest); err != nil {
		return nil, err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t := b.begin(user)
	df, err := t.folderByName(dest)
	if err != nil {
		return nil, b.wrap("copy", err)
	}
	var out []mailbox.UIDMap
	for _, p := range pairs {
		rec, err := getMsg(b.db, user, p.Source)
		if errors.Is(err, mailbox.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, b.wrap("copy", err)
		}
		skel, err := b.db.Get(key(user, tSkeleton, p.Source[:]))
		if err != nil {
			return nil, b.wrap("copy", err)
		}
		m := rec.Message
		m.ID = p.ID
		m.UID = df.rec.UIDNext
		df.rec.UIDNext++
		df.rec.HighestModSeq++
		m.ModSeq = df.rec.HighestModSeq
		t.putMsg(df, &m)
		t.batch.Set(key(user, tSkeleton, m.ID[:]), skel)
		t.batch.Set(key(user, tThread, m.ThreadID[:], m.ID[:]), nil)
		out = append(out, mailbox.UIDMap{SourceID: p.Source, SourceUID: rec.UID, ID: m.ID, UID: m.UID})
		t.events = append(t.events, mailbox.Event{Kind: mailbox.EventAppend, User: user, Folder: df.rec.Name, ID: m.ID, UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags})
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// Expunge implements [mailbox.Backend.Expunge].
func (b *Backend) Expunge(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID) ([]mailbox.Removed, error) {
	return b.expunge(user, ids, "")
}

// ExpungeFlagged implements [mailbox.Backend.ExpungeFlagged].
func (b *Backend) ExpungeFlagged(ctx context.Context, user mailbricks.UserID, ids []mailbricks.MessageID, flag string) ([]mailbox.Removed, error) {
	if flag == "" {
		return nil, fmt.Errorf("lsmmailbox: %w: empty flag", mailbox.ErrInvalidArgument)
	}
	return b.expunge(user, ids, flag)
}

// expunge removes the messages among ids that carry flag (any, if flag
// is ""), under the user's lock, so the flag check and the removal are one
// atomic step.
func (b *Backend) expunge(user mailbricks.UserID, ids []mailbricks.MessageID, flag string) ([]mailbox.Removed, error) {
	unlock, err := b.lock(user)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t := b.begin(user)
	var out []mailbox.Removed
	seen := map[mailbricks.MessageID]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		rec, err := getMsg(b.db, user, id)
		if errors.Is(err, mailbox.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, b.wrap("expunge", err)
		}
		if flag != "" && !mailbox.HasFlag(rec.Flags, flag) {
			continue
		}
		skel, err := b.db.Get(key(user, tSkeleton, id[:]))
		if err != nil && !errors.Is(err, lsm.ErrNotFound) {
			return nil, b.wrap("expunge", err)
		}
		f, err := t.folder(rec.FID)
		if err != nil {
			return nil, b.wrap("expunge", err)
		}
		m := rec.Message
		t.dropMsg(f, &m)
		t.batch.Delete(key(user, tMessage, id[:]))
		t.batch.Delete(key(user, tSkeleton, id[:]))
		t.batch.Delete(key(user, tThread, m.ThreadID[:], id[:]))
		m.Folder = f.rec.Name
		m.UIDValidity = f.id
		out = append(out, mailbox.Removed{Message: m, Skeleton: skel})
	}
	if err := t.commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// Changes implements [mailbox.Backend.Changes].
func (b *Backend) Changes(ctx context.Context, user mailbricks.UserID, folder string, since uint64) (mailbox.Changes, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return mailbox.Changes{}, err
	}
	var ch mailbox.Changes
	snap, err := b.snapshot(user)
	if err != nil {
		return ch, err
	}
	defer snap.Close()
	fid, err := getFID(snap, user, folder)
	if err != nil {
		return ch, b.wrap("changes", err)
	}
	f, err := getFolderRec(snap, user, fid)
	if err != nil {
		return ch, b.wrap("changes", err)
	}
	ch.UIDValidity, ch.HighestModSeq = fid, f.HighestModSeq
	p := key(user, tLog, u32(fid))
	it, err := snap.NewIter(&lsm.IterOptions{LowerBound: key(user, tLog, u32(fid), u64(since+1)), UpperBound: upper(p)})
	if err != nil {
		return ch, b.wrap("changes", err)
	}
	var changed []mailbricks.MessageID
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		if len(v) != 21 {
			continue
		}
		switch v[0] {
		case logChange:
			changed = append(changed, mailbricks.MessageID(v[5:]))
		case logExpunge:
			ch.Expunged = append(ch.Expunged, binary.BigEndian.Uint32(v[1:5]))
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return ch, b.wrap("changes", err)
	}
	names := map[uint32]string{fid: folder}
	for _, id := range changed {
		m, err := b.get(snap, user, id, names)
		if err != nil {
			return ch, b.wrap("changes", err)
		}
		ch.Changed = append(ch.Changed, m)
	}
	slices.SortFunc(ch.Changed, func(a, b mailbox.Message) int { return int(int64(a.UID) - int64(b.UID)) })
	slices.Sort(ch.Expunged)
	return ch, nil
}

// FindThread implements [mailbox.Backend.FindThread].
func (b *Backend) FindThread(ctx context.Context, user mailbricks.UserID, keys []string) (mailbricks.MessageID, bool, error) {
	if err := b.checkUser(user); err != nil {
		return mailbricks.MessageID{}, false, err
	}
	for _, k := range keys {
		if err := mailbox.ValidateKey(k); err != nil {
			return mailbricks.MessageID{}, false, err
		}
	}
	if b.closed.Load() {
		return mailbricks.MessageID{}, false, mailbox.ErrClosed
	}
	for _, k := range keys {
		v, err := b.db.Get(key(user, tThreadKey, []byte(k)))
		if errors.Is(err, lsm.ErrNotFound) {
			continue
		}
		if err != nil {
			return mailbricks.MessageID{}, false, b.wrap("find thread", err)
		}
		if len(v) == 16 {
			return mailbricks.MessageID(v), true, nil
		}
	}
	return mailbricks.MessageID{}, false, nil
}

// Thread implements [mailbox.Backend.Thread].
func (b *Backend) Thread(ctx context.Context, user mailbricks.UserID, thread mailbricks.MessageID) ([]mailbox.Message, error) {
	snap, err := b.snapshot(user)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	p := key(user, tThread, thread[:])
	it, err := snap.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return nil, b.wrap("thread", err)
	}
	var ids []mailbricks.MessageID
	for ok := it.First(); ok; ok = it.Next() {
		ids = append(ids, mailbricks.MessageID(it.Key()[len(p):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, b.wrap("thread", err)
	}
	names := map[uint32]string{}
	var out []mailbox.Message
	for _, id := range ids {
		m, err := b.get(snap, user, id, names)
		if err != nil {
			return nil, b.wrap("thread", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Recount implements [mailbox.Backend.Recount].
func (b *Backend) Recount(ctx context.Context, user mailbricks.UserID, folder string) (mailbox.Counts, error) {
	if err := b.checkFolder(user, folder); err != nil {
		return mailbox.Counts{}, err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return mailbox.Counts{}, err
	}
	defer unlock()
	fid, err := getFID(b.db, user, folder)
	if err != nil {
		return mailbox.Counts{}, b.wrap("recount", err)
	}
	p := key(user, tUID, u32(fid))
	it, err := b.db.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return mailbox.Counts{}, b.wrap("recount", err)
	}
	var ids []mailbricks.MessageID
	for ok := it.First(); ok; ok = it.Next() {
		ids = append(ids, mailbricks.MessageID(it.Value()))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return mailbox.Counts{}, b.wrap("recount", err)
	}
	var c counts
	for _, id := range ids {
		rec, err := getMsg(b.db, user, id)
		if err != nil {
			return mailbox.Counts{}, b.wrap("recount", err)
		}
		c.add(msgCounts(&rec.Message, 1))
	}
	if err := b.db.Set(key(user, tCounts, u32(fid)), c.encode(), b.wo); err != nil {
		return mailbox.Counts{}, b.wrap("recount", err)
	}
	return mailbox.Counts{Total: c.total, Unread: c.unread, Size: c.size}, nil
}

// Watch implements [mailbox.Backend.Watch]: events come from this
// process, the only one that can open the DB.
func (b *Backend) Watch(ctx context.Context, user mailbricks.UserID) (<-chan mailbox.Event, error) {
	if err := b.checkUser(user); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, mailbox.ErrClosed
	}
	return b.hub.Subscribe(ctx, user), nil
}

// Subscribe implements [mailbox.Backend.Subscribe].
func (b *Backend) Subscribe(ctx context.Context, user mailbricks.UserID, name string, subscribed bool) error {
	if err := b.checkFolder(user, name); err != nil {
		return err
	}
	unlock, err := b.lock(user)
	if err != nil {
		return err
	}
	defer unlock()
	t := b.begin(user)
	if subscribed {
		t.batch.Set(key(user, tSubscribed, []byte(name)), nil)
	} else {
		t.batch.Delete(key(user, tSubscribed, []byte(name)))
	}
	return t.commit()
}

// Subscriptions implements [mailbox.Backend.Subscriptions].
func (b *Backend) Subscriptions(ctx context.Context, user mailbricks.UserID) ([]string, error) {
	snap, err := b.snapshot(user)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	p := key(user, tSubscribed)
	it, err := snap.NewIter(&lsm.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return nil, b.wrap("subscriptions", err)
	}
	out := []string{}
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[len(p):]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, b.wrap("subscriptions", err)
	}
	return out, nil
}
