package lsmqueue

// Key layout. Every key starts with one byte naming its key space; topics
// are 1 to 64 bytes of [A-Za-z0-9_-] (every method checks them with
// [queue.ValidTopic] or a queue.Check function first, since callers of
// [queue.Queue.Backend] skip the Queue's checks), so the 0x00 byte after a
// topic ends it unambiguously and all keys of a topic sort together. Times are Unix
// nanoseconds as 8-byte big-endian unsigned integers (times before 1970
// are stored as 0); job IDs are the 16 bytes of a UUIDv7
// ([mailbricks.MessageID]), time-ordered.
//
//	'J' id[16]                                  → job record (below)
//	'R' topic 0x00 prio[4] readyAt[8] id[16]    → "" (ready or delayed job)
//	'L' topic 0x00 leaseUntil[8] id[16]         → "" (leased job)
//	'D' topic 0x00 deadAt[8] id[16]             → "" (dead letter)
//	'K' topic 0x00 key                          → id[16] doneAt[8]
//	'E' expireAt[8] topic 0x00 key              → "" (retention of a done key)
//	'S' key                                     → version[8] value (SetState)
//
// prio is MaxPriority-Priority as a 4-byte big-endian unsigned integer, so
// higher priorities sort first. readyAt is when a ready job may be leased:
// its enqueue time, NotBefore, or the end of its retry delay; within a
// priority the scan takes jobs whose readyAt has passed in readyAt order,
// then ID order (FIFO). doneAt is 0 while the key's job is pending, leased
// or dead, and the time the job was acknowledged afterwards; an 'E' entry
// marks when the 'K' entry may be deleted.
//
// Exactly one of the R, L and D entries of a job exists, and its time
// equals the record's At field, so an index entry can be checked against
// the record it points to.
//
// Job record ('J' value), in order:
//
//	version  byte (1)
//	state    byte: 1 ready (or delayed), 2 leased, 3 dead
//	attempt  uvarint: leases so far
//	maxAtt   uvarint
//	priority varint
//	token    uvarint: fencing token of the latest lease
//	enqueued varint: Unix nanoseconds
//	notBefore varint: Unix nanoseconds, 0 for none
//	at       varint: the time in the job's R, L or D key
//	topic, key, lastError, payload: each a uvarint length and the bytes

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/mailbricks/mailbricks/queue"
)

const (
	spaceJob   = 'J'
	spaceReady = 'R'
	spaceLease = 'L'
	spaceDead  = 'D'
	spaceKey   = 'K'
	spaceExp   = 'E'
	spaceState = 'S'
)

const (
	stateReady  = 1
	stateLeased = 2
	stateDead   = 3
)

var errCorrupt = errors.New("lsmqueue: corrupt job record")

type record struct {
	state     byte
	attempt   uint64
	maxAtt    uint64
	priority  int64
	token     uint64
	enqueued  int64
	notBefore int64
	at        int64
	topic     string
	key       string
	lastError string
	payload   []byte
}

func (r *record) encode() []byte {
	b := make([]byte, 0, 64+len(r.topic)+len(r.key)+len(r.lastError)+len(r.payload))
	b = append(b, 1, r.state)
	b = binary.AppendUvarint(b, r.attempt)
	b = binary.AppendUvarint(b, r.maxAtt)
	b = binary.AppendVarint(b, r.priority)
	b = binary.AppendUvarint(b, r.token)
	b = binary.AppendVarint(b, r.enqueued)
	b = binary.AppendVarint(b, r.notBefore)
	b = binary.AppendVarint(b, r.at)
	for _, s := range []string{r.topic, r.key, r.lastError} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.payload)))
	return append(b, r.payload...)
}

func decodeRecord(b []byte) (*record, error) {
	if len(b) < 2 || b[0] != 1 || b[1] < stateReady || b[1] > stateDead {
		return nil, errCorrupt
	}
	r := &record{state: b[1]}
	b = b[2:]
	uv := func(p *uint64) bool {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return false
		}
		*p, b = v, b[n:]
		return true
	}
	sv := func(p *int64) bool {
		v, n := binary.Varint(b)
		if n <= 0 {
			return false
		}
		*p, b = v, b[n:]
		return true
	}
	bs := func() ([]byte, bool) {
		var l uint64
		if !uv(&l) || l > uint64(len(b)) {
			return nil, false
		}
		v := b[:l]
		b = b[l:]
		return v, true
	}
	if !uv(&r.attempt) || !uv(&r.maxAtt) || !sv(&r.priority) || !uv(&r.token) ||
		!sv(&r.enqueued) || !sv(&r.notBefore) || !sv(&r.at) {
		return nil, errCorrupt
	}
	var fields [4][]byte
	for i := range fields {
		v, ok := bs()
		if !ok {
			return nil, errCorrupt
		}
		fields[i] = v
	}
	if len(b) != 0 {
		return nil, errCorrupt
	}
	r.topic, r.key, r.lastError = string(fields[0]), string(fields[1]), string(fields[2])
	r.payload = append([]byte(nil), fields[3]...)
	return r, nil
}

func (r *record) job(id string) queue.Job {
	j := queue.Job{
		ID:          id,
		Topic:       r.topic,
		Payload:     r.payload,
		Key:         r.key,
		Attempt:     int(r.attempt),
		MaxAttempts: int(r.maxAtt),
		Priority:    int(r.priority),
		Token:       r.token,
		EnqueuedAt:  time.Unix(0, r.enqueued),
		LastError:   r.lastError,
	}
	if r.notBefore != 0 {
		j.NotBefore = time.Unix(0, r.notBefore)
	}
	if r.state == stateLeased {
		j.LeaseUntil = time.Unix(0, r.at)
	}
	return j
}

func nanos(t time.Time) int64 {
	n := t.UnixNano()
	if n < 0 {
		return 0
	}
	return n
}

func topicPrefix(space byte, topic string) []byte {
	b := make([]byte, 0, 2+len(topic)+28)
	b = append(b, space)
	b = append(b, topic...)
	return append(b, 0)
}

func jobKey(id []byte) []byte { return append([]byte{spaceJob}, id...) }

func prioBytes(p int64) uint32 { return uint32(int64(queue.MaxPriority) - p) }

func readyKey(topic string, prio int64, at int64, id []byte) []byte {
	b := topicPrefix(spaceReady, topic)
	b = binary.BigEndian.AppendUint32(b, prioBytes(prio))
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, id...)
}

func timedKey(space byte, topic string, at int64, id []byte) []byte {
	b := topicPrefix(space, topic)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, id...)
}

func keyKey(topic, key string) []byte { return append(topicPrefix(spaceKey, topic), key...) }

func expKey(at int64, topic, key string) []byte {
	b := []byte{spaceExp}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = append(b, topic...)
	b = append(b, 0)
	return append(b, key...)
}
