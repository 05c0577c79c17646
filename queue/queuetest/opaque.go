package queuetest

import (
	"errors"
	"strings"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/queue"
)

// opaqueKeys are valid idempotency keys that are not text.
var opaqueKeys = []string{"k\x00a", "k\x00b", "\xff\xfe", "\xff\xfd", strings.Repeat("\x00\xff", 256)}

// testOpaque checks that idempotency keys and payloads are opaque bytes:
// NUL and invalid UTF-8 round-trip exactly, and keys that would be equal
// after a lossy decoding stay distinct. A Nack cause that is not text
// must not fail the Nack.
func testOpaque(e *env) {
	t := e.t
	topic := topicName(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	ids := map[string]string{}
	for i, k := range opaqueKeys {
		payload := string(all) + string(rune('a'+i))
		id := e.enqueue(topic, payload, &queue.EnqueueOptions{Key: k})
		for k2, id2 := range ids {
			require.NotEqual(t, id2, id, "keys %q and %q must be distinct jobs", k, k2)
		}
		ids[k] = id
		require.Equal(t, id, e.enqueue(topic, "again", &queue.EnqueueOptions{Key: k}), "key %q must round-trip: a repeat must return the first job's ID", k)
	}
	jobs := e.lease(topic, 2*len(opaqueKeys), time.Minute)
	require.Len(t, jobs, len(opaqueKeys), "every distinct key must be one job")
	for _, j := range jobs {
		i := -1
		for n, k := range opaqueKeys {
			if ids[k] == j.ID {
				i = n
			}
		}
		require.GreaterOrEqual(t, i, 0, "leased job %s must be one of the enqueued", j.ID)
		require.Equal(t, opaqueKeys[i], j.Key, "Job.Key must be the key byte for byte")
		require.Equal(t, string(all)+string(rune('a'+i)), string(j.Payload), "the payload must round-trip byte for byte")
	}
	require.NoError(t, e.q.Nack(e.ctx, jobs[0], time.Hour, errors.New("bad\x00\xff cause")),
		"a Nack whose cause is not text must succeed")
	for _, j := range jobs[1:] {
		e.ack(j)
	}
}
