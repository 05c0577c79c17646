package sstable

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// exerciseBlock runs every blockIter operation over data. It returns the
// first error, which must wrap base.ErrCorruption.
func exerciseBlock(data []byte) error {
	var it blockIter
	if err := it.init(data); err != nil {
		return err
	}
	var keys [][]byte
	for ok := it.first(); ok; ok = it.next() {
		if len(keys) < 8 {
			keys = append(keys, append([]byte(nil), it.userKey()...))
		}
		_ = it.ikey()
	}
	if it.err != nil {
		return it.err
	}
	for ok := it.last(); ok; ok = it.prev() {
		_ = it.ikey()
	}
	if it.err != nil {
		return it.err
	}
	keys = append(keys, nil, []byte("m"), []byte{0xff, 0xff})
	for _, k := range keys {
		for _, seek := range []func([]byte) bool{it.seekGE, it.seekLT} {
			ok := seek(k)
			for i := 0; ok && i < 20; i++ {
				if i%3 == 2 {
					ok = it.prev()
				} else {
					ok = it.next()
				}
			}
			if it.err != nil {
				return it.err
			}
		}
	}
	if _, err := parseIndex(data, 1<<40); err != nil {
		return err
	}
	if _, err := parseRangeDels(data); err != nil {
		return err
	}
	return nil
}

// FuzzBlockDecode decodes arbitrary bytes as a block's contents (as if they
// had passed the checksum): no panic, and every error is corruption.
func FuzzBlockDecode(f *testing.F) {
	for _, seed := range blockSeeds() {
		f.Add(seed)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := exerciseBlock(data); err != nil && !errors.Is(err, base.ErrCorruption) {
			t.Fatalf("error %v does not wrap ErrCorruption", err)
		}
	})
}

// FuzzReader opens arbitrary bytes as a table and reads all of it: no
// panic, and every error is corruption. It reads each input twice: as is,
// and with its checksums recomputed so that mutations reach the decoding
// behind them.
func FuzzReader(f *testing.F) {
	for _, seed := range tableSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range [][]byte{data, fixChecksums(data)} {
			_, err := readAll(d, nil)
			if err != nil && !errors.Is(err, base.ErrCorruption) && !errors.Is(err, errInconsistent) {
				t.Fatalf("error %v does not wrap ErrCorruption", err)
			}
		}
	})
}

// fixChecksums returns a copy of data with the footer's magic, version and
// checksum and the checksums of every block it can locate recomputed.
func fixChecksums(data []byte) []byte {
	data = slices.Clone(data)
	if len(data) < footerLen {
		return data
	}
	size := uint64(len(data))
	ftr := data[size-footerLen:]
	binary.LittleEndian.PutUint32(ftr[64:], formatVersion)
	binary.LittleEndian.PutUint32(ftr[68:], crc32.Checksum(ftr[:68], castagnoli))
	binary.LittleEndian.PutUint64(ftr[72:], tableMagic)
	ft, err := decodeFooter(ftr, size)
	if err != nil {
		return data
	}
	fix := func(h handle) []byte {
		if !h.within(size - footerLen) {
			return nil
		}
		raw := data[h.offset : h.offset+h.length+blockTrailerLen]
		n := len(raw) - blockTrailerLen
		binary.LittleEndian.PutUint32(raw[n+1:], blockChecksum(raw[:n], raw[n]))
		return raw
	}
	fix(ft.filter)
	fix(ft.rangeDel)
	if raw := fix(ft.index); raw != nil {
		if block, err := decodeStored(raw, nil); err == nil {
			if index, err := parseIndex(block, size-footerLen); err == nil {
				for _, e := range index {
					fix(e.h)
				}
			}
		}
	}
	return data
}

// seedEntries returns entries for seeds. Seeds are kept to a few hundred
// bytes: the fuzzer minimizes every new interesting input, which takes
// long for large ones.
func seedEntries() []kv {
	entries := genEntries(rand.New(rand.NewPCG(31, 32)), 24)
	for i := range entries {
		e := &entries[i]
		e.key.UserKey = e.key.UserKey[:min(len(e.key.UserKey), 12)]
		e.value = e.value[:min(len(e.value), 8)]
	}
	// Truncation may have reordered or duplicated keys.
	slices.SortFunc(entries, func(a, b kv) int { return base.CompareInternal(a.key, b.key) })
	return slices.CompactFunc(entries, func(a, b kv) bool { return base.CompareInternal(a.key, b.key) == 0 })
}

// tableSeeds returns small real tables: several blocks, compressed with
// tombstones, and empty.
func tableSeeds() [][]byte {
	entries := seedEntries()
	ts := []base.RangeTombstone{{Start: []byte("a"), End: []byte("c"), Seq: 9}, {Start: []byte("b"), End: []byte("z"), Seq: 4}}
	var seeds [][]byte
	for _, tc := range []struct {
		n    int
		ts   []base.RangeTombstone
		opts WriterOptions
	}{
		{20, nil, WriterOptions{BlockSize: 128, RestartInterval: 4, Compression: NoCompression}},
		{12, ts, WriterOptions{BlockSize: 256, Compression: S2Compression}},
		{8, ts, WriterOptions{Compression: ZstdCompression, BloomBitsPerKey: -1}},
		{0, nil, WriterOptions{}},
	} {
		f := &memFile{}
		w := NewWriter(f, tc.opts)
		for _, e := range entries[:tc.n] {
			if err := w.Add(e.key, e.value); err != nil {
				panic(err)
			}
		}
		for _, t := range tc.ts {
			if err := w.AddRangeTombstone(t); err != nil {
				panic(err)
			}
		}
		if _, err := w.Close(); err != nil {
			panic(err)
		}
		seeds = append(seeds, f.data)
	}
	return seeds
}

// blockSeeds returns real block contents: data blocks with restart
// intervals 4 and 1, an index block and a range-del block.
func blockSeeds() [][]byte {
	entries := seedEntries()
	var seeds [][]byte
	for _, ri := range []int{4, 1} {
		bw := blockWriter{restartInterval: ri}
		var key []byte
		for _, e := range entries[:12] {
			key = e.key.Append(key[:0])
			bw.add(key, e.value)
		}
		seeds = append(seeds, append([]byte(nil), bw.finish()...))
	}
	index := blockWriter{restartInterval: 1}
	var key []byte
	for i, e := range entries[:6] {
		key = e.key.Append(key[:0])
		index.add(key, []byte{byte(i * 100), 100})
	}
	seeds = append(seeds, index.finish())
	rd := blockWriter{restartInterval: 16}
	for _, t := range []string{"a:c", "b:q", "x:z"} {
		key = base.MakeInternalKey([]byte(t[:1]), 5, base.KindRangeDelete).Append(key[:0])
		rd.add(key, []byte(t[2:]))
	}
	seeds = append(seeds, rd.finish())
	return seeds
}

// TestUpdateFuzzSeeds rewrites the checked-in seed corpora when run with
// -update-fuzz-seeds.
func TestUpdateFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	for name, seeds := range map[string][][]byte{"FuzzReader": tableSeeds(), "FuzzBlockDecode": blockSeeds()} {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBlockSeedsDecode checks that real blocks decode consistently in both
// directions.
func TestBlockSeedsDecode(t *testing.T) {
	for i, data := range blockSeeds()[:2] {
		var it blockIter
		if err := it.init(data); err != nil {
			t.Fatal(err)
		}
		var fwd []string
		for ok := it.first(); ok; ok = it.next() {
			fwd = append(fwd, fmt.Sprintf("%s=%x", it.ikey(), it.val))
		}
		var bwd []string
		for ok := it.last(); ok; ok = it.prev() {
			bwd = append(bwd, fmt.Sprintf("%s=%x", it.ikey(), it.val))
		}
		if it.err != nil || len(fwd) != 12 || len(bwd) != 12 {
			t.Fatalf("block %d: %d forward, %d backward entries, err %v", i, len(fwd), len(bwd), it.err)
		}
		for j := range fwd {
			if fwd[j] != bwd[len(bwd)-1-j] {
				t.Fatalf("block %d: entry %d forward %s, backward %s", i, j, fwd[j], bwd[len(bwd)-1-j])
			}
		}
	}
}
