package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// oursPG selects the server backends of ours_pg.
type oursPG struct {
	pgURL, natsURL, prefix string
}

// oursTarget is examples/mailserver running as a separate process.
type oursTarget struct {
	p          *proc
	data       string
	smtp, http string
	pg         *oursPG
	out        *syncBuffer
	client     *http.Client
	dns        *stubDNS
}

const oursPassword = "bench-password-alice"

// mailserverDir finds examples/mailserver from the bench directory.
func mailserverDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	cands := []string{"../examples/mailserver"}
	if ok {
		cands = append(cands, filepath.Join(filepath.Dir(file), "..", "examples", "mailserver"))
	}
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", fmt.Errorf("examples/mailserver not found (run from bench/)")
}

// startOursE2E builds the mailserver, adds the recipient and starts it with
// its per-IP limits off (smtp-source's 8 sessions come from one address).
func startOursE2E(ctx context.Context, dir string, pg *oursPG) (*oursTarget, error) {
	src, err := mailserverDir()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "mailserver")
	logf("e2e: building %s", src)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build mailserver: %v\n%s", err, out)
	}
	t := &oursTarget{data: filepath.Join(dir, "data"), pg: pg, out: &syncBuffer{}, client: &http.Client{Timeout: 60 * time.Second}}
	sub, err := freeAddr()
	if err != nil {
		return nil, err
	}
	imap, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if t.smtp, err = freeAddr(); err != nil {
		return nil, err
	}
	if t.http, err = freeAddr(); err != nil {
		return nil, err
	}
	args := []string{"-data", t.data, "-smtp", t.smtp, "-submission", sub, "-imap", imap, "-http", t.http,
		"-demo=false", "-log-level", "warn", "-hostname", "bench.test",
		"-max-conns-per-ip=-1", "-conn-rate-per-ip=-1", "-message-rate-per-ip=-1"}
	if pg != nil {
		pg.prefix = fmt.Sprintf("be2e_%d_%d", os.Getpid(), time.Now().Unix()%100000)
		args = append(args, "-pg-url", pg.pgURL, "-nats-url", pg.natsURL, "-prefix", pg.prefix)
	}
	add := exec.CommandContext(ctx, bin, append(append([]string{}, args...), "user", "add", e2eRecipient, "-password", oursPassword)...)
	if out, err := add.CombinedOutput(); err != nil {
		t.cleanup(context.Background())
		return nil, fmt.Errorf("mailserver user add: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	if t.dns, err = startStubDNS(dir); err == nil {
		cmd = t.dns.wrap(bin, args...)
	} else {
		logf("e2e: no stub DNS (%v): the server's SPF, DKIM and DMARC lookups go to the system resolver", err)
	}
	cmd.Stdout, cmd.Stderr = t.out, t.out
	if t.p, err = startProc("mailserver", cmd); err != nil {
		t.cleanup(context.Background())
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := t.client.Get("http://" + t.http + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return t, nil
			}
		}
		select {
		case <-t.p.exited:
			t.cleanup(context.Background())
			return nil, fmt.Errorf("mailserver exited: %s", tail(t.out.String()))
		case <-ctx.Done():
			t.stop()
			t.cleanup(context.Background())
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.stop()
			t.cleanup(context.Background())
			return nil, fmt.Errorf("mailserver not healthy after 60s: %s", tail(t.out.String()))
		}
	}
}

func (t *oursTarget) smtpAddr() string { return t.smtp }

func (t *oursTarget) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+t.http+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(e2eRecipient, oursPassword)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// stored is the sum of the folders' totals, once the search index has
// caught up with them: every load message found by from:.
func (t *oursTarget) stored(ctx context.Context) (int, error) {
	var fr struct {
		Folders []struct {
			Name  string `json:"name"`
			Total int    `json:"total"`
		} `json:"folders"`
	}
	if err := t.get(ctx, "/api/folders", &fr); err != nil {
		return 0, err
	}
	sum := 0
	for _, f := range fr.Folders {
		sum += f.Total
	}
	var sr struct {
		Total int `json:"total"`
	}
	if err := t.get(ctx, "/api/search?limit=1&q="+url.QueryEscape("from:"+e2eLoadSender), &sr); err != nil {
		return 0, err
	}
	var pr struct {
		Total int `json:"total"`
	}
	if err := t.get(ctx, "/api/search?limit=1&q="+url.QueryEscape("from:probe@example.org"), &pr); err != nil {
		return 0, err
	}
	return min(sum, sr.Total+pr.Total), nil
}

func (t *oursTarget) searchable(ctx context.Context, word string) (bool, error) {
	var sr struct {
		Total int `json:"total"`
	}
	if err := t.get(ctx, "/api/search?limit=1&q="+url.QueryEscape(word), &sr); err != nil {
		return false, err
	}
	return sr.Total > 0, nil
}

func (t *oursTarget) pgids() []int { return []int{t.p.pgid()} }

func (t *oursTarget) peakRSS(int64) int64 { return pidStatusKB(t.p.cmd.Process.Pid, "VmHWM:") * 1024 }

func (t *oursTarget) stop() error {
	if t.p == nil {
		return nil
	}
	err := t.p.stop(30 * time.Second)
	if t.dns != nil {
		t.dns.close()
	}
	return err
}

func (t *oursTarget) diskBytes(ctx context.Context) (int64, error) {
	n, err := diskUsage(t.data)
	if err != nil || t.pg == nil {
		return n, err
	}
	conn, err := pgx.Connect(ctx, t.pg.pgURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var rel int64
	err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname LIKE $1 AND c.relkind IN ('r', 'm')`, t.pg.prefix+"\\_%").Scan(&rel)
	return n + rel, err
}

// cleanup drops ours_pg's schemas and streams.
func (t *oursTarget) cleanup(ctx context.Context) {
	if t.pg == nil || t.pg.prefix == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, t.pg.pgURL); err == nil {
		rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`, t.pg.prefix+"\\_%")
		var names []string
		if err == nil {
			for rows.Next() {
				var s string
				if rows.Scan(&s) == nil {
					names = append(names, s)
				}
			}
			rows.Close()
		}
		for _, s := range names {
			if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
				logf("e2e: drop schema %s: %v", s, err)
			}
		}
		conn.Close(ctx)
	} else {
		logf("e2e: cleanup: %v", err)
	}
	nc, err := nats.Connect(t.pg.natsURL)
	if err != nil {
		logf("e2e: cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	prefix := strings.ToUpper(t.pg.prefix) + "_QUEUE"
	names := js.StreamNames(ctx)
	var del []string
	for s := range names.Name() {
		if strings.HasPrefix(s, prefix) || strings.HasPrefix(s, "KV_"+prefix) {
			del = append(del, s)
		}
	}
	for _, s := range del {
		if err := js.DeleteStream(ctx, s); err != nil {
			logf("e2e: delete stream %s: %v", s, err)
		}
	}
}
