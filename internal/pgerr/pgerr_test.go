package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/stretchr/testify/assert"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/internal/pgerr"
)

var errInvalid = errors.New("test: invalid argument")

func pg(code string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"} }

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		temporary bool
		invalid   bool
	}{
		{"connection exception 08006", pg("08006"), true, false},
		{"connection failure 08001", pg("08001"), true, false},
		{"serialization failure", pg("40001"), true, false},
		{"deadlock", pg("40P01"), true, false},
		{"too many connections", pg("53300"), true, false},
		{"disk full", pg("53100"), true, false},
		{"admin shutdown", pg("57P01"), true, false},
		{"crash shutdown", pg("57P02"), true, false},
		{"cannot connect now", pg("57P03"), true, false},
		{"wrapped admin shutdown", fmt.Errorf("op: %w", pg("57P01")), true, false},
		{"connect error", &pgconn.ConnectError{}, true, false},
		{"conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), true, false},
		{"unexpected EOF", io.ErrUnexpectedEOF, true, false},
		{"connection reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true, false},
		{"deadline (pool acquire)", context.DeadlineExceeded, true, false},
		{"invalid UTF-8", pg("22021"), false, true},
		{"NUL in jsonb", pg("22P05"), false, true},
		{"unique violation", pg("23505"), false, false},
		{"check violation", pg("23514"), false, false},
		{"syntax error", pg("42601"), false, false},
		{"query canceled by user", pg("57014"), false, false},
		{"bad password", pg("28P01"), false, false},
		{"no rows", pgx.ErrNoRows, false, false},
		{"closed pool", puddle.ErrClosedPool, false, false},
		{"canceled", context.Canceled, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pgerr.Classify(tc.err, errInvalid)
			assert.Equal(t, tc.temporary, mailbricks.IsTemporary(got), "IsTemporary of the classified %v", tc.err)
			assert.Equal(t, tc.invalid, errors.Is(got, errInvalid), "invalid-argument class of %v", tc.err)
			assert.ErrorIs(t, got, tc.err, "the classified error must keep the engine's error in its chain")
		})
	}
	assert.NoError(t, pgerr.Classify(nil, errInvalid))
}

func TestIsConflict(t *testing.T) {
	assert.True(t, pgerr.IsConflict(pg("40P01")))
	assert.True(t, pgerr.IsConflict(fmt.Errorf("lease: %w", pg("40001"))))
	assert.True(t, pgerr.IsConflict(pgerr.Classify(pg("40P01"), errInvalid)))
	for _, err := range []error{pg("08006"), pg("23505"), pg("57P01"), io.EOF, nil} {
		assert.False(t, pgerr.IsConflict(err), "%v", err)
	}
}
