package main

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type openAPIFile struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

type openAPIOp struct {
	OperationID string                     `json:"operationId"`
	Summary     string                     `json:"summary"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Security    []map[string][]string      `json:"security"`
	Parameters  []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
}

// TestOpenAPI checks /api/openapi.json against the server: every route of
// the routes table (and the extra routes) is documented, and every
// documented operation is served, with the method documented, and asks for
// credentials exactly when the document says so.
func TestOpenAPI(t *testing.T) {
	s := newServer(t, "")
	s.start()
	resp, err := http.Get("http://" + s.httpA + "/api/openapi.json")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	var doc openAPIFile
	require.NoError(t, json.Unmarshal(body, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	// Every route is documented.
	all := append(append([]route{}, routes...), extraRoutes...)
	for _, rt := range all {
		item, ok := doc.Paths[rt.Path]
		require.True(t, ok, "path %s is documented", rt.Path)
		_, ok = item[strings.ToLower(rt.Method)]
		require.True(t, ok, "%s %s is documented", rt.Method, rt.Path)
	}

	// Every documented operation is served.
	ids := map[string]bool{}
	served := 0
	params := regexp.MustCompile(`\{[a-z]+\}`)
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		for method, raw := range doc.Paths[p] {
			var op openAPIOp
			require.NoError(t, json.Unmarshal(raw, &op), "%s %s", method, p)
			require.NotEmpty(t, op.Summary)
			require.NotEmpty(t, op.Responses)
			require.False(t, ids[op.OperationID], "operationId %s unique", op.OperationID)
			ids[op.OperationID] = true
			for _, m := range params.FindAllString(p, -1) {
				found := false
				for _, prm := range op.Parameters {
					found = found || (prm.In == "path" && "{"+prm.Name+"}" == m)
				}
				require.True(t, found, "%s %s documents path parameter %s", method, p, m)
			}

			url := "http://" + s.httpA + params.ReplaceAllString(p, "0")
			req, err := http.NewRequest(strings.ToUpper(method), url, strings.NewReader("{}"))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			require.NotEqual(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s %s is served: %s", method, p, b)
			require.NotContains(t, string(b), "no such endpoint", "%s %s is served", method, p)
			require.NotContains(t, string(b), "no such page", "%s %s is served", method, p)
			if len(op.Security) > 0 {
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s %s needs credentials: %s", method, p, b)
			} else if p != "/api/login" { // login with no credentials is a 401 too
				require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s is public: %s", method, p, b)
			}
			served++
		}
	}
	require.Equal(t, len(all), served, "as many documented operations as routes")

	// A route that is not documented is not served.
	req, _ := http.NewRequest("PATCH", "http://"+s.httpA+"/api/messages/0", nil)
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r2.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, r2.StatusCode)
}

// TestDKIMShow checks `dkim show`: the TXT record of the key the server
// made, split into strings DNS accepts, and with -all the MX, SPF and DMARC
// records; the banner names them.
func TestDKIMShow(t *testing.T) {
	s := newServer(t, "")
	s.start()
	require.Contains(t, s.out.String(), "MX (-> ")
	require.Contains(t, s.out.String(), "`mailserver dkim show -all`")
	banner := regexp.MustCompile(`TXT "(v=DKIM1; k=rsa; p=[^"]+)"`).FindStringSubmatch(s.out.String())
	require.NotNil(t, banner, s.out.String())

	out, err := exec.Command(binary, append(append([]string{}, s.args...), "dkim", "show", "-all", "-domain", "example.org")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 4, "%s", out)
	require.Regexp(t, `^example\.org\.\tIN\tMX\t10 \S+\.$`, lines[0])
	require.Equal(t, "example.org.\tIN\tTXT\t\"v=spf1 mx -all\"", lines[1])
	require.True(t, strings.HasPrefix(lines[2], "mailbricks._domainkey.example.org.\tIN\tTXT\t( \""), lines[2])
	require.Equal(t, "_dmarc.example.org.\tIN\tTXT\t\"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org\"", lines[3])

	var value strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(lines[2], -1) {
		require.LessOrEqual(t, len(m[1]), 255, "a TXT string is at most 255 bytes")
		value.WriteString(m[1])
	}
	require.Equal(t, banner[1], value.String(), "dkim show prints the server's key")
	p := strings.TrimPrefix(value.String(), "v=DKIM1; k=rsa; p=")
	der, err := base64.StdEncoding.DecodeString(p)
	require.NoError(t, err)
	_, err = x509.ParsePKIXPublicKey(der)
	require.NoError(t, err)

	// Without -domain: the accounts' domains.
	s.user("x@one.example", "password-1")
	s.user("y@two.example", "password-2")
	out, err = exec.Command(binary, append(append([]string{}, s.args...), "dkim", "show")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "mailbricks._domainkey.one.example.")
	require.Contains(t, string(out), "mailbricks._domainkey.two.example.")
}
