package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"exfilguard/conf"
	"exfilguard/policy"
	"exfilguard/proxy/metrics"
)

// upstreamRecorder is an httptest upstream that records every request it
// received in full (head and a cleanly read body) and counts connections.
type upstreamRecorder struct {
	*httptest.Server
	mu       sync.Mutex
	paths    []string
	bodies   []string
	headers  []http.Header
	hosts    []string
	newConns atomic.Int32
	handler  http.HandlerFunc // optional; the default answers "ok"
}

func newUpstream(tb testing.TB, h http.HandlerFunc) *upstreamRecorder {
	tb.Helper()
	return startRecorder(tb, h, false)
}

// newTLSUpstream is a recording HTTPS origin speaking h2 and HTTP/1.1; it
// answers "ok " and the protocol the request came in.
func newTLSUpstream(tb testing.TB) *upstreamRecorder {
	tb.Helper()
	return startRecorder(tb, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.Proto) }, true)
}

func startRecorder(tb testing.TB, h http.HandlerFunc, useTLS bool) *upstreamRecorder {
	tb.Helper()
	u := &upstreamRecorder{handler: h}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// An incomplete body is not a request the upstream received.
			return
		}
		u.mu.Lock()
		u.paths = append(u.paths, r.RequestURI)
		u.bodies = append(u.bodies, string(body))
		u.headers = append(u.headers, r.Header.Clone())
		u.hosts = append(u.hosts, r.Host)
		u.mu.Unlock()
		if u.handler != nil {
			u.handler(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	u.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.newConns.Add(1)
		}
	}
	if useTLS {
		u.EnableHTTP2 = true
		u.StartTLS()
	} else {
		u.Start()
	}
	tb.Cleanup(u.Close)
	return u
}

func (u *upstreamRecorder) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.paths...)
}

func (u *upstreamRecorder) port() string {
	_, port, _ := net.SplitHostPort(u.Listener.Addr().String())
	return port
}

// testProxy is a proxy.Server on a loopback port, built from a real
// configuration by the same code main uses.
type testProxy struct {
	addr    string
	srv     *Server
	logs    *lockedBuffer
	cfg     *conf.Config
	metrics *metrics.Set
}

// metric returns the value of one series of the proxy's metrics as
// written, such as metric(`exfilguard_open_tunnels{mode="tunnel"}`), or
// "absent" when no such series is written.
func (p *testProxy) metric(tb testing.TB, series string) string {
	tb.Helper()
	var text strings.Builder
	if err := p.metrics.WriteText(&text); err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(text.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return "absent"
}

// waitMetric waits up to 5 s for a series to read want, and fails tb if
// it does not.
func (p *testProxy) waitMetric(tb testing.TB, series, want string) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.metric(tb, series) != want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.metric(tb, series); got != want {
		tb.Errorf("%s = %s, want %s", series, got, want)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testPolicies allows plain HTTP to the loopback upstreams under /ok/**
// (private allowed), /nopriv/** (private not allowed) and everything under
// /private/** to any host with private allowed; denies /ok/secret/** with
// 451; the fallback is denied with 470.
const testPolicies = `
[[policy]]
name = "web"

[[policy.rule]]
action = "DENY"
url_pattern = "http://127.0.0.1:*/ok/secret/**"
status = 451

[[policy.rule]]
action = "ALLOW"
url_pattern = "http://127.0.0.1:*/ok/**"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "http://*:*/private/**"
allow_private_upstream = true

[[policy.rule]]
action = "ALLOW"
url_pattern = "http://*:*/nopriv/**"

[[policy.rule]]
action = "ALLOW"
url_pattern = "https://127.0.0.1:*/ok/**"
allow_private_upstream = true

[[policy]]
name = "deny"

[[policy.rule]]
action = "DENY"
status = 470
reason = "Policy Blocked"
body = "Blocked by ExfilGuard\n"
`

const testClients = `
[[client]]
name = "loopback"
cidr = "127.0.0.0/8"
policies = ["web", "deny"]

[[client]]
name = "rest"
cidr = "0.0.0.0/0"
policies = ["deny"]
fallback = true
`

// startProxy writes a configuration (extra settings appended to the main
// file; extra files written beside it), loads it with conf.Load and
// serves it on 127.0.0.1:0.
func startProxy(tb testing.TB, extraSettings string, files map[string]string) *testProxy {
	tb.Helper()
	dir := tb.TempDir()
	all := map[string]string{
		"exfilguard.toml": "listen = \"127.0.0.1:0\"\nca_dir = \"ca\"\nclients = \"clients.toml\"\npolicies = \"policies.toml\"\n" + extraSettings,
		"clients.toml":    testClients,
		"policies.toml":   testPolicies,
	}
	for k, v := range files {
		all[k] = v
	}
	for name, text := range all {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	cfg, err := conf.Load(filepath.Join(dir, "exfilguard.toml"), conf.Options{})
	if err != nil {
		tb.Fatalf("conf.Load: %v", err)
	}
	rs, err := policy.Compile(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var policies atomic.Pointer[policy.Ruleset]
	policies.Store(rs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	bound := netip.MustParseAddrPort(ln.Addr().String())
	set := metrics.New(metrics.Options{Version: "test", OmitProcess: true})
	srv, err := New(&cfg.Settings, &policies, log, []netip.AddrPort{bound}, set)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return &testProxy{addr: ln.Addr().String(), srv: srv, logs: logs, cfg: cfg, metrics: set}
}

// dial opens a raw client connection to the proxy.
func (p *testProxy) dial(tb testing.TB) net.Conn {
	tb.Helper()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// roundTrip sends raw bytes on a new connection and reads one response,
// reading it as the answer to the raw request's method.
func (p *testProxy) roundTrip(tb testing.TB, raw string) (*http.Response, string) {
	tb.Helper()
	c := p.dial(tb)
	if _, err := io.WriteString(c, raw); err != nil {
		tb.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	return readResponse(tb, bufio.NewReader(c), method)
}

// readResponse reads one response and its whole body.
func readResponse(tb testing.TB, br *bufio.Reader, method string) (*http.Response, string) {
	tb.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		tb.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read response body: %v", err)
	}
	return resp, string(body)
}

// client returns an http.Client that uses the proxy.
func (p *testProxy) client() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: p.proxyURL(), DisableCompression: true}}
}

// proxyURL is the Proxy function of an http.Transport that uses p.
func (p *testProxy) proxyURL() func(*http.Request) (*url.URL, error) {
	return http.ProxyURL(&url.URL{Scheme: "http", Host: p.addr})
}

// get sends one GET through the proxy with net/http as the client.
func (p *testProxy) get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := p.client().Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitRecords returns the decision records once there are at least n:
// a record is written just after its response is sent.
func (p *testProxy) waitRecords(tb testing.TB, n int) []string {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := p.records()
		if len(recs) >= n || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// records returns the decision records logged so far.
func (p *testProxy) records() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(p.logs.String()), "\n") {
		if strings.Contains(l, `"msg":"decision"`) {
			out = append(out, l)
		}
	}
	return out
}
