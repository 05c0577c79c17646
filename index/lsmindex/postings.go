package lsmindex

import (
	"encoding/binary"
	"fmt"
)

// termAcc accumulates one postings chunk for one (field, term) while a
// batch is analyzed. Documents arrive in increasing doc-number order and,
// within a document, positions in increasing order.
type termAcc struct {
	docs, pos []byte
	n         int
	prevDoc   uint32 // doc number of the last finished document
	cur       uint32 // document being added
	has       bool   // cur has positions in pos since posStart
	posStart  int
	lastPos   int
}

// add records that the term occurs in doc at pos.
func (a *termAcc) add(doc uint32, pos int) {
	if a.has && a.cur != doc {
		a.finishDoc()
	}
	if !a.has {
		a.has, a.cur, a.posStart, a.lastPos = true, doc, len(a.pos), 0
		a.pos = binary.AppendUvarint(a.pos, uint64(pos))
		a.lastPos = pos
		return
	}
	if pos <= a.lastPos {
		return // a second token at the same position (address parts)
	}
	a.pos = binary.AppendUvarint(a.pos, uint64(pos-a.lastPos))
	a.lastPos = pos
}

func (a *termAcc) finishDoc() {
	delta := a.cur
	if a.n > 0 {
		delta = a.cur - a.prevDoc
	}
	a.docs = binary.AppendUvarint(a.docs, uint64(delta))
	a.docs = binary.AppendUvarint(a.docs, uint64(len(a.pos)-a.posStart))
	a.prevDoc = a.cur
	a.n++
	a.has = false
}

// chunk returns the encoded chunk.
func (a *termAcc) chunk(dst []byte) []byte {
	if a.has {
		a.finishDoc()
	}
	dst = binary.AppendUvarint(dst, uint64(a.n))
	dst = binary.AppendUvarint(dst, uint64(len(a.docs)))
	dst = binary.AppendUvarint(dst, uint64(len(a.pos)))
	dst = append(dst, a.docs...)
	return append(dst, a.pos...)
}

// cursor walks a postings value document by document, without decoding
// the positions of the documents it passes.
type cursor struct {
	rest      []byte // chunks after the current one
	docs, pos []byte // what is left of the current chunk's sections
	left      uint64 // documents left in the current chunk
	first     bool   // the next document is the chunk's first
	doc       uint32 // current document
	cur       []byte // its positions
	valid     bool
	err       error
}

func newCursor(v []byte) *cursor { return &cursor{rest: v} }

// next moves to the next document; false at the end or on corruption
// (then err is set).
func (c *cursor) next() bool {
	for c.left == 0 {
		if len(c.rest) == 0 {
			c.valid = false
			return false
		}
		b := c.rest
		n, k1 := binary.Uvarint(b)
		docsLen, k2 := uvarintAt(b, k1)
		posLen, k3 := uvarintAt(b, k1+k2)
		if k1 <= 0 || k2 <= 0 || k3 <= 0 {
			return c.fail()
		}
		b = b[k1+k2+k3:]
		if docsLen > uint64(len(b)) || posLen > uint64(len(b))-docsLen || n > docsLen {
			return c.fail()
		}
		c.docs, c.pos, c.rest = b[:docsLen], b[docsLen:docsLen+posLen], b[docsLen+posLen:]
		c.left, c.first = n, true
	}
	d, k := binary.Uvarint(c.docs)
	if k <= 0 {
		return c.fail()
	}
	pl, k2 := uvarintAt(c.docs, k)
	if k2 <= 0 || pl > uint64(len(c.pos)) {
		return c.fail()
	}
	c.docs = c.docs[k+k2:]
	if c.first {
		c.doc, c.first = uint32(d), false
	} else {
		c.doc += uint32(d)
	}
	c.cur, c.pos = c.pos[:pl], c.pos[pl:]
	c.left--
	c.valid = true
	return true
}

func (c *cursor) fail() bool {
	c.err = fmt.Errorf("%w: postings", errCorrupt)
	c.valid, c.rest, c.left = false, nil, 0
	return false
}

// seek moves to the first document >= doc; it reports whether there is
// one.
func (c *cursor) seek(doc uint32) bool {
	if c.valid && c.doc >= doc {
		return true
	}
	for c.next() {
		if c.doc >= doc {
			return true
		}
	}
	return false
}

// positions appends the current document's positions to dst.
func (c *cursor) positions(dst []int) []int {
	b := c.cur
	prev := 0
	for len(b) > 0 {
		d, k := binary.Uvarint(b)
		if k <= 0 {
			break
		}
		b = b[k:]
		prev += int(d)
		dst = append(dst, prev)
	}
	return dst
}

func uvarintAt(b []byte, i int) (uint64, int) {
	if i <= 0 || i > len(b) {
		return 0, 0
	}
	return binary.Uvarint(b[i:])
}

// plist is a decoded postings list: doc numbers in increasing order and,
// when positions were asked for, each document's position bytes.
type plist struct {
	docs []uint32
	pos  [][]byte
}

// decodePostings decodes a postings value. With withPos it also keeps
// each document's position bytes (sub-slices of val).
func decodePostings(val []byte, withPos bool, dst *plist) error {
	dst.docs, dst.pos = dst.docs[:0], dst.pos[:0]
	b := val
	for len(b) > 0 {
		n, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return fmt.Errorf("%w: postings chunk header", errCorrupt)
		}
		docsLen, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 {
			return fmt.Errorf("%w: postings chunk header", errCorrupt)
		}
		posLen, k3 := binary.Uvarint(b[k1+k2:])
		if k3 <= 0 {
			return fmt.Errorf("%w: postings chunk header", errCorrupt)
		}
		b = b[k1+k2+k3:]
		if docsLen > uint64(len(b)) || posLen > uint64(len(b))-docsLen || n > docsLen {
			return fmt.Errorf("%w: postings chunk length", errCorrupt)
		}
		docs, pos := b[:docsLen], b[docsLen:docsLen+posLen]
		b = b[docsLen+posLen:]
		var doc uint32
		for i := uint64(0); i < n; i++ {
			d, k := binary.Uvarint(docs)
			if k <= 0 {
				return fmt.Errorf("%w: postings doc", errCorrupt)
			}
			docs = docs[k:]
			pl, k := binary.Uvarint(docs)
			if k <= 0 || pl > uint64(len(pos)) {
				return fmt.Errorf("%w: postings doc", errCorrupt)
			}
			docs = docs[k:]
			if i == 0 {
				doc = uint32(d)
			} else {
				doc += uint32(d)
			}
			if len(dst.docs) > 0 && doc <= dst.docs[len(dst.docs)-1] {
				return fmt.Errorf("%w: postings out of order", errCorrupt)
			}
			dst.docs = append(dst.docs, doc)
			if withPos {
				dst.pos = append(dst.pos, pos[:pl])
			}
			pos = pos[pl:]
		}
	}
	return nil
}

// eachDoc calls fn with each doc number of a postings value, skipping the
// positions.
func eachDoc(val []byte, fn func(uint32)) error {
	b := val
	for len(b) > 0 {
		n, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return fmt.Errorf("%w: postings chunk header", errCorrupt)
		}
		docsLen, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 {
			return fmt.Errorf("%w: postings chunk header", errCorrupt)
		}
		posLen, k3 := binary.Uvarint(b[k1+k2:])
		if k3 <= 0 {
			return fmt.Errorf("%w: postings chunk header", errCorrupt)
		}
		b = b[k1+k2+k3:]
		if docsLen > uint64(len(b)) || posLen > uint64(len(b))-docsLen || n > docsLen {
			return fmt.Errorf("%w: postings chunk length", errCorrupt)
		}
		docs := b[:docsLen]
		b = b[docsLen+posLen:]
		var doc uint32
		for i := uint64(0); i < n; i++ {
			d, k := binary.Uvarint(docs)
			if k <= 0 {
				return fmt.Errorf("%w: postings doc", errCorrupt)
			}
			docs = docs[k:]
			_, k = binary.Uvarint(docs)
			if k <= 0 {
				return fmt.Errorf("%w: postings doc", errCorrupt)
			}
			docs = docs[k:]
			if i == 0 {
				doc = uint32(d)
			} else {
				doc += uint32(d)
			}
			fn(doc)
		}
	}
	return nil
}

// rewrite re-encodes p as one chunk without the documents drop reports.
func (p *plist) rewrite(drop func(uint32) bool) []byte {
	var a termAcc
	for i, d := range p.docs {
		if drop(d) {
			continue
		}
		delta := d
		if a.n > 0 {
			delta = d - a.prevDoc
		}
		a.docs = binary.AppendUvarint(a.docs, uint64(delta))
		a.docs = binary.AppendUvarint(a.docs, uint64(len(p.pos[i])))
		a.pos = append(a.pos, p.pos[i]...)
		a.prevDoc = d
		a.n++
	}
	if a.n == 0 {
		return nil
	}
	return a.chunk(nil)
}
