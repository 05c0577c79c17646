package delivery

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mailbricks/mailbricks/dedup"
)

// IncomingJob is the payload of a job on the incoming topic: one received
// message. It is encoded as JSON (version 1):
//
//	{"v":1, "id":"<transaction ID>", "blob":"<dedup.Ref>",
//	 "from":"<MAIL FROM>", "rcpt":[{"addr":"…","user":"…"}],
//	 "ip":"<client IP>", "helo":"<EHLO name>", "tls":false,
//	 "auth":{…AuthResults…}, "junk":false, "received":"<RFC 3339>",
//	 "header":"Received: …\r\nAuthentication-Results: …\r\n",
//	 "drop":[[start,end],…]}
//
// The message as delivered is header followed by the blob's bytes with the
// drop ranges (incoming Authentication-Results fields that claimed our host
// name) left out. The blob holds exactly the bytes received.
type IncomingJob struct {
	// Version is the payload format, 1.
	Version int `json:"v"`
	// ID is the SMTP transaction ID, also the job's key.
	ID string `json:"id"`
	// Blob is the message as received, in the blob store, linked by
	// owner "delivery/incoming/<ID>" until Deliver has stored it.
	Blob dedup.Ref `json:"blob"`
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
	// Drop lists byte ranges [start, end) of Blob to leave out (forged
	// Authentication-Results fields), sorted and not overlapping.
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
	if j.Version != 1 || j.ID == "" || j.Blob.IsZero() || len(j.Recipients) == 0 {
		return nil, fmt.Errorf("%w: version %d, id %q, %d recipients", ErrInvalidJob, j.Version, j.ID, len(j.Recipients))
	}
	var last int64
	for _, d := range j.Drop {
		if d[0] < last || d[1] < d[0] || d[1] > j.Blob.Size {
			return nil, fmt.Errorf("%w: bad drop range %v", ErrInvalidJob, d)
		}
		last = d[1]
	}
	return &j, nil
}
