package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// encodeRecord appends the record carrying p to dst.
func encodeRecord(dst, p []byte) []byte { return appendRecord(dst, p, crcOf(p)) }

// encode returns a log holding the given payloads and the end offset of
// each record.
func encode(payloads ...[]byte) (log []byte, ends []int) {
	for _, p := range payloads {
		log = encodeRecord(log, p)
		ends = append(ends, len(log))
	}
	return log, ends
}

// readAll reads r to its first error and returns copies of the payloads.
func readAll(r *Reader) ([][]byte, error) {
	var out [][]byte
	for {
		p, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(p))
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n+7)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n:n]
}

// smallLog returns a log of a few records of assorted sizes, including an
// empty one, with random payloads.
func smallLog(rng *rand.Rand) (log []byte, payloads [][]byte, ends []int) {
	for _, n := range []int{5, 0, 1, 31, 12, 200, 3} {
		payloads = append(payloads, randBytes(rng, n))
	}
	log, ends = encode(payloads...)
	return log, payloads, ends
}

func TestReaderEmpty(t *testing.T) {
	r := NewReader(bytes.NewReader(nil))
	_, err := r.Next()
	require.Equal(t, io.EOF, err)
	_, err = r.Next()
	require.Equal(t, io.EOF, err, "errors must be sticky")
	require.Zero(t, r.Offset())
}

func TestReaderEmptyPayloadHeaderIsNotZero(t *testing.T) {
	h := encodeRecord(nil, nil)
	require.NotEqual(t, make([]byte, HeaderLen), h, "a zeroed header must never be a valid record")
	require.Equal(t, zeroHeaderCRC, binary.LittleEndian.Uint32(h[8:12]))
}

func TestRoundTripRandomSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var payloads [][]byte
	total := 0
	for total < 8<<20 {
		var n int
		switch rng.IntN(4) {
		case 0:
			n = rng.IntN(16)
		case 1:
			n = rng.IntN(1 << 10)
		case 2:
			n = rng.IntN(64 << 10)
		default:
			n = rng.IntN(1<<20 + 1)
		}
		payloads = append(payloads, randBytes(rng, n))
		total += n
	}
	payloads = append(payloads, nil, make([]byte, 1<<20)) // the extremes

	f := &memFile{}
	w := NewWriter(f)
	var ends []int64
	for _, p := range payloads {
		end, err := w.Append(p)
		require.NoError(t, err)
		ends = append(ends, end)
	}
	require.NoError(t, w.Close())
	data, durable := f.snapshot()
	require.Equal(t, len(data), durable, "Close must sync everything")
	require.Equal(t, int64(len(data)), ends[len(ends)-1])

	for name, rd := range map[string]io.Reader{
		"whole":   bytes.NewReader(data),
		"onebyte": iotest.OneByteReader(bytes.NewReader(data[:min(len(data), 1<<20)])),
		"half":    iotest.HalfReader(bytes.NewReader(data)),
		"dataerr": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(rd)
			for i, p := range payloads {
				if name == "onebyte" && ends[i] > 1<<20 {
					break // a byte at a time is slow; the first records suffice
				}
				got, err := r.Next()
				require.NoError(t, err, "record %d", i)
				require.True(t, bytes.Equal(p, got), "record %d: payload differs", i)
				require.Equal(t, ends[i], r.Offset())
			}
			if name != "onebyte" {
				_, err := r.Next()
				require.Equal(t, io.EOF, err)
			}
		})
	}
}

func TestReaderTruncatedAtEveryOffset(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	log, payloads, ends := smallLog(rng)
	for cut := 0; cut <= len(log); cut++ {
		r := NewReader(bytes.NewReader(log[:cut]))
		got, err := readAll(r)
		whole := 0
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		require.Len(t, got, whole, "cut at %d", cut)
		for i := range got {
			require.Equal(t, payloads[i], got[i], "cut at %d: record %d", cut, i)
		}
		atBoundary := cut == 0 || (whole > 0 && ends[whole-1] == cut)
		if atBoundary {
			require.Equal(t, io.EOF, err, "cut at %d", cut)
		} else {
			require.ErrorIs(t, err, ErrTornTail, "cut at %d", cut)
			require.NotErrorIs(t, err, base.ErrCorruption, "cut at %d", cut)
		}
		if whole > 0 {
			require.Equal(t, int64(ends[whole-1]), r.Offset(), "cut at %d", cut)
		} else {
			require.Zero(t, r.Offset())
		}
	}
}

// TestReaderFlippedByte flips each byte of a log in turn: a flip inside any
// record but the last is corruption (whole records follow it), a flip in
// the last record is a torn tail.
func TestReaderFlippedByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	log, payloads, ends := smallLog(rng)
	last := ends[len(ends)-2] // offset of the last record
	for i := range log {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(log)
			bad[i] ^= mask
			r := NewReader(bytes.NewReader(bad))
			got, err := readAll(r)
			rec := 0
			for ends[rec] <= i {
				rec++
			}
			require.Len(t, got, rec, "flip at %d", i)
			for j := range got {
				require.Equal(t, payloads[j], got[j])
			}
			start := 0
			if rec > 0 {
				start = ends[rec-1]
			}
			require.Equal(t, int64(start), r.Offset())
			require.ErrorContains(t, err, fmt.Sprintf("at offset %d", start))
			if i < last {
				require.ErrorIs(t, err, base.ErrCorruption, "flip at %d", i)
				require.NotErrorIs(t, err, ErrTornTail, "flip at %d", i)
				require.ErrorContains(t, err, fmt.Sprintf("valid record starts at offset %d", ends[rec]))
			} else {
				require.ErrorIs(t, err, ErrTornTail, "flip at %d", i)
				require.NotErrorIs(t, err, base.ErrCorruption, "flip at %d", i)
			}
		}
	}
}

func TestReaderZeroedTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	log, payloads, ends := smallLog(rng)
	for _, zeros := range []int{1, HeaderLen - 1, HeaderLen, HeaderLen + 1, 4096, 1 << 20} {
		for _, keep := range []int{len(ends), len(ends) - 1, 0} {
			prefix := 0
			if keep > 0 {
				prefix = ends[keep-1]
			}
			data := append(bytes.Clone(log[:prefix]), make([]byte, zeros)...)
			r := NewReader(bytes.NewReader(data))
			got, err := readAll(r)
			require.ErrorIs(t, err, ErrTornTail, "zeros=%d keep=%d", zeros, keep)
			require.Len(t, got, keep)
			for i := range got {
				require.Equal(t, payloads[i], got[i])
			}
			require.Equal(t, int64(prefix), r.Offset())
		}
	}

	// A torn record followed by zeros is a torn tail too.
	data := append(bytes.Clone(log[:ends[2]+7]), make([]byte, 100)...)
	_, err := readAll(NewReader(bytes.NewReader(data)))
	require.ErrorIs(t, err, ErrTornTail)
}

func TestReaderZeroedMiddle(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	log, _, ends := smallLog(rng)
	// Zero the third record entirely: the records after it are intact.
	bad := bytes.Clone(log)
	clear(bad[ends[1]:ends[2]])
	r := NewReader(bytes.NewReader(bad))
	got, err := readAll(r)
	require.Len(t, got, 2)
	require.ErrorIs(t, err, base.ErrCorruption)
	require.Equal(t, int64(ends[1]), r.Offset())
}

func TestReaderGarbageTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	log, _, ends := smallLog(rng)
	data := append(bytes.Clone(log), randBytes(rng, 64<<10)...)
	r := NewReader(bytes.NewReader(data))
	got, err := readAll(r)
	require.Len(t, got, len(ends))
	require.ErrorIs(t, err, ErrTornTail)
}

// TestReaderEmbeddedRecord checks that a record whose payload is itself a
// log does not turn a torn tail into corruption when the payload is cut
// short or damaged: a valid header makes the reader skip the payload.
func TestReaderEmbeddedRecord(t *testing.T) {
	inner, _ := encode([]byte("inner one"), []byte("inner two"))
	outer := append([]byte("prefix"), inner...)
	log, ends := encode([]byte("first"), outer)

	_, err := readAll(NewReader(bytes.NewReader(log[:len(log)-1])))
	require.ErrorIs(t, err, ErrTornTail, "cut short")

	bad := bytes.Clone(log)
	bad[ends[0]+HeaderLen] ^= 1 // the "p" of "prefix"
	_, err = readAll(NewReader(bytes.NewReader(bad)))
	require.ErrorIs(t, err, ErrTornTail, "damaged payload")
}

func TestReaderLengthLimit(t *testing.T) {
	// A header with a valid CRC claiming more than MaxPayload is invalid.
	var h [HeaderLen]byte
	binary.LittleEndian.PutUint32(h[4:8], MaxPayload+1)
	binary.LittleEndian.PutUint32(h[8:12], crcOf(h[:8]))
	log, _ := encode([]byte("ok"))
	data := append(h[:], log...)
	_, err := readAll(NewReader(bytes.NewReader(data)))
	require.ErrorIs(t, err, base.ErrCorruption, "a valid record follows the oversized header")

	// A valid header claiming MaxPayload bytes in a short file is a torn
	// tail, and reading it allocates about the file's size, not 1 GiB.
	binary.LittleEndian.PutUint32(h[4:8], MaxPayload)
	binary.LittleEndian.PutUint32(h[8:12], crcOf(h[:8]))
	data = append(h[:], make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = readAll(NewReader(bytes.NewReader(data)))
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTornTail)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
}

type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestReaderUnderlyingError(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	log, _, ends := smallLog(rng)
	boom := errors.New("boom")
	for _, cut := range []int{0, ends[0], ends[0] + 3, len(log)} {
		r := NewReader(&errAfter{r: bytes.NewReader(log[:cut]), err: boom})
		_, err := readAll(r)
		require.ErrorIs(t, err, boom, "cut %d", cut)
		require.NotErrorIs(t, err, ErrTornTail)
		require.NotErrorIs(t, err, base.ErrCorruption)
	}
	// A reader that never makes progress is an error, not a hang.
	_, err := NewReader(zeroReader{}).Next()
	require.ErrorIs(t, err, io.ErrNoProgress)
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// FuzzReader feeds arbitrary bytes to a Reader. It must never panic, every
// record it returns must be a valid record of the input at the offset it
// claims, and it must end with io.EOF exactly at the end of the input, or
// with ErrTornTail or ErrCorruption (never both).
func FuzzReader(f *testing.F) {
	rng := rand.New(rand.NewPCG(15, 16))
	log, _, ends := smallLog(rng)
	f.Add([]byte{})
	f.Add(log)
	f.Add(log[:ends[2]+5])
	f.Add(append(bytes.Clone(log), make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var off int64
		for {
			p, err := r.Next()
			if err != nil {
				switch {
				case err == io.EOF:
					if r.Offset() != int64(len(data)) {
						t.Fatalf("io.EOF at offset %d of %d", r.Offset(), len(data))
					}
				case errors.Is(err, ErrTornTail) && errors.Is(err, base.ErrCorruption):
					t.Fatalf("both torn tail and corruption: %v", err)
				case !errors.Is(err, ErrTornTail) && !errors.Is(err, base.ErrCorruption):
					t.Fatalf("unexpected error: %v", err)
				}
				if r.Offset() != off {
					t.Fatalf("Offset %d after the last record ending at %d", r.Offset(), off)
				}
				return
			}
			want := encodeRecord(nil, p)
			end := off + int64(len(want))
			if end > int64(len(data)) || !bytes.Equal(data[off:end], want) {
				t.Fatalf("record at offset %d is not a valid encoding of its payload", off)
			}
			if r.Offset() != end {
				t.Fatalf("Offset %d, want %d", r.Offset(), end)
			}
			off = end
		}
	})
}

// BenchmarkReaderScan measures the search for a valid record behind a bad
// one, over 16 MiB of random bytes, of zeros, and of small records whose
// headers are all damaged.
func BenchmarkReaderScan(b *testing.B) {
	rng := rand.New(rand.NewPCG(17, 18))
	var damaged []byte
	for len(damaged) < 16<<20 {
		off := len(damaged)
		damaged = encodeRecord(damaged, randBytes(rng, rng.IntN(64)))
		damaged[off+8] ^= 1
	}
	for name, data := range map[string][]byte{
		"random":  randBytes(rng, 16<<20),
		"zeros":   make([]byte, 16<<20),
		"damaged": damaged,
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if findRecord(data) >= 0 {
					b.Fatal("found a valid record")
				}
			}
		})
	}
}

// BenchmarkReader measures reading 1 KiB records.
func BenchmarkReader(b *testing.B) {
	rng := rand.New(rand.NewPCG(19, 20))
	p := randBytes(rng, 1<<10)
	var log []byte
	for range 16 << 10 {
		log = encodeRecord(log, p)
	}
	b.SetBytes(int64(len(log)))
	for b.Loop() {
		r := NewReader(bytes.NewReader(log))
		for {
			if _, err := r.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
