package delivery

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mailbricks/mailbricks/reputation"
)

// FuzzOrderMX feeds arbitrary MX answers (records packed as "pref host"
// lines) to orderMX: it must never panic, must return hosts in preference
// order without duplicates, empty names or control characters, at most
// MaxMXHosts of them, and a null MX alone must be the permanent 5.1.10.
func FuzzOrderMX(f *testing.F) {
	f.Add("10 mx1.example.com.\n20 mx2.example.com.")
	f.Add("0 .")
	f.Add("10 a.\n10 b.\n10 c.\n5 d.")
	f.Add("10 .\n20 mx.example.com.")
	f.Add("10 bad host\n10 \x00\n65535 ok.")
	f.Fuzz(func(t *testing.T, answer string) {
		var recs []*net.MX
		for _, line := range strings.Split(answer, "\n") {
			var pref uint16
			var host string
			p, h, _ := strings.Cut(line, " ")
			fmt.Sscan(p, &pref)
			host = h
			recs = append(recs, &net.MX{Host: host, Pref: pref})
		}
		hosts, err := orderMX(recs, func(h []string) {
			for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
				h[i], h[j] = h[j], h[i]
			}
		})
		if len(recs) == 1 && (recs[0].Host == "." || recs[0].Host == "") {
			require.Equal(t, errNullMX, err)
			return
		}
		if err != nil {
			require.Equal(t, errNoMXHost, err)
			require.Empty(t, hosts)
			return
		}
		require.NotEmpty(t, hosts)
		require.LessOrEqual(t, len(hosts), MaxMXHosts)
		pref := map[string]uint16{}
		for _, r := range recs {
			h := strings.ToLower(strings.TrimSuffix(r.Host, "."))
			if old, ok := pref[h]; !ok || r.Pref < old {
				pref[h] = r.Pref
			}
		}
		seen := map[string]bool{}
		var last uint16
		for _, h := range hosts {
			require.NotEmpty(t, h)
			require.True(t, validHost(h), "host %q", h)
			require.False(t, seen[h], "duplicate %q", h)
			seen[h] = true
			require.GreaterOrEqual(t, pref[h], last, "preference order")
			last = pref[h]
		}
	})
}

// FuzzWriteDSN writes DSNs from arbitrary values and parses them back
// with reputation's parser: the status and action must survive, and for a
// plain address the recipient too.
func FuzzWriteDSN(f *testing.F) {
	f.Add("user@example.com", 5, 1, 1, "550 5.1.1 no such user", "Subject: x\r\nMessage-ID: <a@b>\r\n", true)
	f.Add("user@example.com", 4, 4, 7, "451 4.4.7 expired", "", false)
	f.Add("müller@example.de", 5, 2, 2, "552 5.2.2 full\r\nInjected: yes", "From: a\nbare\rcr", true)
	f.Fuzz(func(t *testing.T, addr string, c, s, d int, diag, header string, failed bool) {
		status := [3]int{4 + (abs(c) % 2), abs(s) % 8, abs(d) % 30}
		action := "delayed"
		if failed {
			action = "failed"
		}
		var buf bytes.Buffer
		err := WriteDSN(&buf, &DSN{ReportingMTA: "mx.example.com", From: "MAILER-DAEMON@mx.example.com", To: "s@example.com",
			Date: time.Unix(1700000000, 0), ID: addr + diag, Header: []byte(header),
			Recipients: []DSNRecipient{{Address: addr, Action: action, Status: status, Diagnostic: diag}}})
		require.NoError(t, err)
		outs, err := reputation.ParseDSN(bytes.NewReader(buf.Bytes()))
		if !plainAddress(addr) {
			return // a strange address may legitimately fail to parse back
		}
		require.NoError(t, err, "%s", buf.String())
		require.Len(t, outs, 1)
		require.Equal(t, fmt.Sprintf("%d.%d.%d", status[0], status[1], status[2]), outs[0].Enhanced)
		require.True(t, strings.EqualFold(addr, outs[0].Recipient), "%q vs %q", addr, outs[0].Recipient)
		if action == "delayed" {
			require.Contains(t, []reputation.Kind{reputation.KindDeferred, reputation.KindSoftBounce}, outs[0].Kind)
		} else {
			require.Contains(t, []reputation.Kind{reputation.KindHardBounce, reputation.KindSoftBounce}, outs[0].Kind)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the most negative int
			return 0
		}
		return -n
	}
	return n
}

// plainAddress reports whether a is an ASCII local@domain without spaces,
// quotes, brackets or separators.
func plainAddress(a string) bool {
	l, d, ok := strings.Cut(a, "@")
	if !ok || l == "" || d == "" || strings.Contains(d, "@") {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("\"()<>[]\\,;:", r) {
			return false
		}
	}
	return true
}
