package natsqueue

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/queue"
)

// apiErr is a JetStream API error as the server sends it.
type apiErr struct{ a *jetstream.APIError }

func (e apiErr) Error() string                 { return e.a.Error() }
func (e apiErr) APIError() *jetstream.APIError { return e.a }

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		temporary bool
	}{
		{"no responders", nats.ErrNoResponders, true},
		{"timeout", fmt.Errorf("publish: %w", nats.ErrTimeout), true},
		{"connection closed", nats.ErrConnectionClosed, true},
		{"reconnecting", nats.ErrConnectionReconnecting, true},
		{"disconnected", nats.ErrDisconnected, true},
		{"no stream response (leader election)", jetstream.ErrNoStreamResponse, true},
		{"jetstream not ready", jetstream.ErrJetStreamNotEnabled, true},
		{"jetstream connection closed", jetstream.ErrConnectionClosed, true},
		{"leadership changed", jetstream.ErrConsumerLeadershipChanged, true},
		{"server shutdown", jetstream.ErrServerShutdown, true},
		{"cluster not available 503", apiErr{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster not available"}}, true},
		{"deadline", context.DeadlineExceeded, true},
		{"not enabled for account", jetstream.ErrJetStreamNotEnabledForAccount, false},
		{"stream not found", jetstream.ErrStreamNotFound, false},
		{"bad request 400", apiErr{&jetstream.APIError{Code: 400, ErrorCode: 10003}}, false},
		{"max payload", nats.ErrMaxPayload, false},
		{"lease lost", queue.ErrLeaseLost, false},
		{"closed backend", queue.ErrClosed, false},
		{"canceled", context.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			assert.Equal(t, tc.temporary, mailbricks.IsTemporary(got), "IsTemporary of the classified %v", tc.err)
			assert.True(t, errors.Is(got, tc.err), "the classified error must keep the engine's error in its chain")
		})
	}
	assert.NoError(t, classify(nil))
}
