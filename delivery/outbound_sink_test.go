package delivery

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startSmtpSink runs Postfix's smtp-sink on ip:port, dumping each
// transaction into dir (-d), with extra arguments; it skips the test when
// smtp-sink is absent (fails under CI=true).
func startSmtpSink(t *testing.T, ip string, port int, dir string, extra ...string) {
	t.Helper()
	bin := needBinary(t, "smtp-sink")
	args := []string{}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // smtp-sink refuses to run as root
	}
	args = append(args, extra...)
	args = append(args, "-d", filepath.Join(dir, "%M."), fmt.Sprintf("%s:%d", ip, port), "100")
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait until it listens (polling a real process, not clock logic).
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return
		}
		require.Less(t, i, 200, "smtp-sink did not listen: %v", err)
		time.Sleep(10 * time.Millisecond)
	}
}

// sinkDir makes a dump directory smtp-sink can write to after dropping
// root privileges (t.TempDir's parent is private).
func sinkDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mailbricks-sink-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o777))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// sinkDumps reads smtp-sink's dump files: the X- lines smtp-sink adds,
// then the message as received (LF line endings).
func sinkDumps(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out = append(out, string(b))
	}
	return out
}

func TestOutboundToSmtpSink(t *testing.T) {
	port := mxPort(t, "127.0.0.41", "127.0.0.42")
	okDir, badDir := sinkDir(t), sinkDir(t)
	startSmtpSink(t, "127.0.0.41", port, okDir)
	startSmtpSink(t, "127.0.0.42", port, badDir, "-f", "RCPT", "-B", "550 5.1.1 Recipient address rejected")
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	env := newOutEnv(t, port, func(o *OutboundOptions) {
		o.DKIM = []DKIMKey{{Domain: "example.com", Selector: "s1", Signer: key}}
	})
	env.mx("sink1.test", "mx.sink1.test", "127.0.0.41")
	env.mx("sink2.test", "mx.sink2.test", "127.0.0.41")
	env.mx("reject.test", "mx.reject.test", "127.0.0.42")
	for i := range 3 {
		id := fmt.Sprintf("tx%d", i)
		env.submit(id, "alice@example.com", []string{"a@sink1.test", "b@sink1.test", "c@sink2.test"}, testMessage("alice@example.com", "a@sink1.test", "sink"+id))
	}
	env.submit("txr", "alice@example.com", []string{"x@reject.test"}, testMessage("alice@example.com", "x@reject.test", "rejected"))
	env.drain()

	// smtp-sink closes its dump files after the reply; give it a moment.
	var dumps []string
	for i := 0; i < 100; i++ {
		if dumps = sinkDumps(t, okDir); len(dumps) == 6 {
			break
		}
		time.Sleep(20 * time.Millisecond) // a real process writing files
	}
	require.Len(t, dumps, 6, "3 messages × 2 domains arrived at smtp-sink")
	rcpts := map[string]int{}
	for _, d := range dumps {
		assert.Contains(t, d, "X-Mail-Args: <alice@example.com>")
		assert.Contains(t, d, "X-Helo-Args: out.example.com")
		for _, l := range strings.Split(d, "\n") {
			if v, ok := strings.CutPrefix(l, "X-Rcpt-Args: "); ok {
				rcpts[v]++
			}
		}
		assert.Contains(t, d, "\n.this line starts with a dot\n", "dot-stuffing survives a real MTA")
		assert.Contains(t, d, "\nbare LF here\nand end.\n")
		// The message after smtp-sink's own lines verifies.
		i := strings.Index(d, "DKIM-Signature:")
		require.GreaterOrEqual(t, i, 0)
		msg := strings.ReplaceAll(d[i:], "\n", "\r\n")
		vs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) {
			return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
		}})
		require.NoError(t, err)
		require.Len(t, vs, 1)
		require.NoError(t, vs[0].Err, "the DKIM signature verifies on what smtp-sink received")
	}
	assert.Equal(t, map[string]int{"<a@sink1.test>": 3, "<b@sink1.test>": 3, "<c@sink2.test>": 3}, rcpts)

	st, done := env.status("txr", "reject.test")
	require.True(t, done, "%+v %v", st, st[0].Err)
	require.Equal(t, "failed", st[0].State)
	assert.Equal(t, 550, st[0].Err.Code)
	assert.Equal(t, [3]int{5, 1, 1}, st[0].Err.Enhanced)
	inbox := env.inbox("alice@example.com")
	require.Len(t, inbox, 1)
	out := parseDSNOf(t, inbox[0])
	require.Len(t, out, 1)
	assert.Equal(t, "5.1.1", out[0].Enhanced)
	assert.Empty(t, sinkDumps(t, badDir))
}
