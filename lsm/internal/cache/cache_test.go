package cache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func block(n int, fill byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = fill
	}
	return b
}

func TestNilCache(t *testing.T) {
	var c *Cache
	c.Set(1, 0, []byte("x"))
	if _, ok := c.Get(1, 0); ok {
		t.Fatal("a nil cache returned a block")
	}
	c.EvictFile(1)
	if h, m, s := c.Metrics(); h != 0 || m != 0 || s != 0 {
		t.Fatalf("nil cache metrics = %d %d %d, want zeros", h, m, s)
	}
}

func TestGetSet(t *testing.T) {
	c := New(1 << 20)
	if _, ok := c.Get(1, 0); ok {
		t.Fatal("empty cache hit")
	}
	c.Set(1, 0, []byte("a"))
	c.Set(1, 4096, []byte("b"))
	c.Set(2, 0, []byte("c"))
	for _, tc := range []struct {
		file, off uint64
		want      string
	}{{1, 0, "a"}, {1, 4096, "b"}, {2, 0, "c"}} {
		b, ok := c.Get(tc.file, tc.off)
		if !ok || string(b) != tc.want {
			t.Errorf("Get(%d, %d) = %q, %v, want %q", tc.file, tc.off, b, ok, tc.want)
		}
	}
	c.Set(1, 0, []byte("aa"))
	if b, _ := c.Get(1, 0); string(b) != "aa" {
		t.Errorf("Set did not replace: got %q", b)
	}
	hits, misses, size := c.Metrics()
	if hits != 4 || misses != 1 {
		t.Errorf("hits, misses = %d, %d, want 4, 1", hits, misses)
	}
	if want := int64(2+1+1) + 3*EntryOverhead; size != want {
		t.Errorf("size = %d, want %d", size, want)
	}
}

// TestValues checks SetValue and GetValue: values are charged what the
// caller says, evicted like blocks, replace blocks and are replaced by them,
// and are not blocks to Get.
func TestValues(t *testing.T) {
	var nilCache *Cache
	nilCache.SetValue(1, 0, "x", 1, nil)
	if _, ok := nilCache.GetValue(1, 0); ok {
		t.Fatal("a nil cache returned a value")
	}
	c := New(1 << 20)
	if _, ok := c.GetValue(1, 0); ok {
		t.Fatal("empty cache hit")
	}
	c.SetValue(1, 0, []int{1, 2, 3}, 1000, nil)
	v, ok := c.GetValue(1, 0)
	if !ok || len(v.([]int)) != 3 {
		t.Fatalf("GetValue = %v, %v", v, ok)
	}
	if _, ok := c.Get(1, 0); ok {
		t.Fatal("Get returned a value as a block")
	}
	if _, _, size := c.Metrics(); size != 1000+EntryOverhead {
		t.Fatalf("size = %d, want %d", size, 1000+EntryOverhead)
	}
	c.Set(1, 0, []byte("b"))
	if _, ok := c.GetValue(1, 0); ok {
		t.Fatal("GetValue returned a block")
	}
	c.SetValue(1, 0, "v", 10, nil)
	if v, ok := c.GetValue(1, 0); !ok || v != "v" {
		t.Fatalf("GetValue after replacing a block = %v, %v", v, ok)
	}
	if _, _, size := c.Metrics(); size != 10+EntryOverhead {
		t.Fatalf("size = %d, want %d", size, 10+EntryOverhead)
	}
	// A value larger than a shard is not cached; values are evicted to
	// make room like blocks.
	c.SetValue(2, 0, "big", 1<<20, nil)
	if _, ok := c.GetValue(2, 0); ok {
		t.Fatal("a value larger than a shard was cached")
	}
	small := New(numShards * 2000)
	for i := range uint64(200) {
		small.SetValue(i, 0, i, 500, nil)
	}
	if _, _, size := small.Metrics(); size > numShards*2000 {
		t.Fatalf("size %d over the capacity %d", size, numShards*2000)
	}
	c.EvictFile(1)
	if _, ok := c.GetValue(1, 0); ok {
		t.Fatal("EvictFile kept a value")
	}
}

// TestLRU uses one shard's worth of keys: it finds keys that land in the
// same shard so that the eviction order is observable.
func TestLRU(t *testing.T) {
	const blockLen = 1000
	perShard := int64(3 * (blockLen + EntryOverhead))
	c := New(perShard * numShards)
	var offs []uint64
	target := c.shard(key{7, 0})
	for off := uint64(0); len(offs) < 5; off += 4096 {
		if c.shard(key{7, off}) == target {
			offs = append(offs, off)
		}
	}
	for _, off := range offs[:3] {
		c.Set(7, off, block(blockLen, byte(off)))
	}
	c.Get(7, offs[0]) // offs[1] is now the least recently used
	c.Set(7, offs[3], block(blockLen, 3))
	if _, ok := c.Get(7, offs[1]); ok {
		t.Error("least recently used block survived an insertion past capacity")
	}
	for _, off := range []uint64{offs[0], offs[2], offs[3]} {
		if _, ok := c.Get(7, off); !ok {
			t.Errorf("block at %d was evicted, want it kept", off)
		}
	}
	if _, _, size := c.Metrics(); size > perShard {
		t.Errorf("size %d exceeds the shard capacity %d", size, perShard)
	}
	// A block larger than a shard is not cached and does not flush the shard.
	c.Set(7, offs[4], block(int(perShard), 9))
	if _, ok := c.Get(7, offs[4]); ok {
		t.Error("a block larger than a shard was cached")
	}
	if _, ok := c.Get(7, offs[0]); !ok {
		t.Error("an oversized block evicted other blocks")
	}
}

// TestValueUsed checks that a value whose used flag is set is kept like a
// value hit with GetValue, and that eviction clears the flag.
func TestValueUsed(t *testing.T) {
	const size = 1000
	perShard := int64(3 * (size + EntryOverhead))
	c := New(perShard * numShards)
	var offs []uint64
	target := c.shard(key{7, 0})
	for off := uint64(0); len(offs) < 6; off += 4096 {
		if c.shard(key{7, off}) == target {
			offs = append(offs, off)
		}
	}
	var used atomic.Bool
	c.SetValue(7, offs[0], "hot", size, &used)
	c.SetValue(7, offs[1], "cold", size, nil)
	c.SetValue(7, offs[2], "cold", size, nil)
	used.Store(true) // offs[0] is used, without GetValue
	c.SetValue(7, offs[3], "new", size, nil)
	if _, ok := c.GetValue(7, offs[0]); !ok {
		t.Fatal("a used value was evicted")
	}
	if _, ok := c.GetValue(7, offs[1]); ok {
		t.Fatal("the least recently used value survived")
	}
	if used.Load() {
		t.Fatal("eviction did not clear the used flag")
	}
	// Unused from now on (the GetValue above marked it once): it goes
	// within four insertions.
	for _, off := range []uint64{offs[4], offs[5], offs[1], offs[2]} {
		c.SetValue(7, off, "new", size, nil)
	}
	if _, ok := c.GetValue(7, offs[0]); ok {
		t.Fatal("an unused value survived a pass of new values")
	}
}

// TestHotBlockSurvivesScan checks that a block hit between insertions is
// kept while a stream of blocks passes through its shard.
func TestHotBlockSurvivesScan(t *testing.T) {
	const blockLen = 1000
	c := New(3 * (blockLen + EntryOverhead) * numShards)
	target := c.shard(key{1, 0})
	c.Set(1, 0, block(blockLen, 1))
	n := 0
	for off := uint64(4096); n < 100; off += 4096 {
		if c.shard(key{2, off}) != target {
			continue
		}
		n++
		c.Set(2, off, block(blockLen, 2))
		if _, ok := c.Get(1, 0); !ok {
			t.Fatalf("hot block evicted after %d insertions", n)
		}
	}
}

func TestEvictFile(t *testing.T) {
	c := New(1 << 20)
	for f := uint64(1); f <= 3; f++ {
		for off := uint64(0); off < 100; off++ {
			c.Set(f, off*4096, []byte{byte(f)})
		}
	}
	c.EvictFile(2)
	for f := uint64(1); f <= 3; f++ {
		for off := uint64(0); off < 100; off++ {
			_, ok := c.Get(f, off*4096)
			if ok != (f != 2) {
				t.Fatalf("after EvictFile(2): Get(%d, %d) ok = %v", f, off*4096, ok)
			}
		}
	}
	if _, _, size := c.Metrics(); size != 200*(1+EntryOverhead) {
		t.Errorf("size = %d, want %d", size, 200*(1+EntryOverhead))
	}
}

func TestZeroCapacity(t *testing.T) {
	c := New(0)
	c.Set(1, 0, []byte("x"))
	if _, ok := c.Get(1, 0); ok {
		t.Fatal("a zero-capacity cache kept a block")
	}
}

func TestConcurrent(t *testing.T) {
	c := New(64 << 10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				off := uint64((i * 7919) % 300)
				if b, ok := c.Get(uint64(g%3), off); ok {
					if len(b) != int(off%50)+1 || b[0] != byte(off) {
						panic(fmt.Sprintf("wrong block for %d/%d", g%3, off))
					}
				} else {
					c.Set(uint64(g%3), off, block(int(off%50)+1, byte(off)))
				}
				if i%1000 == 0 {
					c.EvictFile(uint64(g % 3))
					c.Metrics()
				}
			}
		})
	}
	wg.Wait()
	if _, _, size := c.Metrics(); size > 64<<10 {
		t.Fatalf("size %d exceeds the capacity", size)
	}
}

func BenchmarkGet(b *testing.B) {
	c := New(64 << 20)
	blk := make([]byte, 4096)
	for i := range uint64(1000) {
		c.Set(1, i*4096, blk)
	}
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			c.Get(1, (i%1000)*4096)
			i++
		}
	})
}

func BenchmarkSetEvict(b *testing.B) {
	c := New(1 << 20)
	blk := make([]byte, 4096)
	i := uint64(0)
	for b.Loop() {
		c.Set(1, i*4096, blk)
		i++
	}
}
