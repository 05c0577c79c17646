package redisreputation

import (
	"errors"
	"io"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/mailbricks/mailbricks"
)

// classify marks err with [mailbricks.Temporary] if a retry may cure it:
// a connection that failed or dropped, a timeout (of a command or of the
// client's pool), and the replies of a server that is not ready yet:
// LOADING (reading its dataset), TRYAGAIN (a cluster slot migrating),
// CLUSTERDOWN, MASTERDOWN, READONLY (a write reached a replica during a
// failover) and max clients reached. Anything else, a closed client
// ([redis.ErrClosed]) included, is returned as is.
func classify(err error) error {
	if err == nil || !isTransient(err) {
		return err
	}
	return mailbricks.Temporary(err)
}

func isTransient(err error) bool {
	if errors.Is(err, redis.ErrClosed) {
		return false
	}
	var op *net.OpError
	switch {
	case redis.IsLoadingError(err), redis.IsTryAgainError(err), redis.IsClusterDownError(err),
		redis.IsMasterDownError(err), redis.IsReadOnlyError(err), redis.IsMaxClientsError(err),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &op):
		return true
	}
	return mailbricks.IsTemporary(err)
}
