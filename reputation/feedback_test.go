package reputation_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailbricks/mailbricks/reputation"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestParseDSNHardBounce(t *testing.T) {
	out, err := reputation.ParseDSN(open(t, "dsn-hard-bounce.eml"))
	require.NoError(t, err)
	require.Len(t, out, 1)
	o := out[0]
	assert.Equal(t, "jane.doe@gmail.com", o.Recipient)
	assert.Equal(t, reputation.KindHardBounce, o.Kind)
	assert.Equal(t, 550, o.Code)
	assert.Equal(t, "5.1.1", o.Enhanced)
	assert.Contains(t, o.Text, "does not exist")
	assert.Equal(t, time.Date(2025, 3, 3, 10, 0, 6, 0, time.UTC), o.At, "At is Last-Attempt-Date")
	assert.Equal(t, "0191a2b3-c4d5-7e6f-8091-a2b3c4d5e6f7@sender.example", o.MessageID, "from the returned headers")
	assert.Equal(t, "0191a2b3-c4d5-7e6f-8091-a2b3c4d5e6f7", o.EnvelopeID)
	assert.Empty(t, o.IP, "a DSN names no sending IP")
	assert.True(t, reputation.Classify(o.Code, o.Enhanced, o.Text).SuppressRecipient)
}

func TestParseDSNMulti(t *testing.T) {
	out, err := reputation.ParseReport(open(t, "dsn-multi.eml"))
	require.NoError(t, err)
	require.Len(t, out, 4, "one outcome per recipient group")
	type row struct {
		rcpt     string
		kind     reputation.Kind
		code     int
		enhanced string
	}
	var got []row
	for _, o := range out {
		got = append(got, row{o.Recipient, o.Kind, o.Code, o.Enhanced})
		assert.Equal(t, "order-123@sender.example", o.MessageID)
	}
	assert.Equal(t, []row{
		{"full@example.org", reputation.KindSoftBounce, 452, "4.2.2"},    // delayed, mailbox full
		{"Blocked@Example.ORG", reputation.KindHardBounce, 550, "5.7.1"}, // comment stripped
		{"gone@example.org", reputation.KindSoftBounce, 421, "4.4.7"},    // failed after retries ran out
		{"ok@example.org", reputation.KindDelivered, 0, "2.0.0"},
	}, got)
	assert.Equal(t, time.Date(2025, 3, 4, 7, 0, 0, 0, time.UTC), out[0].At, "without Last-Attempt-Date, At is the Arrival-Date")
	assert.False(t, reputation.Classify(out[1].Code, out[1].Enhanced, out[1].Text).SuppressRecipient, "a blocklisting is not about the address")
}

func TestParseARF(t *testing.T) {
	out, err := reputation.ParseARF(open(t, "arf-abuse.eml"))
	require.NoError(t, err)
	require.Len(t, out, 1)
	o := out[0]
	assert.Equal(t, reputation.KindComplaint, o.Kind)
	assert.Equal(t, "user@example.com", o.Recipient)
	assert.Equal(t, "192.0.2.1", o.IP, "IP is the Source-IP")
	assert.Equal(t, "8787KJKJ3K4J3K4J3K4J3.mail@example.net", o.MessageID)
	assert.Contains(t, o.Text, "feedback-type abuse")
	assert.Contains(t, o.Text, "SomeGenerator/1.0")
	assert.False(t, o.At.IsZero())

	out, err = reputation.ParseReport(open(t, "arf-redacted.eml"))
	require.NoError(t, err)
	require.Len(t, out, 1)
	assert.Equal(t, "Jane.Roe+deals@fbl-user.example", out[0].Recipient, "without Original-Rcpt-To, the original To")
	assert.Equal(t, "198.51.100.7", out[0].IP)
	assert.Equal(t, "0195abc-deals@sender.example", out[0].MessageID)

	out, err = reputation.ParseARF(open(t, "arf-not-spam.eml"))
	require.NoError(t, err)
	assert.Empty(t, out, "a not-spam report is no complaint")
}

func TestParseErrors(t *testing.T) {
	_, err := reputation.ParseReport(open(t, "not-report.eml"))
	assert.ErrorIs(t, err, reputation.ErrNotReport)
	_, err = reputation.ParseDSN(open(t, "arf-abuse.eml"))
	assert.ErrorIs(t, err, reputation.ErrNotReport, "ParseDSN of an ARF report")
	_, err = reputation.ParseARF(open(t, "dsn-multi.eml"))
	assert.ErrorIs(t, err, reputation.ErrNotReport, "ParseARF of a DSN")
	for name, msg := range map[string]string{
		"no status part": "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n",
		"no recipients":  "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n--b--\r\n",
		"no action":      "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\n\r\n--b--\r\n",
		"bad action":     "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\nAction: exploded\r\n\r\n--b--\r\n",
		"no type":        "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nVersion: 1\r\n\r\n--b--\r\n",
		"bad field":      "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nnot a field\r\n\r\n--b--\r\n",
	} {
		_, err := reputation.ParseReport(strings.NewReader(msg))
		assert.ErrorIs(t, err, reputation.ErrMalformed, name)
	}
}

// fuzzParse checks that a parser never panics and that what it returns
// is well formed.
func fuzzParse(t *testing.T, parse func([]byte) ([]reputation.Outcome, error), data []byte) {
	out, err := parse(data)
	if err != nil {
		if out != nil {
			t.Fatalf("outcomes with an error: %v", err)
		}
		return
	}
	for _, o := range out {
		if !o.Kind.Valid() {
			t.Fatalf("invalid kind in %+v", o)
		}
	}
}

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile("testdata/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseDSN(f *testing.F) {
	seed(f, "dsn-hard-bounce.eml", "dsn-multi.eml")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzParse(t, func(b []byte) ([]reputation.Outcome, error) { return reputation.ParseDSN(bytes.NewReader(b)) }, data)
	})
}

func FuzzParseARF(f *testing.F) {
	seed(f, "arf-abuse.eml", "arf-redacted.eml", "arf-not-spam.eml")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzParse(t, func(b []byte) ([]reputation.Outcome, error) { return reputation.ParseARF(bytes.NewReader(b)) }, data)
	})
}
