package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// config is everything the flags set. Each flag's default is the embedded,
// loopback-only setup of the walkthrough.
type config struct {
	// bulk opens the embedded mailbox and index without a sync per write,
	// for the import command: a rerun is idempotent and Close syncs
	// everything, so an import that finished is durable and one that
	// crashed is completed by running it again. Not a flag.
	bulk bool

	Data           string
	SMTPAddr       string
	SubmissionAddr string
	IMAPAddr       string
	HTTPAddr       string
	Hostname       string
	DemoDomain     string
	Demo           bool

	PGURL, NATSURL, RedisURL, S3URL string
	Prefix                          string
	S3Bucket                        string

	Workers    int
	BcryptCost int
	// Per-client-IP limits of both SMTP ports: 0 is delivery's default,
	// negative no limit.
	MaxConnsPerIP, ConnRatePerIP, MessageRatePerIP int
	GCInterval                                     time.Duration
	BlobGrace                                      time.Duration
	InsecureAuth                                   bool
	TLSCert                                        string
	TLSKey                                         string
	DKIMSelector                                   string
	LogLevel                                       string
	LogFormat                                      string

	outboundConfig
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,23}$`)

// flags registers the server's flags on fs and returns the config they fill.
func flags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.StringVar(&c.Data, "data", "mailbricks-data", "data directory (embedded stores, accounts, TLS certificate, DKIM key), created on first run")
	fs.StringVar(&c.SMTPAddr, "smtp", "127.0.0.1:2525", "SMTP listen address for mail from other servers")
	fs.StringVar(&c.SubmissionAddr, "submission", "127.0.0.1:2587", "SMTP submission listen address (AUTH) for users' mail clients")
	fs.StringVar(&c.IMAPAddr, "imap", "127.0.0.1:1143", "IMAP listen address (STARTTLS; plaintext LOGIN only on loopback)")
	fs.StringVar(&c.HTTPAddr, "http", "127.0.0.1:8080", "HTTP listen address of the JSON API, /api/events and /healthz")
	fs.StringVar(&c.Hostname, "hostname", "", "host name in SMTP greetings and Received fields (default: the machine's host name)")
	fs.StringVar(&c.DemoDomain, "demo-domain", "example.test", "domain of the demo users created on first run")
	fs.BoolVar(&c.Demo, "demo", true, "create two demo users when there are no users yet")
	fs.StringVar(&c.PGURL, "pg-url", "", "PostgreSQL URL: mailbox, search index, queue (unless -nats-url) and accounts on PostgreSQL")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS URL: the queue on NATS JetStream")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL: sender reputation on Redis")
	fs.StringVar(&c.S3URL, "s3-url", "", "S3 URL http(s)://key:secret@host:port: message bodies and attachments on S3")
	fs.StringVar(&c.Prefix, "prefix", "mailbricks", "name prefix of the PostgreSQL schemas, NATS streams, Redis keys and S3 keys")
	fs.StringVar(&c.S3Bucket, "s3-bucket", "mailbricks", "S3 bucket, created if missing")
	fs.IntVar(&c.Workers, "workers", 4, "delivery workers (jobs handled at once)")
	fs.IntVar(&c.BcryptCost, "bcrypt-cost", bcrypt.DefaultCost, "bcrypt cost of new password hashes (4 to 31; each step doubles the work of a check)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 0, "concurrent SMTP connections per client IP (0: delivery's default, 20; negative: no limit)")
	fs.IntVar(&c.ConnRatePerIP, "conn-rate-per-ip", 0, "SMTP connections a minute per client IP (0: delivery's default, 120; negative: no limit)")
	fs.IntVar(&c.MessageRatePerIP, "message-rate-per-ip", 0, "SMTP transactions a minute per client IP (0: delivery's default, 300; negative: no limit)")
	fs.DurationVar(&c.GCInterval, "gc-interval", 10*time.Minute, "how often unreferenced blobs are collected")
	fs.DurationVar(&c.BlobGrace, "blob-grace", 24*time.Hour, "minimum age of a blob the collector deletes (it must exceed the time from storing a body to linking it)")
	fs.BoolVar(&c.InsecureAuth, "insecure-auth", true, "allow SMTP AUTH without TLS on loopback connections (others always need STARTTLS)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file for STARTTLS (default: a self-signed one in the data directory)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS key file for -tls-cert")
	fs.StringVar(&c.DKIMSelector, "dkim-selector", "mailbricks", "DKIM selector of the generated signing key")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	outboundFlags(fs, &c.outboundConfig)
	return c
}

func (c *config) check() error {
	if !prefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("-prefix %q: 1 to 24 lower-case letters, digits and '_', starting with a letter", c.Prefix)
	}
	if c.Workers < 1 || c.Workers > 1000 {
		return errors.New("-workers: 1 to 1000")
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		return fmt.Errorf("-bcrypt-cost: %d to %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	if c.GCInterval <= 0 || c.BlobGrace < time.Second {
		return errors.New("-gc-interval must be positive and -blob-grace at least 1s")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if err := c.checkOutbound(); err != nil {
		return err
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Hostname = h
	}
	return nil
}

// loadTLS returns the STARTTLS configuration: the files given, or a
// self-signed certificate for localhost, the host name and the loopback
// addresses, made on first run in <data>/tls.
func loadTLS(c *config) (*tls.Config, bool, error) {
	certFile, keyFile := c.TLSCert, c.TLSKey
	created := false
	if certFile == "" {
		dir := filepath.Join(c.Data, "tls")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := selfSigned(dir, certFile, keyFile, c.Hostname); err != nil {
				return nil, false, err
			}
			created = true
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, false, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, created, nil
}

func selfSigned(dir, certFile, keyFile, host string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"mailbricks example (self-signed)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(keyFile, "PRIVATE KEY", kder); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der)
}

func writePEM(path, typ string, der []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// dkimKey is the DKIM signing key of the outbound worker: RSA 2048,
// generated on first run in <data>/dkim/<selector>.pem.
type dkimKey struct {
	Selector string
	Signer   crypto.Signer
	// Record is the TXT record to publish at <selector>._domainkey.<domain>.
	Record string
}

func loadDKIM(c *config) (*dkimKey, bool, error) {
	dir := filepath.Join(c.Data, "dkim")
	path := filepath.Join(dir, c.DKIMSelector+".pem")
	created := false
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, false, err
		}
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, false, err
		}
		if err := writePEM(path, "PRIVATE KEY", der); err != nil {
			return nil, false, err
		}
		if b, err = os.ReadFile(path); err != nil {
			return nil, false, err
		}
		created = true
	} else if err != nil {
		return nil, false, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, false, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, false, fmt.Errorf("%s: not a signing key", path)
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, false, err
	}
	return &dkimKey{
		Selector: c.DKIMSelector,
		Signer:   signer,
		Record:   "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub),
	}, created, nil
}
