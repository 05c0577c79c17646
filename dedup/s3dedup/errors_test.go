package s3dedup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		{"409 ExistingObjectIsDirectory", s3err(409, "ExistingObjectIsDirectory"), true},
		{"409 XMinioObjectExistsAsDirectory", s3err(409, "XMinioObjectExistsAsDirectory"), true},
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

// TestPutRetriesDirRace serves PUTs that fail as a file-system backed
// server does when a write races the removal of its directory: put must
// rewind the body and try again, and stop after dirRaceTries.
func TestPutRetriesDirRace(t *testing.T) {
	const body = "the object's bytes"
	for _, tc := range []struct {
		name     string
		failures int
		code     string
		wantErr  bool
		wantPuts int
	}{
		{"versitygw", 3, "ExistingObjectIsDirectory", false, 4},
		{"minio", 1, "XMinioObjectExistsAsDirectory", false, 2},
		{"gives up", 100, "ExistingObjectIsDirectory", true, dirRaceTries},
		{"other 409 not retried", 100, "BucketNotEmpty", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var puts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ := io.ReadAll(r.Body)
				n := int(puts.Add(1))
				if r.Method != http.MethodPut || !strings.Contains(string(got), body) { // the body may come in aws-chunked framing
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				if n <= tc.failures {
					w.Header().Set("Content-Type", "application/xml")
					w.WriteHeader(http.StatusConflict)
					fmt.Fprintf(w, "<Error><Code>%s</Code><Message>x</Message></Error>", tc.code)
					return
				}
				w.Header().Set("ETag", `"0123"`)
				w.WriteHeader(http.StatusOK)
			}))
			defer srv.Close()
			c, err := NewClient("http://k:s@" + strings.TrimPrefix(srv.URL, "http://"))
			require.NoError(t, err)
			b := &Backend{c: c, bucket: "mail"}
			err = b.put(context.Background(), "links/x/y", strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{DisableMultipart: true})
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.wantPuts, int(puts.Load()), "PUT requests")
		})
	}
}
