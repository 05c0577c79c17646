package delivery

import (
	"bufio"
	"bytes"
	"crypto"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIMKey is one DKIM signing key (RFC 6376) of the outbound worker.
type DKIMKey struct {
	// Domain is the signing domain (d=). A message is signed with the key
	// when its RFC5322.From domain is Domain or a subdomain of it (so the
	// signature aligns for DMARC), or when All is set.
	Domain string
	// Selector is the selector (s=); the public key is published at
	// <Selector>._domainkey.<Domain>.
	Selector string
	// Signer is the private key: an *rsa.PrivateKey (2048 bits or more
	// recommended) or an ed25519.PrivateKey (RFC 8463).
	Signer crypto.Signer
	// All signs every message with this key, whatever its From domain
	// (a service provider's own signature beside the customer's).
	All bool
	// HeaderKeys are the header fields to sign. The default is
	// DefaultDKIMHeaders.
	HeaderKeys []string
}

// DefaultDKIMHeaders are the header fields signed by default (RFC 6376
// section 5.4.1's recommendation, without the trace fields).
var DefaultDKIMHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Resent-Date", "Resent-From",
	"Resent-To", "Resent-Cc", "In-Reply-To", "References", "List-Id", "List-Help",
	"List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe", "List-Post",
	"List-Owner", "List-Archive", "Message-ID", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding",
}

// signDKIM reads the message (already CRLF-normalised) once and returns
// the DKIM-Signature fields of every key that applies, CRLF-terminated and
// concatenated, to be prepended. The header section is buffered up to
// maxHeader bytes to find the From domain; the body is only hashed
// (streamed through dkim.Signer, relaxed/relaxed, SHA-256).
func signDKIM(keys []DKIMKey, msg io.Reader, maxHeader int) (string, error) {
	if len(keys) == 0 {
		return "", nil
	}
	br := bufio.NewReaderSize(msg, 16<<10)
	var hdr bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		hdr.Write(line)
		if hdr.Len() > maxHeader {
			return "", fmt.Errorf("%w: header section over %d bytes", ErrHeaderTooLarge, maxHeader)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			break
		}
	}
	fromDomain := headerFromDomain(hdr.Bytes())
	var signers []*dkim.Signer
	var ws []io.Writer
	for _, k := range keys {
		if !k.All && !domainWithin(fromDomain, k.Domain) {
			continue
		}
		hk := k.HeaderKeys
		if hk == nil {
			hk = DefaultDKIMHeaders
		}
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain: k.Domain, Selector: k.Selector, Signer: k.Signer, Hash: crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             hk,
		})
		if err != nil {
			return "", fmt.Errorf("delivery: DKIM key %s/%s: %w", k.Domain, k.Selector, err)
		}
		signers = append(signers, s)
		ws = append(ws, s)
	}
	if len(signers) == 0 {
		return "", nil
	}
	w := io.MultiWriter(ws...)
	_, err := w.Write(hdr.Bytes())
	if err == nil {
		_, err = io.Copy(w, br)
	}
	var sigs strings.Builder
	for _, s := range signers {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err == nil {
			sigs.WriteString(s.Signature())
		}
	}
	if err != nil {
		return "", fmt.Errorf("delivery: DKIM sign: %w", err)
	}
	return sigs.String(), nil
}

// domainWithin reports whether d is parent or a subdomain of it.
func domainWithin(d, parent string) bool {
	d, parent = strings.ToLower(d), strings.ToLower(strings.TrimSuffix(parent, "."))
	return d != "" && (d == parent || strings.HasSuffix(d, "."+parent))
}

// headerFromDomain returns the domain of the first From address of a
// header section, or "".
func headerFromDomain(hdr []byte) string {
	m, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n")))
	if err != nil {
		return ""
	}
	from := m.Header.Get("From")
	addrs, err := mail.ParseAddressList(from)
	if err != nil || len(addrs) == 0 {
		// Fall back to the last '@' of the raw field.
		i := strings.LastIndexByte(from, '@')
		if i < 0 {
			return ""
		}
		d := strings.TrimRight(from[i+1:], "> \t")
		return strings.ToLower(d)
	}
	_, d, _ := strings.Cut(addrs[0].Address, "@")
	return strings.ToLower(d)
}
