package pgerrtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// pgBin returns the path of PostgreSQL program name: on PATH, in
// /usr/local/bin, or in Debian's /usr/lib/postgresql/<version>/bin
// (newest version first), or "" if there is none.
func pgBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	cands := []string{filepath.Join("/usr/local/bin", name)}
	deb, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", name))
	sort.Sort(sort.Reverse(sort.StringSlice(deb)))
	for _, p := range append(cands, deb...) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Server is a private PostgreSQL server in a temporary directory on a
// free loopback port, for tests that stop and restart it (never the
// shared one). It is stopped and removed when the test ends.
type Server struct {
	t      testing.TB
	dir    string
	port   int
	pgCtl  string
	initdb string
}

// StartServer creates a cluster with initdb (trust authentication, user
// postgres) and starts it with pg_ctl. It skips the test when they are
// absent, except under CI=true, where it fails. As root it runs them as
// user postgres, which PostgreSQL requires.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, initdb: pgBin("initdb"), pgCtl: pgBin("pg_ctl")}
	if s.initdb == "" || s.pgCtl == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("initdb and pg_ctl are required under CI=true")
		}
		t.Skip("initdb or pg_ctl not found: private PostgreSQL server tests skipped")
	}
	dir, err := os.MkdirTemp("", "mailbricks-pg-")
	require.NoError(t, err)
	s.dir = dir
	t.Cleanup(func() {
		_ = s.ctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		require.NoError(t, exec.Command("chown", "postgres:postgres", dir).Run())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	out, err := s.cmd(s.initdb, "-D", s.data(), "-U", "postgres", "-A", "trust", "--no-sync").CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	s.Start()
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// cmd runs name as user postgres when the test runs as root.
func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (s *Server) ctl(args ...string) error {
	args = append([]string{"-D", s.data(), "-w"}, args...)
	out, err := s.cmd(s.pgCtl, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w: %s", args, err, out)
	}
	return nil
}

// URL is the server's database postgres, as user postgres.
func (s *Server) URL() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(s.port) + "/postgres?sslmode=disable"
}

// Pool returns a pool of at most maxConns connections to the server,
// closed when the test ends (before the server stops). The pool outlives
// restarts of the server: that is what the restart tests exercise.
func (s *Server) Pool(maxConns int32) *pgxpool.Pool {
	s.t.Helper()
	cfg, err := pgxpool.ParseConfig(s.URL())
	require.NoError(s.t, err)
	cfg.MaxConns = maxConns
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(s.t, err)
	s.t.Cleanup(p.Close)
	return p
}

// Start starts the stopped server on its port.
func (s *Server) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=100", s.port, s.dir)
	require.NoError(s.t, s.ctl("start", "-l", filepath.Join(s.dir, "log"), "-o", opts))
}

// Stop stops the server with pg_ctl's mode: "fast" (every session is
// terminated with 57P01 and the server shuts down cleanly) or "immediate"
// (the server quits without a checkpoint, as in a crash, and recovers
// from its WAL at the next start).
func (s *Server) Stop(mode string) {
	s.t.Helper()
	require.NoError(s.t, s.ctl("stop", "-m", mode))
}
