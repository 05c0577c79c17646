package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binary is the mailserver built once by TestMain; the end-to-end tests
// start it as a separate process and talk to it only over the network.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailserver-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mailserver")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race") // the server runs under the race detector too
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireBinary skips the test when a Debian binary is missing, except
// under CI=true, where it fails.
func requireBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", path, err)
		}
		t.Skipf("%s not installed", path)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is one mailserver process on its own free loopback ports.
type server struct {
	t                *testing.T
	data             string
	args             []string
	smtp, sub, httpA string
	imap             string
	extra            []string
	started          bool // the process has come up once on its ports
	cmd              *exec.Cmd
	out, errOut      *syncBuffer
	exited           chan struct{}
}

// pickPorts chooses free loopback ports and builds the flags with them.
func (s *server) pickPorts() {
	s.smtp, s.sub, s.httpA, s.imap = freePort(s.t), freePort(s.t), freePort(s.t), freePort(s.t)
	s.args = append([]string{"-data", s.data, "-smtp", s.smtp, "-submission", s.sub, "-http", s.httpA, "-imap", s.imap, "-demo=false", "-log-level", "warn"}, s.extra...)
}

// newServer prepares a server with data directory data (made if "") and
// extra flags; it does not start it.
func newServer(t *testing.T, data string, extra ...string) *server {
	t.Helper()
	if data == "" {
		data = filepath.Join(t.TempDir(), "data")
	}
	s := &server{t: t, data: data, extra: extra}
	s.pickPorts()
	t.Cleanup(func() {
		if s.cmd != nil && s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// user runs `mailserver user add NAME -password PW` with the server's
// flags.
func (s *server) user(name, pw string) {
	s.t.Helper()
	// The cheapest bcrypt cost: the server checks each user's password
	// once, and under the race detector bcrypt is slow.
	args := append(append([]string{}, s.args...), "-bcrypt-cost", "4", "user", "add", name, "-password", pw)
	out, err := exec.Command(binary, args...).CombinedOutput()
	require.NoError(s.t, err, "user add: %s", out)
}

// start starts the process and waits until /healthz answers. A port
// chosen free can be taken by another process before the server binds
// it; on its first start the server then gets new ports (a restart keeps
// its ports: the tests' clients know them).
func (s *server) start() {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		err := s.startOnce()
		if err == nil {
			s.started = true
			return
		}
		if s.started || attempt == 3 || !strings.Contains(s.errOut.String(), "address already in use") {
			s.t.Fatal(err)
		}
		s.t.Logf("port taken before the server bound it, new ports: %v", err)
		s.pickPorts()
	}
}

// startOnce starts the process and waits until /healthz answers or the
// process exits.
func (s *server) startOnce() error {
	s.out, s.errOut = &syncBuffer{}, &syncBuffer{}
	s.cmd = exec.Command(binary, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.errOut
	require.NoError(s.t, s.cmd.Start())
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.httpA + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("mailserver exited at start: %v\nstdout:\n%s\nstderr:\n%s", s.cmd.ProcessState, s.out, s.errOut)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("mailserver not healthy after 60s\nstderr:\n%s", s.errOut)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	require.NoError(s.t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.t.Fatal("mailserver did not stop within 60s of SIGTERM")
	}
	require.True(s.t, s.cmd.ProcessState.Success(), "exit after SIGTERM: %v\nstderr:\n%s", s.cmd.ProcessState, s.errOut)
	require.NotContains(s.t, s.errOut.String(), "DATA RACE")
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.t.Helper()
	s.cmd.Process.Kill()
	<-s.exited
	require.NotContains(s.t, s.errOut.String(), "DATA RACE")
}

func (s *server) client(user, pw string) *client {
	return &client{base: "http://" + s.httpA, user: user, pw: pw}
}

// client calls the JSON API as one user.
type client struct {
	base, user, pw, token string
}

func (c *client) request(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	} else if c.user != "" {
		req.SetBasicAuth(c.user, c.pw)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// call makes a request that must answer want, and decodes the JSON answer
// into out (if not nil).
func (c *client) call(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	code, b := c.request(t, method, path, body)
	require.Equal(t, want, code, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s %s: %s", method, path, b)
	}
}

type listResp struct {
	Messages []messageJSON `json:"messages"`
	Cursor   string        `json:"cursor"`
}

type searchResp struct {
	Total  int           `json:"total"`
	Hits   []messageJSON `json:"hits"`
	Cursor string        `json:"cursor"`
}

type foldersResp struct {
	Folders []folderJSON `json:"folders"`
}

func (c *client) folder(t *testing.T, name string) folderJSON {
	t.Helper()
	var fr foldersResp
	c.call(t, "GET", "/api/folders", nil, 200, &fr)
	for _, f := range fr.Folders {
		if f.Name == name {
			return f
		}
	}
	return folderJSON{Name: name}
}

// all lists every message of a folder, following cursors.
func (c *client) all(t *testing.T, folder string) []messageJSON {
	t.Helper()
	var out []messageJSON
	cursor := ""
	for {
		var lr listResp
		c.call(t, "GET", "/api/messages?limit=1000&folder="+folder+"&cursor="+cursor, nil, 200, &lr)
		out = append(out, lr.Messages...)
		if lr.Cursor == "" {
			return out
		}
		cursor = lr.Cursor
	}
}

func (c *client) search(t *testing.T, q string) searchResp {
	t.Helper()
	var sr searchResp
	c.call(t, "GET", "/api/search?limit=500&q="+urlQuery(q), nil, 200, &sr)
	return sr
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "+", "%2B", "#", "%23", "\"", "%22", ":", "%3A")
	return r.Replace(s)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events is an open /api/events stream.
type events struct {
	ch   chan eventJSON
	resp *http.Response
}

func (c *client) events(t *testing.T) *events {
	t.Helper()
	req, err := http.NewRequest("GET", c.base+"/api/events", nil)
	require.NoError(t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	} else {
		req.SetBasicAuth(c.user, c.pw)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	e := &events{ch: make(chan eventJSON, 1000), resp: resp}
	ready := make(chan struct{})
	go func() {
		defer close(e.ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if name == "ready" {
					close(ready)
					continue
				}
				var ev eventJSON
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) == nil {
					e.ch <- ev
				}
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("no ready event within 30s")
	}
	return e
}

// next returns the next event matching pred, failing after timeout.
func (e *events) next(t *testing.T, timeout time.Duration, pred func(eventJSON) bool) eventJSON {
	t.Helper()
	tm := time.After(timeout)
	for {
		select {
		case ev, ok := <-e.ch:
			require.True(t, ok, "event stream ended")
			if pred(ev) {
				return ev
			}
		case <-tm:
			t.Fatalf("no matching event within %v", timeout)
		}
	}
}

// swaks sends one message with swaks and fails the test unless it was
// accepted.
func swaks(t *testing.T, server, from, to string, args ...string) {
	t.Helper()
	requireBinary(t, "/usr/bin/swaks")
	all := append([]string{"--server", server, "--from", from, "--to", to, "--helo", "client.example.org", "--timeout", "60"}, args...)
	out, err := exec.Command("/usr/bin/swaks", all...).CombinedOutput()
	require.NoError(t, err, "swaks: %s", out)
	require.Contains(t, string(out), "<-  250 2.0.0", "swaks: %s", out)
}

func execCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// sendPlain sends one message over SMTP without STARTTLS (the test server's
// certificate is self-signed) and returns the server's verdict: nil only
// after a 250 to the end of data.
func sendPlain(addr, from, to, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
