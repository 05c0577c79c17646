package reputation

// The Tracker keeps two kinds of state records in the Backend, as opaque
// values it encodes itself.
//
// The state of an (IP, provider) pair, at key "s/<ip>/<provider>":
//
//	byte 0     format version, 1
//	byte 1     status: 1 warming, 2 active
//	uvarint    warm-up stage (index into the schedule)
//	varint     day (days since the Unix epoch, UTC) the state was last
//	           evaluated for
//	varint     paused until, Unix milliseconds; 0 never paused; a time in
//	           the past is when the last pause ended
//	byte       1 if the pause is manual (until Resume), else 0
//	uvarint n, n bytes   pause reason
//
// The soft-bounce record of an address, at key "b/<address>":
//
//	byte 0     format version, 1
//	varint     first day with a soft bounce
//	varint     last day with a soft bounce
//	uvarint    number of distinct days with a soft bounce
//
// Nothing may follow either record; anything else decodes to an error
// matching ErrMalformed.

import (
	"encoding/binary"
	"fmt"
)

const (
	statusWarming = 1
	statusActive  = 2
)

type ipState struct {
	status      byte
	stage       int
	day         int64
	pausedUntil int64 // Unix ms
	manual      bool
	reason      string
}

func (s ipState) encode() []byte {
	b := make([]byte, 0, 32+len(s.reason))
	b = append(b, 1, s.status)
	b = binary.AppendUvarint(b, uint64(s.stage))
	b = binary.AppendVarint(b, s.day)
	b = binary.AppendVarint(b, s.pausedUntil)
	if s.manual {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s.reason)))
	return append(b, s.reason...)
}

// errBadIPState is built once: decodeIPState runs on the sending path.
var errBadIPState = fmt.Errorf("%w: IP state record", ErrMalformed)

func decodeIPState(b []byte) (ipState, error) {
	bad := errBadIPState
	if len(b) < 2 || b[0] != 1 || (b[1] != statusWarming && b[1] != statusActive) {
		return ipState{}, bad
	}
	s := ipState{status: b[1]}
	r := b[2:]
	stage, n := binary.Uvarint(r)
	if n <= 0 || stage > 1<<20 {
		return ipState{}, bad
	}
	s.stage, r = int(stage), r[n:]
	if s.day, n = binary.Varint(r); n <= 0 {
		return ipState{}, bad
	}
	r = r[n:]
	if s.pausedUntil, n = binary.Varint(r); n <= 0 {
		return ipState{}, bad
	}
	r = r[n:]
	if len(r) < 1 || r[0] > 1 {
		return ipState{}, bad
	}
	s.manual, r = r[0] == 1, r[1:]
	l, n := binary.Uvarint(r)
	if n <= 0 || l != uint64(len(r)-n) {
		return ipState{}, bad
	}
	s.reason = string(r[n:])
	return s, nil
}

type softBounces struct {
	first, last int64
	days        int
}

func (s softBounces) encode() []byte {
	b := []byte{1}
	b = binary.AppendVarint(b, s.first)
	b = binary.AppendVarint(b, s.last)
	return binary.AppendUvarint(b, uint64(s.days))
}

func decodeSoftBounces(b []byte) (softBounces, error) {
	bad := fmt.Errorf("%w: soft-bounce record", ErrMalformed)
	if len(b) < 1 || b[0] != 1 {
		return softBounces{}, bad
	}
	var s softBounces
	r := b[1:]
	var n int
	if s.first, n = binary.Varint(r); n <= 0 {
		return softBounces{}, bad
	}
	r = r[n:]
	if s.last, n = binary.Varint(r); n <= 0 {
		return softBounces{}, bad
	}
	r = r[n:]
	d, n := binary.Uvarint(r)
	if n <= 0 || n != len(r) || d > 1<<20 {
		return softBounces{}, bad
	}
	s.days = int(d)
	return s, nil
}
