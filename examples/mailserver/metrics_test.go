package main

import (
	"bufio"
	"io"
	"net/http"
	"net/smtp"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scrape fetches /metrics and returns each sample ("name{labels}" as
// printed) with its value, and each family's TYPE.
func scrape(t *testing.T, addr string) (map[string]float64, map[string]string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	samples, types := map[string]float64{}, map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		samples[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return samples, types
}

var metricNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// TestMetrics scrapes /metrics after SMTP, delivery and HTTP traffic and
// checks the counters moved and the names follow Prometheus conventions.
func TestMetrics(t *testing.T) {
	s := newServer(t, "")
	const user, pw = "metrics@example.test", "metrics-pw-1"
	s.user(user, pw)
	s.start()
	c := s.client(user, pw)

	require.NoError(t, sendPlain(s.smtp, "a@example.org", user, mailText("a@example.org", user, "counted", "hello")))
	err := sendPlain(s.smtp, "a@example.org", "nobody@example.test", mailText("a@example.org", "nobody@example.test", "x", "y"))
	require.Error(t, err, "an unknown recipient is refused")
	// Submission with a wrong password, then the right one.
	sc, err := smtp.Dial(s.sub)
	require.NoError(t, err)
	require.NoError(t, sc.Hello("client.example.org"))
	require.Error(t, sc.Auth(plainAuthNoTLS("", user, "wrong")))
	sc.Close()
	waitFor(t, 20*time.Second, "delivered", func() bool { return c.folder(t, "INBOX").Total == 1 })
	c.call(t, "GET", "/api/folders", nil, 200, nil)
	c.call(t, "GET", "/api/messages/not-an-id", nil, 400, nil)
	req, err := http.NewRequest("GET", c.base+"/api/events", nil)
	require.NoError(t, err)
	req.SetBasicAuth(user, pw)
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, 200, stream.StatusCode)

	var m map[string]float64
	var types map[string]string
	waitFor(t, 10*time.Second, "the delivery counted", func() bool {
		m, types = scrape(t, s.httpA)
		return m[`mailbricks_delivery_jobs_total{result="delivered",topic="incoming"}`] >= 1
	})
	require.GreaterOrEqual(t, m[`mailbricks_smtp_sessions_total{port="smtp"}`], 2.0)
	require.GreaterOrEqual(t, m[`mailbricks_smtp_sessions_total{port="submission"}`], 1.0)
	require.GreaterOrEqual(t, m[`mailbricks_smtp_replies_total{class="2xx",command="data",port="smtp"}`], 1.0)
	require.GreaterOrEqual(t, m[`mailbricks_smtp_replies_total{class="5xx",command="rcpt",port="smtp"}`], 1.0)
	require.GreaterOrEqual(t, m[`mailbricks_smtp_replies_total{class="5xx",command="auth",port="submission"}`], 1.0)
	require.Positive(t, m[`mailbricks_smtp_accepted_bytes_total{port="smtp"}`])
	require.Contains(t, m, `mailbricks_queue_jobs{state="ready",topic="incoming"}`)
	require.Contains(t, m, `mailbricks_queue_jobs{state="dead",topic="outgoing"}`)
	require.GreaterOrEqual(t, m[`mailbricks_queue_job_age_seconds_count{topic="incoming"}`], 1.0)
	require.GreaterOrEqual(t, m[`mailbricks_http_requests_total{class="2xx",route="/api/folders"}`], 1.0)
	require.GreaterOrEqual(t, m[`mailbricks_http_requests_total{class="4xx",route="/api/messages/{id}"}`], 1.0)
	require.Equal(t, 1.0, m[`mailbricks_http_event_streams_active`])
	require.Positive(t, m[`mailbricks_storage_bytes{block="mailbox"}`])
	require.Positive(t, m[`mailbricks_storage_bytes{block="blobs"}`]+m[`mailbricks_storage_bytes{block="index"}`])
	require.Contains(t, m, `mailbricks_lsm_compactions_total{block="index"}`)
	require.Contains(t, m, `mailbricks_lsm_write_stalls_total{block="index"}`)

	// Prometheus naming: counters end in _total, units are base units.
	for name, typ := range types {
		require.Regexp(t, metricNameRE, name)
		if !strings.HasPrefix(name, "mailbricks_") {
			continue
		}
		if typ == "counter" {
			require.True(t, strings.HasSuffix(name, "_total"), "counter %s ends in _total", name)
		} else {
			require.False(t, strings.HasSuffix(name, "_total"), "%s %s does not end in _total", typ, name)
		}
		require.NotRegexp(t, `_(ms|milliseconds|kb|mb|kib|mib)(_|$)`, name, "base units only")
	}
	stream.Body.Close()
	waitFor(t, 10*time.Second, "the stream closed", func() bool {
		m, _ = scrape(t, s.httpA)
		return m[`mailbricks_http_event_streams_active`] == 0
	})
}

// plainAuthNoTLS is PLAIN auth that net/smtp sends without TLS (the test
// server allows it on loopback).
type plainNoTLS struct{ identity, user, pw string }

func plainAuthNoTLS(identity, user, pw string) smtp.Auth { return &plainNoTLS{identity, user, pw} }

func (a *plainNoTLS) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte(a.identity + "\x00" + a.user + "\x00" + a.pw), nil
}

func (a *plainNoTLS) Next([]byte, bool) ([]byte, error) { return nil, io.ErrUnexpectedEOF }
