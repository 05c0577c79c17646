// Package pgerr classifies the errors of pgx v5 for the PostgreSQL
// backends (pgmailbox, pgindex, pgqueue), so that each maps them the same
// way: transient failures to [mailbricks.Temporary], rejected text to the
// backend's invalid-argument sentinel.
package pgerr

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mailbricks/mailbricks"
)

// Classify returns err marked for its caller:
//
//   - a failure a retry may cure is marked with [mailbricks.Temporary]: a
//     failed connection attempt (other than a refused login), a connection
//     that broke or was closed under the call, an error pgx reports as safe
//     to retry or as a timeout, and the SQLSTATEs of class 08 (connection
//     exception), 40001 (serialization failure), 40P01 (deadlock), class 53
//     (insufficient resources: too many connections, disk full, out of
//     memory) and 57P01–57P03 (admin shutdown, crash shutdown, cannot
//     connect now);
//   - text PostgreSQL cannot store (22021: invalid byte sequence for the
//     encoding; 22P05: NUL as \u0000 in jsonb) wraps invalid, the backend's
//     invalid-argument sentinel;
//   - anything else (constraint violations, a closed pool, a canceled
//     context) is returned as is.
//
// Classify(nil) is nil.
func Classify(err error, invalid error) error {
	if err == nil {
		return nil
	}
	if IsInvalidText(err) {
		return fmt.Errorf("%w: %w", invalid, err)
	}
	if IsTransient(err) {
		return mailbricks.Temporary(err)
	}
	return err
}

// IsInvalidText reports whether err is PostgreSQL rejecting text it
// cannot store: invalid UTF-8 or a NUL.
func IsInvalidText(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "22021" || pe.Code == "22P05")
}

// IsTransient reports whether err is a PostgreSQL or pgx failure a later
// retry may not meet; see [Classify].
func IsTransient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"),
			c == "40001", c == "40P01",
			c == "57P01", c == "57P02", c == "57P03":
			return true
		}
		// Any other answer of the server (a constraint, a syntax error, a
		// refused password during connect) will come again.
		return false
	}
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ce),
		pgconn.SafeToRetry(err),
		pgconn.Timeout(err),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		mailbricks.IsTemporary(err):
		return true
	}
	return false
}

// IsConflict reports whether err is a transaction PostgreSQL aborted to
// resolve a conflict with another one, a deadlock (40P01) or a
// serialization failure (40001): nothing of it was applied, and running it
// again at once usually succeeds.
func IsConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
