package redisreputation

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/reputation"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		temporary bool
	}{
		{"loading", errors.New("LOADING Redis is loading the dataset in memory"), true},
		{"tryagain", errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"clusterdown", errors.New("CLUSTERDOWN The cluster is down"), true},
		{"masterdown", errors.New("MASTERDOWN Link with MASTER is down"), true},
		{"readonly replica", errors.New("READONLY You can't write against a read only replica."), true},
		{"max clients", errors.New("ERR max number of clients reached"), true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"connection dropped", io.EOF, true},
		{"deadline", context.DeadlineExceeded, true},
		{"wrong type", errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"script error", errors.New("ERR Error running script"), false},
		{"nil reply", redis.Nil, false},
		{"client closed", redis.ErrClosed, false},
		{"backend closed", reputation.ErrClosed, false},
		{"canceled", context.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			assert.Equal(t, tc.temporary, mailbricks.IsTemporary(got), "IsTemporary of the classified %v", tc.err)
			assert.True(t, errors.Is(got, tc.err), "the classified error must keep the engine's error in its chain")
			assert.Equal(t, tc.temporary, mailbricks.IsTemporary(wrap("op", "k", tc.err)), "wrap must classify")
		})
	}
	assert.NoError(t, classify(nil))
}
