package index

import (
	"fmt"
	"strconv"
)

// Limits. Every list and string a caller hands the index is bounded, so
// no single call can make a backend do unbounded work: a query of 10,000
// words, a document with 10,000 keywords. Queries over a limit fail with
// [ErrBadQuery] ([Parse] reports a *[ParseError] with the byte position
// where the limit was crossed); documents with [ErrInvalidDocument].
const (
	// MaxQueryLen is the longest query in bytes: the length of a string
	// given to [Parse], and for a structured [Query] the sum of the
	// lengths of its strings (Text, Header).
	MaxQueryLen = 16 << 10
	// MaxQueryTerms is the number of terms a query may look up: each
	// word of a text node counts one (a phrase of three words three, a
	// word of a script without spaces one per bigram), and every other
	// leaf node (a flag, label, folder, range, UID set, an empty text)
	// one.
	MaxQueryTerms = 256
	// MaxQueryDepth is the deepest nesting of And, Or and Not nodes.
	// [Parse] counts what a group can produce: a parenthesis or a field
	// group may add two levels (its AND of ORs), a minus sign one. Build
	// a wide And or Or rather than a chain of binary ones.
	MaxQueryDepth = 64
	// MaxQueryUIDRanges is the number of ranges of a KindUID node.
	MaxQueryUIDRanges = 1000

	// MaxDocumentAddresses is the number of addresses of a [Document],
	// From, To, Cc and Bcc together.
	MaxDocumentAddresses = 10000
	// MaxDocumentFilenames is the number of Filenames of a Document.
	MaxDocumentFilenames = 1000
	// MaxDocumentHeaders is the number of Headers of a Document.
	MaxDocumentHeaders = 1000
	// MaxKeywords is the number of Keywords of [Values], checked by
	// [Index.IndexBatch] and [Index.Update].
	MaxKeywords = 1000
)

// validateDocument checks d against the document limits.
func validateDocument(d *Document) error {
	if d == nil || d.ID.IsZero() {
		return fmt.Errorf("%w: nil document or zero ID", ErrInvalidDocument)
	}
	if n := len(d.From) + len(d.To) + len(d.Cc) + len(d.Bcc); n > MaxDocumentAddresses {
		return fmt.Errorf("%w: %s has %d addresses, more than %d", ErrInvalidDocument, d.ID, n, MaxDocumentAddresses)
	}
	if n := len(d.Filenames); n > MaxDocumentFilenames {
		return fmt.Errorf("%w: %s has %d file names, more than %d", ErrInvalidDocument, d.ID, n, MaxDocumentFilenames)
	}
	if n := len(d.Headers); n > MaxDocumentHeaders {
		return fmt.Errorf("%w: %s has %d headers, more than %d", ErrInvalidDocument, d.ID, n, MaxDocumentHeaders)
	}
	return validateValues(&d.Values)
}

// validateValues checks v against the limits of doc values.
func validateValues(v *Values) error {
	if n := len(v.Keywords); n > MaxKeywords {
		return fmt.Errorf("%w: %d keywords, more than %d", ErrInvalidDocument, n, MaxKeywords)
	}
	return nil
}

// queryCost counts what a query spends of the limits.
type queryCost struct {
	bytes, terms int
}

// textTerms is the number of terms a text node of s looks up, for
// MaxQueryTerms: its words, at least one.
func textTerms(s string) int {
	var t tokenizer
	n := t.tokenize(s, 0, MaxFieldPositions, false, func([]byte, int, int, int) {})
	return max(n, 1)
}

func (c *queryCost) add(q *Query) error {
	c.bytes += len(q.Text) + len(q.Header)
	if c.bytes > MaxQueryLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadQuery, MaxQueryLen)
	}
	switch q.Kind {
	case KindAnd, KindOr, KindNot:
		if len(q.Sub) > 0 {
			return nil
		}
		c.terms++
	case KindText:
		c.terms += textTerms(q.Text)
	case KindUID:
		if len(q.UIDs) > MaxQueryUIDRanges {
			return fmt.Errorf("%w: %d UID ranges, more than %d", ErrBadQuery, len(q.UIDs), MaxQueryUIDRanges)
		}
		c.terms++
	default:
		c.terms++
	}
	if c.terms > MaxQueryTerms {
		return fmt.Errorf("%w: more than %s terms", ErrBadQuery, strconv.Itoa(MaxQueryTerms))
	}
	return nil
}
