package s3dedup

import (
	"errors"
	"io"
	"net"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/mailbricks/mailbricks"
)

// transientCodes are the S3 error codes of a server asking the client to
// come back later.
var transientCodes = map[string]bool{
	"SlowDown":           true,
	"RequestTimeout":     true,
	"ServiceUnavailable": true,
	"InternalError":      true,
	"OperationAborted":   true,
	// A write racing the removal of its directory on a file-system
	// backed server (see Backend.put): no key of ours is a directory.
	"ExistingObjectIsDirectory":     true,
	"XMinioObjectExistsAsDirectory": true,
}

// classify marks err with [mailbricks.Temporary] if a retry may cure it:
// a 5xx or 429 reply, the codes in transientCodes, a connection that
// failed or dropped, a timeout. Anything else (not found, access denied,
// a failed precondition) is returned as is.
func classify(err error) error {
	if err == nil || !isTransient(err) {
		return err
	}
	return mailbricks.Temporary(err)
}

func isTransient(err error) bool {
	var r minio.ErrorResponse
	if errors.As(err, &r) {
		return r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests || transientCodes[r.Code]
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return mailbricks.IsTemporary(err)
}
