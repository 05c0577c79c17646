package reputation_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
	"github.com/mailbricks/mailbricks/reputation/reputationtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTracker(t *testing.T, o *reputation.Options) *reputation.Tracker {
	t.Helper()
	b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	tr, err := reputation.New(b, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestNewValidates(t *testing.T) {
	b, err := lsmreputation.Open("rep", &lsmreputation.Options{FS: vfs.NewMem()})
	require.NoError(t, err)
	defer b.Close()
	for name, o := range map[string]reputation.Options{
		"empty pool":      {Pools: []reputation.Pool{{Class: "x"}}},
		"empty IP":        {Pools: []reputation.Pool{{IPs: []reputation.IP{{}}}}},
		"empty schedule":  {Warmup: []int64{}},
		"zero cap":        {Warmup: []int64{10, 0}},
		"nameless":        {Providers: []reputation.Provider{{}}},
		"repeated name":   {Providers: []reputation.Provider{{Name: "a"}, {Name: "a"}}},
		"negative rate":   {Providers: []reputation.Provider{{Name: "a", Rate: -1}}},
		"window < bucket": {Window: time.Minute, BucketWidth: time.Hour},
	} {
		_, err := reputation.New(b, &o)
		assert.ErrorIs(t, err, reputation.ErrInvalid, name)
	}
	_, err = reputation.New(nil, nil)
	assert.ErrorIs(t, err, reputation.ErrInvalid)
}

func TestByteRate(t *testing.T) {
	clock := reputationtest.NewClock(time.Now())
	tr := newTracker(t, &reputation.Options{Now: clock.Now, Resolver: reputationtest.NewResolver(nil),
		Pools:     []reputation.Pool{{IPs: []reputation.IP{{Addr: "192.0.2.1"}}}},
		Providers: []reputation.Provider{{Name: "google", Domains: []string{"gmail.com"}, Rate: 100, Burst: 100, ByteRate: 1000, ByteBurst: 5000}},
	})
	ctx := context.Background()
	d, err := tr.Decide(ctx, reputation.Send{To: "a@gmail.com", Size: 3000})
	require.NoError(t, err)
	require.True(t, d.Allow)
	d, err = tr.Decide(ctx, reputation.Send{To: "b@gmail.com", Size: 3000})
	require.NoError(t, err)
	require.False(t, d.Allow, "the byte bucket holds 2000 bytes after a 3000-byte message")
	assert.Equal(t, time.Second, d.RetryAfter, "1000 missing bytes at 1000 bytes/s")
	clock.Advance(time.Second)
	d, _ = tr.Decide(ctx, reputation.Send{To: "b@gmail.com", Size: 3000})
	require.True(t, d.Allow)
	d, _ = tr.Decide(ctx, reputation.Send{To: "c@gmail.com", Size: 1 << 20})
	require.False(t, d.Allow, "a message larger than the bucket waits for a full bucket")
}

type failingResolver struct{ n int }

func (r *failingResolver) LookupMX(context.Context, string) ([]*net.MX, error) {
	r.n++
	return nil, errors.New("SERVFAIL")
}

func TestProviderLookupFailure(t *testing.T) {
	clock := reputationtest.NewClock(time.Now())
	res := &failingResolver{}
	tr := newTracker(t, &reputation.Options{Now: clock.Now, Resolver: res, Pools: []reputation.Pool{{IPs: []reputation.IP{{Addr: "192.0.2.1"}}}}})
	ctx := context.Background()
	d, err := tr.Decide(ctx, reputation.Send{To: "a@broken.example"})
	require.NoError(t, err, "a failed MX lookup does not fail Decide")
	require.True(t, d.Allow)
	require.Equal(t, "broken.example", d.Provider, "the domain is its own destination")
	tr.Provider(ctx, "broken.example")
	require.Equal(t, 1, res.n, "failures are cached")
	clock.Advance(2 * time.Minute)
	tr.Provider(ctx, "broken.example")
	require.Equal(t, 2, res.n, "for a minute")
	require.Equal(t, "google", tr.Provider(ctx, "gmail.com"), "listed domains need no lookup")
	require.Equal(t, 2, res.n)
	_, err = tr.Decide(ctx, reputation.Send{To: "a@x.example", Class: "nope"})
	require.NoError(t, err, "a class without a pool falls back to the default pool")
}

func TestNoPool(t *testing.T) {
	tr := newTracker(t, &reputation.Options{Resolver: reputationtest.NewResolver(nil),
		Pools: []reputation.Pool{{Class: reputation.ClassBulk, IPs: []reputation.IP{{Addr: "192.0.2.1"}}}}})
	_, err := tr.Decide(context.Background(), reputation.Send{To: "a@gmail.com", Class: reputation.ClassTransactional})
	require.ErrorIs(t, err, reputation.ErrNoPool)
	_, err = tr.Decide(context.Background(), reputation.Send{To: "not-an-address", Class: reputation.ClassBulk})
	require.ErrorIs(t, err, reputation.ErrInvalidAddress)
}

func TestWeights(t *testing.T) {
	tr := newTracker(t, &reputation.Options{Resolver: reputationtest.NewResolver(nil),
		Providers: []reputation.Provider{{Name: "google", Domains: []string{"gmail.com"}, Rate: 1e6, Burst: 1e6}},
		Pools:     []reputation.Pool{{IPs: []reputation.IP{{Addr: "192.0.2.1", Weight: 1}, {Addr: "192.0.2.2", Weight: 3}}}}})
	ctx := context.Background()
	count := map[string]int{}
	for i := range 4000 {
		d, err := tr.Decide(ctx, reputation.Send{To: "u" + string(rune('a'+i%26)) + time.Duration(i).String() + "@gmail.com"})
		require.NoError(t, err)
		count[d.IP]++
	}
	assert.InDelta(t, 3000, count["192.0.2.2"], 150, "an IP of weight 3 gets three quarters of the recipients: %v", count)
	for range 3 {
		d, _ := tr.Decide(ctx, reputation.Send{To: "sticky@gmail.com"})
		d2, _ := tr.Decide(ctx, reputation.Send{To: "sticky@gmail.com"})
		assert.Equal(t, d.IP, d2.IP, "a recipient keeps its IP")
	}
}
