package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
)

// IncomingJob is the payload of a job on the incoming topic: one received
// message. It is encoded as JSON, version 1 (the message in the blob store)
// or 2 (the message in the job):
//
//	{"v":1, "id":"<transaction ID>", "blob":"<dedup.Ref>",
//	 "from":"<MAIL FROM>", "rcpt":[{"addr":"…","user":"…"}],
//	 "ip":"<client IP>", "helo":"<EHLO name>", "tls":false,
//	 "auth":{…AuthResults…}, "junk":false, "received":"<RFC 3339>",
//	 "header":"Received: …\r\nAuthentication-Results: …\r\n",
//	 "drop":[[start,end],…]}
//	{"v":2, "id":…, "body":"<base64 of the bytes received>", "from":…, …}
//
// Version 2 has "body" instead of "blob", the rest as version 1: Inbound
// carries a message of at most InboundOptions.InlineMax bytes in its job
// when that option is set,
// so that accepting it costs one synced write (the job) instead of two
// (blob and link, then job), and Deliver has no blob to unlink.
//
// The message as delivered is header followed by the received bytes (the
// blob's, or Body) with the drop ranges (incoming Authentication-Results
// fields that claimed our host name) left out. The blob holds exactly the
// bytes received.
type IncomingJob struct {
	// Version is the payload format: 1 with Blob, 2 with Body.
	Version int `json:"v"`
	// ID is the SMTP transaction ID, also the job's key.
	ID string `json:"id"`
	// Blob is the message as received, in the blob store, linked by
	// owner "delivery/incoming/<ID>" until Deliver has stored it
	// (version 1; zero in version 2).
	Blob dedup.Ref `json:"blob,omitzero"`
	// Body is the message as received (version 2; nil in version 1).
	Body []byte `json:"body,omitempty"`
	// From is the MAIL FROM address ("" for the null reverse-path).
	From string `json:"from"`
	// Recipients are the accepted recipients and their users.
	Recipients []Recipient `json:"rcpt"`
	// ClientIP is the SMTP client's IP address.
	ClientIP string `json:"ip"`
	// Helo is the client's EHLO/HELO name.
	Helo string `json:"helo"`
	// TLS reports whether the message came under TLS.
	TLS bool `json:"tls"`
	// Auth are the SPF, DKIM and DMARC results.
	Auth AuthResults `json:"auth"`
	// Junk marks the message for the Junk folder (DMARC quarantine, or
	// the Policy hook).
	Junk bool `json:"junk"`
	// Received is when the message was accepted.
	Received time.Time `json:"received"`
	// Header holds the fields to prepend: Received and
	// Authentication-Results, CRLF-terminated.
	Header string `json:"header"`
	// Drop lists byte ranges [start, end) of the received bytes (Blob or
	// Body) to leave out (forged Authentication-Results fields), sorted
	// and not overlapping.
	Drop [][2]int64 `json:"drop,omitempty"`
}

func (j *IncomingJob) marshal() ([]byte, error) { return json.Marshal(j) }

// ParseIncomingJob decodes an incoming job's payload. A payload that does
// not decode, or is of another version, wraps ErrInvalidJob.
func ParseIncomingJob(payload []byte) (*IncomingJob, error) {
	var j IncomingJob
	if err := json.Unmarshal(payload, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	valid := false
	switch j.Version {
	case 1:
		valid = !j.Blob.IsZero() && j.Body == nil
	case 2:
		valid = j.Blob.IsZero()
	}
	if !valid || j.ID == "" || len(j.Recipients) == 0 {
		return nil, fmt.Errorf("%w: version %d, id %q, %d recipients, blob %q, %d body bytes", ErrInvalidJob, j.Version, j.ID, len(j.Recipients), j.Blob, len(j.Body))
	}
	size := j.size()
	var last int64
	for _, d := range j.Drop {
		if d[0] < last || d[1] < d[0] || d[1] > size {
			return nil, fmt.Errorf("%w: bad drop range %v", ErrInvalidJob, d)
		}
		last = d[1]
	}
	return &j, nil
}

// inline reports whether the job carries the message (version 2).
func (j *IncomingJob) inline() bool { return j.Version == 2 }

// size returns the length of the message as received.
func (j *IncomingJob) size() int64 {
	if j.inline() {
		return int64(len(j.Body))
	}
	return j.Blob.Size
}

// openRaw returns the message as received: Body, or the blob from blobs.
func (j *IncomingJob) openRaw(ctx context.Context, blobs *dedup.Store) (io.ReadSeekCloser, error) {
	if j.inline() {
		return nopSeekCloser{bytes.NewReader(j.Body)}, nil
	}
	return blobs.Open(ctx, j.Blob)
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }
