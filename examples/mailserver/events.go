package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

// eventJSON is the data of one Server-Sent Event. The SSE event name is the
// kind: "append" (new mail, or a message moved in), "flags", "expunge",
// "folder" or "overflow" (events were dropped: reload). A first "ready"
// event says the stream is live: every change committed after it arrives.
type eventJSON struct {
	Kind    string       `json:"kind"`
	Folder  string       `json:"folder,omitempty"`
	ID      string       `json:"id,omitempty"`
	UID     uint32       `json:"uid,omitempty"`
	ModSeq  uint64       `json:"modseq,omitempty"`
	Flags   []string     `json:"flags,omitempty"`
	Message *messageJSON `json:"message,omitempty"`
}

// heartbeat keeps idle event streams open through proxies.
const heartbeat = 15 * time.Second

// events streams the user's mailbox changes from mailbox.Store.Watch, which
// carries the changes of every process sharing the backend (PostgreSQL's
// LISTEN/NOTIFY with -pg-url), so a client of one instance sees mail that
// another delivered.
func (h *api) events(w http.ResponseWriter, r *http.Request, user mailbricks.UserID) error {
	rc := http.NewResponseController(w)
	ctx := r.Context()
	ch, err := h.a.b.Mailbox.Watch(ctx, user)
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == "HEAD" {
		return nil
	}
	send := func(name string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if send("ready", map[string]string{"user": string(user)}) != nil {
		return nil
	}
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			j := eventJSON{Kind: ev.Kind.String(), Folder: ev.Folder, UID: ev.UID, ModSeq: ev.ModSeq, Flags: ev.Flags}
			if !ev.ID.IsZero() {
				j.ID = ev.ID.String()
			}
			if ev.Kind == mailbox.EventAppend {
				if m, err := h.a.b.Mailbox.Get(ctx, user, ev.ID); err == nil {
					j.Message = toJSON(&m)
				}
			}
			if send(j.Kind, j) != nil {
				return nil
			}
		}
	}
}
