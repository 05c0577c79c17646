package lsmqueue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mailbricks/mailbricks/lsm"
)

// ErrStateCorrupt means a state record does not decode.
var ErrStateCorrupt = errors.New("lsmqueue: corrupt state record")

func stateKey(key string) []byte {
	k := make([]byte, 0, 1+len(key))
	k = append(k, spaceState)
	return append(k, key...)
}

// GetState returns the value and version of the state record at key, or
// nil and version 0 when there is none. The value is a copy the caller
// owns.
func (b *Backend) GetState(ctx context.Context, key string) ([]byte, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := b.enter(); err != nil {
		return nil, 0, err
	}
	defer b.leave()
	return b.getState(key)
}

func (b *Backend) getState(key string) ([]byte, int64, error) {
	v, err := b.db.Get(stateKey(key))
	if errors.Is(err, lsm.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if len(v) < 8 {
		return nil, 0, fmt.Errorf("%w: %q", ErrStateCorrupt, key)
	}
	return append([]byte(nil), v[8:]...), int64(binary.BigEndian.Uint64(v)), nil
}

// SetState stores value at key if the record's current version is version
// (0: no record) and reports whether it did; the record's version is then
// version+1. A nil value deletes the record. The write is synced unless
// [Options].StateNoSync is set (see there). Concurrent calls on one key
// are serialised, so exactly one of several writers of the same version
// succeeds.
func (b *Backend) SetState(ctx context.Context, key string, value []byte, version int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if version < 0 {
		return false, fmt.Errorf("lsmqueue: state version %d", version)
	}
	if err := b.enter(); err != nil {
		return false, err
	}
	defer b.leave()
	defer b.claim("s\x00" + key)()
	_, cur, err := b.getState(key)
	if err != nil {
		return false, err
	}
	if cur != version {
		return false, nil
	}
	wo := lsm.Sync
	if b.opts.StateNoSync {
		wo = lsm.NoSync
	}
	k := stateKey(key)
	if value == nil {
		return true, b.db.Delete(k, wo)
	}
	v := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(v, uint64(version+1))
	return true, b.db.Set(k, append(v, value...), wo)
}
