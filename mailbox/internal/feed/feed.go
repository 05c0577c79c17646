// Package feed fans a mailbox backend's events out to the watchers of each
// user, in process.
package feed

import (
	"context"
	"sync"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// Buffer is the number of events a watcher may lag behind before it gets
// an overflow.
const Buffer = 1024

// direct is the capacity of a watcher's channel. An event published while
// the watcher's overflow queue is empty goes straight into the channel if
// it has room, so a watcher that keeps up sees an event as soon as
// Publish returns (an IMAP NOOP right after the APPEND that caused it);
// the rest wait in the queue, which a goroutine moves into the channel.
const direct = 64

// keepCap is the largest queue capacity a watcher keeps once it has caught
// up; a larger one, grown by a burst, is released.
const keepCap = 16

// Hub delivers published events to the watchers of their user. A watcher
// whose buffer is full loses events; the next event that fits is preceded
// by one [mailbox.EventOverflow]. A Hub is safe for concurrent use.
//
// A watcher costs a goroutine, a channel of 64 events and a queue that
// grows with its lag (up to [Buffer] events) and shrinks when it catches
// up: an idle watcher holds about 10 KiB (measured by the package's
// test) where a channel of Buffer events held 96 KiB, so ten thousand
// IMAP IDLE sessions hold some 100 MB, not 1 GB.
type Hub struct {
	mu     sync.Mutex
	subs   map[mailbricks.UserID]map[*sub]struct{}
	closed bool
}

type sub struct {
	out  chan mailbox.Event // read by the watcher; closed by pump
	wake chan struct{}      // capacity 1: q has events
	stop chan struct{}      // closed once: the hub closed or ctx ended
	ctx  context.Context

	mu       sync.Mutex
	q        []mailbox.Event
	overflow bool
	stopped  bool
}

// push queues ev, or marks the watcher as having lost events when its
// queue is full. An overflow marker goes first once there is room for it.
func (s *sub) push(ev mailbox.Event) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if s.overflow {
		if len(s.q) >= Buffer {
			s.mu.Unlock()
			return
		}
		s.overflow = false
		s.add(mailbox.Event{Kind: mailbox.EventOverflow, User: ev.User})
	}
	if len(s.q) >= Buffer {
		s.overflow = true
	} else {
		s.add(ev)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// add hands ev to the channel if nothing is queued before it and the
// channel has room, else queues it; the caller holds s.mu and has checked
// the queue's bound.
func (s *sub) add(ev mailbox.Event) {
	if len(s.q) == 0 {
		select {
		case s.out <- ev:
			return
		default:
		}
	}
	s.q = append(s.q, ev)
}

// markOverflow queues an overflow marker now, or before the next event if
// the queue is full.
func (s *sub) markOverflow(user mailbricks.UserID) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if len(s.q) >= Buffer {
		s.overflow = true
		s.mu.Unlock()
		return
	}
	s.overflow = false
	s.add(mailbox.Event{Kind: mailbox.EventOverflow, User: user})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// peek returns the oldest queued event, which stays queued until pop: a
// Publish meanwhile sees a non-empty queue and queues behind it, so the
// order holds.
func (s *sub) peek() (mailbox.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) == 0 {
		if cap(s.q) > keepCap {
			s.q = nil
		}
		return mailbox.Event{}, false
	}
	return s.q[0], true
}

// pop drops the event peek returned.
func (s *sub) pop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q[0] = mailbox.Event{}
	s.q = s.q[1:]
}

// pump moves queued events to out until the watcher's context ends, which
// drops what is queued, or the hub closes, after which the queued events
// are still delivered; then it closes out.
func (s *sub) pump() {
	defer close(s.out)
	// send delivers the oldest queued event; false means stop now.
	send := func() (sent, ok bool) {
		ev, has := s.peek()
		if !has {
			return false, true
		}
		select {
		case s.out <- ev:
		case <-s.stop:
			if s.ctx.Err() != nil {
				return false, false
			}
			select {
			case s.out <- ev:
			case <-s.ctx.Done():
				return false, false
			}
		}
		s.pop()
		return true, true
	}
	for {
		for {
			sent, ok := send()
			if !ok {
				return
			}
			if !sent {
				break
			}
		}
		select {
		case <-s.wake:
		case <-s.stop:
			// The hub closed or ctx ended; deliver what the hub queued
			// before it closed, unless ctx ended.
			for s.ctx.Err() == nil {
				sent, ok := send()
				if !ok || !sent {
					return
				}
			}
			return
		}
	}
}

// halt stops the watcher: no more events are queued and pump ends.
func (s *sub) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
}

// Subscribe returns a channel of user's events from now on. It is closed
// when ctx is done or the hub is closed; events published before the hub
// closed are delivered first.
func (h *Hub) Subscribe(ctx context.Context, user mailbricks.UserID) <-chan mailbox.Event {
	s := &sub{
		out:  make(chan mailbox.Event, direct),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		ctx:  ctx,
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(s.out)
		return s.out
	}
	if h.subs == nil {
		h.subs = map[mailbricks.UserID]map[*sub]struct{}{}
	}
	if h.subs[user] == nil {
		h.subs[user] = map[*sub]struct{}{}
	}
	h.subs[user][s] = struct{}{}
	h.mu.Unlock()
	go s.pump()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		if _, ok := h.subs[user][s]; ok {
			delete(h.subs[user], s)
			if len(h.subs[user]) == 0 {
				delete(h.subs, user)
			}
		}
		h.mu.Unlock()
		s.halt()
	})
	return s.out
}

// Watching reports whether user has a watcher, so publishers can skip
// building events nobody reads.
func (h *Hub) Watching(user mailbricks.UserID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[user]) > 0
}

// Publish delivers events, in order, to the watchers of their users. It
// never blocks on a slow watcher.
func (h *Hub) Publish(events ...mailbox.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		for s := range h.subs[ev.User] {
			s.push(ev)
		}
	}
}

// Close closes every watcher's channel once it has delivered the events
// published before; later subscriptions get a closed channel.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, m := range h.subs {
		for s := range m {
			s.halt()
		}
	}
	h.subs = nil
}

// Overflow marks every watcher as having missed events: each gets an
// [mailbox.EventOverflow] before its next event, or now if there is room.
func (h *Hub) Overflow() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for user, m := range h.subs {
		for s := range m {
			s.markOverflow(user)
		}
	}
}
