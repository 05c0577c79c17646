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

// Hub delivers published events to the watchers of their user. A watcher
// whose buffer is full loses events; the next event that fits is preceded
// by one [mailbox.EventOverflow]. A Hub is safe for concurrent use.
type Hub struct {
	mu     sync.Mutex
	subs   map[mailbricks.UserID]map[*sub]struct{}
	closed bool
}

type sub struct {
	ch       chan mailbox.Event
	overflow bool
}

// Subscribe returns a channel of user's events from now on. It is closed
// when ctx is done or the hub is closed.
func (h *Hub) Subscribe(ctx context.Context, user mailbricks.UserID) <-chan mailbox.Event {
	s := &sub{ch: make(chan mailbox.Event, Buffer)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(s.ch)
		return s.ch
	}
	if h.subs == nil {
		h.subs = map[mailbricks.UserID]map[*sub]struct{}{}
	}
	if h.subs[user] == nil {
		h.subs[user] = map[*sub]struct{}{}
	}
	h.subs[user][s] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[user][s]; ok {
			delete(h.subs[user], s)
			if len(h.subs[user]) == 0 {
				delete(h.subs, user)
			}
			close(s.ch)
		}
	})
	return s.ch
}

// Watching reports whether user has a watcher, so publishers can skip
// building events nobody reads.
func (h *Hub) Watching(user mailbricks.UserID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[user]) > 0
}

// Publish delivers events, in order, to the watchers of their users.
func (h *Hub) Publish(events ...mailbox.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		for s := range h.subs[ev.User] {
			if s.overflow {
				select {
				case s.ch <- mailbox.Event{Kind: mailbox.EventOverflow, User: ev.User}:
					s.overflow = false
				default:
					continue
				}
			}
			select {
			case s.ch <- ev:
			default:
				s.overflow = true
			}
		}
	}
}

// Close closes every watcher's channel; later subscriptions get a closed
// channel.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, m := range h.subs {
		for s := range m {
			close(s.ch)
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
			select {
			case s.ch <- mailbox.Event{Kind: mailbox.EventOverflow, User: user}:
				s.overflow = false
			default:
				s.overflow = true
			}
		}
	}
}
