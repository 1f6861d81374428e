package metrics

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestHandler(t *testing.T) {
	h := New(Options{OmitProcess: true}).Handler()
	tests := []struct {
		method, target string
		status         int
	}{
		{"GET", "/metrics", 200},
		{"POST", "/metrics", 405},
		{"HEAD", "/metrics", 405},
		{"PUT", "/metrics", 405},
		{"DELETE", "/metrics", 405},
		{"GET", "/", 404},
		{"GET", "/metrics/", 404},
		{"GET", "/Metrics", 404},
		{"GET", "/metrics?name=x", 404},
		{"GET", "/metrics?", 404},
		{"GET", "/%6detrics", 404},
		{"GET", "/metrics/../metrics", 404},
		{"GET", "http://proxy.example/metrics", 404},
		{"POST", "/other", 404},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if rec.Code != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.target, rec.Code, tt.status)
			}
			switch tt.status {
			case 200:
				if ct := rec.Header().Get("Content-Type"); ct != ContentType {
					t.Errorf("Content-Type = %q, want %q", ct, ContentType)
				}
				if cl := rec.Header().Get("Content-Length"); cl != "" && cl != strings.TrimSpace(cl) {
					t.Errorf("Content-Length = %q", cl)
				}
				parseExposition(t, rec.Body.String())
			case 405:
				if allow := rec.Header().Get("Allow"); allow != "GET" {
					t.Errorf("Allow = %q, want GET", allow)
				}
			case 404:
				if body := rec.Body.String(); body != "not found\n" {
					t.Errorf("body = %q, want not found", body)
				}
			}
		})
	}
}

// serve starts srv on a loopback listener and returns its address; the
// server is shut down when the test ends.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func TestServerHTTP(t *testing.T) {
	srv, err := NewServer(New(Options{}).Handler(), "", "", log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("GET /metrics = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	parseExposition(t, string(body))

	resp, err = http.Post("http://"+addr+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Errorf("POST /metrics = %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// A head over the size bound is refused before the handler runs.
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("GET with a 16 KiB header = %d, want 431", resp.StatusCode)
	}
}

// writeKeyPair writes a self-signed certificate for 127.0.0.1 and its key
// in the given PEM form, and returns the file names and a pool trusting
// the certificate.
func writeKeyPair(t *testing.T, form string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	var (
		key    any
		pub    any
		keyDER []byte
		err    error
		block  = "PRIVATE KEY"
	)
	switch form {
	case "rsa-pkcs1":
		k, gerr := rsa.GenerateKey(rand.Reader, 2048)
		if gerr != nil {
			t.Fatal(gerr)
		}
		key, pub, keyDER, block = k, &k.PublicKey, x509.MarshalPKCS1PrivateKey(k), "RSA PRIVATE KEY"
	case "ec-sec1", "ec-pkcs8":
		k, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			t.Fatal(gerr)
		}
		key, pub = k, &k.PublicKey
		if form == "ec-sec1" {
			keyDER, err = x509.MarshalECPrivateKey(k)
			block = "EC PRIVATE KEY"
		} else {
			keyDER, err = x509.MarshalPKCS8PrivateKey(k)
		}
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown key form %s", form)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "metrics test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: block, Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pool
}

func TestServerTLS(t *testing.T) {
	for _, form := range []string{"ec-pkcs8", "ec-sec1", "rsa-pkcs1"} {
		t.Run(form, func(t *testing.T) {
			certFile, keyFile, pool := writeKeyPair(t, form)
			srv, err := NewServer(New(Options{}).Handler(), certFile, keyFile, log.New(io.Discard, "", 0))
			if err != nil {
				t.Fatalf("NewServer: %v", err)
			}
			addr := serve(t, srv)
			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}},
				ForceAttemptHTTP2: true,
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
				t.Fatalf("GET /metrics = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			parseExposition(t, string(body))
			if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "http/1.1" || resp.ProtoMajor != 1 {
				t.Errorf("negotiated %v %q, want HTTP/1.1 over ALPN http/1.1", resp.Proto, resp.TLS.NegotiatedProtocol)
			}

			// Plain HTTP to the TLS port, and TLS 1.1, get nothing.
			if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Errorf("plain HTTP to the TLS endpoint = 200")
				}
			}
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11})
			if err == nil {
				conn.Close()
				t.Errorf("TLS 1.1 handshake succeeded")
			}
		})
	}
}

func TestNewServerBadKeyPair(t *testing.T) {
	certFile, keyFile, _ := writeKeyPair(t, "ec-sec1")
	otherCert, _, _ := writeKeyPair(t, "ec-pkcs8")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	tests := []struct{ name, cert, key string }{
		{"missing cert", filepath.Join(t.TempDir(), "none.pem"), keyFile},
		{"missing key", certFile, ""},
		{"mismatched", otherCert, keyFile},
		{"garbage key", certFile, garbage},
		{"cert as key", certFile, certFile},
	}
	for _, tt := range tests {
		if _, err := NewServer(http.NotFoundHandler(), tt.cert, tt.key, nil); err == nil {
			t.Errorf("%s: NewServer succeeded", tt.name)
		} else if !strings.Contains(err.Error(), "metrics TLS") {
			t.Errorf("%s: error %q does not say what failed", tt.name, err)
		}
	}
}

// TestServerReadTimeout checks, in a bubble over in-memory conns, that a
// client that never finishes its request head is dropped after 5 s.
func TestServerReadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := NewServer(New(Options{OmitProcess: true}).Handler(), "", "", log.New(io.Discard, "", 0))
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()

		// A complete request is answered.
		c := ln.dial()
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("complete request: %v %v", resp, err)
		}
		c.Close()

		// A head that never ends is dropped after the read timeout.
		c = ln.dial()
		start := time.Now()
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
		n, err := io.Copy(io.Discard, c)
		if elapsed := time.Since(start); elapsed != readTimeout {
			t.Errorf("slow head dropped after %v (read %d bytes, %v), want %v", elapsed, n, err, readTimeout)
		}
		c.Close()

		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
}

// TestServerHandshakeTimeout checks that a TLS client that never sends its
// ClientHello is dropped after 5 s.
func TestServerHandshakeTimeout(t *testing.T) {
	certFile, keyFile, _ := writeKeyPair(t, "ec-pkcs8")
	synctest.Test(t, func(t *testing.T) {
		srv, err := NewServer(New(Options{OmitProcess: true}).Handler(), certFile, keyFile, log.New(io.Discard, "", 0))
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		c := ln.dial()
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		if elapsed := time.Since(start); elapsed != readTimeout {
			t.Errorf("silent TLS client dropped after %v (read %d bytes, %v), want %v", elapsed, n, err, readTimeout)
		}
		c.Close()
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
}

// pipeListener is a net.Listener of net.Pipe conns, for synctest.
type pipeListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) dial() net.Conn {
	c, s := net.Pipe()
	l.conns <- s
	return c
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
