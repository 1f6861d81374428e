package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// opsConfig writes a configuration in a temporary directory: 127.0.0.1 is
// client "app" with policy "p" (given), 127.0.0.2 is client "other" with
// policy "q" (given), everyone else is denied with 470.
func opsConfig(tb testing.TB, p, q string) string {
	tb.Helper()
	dir := tb.TempDir()
	files := map[string]string{
		"exfilguard.toml": "listen = \"127.0.0.1:0\"\nca_dir = \"ca\"\nclients = \"clients.toml\"\npolicies = \"policies.toml\"\nshutdown_grace_period = 5\n",
		"clients.toml": `[[client]]
name = "app"
ip = "127.0.0.1"
policies = ["p"]

[[client]]
name = "rest"
cidr = "0.0.0.0/0"
policies = ["deny"]
fallback = true
`,
		"policies.toml": "[[policy]]\nname = \"p\"\n" + p + "\n[[policy]]\nname = \"q\"\n" + q +
			"\n[[policy]]\nname = \"deny\"\n\n[[policy.rule]]\naction = \"DENY\"\nstatus = 470\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

const (
	allowLocal = "\n[[policy.rule]]\naction = \"ALLOW\"\nurl_pattern = \"http://127.0.0.1:*/**\"\nallow_private_upstream = true\n"
	denyLocal  = "\n[[policy.rule]]\naction = \"DENY\"\nurl_pattern = \"http://127.0.0.1:*/**\"\nstatus = 403\n"
)

// proxyGet sends one request on conn (or a new connection when conn is
// nil) and returns the status.
func proxyGet(tb testing.TB, addr string, conn net.Conn, br *bufio.Reader, url string) int {
	tb.Helper()
	if conn == nil {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		defer c.Close()
		conn, br = c, bufio.NewReader(c)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", url)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func waitLog(tb testing.TB, logs *syncBuffer, text string, n int) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(logs.String(), text) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("waiting for %d × %q in:\n%s", n, text, logs.String())
		}
	}
}

// TestReloadScenarios drives reloads of the real binary with SIGHUP.
func TestReloadScenarios(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	url := up.URL + "/x"
	dir := opsConfig(t, denyLocal, allowLocal)
	addr, cmd, logs := startBinary(t, filepath.Join(dir, "exfilguard.toml"), "EXFILGUARD__LISTEN=127.0.0.1:0")
	reload := func(n int) {
		start := time.Now()
		cmd.Process.Signal(syscall.SIGHUP)
		waitLog(t, logs, "configuration reload", n)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("reload took %v", d)
		}
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	policies, _ := os.ReadFile(filepath.Join(dir, "policies.toml"))
	clients, _ := os.ReadFile(filepath.Join(dir, "clients.toml"))

	// A keep-alive connection opened under the old policy.
	kc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	kbr := bufio.NewReader(kc)
	if s := proxyGet(t, addr, kc, kbr, url); s != 403 {
		t.Fatalf("before reload: %d, want 403", s)
	}
	// 403 closes that connection; open another keep-alive one that is
	// allowed by policy q after the clients change below.

	t.Run("deny, edit, SIGHUP, allow", func(t *testing.T) {
		write("policies.toml", strings.Replace(string(policies), denyLocal, allowLocal, 1))
		reload(1)
		if s := proxyGet(t, addr, nil, nil, url); s != 200 {
			t.Errorf("after reload: %d, want 200", s)
		}
	})
	t.Run("keep-alive connection uses the new policy on its next request", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		br := bufio.NewReader(c)
		if s := proxyGet(t, addr, c, br, url); s != 200 {
			t.Fatalf("first request: %d", s)
		}
		write("policies.toml", string(policies)) // back to deny
		reload(2)
		if s := proxyGet(t, addr, c, br, url); s != 403 {
			t.Errorf("same connection after reload: %d, want 403", s)
		}
	})
	t.Run("clients file change takes effect", func(t *testing.T) {
		// 127.0.0.1 moves to policy q, which allows.
		write("clients.toml", strings.Replace(string(clients), `policies = ["p"]`, `policies = ["q"]`, 1))
		reload(3)
		if s := proxyGet(t, addr, nil, nil, url); s != 200 {
			t.Errorf("after clients change: %d, want 200", s)
		}
	})
	t.Run("broken policies file keeps the old policy", func(t *testing.T) {
		write("policies.toml", string(policies)+"\n[[policy.rule]]\nactoin = \"ALLOW\"\n")
		reload(4)
		out := logs.String()
		if !strings.Contains(out, "configuration reload failed") || !strings.Contains(out, filepath.Join(dir, "policies.toml")+":") || !strings.Contains(out, `unknown key \"actoin\"`) {
			t.Errorf("failure not logged with FILE:LINE:COL:\n%s", out)
		}
		if s := proxyGet(t, addr, nil, nil, url); s != 200 {
			t.Errorf("after a failed reload: %d, want 200 (old policy)", s)
		}
	})
	t.Run("failing policy test refuses the reload", func(t *testing.T) {
		write("policies.toml", strings.Replace(string(policies), denyLocal, allowLocal, 1)+
			"\n[[test]]\nclient = \"127.0.0.1\"\nurl = \"http://127.0.0.1:9/x\"\nexpect = \"DENY\"\n")
		reload(5)
		if !strings.Contains(logs.String(), "policy test failed") {
			t.Errorf("no policy test failure logged")
		}
		if s := proxyGet(t, addr, nil, nil, url); s != 200 {
			t.Errorf("after a refused reload: %d, want 200 (old policy)", s)
		}
	})
	t.Run("20 reloads during a steady stream lose no request", func(t *testing.T) {
		write("policies.toml", strings.Replace(string(policies), denyLocal, allowLocal, 1))
		var sent, failed atomic.Int32
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					failed.Add(1)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					select {
					case <-stop:
						return
					default:
					}
					fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", url)
					resp, err := http.ReadResponse(br, nil)
					sent.Add(1)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
						return
					}
					io.Copy(io.Discard, resp.Body)
				}
			}()
		}
		for i := range 20 {
			reload(6 + i)
			time.Sleep(20 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if failed.Load() != 0 || sent.Load() < 20 {
			t.Errorf("%d of %d requests failed during reloads", failed.Load(), sent.Load())
		}
		t.Logf("%d requests during 20 reloads", sent.Load())
	})
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
}

// TestGracefulShutdown: a slow response in flight when SIGTERM arrives
// completes; new connections are refused; the process exits 0 within the
// grace period.
func TestGracefulShutdown(t *testing.T) {
	inHandler := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		time.Sleep(time.Second)
		io.WriteString(w, "slow but complete")
	}))
	defer up.Close()
	dir := opsConfig(t, allowLocal, allowLocal)
	addr, cmd, logs := startBinary(t, filepath.Join(dir, "exfilguard.toml"), "EXFILGUARD__LISTEN=127.0.0.1:0")
	idle, err := net.Dial("tcp", addr) // an idle keep-alive connection
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	done := make(chan string, 1)
	go func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			done <- err.Error()
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s/slow HTTP/1.1\r\nHost: x\r\n\r\n", up.URL)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		done <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-inHandler
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, logs, "shutting down", 1)
	// The log line comes just before the listener closes; from then on,
	// and while the slow request is still in flight, dials are refused.
	refused := false
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
	}
	if !refused {
		t.Errorf("new connections still accepted 1s into the shutdown")
	}
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("idle connection: read %d, %v; want it closed", n, err)
	}
	if got := <-done; got != "200 slow but complete" {
		t.Errorf("in-flight request: %q", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v, longer than the grace period", d)
	}
}

// TestMetricsBindFailure: a metrics address that cannot be bound is a
// fatal startup error with a clear message.
func TestMetricsBindFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := opsConfig(t, allowLocal, allowLocal)
	_, stderr, code := exfilguard(t, []string{"EXFILGUARD__METRICS_LISTEN=" + ln.Addr().String()}, "--config", filepath.Join(dir, "exfilguard.toml"))
	if code == 0 || !strings.Contains(stderr, "metrics_listen on "+ln.Addr().String()) || !strings.Contains(stderr, "address already in use") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestSecondSignalStopsAtOnce: a second SIGTERM during the grace period
// stops the process without waiting for the in-flight request.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	inHandler := make(chan struct{})
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
	}))
	defer up.Close()
	defer close(release)
	dir := opsConfig(t, allowLocal, allowLocal)
	addr, cmd, logs := startBinary(t, filepath.Join(dir, "exfilguard.toml"), "EXFILGUARD__LISTEN=127.0.0.1:0")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s/hang HTTP/1.1\r\nHost: x\r\n\r\n", up.URL)
	<-inHandler
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, logs, "shutting down", 1)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second signal: stopped after %v, want at once (grace period is 5s)", d)
	}
}
