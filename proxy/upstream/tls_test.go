package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a root and a leaf for upstream.test, 127.0.0.1 and ::1.
type testPKI struct {
	root    *x509.Certificate
	rootPEM []byte
	leaf    tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "upstream test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "upstream.test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"upstream.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{
		root:    root,
		rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}),
		leaf:    tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey},
	}
}

// setSystemPool replaces the system roots for one test.
func setSystemPool(t testing.TB, pool *x509.CertPool, err error) {
	t.Helper()
	saved := systemCertPool
	t.Cleanup(func() { systemCertPool = saved })
	systemCertPool = func() (*x509.CertPool, error) { return pool, err }
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRootPool(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	caFile := writeFile(t, "ca.pem", pki.rootPEM)
	bundle := writeFile(t, "bundle.pem", []byte("# private PKI\n"+string(pki.rootPEM)+"\nsecond one:\n"+string(other.rootPEM)))
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	withRoot := func(c *x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(c)
		return p
	}
	tests := []struct {
		name    string
		system  *x509.CertPool
		sysErr  error
		file    string
		wantErr string // substring; "" means success
		trusts  []*testPKI
	}{
		{"no system roots, no file", x509.NewCertPool(), nil, "", "no trusted roots: install ca-certificates or set upstream_ca_file", nil},
		{"system pool fails, no file", nil, errors.New("no cert files"), "", "no trusted roots", nil},
		{"system roots only", withRoot(other.root), nil, "", "", []*testPKI{other}},
		{"file only", x509.NewCertPool(), nil, caFile, "", []*testPKI{pki}},
		{"system pool fails, file", nil, errors.New("no cert files"), caFile, "", []*testPKI{pki}},
		{"system plus file", withRoot(other.root), nil, caFile, "", []*testPKI{pki, other}},
		{"bundle with comments", x509.NewCertPool(), nil, bundle, "", []*testPKI{pki, other}},
		{"missing file", withRoot(other.root), nil, filepath.Join(t.TempDir(), "missing.pem"), "read upstream_ca_file", nil},
		{"empty file", withRoot(other.root), nil, writeFile(t, "empty.pem", nil), "no PEM certificates", nil},
		{"not PEM", withRoot(other.root), nil, writeFile(t, "text.pem", []byte("hello\n")), "no PEM certificates", nil},
		{"key in bundle", withRoot(other.root), nil, writeFile(t, "key.pem", append(append([]byte{}, pki.rootPEM...), keyPEM...)), `PEM block 2 is "PRIVATE KEY"`, nil},
		{"bad certificate", withRoot(other.root), nil, writeFile(t, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x01}})), "PEM block 1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setSystemPool(t, tt.system, tt.sysErr)
			pool, err := RootPool(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RootPool(%q) = %v, want error containing %q", tt.file, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("RootPool(%q): %v", tt.file, err)
			}
			for _, p := range tt.trusts {
				leaf, _ := x509.ParseCertificate(p.leaf.Certificate[0])
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "upstream.test"}); err != nil {
					t.Errorf("leaf does not verify against RootPool: %v", err)
				}
			}
		})
	}
	t.Run("ErrNoRoots", func(t *testing.T) {
		setSystemPool(t, x509.NewCertPool(), nil)
		if _, err := RootPool(""); !errors.Is(err, ErrNoRoots) {
			t.Errorf("RootPool = %v, want ErrNoRoots", err)
		}
	})
}

// handshake runs a TLS server with pki's leaf and srv's settings on
// loopback and a client with cfg; it returns the SNI the server saw, the
// negotiated protocol and the client's handshake error.
func handshake(t *testing.T, pki *testPKI, srv *tls.Config, cfg *tls.Config) (sni, proto string, err error) {
	t.Helper()
	ln, _ := listen(t)
	srv = srv.Clone()
	srv.Certificates = []tls.Certificate{pki.leaf}
	sniCh := make(chan string, 1)
	srv.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sniCh <- h.ServerName
		return nil, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, srv)
		if tc.Handshake() == nil {
			// Wait for the client's close so the handshake completes
			// on both sides (TLS 1.3 client verification is async).
			tc.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, cfg)
	err = tc.Handshake()
	proto = tc.ConnectionState().NegotiatedProtocol
	tc.Close()
	<-done
	select {
	case sni = <-sniCh:
	default:
	}
	return sni, proto, err
}

func TestClientTLSConfig(t *testing.T) {
	pki := newTestPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(pki.root)
	h2h1 := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	tls11 := &tls.Config{MaxVersion: tls.VersionTLS11}
	cbcOnly := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}
	tls12 := &tls.Config{MaxVersion: tls.VersionTLS12}

	tests := []struct {
		name       string
		srv        *tls.Config
		serverName string
		alpn       []string
		wantSNI    string
		wantProto  string
		wantErr    bool
	}{
		{"name: SNI and DNS SAN", h2h1, "upstream.test", []string{"h2", "http/1.1"}, "upstream.test", "h2", false},
		{"name, http/1.1 only", h2h1, "upstream.test", []string{"http/1.1"}, "upstream.test", "http/1.1", false},
		{"ipv4 literal: no SNI, IP SAN", h2h1, "127.0.0.1", nil, "", "", false},
		{"ipv6 literal: no SNI, IP SAN", h2h1, "::1", nil, "", "", false},
		{"wrong name", h2h1, "other.test", nil, "other.test", "", true},
		{"ip not in SAN", h2h1, "10.0.0.1", nil, "", "", true},
		{"tls 1.2 accepted", tls12, "upstream.test", nil, "upstream.test", "", false},
		{"tls 1.1 refused", tls11, "upstream.test", nil, "upstream.test", "", true},
		{"tls 1.2 cbc refused", cbcOnly, "upstream.test", nil, "upstream.test", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ClientTLSConfig(roots, tt.serverName, tt.alpn)
			if cfg.MinVersion != tls.VersionTLS12 || cfg.InsecureSkipVerify {
				t.Fatalf("ClientTLSConfig: MinVersion %x, InsecureSkipVerify %v", cfg.MinVersion, cfg.InsecureSkipVerify)
			}
			sni, proto, err := handshake(t, pki, tt.srv, cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("handshake with %q: error %v, want error: %v", tt.serverName, err, tt.wantErr)
			}
			if sni != tt.wantSNI {
				t.Errorf("server saw SNI %q, want %q", sni, tt.wantSNI)
			}
			if err == nil && proto != tt.wantProto {
				t.Errorf("negotiated %q, want %q", proto, tt.wantProto)
			}
		})
	}

	// Untrusted root.
	cfg := ClientTLSConfig(x509.NewCertPool(), "upstream.test", nil)
	if _, _, err := handshake(t, pki, h2h1, cfg); err == nil {
		t.Error("handshake with an empty root pool succeeded")
	}
	// The ALPN list is the caller's.
	alpn := []string{"h2"}
	cfg = ClientTLSConfig(roots, "upstream.test", alpn)
	alpn[0] = "x"
	if cfg.NextProtos[0] != "h2" {
		t.Error("ClientTLSConfig aliases its alpn argument")
	}
}

// TestRootPoolSystem loads this machine's real roots.
func TestRootPoolSystem(t *testing.T) {
	pool, err := RootPool("")
	if errors.Is(err, ErrNoRoots) {
		t.Skip("no system roots on this machine")
	}
	if err != nil || pool == nil {
		t.Fatalf("RootPool(\"\") = %v, %v", pool, err)
	}
}
