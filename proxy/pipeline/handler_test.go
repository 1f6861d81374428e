package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"exfilguard/conf"
	"exfilguard/policy"
	"exfilguard/proxy/metrics"
)

// recordingUpstream is an httptest server that records what reached it.
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	body []string
}

func newRecordingUpstream(tb testing.TB, h http.HandlerFunc) *recordingUpstream {
	tb.Helper()
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, r)
		u.body = append(u.body, string(b))
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("X-Upstream", "yes")
		io.WriteString(w, "hello from upstream")
	}))
	tb.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// testUpstream adapts net/http's transport to Upstream for these unit
// tests: every target goes to the recording server. The proxy's own
// transport (package upstream) is tested with the real server.
type testUpstream struct {
	addr    string
	targets []Target
	sent    []*http.Request
	err     error
}

func (t *testUpstream) RoundTrip(req *http.Request, target Target) (*http.Response, error) {
	t.targets = append(t.targets, target)
	t.sent = append(t.sent, req)
	if t.err != nil {
		return nil, t.err
	}
	out := req.Clone(req.Context())
	out.URL = &url.URL{Scheme: "http", Host: t.addr, Opaque: req.RequestURI}
	out.RequestURI = ""
	return http.DefaultTransport.RoundTrip(out)
}

func ruleset(tb testing.TB, policies string) *atomic.Pointer[policy.Ruleset] {
	tb.Helper()
	dir := tb.TempDir()
	write := func(name, text string) {
		if err := writeFile(dir+"/"+name, text); err != nil {
			tb.Fatal(err)
		}
	}
	write("exfilguard.toml", "listen = \"127.0.0.1:0\"\nca_dir = \"ca\"\nclients = \"clients.toml\"\npolicies = \"policies.toml\"\n")
	write("clients.toml", "[[client]]\nname = \"app\"\ncidr = \"10.0.0.0/8\"\npolicies = [\"p\"]\n\n[[client]]\nname = \"rest\"\ncidr = \"0.0.0.0/0\"\npolicies = [\"deny\"]\nfallback = true\n")
	write("policies.toml", policies+"\n[[policy]]\nname = \"deny\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 470\nreason = \"Policy Blocked\"\nbody = \"Blocked by ExfilGuard\\n\"\n")
	cfg, err := conf.Load(dir+"/exfilguard.toml", conf.Options{})
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	rs, err := policy.Compile(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var p atomic.Pointer[policy.Ruleset]
	p.Store(rs)
	return &p
}

const testPolicies = `[[policy]]
name = "p"

[[policy.rule]]
action = "DENY"
url_pattern = "http://example.com/secret/**"
status = 451

[[policy.rule]]
action = "ALLOW"
methods = ["GET", "POST", "HEAD"]
url_pattern = "http://example.com/ok/**"
`

type harness struct {
	h    *Handler
	up   *testUpstream
	rec  *recordingUpstream
	logs bytes.Buffer
}

func newHarness(tb testing.TB) *harness {
	hs := &harness{}
	hs.rec = newRecordingUpstream(tb, nil)
	hs.up = &testUpstream{addr: hs.rec.Listener.Addr().String()}
	hs.h = &Handler{
		Policies: ruleset(tb, testPolicies),
		Upstream: hs.up,
		Log:      slog.New(slog.NewJSONHandler(&hs.logs, nil)),
	}
	return hs
}

// do sends a request from peer through the handler on front end fe.
func (hs *harness) do(fe FrontEnd, peer, method, scheme, authority, target string, header http.Header, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "http://placeholder/", strings.NewReader(body))
	r.URL = &url.URL{Scheme: scheme, Host: authority}
	r.Host = authority
	r.RequestURI = target
	if header != nil {
		r.Header = header
	}
	if body == "" {
		r.Body = http.NoBody
		r.ContentLength = 0
	}
	info := &ConnInfo{Peer: netip.MustParseAddrPort(peer), SessionID: "s1", FrontEnd: fe, ConnectHost: "example.com", ConnectPort: 443}
	r = r.WithContext(NewContext(context.Background(), info))
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, r)
	return w
}

// lastRecord returns the last decision record.
func (hs *harness) lastRecord(tb testing.TB) map[string]any {
	tb.Helper()
	lines := strings.Split(strings.TrimSpace(hs.logs.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		tb.Fatalf("log record: %v: %q", err, lines[len(lines)-1])
	}
	return m
}

func TestPipelineDecisions(t *testing.T) {
	tests := []struct {
		name         string
		fe           FrontEnd
		peer         string
		method       string
		scheme, auth string
		target       string
		header       http.Header
		wantStatus   int
		wantBody     string
		wantReason   string
		wantUpstream bool
	}{
		{"allowed", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/x", nil, 200, "hello from upstream", "rule", true},
		{"rule deny", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/secret/x", nil, 451, "", "rule", false},
		{"fallback deny", Plain, "192.0.2.1:5000", "GET", "http", "example.com", "/ok/x", nil, 470, "Blocked by ExfilGuard\n", "rule", false},
		{"default deny", Plain, "10.1.1.1:5000", "GET", "http", "other.example", "/ok/x", nil, 403, BodyBlocked, "default_deny", false},
		{"dot segments judged canonically", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/../secret/x", nil, 451, "", "rule", false},
		{"encoded dot segment", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/%2e%2e/secret", nil, 400, BodyInvalidTarget, ReasonInvalidRequest, false},
		{"encoded slash", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok%2Fx", nil, 400, BodyInvalidTarget, ReasonInvalidRequest, false},
		{"port not in pattern", Plain, "10.1.1.1:5000", "GET", "http", "example.com:8080", "/ok/x", nil, 403, BodyBlocked, "default_deny", false},
		{"userinfo in authority", Plain, "10.1.1.1:5000", "GET", "http", "user@example.com", "/ok/x", nil, 400, BodyInvalidTarget, ReasonInvalidRequest, false},
		{"octal host", Plain, "10.1.1.1:5000", "GET", "http", "0177.0.0.1", "/ok/x", nil, 400, BodyInvalidTarget, ReasonInvalidRequest, false},
		{"method not allowed", Plain, "10.1.1.1:5000", "DELETE", "http", "example.com", "/ok/x", nil, 403, BodyBlocked, "default_deny", false},
		{"upgrade refused", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/x", http.Header{"Upgrade": {"websocket"}}, 400, BodyUpgrade, ReasonUpgrade, false},
		{"unknown expectation", Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/x", http.Header{"Expect": {"magic"}}, 417, BodyExpectation, ReasonExpectation, false},
		{"misdirected inside bump", BumpH1, "10.1.1.1:5000", "GET", "https", "other.example", "/ok/x", nil, 421, BodyMisdirected, ReasonMisdirected, false},
		{"misdirected port inside bump", BumpH2, "10.1.1.1:5000", "GET", "https", "example.com:8443", "/ok/x", nil, 421, BodyMisdirected, ReasonMisdirected, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			w := hs.do(tt.fe, tt.peer, tt.method, tt.scheme, tt.auth, tt.target, tt.header, "")
			if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody {
				t.Errorf("status %d body %q, want %d %q", w.Code, w.Body.String(), tt.wantStatus, tt.wantBody)
			}
			if got := hs.rec.count() > 0; got != tt.wantUpstream {
				t.Errorf("upstream reached = %v, want %v", got, tt.wantUpstream)
			}
			rec := hs.lastRecord(t)
			if rec["reason"] != tt.wantReason || rec["status"] != float64(tt.wantStatus) {
				t.Errorf("record reason %v status %v, want %q %d", rec["reason"], rec["status"], tt.wantReason, tt.wantStatus)
			}
			if !tt.wantUpstream && tt.fe != BumpH2 && w.Header().Get("Connection") != "close" {
				t.Errorf("proxy response without Connection: close")
			}
		})
	}
}

func TestPipelineForwardsRawTargetAndStripsHeaders(t *testing.T) {
	hs := newHarness(t)
	h := http.Header{
		"Connection":          {"close, X-Secret-Hop"},
		"X-Secret-Hop":        {"1"},
		"Proxy-Authorization": {"Basic Zm9vOmJhcg=="},
		"X-Forwarded-For":     {"10.9.9.9"},
		"Forwarded":           {"for=10.9.9.9"},
		"True-Client-Ip":      {"10.9.9.9"},
		"My-Client-Ip":        {"10.9.9.9"},
		"Keep-Alive":          {"timeout=5"},
		"Te":                  {"gzip"},
		"Expect":              {"100-continue"},
		"Accept":              {"text/plain"},
	}
	w := hs.do(Plain, "10.1.1.1:5000", "GET", "http", "Example.COM:80", "/ok/a/../b%41?q=1", h, "")
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	got := hs.rec.reqs[0]
	if got.RequestURI != "/ok/a/../b%41?q=1" {
		t.Errorf("upstream RequestURI = %q, want the raw target", got.RequestURI)
	}
	if got.Host != "Example.COM:80" {
		t.Errorf("upstream Host = %q, want the authority as the client wrote it", got.Host)
	}
	for _, k := range []string{"X-Secret-Hop", "Proxy-Authorization", "X-Forwarded-For", "Forwarded", "True-Client-Ip", "My-Client-Ip", "Keep-Alive", "Te", "Expect"} {
		if v := got.Header.Get(k); v != "" {
			t.Errorf("upstream got %s: %q", k, v)
		}
	}
	if got.Header.Get("Accept") != "text/plain" {
		t.Errorf("Accept not forwarded")
	}
	if tg := hs.up.targets[0]; tg.Scheme != "http" || tg.Host != "example.com" || tg.Port != 80 || tg.AllowPrivate || tg.Addrs != nil {
		t.Errorf("target = %+v", tg)
	}
	rec := hs.lastRecord(t)
	if rec["path"] != "/ok/a/../b%41" || rec["client"] != "app" || rec["rule"] != "p#1" || rec["decision"] != "ALLOW" || rec["mode"] != "direct" || rec["session_id"] != "s1" {
		t.Errorf("record = %v", rec)
	}
	// TE: trailers alone is kept (RFC 9113 §8.2.2); the test upstream's
	// net/http transport would drop it on HTTP/1.1, so check the request
	// handed to the upstream transport instead.
	hs.do(Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/te", http.Header{"Te": {"trailers"}}, "")
	if te := hs.up.sent[len(hs.up.sent)-1].Header.Get("Te"); te != "trailers" {
		t.Errorf("TE: trailers not kept: %q", te)
	}
}

func TestPipelineLogQueries(t *testing.T) {
	hs := newHarness(t)
	hs.h.LogQueries = true
	hs.do(Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/x?token=abc", nil, "")
	if rec := hs.lastRecord(t); rec["path"] != "/ok/x?token=abc" {
		t.Errorf("path = %v", rec["path"])
	}
}

func TestPipelineBodyLimit(t *testing.T) {
	hs := newHarness(t)
	hs.h.MaxRequestBodySize = 4
	w := hs.do(Plain, "10.1.1.1:5000", "POST", "http", "example.com", "/ok/x", nil, "0123456789")
	if w.Code != 413 || w.Body.String() != BodyTooLarge || hs.rec.count() != 0 {
		t.Errorf("status %d body %q upstream %d", w.Code, w.Body.String(), hs.rec.count())
	}
	// A denied request is denied, not told its body is too large.
	w = hs.do(Plain, "10.1.1.1:5000", "POST", "http", "example.com", "/secret/x", nil, "0123456789")
	if w.Code != 451 {
		t.Errorf("denied oversized request: status %d", w.Code)
	}
}

type statusErr struct{ status int }

func (e statusErr) Error() string  { return "upstream refused" }
func (e statusErr) Status() int    { return e.status }
func (e statusErr) Reason() string { return ReasonPrivateAddress }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "dial timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestPipelineUpstreamErrors(t *testing.T) {
	var _ net.Error = timeoutErr{}
	tests := []struct {
		err        error
		wantStatus int
		wantBody   string
		wantReason string
	}{
		{statusErr{403}, 403, BodyBlocked, ReasonPrivateAddress},
		{timeoutErr{}, 504, BodyTimedOut, ReasonUpstreamTimeout},
		{errors.New("connection refused"), 502, BodyUpstreamFailed, ReasonUpstreamFailed},
	}
	for _, tt := range tests {
		hs := newHarness(t)
		hs.up.err = tt.err
		w := hs.do(Plain, "10.1.1.1:5000", "GET", "http", "example.com", "/ok/x", nil, "")
		rec := hs.lastRecord(t)
		if w.Code != tt.wantStatus || w.Body.String() != tt.wantBody || rec["reason"] != tt.wantReason {
			t.Errorf("%v: %d %q reason %v, want %d %q %s", tt.err, w.Code, w.Body.String(), rec["reason"], tt.wantStatus, tt.wantBody, tt.wantReason)
		}
	}
}

// TestPipelineRefusalRecordsNameTarget: refusals of a request's headers
// (Upgrade, Expect) come after the target is read, so their records say
// what the request was for.
func TestPipelineRefusalRecordsNameTarget(t *testing.T) {
	for _, header := range []http.Header{{"Upgrade": {"websocket"}}, {"Expect": {"magic"}}} {
		hs := newHarness(t)
		hs.do(Plain, "10.1.1.1:5000", "GET", "http", "example.com:8080", "/ok/x", header, "")
		rec := hs.lastRecord(t)
		if rec["scheme"] != "http" || rec["host"] != "example.com" || rec["port"] != float64(8080) || rec["path"] != "/ok/x" {
			t.Errorf("%v: record %v", header, rec)
		}
	}
}

// failingWriter is a client that goes away once the response head is
// written.
type failingWriter struct{ *httptest.ResponseRecorder }

func (f failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestPipelineClientGone: a response body the client stops taking ends
// the exchange as client_gone, not as a truncated upstream response.
func TestPipelineClientGone(t *testing.T) {
	hs := newHarness(t)
	r := httptest.NewRequest("GET", "http://example.com/ok/x", http.NoBody)
	r.RequestURI = "/ok/x"
	info := &ConnInfo{Peer: netip.MustParseAddrPort("10.1.1.1:5000"), SessionID: "s1", FrontEnd: Plain}
	r = r.WithContext(NewContext(context.Background(), info))
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("ServeHTTP ended with %v, want http.ErrAbortHandler", v)
			}
		}()
		hs.h.ServeHTTP(failingWriter{httptest.NewRecorder()}, r)
	}()
	rec := hs.lastRecord(t)
	if rec["reason"] != ReasonClientGone || !strings.Contains(rec["error"].(string), "broken pipe") {
		t.Errorf("record %v, want reason %s", rec, ReasonClientGone)
	}
}

// cancellingWriter is a client that cancels its request after the first
// bytes of the body, as an HTTP/2 stream reset does: the request's
// context is cancelled.
type cancellingWriter struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (c cancellingWriter) Write(p []byte) (int, error) {
	c.cancel()
	return c.ResponseRecorder.Write(p)
}

// TestPipelineClientCancel: a request whose context is cancelled (an
// HTTP/2 stream reset) while its response streams is client_gone, not a
// request_timeout, and is no upstream error.
func TestPipelineClientCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hs := newHarness(t)
	hs.rec = newRecordingUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first bytes")
		w.(http.Flusher).Flush()
		<-release
	})
	hs.up.addr = hs.rec.Listener.Addr().String()
	hs.h.Metrics = metrics.New(metrics.Options{OmitProcess: true})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequest("GET", "http://example.com/ok/x", http.NoBody)
	r.RequestURI = "/ok/x"
	info := &ConnInfo{Peer: netip.MustParseAddrPort("10.1.1.1:5000"), SessionID: "s1", FrontEnd: Plain}
	r = r.WithContext(NewContext(ctx, info))
	func() {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				panic(v)
			}
		}()
		hs.h.ServeHTTP(cancellingWriter{httptest.NewRecorder(), cancel}, r)
	}()
	rec := hs.lastRecord(t)
	if rec["reason"] != ReasonClientGone {
		t.Errorf("record %v, want reason %s", rec, ReasonClientGone)
	}
	var text strings.Builder
	hs.h.Metrics.WriteText(&text)
	for _, line := range strings.Split(text.String(), "\n") {
		if strings.HasPrefix(line, "exfilguard_upstream_errors_total{") && !strings.HasSuffix(line, " 0") {
			t.Errorf("a client's cancel counted as an upstream error: %s", line)
		}
	}
}
