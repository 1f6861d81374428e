package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// connectPolicies: tunnels to tunnel.test (private allowed) and
// noprivate.test (not allowed); bumped HTTPS to example.com under /ok/**
// with a DENY for /ok/secret/**; everything else 470.
const connectPolicies = `
[[policy]]
name = "tunnels"

[[policy.rule]]
action = "ALLOW"
methods = ["CONNECT"]
url_pattern = "https://tunnel.test:*/**"
inspect_payload = false
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
methods = ["CONNECT"]
url_pattern = "https://noprivate.test:*/**"
inspect_payload = false

[[policy]]
name = "web"

[[policy.rule]]
action = "DENY"
url_pattern = "https://example.com:*/ok/secret/**"
status = 451

[[policy.rule]]
action = "ALLOW"
methods = ["GET", "POST", "HEAD"]
url_pattern = "https://example.com:*/ok/**"
allow_private_upstream = true

[[policy]]
name = "deny"

[[policy.rule]]
action = "DENY"
status = 470
reason = "Policy Blocked"
body = "Blocked by ExfilGuard\n"
`

const connectClients = `
[[client]]
name = "loopback"
cidr = "127.0.0.0/8"
policies = ["tunnels", "web", "deny"]

[[client]]
name = "rest"
cidr = "0.0.0.0/0"
policies = ["deny"]
fallback = true
`

// connectEnv is a proxy with an HTTPS origin (h1 and h2) and an echo
// server behind the host names of connectPolicies.
type connectEnv struct {
	p      *testProxy
	origin *upstreamRecorder // TLS, h2 enabled
	echo   net.Listener
	echoed atomic.Int64 // bytes the echo server received
	roots  *x509.CertPool
}

func newConnectEnv(tb testing.TB, extraSettings string) *connectEnv {
	tb.Helper()
	env := &connectEnv{}
	env.origin = newTLSUpstream(tb)
	dir := tb.TempDir()
	caFile := filepath.Join(dir, "origin-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: env.origin.Certificate().Raw}), 0o644)
	hosts := filepath.Join(dir, "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 tunnel.test noprivate.test example.com\n"), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	env.echo = ln
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(c, c)
				env.echoed.Add(n)
			}()
		}
	}()
	env.p = startProxy(tb, fmt.Sprintf("upstream_ca_file = %q\nhosts_file = %q\n%s", caFile, hosts, extraSettings),
		map[string]string{"policies.toml": connectPolicies, "clients.toml": connectClients})
	root, err := os.ReadFile(filepath.Join(env.p.cfg.Settings.CADir, "root.crt"))
	if err != nil {
		tb.Fatal(err)
	}
	env.roots = x509.NewCertPool()
	env.roots.AppendCertsFromPEM(root)
	return env
}

func (env *connectEnv) echoPort() string {
	_, port, _ := net.SplitHostPort(env.echo.Addr().String())
	return port
}

// connect opens a CONNECT to authority and returns the connection after
// the proxy's answer, with the response.
func (env *connectEnv) connect(tb testing.TB, authority string) (net.Conn, *bufio.Reader, *http.Response) {
	tb.Helper()
	c := env.p.dial(tb)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		tb.Fatalf("CONNECT %s: %v", authority, err)
	}
	return c, br, resp
}

// bumpTLS performs the client side of a bump with the proxy's root.
func (env *connectEnv) bumpTLS(tb testing.TB, authority string, alpn ...string) *tls.Conn {
	tb.Helper()
	c, br, resp := env.connect(tb, authority)
	if resp.StatusCode != 200 {
		tb.Fatalf("CONNECT %s: %d", authority, resp.StatusCode)
	}
	if br.Buffered() != 0 {
		tb.Fatalf("bytes after the 200")
	}
	host, _, _ := net.SplitHostPort(authority)
	tc := tls.Client(c, &tls.Config{RootCAs: env.roots, ServerName: host, NextProtos: alpn})
	if err := tc.Handshake(); err != nil {
		tb.Fatalf("bump handshake: %v", err)
	}
	return tc
}

func (env *connectEnv) originPort() string {
	_, port, _ := net.SplitHostPort(env.origin.Listener.Addr().String())
	return port
}

func TestConnectRefusals(t *testing.T) {
	env := newConnectEnv(t, "")
	tests := []struct {
		name, authority string
		status          int
		body            string
	}{
		{"default deny by the fallback policy", "blocked.example:443", 470, "Blocked by ExfilGuard\n"},
		{"no port", "tunnel.test", 400, "invalid CONNECT target\r\n"},
		{"port zero", "tunnel.test:0", 400, "invalid CONNECT target\r\n"},
		{"userinfo", "user@tunnel.test:" + env.echoPort(), 400, "invalid CONNECT target\r\n"},
		{"octal host", "0177.0.0.1:443", 400, "invalid CONNECT target\r\n"},
		{"private target without allow_private_upstream", "noprivate.test:" + env.echoPort(), 403, "CONNECT to private networks is not allowed\r\n"},
		{"the proxy itself", "tunnel.test:" + strings.Split(env.p.addr, ":")[1], 403, "CONNECT to private networks is not allowed\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, br, resp := env.connect(t, tt.authority)
			body, _ := io.ReadAll(resp.Body)
			_ = br
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Errorf("CONNECT %s = %d %q, want %d %q", tt.authority, resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
	if n := env.echoed.Load(); n != 0 {
		t.Errorf("echo server received %d bytes", n)
	}
}

func TestTunnelRelay(t *testing.T) {
	env := newConnectEnv(t, "")
	c := env.p.dial(t)
	// Bytes pipelined after the CONNECT head go into the tunnel (SPEC §5).
	fmt.Fprintf(c, "CONNECT tunnel.test:%s HTTP/1.1\r\nHost: tunnel.test\r\n\r\nearly bytes|", env.echoPort())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	io.WriteString(c, "late bytes")
	got := make([]byte, len("early bytes|late bytes"))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "early bytes|late bytes" {
		t.Fatalf("echo %q, %v", got, err)
	}
	c.(*net.TCPConn).CloseWrite()
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("bytes after half-close: %q", rest)
	}
	recs := env.p.waitRecords(t, 1)
	if !strings.Contains(recs[0], `"mode":"tunnel"`) || !strings.Contains(recs[0], `"bytes_in":22`) || !strings.Contains(recs[0], `"rule":"tunnels#0"`) {
		t.Errorf("record %s", recs[0])
	}
}

// TestTunnelSNIMismatch: a ClientHello for another host is domain
// fronting; the tunnel closes before the hello reaches the upstream.
func TestTunnelSNIMismatch(t *testing.T) {
	env := newConnectEnv(t, "")
	c, _, resp := env.connect(t, "tunnel.test:"+env.echoPort())
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "fronted.example", InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake through a fronted tunnel succeeded")
	}
	recs := env.p.waitRecords(t, 1)
	if !strings.Contains(recs[0], `"reason":"sni_mismatch"`) || !strings.Contains(recs[0], `"decision":"DENY"`) {
		t.Errorf("record %s", recs[0])
	}
	if n := env.echoed.Load(); n != 0 {
		t.Errorf("upstream received %d bytes of the hello", n)
	}
}

// TestTunnelTimers: the lifetime closes a busy tunnel without writing any
// HTTP bytes into it; activity keeps it open past the idle timeout and
// the other timeouts; silence closes it.
func TestTunnelTimers(t *testing.T) {
	env := newConnectEnv(t, "connect_tunnel_idle_timeout = 1\nrequest_header_timeout = 1\nclient_keepalive_idle_timeout = 1\nresponse_header_timeout = 1\nconnect_tunnel_max_lifetime = 3\n")
	authority := "tunnel.test:" + env.echoPort()

	// Active for 2.5 s, longer than every 1 s timeout.
	c, br, _ := env.connect(t, authority)
	for i := range 10 {
		msg := fmt.Sprintf("ping %d|", i)
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("ping %d after %d ms: %v", i, i*250, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Then the lifetime (3 s) ends it: EOF, no HTTP bytes.
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	rest, _ := io.ReadAll(br)
	if len(rest) != 0 {
		t.Errorf("bytes written into the tunnel at its end: %q", rest)
	}

	// Idle: closed after about 1 s of silence.
	c, br, _ = env.connect(t, authority)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(4 * time.Second))
	if rest, err := io.ReadAll(br); len(rest) != 0 || err != nil {
		t.Errorf("idle tunnel: %q %v", rest, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle tunnel closed after %v, want about 1s", d)
	}
	recs := env.p.waitRecords(t, 2)
	if !strings.Contains(recs[0], `"reason":"tunnel_max_lifetime"`) || !strings.Contains(recs[1], `"reason":"tunnel_idle"`) {
		t.Errorf("records:\n%s\n%s", recs[0], recs[1])
	}
}

// TestBumpH1 covers bumped HTTP/1.1: keep-alive, the canonical path,
// absolute-form refused, Host other than the CONNECT → 421.
func TestBumpH1(t *testing.T) {
	env := newConnectEnv(t, "")
	authority := "example.com:" + env.originPort()
	tc := env.bumpTLS(t, authority, "http/1.1")
	br := bufio.NewReader(tc)
	send := func(method, target, host string) (*http.Response, string) {
		fmt.Fprintf(tc, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, target, host)
		return readResponse(t, br, method)
	}
	for i := range 2 {
		resp, body := send("GET", fmt.Sprintf("/ok/%d", i), authority)
		if resp.StatusCode != 200 || body != "ok HTTP/2.0" && body != "ok HTTP/1.1" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if resp, _ := send("GET", "/ok/x/../secret/y", authority); resp.StatusCode != 451 {
		t.Errorf("canonical path: %d, want 451", resp.StatusCode)
	}

	tc = env.bumpTLS(t, authority, "http/1.1")
	br = bufio.NewReader(tc)
	if resp, _ := send("GET", "/ok/x", "other.example"); resp.StatusCode != 421 {
		t.Errorf("Host other than the CONNECT: %d, want 421", resp.StatusCode)
	}
	tc = env.bumpTLS(t, authority, "http/1.1")
	br = bufio.NewReader(tc)
	if resp, _ := send("GET", "https://"+authority+"/ok/x", authority); resp.StatusCode != 400 {
		t.Errorf("absolute-form inside the tunnel: %d, want 400", resp.StatusCode)
	}
	for _, p := range env.origin.requests() {
		if strings.Contains(p, "secret") || p == "https://"+authority+"/ok/x" {
			t.Errorf("origin received %q", p)
		}
	}
	if n := len(env.origin.requests()); n != 2 {
		t.Errorf("origin received %d requests, want 2", n)
	}
}

// TestBumpSNIMismatch: a client SNI other than the CONNECT host fails the
// bump handshake.
func TestBumpSNIMismatch(t *testing.T) {
	env := newConnectEnv(t, "")
	c, _, resp := env.connect(t, "example.com:"+env.originPort())
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: env.roots, ServerName: "other.example"})
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake with a fronted SNI succeeded")
	}
	recs := env.p.waitRecords(t, 1)
	if !strings.Contains(recs[0], `"reason":"sni_mismatch"`) {
		t.Errorf("record %s", recs[0])
	}
}

// h2Client returns an HTTP/2 client over one bumped connection.
func (env *connectEnv) h2Client(tb testing.TB, authority string) *http2.ClientConn {
	tb.Helper()
	tc := env.bumpTLS(tb, authority, "h2")
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		tb.Fatalf("negotiated %q, want h2", p)
	}
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

func h2Get(tb testing.TB, cc *http2.ClientConn, authority, path string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+authority+"/", nil)
	req.URL.Opaque = path // sent as :path unchanged
	req.Host = authority
	resp, err := cc.RoundTrip(req)
	if err != nil {
		tb.Fatalf("h2 GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBumpH2: streams decided one by one; a denied or malformed stream
// does not disturb the others.
func TestBumpH2(t *testing.T) {
	env := newConnectEnv(t, "")
	authority := "example.com:" + env.originPort()
	cc := env.h2Client(t, authority)
	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/ok/a", 200},
		{"/ok/secret/x", 451},
		{"/ok/%2e%2e/secret", 400},
		{"/ok/b", 200},
		{"/other", 470},
	} {
		if status, body := h2Get(t, cc, authority, tt.path); status != tt.status {
			t.Errorf("h2 %s: %d %q, want %d", tt.path, status, body, tt.status)
		}
	}
	// :authority other than the CONNECT: 421 on that stream only.
	if status, _ := h2Get(t, cc, "other.example:443", "/ok/a"); status != 421 {
		t.Errorf(":authority mismatch: %d, want 421", status)
	}
	if status, _ := h2Get(t, cc, authority, "/ok/c"); status != 200 {
		t.Errorf("stream after a 421: %d", status)
	}
	if n := len(env.origin.requests()); n != 3 {
		t.Errorf("origin received %d requests (%q), want 3", n, env.origin.requests())
	}
	recs := env.p.waitRecords(t, 7)
	if !strings.Contains(strings.Join(recs, "\n"), `"mode":"bump"`) {
		t.Errorf("no bump records")
	}
}

// TestDecisionParity runs one table through the four front ends: plain
// absolute-form https://, CONNECT, bumped HTTP/1.1 and bumped HTTP/2 must
// give the same status for every case.
func TestDecisionParity(t *testing.T) {
	env := newConnectEnv(t, "")
	port := env.originPort()
	cases := []struct {
		host, method, path string
		status             int
	}{
		{"example.com", "GET", "/ok/x", 200},
		{"example.com", "HEAD", "/ok/x", 200},
		{"example.com", "POST", "/ok/x", 200},
		{"example.com", "DELETE", "/ok/x", 470},
		{"example.com", "GET", "/ok/secret/y", 451},
		{"example.com", "GET", "/ok/../secret/y", 470},
		{"example.com", "GET", "/ok/x/../secret/y", 451},
		{"example.com", "GET", "/elsewhere", 470},
		{"example.com", "GET", "/ok/%2e%2e/x", 400},
		{"blocked.example", "GET", "/ok/x", 470},
	}
	for _, tc := range cases {
		authority := tc.host + ":" + port
		name := tc.method + " " + authority + tc.path
		t.Run(name, func(t *testing.T) {
			// Plain: absolute-form https:// on the listener.
			resp, _ := env.p.roundTrip(t, fmt.Sprintf("%s https://%s%s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.method, authority, tc.path, authority))
			got := map[string]int{"plain": resp.StatusCode}

			// CONNECT: a denial of the whole authority must be the same;
			// otherwise the CONNECT bumps and the inner requests decide.
			c, _, cresp := env.connect(t, authority)
			c.Close()
			if cresp.StatusCode != 200 {
				got["connect"], got["bump_h1"], got["bump_h2"] = cresp.StatusCode, cresp.StatusCode, cresp.StatusCode
			} else {
				got["connect"] = tc.status
				tconn := env.bumpTLS(t, authority, "http/1.1")
				fmt.Fprintf(tconn, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", tc.method, tc.path, authority)
				r1, _ := readResponse(t, bufio.NewReader(tconn), tc.method)
				got["bump_h1"] = r1.StatusCode

				cc := env.h2Client(t, authority)
				req, _ := http.NewRequest(tc.method, "https://"+authority+"/", nil)
				req.URL.Opaque, req.Host = tc.path, authority
				r2, err := cc.RoundTrip(req)
				if err != nil {
					t.Fatalf("h2: %v", err)
				}
				io.Copy(io.Discard, r2.Body)
				r2.Body.Close()
				got["bump_h2"] = r2.StatusCode
			}
			for fe, status := range got {
				if status != tc.status {
					t.Errorf("%s: status %d, want %d (all: %v)", fe, status, tc.status, got)
				}
			}
		})
	}
}

// TestTLSHandshakeFailureMetrics: failed handshakes are counted on the
// client side (a bumping client that does not trust the CA) and on the
// upstream side (an origin whose certificate is not trusted).
func TestTLSHandshakeFailureMetrics(t *testing.T) {
	env := newConnectEnv(t, "")
	// An origin with a fresh self-signed certificate, not in upstream_ca_file.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	untrusted.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	untrusted.StartTLS()
	defer untrusted.Close()
	_, port, _ := net.SplitHostPort(untrusted.Listener.Addr().String())
	resp, _ := env.p.roundTrip(t, "GET https://example.com:"+port+"/ok/x HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if resp.StatusCode != 502 {
		t.Errorf("untrusted origin: %d, want 502", resp.StatusCode)
	}
	c, _, cresp := env.connect(t, "example.com:"+env.originPort())
	if cresp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", cresp.StatusCode)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "example.com"}) // system roots only
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake succeeded without trusting the CA")
	}
	c.Close()
	env.p.waitMetric(t, `exfilguard_tls_handshake_failures_total{side="client"}`, "1")
	if got := env.p.metric(t, `exfilguard_tls_handshake_failures_total{side="upstream"}`); got != "1" {
		t.Errorf(`exfilguard_tls_handshake_failures_total{side="upstream"} = %s, want 1`, got)
	}
}

// TestBumpUpstreamProtocols: bumped requests reach an h2 origin over one
// shared HTTP/2 connection, and an h1-only origin over HTTP/1.1, whatever
// the client speaks.
func TestBumpUpstreamProtocols(t *testing.T) {
	env := newConnectEnv(t, "")
	authority := "example.com:" + env.originPort()
	cc := env.h2Client(t, authority)
	for i := range 2 {
		if status, body := h2Get(t, cc, authority, fmt.Sprintf("/ok/%d", i)); status != 200 || body != "ok HTTP/2.0" {
			t.Errorf("h2 client, h2 origin, request %d: %d %q", i, status, body)
		}
	}
	if n := env.origin.newConns.Load(); n != 1 {
		t.Errorf("h2 origin saw %d connections for two streams, want 1", n)
	}

	// An origin that only speaks HTTP/1.1 (httptest's certificate, which
	// upstream_ca_file trusts).
	h1only := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.Proto) }))
	h1only.StartTLS() // EnableHTTP2 is false: ALPN http/1.1 only
	defer h1only.Close()
	_, port, _ := net.SplitHostPort(h1only.Listener.Addr().String())
	h1auth := "example.com:" + port
	cc = env.h2Client(t, h1auth)
	if status, body := h2Get(t, cc, h1auth, "/ok/x"); status != 200 || body != "ok HTTP/1.1" {
		t.Errorf("h2 client, h1-only origin: %d %q", status, body)
	}
	tc := env.bumpTLS(t, h1auth, "http/1.1")
	fmt.Fprintf(tc, "GET /ok/y HTTP/1.1\r\nHost: %s\r\n\r\n", h1auth)
	if resp, body := readResponse(t, bufio.NewReader(tc), "GET"); resp.StatusCode != 200 || body != "ok HTTP/1.1" {
		t.Errorf("h1 client, h1-only origin: %d %q", resp.StatusCode, body)
	}
}

// TestConcurrentFirstHandshakes: 200 clients bumping the same new host at
// once get one minted leaf between them.
func TestConcurrentFirstHandshakes(t *testing.T) {
	env := newConnectEnv(t, "")
	authority := "example.com:" + env.originPort()
	const n = 200
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := net.Dial("tcp", env.p.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
			if err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("CONNECT: %v %v", resp, err)
				return
			}
			tc := tls.Client(c, &tls.Config{RootCAs: env.roots, ServerName: "example.com"})
			errs <- tc.Handshake()
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if m := env.p.srv.authority.Minted(); m != 1 {
		t.Errorf("%d leaves minted for %d concurrent first handshakes, want 1", m, n)
	}
}

// TestShutdownClosesIdleBump: an idle keep-alive session inside a bumped
// tunnel is closed at once by Shutdown, like an idle plain connection.
func TestShutdownClosesIdleBump(t *testing.T) {
	env := newConnectEnv(t, "")
	authority := "example.com:" + env.originPort()
	tc := env.bumpTLS(t, authority, "http/1.1")
	br := bufio.NewReader(tc)
	fmt.Fprintf(tc, "GET /ok/x HTTP/1.1\r\nHost: %s\r\n\r\n", authority)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.p.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v with an idle bumped session", d)
	}
}

// TestShutdownDrainsBumpH2: Shutdown sends every bumped HTTP/2 session a
// GOAWAY; an idle session closes at once and a stream in flight finishes
// before its session closes, so Shutdown returns long before the grace
// period ends.
func TestShutdownDrainsBumpH2(t *testing.T) {
	env := newConnectEnv(t, "")
	// An origin that says when a request arrives, before reading its
	// body (httptest TLS servers share one certificate, so the proxy
	// trusts this one as it trusts env.origin).
	arrived := make(chan struct{}, 1)
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	}))
	origin.EnableHTTP2 = true
	origin.StartTLS()
	defer origin.Close()
	_, port, _ := net.SplitHostPort(origin.Listener.Addr().String())
	authority := "example.com:" + port

	idle := env.h2Client(t, authority)
	if status, _ := h2Get(t, idle, authority, "/ok/warm"); status != 200 {
		t.Fatalf("idle session's first stream: %d", status)
	}
	<-arrived

	// A POST whose body the client holds back keeps a stream open.
	busy := env.h2Client(t, authority)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "https://"+authority+"/ok/upload", pr)
	type result struct {
		status int
		body   string
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := busy.RoundTrip(req)
		if err != nil {
			answered <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- result{resp.StatusCode, string(b), err}
	}()
	if _, err := io.WriteString(pw, "first half|"); err != nil {
		t.Fatal(err)
	}
	<-arrived // the stream has reached the origin through the proxy

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- env.p.srv.Shutdown(ctx) }()

	// The idle session learns of the GOAWAY: no new stream is accepted.
	deadline := time.Now().Add(3 * time.Second)
	for st := idle.State(); !st.Closed && !st.Closing && time.Now().Before(deadline); st = idle.State() {
		time.Sleep(10 * time.Millisecond)
	}
	if st := idle.State(); !st.Closed && !st.Closing {
		t.Errorf("idle h2 session not told to go away: %+v", st)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a stream was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}

	// The busy stream completes after Shutdown began.
	io.WriteString(pw, "second half")
	pw.Close()
	if r := <-answered; r.err != nil || r.status != 200 || r.body != "got first half|second half" {
		t.Errorf("stream in flight at shutdown: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v with drained h2 sessions; the grace was 10 s", d)
	}
}
