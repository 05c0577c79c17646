package natsqueue

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// electionErrs are the errors of a request that no server took: nobody
// listens on the subject (a stream or consumer leader is being elected,
// interest has not reached this server yet) or JetStream has no meta
// leader. Retrying such a request cannot apply it twice.
var electionErrs = []error{
	nats.ErrNoResponders,
	jetstream.ErrNoStreamResponse,
	jetstream.ErrConsumerLeadershipChanged,
	jetstream.ErrJetStreamNotEnabled,
	nats.ErrConnectionReconnecting,
	nats.ErrDisconnected,
}

// isElection reports whether err is one of electionErrs or a JetStream
// API error with status 503 (cluster, stream or consumer leader not
// available) other than JetStream not being enabled for the account.
func isElection(err error) bool {
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		a := je.APIError()
		if a.Code == 503 && a.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabledForAccount {
			return true
		}
	}
	for _, t := range electionErrs {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// retry calls op until it succeeds, fails with an error other than an
// election's or an attempt's timeout, ctx ends or [Options.RetryFor]
// passes, and returns op's last error. Each attempt gets a context
// bounded by [Options.AttemptTimeout] when idempotent is true (a
// timed-out attempt may have been applied, so only idempotent requests
// are retried after one). The delay between attempts grows from 50 ms to
// 1 s.
func (b *Backend) retry(ctx context.Context, idempotent bool, op func(ctx context.Context) error) error {
	deadline := time.Now().Add(b.opts.RetryFor)
	delay := 50 * time.Millisecond
	for {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if idempotent {
			actx, cancel = context.WithTimeout(ctx, b.opts.AttemptTimeout)
		}
		err := op(actx)
		timedOut := idempotent && ctx.Err() == nil && actx.Err() != nil
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if !isElection(err) && !(timedOut || idempotent && errors.Is(err, nats.ErrTimeout)) {
			return err
		}
		if time.Now().Add(delay).After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}
