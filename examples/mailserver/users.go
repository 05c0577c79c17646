package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
)

// Account errors.
var (
	errNoUser     = errors.New("no such user")
	errUserExists = errors.New("user exists")
	errBadName    = errors.New("a user name is an email address, such as alice@example.test")
)

// userStore keeps accounts (user name → bcrypt hash) and the key that signs
// bearer tokens. The embedded default is a JSON file in the data directory;
// with -pg-url it is a table, so every instance sees the same accounts.
type userStore interface {
	Add(ctx context.Context, name, hash string) error
	SetHash(ctx context.Context, name, hash string) error
	// Hash returns the user's password hash, or errNoUser.
	Hash(ctx context.Context, name string) (string, error)
	List(ctx context.Context) ([]string, error)
	// Secret returns the token signing key, made on first use.
	Secret(ctx context.Context) ([]byte, error)
	Close() error
}

// normalizeName checks a user name (an email address) and returns it in
// lower case, which is also the user's mailbricks.UserID.
func normalizeName(name string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	at := strings.LastIndexByte(name, '@')
	if at <= 0 || at == len(name)-1 || delivery.ValidateAddress(name) != nil || mailbricks.UserID(name).Validate() != nil {
		return "", fmt.Errorf("%q: %w", name, errBadName)
	}
	return name, nil
}

// generatePassword returns a random password of 20 letters and digits.
func generatePassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func hashPassword(pw string, cost int) (string, error) {
	if len(pw) < 8 || len(pw) > 72 {
		return "", errors.New("a password has 8 to 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	return string(h), err
}

// accounts authenticates users against a userStore. bcrypt is slow by
// design (tens of milliseconds), and HTTP basic auth sends the password with
// every request, so a successful check is remembered as the SHA-256 of the
// password beside the hash it matched; a changed password invalidates it.
type accounts struct {
	store userStore

	// dummy is a hash to check passwords of unknown users against, so a
	// wrong name and a wrong password cost the same.
	dummy []byte

	mu    sync.Mutex
	known map[string]verified
}

type verified struct {
	hash   string
	digest [32]byte
}

// newAccounts returns accounts over s; cost is the bcrypt cost of the hash
// unknown users' passwords are checked against (that of new passwords).
func newAccounts(s userStore, cost int) *accounts {
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password"), cost)
	if err != nil {
		panic(err) // only for a cost out of range
	}
	return &accounts{store: s, known: map[string]verified{}, dummy: dummy}
}

// Verify checks a user name and password and returns the user.
func (a *accounts) Verify(ctx context.Context, name, pw string) (mailbricks.UserID, error) {
	name, err := normalizeName(name)
	if err != nil {
		return "", delivery.ErrAuthFailed
	}
	hash, err := a.store.Hash(ctx, name)
	if errors.Is(err, errNoUser) {
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(pw))
		return "", delivery.ErrAuthFailed
	}
	if err != nil {
		return "", mailbricks.Temporary(err)
	}
	digest := sha256.Sum256([]byte(pw))
	a.mu.Lock()
	v, ok := a.known[name]
	a.mu.Unlock()
	if ok && v.hash == hash && subtle.ConstantTimeCompare(v.digest[:], digest[:]) == 1 {
		return mailbricks.UserID(name), nil
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) != nil {
		return "", delivery.ErrAuthFailed
	}
	a.mu.Lock()
	if len(a.known) > 100000 {
		clear(a.known)
	}
	a.known[name] = verified{hash: hash, digest: digest}
	a.mu.Unlock()
	return mailbricks.UserID(name), nil
}

// Exists reports whether name is a user, for the RCPT hook.
func (a *accounts) Exists(ctx context.Context, name string) (bool, error) {
	_, err := a.store.Hash(ctx, name)
	if errors.Is(err, errNoUser) {
		return false, nil
	}
	return err == nil, err
}

// tokenTTL is how long a bearer token from POST /api/login is valid.
const tokenTTL = 24 * time.Hour

// Token returns a bearer token for user: "<name>.<expiry>.<MAC>", each
// part base64url, MAC = HMAC-SHA256(secret, name, expiry, password hash). It
// needs no server-side state, so any instance sharing the user store accepts
// it, and a password change revokes every token issued before.
func (a *accounts) Token(ctx context.Context, user mailbricks.UserID, now time.Time) (string, time.Time, error) {
	hash, err := a.store.Hash(ctx, string(user))
	if err != nil {
		return "", time.Time{}, err
	}
	secret, err := a.store.Secret(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(tokenTTL).Truncate(time.Second)
	expS := strconv.FormatInt(exp.Unix(), 10)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(user)) + "." + expS + "." + enc.EncodeToString(tokenMAC(secret, string(user), expS, hash)), exp, nil
}

// CheckToken returns the user a token from Token names, if it is valid.
func (a *accounts) CheckToken(ctx context.Context, tok string, now time.Time) (mailbricks.UserID, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(tok) > 2048 {
		return "", delivery.ErrAuthFailed
	}
	enc := base64.RawURLEncoding
	name, err1 := enc.DecodeString(parts[0])
	mac, err2 := enc.DecodeString(parts[2])
	exp, err3 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || now.Unix() > exp {
		return "", delivery.ErrAuthFailed
	}
	hash, err := a.store.Hash(ctx, string(name))
	if errors.Is(err, errNoUser) {
		return "", delivery.ErrAuthFailed
	}
	if err != nil {
		return "", mailbricks.Temporary(err)
	}
	secret, err := a.store.Secret(ctx)
	if err != nil {
		return "", mailbricks.Temporary(err)
	}
	if !hmac.Equal(mac, tokenMAC(secret, string(name), parts[1], hash)) {
		return "", delivery.ErrAuthFailed
	}
	return mailbricks.UserID(name), nil
}

func tokenMAC(secret []byte, name, exp, hash string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	m.Write([]byte{0})
	m.Write([]byte(hash))
	return m.Sum(nil)
}

// fileUsers is the embedded user store: users.json in the data directory,
// replaced atomically (write, fsync, rename) under an flock(2) on users.lock,
// so `user add` may run beside a serving process, which rereads the file when
// it changes.
type fileUsers struct {
	path, lock string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	data  usersFile
}

type usersFile struct {
	Secret []byte            `json:"secret"`
	Users  map[string]string `json:"users"`
}

func openFileUsers(dir string) (*fileUsers, error) {
	f := &fileUsers{path: filepath.Join(dir, "users.json"), lock: filepath.Join(dir, "users.lock")}
	err := f.update(func(d *usersFile) error { return nil })
	return f, err
}

// load rereads the file if it changed; the caller holds f.mu.
func (f *fileUsers) load() error {
	st, err := os.Stat(f.path)
	if errors.Is(err, os.ErrNotExist) {
		f.data = usersFile{Users: map[string]string{}}
		return nil
	}
	if err != nil {
		return err
	}
	if st.ModTime().Equal(f.mtime) && st.Size() == f.size && f.data.Users != nil {
		return nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	var d usersFile
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if d.Users == nil {
		d.Users = map[string]string{}
	}
	f.data, f.mtime, f.size = d, st.ModTime(), st.Size()
	return nil
}

// update applies fn to the file's content under the lock and writes it back.
func (f *fileUsers) update(fn func(*usersFile) error) error {
	lf, err := os.OpenFile(f.lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mtime = time.Time{} // force a reread under the lock
	if err := f.load(); err != nil {
		return err
	}
	d := usersFile{Secret: f.data.Secret, Users: maps(f.data.Users)}
	if err := fn(&d); err != nil {
		return err
	}
	if d.Secret == nil {
		d.Secret = make([]byte, 32)
		if _, err := rand.Read(d.Secret); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	tmp := f.path + ".tmp"
	w, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		return err
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	f.mtime = time.Time{}
	return f.load()
}

func maps(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (f *fileUsers) Add(_ context.Context, name, hash string) error {
	return f.update(func(d *usersFile) error {
		if _, ok := d.Users[name]; ok {
			return errUserExists
		}
		d.Users[name] = hash
		return nil
	})
}

func (f *fileUsers) SetHash(_ context.Context, name, hash string) error {
	return f.update(func(d *usersFile) error {
		if _, ok := d.Users[name]; !ok {
			return errNoUser
		}
		d.Users[name] = hash
		return nil
	})
}

func (f *fileUsers) Hash(_ context.Context, name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.load(); err != nil {
		return "", err
	}
	h, ok := f.data.Users[name]
	if !ok {
		return "", errNoUser
	}
	return h, nil
}

func (f *fileUsers) List(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.load(); err != nil {
		return nil, err
	}
	var names []string
	for n := range f.data.Users {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (f *fileUsers) Secret(context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.load(); err != nil {
		return nil, err
	}
	return f.data.Secret, nil
}

func (f *fileUsers) Close() error { return nil }

// pgUsers is the user store on PostgreSQL: tables users and secret in
// schema <prefix>_server.
type pgUsers struct {
	pool   *pgxpool.Pool
	schema string

	mu     sync.Mutex
	secret []byte
}

func openPGUsers(ctx context.Context, pool *pgxpool.Pool, schema string) (*pgUsers, error) {
	s := pgx.Identifier{schema}.Sanitize()
	// Two instances starting at once may both try to create the schema;
	// an advisory lock makes one wait for the other.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	for _, q := range []string{
		`SELECT pg_advisory_xact_lock(hashtext('mailbricks-mailserver-users'))`,
		`CREATE SCHEMA IF NOT EXISTS ` + s,
		`CREATE TABLE IF NOT EXISTS ` + s + `.users (name text PRIMARY KEY, hash text NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + s + `.secret (id int PRIMARY KEY, key bytea NOT NULL)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("users schema: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return &pgUsers{pool: pool, schema: s}, nil
}

func (p *pgUsers) Add(ctx context.Context, name, hash string) error {
	tag, err := p.pool.Exec(ctx, `INSERT INTO `+p.schema+`.users (name, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING`, name, hash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errUserExists
	}
	return nil
}

func (p *pgUsers) SetHash(ctx context.Context, name, hash string) error {
	tag, err := p.pool.Exec(ctx, `UPDATE `+p.schema+`.users SET hash = $2 WHERE name = $1`, name, hash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errNoUser
	}
	return nil
}

func (p *pgUsers) Hash(ctx context.Context, name string) (string, error) {
	var h string
	err := p.pool.QueryRow(ctx, `SELECT hash FROM `+p.schema+`.users WHERE name = $1`, name).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNoUser
	}
	return h, err
}

func (p *pgUsers) List(ctx context.Context) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT name FROM `+p.schema+`.users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (p *pgUsers) Secret(ctx context.Context) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.secret != nil {
		return p.secret, nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	// The first instance's key wins; every instance reads it back.
	if _, err := p.pool.Exec(ctx, `INSERT INTO `+p.schema+`.secret (id, key) VALUES (1, $1) ON CONFLICT DO NOTHING`, k); err != nil {
		return nil, err
	}
	if err := p.pool.QueryRow(ctx, `SELECT key FROM `+p.schema+`.secret WHERE id = 1`).Scan(&k); err != nil {
		return nil, err
	}
	p.secret = k
	return k, nil
}

func (p *pgUsers) Close() error { return nil }
