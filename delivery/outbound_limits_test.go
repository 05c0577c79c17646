package delivery

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/queue"
)

// TestOutboundConnectionCap runs a concurrent worker against one MX with
// a cap of two connections: the server never sees more than two at once,
// and every message arrives.
func TestOutboundConnectionCap(t *testing.T) {
	port := mxPort(t, "127.0.0.18")
	mx := startMX(t, "127.0.0.18", port, nil)
	mx.set(mxBehavior{mail: func(string) error { time.Sleep(5 * time.Millisecond); return nil }})
	env := newOutEnv(t, port, func(o *OutboundOptions) { o.ConnsPerHost = 2 })
	env.mx("cap.test", "mx.cap.test", "127.0.0.18")
	const n = 20
	for i := range n {
		env.submit(fmt.Sprintf("tx%d", i), "alice@example.com", []string{fmt.Sprintf("u%d@cap.test", i)}, testMessage("alice@example.com", "u@cap.test", fmt.Sprintf("cap%d", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := queue.NewWorker(env.q, DefaultOutgoingTopic, env.ob, &queue.WorkerOptions{Concurrency: 8, PollWait: 20 * time.Millisecond})
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	require.Eventually(t, func() bool { return len(mx.messages()) == n }, 30*time.Second, 10*time.Millisecond)
	cancel()
	<-done
	mx.mu.Lock()
	defer mx.mu.Unlock()
	assert.LessOrEqual(t, mx.maxActive, 2, "at most ConnsPerHost connections to one MX address")
	assert.LessOrEqual(t, len(mx.conns), 4, "connections are reused, not one per message")
}

// TestOutboundGreetingTimeout: a host that accepts the connection and
// never greets is given up after Timeouts.Greeting; the next MX gets the
// message.
func TestOutboundGreetingTimeout(t *testing.T) {
	port := mxPort(t, "127.0.0.19", "127.0.0.22")
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.19:%d", port))
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // silent: never greets
		}
	}()
	good := startMX(t, "127.0.0.22", port, nil)
	env := newOutEnv(t, port, func(o *OutboundOptions) { o.Timeouts.Greeting = 300 * time.Millisecond })
	env.mx("slow.test", "silent.slow.test", "127.0.0.19", "good.slow.test", "127.0.0.22")
	env.submit("tx1", "alice@example.com", []string{"u@slow.test"}, testMessage("alice@example.com", "u@slow.test", "slow"))
	env.drain()
	require.Len(t, good.messages(), 1)
}

func TestRetryWaitJitter(t *testing.T) {
	env := newOutEnv(t, 25, nil)
	seen := map[time.Duration]bool{}
	for i := range 200 {
		d := env.ob.retryWait(1)
		require.GreaterOrEqual(t, d, 7*time.Minute+30*time.Second-45*time.Second, "draw %d", i)
		require.LessOrEqual(t, d, 7*time.Minute+30*time.Second+45*time.Second, "draw %d", i)
		seen[d] = true
	}
	assert.Greater(t, len(seen), 50, "the waits are spread")
	assert.InDelta(t, float64(16*time.Hour), float64(env.ob.retryWait(30)), float64(16*time.Hour)/10+1, "the last wait repeats")
}
