package lsmindex

import (
	"context"

	"github.com/mailbricks/mailbricks"
)

var t0ctx = context.Background()

// SetChunking sets the chunk size and reseal threshold of b, before use.
func SetChunking(b *Backend, docs uint32, reseal int) { b.chunk, b.reseal = docs, reseal }

// Sealed returns the number of sealed chunks of u, loading u.
func Sealed(b *Backend, u mailbricks.UserID) uint32 {
	s, err := b.user(t0ctx, u, false)
	if err != nil {
		return 0
	}
	defer b.release(s, false)
	return s.sealed
}
