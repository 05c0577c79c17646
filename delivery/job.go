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
	Version    int         `json:"v"`
	ID         string      `json:"id"`
	Blob       dedup.Ref   `json:"blob"`
	From       string      `json:"from"`
	Recipients []Recipient `json:"rcpt"`
	ClientIP   string      `json:"ip"`
	Helo       string      `json:"helo"`
	TLS        bool        `json:"tls"`
	Auth       AuthResults `json:"auth"`
	Junk       bool        `json:"junk"`
	Received   time.Time   `json:"received"`
	Header     string      `json:"header"`
	Drop       [][2]int64  `json:"drop,omitempty"`
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
