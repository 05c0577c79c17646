package natsqueue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/queue"
	"github.com/mailbricks/mailbricks/queue/natsqueue"
	"github.com/mailbricks/mailbricks/queue/queuetest"
)

// cluster is an in-process JetStream cluster on loopback ports, each node
// storing in its own temporary directory.
type cluster struct {
	t       *testing.T
	servers []*server.Server
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts n JetStream servers routed to each other and waits
// until JetStream answers through every one of them.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range ports {
		ports[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	c := &cluster{t: t}
	for i := range n {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "mailbricks",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		c.servers = append(c.servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.Shutdown()
		}
	})
	for _, s := range c.servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("in-process nats-server did not start")
		}
	}
	// Wait until the meta group has a leader and every node knows it.
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range c.servers {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := js.AccountInfo(ctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				t.Fatalf("JetStream cluster not ready: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		nc.Close()
	}
	return c
}

// urls is every live server's client URL, for a connection that fails
// over between them.
func (c *cluster) urls() string {
	var u []string
	for _, s := range c.servers {
		if s.Running() {
			u = append(u, s.ClientURL())
		}
	}
	return strings.Join(u, ",")
}

// connect returns a connection to the cluster that reconnects forever.
func (c *cluster) connect() *nats.Conn {
	nc, err := nats.Connect(c.urls(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

func clusterConformance(t *testing.T, replicas int) {
	c := startCluster(t, 3)
	jobs := 2000
	if longRun() {
		jobs = 10000
	}
	queuetest.Run(t, func(t *testing.T, _ func() time.Time) queue.Backend {
		nc := c.connect()
		prefix := fmt.Sprintf("QC%d", rand.Uint32())
		b, err := natsqueue.Open(context.Background(), nc, &natsqueue.Options{Prefix: prefix, LeaseTTL: testTTL, Replicas: replicas})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, &queuetest.Options{
		RealClock: true, NoFencing: true, FixedTTL: true, NoPriority: true,
		ApproxNotBefore: true, ApproxStats: true, TTL: testTTL, Jobs: jobs,
	})
}

// TestClusterConformanceR1 runs the conformance suite on an in-process
// 3-node JetStream cluster with one replica per stream.
func TestClusterConformanceR1(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	clusterConformance(t, 1)
}

// TestClusterConformanceR3 runs the conformance suite on an in-process
// 3-node JetStream cluster with three replicas per stream.
func TestClusterConformanceR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	clusterConformance(t, 3)
}

func longRun() bool { return os.Getenv("MAILBRICKS_LONG") == "1" }

// TestClusterFirstUse has four backends, each on its own connection as
// four processes would be, and 16 goroutines on each, enqueue to and
// lease from a topic nobody has used yet, at once, on R1 and R3: every
// call must succeed (a cluster leaves concurrent duplicate stream
// creations unanswered, which the per-process single flight and the
// bounded, retried attempts absorb).
func TestClusterFirstUse(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	c := startCluster(t, 3)
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("R%d", replicas), func(t *testing.T) {
			prefix := fmt.Sprintf("QU%d", rand.Uint32())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var bs []*natsqueue.Backend
			for range 4 {
				b, err := natsqueue.Open(ctx, c.connect(), &natsqueue.Options{Prefix: prefix, LeaseTTL: testTTL, Replicas: replicas})
				require.NoError(t, err)
				bs = append(bs, b)
			}
			for round := range 3 {
				topic := fmt.Sprintf("first%d", round)
				start := time.Now()
				var wg sync.WaitGroup
				for i := range 64 {
					b := bs[i%len(bs)]
					wg.Go(func() {
						if i%2 == 0 {
							_, err := b.Enqueue(ctx, topic, []byte("x"), queue.EnqueueOptions{MaxAttempts: 3})
							assert.NoError(t, err, "Enqueue on first use")
							return
						}
						_, err := b.Lease(ctx, topic, 1, testTTL, 100*time.Millisecond)
						assert.NoError(t, err, "Lease on first use")
					})
				}
				wg.Wait()
				t.Logf("R%d round %d: 64 concurrent first uses from 4 backends took %v", replicas, round, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}
