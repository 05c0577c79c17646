package sstable

import (
	"hash/crc32"
	"testing"
)

func TestBlockChecksum(t *testing.T) {
	for _, contents := range []string{"", "a", "hello, world", string(make([]byte, 1000))} {
		for _, typ := range []byte{0, 1, 2, 0xff} {
			want := crc32.Checksum(append([]byte(contents), typ), castagnoli)
			if got := blockChecksum([]byte(contents), typ); got != want {
				t.Errorf("blockChecksum(%q, %d) = %#x, want %#x", contents, typ, got, want)
			}
		}
	}
}
