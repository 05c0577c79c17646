package bloom

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// TestHashGolden pins Hash: filters persist it, so any change here breaks
// every table on disk.
func TestHashGolden(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0x2848d6a4a7b28bc1},
		{"a", 0x596e515f8a2b0771},
		{"abc", 0x9ed1fc8e05ea4fd7},
		{"abcdefg", 0x58cbebbedfc9803f},
		{"abcdefgh", 0x14bc500ea8e6e196},
		{"abcdefghi", 0x286eb3b5e0bf8b30},
		{"hello, world! this is a longer key", 0x594fb5651c7e67a2},
	} {
		if got := Hash([]byte(tc.in)); got != tc.want {
			t.Errorf("Hash(%q) = %#x, want %#x: the hash is persisted and must never change", tc.in, got, tc.want)
		}
	}
}

// TestFilterGolden pins the probe sequence the same way.
func TestFilterGolden(t *testing.T) {
	b := NewBuilder(10)
	b.AddKey([]byte("alpha"))
	b.AddKey([]byte("beta"))
	// 64 bits (the minimum) and k = 6.
	const want = "0040100200f84210" + "06"
	if got := fmt.Sprintf("%x", b.Finish()); got != want {
		t.Errorf("filter = %s, want %s: the probe sequence is persisted and must never change", got, want)
	}
}

func key(i int) []byte {
	return fmt.Appendf(nil, "user/%08d/message", i)
}

func TestNoFalseNegativesAndFPR(t *testing.T) {
	const n = 10000
	b := NewBuilder(10)
	for i := range n {
		b.AddKey(key(i))
		b.AddKey(key(i)) // a second version of the same user key
	}
	f := b.Finish()
	if want := (n*10+7)/8 + 1; len(f) != want {
		t.Fatalf("len(filter) = %d, want %d", len(f), want)
	}
	for i := range n {
		if !MayContain(f, key(i)) {
			t.Fatalf("false negative for key %d", i)
		}
	}
	fp := 0
	const probes = 100000
	for i := range probes {
		if MayContain(f, key(n+i)) {
			fp++
		}
	}
	rate := float64(fp) / probes
	t.Logf("false-positive rate %.3f%%", 100*rate)
	if rate >= 0.02 {
		t.Fatalf("false-positive rate %.3f%%, want < 2%%", 100*rate)
	}
}

func TestBinaryKeys(t *testing.T) {
	b := NewBuilder(10)
	var keys [][]byte
	for i := range 5000 {
		k := binary.BigEndian.AppendUint64(nil, uint64(i)*0x9e3779b97f4a7c15)
		keys = append(keys, k[:i%9])
		b.AddKey(k[:i%9])
	}
	f := b.Finish()
	for _, k := range keys {
		if !MayContain(f, k) {
			t.Fatalf("false negative for %x", k)
		}
	}
}

func TestMalformedFilterMatchesEverything(t *testing.T) {
	for _, f := range [][]byte{nil, {}, {6}, {0, 0, 0, 0}, {0, 0, 31}, {0xff, 255}} {
		if !MayContain(f, []byte("k")) {
			t.Errorf("MayContain(%x) = false, want true for a malformed filter", f)
		}
	}
}

func TestEmptyBuilder(t *testing.T) {
	f := NewBuilder(10).Finish()
	if MayContain(f, []byte("x")) {
		t.Errorf("a filter of no keys matched a key")
	}
}

func TestBuilderReuse(t *testing.T) {
	b := NewBuilder(10)
	b.AddKey([]byte("a"))
	f1 := b.Finish()
	b.AddKey([]byte("b"))
	f2 := b.Finish()
	if !MayContain(f1, []byte("a")) || !MayContain(f2, []byte("b")) {
		t.Fatal("false negative after reuse")
	}
	if b.NumKeys() != 0 {
		t.Fatalf("NumKeys after Finish = %d, want 0", b.NumKeys())
	}
}

func BenchmarkHash(b *testing.B) {
	k := []byte("user/00001234/mailbox/INBOX/uid")
	b.SetBytes(int64(len(k)))
	for b.Loop() {
		Hash(k)
	}
}

func BenchmarkMayContain(b *testing.B) {
	bl := NewBuilder(10)
	for i := range 100000 {
		bl.AddKey(key(i))
	}
	f := bl.Finish()
	k := key(200000)
	for b.Loop() {
		MayContain(f, k)
	}
}
