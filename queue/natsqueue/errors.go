package natsqueue

import (
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailbricks/mailbricks"
)

// transientErrs are the NATS and JetStream errors a later retry may not
// meet: the server or its JetStream leader is unreachable, restarting or
// being elected, or the client is reconnecting.
var transientErrs = []error{
	nats.ErrNoResponders,
	nats.ErrTimeout,
	nats.ErrConnectionClosed,
	nats.ErrConnectionReconnecting,
	nats.ErrConnectionDraining,
	nats.ErrDisconnected,
	nats.ErrStaleConnection,
	nats.ErrNoServers,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrServerShutdown,
	jetstream.ErrConsumerLeadershipChanged,
	jetstream.ErrNoHeartbeat,
	jetstream.ErrConnectionClosed,
	jetstream.ErrAsyncPublishTimeout,
	// The client reports "not enabled" when no JetStream server answers,
	// which is also what a cluster electing its meta leader looks like.
	jetstream.ErrJetStreamNotEnabled,
}

// classify marks err with [mailbricks.Temporary] if a retry may cure it:
// one of transientErrs, or a JetStream API error with status 503 (cluster
// or stream leader not available) other than JetStream not being enabled
// for the account, which is configuration. Anything else is returned as
// is.
func classify(err error) error {
	if err == nil || !isTransient(err) {
		return err
	}
	return mailbricks.Temporary(err)
}

func isTransient(err error) bool {
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		a := je.APIError()
		if a.Code == 503 && a.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabledForAccount {
			return true
		}
	}
	for _, t := range transientErrs {
		if errors.Is(err, t) {
			return true
		}
	}
	return mailbricks.IsTemporary(err)
}
