package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"exfilguard/ca"
)

// binary is the exfilguard binary built once for the tests that run it as
// a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "exfilguard-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "exfilguard")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exfilguard runs the binary and returns its stdout, stderr and exit code.
func exfilguard(tb testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		tb.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// copyTree copies the directory src into a new temporary directory.
func copyTree(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

func replaceInFile(tb testing.TB, path, old, new string) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		tb.Fatalf("%s does not contain %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func TestCheckExamples(t *testing.T) {
	for _, name := range []string{"quickstart", "full"} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := exfilguard(t, nil, "check", "--config", filepath.Join("examples", name, "exfilguard.toml"))
			if code != 0 || !strings.HasPrefix(stdout, "configuration OK: ") {
				t.Errorf("check exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
		})
	}
}

func TestCheckSummary(t *testing.T) {
	stdout, _, code := exfilguard(t, nil, "check", "--config", "examples/full/exfilguard.toml")
	want := "configuration OK: 5 clients, 4 policies, 7 rules, 9 policy tests; listen 127.0.0.1:3128\n"
	if code != 0 || stdout != want {
		t.Errorf("check = %d %q, want 0 %q", code, stdout, want)
	}
}

// TestCheckFiles: check reads the files startup would and reports what
// would stop the proxy, without writing anything.
func TestCheckFiles(t *testing.T) {
	config := filepath.Join("examples", "quickstart", "exfilguard.toml")
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := ca.Open(caDir, ca.Options{}); err != nil {
		t.Fatal(err)
	}
	if stdout, _, code := exfilguard(t, nil, "check", "--config", config, "--ca-dir", caDir); code != 0 {
		t.Fatalf("check with a good CA: exit %d\n%s", code, stdout)
	}

	key := filepath.Join(caDir, "intermediate.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "bundle.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	env := []string{"EXFILGUARD__UPSTREAM_CA_FILE=" + notPEM}
	stdout, _, code := exfilguard(t, env, "check", "--config", config, "--ca-dir", caDir)
	want := "check CA material: " + key + ": mode 0644 lets group or other access the private key; run chmod 600 " + key + "\n" +
		"upstream_ca_file " + notPEM + ": no PEM certificates\n" +
		"2 problems found\n"
	if code != 1 || stdout != want {
		t.Errorf("check = %d\n%s\nwant 1\n%s", code, stdout, want)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("check changed the CA material: %v %v", fi.Mode(), err)
	}

	// The metrics TLS pair is read too, and counted as a problem of its own.
	env = append(env, "EXFILGUARD__METRICS_LISTEN=127.0.0.1:0",
		"EXFILGUARD__METRICS_TLS_CERT="+notPEM, "EXFILGUARD__METRICS_TLS_KEY="+notPEM)
	stdout, _, code = exfilguard(t, env, "check", "--config", config, "--ca-dir", caDir)
	want += "metrics TLS: tls: failed to find any PEM data in certificate input\n"
	want = strings.Replace(want, "2 problems found\n", "", 1) + "3 problems found\n"
	if code != 1 || stdout != want {
		t.Errorf("check = %d\n%s\nwant 1\n%s", code, stdout, want)
	}
}

// TestCheckBrokenFull breaks a copy of examples/full in three files and
// expects every problem, with its position and source line, and exit 1.
func TestCheckBrokenFull(t *testing.T) {
	dir := copyTree(t, "examples/full")
	replaceInFile(t, filepath.Join(dir, "exfilguard.toml"), "leaf_ttl = 86400", "leaf_ttl = 0")
	replaceInFile(t, filepath.Join(dir, "clients.d", "10-bastion.toml"), `"package-mirrors"`, `"package-mirror"`)
	replaceInFile(t, filepath.Join(dir, "policies.d", "20-mirrors.toml"), `https://*.githubusercontent.com/**`, `https://*github*.com/**`)
	stdout, stderr, code := exfilguard(t, nil, "check", "--config", filepath.Join(dir, "exfilguard.toml"))
	if code != 1 {
		t.Errorf("check exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	out := strings.ReplaceAll(stdout, dir+"/", "")
	for _, want := range []string{
		"exfilguard.toml:23:12: leaf_ttl must be greater than 0\n    leaf_ttl = 0\n               ^\n",
		"policies.d/20-mirrors.toml:18:15: url_pattern host \"*github*.com\": label \"*github*\" mixes '*' with other characters: wildcards match whole labels only\n    url_pattern = \"https://*github*.com/**\"\n                  ^\n",
		"clients.d/10-bastion.toml:5:13: client \"bastion\" references unknown policy \"package-mirror\"; did you mean \"package-mirrors\"?\n",
		"3 problems found\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q\noutput:\n%s", want, out)
		}
	}
}

// startBinary runs `exfilguard --config path` with env and returns the
// address it listens on (from its "proxy listener started" log line) and
// the running command. The process is killed at cleanup if still running.
func startBinary(tb testing.TB, path string, env ...string) (addr string, cmd *exec.Cmd, logs *syncBuffer) {
	tb.Helper()
	cmd = exec.Command(binary, "--config", path)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "EXFILGUARD__LISTEN=127.0.0.1:0", "EXFILGUARD__LOG=json"}, env...)
	logs = &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				tb.Fatalf("exfilguard exited before listening:\n%s", logs.String())
			}
			var rec struct{ Msg, Address string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "proxy listener started" {
				go func() {
					for range lines {
					}
				}()
				return rec.Address, cmd, logs
			}
		case <-deadline:
			tb.Fatalf("exfilguard did not start listening:\n%s", logs.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunQuickstart runs the README's first command (on a free port) and
// checks that the proxy serves, denies as the quickstart says, and stops
// cleanly on SIGTERM.
func TestRunQuickstart(t *testing.T) {
	addr, cmd, logs := startBinary(t, "examples/quickstart/exfilguard.toml")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 470 || resp.Status != "470 Policy Blocked" || string(body) != "Blocked by ExfilGuard\n" {
		t.Errorf("response %q %q, want 470 Policy Blocked", resp.Status, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exfilguard exit after SIGTERM: %v\n%s", err, logs.String())
	}
	out := logs.String()
	for _, want := range []string{`"msg":"decision"`, `"client":"loopback"`, `"rule":"default-deny#0"`, `"status":470`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

func TestStartupFailureOnStderr(t *testing.T) {
	stdout, stderr, code := exfilguard(t, []string{"EXFILGUARD__LEAF_TL=1"}, "--config", "examples/quickstart/exfilguard.toml")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "EXFILGUARD__LEAF_TL names no setting; did you mean EXFILGUARD__LEAF_TTL?") {
		t.Errorf("run = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.HasSuffix(stderr, "exfilguard: configuration is invalid; nothing started\n") {
		t.Errorf("stderr does not end with the one-line summary: %q", stderr)
	}
}

func TestNoConfigFound(t *testing.T) {
	cmd := exec.Command(binary, "check")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "neither /etc/exfilguard/exfilguard.toml nor ./exfilguard.toml exists") {
		if _, statErr := os.Stat("/etc/exfilguard/exfilguard.toml"); statErr == nil {
			t.Skip("/etc/exfilguard/exfilguard.toml exists on this machine")
		}
		t.Errorf("check without config: %v\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := exfilguard(t, nil, "--version")
	if code != 0 || !regexp.MustCompile(`^exfilguard \S+\n$`).MatchString(stdout) {
		t.Errorf("--version = %d %q", code, stdout)
	}
}

func TestUnknownCommand(t *testing.T) {
	_, stderr, code := exfilguard(t, nil, "serve")
	if code != 2 || !strings.Contains(stderr, `unknown command "serve"`) {
		t.Errorf("serve = %d %q", code, stderr)
	}
}

// TestCheckFailingPolicyTest: a wrong [[test]] is reported with its
// position, the expected and actual outcome and the deciding rule.
func TestCheckFailingPolicyTest(t *testing.T) {
	stdout, stderr, code := exfilguard(t, nil, "check", "--config", "testdata/policy/failing-test/exfilguard.toml")
	want := "testdata/policy/failing-test/policies.toml:24:1: policy test failed: expected ALLOW, got DENY 470 (decided by rule default-deny#0)\n1 problem found\n"
	if code != 1 || stdout != want {
		t.Errorf("check = %d\nstdout: %q\nwant:   %q\nstderr: %s", code, stdout, want, stderr)
	}
	// The same configuration refuses to start.
	_, stderr, code = exfilguard(t, nil, "--config", "testdata/policy/failing-test/exfilguard.toml")
	if code != 1 || !strings.Contains(stderr, "policy test failed") {
		t.Errorf("run = %d, stderr %q", code, stderr)
	}
}

func TestExplain(t *testing.T) {
	cfg := "examples/full/exfilguard.toml"
	tests := []struct {
		name string
		args []string
		want []string // lines the output must contain
	}{
		{
			name: "inner deny",
			args: []string{"--client", "10.42.16.7", "https://api.trusted-analytics.com/v1/exports/internal/x"},
			want: []string{
				"client    analytics-workers: selector 10.42.16.0/27 is the longest that contains 10.42.16.7",
				"decision  DENY by rule trusted-analytics-egress#0",
				"outcome   deny: 403 Internal exports are off limits",
			},
		},
		{
			name: "flags after the target",
			args: []string{"https://api.trusted-analytics.com/v1/exports/daily", "--client", "10.42.16.7", "--method", "POST"},
			want: []string{"decision  ALLOW by rule trusted-analytics-egress#1", "outcome   forward"},
		},
		{
			name: "fallback client",
			args: []string{"--client", "192.0.2.1", "https://api.trusted-analytics.com/v1/exports/daily"},
			want: []string{"client    unknown", "fallback", "outcome   deny: 470 Policy Blocked"},
		},
		{
			name: "CONNECT tunnel",
			args: []string{"--client", "10.42.48.3", "secure.partner.com:443"},
			want: []string{"decision  TUNNEL by rule pinned-payments-egress#0", "outcome   tunnel"},
		},
		{
			name: "CONNECT bump past a narrower DENY",
			args: []string{"--client", "10.42.16.7", "api.trusted-analytics.com:443"},
			want: []string{"DENY for some paths only", "outcome   bump"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := exfilguard(t, nil, append([]string{"explain", "--config", cfg}, tt.args...)...)
			if code != 0 {
				t.Fatalf("explain exit %d\n%s%s", code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("explain output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	stdout, stderr, code := exfilguard(t, nil, "explain", "--config", "examples/full/exfilguard.toml", "--json", "--client", "10.42.48.3", "secure.partner.com:443")
	if code != 0 {
		t.Fatalf("explain exit %d: %s", code, stderr)
	}
	var got struct {
		Client   struct{ Name string }
		Decision struct{ Action, Rule string }
		Outcome  string
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("explain --json output is not JSON: %v\n%s", err, stdout)
	}
	if got.Client.Name != "payments" || got.Decision.Action != "TUNNEL" || got.Decision.Rule != "pinned-payments-egress#0" || got.Outcome != "tunnel" {
		t.Errorf("explain --json = %+v", got)
	}
}

func TestExplainUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"https://example.com/"},                                       // no --client
		{"--client", "10.0.0.1"},                                       // no target
		{"--client", "not-an-ip", "https://example.com/"},              // bad client
		{"--client", "10.0.0.1", "--method", "GET", "example.com:443"}, // GET of an authority
		{"--client", "10.0.0.1", "https://example.com/a/%2e%2e/b"},     // no canonical path
	} {
		_, stderr, code := exfilguard(t, nil, append([]string{"explain", "--config", "examples/full/exfilguard.toml"}, args...)...)
		if code != 2 || stderr == "" {
			t.Errorf("explain %q = %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

// TestExplainDespiteFailingTest: explain is how a failing policy test is
// debugged, so it does not refuse to run because of one.
func TestExplainDespiteFailingTest(t *testing.T) {
	stdout, stderr, code := exfilguard(t, nil, "explain", "--config", "testdata/policy/failing-test/exfilguard.toml",
		"--client", "127.0.0.1", "--method", "POST", "https://www.searchkit.com/faq/feedback")
	if code != 0 || !strings.Contains(stdout, "outcome   deny: 470 Policy Blocked") {
		t.Errorf("explain = %d\n%s%s", code, stdout, stderr)
	}
}

// logAddress finds the address logged with msg in JSON logs.
func logAddress(tb testing.TB, logs, msg string) string {
	tb.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var rec struct{ Msg, Address string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Address
		}
	}
	tb.Fatalf("no %q line in logs:\n%s", msg, logs)
	return ""
}

func scrape(tb testing.TB, addr string) string {
	tb.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		tb.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// TestMetricsAndReload runs the binary on a copy of the quickstart with a
// metrics endpoint: a denied request is counted, and a SIGHUP reload of an
// edited policy takes effect and is counted; a broken edit is refused and
// the old policy stays.
func TestMetricsAndReload(t *testing.T) {
	dir := copyTree(t, "examples/quickstart")
	addr, cmd, logs := startBinary(t, filepath.Join(dir, "exfilguard.toml"), "EXFILGUARD__METRICS_LISTEN=127.0.0.1:0")
	maddr := logAddress(t, logs.String(), "metrics endpoint started")
	get := func() int {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if s := get(); s != 470 {
		t.Fatalf("status %d, want 470", s)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the request to be counted", func() bool {
		return strings.Contains(scrape(t, maddr), `exfilguard_requests_total{decision="DENY",mode="direct"} 1`)
	})
	m := scrape(t, maddr)
	for _, want := range []string{`exfilguard_rule_hits_total{rule="default-deny#0"} 1`, `exfilguard_policy_info{hash="`, "# TYPE process_resident_memory_bytes gauge"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Reload: the default deny now answers 451 (its policy tests too;
	// a reload whose tests fail would be refused).
	policies := filepath.Join(dir, "policies.toml")
	data, _ := os.ReadFile(policies)
	os.WriteFile(policies, []byte(strings.ReplaceAll(string(data), "status = 470", "status = 451")), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the reload", func() bool { return strings.Contains(logs.String(), "configuration reloaded") })
	if s := get(); s != 451 {
		t.Errorf("after reload: status %d, want 451", s)
	}
	// A broken edit is refused with its position; 451 stays.
	replaceInFile(t, policies, "reason = \"Policy Blocked\"", "reason = \"Policy Blocked\"\nstatsu = 1")
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the failed reload", func() bool { return strings.Contains(logs.String(), "configuration reload failed") })
	if !strings.Contains(logs.String(), `policies.toml:`) || !strings.Contains(logs.String(), `unknown key \"statsu\"`) {
		t.Errorf("reload failure lacks the position and message:\n%s", logs.String())
	}
	if s := get(); s != 451 {
		t.Errorf("after a failed reload: status %d, want 451", s)
	}
	m = scrape(t, maddr)
	for _, want := range []string{`exfilguard_reloads_total{result="success"} 1`, `exfilguard_reloads_total{result="failure"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}
