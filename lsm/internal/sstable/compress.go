package sstable

import (
	"runtime"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// Compression is the block compression of a table being written. Tables
// record the compression of each block, so a reader handles all of them
// whatever the writer's setting was.
type Compression int

// The block compressions.
const (
	// DefaultCompression is the zero value; it means [S2Compression].
	DefaultCompression Compression = iota
	// NoCompression stores blocks as they are.
	NoCompression
	// S2Compression compresses blocks with S2, a faster extension of Snappy.
	S2Compression
	// ZstdCompression compresses blocks with zstd at its fastest level.
	ZstdCompression
)

// String returns the name of the compression.
func (c Compression) String() string {
	switch c {
	case DefaultCompression:
		return "default"
	case NoCompression:
		return "none"
	case S2Compression:
		return "s2"
	case ZstdCompression:
		return "zstd"
	}
	return "unknown"
}

// The zstd encoder and decoder are shared by all writers and readers: their
// EncodeAll and DecodeAll are safe for concurrent use and keep a pool of
// GOMAXPROCS internal states. They are built on first use.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			// Blocks are small: a 1 MiB window bounds the history buffer
			// that an encoder allocates for a block above 128 KiB.
			zstd.WithWindowSize(1<<20),
			// Blocks carry their own CRC-32C.
			zstd.WithEncoderCRC(false))
		if err != nil {
			panic("sstable: zstd encoder: " + err.Error())
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(maxBlockSize),
			zstd.IgnoreChecksum(true))
		if err != nil {
			panic("sstable: zstd decoder: " + err.Error())
		}
		return d
	})
)

// compressBlock compresses raw with c into dst's storage and returns the
// block type and the bytes to store: raw itself when compression does not
// save at least 1/8 of its size.
func compressBlock(c Compression, raw, dst []byte) (typ byte, stored, newDst []byte) {
	switch c {
	case S2Compression:
		if n := s2.MaxEncodedLen(len(raw)); cap(dst) < n {
			dst = make([]byte, n)
		}
		dst = s2.Encode(dst[:cap(dst)], raw)
		typ = blockTypeS2
	case ZstdCompression:
		dst = zstdEncoder().EncodeAll(raw, dst[:0])
		typ = blockTypeZstd
	default:
		return blockTypeNone, raw, dst
	}
	if len(dst) > len(raw)-len(raw)/8 {
		return blockTypeNone, raw, dst
	}
	return typ, dst, dst
}

// decompressBlock returns the contents of a stored block of type typ,
// decompressed into dst's storage when needed (growing it, so that the
// result may alias dst) or aliasing stored when it is not compressed.
func decompressBlock(typ byte, stored, dst []byte) ([]byte, error) {
	switch typ {
	case blockTypeNone:
		return stored, nil
	case blockTypeS2:
		n, err := s2.DecodedLen(stored)
		if err != nil || n > maxBlockSize {
			return nil, base.CorruptionErrorf("sstable: bad s2 block header")
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		out, err := s2.Decode(dst[:n], stored)
		if err != nil {
			return nil, base.CorruptionErrorf("sstable: s2 block: %v", err)
		}
		return out, nil
	case blockTypeZstd:
		out, err := zstdDecoder().DecodeAll(stored, dst[:0])
		if err != nil {
			return nil, base.CorruptionErrorf("sstable: zstd block: %v", err)
		}
		if len(out) > maxBlockSize {
			return nil, base.CorruptionErrorf("sstable: zstd block of %d bytes", len(out))
		}
		return out, nil
	}
	return nil, base.CorruptionErrorf("sstable: unknown block type %d", typ)
}
