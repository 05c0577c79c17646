package delivery

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/mailbox"
)

func TestSubmit(t *testing.T) {
	env := newSubEnv(t, nil)
	ctx := context.Background()
	const user = mailbricks.UserID("alice@example.org")
	const body = "From: alice@example.org\r\nTo: carol@remote.example\r\nSubject: api\r\n\r\nHello.\r\n"
	res, err := env.sub.Submit(ctx, user, "Alice@example.org", []string{"carol@remote.example", "dave@other.example"}, strings.NewReader(body),
		&SubmitOptions{ClientIP: netip.MustParseAddr("192.0.2.7")})
	require.NoError(t, err)

	jobs := env.outgoing(t)
	require.Len(t, jobs, 1)
	j := jobs[0]
	assert.Equal(t, res.Job.ID, j.ID)
	assert.Equal(t, user, j.User)
	assert.Equal(t, "Alice@example.org", j.From)
	assert.Equal(t, []string{"carol@remote.example", "dave@other.example"}, j.Recipients)
	assert.Equal(t, "192.0.2.7", j.ClientIP)
	assert.Equal(t, body, env.blob(t, j.Blob), "the blob is the message as given")
	assert.True(t, strings.HasPrefix(j.Header, "Received: from [192.0.2.7]\r\n\t(authenticated user alice@example.org)\r\n\tby smtp.example.net with HTTP id "+j.ID+";\r\n\t"), j.Header)
	assert.Contains(t, j.Header, "\r\nMessage-ID: <"+j.ID+"@smtp.example.net>\r\nDate: ", "the fields the message lacked are added")
	require.NoError(t, env.blocks.Blobs.Unlink(ctx, j.Blob, OutgoingBlobOwner(j.ID)), "the blob is linked for the outbound worker")

	msgs, bodies := env.sent(t, user)
	require.Len(t, msgs, 1, "a Sent copy")
	assert.Equal(t, res.Sent.ID, msgs[0].ID)
	assert.Contains(t, msgs[0].Flags, mailbox.FlagSeen)
	assert.True(t, strings.HasSuffix(bodies[0], body) && strings.HasPrefix(bodies[0], "Message-ID: <"+j.ID+"@"), bodies[0])
	assert.NotContains(t, bodies[0], "Received:", "the Sent copy has no trace field")

	res, err = env.sub.Submit(ctx, user, "alice@example.org", []string{"erin@remote.example"}, strings.NewReader(body), &SubmitOptions{Protocol: "JMAP"})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(res.Job.Header, "Received: (authenticated user alice@example.org)\r\n\tby smtp.example.net with JMAP id "), "no client IP, no from clause: %q", res.Job.Header)
	assert.Contains(t, res.Job.Header, "\r\n\tfor <erin@remote.example>;\r\n")
}

func TestSubmitRefuses(t *testing.T) {
	env := newSubEnv(t, func(o *SubmissionOptions) {
		o.MaxMessageBytes = 1000
		o.MaxRecipients = 3
	})
	ctx := context.Background()
	const user = mailbricks.UserID("alice@example.org")
	const ok = "Subject: x\r\n\r\nfine\r\n"
	for _, c := range []struct {
		name  string
		from  string
		rcpts []string
		body  string
		opts  *SubmitOptions
		want  error
	}{
		{"foreign sender", "mallory@example.org", []string{"a@b.example"}, ok, nil, ErrSenderNotAllowed},
		{"empty sender", "", []string{"a@b.example"}, ok, nil, ErrInvalidAddress},
		{"sender with CRLF", "alice@example.org\r\nRCPT TO:<x@y>", []string{"a@b.example"}, ok, nil, ErrInvalidAddress},
		{"no recipients", "alice@example.org", nil, ok, nil, ErrInvalidAddress},
		{"bad recipient", "alice@example.org", []string{"a@b.example", "not an address"}, ok, nil, ErrInvalidAddress},
		{"too many recipients", "alice@example.org", []string{"a@b.example", "c@b.example", "d@b.example", "e@b.example"}, ok, nil, ErrTooManyRecipients},
		{"bare LF", "alice@example.org", []string{"a@b.example"}, "Subject: x\n\nbody\n", nil, ErrBareLineEnding},
		{"smuggled end of data", "alice@example.org", []string{"a@b.example"}, "Subject: x\r\n\r\nbody\n.\r\nMAIL FROM:<x@y>\r\n", nil, ErrBareLineEnding},
		{"NUL", "alice@example.org", []string{"a@b.example"}, "Subject: x\r\n\r\nbo\x00dy\r\n", nil, ErrNUL},
		{"too large", "alice@example.org", []string{"a@b.example"}, "Subject: x\r\n\r\n" + strings.Repeat("y", 2000) + "\r\n", nil, ErrMessageTooLarge},
		{"bad protocol", "alice@example.org", []string{"a@b.example"}, ok, &SubmitOptions{Protocol: "HTTP\r\nX"}, ErrInvalidOptions},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := env.sub.Submit(ctx, user, c.from, c.rcpts, strings.NewReader(c.body), c.opts)
			require.ErrorIs(t, err, c.want)
		})
	}
	_, err := env.sub.Submit(ctx, "", "alice@example.org", []string{"a@b.example"}, strings.NewReader(ok), nil)
	require.Error(t, err, "an invalid user")

	boom := errors.New("client went away")
	_, err = env.sub.Submit(ctx, user, "alice@example.org", []string{"a@b.example"}, io.MultiReader(strings.NewReader("Subject: x\r\n\r\npart"), iotest.ErrReader(boom)), nil)
	require.ErrorIs(t, err, boom, "the body reader's error")

	assert.Empty(t, env.outgoing(t), "nothing refused is queued")
	msgs, _ := env.sent(t, user)
	assert.Empty(t, msgs, "nothing refused gets a Sent copy")

	_, err = env.sub.Submit(ctx, user, "alice@example.org", []string{"a@b.example"}, strings.NewReader(strings.Repeat("z", 990)+"\r\n"), nil)
	require.NoError(t, err, "a message just under the limit is accepted")
}
