package delivery

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// DSN is a delivery status notification (RFC 3464) that the outbound
// worker sends to a message's sender, as WriteDSN writes it.
type DSN struct {
	// ReportingMTA is our host name (Reporting-MTA: dns; …).
	ReportingMTA string
	// From is the notification's From address, such as
	// "MAILER-DAEMON@mx.example.com".
	From string
	// To is the original sender, the notification's recipient.
	To string
	// Date is the notification's date; its Message-ID is derived from ID.
	Date time.Time
	// ID makes the notification's Message-ID and MIME boundary; the same
	// ID writes the same bytes.
	ID string
	// ArrivalDate is when we accepted the original message.
	ArrivalDate time.Time
	// Recipients are the per-recipient reports, at least one.
	Recipients []DSNRecipient
	// Header is the original message's header section (returned as
	// text/rfc822-headers); it may be empty.
	Header []byte
}

// DSNRecipient is one recipient's part of a DSN.
type DSNRecipient struct {
	// Address is the recipient address (Final-Recipient).
	Address string
	// Action is "failed", "delayed", "delivered", "relayed" or "expanded".
	Action string
	// Status is the RFC 3463 status code.
	Status [3]int
	// RemoteMTA is the host that gave Diagnostic, or "".
	RemoteMTA string
	// Diagnostic is the SMTP reply ("550 5.1.1 user unknown") or our own
	// explanation, or "".
	Diagnostic string
	// LastAttempt is the time of the last delivery attempt, or zero.
	LastAttempt time.Time
	// WillRetryUntil is, for a delayed DSN, when the retries end.
	WillRetryUntil time.Time
}

// WriteDSN writes d as an RFC 3464 multipart/report message with a
// human-readable part, the message/delivery-status part and the
// original header section (text/rfc822-headers). Every value is written on
// one line (CR and LF become spaces), so no field can inject another.
func WriteDSN(w io.Writer, d *DSN) error {
	if len(d.Recipients) == 0 {
		return fmt.Errorf("%w: DSN without recipients", ErrInvalidOptions)
	}
	h := sha256.Sum256([]byte(d.ID))
	boundary := "dsn-" + hex.EncodeToString(h[:12])
	for bytes.Contains(d.Header, []byte(boundary)) {
		h = sha256.Sum256(h[:])
		boundary = "dsn-" + hex.EncodeToString(h[:12])
	}
	host := oneLine(d.ReportingMTA)
	bw := bufio.NewWriter(w)
	delayed := true
	for _, r := range d.Recipients {
		if r.Action != "delayed" {
			delayed = false
		}
	}
	subject := "Undelivered Mail Returned to Sender"
	if delayed {
		subject = "Delayed Mail (still being retried)"
	}
	date := d.Date.UTC().Format(time.RFC1123Z)
	fmt.Fprintf(bw, "From: Mail Delivery System <%s>\r\n", oneLine(d.From))
	fmt.Fprintf(bw, "To: <%s>\r\n", oneLine(d.To))
	fmt.Fprintf(bw, "Subject: %s\r\n", subject)
	fmt.Fprintf(bw, "Date: %s\r\n", date)
	fmt.Fprintf(bw, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(h[12:24]), host)
	bw.WriteString("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n")
	fmt.Fprintf(bw, "Content-Type: multipart/report; report-type=delivery-status;\r\n boundary=\"%s\"\r\n\r\n", boundary)
	bw.WriteString("This is a MIME-encapsulated message.\r\n\r\n")

	fmt.Fprintf(bw, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", boundary)
	fmt.Fprintf(bw, "This is the mail system at host %s.\r\n\r\n", host)
	if delayed {
		bw.WriteString("Your message could not be delivered yet to the recipients below.\r\nThe mail system will keep trying; you need not resend it.\r\n\r\n")
	} else {
		bw.WriteString("Your message could not be delivered to the recipients below.\r\n\r\n")
	}
	for _, r := range d.Recipients {
		fmt.Fprintf(bw, "<%s>: %s\r\n", oneLine(r.Address), oneLine(r.Diagnostic))
	}
	bw.WriteString("\r\n")

	fmt.Fprintf(bw, "--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(bw, "Reporting-MTA: dns; %s\r\n", host)
	if !d.ArrivalDate.IsZero() {
		fmt.Fprintf(bw, "Arrival-Date: %s\r\n", d.ArrivalDate.UTC().Format(time.RFC1123Z))
	}
	for _, r := range d.Recipients {
		addr := oneLine(r.Address)
		typ := "rfc822"
		if !isASCII(addr) {
			typ = "utf-8" // RFC 6533
		}
		fmt.Fprintf(bw, "\r\nFinal-Recipient: %s; %s\r\n", typ, addr)
		fmt.Fprintf(bw, "Action: %s\r\n", oneLine(r.Action))
		fmt.Fprintf(bw, "Status: %d.%d.%d\r\n", r.Status[0], r.Status[1], r.Status[2])
		if r.RemoteMTA != "" {
			fmt.Fprintf(bw, "Remote-MTA: dns; %s\r\n", oneLine(r.RemoteMTA))
		}
		if r.Diagnostic != "" {
			typ := "smtp"
			if !isASCII(r.Diagnostic) {
				typ = "x-unix" // not an SMTP reply we could have received
			}
			fmt.Fprintf(bw, "Diagnostic-Code: %s; %s\r\n", typ, oneLine(r.Diagnostic))
		}
		if !r.LastAttempt.IsZero() {
			fmt.Fprintf(bw, "Last-Attempt-Date: %s\r\n", r.LastAttempt.UTC().Format(time.RFC1123Z))
		}
		if !r.WillRetryUntil.IsZero() {
			fmt.Fprintf(bw, "Will-Retry-Until: %s\r\n", r.WillRetryUntil.UTC().Format(time.RFC1123Z))
		}
	}
	bw.WriteString("\r\n")

	fmt.Fprintf(bw, "--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	var hb []byte
	hb = (&normState{}).normalize(hb, d.Header, false)
	hb = bytes.TrimRight(hb, "\r\n")
	bw.Write(hb)
	if len(hb) > 0 {
		bw.WriteString("\r\n")
	}
	fmt.Fprintf(bw, "\r\n--%s--\r\n", boundary)
	return bw.Flush()
}

// statusDiagnostic formats an *Error as a Diagnostic-Code value.
func statusDiagnostic(e *Error) string {
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], oneLine(e.Message))
}

// readHeaderSection returns the header section of r (up to and without
// the empty line), at most max bytes; a longer section is cut at a line
// boundary.
func readHeaderSection(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReader(r)
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) == 0 && err != nil {
			if err == io.EOF {
				return out, nil
			}
			if err != bufio.ErrBufferFull {
				return out, err
			}
		}
		if err == nil && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return out, nil
		}
		if len(out)+len(line) > max {
			return out, nil
		}
		out = append(out, line...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return out, err
		}
	}
}
