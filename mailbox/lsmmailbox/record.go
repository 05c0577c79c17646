package lsmmailbox

// Message record format, the value of 'm' keys and of the entries of the
// 'u' and 'r' tables (see keys.go). Integers marked uv are unsigned
// varints (encoding/binary); a string is uv length | bytes; a list is
// uv count | items; a time is uv length | time.Time.MarshalBinary (zone
// offset kept), length 0 for the zero time.
//
//	version      u8 = 1
//	fid          u32 big-endian       folder ID
//	id           16 bytes             message ID
//	thread       16 bytes             thread ID
//	uid          uv
//	modseq       uv
//	size         uv
//	flags        list of string
//	internalDate time
//	date         time
//	from, sender, replyTo, to, cc, bcc   6 × list of (name string, addr string)
//	subject      string
//	messageID    string
//	inReplyTo    list of string
//	references   list of string
//	attachments  u8 (0 or 1)
//	snippet      string
//	parseError   string
//
// A binary format rather than JSON because "list the newest unread"
// decodes a record per message of the page, and decoding dominates its
// cost.

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/mailbricks/mailbricks/mailbox"
)

const recordVersion = 1

var errBadRecord = errors.New("bad message record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	tb, err := t.MarshalBinary()
	if err != nil {
		// Only years outside [-292277022657, 292277026596] fail.
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(tb)))
	return append(b, tb...)
}

func encodeRecord(r *msgRec) []byte {
	m := &r.Message
	b := make([]byte, 0, 256+len(m.Subject)+len(m.Snippet))
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint32(b, r.FID)
	b = append(b, m.ID[:]...)
	b = append(b, m.ThreadID[:]...)
	b = binary.AppendUvarint(b, uint64(m.UID))
	b = binary.AppendUvarint(b, m.ModSeq)
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = appendStrings(b, m.Flags)
	b = appendTime(b, m.InternalDate)
	b = appendTime(b, m.Date)
	for _, as := range [][]mailbox.Address{m.From, m.Sender, m.ReplyTo, m.To, m.Cc, m.Bcc} {
		b = binary.AppendUvarint(b, uint64(len(as)))
		for _, a := range as {
			b = appendString(b, a.Name)
			b = appendString(b, a.Addr)
		}
	}
	b = appendString(b, m.Subject)
	b = appendString(b, m.MessageIDHeader)
	b = appendStrings(b, m.InReplyTo)
	b = appendStrings(b, m.References)
	if m.HasAttachments {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, m.Snippet)
	return appendString(b, m.ParseError)
}

type recReader struct {
	b []byte
	// s, if not empty, is a string copy of b as it was at the start, so
	// that str returns substrings of one allocation instead of one
	// allocation per field.
	s   string
	err error
}

func (r *recReader) uv() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadRecord
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errBadRecord
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *recReader) str() string {
	v := r.bytes(r.uv())
	if r.s == "" || len(v) == 0 {
		return string(v)
	}
	off := len(r.s) - len(r.b) - len(v)
	return r.s[off : off+len(v)]
}

func (r *recReader) strs() []string {
	n := r.uv()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errBadRecord
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *recReader) time() time.Time {
	tb := r.bytes(r.uv())
	var t time.Time
	if len(tb) > 0 && r.err == nil {
		if err := t.UnmarshalBinary(tb); err != nil {
			r.err = errBadRecord
		}
	}
	return t
}

func decodeRecord(b []byte) (msgRec, error) {
	var rec msgRec
	fid, err := decodeRecordInto(b, &rec.Message)
	rec.FID = fid
	return rec, err
}

// decodeRecordInto decodes b into *m, which must be zero, and returns the
// record's folder ID; List decodes straight into its result slice.
func decodeRecordInto(b []byte, m *mailbox.Message) (uint32, error) {
	if len(b) < 1+4+32 || b[0] != recordVersion {
		return 0, errBadRecord
	}
	fid := binary.BigEndian.Uint32(b[1:5])
	copy(m.ID[:], b[5:21])
	copy(m.ThreadID[:], b[21:37])
	r := &recReader{b: b[37:], s: string(b[37:])}
	m.UID = uint32(r.uv())
	m.ModSeq = r.uv()
	m.Size = int64(r.uv())
	m.Flags = r.strs()
	if m.Flags == nil {
		m.Flags = []string{}
	}
	m.InternalDate = r.time()
	m.Date = r.time()
	for _, as := range []*[]mailbox.Address{&m.From, &m.Sender, &m.ReplyTo, &m.To, &m.Cc, &m.Bcc} {
		n := r.uv()
		if r.err != nil || n > uint64(len(r.b)) {
			return 0, errBadRecord
		}
		if n > 0 {
			*as = make([]mailbox.Address, n)
			for i := range *as {
				(*as)[i] = mailbox.Address{Name: r.str(), Addr: r.str()}
			}
		}
	}
	m.Subject = r.str()
	m.MessageIDHeader = r.str()
	m.InReplyTo = r.strs()
	m.References = r.strs()
	att := r.bytes(1)
	m.HasAttachments = len(att) == 1 && att[0] == 1
	m.Snippet = r.str()
	m.ParseError = r.str()
	if r.err != nil {
		return 0, r.err
	}
	return fid, nil
}
