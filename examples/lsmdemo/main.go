// Command lsmdemo shows the lsm engine holding a few mailboxes.
//
// It stores messages under keys shaped the way an embedded mailbox lays
// them out, a user prefix followed by a time-ordered [mailbricks.MessageID],
// keeps an unread counter with Merge, lists one user's mail newest first,
// reads from a snapshot while writes go on, and prints the engine's
// metrics.
//
// Usage:
//
//	go run ./examples/lsmdemo [-dir DIR]
//
// Without -dir it works in a fresh temporary directory and removes it at
// exit; with -dir the data stays, and a second run reopens it.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/lsm"
)

func main() {
	dir := flag.String("dir", "", "database directory (default: a temporary directory removed at exit)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("lsmdemo: ")
	if err := run(*dir); err != nil {
		log.Fatal(err)
	}
}

// Key layout, one prefix per user so that a user's data is one contiguous
// key range:
//
//	m/<user>\x00<16-byte MessageID>  message subject (newest sorts last)
//	u/<user>                         unread counter, 8-byte big-endian int
//
// The NUL separator cannot occur in a valid UserID, so no user's range
// contains another's.
func msgPrefix(u mailbricks.UserID) []byte { return []byte("m/" + string(u) + "\x00") }

func msgKey(u mailbricks.UserID, id mailbricks.MessageID) []byte {
	return append(msgPrefix(u), id.Bytes()...)
}

func unreadKey(u mailbricks.UserID) []byte { return []byte("u/" + string(u)) }

// addCounter sums 8-byte big-endian counters. Addition is associative, as
// a Merger must be.
var addCounter = &lsm.Merger{
	Name: "lsmdemo.add",
	Merge: func(key, older, newer []byte) ([]byte, error) {
		if len(older) != 8 || len(newer) != 8 {
			return nil, fmt.Errorf("counter %q: operands must be 8 bytes", key)
		}
		var out [8]byte
		binary.BigEndian.PutUint64(out[:], binary.BigEndian.Uint64(older)+binary.BigEndian.Uint64(newer))
		return out[:], nil
	},
}

func delta(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

func run(dir string) (err error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "lsmdemo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	db, err := lsm.Open(dir, &lsm.Options{Merger: addCounter})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	fmt.Printf("opened %s\n", dir)

	mail := []struct {
		to      string
		subject string
	}{
		{"alice@example.com", "Welcome to mailbricks"},
		{"bob@example.com", "Lunch on Friday?"},
		{"alice@example.com", "Your invoice for March"},
		{"alice@example.com", "Re: design review"},
		{"bob@example.com", "Build is green"},
	}
	for _, m := range mail {
		u, err := mailbricks.ParseUserID(m.to)
		if err != nil {
			return err
		}
		// The message and its unread count change together or not at all;
		// Sync makes the delivery durable before it is acknowledged.
		b := db.NewBatch()
		b.Set(msgKey(u, mailbricks.NewMessageID()), []byte(m.subject))
		b.Merge(unreadKey(u), delta(1))
		if err := b.Commit(lsm.Sync); err != nil {
			return fmt.Errorf("deliver to %s: %w", u, err)
		}
	}
	fmt.Printf("delivered %d messages\n", len(mail))

	alice := mailbricks.UserID("alice@example.com")
	if err := printUnread(db, alice); err != nil {
		return err
	}

	// Newest first: start at the end of Alice's range and walk back. The
	// prefix bounds keep the iterator inside her keys.
	it, err := db.NewPrefixIter(msgPrefix(alice))
	if err != nil {
		return err
	}
	fmt.Printf("%s, newest first:\n", alice)
	var oldest mailbricks.MessageID
	for ok := it.Last(); ok; ok = it.Prev() {
		id := mailbricks.MessageID(it.Key()[len(msgPrefix(alice)):])
		oldest = id
		fmt.Printf("  %s  %s  %s\n", id.Time().UTC().Format("15:04:05.000"), id, it.Value())
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}

	// A snapshot keeps seeing the mailbox as it was while Alice reads her
	// oldest message and it leaves the unread count.
	snap := db.NewSnapshot()
	defer snap.Close()
	if err := db.Merge(unreadKey(alice), delta(-1), lsm.NoSync); err != nil {
		return err
	}
	fmt.Printf("marked %s read\n", oldest)
	before, err := snap.Get(unreadKey(alice))
	if err != nil {
		return err
	}
	fmt.Printf("snapshot still sees %d unread\n", binary.BigEndian.Uint64(before))
	if err := printUnread(db, alice); err != nil {
		return err
	}

	// A point read of a key that was never written.
	_, err = db.Get(msgKey("bob@example.com", mailbricks.NewMessageID()))
	fmt.Printf("get of an unknown message: not found = %v\n", errors.Is(err, lsm.ErrNotFound))

	// Flush the memtable to a table so the metrics show the tree.
	if err := db.Flush(); err != nil {
		return err
	}
	printMetrics(db.Metrics())
	return nil
}

func printUnread(db *lsm.DB, u mailbricks.UserID) error {
	v, err := db.Get(unreadKey(u))
	if err != nil {
		return fmt.Errorf("unread count of %s: %w", u, err)
	}
	fmt.Printf("%s has %d unread\n", u, binary.BigEndian.Uint64(v))
	return nil
}

func printMetrics(m lsm.Metrics) {
	var levels []string
	for i, l := range m.Levels {
		if l.NumFiles > 0 {
			levels = append(levels, fmt.Sprintf("L%d: %d tables, %d bytes", i, l.NumFiles, l.Size))
		}
	}
	fmt.Println("metrics:")
	fmt.Printf("  levels:      %s\n", strings.Join(levels, "; "))
	fmt.Printf("  disk:        %d bytes\n", m.DiskSize)
	fmt.Printf("  memtable:    %d bytes\n", m.MemTableSize)
	fmt.Printf("  flushes:     %d, compactions: %d, write stalls: %d\n", m.Flushes, m.Compactions, m.WriteStalls)
	fmt.Printf("  block cache: %d hits, %d misses\n", m.BlockCacheHits, m.BlockCacheMisses)
}
