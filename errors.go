package mailbricks

import (
	"context"
	"errors"
	"syscall"
)

// ErrTemporary is the error, wrapped, of a failure that may go away if the
// same call is made again later: a database failover, a dropped connection,
// a full connection pool, a timeout, a server asking the client to back
// off. [IsTemporary] reports it. Backends mark their engine's transient
// errors with [Temporary], so callers never need to know the engine.
var ErrTemporary = errors.New("mailbricks: temporary failure")

// temporaryError marks err as temporary while keeping it in the chain, so
// errors.Is and errors.As still find the engine's own error.
type temporaryError struct{ err error }

func (e *temporaryError) Error() string   { return e.err.Error() }
func (e *temporaryError) Unwrap() []error { return []error{e.err, ErrTemporary} }

// Temporary returns err marked as temporary: [IsTemporary] reports true
// for it and for any error that wraps it, and errors.Is(err, target) still
// matches whatever err matched. Temporary(nil) is nil. Backends call it on
// the errors of their engine that a retry may cure; they do not retry
// themselves.
func Temporary(err error) error {
	if err == nil || errors.Is(err, ErrTemporary) {
		return err
	}
	return &temporaryError{err}
}

// IsTemporary reports whether err is a failure that may go away if the
// call is retried later, as opposed to one that will fail the same way
// every time (bad input, not found, a closed store, corrupt data). It
// reports true when err wraps [ErrTemporary] (see [Temporary]), wraps
// [context.DeadlineExceeded], wraps an error with a Timeout() bool method
// that returns true (as net.Error does), or wraps one of the system errors
// of a refused, reset or aborted connection. A canceled context
// ([context.Canceled]) is not temporary: the caller gave up.
//
// Every backend in this module classifies its engine's errors so that
// IsTemporary works on what its portable type returns; a third-party
// backend does the same with [Temporary].
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrTemporary) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return true
	}
	for _, errno := range transientErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// transientErrnos are the connection failures a later attempt may not
// meet: the server restarting, a load balancer dropping an idle
// connection, a full listen queue.
var transientErrnos = []error{
	syscall.ECONNREFUSED,
	syscall.ECONNRESET,
	syscall.ECONNABORTED,
	syscall.EPIPE,
	syscall.ETIMEDOUT,
	syscall.EAGAIN,
}
