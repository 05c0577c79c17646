package delivery

import (
	"bytes"
	"fmt"
	"io"
)

// dataChecker enforces the smuggling rule and the header bounds on message
// data as it streams past (go-smtp has already removed the dot-stuffing and
// the end-of-data line), and captures the few header fields authentication
// needs: From, and Authentication-Results with their byte ranges; and it
// notes whether there is a DKIM-Signature field, so that a message without
// one skips DKIM verification.
//
// The rule, on the data bytes: every LF is preceded by CR, every CR is
// followed by LF, and there is no NUL. The header section (up to the first
// empty line) has at most maxFields fields, no physical line longer than
// maxLine bytes (CRLF included) and at most maxHeader bytes in all.
//
// Memory is bounded by maxLine (the line being read) plus the captured
// fields, which are part of the header section and so bounded by maxHeader.
type dataChecker struct {
	r         io.Reader
	maxLine   int
	maxHeader int64
	maxFields int

	off      int64 // bytes passed so far
	prevCR   bool  // the last byte passed was CR
	inHeader bool
	line     []byte // the current header line, CRLF included when complete
	fields   int

	cur     *headerField // field being read, if captured
	from    []headerField
	authRes []headerField
	dkimSig bool // a DKIM-Signature field was seen

	srcErr error // the error of r, other than io.EOF
	eof    bool  // r reached io.EOF
	err    error // the rule violation, once found
}

// headerField is a captured header field: its raw bytes (continuation lines
// included) and where it lies in the data.
type headerField struct {
	name       string // lower case
	raw        []byte
	start, end int64
}

func newDataChecker(r io.Reader, maxLine int, maxHeader int64, maxFields int) *dataChecker {
	return &dataChecker{r: r, maxLine: maxLine, maxHeader: maxHeader, maxFields: maxFields, inHeader: true}
}

// Read reads from the underlying reader and checks what it read. It returns
// the first violation (wrapping ErrBareLineEnding, ErrNUL or
// ErrHeaderTooLarge) instead of the bytes that contain it, and a trailing
// bare CR at the end of the data.
func (c *dataChecker) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		if verr := c.check(p[:n]); verr != nil {
			c.err = verr
			return 0, verr
		}
	}
	if err != nil && err != io.EOF {
		// Wrapped, so that no reader up the chain mistakes a truncated
		// transfer (io.ErrUnexpectedEOF) for the end of the data.
		c.srcErr = err
		return n, fmt.Errorf("delivery: reading message data: %w", err)
	}
	if err == io.EOF {
		c.eof = true
		if verr := c.finish(); verr != nil {
			c.err = verr
			return n, verr
		}
	}
	return n, err
}

func (c *dataChecker) check(p []byte) error {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch b {
		case 0:
			return fmt.Errorf("%w at byte %d", ErrNUL, c.off+int64(i))
		case '\n':
			if !c.prevCR {
				return fmt.Errorf("%w: LF without CR at byte %d", ErrBareLineEnding, c.off+int64(i))
			}
		default:
			if c.prevCR {
				return fmt.Errorf("%w: CR without LF at byte %d", ErrBareLineEnding, c.off+int64(i)-1)
			}
		}
		c.prevCR = b == '\r'
		if c.inHeader {
			if err := c.headerByte(b, c.off+int64(i)); err != nil {
				return err
			}
			continue
		}
		if c.prevCR {
			continue
		}
		// In the body, skip to the next byte the rule looks at.
		j := bytes.IndexAny(p[i+1:], "\x00\r\n")
		if j < 0 {
			break
		}
		i += j
	}
	c.off += int64(len(p))
	return nil
}

// headerByte adds b, at offset off, to the header line being read.
func (c *dataChecker) headerByte(b byte, off int64) error {
	if off+1 > c.maxHeader {
		return fmt.Errorf("%w: header section longer than %d bytes", ErrHeaderTooLarge, c.maxHeader)
	}
	if len(c.line) >= c.maxLine {
		return fmt.Errorf("%w: header line longer than %d bytes", ErrHeaderTooLarge, c.maxLine)
	}
	c.line = append(c.line, b)
	if b != '\n' {
		return nil
	}
	line := c.line
	c.line = c.line[:0]
	start := off + 1 - int64(len(line))
	switch {
	case len(line) == 2: // CRLF: the end of the header section
		c.endField()
		c.inHeader = false
		c.line = nil
	case line[0] == ' ' || line[0] == '\t':
		if c.cur != nil {
			c.cur.raw = append(c.cur.raw, line...)
			c.cur.end = off + 1
		}
	default:
		c.endField()
		c.fields++
		if c.fields > c.maxFields {
			return fmt.Errorf("%w: more than %d header fields", ErrHeaderTooLarge, c.maxFields)
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			// The name may go on in a continuation line, as a DKIM
			// verifier reads it: verify to be safe.
			c.dkimSig = true
			return nil
		}
		name = bytes.TrimRight(name, " \t")
		switch {
		case bytes.EqualFold(name, []byte("from")):
			c.cur = &headerField{name: "from", raw: append([]byte(nil), line...), start: start, end: off + 1}
		case bytes.EqualFold(name, []byte("authentication-results")):
			c.cur = &headerField{name: "authentication-results", raw: append([]byte(nil), line...), start: start, end: off + 1}
		case len(name) >= len("dkim-signature") && bytes.EqualFold(name[len(name)-len("dkim-signature"):], []byte("dkim-signature")):
			// Generous (any name ending so): a false positive costs only a
			// verification that finds nothing.
			c.dkimSig = true
		}
	}
	return nil
}

func (c *dataChecker) endField() {
	if c.cur == nil {
		return
	}
	switch c.cur.name {
	case "from":
		c.from = append(c.from, *c.cur)
	default:
		c.authRes = append(c.authRes, *c.cur)
	}
	c.cur = nil
}

func (c *dataChecker) finish() error {
	if c.prevCR {
		return fmt.Errorf("%w: CR without LF at the end", ErrBareLineEnding)
	}
	if c.inHeader {
		// A header section without an empty line after it (or a partial
		// last line, which the rule makes impossible: data ends in CRLF).
		c.endField()
	}
	return nil
}
