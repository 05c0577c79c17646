package delivery

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/lsm/vfs"
	"github.com/mailbricks/mailbricks/reputation"
	"github.com/mailbricks/mailbricks/reputation/lsmreputation"
)

func TestFeedbackLoop(t *testing.T) {
	port := mxPort(t, "127.0.0.20")
	mx := startMX(t, "127.0.0.20", port, nil)
	fs := vfs.NewMem()
	var tracker *reputation.Tracker
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		var err error
		tracker, err = lsmreputation.OpenTracker("rep", &lsmreputation.Options{FS: fs, Tracker: &reputation.Options{
			Pools:       []reputation.Pool{{IPs: []reputation.IP{{Addr: "127.0.0.1"}}}},
			Resolver:    o.Resolver,
			Now:         o.Now,
			DefaultRate: 1000, DefaultBurst: 1000,
		}})
		require.NoError(t, err)
		o.Reputation = tracker
		o.BounceAddress = "bounces@example.com"
	})
	t.Cleanup(func() { tracker.Close() })
	env.mx("fb.test", "mx.fb.test", "127.0.0.20")
	env.submit("tx1", "alice@example.com", []string{"later-gone@fb.test"}, testMessage("alice@example.com", "later-gone@fb.test", "fb1"))
	env.submit("tx2", "alice@example.com", []string{"angry@fb.test"}, testMessage("alice@example.com", "angry@fb.test", "fb2"))
	env.drain()
	got := mx.messages()
	require.Len(t, got, 2)
	tag := stateTag("tx1", "fb.test")
	assert.Equal(t, "bounces+"+tag+"@example.com", got[0].From, "the envelope sender carries the message's tag")

	fb, err := NewFeedback(env.state, tracker, "bounces@example.com", nil)
	require.NoError(t, err)
	_, ok := fb.IsBounce("Bounces+abc@EXAMPLE.com")
	assert.True(t, ok)
	_, ok = fb.IsBounce("bouncesx@example.com")
	assert.False(t, ok)

	// The remote server accepted, then bounced later (its own DSN, naming
	// the recipient under a forwarded name).
	var dsn bytes.Buffer
	require.NoError(t, WriteDSN(&dsn, &DSN{ReportingMTA: "mx.fb.test", From: "MAILER-DAEMON@mx.fb.test", To: got[0].From, Date: env.clock.Now(), ID: "x",
		Recipients: []DSNRecipient{{Address: "forwarded@elsewhere.test", Action: "failed", Status: [3]int{5, 1, 1}, Diagnostic: "550 5.1.1 user unknown"}},
		Header:     []byte("Message-ID: <fb1@example.com>\r\n")}))
	job := &IncomingJob{ID: "in1", Recipients: []Recipient{{Address: got[0].From}}}
	v, err := fb.Filter(nil)(context.Background(), job, bytes.NewReader(dsn.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, VerdictReject, v, "a report to the bounce address alone is consumed")
	_, err = tracker.Suppressed(context.Background(), "later-gone@fb.test")
	require.NoError(t, err, "the bounce maps back to the recipient through the tag and suppresses it")

	// A complaint (ARF) at the tagged address of the second message.
	arf := "From: fbl@fb.test\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nComplaint\r\n" +
		"--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: test\r\nVersion: 1\r\n\r\n" +
		"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <fb2@example.com>\r\n\r\n--B--\r\n"
	outs, err := fb.Handle(context.Background(), got[1].From, strings.NewReader(arf))
	require.NoError(t, err)
	require.Len(t, outs, 1)
	assert.Equal(t, "angry@fb.test", outs[0].Recipient)
	assert.Equal(t, reputation.KindComplaint, outs[0].Kind)
	assert.Equal(t, "127.0.0.1", outs[0].IP, "the source IP comes from the delivery state")
	s, err := tracker.Suppressed(context.Background(), "angry@fb.test")
	require.NoError(t, err)
	assert.Equal(t, reputation.ReasonComplaint, s.Reason)

	// Not a report: an error matching ErrNotReport.
	_, err = fb.Handle(context.Background(), "bounces@example.com", strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	assert.True(t, errors.Is(err, reputation.ErrNotReport), "%v", err)
	_, err = fb.Handle(context.Background(), "someone@example.com", strings.NewReader(arf))
	assert.True(t, errors.Is(err, ErrUnknownRecipient))
}
