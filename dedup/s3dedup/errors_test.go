package s3dedup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/dedup"
)

func s3err(status int, code string) error {
	return minio.ErrorResponse{StatusCode: status, Code: code, Message: code}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		temporary bool
	}{
		{"503 SlowDown", s3err(503, "SlowDown"), true},
		{"503 ServiceUnavailable", s3err(503, "ServiceUnavailable"), true},
		{"500 InternalError", s3err(500, "InternalError"), true},
		{"502 without code", s3err(502, ""), true},
		{"400 RequestTimeout", s3err(400, "RequestTimeout"), true},
		{"429", s3err(429, "TooManyRequests"), true},
		{"wrapped 503", fmt.Errorf("put: %w", s3err(503, "SlowDown")), true},
		{"connection refused", &url.Error{Op: "Put", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{"connection dropped", io.ErrUnexpectedEOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"404 NoSuchKey", s3err(404, "NoSuchKey"), false},
		{"403 AccessDenied", s3err(403, "AccessDenied"), false},
		{"412 PreconditionFailed", s3err(412, "PreconditionFailed"), false},
		{"not found", dedup.ErrNotFound, false},
		{"closed", dedup.ErrClosed, false},
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
