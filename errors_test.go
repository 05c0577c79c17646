package mailbricks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mailbricks/mailbricks"
)

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func TestIsTemporary(t *testing.T) {
	base := errors.New("engine: failover in progress")
	marked := mailbricks.Temporary(base)
	wrapped := fmt.Errorf("mailbox: append: %w", marked)

	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"marked", marked, true},
		{"marked and wrapped", wrapped, true},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"timeout method", &net.OpError{Op: "read", Err: timeoutErr{}}, true},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"eof", io.ErrUnexpectedEOF, false},
		{"invalid user", mailbricks.ErrInvalidUser, false},
	} {
		assert.Equal(t, tc.want, mailbricks.IsTemporary(tc.err), tc.name)
	}
	// The engine's error stays reachable through the mark.
	assert.ErrorIs(t, wrapped, base, "Temporary must keep the wrapped error in the chain")
	assert.ErrorIs(t, wrapped, mailbricks.ErrTemporary)
	assert.Equal(t, base.Error(), marked.Error(), "Temporary must not change the message")
	assert.Same(t, marked, mailbricks.Temporary(marked), "marking twice must not wrap twice")
	assert.NoError(t, mailbricks.Temporary(nil))
}

func ExampleIsTemporary() {
	err := fmt.Errorf("queue: lease: %w", mailbricks.Temporary(errors.New("no responders")))
	fmt.Println(mailbricks.IsTemporary(err))
	fmt.Println(mailbricks.IsTemporary(mailbricks.ErrInvalidUser))
	// Output:
	// true
	// false
}
