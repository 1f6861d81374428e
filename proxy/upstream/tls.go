package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
)

// systemCertPool returns the platform's roots; a test hook, because
// x509.SystemCertPool reads SSL_CERT_FILE and SSL_CERT_DIR only once per
// process.
var systemCertPool = x509.SystemCertPool

// ErrNoRoots is RootPool's error when no root is trusted at all.
var ErrNoRoots = errors.New("no trusted roots: install ca-certificates or set upstream_ca_file")

// RootPool returns the roots trusted for upstream TLS (SPEC §5): the
// system roots plus the certificates of upstreamCAFile, a PEM bundle (empty
// means none). The file must be readable, hold at least one certificate,
// and hold nothing but certificates that parse. If the result holds no root
// at all, the error is ErrNoRoots and startup aborts.
//
// x509.CertPool cannot be counted, so "no roots" is decided this way: on
// Unix other than macOS, x509.SystemCertPool reads the PEM files named by
// SSL_CERT_FILE (else the distribution bundles, such as
// /etc/ssl/certs/ca-certificates.crt) and the directories in SSL_CERT_DIR
// (else /etc/ssl/certs and the like) into an ordinary pool, which is empty
// exactly when it equals x509.NewCertPool(). On macOS and Windows the
// system pool defers to the platform verifier and never equals an empty
// pool, so it is taken to hold roots. A system pool that fails to load
// counts as empty: upstream_ca_file alone may still supply the roots.
func RootPool(upstreamCAFile string) (*x509.CertPool, error) {
	pool, err := systemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if upstreamCAFile != "" {
		data, err := os.ReadFile(upstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("read upstream_ca_file: %w", err)
		}
		certs, err := parseCerts(data)
		if err != nil {
			return nil, fmt.Errorf("upstream_ca_file %s: %w", upstreamCAFile, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	if pool.Equal(x509.NewCertPool()) {
		return nil, ErrNoRoots
	}
	return pool, nil
}

// parseCerts parses a PEM bundle strictly: every block must be a
// certificate that parses, and there must be at least one. Text between
// blocks (comments in bundles) is ignored, as openssl does. Unlike
// CertPool.AppendCertsFromPEM, nothing is skipped silently: a key pasted
// into the bundle or a truncated certificate is an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificates")
	}
	return certs, nil
}

// ClientTLSConfig returns the client configuration for an upstream TLS
// connection to host serverName (a name as ParseHost returns it, or an IP
// address without brackets), trusting roots and offering alpn (for
// example "h2", "http/1.1").
//
// The certificate is verified for serverName: a DNS SAN for a name, an IP
// SAN for an address. SNI carries the name, and nothing for an address:
// RFC 6066 §3 says "Literal IPv4 and IPv6 addresses are not permitted in
// HostName", and crypto/tls omits SNI when ServerName is an IP address
// while still verifying the IP SAN.
//
// TLS 1.2 is the minimum (SPEC §5). Its cipher suites are limited to ECDHE
// with an AEAD, as the original's rustls defaults (reference §7.4); Go's
// TLS 1.2 defaults still include CBC suites. TLS 1.3 suites are not
// configurable and all AEAD.
func ClientTLSConfig(roots *x509.CertPool, serverName string, alpn []string) *tls.Config {
	return &tls.Config{
		RootCAs:    roots,
		ServerName: serverName,
		NextProtos: slices.Clone(alpn),
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}
