package manifest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// requireMetaEqual compares the persisted fields of two tables. FileMetadata
// is compared field by field, never with == or by value, because it will
// carry runtime fields.
func requireMetaEqual(t testing.TB, want, got *FileMetadata, msgAndArgs ...any) {
	t.Helper()
	require.NotNil(t, got, msgAndArgs...)
	require.Equal(t, want.FileNum, got.FileNum, msgAndArgs...)
	require.Equal(t, want.Size, got.Size, msgAndArgs...)
	require.Zero(t, base.CompareInternal(want.Smallest, got.Smallest), msgAndArgs...)
	require.Zero(t, base.CompareInternal(want.Largest, got.Largest), msgAndArgs...)
	require.Equal(t, want.SmallestSeq, got.SmallestSeq, msgAndArgs...)
	require.Equal(t, want.LargestSeq, got.LargestSeq, msgAndArgs...)
	require.Equal(t, want.HasRangeDels, got.HasRangeDels, msgAndArgs...)
}

func requireEditEqual(t testing.TB, want, got *VersionEdit) {
	t.Helper()
	require.Equal(t, want.ComparerName, got.ComparerName)
	require.Equal(t, want.MergerName, got.MergerName)
	require.Equal(t, want.HasLogNumber, got.HasLogNumber)
	require.Equal(t, want.HasNextFileNumber, got.HasNextFileNumber)
	require.Equal(t, want.HasLastSeq, got.HasLastSeq)
	require.Equal(t, want.LogNumber, got.LogNumber)
	require.Equal(t, want.NextFileNumber, got.NextFileNumber)
	require.Equal(t, want.LastSeq, got.LastSeq)
	require.Equal(t, len(want.DeletedFiles), len(got.DeletedFiles))
	for i := range want.DeletedFiles {
		require.Equal(t, want.DeletedFiles[i], got.DeletedFiles[i])
	}
	require.Equal(t, len(want.NewFiles), len(got.NewFiles))
	for i := range want.NewFiles {
		require.Equal(t, want.NewFiles[i].Level, got.NewFiles[i].Level)
		requireMetaEqual(t, want.NewFiles[i].Meta, got.NewFiles[i].Meta, "new file %d", i)
	}
}

func randKey(rng *rand.Rand, seq uint64) base.InternalKey {
	k := make([]byte, rng.IntN(20))
	for i := range k {
		k[i] = byte('a' + rng.IntN(26))
	}
	return base.MakeInternalKey(k, seq, base.Kind(rng.IntN(int(base.KindMax)+1)))
}

func randMeta(rng *rand.Rand, num uint64) *FileMetadata {
	s1, s2 := rng.Uint64N(base.SeqNumMax+1), rng.Uint64N(base.SeqNumMax+1)
	lo, hi := min(s1, s2), max(s1, s2)
	a, b := randKey(rng, lo), randKey(rng, hi)
	if base.CompareInternal(a, b) > 0 {
		a, b = b, a
	}
	return &FileMetadata{
		FileNum:      num,
		Size:         rng.Uint64() >> rng.IntN(64),
		Smallest:     a,
		Largest:      b,
		SmallestSeq:  lo,
		LargestSeq:   hi,
		HasRangeDels: rng.IntN(2) == 0,
	}
}

func randEdit(rng *rand.Rand) *VersionEdit {
	e := &VersionEdit{}
	if rng.IntN(2) == 0 {
		e.ComparerName = "leveldb.BytewiseComparator"
	}
	if rng.IntN(3) == 0 {
		e.MergerName = strings.Repeat("m", 1+rng.IntN(200))
	}
	if rng.IntN(2) == 0 {
		e.LogNumber, e.HasLogNumber = rng.Uint64()>>rng.IntN(64), true
	}
	if rng.IntN(2) == 0 {
		e.NextFileNumber, e.HasNextFileNumber = rng.Uint64()>>rng.IntN(64), true
	}
	if rng.IntN(2) == 0 {
		e.LastSeq, e.HasLastSeq = rng.Uint64N(base.SeqNumMax+1), true
	}
	for range rng.IntN(5) {
		e.DeletedFiles = append(e.DeletedFiles, DeletedFileEntry{Level: rng.IntN(NumLevels), FileNum: rng.Uint64()})
	}
	for range rng.IntN(5) {
		e.NewFiles = append(e.NewFiles, NewFileEntry{Level: rng.IntN(NumLevels), Meta: randMeta(rng, rng.Uint64())})
	}
	return e
}

func TestVersionEditRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		want := randEdit(rng)
		enc := want.Encode()
		var got VersionEdit
		require.NoError(t, got.Decode(enc), "edit %d", i)
		requireEditEqual(t, want, &got)
		require.Equal(t, enc, got.Encode(), "edit %d: encoding is canonical", i)
	}
}

func TestVersionEditEmpty(t *testing.T) {
	var e VersionEdit
	enc := e.Encode()
	require.Equal(t, []byte{tagEnd}, enc)
	require.NoError(t, e.Decode(enc))
	require.ErrorIs(t, e.Decode(nil), base.ErrCorruption, "the end tag is required")
}

func TestVersionEditDecodeTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		enc := randEdit(rng).Encode()
		for n := range len(enc) {
			var e VersionEdit
			err := e.Decode(enc[:n])
			require.ErrorIs(t, err, base.ErrCorruption, "prefix of %d of %d bytes", n, len(enc))
			requireEditEqual(t, &VersionEdit{}, &e)
		}
	}
}

func TestVersionEditDecodeCopies(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	want := &VersionEdit{ComparerName: "cmp", NewFiles: []NewFileEntry{{Level: 3, Meta: randMeta(rng, 9)}}}
	enc := want.Encode()
	var got VersionEdit
	require.NoError(t, got.Decode(enc))
	clear(enc)
	requireEditEqual(t, want, &got)
}

func TestVersionEditDecodeResets(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	e := randEdit(rng)
	e.HasLogNumber, e.LogNumber = true, 5
	require.NoError(t, e.Decode((&VersionEdit{LastSeq: 3, HasLastSeq: true}).Encode()))
	requireEditEqual(t, &VersionEdit{LastSeq: 3, HasLastSeq: true}, e)
}

// enc builds an encoding by hand: uint64 values are uvarints, strings and
// []byte are length-prefixed, and raw is copied as is.
type raw []byte

func enc(fields ...any) []byte {
	var b []byte
	for _, f := range fields {
		switch f := f.(type) {
		case int:
			b = binary.AppendUvarint(b, uint64(f))
		case uint64:
			b = binary.AppendUvarint(b, f)
		case string:
			b = appendString(b, f)
		case []byte:
			b = appendString(b, string(f))
		case raw:
			b = append(b, f...)
		default:
			panic(fmt.Sprintf("enc: %T", f))
		}
	}
	return b
}

func key(s string, seq uint64, kind base.Kind) []byte {
	return base.MakeInternalKey([]byte(s), seq, kind).Append(nil)
}

func TestVersionEditDecodeStrict(t *testing.T) {
	a, z := key("a", 5, base.KindSet), key("z", 9, base.KindSet)
	newFile := func(level int, smallest, largest []byte, sSeq, lSeq uint64, flags int) []byte {
		return enc(tagNewFile, level, 12, 1000, smallest, largest, sSeq, lSeq, flags)
	}
	valid := enc(raw(newFile(1, a, z, 5, 9, 1)), tagEnd)
	var e VersionEdit
	require.NoError(t, e.Decode(valid))
	require.True(t, e.NewFiles[0].Meta.HasRangeDels)
	require.Equal(t, "000012:[\"a\"#5,SET-\"z\"#9,SET]", e.NewFiles[0].Meta.String())

	for name, b := range map[string][]byte{
		"unknown tag":             enc(99, tagEnd),
		"unknown tag 8":           enc(8, tagEnd),
		"bytes after end":         enc(tagEnd, 0),
		"repeated log number":     enc(tagLogNumber, 1, tagLogNumber, 1, tagEnd),
		"repeated comparer":       enc(tagComparer, "c", tagComparer, "c", tagEnd),
		"repeated merger":         enc(tagMerger, "m", tagMerger, "m", tagEnd),
		"repeated next file":      enc(tagNextFileNumber, 1, tagNextFileNumber, 2, tagEnd),
		"repeated last seq":       enc(tagLastSeq, 1, tagLastSeq, 2, tagEnd),
		"empty comparer":          enc(tagComparer, "", tagEnd),
		"empty merger":            enc(tagMerger, "", tagEnd),
		"name past end":           enc(tagComparer, 50, raw("abc")),
		"huge name length":        enc(tagComparer, uint64(1<<63), raw("abc")),
		"uvarint overflow":        enc(tagLogNumber, raw(bytes.Repeat([]byte{0xff}, 10)), 1, tagEnd),
		"overlong uvarint":        enc(tagLogNumber, raw{0x81, 0x00}, tagEnd),
		"overlong tag":            enc(raw{0x80, 0x00}),
		"last seq too big":        enc(tagLastSeq, base.SeqNumMax+1, tagEnd),
		"deleted level 7":         enc(tagDeletedFile, 7, 1, tagEnd),
		"deleted huge level":      enc(tagDeletedFile, uint64(1<<63), 1, tagEnd),
		"new file level 7":        enc(raw(newFile(7, a, z, 5, 9, 0)), tagEnd),
		"short smallest key":      enc(raw(newFile(1, []byte("1234567"), z, 5, 9, 0)), tagEnd),
		"empty largest key":       enc(raw(newFile(1, a, nil, 5, 9, 0)), tagEnd),
		"bad kind":                enc(raw(newFile(1, a, key("z", 9, base.Kind(4)), 5, 9, 0)), tagEnd),
		"smallest above largest":  enc(raw(newFile(1, z, a, 5, 9, 0)), tagEnd),
		"smallest seq above":      enc(raw(newFile(1, a, z, 10, 9, 0)), tagEnd),
		"largest seq too big":     enc(raw(newFile(1, a, z, 5, base.SeqNumMax+1, 0)), tagEnd),
		"unknown flags":           enc(raw(newFile(1, a, z, 5, 9, 2)), tagEnd),
		"key length past the end": enc(tagNewFile, 1, 12, 1000, 200, raw(a)),
	} {
		t.Run(name, func(t *testing.T) {
			var e VersionEdit
			err := e.Decode(b)
			require.ErrorIs(t, err, base.ErrCorruption)
			t.Log(err)
		})
	}
}

func TestVersionEditEncodePanics(t *testing.T) {
	require.Panics(t, func() { (&VersionEdit{NewFiles: []NewFileEntry{{Level: 7, Meta: &FileMetadata{}}}}).Encode() })
	require.Panics(t, func() { (&VersionEdit{NewFiles: []NewFileEntry{{Level: 1}}}).Encode() })
	require.Panics(t, func() { (&VersionEdit{DeletedFiles: []DeletedFileEntry{{Level: -1}}}).Encode() })
}

// FuzzVersionEditDecode decodes arbitrary bytes. Decode must never panic;
// an error must wrap ErrCorruption; a decoded edit must re-encode to bytes
// that decode to the same edit and encode to themselves.
func FuzzVersionEditDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 8 {
		f.Add(randEdit(rng).Encode())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e VersionEdit
		if err := e.Decode(b); err != nil {
			if !errors.Is(err, base.ErrCorruption) {
				t.Fatalf("error does not wrap ErrCorruption: %v", err)
			}
			return
		}
		enc := e.Encode()
		var e2 VersionEdit
		if err := e2.Decode(enc); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		requireEditEqual(t, &e, &e2)
		if !bytes.Equal(enc, e2.Encode()) {
			t.Fatal("encoding is not stable")
		}
		if len(enc) != len(b) {
			t.Fatalf("re-encoding has %d bytes, input %d: every value has one encoding", len(enc), len(b))
		}
	})
}

func BenchmarkVersionEditDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	e := &VersionEdit{ComparerName: "leveldb.BytewiseComparator", HasLastSeq: true, LastSeq: 1 << 40}
	for i := range 1000 {
		e.NewFiles = append(e.NewFiles, NewFileEntry{Level: 1 + i%6, Meta: randMeta(rng, uint64(i))})
	}
	data := e.Encode()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var d VersionEdit
		if err := d.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
