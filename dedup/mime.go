package dedup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// SplitOptions configures [Split]. A nil *SplitOptions means the defaults.
type SplitOptions struct {
	// MinSize is the length above which a leaf part's body is stored as a
	// blob; smaller bodies stay in the skeleton. The default is 16 KiB.
	MinSize int64
}

// Skeleton is a message with its large part bodies replaced by
// references to blobs, as returned by [Split].
type Skeleton struct {
	// Data is the encoded skeleton: small, opaque; store it beside the
	// message's metadata and give it to [Join] and [Refs].
	Data []byte
	// Refs are the distinct blobs linked under the owner, in order of
	// first appearance.
	Refs []Ref
	// Size is the length of the original message in bytes.
	Size int64
}

// maxDepth bounds MIME nesting; deeper entities are kept whole.
const maxDepth = 32

// Split parses the RFC 5322 message read from msg as MIME (RFC 2045,
// RFC 2046), stores every leaf part body longer than opts.MinSize as a
// blob, links each distinct blob once under owner, and returns the
// skeleton: the message with those bodies replaced by references.
// [Join] gives back the original bytes exactly.
//
// Bodies are taken as they appear in the message, transfer encoding
// included (base64 text is stored as base64 text), so two messages
// carrying the same attachment encoded the same way share one blob. A
// message/rfc822 part (a forwarded message) is split too, so a forward
// shares the original's attachments.
//
// Split reads the whole message into memory. A body whose blob is
// already stored is only linked (a message to 100 recipients stores its
// attachment once and then writes 99 links); otherwise it is stored with
// [Store.Put] and then linked. Malformed MIME (a header that does not parse, no blank line
// after the header, a multipart body without its boundary) is never
// rejected or altered: that entity is stored whole, as one blob if it is
// longer than MinSize. If a multipart's closing delimiter is missing, its
// last part runs to the end of its body.
//
// On error, Split unlinks what it had linked under owner. Owners must be
// unique per message (for example "user/messageID").
func Split(ctx context.Context, s *Store, owner string, msg io.Reader, opts *SplitOptions) (Skeleton, error) {
	minSize := int64(16 << 10)
	if opts != nil && opts.MinSize > 0 {
		minSize = opts.MinSize
	}
	if err := s.check(); err != nil {
		return Skeleton{}, err
	}
	if err := CheckOwner(owner); err != nil {
		return Skeleton{}, fmt.Errorf("dedup: split: %w", err)
	}
	data, err := io.ReadAll(msg)
	if err != nil {
		return Skeleton{}, fmt.Errorf("dedup: split: read: %w", err)
	}
	spans := partSpans(data, minSize)

	k := &skeleton{size: int64(len(data))}
	index := map[Hash]int{}
	var firstSpan [][2]int // where each ref's bytes first appear
	pos := 0
	for _, sp := range spans {
		body := data[sp[0]:sp[1]]
		h := Hash(sha256.Sum256(body))
		i, ok := index[h]
		if !ok {
			i = len(k.refs)
			index[h] = i
			k.refs = append(k.refs, Ref{Hash: h, Size: int64(len(body))})
			firstSpan = append(firstSpan, sp)
		}
		if sp[0] > pos {
			k.segs = append(k.segs, segment{lit: data[pos:sp[0]], ref: -1})
		}
		k.segs = append(k.segs, segment{ref: i})
		pos = sp[1]
	}
	if pos < len(data) {
		k.segs = append(k.segs, segment{lit: data[pos:], ref: -1})
	}
	// A blob already stored (the common case for a message sent to many
	// recipients) is only linked; Link fails with ErrNotFound if it is
	// missing or GC just took it, and then the bytes are put first.
	for i, ref := range k.refs {
		err := s.Link(ctx, ref, owner)
		if errors.Is(err, ErrNotFound) {
			err = s.putLink(ctx, ref, owner, data[firstSpan[i][0]:firstSpan[i][1]])
		}
		if err != nil {
			for _, done := range k.refs[:i] {
				_ = s.Unlink(context.WithoutCancel(ctx), done, owner)
			}
			return Skeleton{}, fmt.Errorf("dedup: split: %w", err)
		}
	}
	return Skeleton{Data: k.encode(), Refs: k.refs, Size: k.size}, nil
}

// putLink puts body, whose bytes are ref, then links it.
func (s *Store) putLink(ctx context.Context, ref Ref, owner string, body []byte) error {
	got, err := s.Put(ctx, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if got != ref {
		return fmt.Errorf("%w: stored %s, computed %s", ErrCorrupt, got, ref)
	}
	return s.Link(ctx, ref, owner)
}

// partSpans returns the byte ranges of data to store as blobs: ascending,
// disjoint, each longer than minSize.
func partSpans(data []byte, minSize int64) [][2]int {
	p := &mimeParser{data: data, min: minSize}
	if !p.entity(0, len(data), 0) {
		// Malformed at the top: the whole message is one blob.
		p.spans = p.spans[:0]
		p.leaf(0, len(data))
	}
	return p.spans
}

type mimeParser struct {
	data  []byte
	min   int64
	spans [][2]int
}

func (p *mimeParser) leaf(start, end int) {
	if int64(end-start) > p.min {
		p.spans = append(p.spans, [2]int{start, end})
	}
}

// headerEnd returns where the header of the entity at [start, end) ends
// (its blank line included), or -1 if there is no blank line.
func (p *mimeParser) headerEnd(start, end int) int {
	d := p.data
	i := start
	for i < end {
		switch {
		case d[i] == '\n':
			return i + 1
		case d[i] == '\r' && i+1 < end && d[i+1] == '\n':
			return i + 2
		}
		nl := bytes.IndexByte(d[i:end], '\n')
		if nl < 0 {
			return -1
		}
		i += nl + 1
	}
	return -1
}

// entity records the spans of the entity at [start, end). It returns false
// if the entity is malformed; it then records nothing.
func (p *mimeParser) entity(start, end, depth int) bool {
	bodyStart := p.headerEnd(start, end)
	if bodyStart < 0 {
		return false
	}
	var ctype, cte string
	if bodyStart-start > 2 {
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(p.data[start:bodyStart])))
		if err != nil {
			return false
		}
		ctype, cte = h.Get("Content-Type"), h.Get("Content-Transfer-Encoding")
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt, params = "", nil
	}
	switch {
	case depth >= maxDepth:
	case strings.HasPrefix(mt, "multipart/"):
		if b := params["boundary"]; b != "" && len(b) <= 200 {
			mark := len(p.spans)
			if p.multipart(b, bodyStart, end, depth) {
				return true
			}
			p.spans = p.spans[:mark]
		}
		// A multipart without its boundary is malformed: stored whole.
		return false
	case mt == "message/rfc822" || mt == "message/global":
		switch strings.ToLower(strings.TrimSpace(cte)) {
		case "", "7bit", "8bit", "binary":
			mark := len(p.spans)
			if p.entity(bodyStart, end, depth+1) {
				return true
			}
			p.spans = p.spans[:mark]
		}
	}
	p.leaf(bodyStart, end)
	return true
}

// multipart records the spans of the parts of a multipart body at
// [start, end) with the given boundary. It returns false if no delimiter
// line is found.
func (p *mimeParser) multipart(boundary string, start, end, depth int) bool {
	d := p.data
	delim := "--" + boundary
	pos := start
	partStart := -1
	found := false
	for pos < end {
		i := bytes.Index(d[pos:end], []byte(delim))
		if i < 0 {
			break
		}
		at := pos + i
		if at != start && d[at-1] != '\n' {
			pos = at + 1
			continue
		}
		q := at + len(delim)
		closing := false
		if q+1 < end && d[q] == '-' && d[q+1] == '-' {
			closing = true
			q += 2
		}
		for q < end && (d[q] == ' ' || d[q] == '\t') {
			q++
		}
		var lineEnd int
		switch {
		case q == end:
			lineEnd = end
		case d[q] == '\n':
			lineEnd = q + 1
		case d[q] == '\r' && q+1 < end && d[q+1] == '\n':
			lineEnd = q + 2
		default:
			pos = at + 1
			continue
		}
		found = true
		// The line break before a delimiter belongs to the delimiter.
		contentEnd := at
		if at > start {
			contentEnd = at - 1
			if contentEnd > start && d[contentEnd-1] == '\r' {
				contentEnd--
			}
		}
		if partStart >= 0 {
			p.part(partStart, max(contentEnd, partStart), depth)
		}
		if closing {
			return true
		}
		partStart = lineEnd
		pos = lineEnd
	}
	if partStart >= 0 {
		p.part(partStart, end, depth)
	}
	return found
}

// part records the spans of one body part; a malformed part is stored
// whole.
func (p *mimeParser) part(start, end, depth int) {
	mark := len(p.spans)
	if !p.entity(start, end, depth+1) {
		p.spans = p.spans[:mark]
		p.leaf(start, end)
	}
}

// Join returns a reader of the original message bytes of a skeleton made
// by [Split], byte-exact. Blobs are opened one at a time as the reader
// reaches them, and each is checked against its SHA-256 as it is read: a
// mismatch makes Read fail with [ErrCorrupt]. A malformed skeleton is
// ErrCorrupt; a missing blob makes Read fail with [ErrNotFound]. The
// caller must Close the reader.
func Join(ctx context.Context, s *Store, skeleton []byte) (io.ReadCloser, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	k, err := decodeSkeleton(skeleton)
	if err != nil {
		return nil, fmt.Errorf("dedup: join: %w: %v", ErrCorrupt, err)
	}
	return &joinReader{ctx: ctx, s: s, k: k}, nil
}

type joinReader struct {
	ctx  context.Context
	s    *Store
	k    *skeleton
	i    int    // current segment
	lit  []byte // rest of the current literal
	blob io.ReadCloser
	ref  Ref
	h    hash.Hash
	n    int64
	err  error
}

func (j *joinReader) Read(p []byte) (int, error) {
	for j.err == nil {
		if len(j.lit) > 0 {
			n := copy(p, j.lit)
			j.lit = j.lit[n:]
			if len(j.lit) == 0 {
				j.i++
			}
			return n, nil
		}
		if j.blob != nil {
			n, err := j.blob.Read(p)
			j.h.Write(p[:n])
			j.n += int64(n)
			if err == io.EOF {
				err = j.finishBlob()
			}
			if err != nil {
				j.err = err
			}
			if n > 0 || err != nil {
				return n, j.err
			}
			continue
		}
		if j.i >= len(j.k.segs) {
			j.err = io.EOF
			break
		}
		seg := j.k.segs[j.i]
		if seg.ref < 0 {
			if len(seg.lit) == 0 {
				j.i++
				continue
			}
			j.lit = seg.lit
			continue
		}
		j.ref = j.k.refs[seg.ref]
		rc, err := j.s.Open(j.ctx, j.ref)
		if err != nil {
			j.err = fmt.Errorf("dedup: join: %w", err)
			break
		}
		j.blob, j.h, j.n = rc, sha256.New(), 0
	}
	return 0, j.err
}

func (j *joinReader) finishBlob() error {
	err := j.blob.Close()
	j.blob = nil
	var got Hash
	j.h.Sum(got[:0])
	if got != j.ref.Hash || j.n != j.ref.Size {
		return fmt.Errorf("dedup: join: blob %s: %w: read %d bytes hashing to %s", j.ref, ErrCorrupt, j.n, got)
	}
	if err != nil {
		return fmt.Errorf("dedup: join: %w", err)
	}
	j.i++
	return nil
}

// Close closes the blob being read, if any. It is idempotent.
func (j *joinReader) Close() error {
	if j.err == nil || errors.Is(j.err, io.EOF) {
		j.err = errClosedReader
	}
	if j.blob != nil {
		err := j.blob.Close()
		j.blob = nil
		return err
	}
	return nil
}

var errClosedReader = errors.New("dedup: join: read after close")
