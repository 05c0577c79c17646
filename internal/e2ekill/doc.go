// Package e2ekill holds the end-to-end kill test of the delivery path's
// promise "no email processed twice": a queue worker appends each job's
// message to a mailbox with the job's ID as [mailbox.AppendOptions.Key]
// and is SIGKILLed many times; afterwards every job's message must be in
// the mailbox exactly once. The package has only tests.
//
// [mailbox.AppendOptions.Key]: https://pkg.go.dev/github.com/mailbricks/mailbricks/mailbox#AppendOptions
package e2ekill
