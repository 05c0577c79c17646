// Package delivery is the edge of the mail service: Inbound receives mail
// over SMTP (RFC 5321) as a github.com/emersion/go-smtp backend, and
// Deliver, the worker of the incoming queue topic, puts each received
// message into its recipients' mailboxes.
package delivery
