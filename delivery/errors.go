package delivery

import (
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"github.com/mailbricks/mailbricks"
)

// Sentinel errors of the package. Match them with errors.Is.
var (
	// ErrUnknownRecipient is what a [InboundOptions.Recipient] hook returns
	// (possibly wrapped) for an address that is not a local recipient;
	// Inbound answers 550 5.1.1 at RCPT.
	ErrUnknownRecipient = errors.New("delivery: unknown recipient")
	// ErrInvalidAddress means an envelope address is malformed or holds a
	// control character (CR, LF, NUL or any other).
	ErrInvalidAddress = errors.New("delivery: invalid address")
	// ErrInvalidHelo means an EHLO/HELO name is malformed or holds a control
	// character.
	ErrInvalidHelo = errors.New("delivery: invalid EHLO name")
	// ErrBareLineEnding means message data holds a CR not followed by LF or
	// an LF not preceded by CR (see the package doc's smuggling rule).
	ErrBareLineEnding = errors.New("delivery: bare CR or LF in message data")
	// ErrNUL means message data holds a NUL byte.
	ErrNUL = errors.New("delivery: NUL in message data")
	// ErrHeaderTooLarge means a header line, the header section or the
	// number of header fields exceeds its limit.
	ErrHeaderTooLarge = errors.New("delivery: message header too large")
	// ErrSenderNotAllowed means a submitting user may not send from the
	// address given ([SubmissionOptions].SenderAllowed).
	ErrSenderNotAllowed = errors.New("delivery: sender address not allowed for this user")
	// ErrTooManyRecipients means a message names more recipients than
	// MaxRecipients.
	ErrTooManyRecipients = errors.New("delivery: too many recipients")
	// ErrMessageTooLarge means a message is larger than MaxMessageBytes.
	ErrMessageTooLarge = errors.New("delivery: message too large")
	// ErrInvalidJob means an incoming job's payload does not decode.
	ErrInvalidJob = errors.New("delivery: invalid job payload")
	// ErrInvalidOptions means options passed to a constructor are invalid.
	ErrInvalidOptions = errors.New("delivery: invalid options")
)

// Error is an SMTP protocol outcome: a reply code, an enhanced status code
// (RFC 3463) and a text. Hooks return an *Error to choose the reply; Inbound
// hands it to go-smtp as an *smtp.SMTPError. An Error is a value; it is safe
// to share.
type Error struct {
	// Code is the SMTP reply code, 4xx (temporary) or 5xx (permanent).
	Code int
	// Enhanced is the RFC 3463 status code, such as {5, 1, 1}.
	Enhanced [3]int
	// Message is the reply text. It must not contain CR or LF.
	Message string
	// Host is the remote MX host that gave the reply, for replies the
	// outbound client received or failures connecting to a host; it is ""
	// for replies this package sends and for failures before any host
	// (DNS, suppression, local delivery).
	Host string
}

// Error formats the reply as it is sent.
func (e *Error) Error() string {
	return fmt.Sprintf("delivery: %d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Message)
}

// Temporary reports whether the reply is a 4xx: the client should retry.
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// SMTP returns the reply as the *smtp.SMTPError go-smtp sends.
func (e *Error) SMTP() *smtp.SMTPError {
	return &smtp.SMTPError{Code: e.Code, EnhancedCode: smtp.EnhancedCode(e.Enhanced), Message: e.Message}
}

func reply(code int, enh [3]int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enh), Message: msg}
}

// Replies Inbound sends. go-smtp type-asserts *smtp.SMTPError, so these are
// returned unwrapped.
var (
	replyUnknownRcpt   = reply(550, [3]int{5, 1, 1}, "No such user here")
	replyTooManyRcpts  = reply(452, [3]int{4, 5, 3}, "Too many recipients")
	replyStorage       = reply(451, [3]int{4, 3, 0}, "Temporary storage failure, try again later")
	replyTempFail      = reply(451, [3]int{4, 3, 0}, "Temporary local failure, try again later")
	replyPermFail      = reply(550, [3]int{5, 3, 0}, "Local failure")
	replyMsgRate       = reply(450, [3]int{4, 7, 1}, "Too many messages from your address, slow down")
	replyBadAddress    = reply(501, [3]int{5, 1, 3}, "Invalid address")
	replyBadHelo       = reply(501, [3]int{5, 5, 2}, "Invalid EHLO name")
	replyBareEOL       = reply(550, [3]int{5, 5, 2}, "Message contains bare CR or LF; use CRLF line endings")
	replyNUL           = reply(550, [3]int{5, 6, 0}, "Message contains NUL")
	replyLineTooLong   = reply(552, [3]int{5, 3, 4}, "Line too long")
	replyHeaderLarge   = reply(552, [3]int{5, 3, 4}, "Message header too large")
	replyDMARCReject   = reply(550, [3]int{5, 7, 1}, "Rejected by the sender domain's DMARC policy")
	replyUnexpectedEOF = reply(451, [3]int{4, 3, 0}, "Incomplete message data")
)

// toSMTP maps an error from a hook to the reply go-smtp sends: an *Error or
// *smtp.SMTPError as is, ErrUnknownRecipient as 550 5.1.1, a temporary error
// (mailbricks.IsTemporary) as 451 4.3.0, anything else as 550 5.3.0.
func toSMTP(err error) *smtp.SMTPError {
	var e *Error
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &e):
		return e.SMTP()
	case errors.As(err, &se):
		return se
	case errors.Is(err, ErrUnknownRecipient):
		return replyUnknownRcpt
	case mailbricks.IsTemporary(err):
		return replyTempFail
	default:
		return replyPermFail
	}
}
