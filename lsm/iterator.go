package lsm

import (
	"bytes"

	"github.com/mailbricks/mailbricks/lsm/internal/base"
)

// Iterator iterates over the live keys of a DB or snapshot in key order, as
// of the moment it was created: writes made after that are not seen.
//
// Positioning methods return whether the iterator is positioned at a key.
// Key and Value are valid until the next positioning call; copy what you
// keep. An Iterator must be closed, and closed before its DB. It is not safe
// for concurrent use.
type Iterator struct {
	rs           *readState
	snap         uint64
	merger       *Merger
	iter         *mergingIter
	tombs        *tombstoneSet
	lower, upper []byte

	key, value []byte
	valid      bool
	// iterOK reports whether iter is positioned at an entry.
	iterOK bool
	// needSkip is set when iter is still at the entry that produced the
	// current key: the next forward move must first skip the key's older
	// versions.
	needSkip bool
	skipBuf  []byte
	valBuf   []byte
	operands [][]byte
	err      error
	closed   bool
}

// First moves to the first key (at or after the lower bound).
func (it *Iterator) First() bool {
	if it.closed {
		return false
	}
	if it.lower != nil {
		return it.forward(it.iter.SeekGE(it.lower), nil)
	}
	return it.forward(it.iter.First(), nil)
}

// Last moves to the last key (before the upper bound).
func (it *Iterator) Last() bool {
	if it.closed {
		return false
	}
	return it.backward(it.upper, it.upper != nil)
}

// SeekGE moves to the first key >= key.
func (it *Iterator) SeekGE(key []byte) bool {
	if it.closed {
		return false
	}
	if it.lower != nil && bytes.Compare(key, it.lower) < 0 {
		key = it.lower
	}
	return it.forward(it.iter.SeekGE(key), nil)
}

// SeekLT moves to the last key < key.
func (it *Iterator) SeekLT(key []byte) bool {
	if it.closed {
		return false
	}
	if it.upper != nil && bytes.Compare(key, it.upper) > 0 {
		key = it.upper
	}
	if it.lower != nil && bytes.Compare(key, it.lower) <= 0 {
		it.iterOK = false
		return it.stop()
	}
	// The target may alias it.key; backward copies before moving.
	return it.backward(key, true)
}

// Next moves to the next key.
func (it *Iterator) Next() bool {
	if !it.valid {
		return false
	}
	ok := it.iterOK
	if it.needSkip {
		ok = it.skipUserKey(it.key)
	}
	return it.forward(ok, nil)
}

// Prev moves to the previous key.
func (it *Iterator) Prev() bool {
	if !it.valid {
		return false
	}
	return it.backward(it.key, true)
}

// Valid reports whether the iterator is positioned at a key.
func (it *Iterator) Valid() bool { return it.valid }

// Key returns the current key.
func (it *Iterator) Key() []byte { return it.key }

// Value returns the current value.
func (it *Iterator) Value() []byte { return it.value }

// Error returns the error that stopped the iterator, if any. An iterator
// that stops because of corruption returns an error for which
// errors.Is(err, ErrCorruption).
func (it *Iterator) Error() error { return it.err }

// Close releases the iterator. It returns the iterator's error, if any.
// Closing twice is allowed.
func (it *Iterator) Close() error {
	if it.closed {
		return it.err
	}
	it.closed = true
	it.valid = false
	if err := it.iter.Close(); err != nil && it.err == nil {
		it.err = err
	}
	it.rs.unref()
	return it.err
}

func (it *Iterator) stop() bool {
	it.valid = false
	it.needSkip = false
	if err := it.iter.Error(); err != nil && it.err == nil {
		it.err = err
	}
	return false
}

// skipUserKey moves iter past every entry of uk.
func (it *Iterator) skipUserKey(uk []byte) bool {
	it.skipBuf = append(it.skipBuf[:0], uk...)
	ok := it.iter.Next()
	for ok && bytes.Equal(it.iter.Key().UserKey, it.skipBuf) {
		ok = it.iter.Next()
	}
	return ok
}

// forward finds the first live key at or after iter's position. If only is
// non-nil it considers only that user key and reports whether it is live.
func (it *Iterator) forward(ok bool, only []byte) bool {
	it.needSkip = false
	for ok {
		k := it.iter.Key()
		if only != nil {
			if !bytes.Equal(k.UserKey, only) {
				break
			}
		} else if it.upper != nil && bytes.Compare(k.UserKey, it.upper) >= 0 {
			break
		}
		seq := k.SeqNum()
		if seq > it.snap {
			ok = it.iter.Next()
			continue
		}
		switch k.Kind() {
		case base.KindSet:
			if it.tombs.deleted(k.UserKey, seq, it.snap) {
				ok = it.skipUserKey(k.UserKey)
				continue
			}
			it.key = append(it.key[:0], k.UserKey...)
			it.value = it.iter.Value()
			it.valid, it.iterOK, it.needSkip = true, true, true
			return true
		case base.KindMerge:
			if it.tombs.deleted(k.UserKey, seq, it.snap) {
				ok = it.skipUserKey(k.UserKey)
				continue
			}
			it.key = append(it.key[:0], k.UserKey...)
			return it.resolveMerge()
		default:
			// DEL, or a RANGEDEL that a table should not hold among its
			// point keys: the key is not live.
			ok = it.skipUserKey(k.UserKey)
		}
	}
	return it.stop()
}

// resolveMerge folds the merge operands of it.key, starting at iter's
// current entry, leaving iter past the key.
func (it *Iterator) resolveMerge() bool {
	it.operands = it.operands[:0]
	var baseVal []byte
	hasBase := false
	ok := true
	for ok {
		k := it.iter.Key()
		if !bytes.Equal(k.UserKey, it.key) {
			break
		}
		seq := k.SeqNum()
		if seq > it.snap {
			ok = it.iter.Next()
			continue
		}
		if it.tombs.deleted(k.UserKey, seq, it.snap) {
			ok = it.skipUserKey(it.key)
			break
		}
		kind := k.Kind()
		if kind == base.KindMerge {
			it.operands = append(it.operands, append([]byte(nil), it.iter.Value()...))
			ok = it.iter.Next()
			continue
		}
		if kind == base.KindSet {
			baseVal, hasBase = append([]byte(nil), it.iter.Value()...), true
		}
		ok = it.skipUserKey(it.key)
		break
	}
	if err := it.iter.Error(); err != nil {
		it.err = err
		return it.stop()
	}
	v, err := fold(it.merger, it.key, baseVal, hasBase, it.operands)
	if err != nil {
		it.err = err
		return it.stop()
	}
	it.valBuf = v
	it.value = v
	it.valid, it.iterOK, it.needSkip = true, ok, false
	return true
}

// backward finds the last live key before target, or the very last key
// when bounded is false.
//
// Each step finds the largest user key below target across all sources,
// then resolves that key's versions with a forward seek. A key with no live
// version moves the target below it and the search goes on.
func (it *Iterator) backward(target []byte, bounded bool) bool {
	t := append([]byte(nil), target...)
	for {
		var ok bool
		if !bounded {
			ok = it.iter.Last()
		} else {
			ok = it.iter.SeekLT(t)
		}
		bounded = true
		if !ok {
			return it.stop()
		}
		uk := append([]byte(nil), it.iter.Key().UserKey...)
		if it.lower != nil && bytes.Compare(uk, it.lower) < 0 {
			return it.stop()
		}
		if it.forward(it.iter.SeekGE(uk), uk) {
			return true
		}
		if it.err != nil {
			return false
		}
		t = uk
	}
}

// fold combines merge operands (newest first) onto a base value.
func fold(m *Merger, key, baseVal []byte, hasBase bool, operands [][]byte) ([]byte, error) {
	if len(operands) == 0 {
		return baseVal, nil
	}
	if m.MergeAll != nil && len(operands) >= 2 && (hasBase || len(operands) >= 3) {
		vals := make([][]byte, 0, len(operands)+1)
		if hasBase {
			vals = append(vals, baseVal)
		}
		for i := len(operands) - 1; i >= 0; i-- {
			vals = append(vals, operands[i])
		}
		return m.MergeAll(key, vals)
	}
	i := len(operands) - 1
	acc := baseVal
	if !hasBase {
		acc = operands[i]
		i--
	}
	for ; i >= 0; i-- {
		v, err := m.Merge(key, acc, operands[i])
		if err != nil {
			return nil, err
		}
		acc = v
	}
	return acc, nil
}
