package record

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/mailbricks/mailbricks/lsm/vfs"
)

// ErrClosed is returned by the methods of a [Writer] after Close.
var ErrClosed = errors.New("record: writer closed")

const (
	// highWater is the size of unwritten data beyond which Append blocks
	// until the flusher takes the buffer (backpressure).
	highWater = 4 << 20
	// maxKeptBuffer is the largest buffer capacity the flusher recycles; a
	// buffer grown beyond it by a huge record is left to the GC.
	maxKeptBuffer = 2 * highWater
)

// Writer appends records to a log file with group commit.
//
// # Group commit
//
// Append only encodes a record into the pending buffer, under a mutex; it
// does no I/O. A single flusher goroutine owns the file. Whenever the pending
// buffer is not empty it swaps it with a spare buffer (double buffering, so
// Appends keep filling the other one while it writes) and hands the whole
// batch to the file in one Write: unsynced data reaches the operating system
// within microseconds of Append, as with pebble's LogWriter, and Append waits
// only when the pending buffer is over highWater (4 MiB) because the file
// cannot keep up.
//
// SyncTo(end) raises the sync target to end and waits. When the target is
// above the synced offset, the flusher yields the processor once, so that
// committers the previous Sync has just woken (runnable, but perhaps not yet
// running) can append their next records; then it writes everything pending,
// notes the written offset, calls Sync, and on success advances the synced
// offset to the noted one and wakes every waiter whose end it covers. While
// one Sync runs, new records and SyncTo calls accumulate, and the next round
// writes and syncs them all together. So N concurrent committers pay for far
// fewer than N Syncs (with 8 committers, the yield about halves them), a
// lone committer pays for one Write and one Sync, and a waiter is released
// only by a Sync that began after its data was written. Each round writes at
// most twice before syncing, so a steady stream of Appends cannot postpone a
// Sync.
//
// The first Write or Sync error stops the flusher and is sticky: every
// pending and later Append, Flush, SyncTo and Close returns it. A failed
// Sync leaves it unknown which written data survived, so the log must not
// be appended to again.
//
// A Writer is safe for concurrent use. Concurrent Appends land in an
// unspecified order, so the engine calls Append under its commit mutex to
// keep the log in sequence-number order. The Writer owns its file: only the
// flusher (and Close, after the flusher has stopped) touches it.
type Writer struct {
	f    vfs.File
	done chan struct{} // closed when the flusher exits

	mu        sync.Mutex
	workCond  sync.Cond // the flusher waits for data, a sync target or closing
	roomCond  sync.Cond // Append waits for the pending buffer to drain
	writeCond sync.Cond // Flush waits for written to advance
	syncCond  sync.Cond // SyncTo waits for synced to advance

	pending []byte // records appended and not yet taken by the flusher
	spare   []byte // the other buffer, nil while the flusher writes it

	appended int64 // logical offset of the end of pending
	written  int64 // bytes handed to f.Write successfully
	synced   int64 // bytes made durable by f.Sync
	syncTo   int64 // largest end a SyncTo or Close waits to see synced
	err      error // sticky Write or Sync error
	closing  bool

	roomWaiters  int
	writeWaiters int

	closeDone chan struct{} // closed when Close has finished
	closeErr  error
}

// NewWriter returns a Writer appending to f, which must be empty: offsets
// start at 0. The Writer owns f from now on and closes it in Close. It starts
// a goroutine that Close stops.
func NewWriter(f vfs.File) *Writer {
	w := &Writer{
		f:         f,
		done:      make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	w.workCond.L = &w.mu
	w.roomCond.L = &w.mu
	w.writeCond.L = &w.mu
	w.syncCond.L = &w.mu
	go w.flushLoop()
	return w
}

// Append adds a record carrying p to the log and returns the log offset at
// which the record ends, which is what [Writer.SyncTo] takes. It copies p
// and does no I/O, but blocks while more than 4 MiB are waiting to be
// written. The caller may reuse p after Append returns. A payload longer
// than [MaxPayload] is refused.
func (w *Writer) Append(p []byte) (end int64, err error) {
	if len(p) > MaxPayload {
		return 0, fmt.Errorf("record: append: payload of %d bytes exceeds the limit of %d", len(p), MaxPayload)
	}
	payloadCRC := crc32.Checksum(p, castagnoli) // the expensive part; outside mu

	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pending) >= highWater && w.err == nil && !w.closing {
		w.roomWaiters++
		w.roomCond.Wait()
		w.roomWaiters--
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.closing {
		return 0, ErrClosed
	}
	wake := len(w.pending) == 0 // otherwise the flusher is already due to look
	w.pending = appendRecord(w.pending, p, payloadCRC)
	w.appended += int64(HeaderLen + len(p))
	if wake {
		w.workCond.Signal()
	}
	return w.appended, nil
}

// SyncTo blocks until every byte of the log up to end has been written and
// made durable by the file's Sync. Concurrent calls share Syncs (see
// [Writer]). If end is durable already, SyncTo returns nil, even after Close
// or a later error: the data it asks about is safe. Otherwise it returns the
// Writer's sticky error, if any. end must not exceed [Writer.Size].
func (w *Writer) SyncTo(end int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if end > w.appended {
		return fmt.Errorf("record: sync to offset %d beyond the end of the log at %d", end, w.appended)
	}
	if end > w.syncTo {
		w.syncTo = end
		w.workCond.Signal()
	}
	for w.synced < end {
		if w.err != nil {
			return w.err
		}
		w.syncCond.Wait()
	}
	return nil
}

// Flush blocks until every record appended so far has been written to the
// file, without syncing it. It returns the Writer's sticky error, if any,
// and [ErrClosed] if Close has been called.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing && w.err == nil {
		return ErrClosed
	}
	target := w.appended
	for w.written < target && w.err == nil {
		w.writeWaiters++
		w.writeCond.Wait()
		w.writeWaiters--
	}
	return w.err
}

// Size returns the logical size of the log: the end of the last appended
// record, written or not.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.appended
}

// Close writes and syncs every appended record, stops the flusher and closes
// the file. It returns the sticky error if there is one, else the error of
// closing the file. Close is idempotent: later calls wait for the first to
// finish and return its result.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		<-w.closeDone
		return w.closeErr
	}
	w.closing = true
	w.syncTo = w.appended
	w.workCond.Signal()
	w.roomCond.Broadcast()
	w.mu.Unlock()

	<-w.done
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("record: close: %w", cerr)
	}
	w.closeErr = err
	close(w.closeDone)
	return err
}

// flushLoop is the flusher goroutine; see [Writer] for the algorithm.
func (w *Writer) flushLoop() {
	defer close(w.done)
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for len(w.pending) == 0 && w.syncTo <= w.synced && !w.closing {
			w.workCond.Wait()
		}
		if len(w.pending) > 0 && !w.write() {
			return
		}
		if w.syncTo > w.synced {
			w.mu.Unlock()
			runtime.Gosched()
			w.mu.Lock()
			if len(w.pending) > 0 && !w.write() {
				return
			}
			if !w.sync() {
				return
			}
			continue
		}
		if w.closing && len(w.pending) == 0 {
			return
		}
	}
}

// write writes the pending buffer to the file. It is called by the flusher
// with mu held and releases mu during the Write. It reports whether the
// flusher may go on.
func (w *Writer) write() bool {
	data := w.pending
	w.pending, w.spare = w.spare[:0], nil
	if w.roomWaiters > 0 {
		w.roomCond.Broadcast()
	}
	w.mu.Unlock()
	n, err := w.f.Write(data)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	w.mu.Lock()
	if err != nil {
		w.fatal(fmt.Errorf("record: write at offset %d: %w", w.written, err))
		return false
	}
	w.written += int64(n)
	if cap(data) <= maxKeptBuffer {
		w.spare = data[:0]
	}
	if w.writeWaiters > 0 {
		w.writeCond.Broadcast()
	}
	return true
}

// sync makes everything written so far durable. Like write, it is called
// with mu held and releases it during the Sync.
func (w *Writer) sync() bool {
	target := w.written
	w.mu.Unlock()
	err := w.f.Sync()
	w.mu.Lock()
	if err != nil {
		w.fatal(fmt.Errorf("record: sync at offset %d: %w", target, err))
		return false
	}
	w.synced = target
	w.syncCond.Broadcast()
	return true
}

// fatal makes err sticky and wakes everyone waiting on the flusher.
func (w *Writer) fatal(err error) {
	w.err = err
	w.roomCond.Broadcast()
	w.writeCond.Broadcast()
	w.syncCond.Broadcast()
}
