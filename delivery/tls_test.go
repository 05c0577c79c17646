package delivery

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned returns a TLS certificate for host.
func selfSigned(t *testing.T, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestInboundSTARTTLS(t *testing.T) {
	cert := selfSigned(t, "mx.example.net")
	env := newEnv(t, &InboundOptions{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})

	c, err := smtp.DialStartTLS(env.addr, &tls.Config{InsecureSkipVerify: true})
	require.NoError(t, err, "STARTTLS is offered when TLSConfig is set")
	defer c.Close()
	_, isTLS := c.TLSConnectionState()
	require.True(t, isTLS)
	require.NoError(t, c.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(testMsg)))

	job := env.oneJob(t)
	j, err := ParseIncomingJob(job.Payload)
	require.NoError(t, err)
	assert.True(t, j.TLS)
	assert.Contains(t, j.Header, "with ESMTPS id "+j.ID)

	plain := newEnv(t, nil)
	c2, err := smtp.Dial(plain.addr)
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, c2.Hello("client.example.org"))
	ok, _ := c2.Extension("STARTTLS")
	assert.False(t, ok, "no STARTTLS without TLSConfig")
}
