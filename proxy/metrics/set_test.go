package metrics

import (
	"bytes"
	"flag"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/metrics")

// scrape returns the body of GET /metrics from h, failing t unless it is
// a 200 with the exposition content type.
func scrape(t testing.TB, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Fatalf("GET /metrics Content-Type = %q, want %q", ct, ContentType)
	}
	return rec.Body.String()
}

// checkGolden compares got with testdata/metrics/name.golden, or rewrites
// the file under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "metrics", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("/metrics differs from %s (run go test -update to accept):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// oddName is a client name with quotes, a backslash and a newline, which
// the label value must escape.
const oddName = `odd "name"` + "\\\n"

// loadTime is the scripted startup time; reloadTime the later reload.
var (
	loadTime   = time.Date(2024, 11, 14, 22, 13, 20, 0, time.UTC)
	reloadTime = loadTime.Add(90*time.Second + 250*time.Millisecond)
)

// scripted returns a Set after a scripted run: a startup load, traffic
// through every front end, a failed and a successful reload, and more
// traffic.
func scripted() *Set {
	s := New(Options{Version: "v1.2.3-test", OmitProcess: true})
	s.Loaded(Policies{
		Hash:     "sha256:0123456789abcdef",
		Clients:  []string{"build-agents", "laptops", oddName},
		Policies: []string{"github", "pypi"},
		Rules:    []string{"github#0", "github#1", "pypi#0"},
	}, loadTime)
	s.SetUpstreamPool(8, func() int { return 3 })
	minted, hits := uint64(4), uint64(17)
	s.SetLeafCounters(func() uint64 { return minted }, func() uint64 { return hits })

	ms := time.Millisecond
	for _, r := range []Request{
		// Plain HTTP: allowed, denied by a rule, default deny, an
		// upstream failure, a method outside the closed set.
		{ModeDirect, DecisionAllow, "GET", 200, "build-agents", "pypi", "pypi#0", 3 * ms, 120, 5300},
		{ModeDirect, DecisionAllow, "GET", 304, "build-agents", "pypi", "pypi#0", 7 * ms, 130, 210},
		{ModeDirect, DecisionDeny, "POST", 403, "laptops", "github", "github#1", 1 * ms, 800, 150},
		{ModeDirect, DecisionDeny, "GET", 403, "laptops", "", "", 1 * ms, 90, 150},
		{ModeDirect, DecisionError, "PUT", 502, "build-agents", "pypi", "pypi#0", 1200 * ms, 4000, 140},
		{ModeDirect, DecisionDeny, "PROPFIND", 403, "laptops", "", "", 0, 100, 150},
		// Refused before a client was resolved; no status sent.
		{ModeDirect, DecisionError, "", 400, "", "", "", 0, 0, 120},
		{ModeDirect, DecisionError, "GET", 0, "", "", "", 20 * ms, 70, 0},
		// CONNECTs: a spliced tunnel, a bump, a denial; then requests
		// inside the bumped tunnel.
		{ModeTunnel, DecisionAllow, "CONNECT", 200, "build-agents", "github", "github#0", 30 * time.Second, 52000, 880000},
		{ModeTunnel, DecisionAllow, "CONNECT", 200, "laptops", "github", "github#0", 2 * ms, 60, 64},
		{ModeTunnel, DecisionDeny, "CONNECT", 403, "laptops", "", "", 0, 60, 150},
		{ModeBump, DecisionAllow, "GET", 200, "laptops", "github", "github#0", 45 * ms, 300, 12000},
		{ModeBump, DecisionAllow, "HEAD", 200, "laptops", "github", "github#0", 11 * ms, 280, 200},
		{ModeBump, DecisionDeny, "DELETE", 405, "laptops", "github", "github#1", 0, 290, 160},
		// A client name with quotes, a backslash and a newline.
		{ModeDirect, DecisionAllow, "GET", 200, oddName, "pypi", "pypi#0", 600 * ms, 100, 100},
	} {
		s.Record(r)
	}
	s.UpstreamConn(false)
	s.UpstreamConn(true)
	s.UpstreamConn(true)
	s.UpstreamError("upstream_failed")
	s.UpstreamError("misdirected")
	s.UpstreamError("private_address")
	s.TLSHandshakeFailure(SideClient)
	s.TLSHandshakeFailure(SideUpstream)
	s.TLSHandshakeFailure(SideUpstream)
	// Connections over the limits: two over max_connections_per_ip, one
	// over max_connections; seven open at scrape time.
	s.ConnectionRefused(RefusedMaxConnectionsPerIP)
	s.ConnectionRefused(RefusedMaxConnectionsPerIP)
	s.ConnectionRefused(RefusedMaxConnections)
	s.SetOpenConnections(func() int { return 7 })

	// A broken reload, then one that drops the pypi policy and its rule
	// and adds a client; the kept names keep their counts.
	s.ReloadFailed()
	s.Reloaded(Policies{
		Hash:     "sha256:fedcba9876543210",
		Clients:  []string{"build-agents", "laptops", oddName, "ci"},
		Policies: []string{"github"},
		Rules:    []string{"github#0", "github#1"},
	}, reloadTime)
	// Traffic after the reload, one request naming the dropped policy
	// (it started before the reload): it counts under "other".
	s.Record(Request{ModeDirect, DecisionAllow, "GET", 200, "ci", "github", "github#0", 4 * ms, 90, 900})
	s.Record(Request{ModeDirect, DecisionAllow, "GET", 200, "build-agents", "pypi", "pypi#0", 9 * ms, 90, 900})

	// In flight at scrape time: two plain requests, a spliced tunnel, a
	// bumped tunnel and one request inside it.
	s.RequestStarted(ModeDirect)
	s.RequestStarted(ModeDirect)
	s.RequestStarted(ModeDirect)
	s.RequestDone(ModeDirect)
	s.RequestStarted(ModeTunnel)
	s.TunnelOpened(ModeTunnel)
	s.RequestStarted(ModeTunnel)
	s.TunnelOpened(ModeBump)
	s.RequestStarted(ModeBump)
	minted, hits = 5, 19
	return s
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		set  func() *Set
	}{
		// Every family from the start, at zero.
		{"initial", func() *Set { return New(Options{OmitProcess: true}) }},
		{"scripted", scripted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scrape(t, tt.set().Handler())
			parseExposition(t, got)
			checkGolden(t, tt.name, got)
		})
	}
}

// TestScripted checks figures of the scripted run that the golden file
// shows, so that accepting a wrong golden file takes two mistakes.
func TestScripted(t *testing.T) {
	e := parseExposition(t, scrape(t, scripted().Handler()))
	want := map[string]float64{
		`exfilguard_requests_total{decision="ALLOW",mode="direct"}`:                                                   5,
		`exfilguard_requests_total{decision="ERROR",mode="direct"}`:                                                   3,
		`exfilguard_requests_total{decision="DENY",mode="tunnel"}`:                                                    1,
		`exfilguard_requests_status_total{status_class="5xx",mode="direct"}`:                                          2, // 502 and 0
		`exfilguard_requests_status_total{status_class="4xx",mode="direct"}`:                                          4,
		`exfilguard_requests_method_total{method="other",mode="direct"}`:                                              2, // PROPFIND and ""
		`exfilguard_client_requests_total{client="build-agents",decision="ALLOW",mode="direct"}`:                      3,
		`exfilguard_client_requests_total{client="ci",decision="ALLOW",mode="direct"}`:                                1,
		`exfilguard_policy_requests_total{policy="other",decision="ALLOW",mode="direct"}`:                             1,
		`exfilguard_rule_hits_total{rule="github#0"}`:                                                                 5,
		`exfilguard_rule_hits_total{rule="other"}`:                                                                    1,
		`exfilguard_client_request_duration_seconds_count{client="laptops",decision="ALLOW",mode="bump"}`:             2,
		`exfilguard_client_request_duration_seconds_bucket{client="laptops",decision="ALLOW",mode="bump",le="0.025"}`: 1,
		`exfilguard_client_request_duration_seconds_sum{client="laptops",decision="ALLOW",mode="bump"}`:               0.056,
		`exfilguard_transferred_bytes_total{direction="out",mode="tunnel"}`:                                           880064 + 150,
		`exfilguard_upstream_pool_reuse_total{reused="yes"}`:                                                          2,
		`exfilguard_upstream_pool_miss_total`:                                                                         1,
		`exfilguard_upstream_pool_in_use`:                                                                             3,
		`exfilguard_upstream_pool_capacity`:                                                                           8,
		`exfilguard_upstream_errors_total{kind="other"}`:                                                              1,
		`exfilguard_upstream_errors_total{kind="misdirected_request"}`:                                                1,
		`exfilguard_tls_handshake_failures_total{side="upstream"}`:                                                    2,
		`exfilguard_leaf_certificates_minted_total`:                                                                   5,
		`exfilguard_leaf_cache_hits_total`:                                                                            19,
		`exfilguard_inflight_requests{mode="direct"}`:                                                                 2,
		`exfilguard_open_tunnels{mode="bump"}`:                                                                        1,
		`exfilguard_open_connections`:                                                                                 7,
		`exfilguard_connections_refused_total{limit="max_connections"}`:                                               1,
		`exfilguard_connections_refused_total{limit="max_connections_per_ip"}`:                                        2,
		`exfilguard_reloads_total{result="success"}`:                                                                  1,
		`exfilguard_reloads_total{result="failure"}`:                                                                  1,
		`exfilguard_last_reload_success_timestamp_seconds`:                                                            float64(reloadTime.Unix()) + 0.25,
		`exfilguard_policy_info{hash="sha256:fedcba9876543210"}`:                                                      1,
		`exfilguard_build_info{version="v1.2.3-test"}`:                                                                1,
	}
	for k, v := range want {
		if got, ok := e.values[k]; !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	// Dropped by the reload: the pypi policy and its rule.
	for k := range e.values {
		if strings.Contains(k, `policy="pypi"`) || strings.Contains(k, `rule="pypi#0"`) {
			t.Errorf("%s is still written after its name was dropped", k)
		}
	}
	// The odd client name is escaped, and parses back.
	const escaped = `exfilguard_client_requests_total{client="odd \"name\"\\\n",decision="ALLOW",mode="direct"}`
	if got := e.values[escaped]; got != 1 {
		t.Errorf("%s = %v, want 1", escaped, got)
	}
	found := false
	for _, s := range e.family("exfilguard_client_requests_total").samples {
		if v, _ := s.label("client"); v == oddName {
			found = true
		}
	}
	if !found {
		t.Errorf("client label %q does not parse back", oddName)
	}
	if got, want := e.sum("exfilguard_requests_total"), 17.0; got != want {
		t.Errorf("sum of exfilguard_requests_total = %v, want %v", got, want)
	}
}

// TestProcessFamilies checks the families the golden files leave out.
func TestProcessFamilies(t *testing.T) {
	s := New(Options{Version: "x"})
	e := parseExposition(t, scrape(t, s.Handler()))
	families := []string{"go_goroutines"}
	if runtime.GOOS == "linux" {
		families = append(families, "process_cpu_seconds_total", "process_max_fds", "process_open_fds",
			"process_resident_memory_bytes", "process_start_time_seconds")
	}
	for _, name := range families {
		f := e.family(name)
		if f == nil || len(f.samples) != 1 {
			t.Errorf("family %s missing or without its one sample", name)
			continue
		}
		v := f.samples[0].value
		switch name {
		case "go_goroutines", "process_max_fds", "process_open_fds":
			if v < 1 {
				t.Errorf("%s = %v, want at least 1", name, v)
			}
		case "process_resident_memory_bytes":
			if v < 1<<20 || v > 1<<40 {
				t.Errorf("%s = %v, want a plausible size", name, v)
			}
		case "process_start_time_seconds":
			// The test binary started during this test run.
			if now := float64(time.Now().Unix()); v > now+1 || v < now-3600 {
				t.Errorf("%s = %v, want shortly before %v", name, v, now)
			}
		case "process_cpu_seconds_total":
			if v < 0 || v > 3600 {
				t.Errorf("%s = %v", name, v)
			}
		}
	}
	if runtime.GOOS == "linux" {
		// CPU time goes up with work.
		before := e.values["process_cpu_seconds_total"]
		for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		}
		after := parseExposition(t, scrape(t, s.Handler())).values["process_cpu_seconds_total"]
		if after <= before {
			t.Errorf("process_cpu_seconds_total went from %v to %v over 300ms of busy work", before, after)
		}
	}
	if got := New(Options{OmitProcess: true}); strings.Contains(scrape(t, got.Handler()), "\nprocess_") {
		t.Errorf("OmitProcess still writes process_ families")
	}
}

// TestPromtool runs promtool check metrics, which also lints names and
// help texts, on the scripted and the live output.
func TestPromtool(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed")
	}
	for name, s := range map[string]*Set{"scripted": scripted(), "live": New(Options{})} {
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(scrape(t, s.Handler()))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil || out.Len() > 0 {
			t.Errorf("promtool check metrics (%s): %v\n%s", name, err, out.String())
		}
	}
}

func TestUpstreamErrorKinds(t *testing.T) {
	tests := []struct{ reason, kind string }{
		{"request_timeout", "request_timeout"},
		{"body_too_large", "body_too_large"},
		{"private_address", "private_address"},
		{"misdirected", "misdirected_request"},
		{"misdirected_request", "misdirected_request"},
		{"upstream_closed", "upstream_closed"},
		{"response_truncated", "upstream_closed"},
		{"upstream_timeout", "upstream_timeout"},
		{"resolve_failed", "resolve_failed"},
		{"connect_failed", "connect_failed"},
		{"upstream_failed", "other"},
		// Not upstream errors: policy decisions, client-side refusals,
		// anything unknown.
		{"rule", ""},
		{"default_deny", ""},
		{"invalid_request", ""},
		{"expectation_failed", ""},
		{"upgrade_unsupported", ""},
		{"client_gone", ""},
		{"sni_mismatch", ""},
		{"other", ""},
		{"evil.example.com", ""},
		{"", ""},
	}
	for _, tt := range tests {
		s := New(Options{OmitProcess: true})
		s.UpstreamError(tt.reason)
		e := parseExposition(t, scrape(t, s.Handler()))
		if tt.kind == "" {
			if got := e.sum("exfilguard_upstream_errors_total"); got != 0 {
				t.Errorf("UpstreamError(%q): total %v, want 0", tt.reason, got)
			}
			continue
		}
		key := `exfilguard_upstream_errors_total{kind="` + tt.kind + `"}`
		if got := e.values[key]; got != 1 {
			t.Errorf("UpstreamError(%q): %s = %v, want 1", tt.reason, key, got)
		}
		if got := e.sum("exfilguard_upstream_errors_total"); got != 1 {
			t.Errorf("UpstreamError(%q): total %v, want 1", tt.reason, got)
		}
	}
}

func TestStatusClass(t *testing.T) {
	tests := []struct {
		code int
		want string
	}{
		{0, "5xx"}, {100, "other"}, {101, "other"}, {200, "2xx"}, {299, "2xx"}, {304, "3xx"},
		{403, "4xx"}, {499, "4xx"}, {500, "5xx"}, {599, "5xx"}, {600, "other"}, {-1, "other"},
	}
	for _, tt := range tests {
		if got := statusClasses[statusClass(tt.code)]; got != tt.want {
			t.Errorf("statusClass(%d) = %s, want %s", tt.code, got, tt.want)
		}
	}
}

func TestMethodIndex(t *testing.T) {
	for i, m := range methods[:methodOther] {
		if got := methodIndex(m); got != i {
			t.Errorf("methodIndex(%q) = %d, want %d", m, got, i)
		}
	}
	for _, m := range []string{"get", "PROPFIND", "", "GET ", "other"} {
		if got := methodIndex(m); got != methodOther {
			t.Errorf("methodIndex(%q) = %d, want other", m, got)
		}
	}
}

func TestParseModeDecision(t *testing.T) {
	for _, m := range []Mode{ModeDirect, ModeTunnel, ModeBump} {
		if got, ok := ParseMode(m.String()); !ok || got != m {
			t.Errorf("ParseMode(%q) = %v, %v, want %v", m.String(), got, ok, m)
		}
	}
	for _, d := range []Decision{DecisionAllow, DecisionDeny, DecisionError} {
		if got, ok := ParseDecision(d.String()); !ok || got != d {
			t.Errorf("ParseDecision(%q) = %v, %v, want %v", d.String(), got, ok, d)
		}
	}
	if _, ok := ParseMode("Direct"); ok {
		t.Errorf("ParseMode(Direct) ok")
	}
	if _, ok := ParseDecision("allow"); ok {
		t.Errorf("ParseDecision(allow) ok")
	}
	if got := Mode(7).String(); got != "Mode(7)" {
		t.Errorf("Mode(7).String() = %q", got)
	}
}

func TestTunnelDirectIgnored(t *testing.T) {
	s := New(Options{OmitProcess: true})
	s.TunnelOpened(ModeDirect)
	s.TunnelOpened(ModeTunnel)
	s.TunnelClosed(ModeDirect)
	e := parseExposition(t, scrape(t, s.Handler()))
	if got := e.sum("exfilguard_open_tunnels"); got != 1 {
		t.Errorf("open tunnels = %v, want 1", got)
	}
}
