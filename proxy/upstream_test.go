package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSSRF: non-public destinations are refused (403, nothing dialed)
// unless the deciding rule allows private upstreams; odd IPv4 spellings
// are not hosts at all (400, SPEC §6).
func TestSSRF(t *testing.T) {
	up := newUpstream(t, nil)
	port := up.port()
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("127.0.0.1 localhost upstream.test\n"), 0o644)
	p := startProxy(t, fmt.Sprintf("hosts_file = %q\nupstream_connect_timeout = 1\n", hosts), nil)
	_, proxyPort, _ := net.SplitHostPort(p.addr)
	tests := []struct {
		name, authority string
		allowedStatus   int // with allow_private_upstream: 200 when it reaches the upstream, 0 when only "not 403"
		refusedStatus   int
	}{
		{"loopback", "127.0.0.1:" + port, 200, 403},
		{"localhost via hosts_file", "localhost:" + port, 200, 403},
		{"IPv6 loopback", "[::1]:" + port, 0, 403},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:" + port, 200, 403},
		{"NAT64 loopback", "[64:ff9b::7f00:1]:" + port, 0, 403},
		{"6to4 loopback", "[2002:7f00:1::]:" + port, 0, 403},
		{"unspecified", "0.0.0.0:" + port, 200, 403},
		{"metadata service", "169.254.169.254:" + port, 0, 403},
		{"CGNAT", "100.64.0.1:" + port, 0, 403},
		{"decimal IPv4", "2130706433:" + port, 400, 400},
		{"octal IPv4", "0177.0.0.1:" + port, 400, 400},
		{"short IPv4", "127.1:" + port, 400, 400},
		{"hex IPv4", "0x7f.0.0.1:" + port, 400, 400},
		{"the proxy itself", "127.0.0.1:" + proxyPort, 403, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(up.requests())
			status, _ := p.get(t, "http://"+tt.authority+"/nopriv/x")
			if status != tt.refusedStatus {
				t.Errorf("without allow_private_upstream: status %d, want %d", status, tt.refusedStatus)
			}
			if n := len(up.requests()); n != before {
				t.Errorf("refused request reached the upstream")
			}
			status, _ = p.get(t, "http://"+tt.authority+"/private/x")
			switch {
			case tt.allowedStatus == 0 && status == 403:
				t.Errorf("with allow_private_upstream: status 403, want it let through")
			case tt.allowedStatus != 0 && status != tt.allowedStatus:
				t.Errorf("with allow_private_upstream: status %d, want %d", status, tt.allowedStatus)
			}
		})
	}
}

// TestAllowedForward checks what reaches the upstream: the raw target, the
// authority as written, no hop-by-hop or identity headers, the body.
func TestAllowedForward(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answer", "42")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		io.WriteString(w, "hello")
	})
	p := startProxy(t, "", nil)
	c := p.dial(t)
	body := "name=value"
	fmt.Fprintf(c, "POST http://127.0.0.1:%s/ok/a/../b%%41?q=1 HTTP/1.1\r\nHost: ignored.example\r\nX-Forwarded-For: 10.9.9.9\r\nProxy-Authorization: Basic eA==\r\nConnection: X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\nContent-Length: %d\r\n\r\n%s", up.port(), len(body), body)
	resp, got := readResponse(t, bufio.NewReader(c), "POST")
	if resp.StatusCode != 200 || got != "hello" || resp.Header.Get("X-Answer") != "42" || resp.Header.Get("X-Hop") != "" {
		t.Errorf("response %d %q %v", resp.StatusCode, got, resp.Header)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.paths[0] != "/ok/a/../b%41?q=1" || up.hosts[0] != "127.0.0.1:"+up.port() || up.bodies[0] != body {
		t.Errorf("upstream got %q host %q body %q", up.paths[0], up.hosts[0], up.bodies[0])
	}
	h := up.headers[0]
	if h.Get("X-Forwarded-For") != "" || h.Get("Proxy-Authorization") != "" || h.Get("X-Drop") != "" || h.Get("X-Keep") != "2" || h.Get("Via") != "" {
		t.Errorf("upstream headers %v", h)
	}
}

// TestPathBypass: /ok/../secret is judged as /secret; the raw target is
// still what the upstream receives when the canonical path is allowed.
func TestPathBypass(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	u := "http://127.0.0.1:" + up.port()
	for _, path := range []string{"/ok/../secret", "/ok/./../secret", "/ok/x/../../secret"} {
		resp, _ := p.roundTrip(t, "GET "+u+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 470 {
			t.Errorf("GET %s: status %d, want 470 (judged as /secret)", path, resp.StatusCode)
		}
	}
	resp, _ := p.roundTrip(t, "GET "+u+"/ok/x/../secret/y HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 451 {
		t.Errorf("GET /ok/x/../secret/y: status %d, want 451 (the DENY for /ok/secret/**)", resp.StatusCode)
	}
	if got := up.requests(); len(got) != 0 {
		t.Fatalf("upstream received %q", got)
	}
	resp, _ = p.roundTrip(t, "GET "+u+"/ok/a/./b/../c HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || up.requests()[0] != "/ok/a/./b/../c" {
		t.Errorf("status %d, upstream got %q; want 200 and the raw target", resp.StatusCode, up.requests())
	}
}

// TestKeepAlive: two requests on one client connection use one upstream
// connection.
func TestKeepAlive(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	c := p.dial(t)
	br := bufio.NewReader(c)
	for i := range 3 {
		fmt.Fprintf(c, "GET http://127.0.0.1:%s/ok/%d HTTP/1.1\r\nHost: a\r\n\r\n", up.port(), i)
		resp, body := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != "ok" || resp.Close {
			t.Fatalf("request %d: %d %q close=%v", i, resp.StatusCode, body, resp.Close)
		}
	}
	if n := up.newConns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections, want 1", n)
	}
	recs := p.waitRecords(t, 3)
	if len(recs) != 3 || !strings.Contains(recs[2], `"upstream_reused":true`) {
		t.Errorf("records: %q", recs)
	}
}

// rawUpstream is a hand-written HTTP/1.1 upstream for behaviours an
// httptest server will not produce. serve is called for each connection.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int32
	wg    sync.WaitGroup
}

func newRawUpstream(tb testing.TB, serve func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

func (u *rawUpstream) port() string {
	_, port, _ := net.SplitHostPort(u.ln.Addr().String())
	return port
}

// TestStaleRetry: the upstream closes an idle pooled connection; the next
// bodyless request fails on it before any response byte and is retried
// once on a fresh connection.
func TestStaleRetry(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(50 * time.Millisecond) // then close while idle in the pool
	})
	p := startProxy(t, "", nil)
	for i := range 2 {
		status, body := p.get(t, "http://127.0.0.1:"+up.port()+"/ok/x")
		if status != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("upstream saw %d connections, want 2 (the retry's)", n)
	}
	recs := p.waitRecords(t, 2)
	if !strings.Contains(recs[1], `"upstream_reused":false`) {
		t.Errorf("second record should show a fresh connection: %s", recs[1])
	}
}

// TestHeadWithBodyNotReused: an upstream that sends a body after a HEAD
// response is never trusted with another request on that connection.
func TestHeadWithBodyNotReused(t *testing.T) {
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.Method == "HEAD" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	p := startProxy(t, "", nil)
	c := p.dial(t)
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "HEAD http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost: a\r\n\r\n", up.port())
	if resp, _ := readResponse(t, br, "HEAD"); resp.StatusCode != 200 || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %d length %d", resp.StatusCode, resp.ContentLength)
	}
	time.Sleep(50 * time.Millisecond) // let the stray body arrive
	fmt.Fprintf(c, "GET http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost: a\r\n\r\n", up.port())
	if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("upstream saw %d connections, want 2", n)
	}
}

// TestExpectContinue: 100 Continue comes from the proxy only once the
// request is allowed and the upstream connected; a denied request gets its
// final status and no 100.
func TestExpectContinue(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	c := p.dial(t)
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "POST http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", up.port())
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue not followed by an empty line: %q", blank)
	}
	io.WriteString(c, "hello")
	resp, body := readResponse(t, br, "POST")
	if resp.StatusCode != 200 || body != "ok" || up.bodies[0] != "hello" {
		t.Errorf("allowed: %d %q, upstream body %q", resp.StatusCode, body, up.bodies)
	}
	if h := up.headers[0]; h.Get("Expect") != "" {
		t.Errorf("Expect forwarded upstream")
	}

	c = p.dial(t)
	br = bufio.NewReader(c)
	fmt.Fprintf(c, "POST http://127.0.0.1:%s/ok/secret/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", up.port())
	line, _ = br.ReadString('\n')
	if line != "HTTP/1.1 451 Unavailable For Legal Reasons\r\n" {
		t.Errorf("denied: first line %q, want the 451 and no 100", line)
	}
}

// TestTimeouts covers 408 (slow head), the silent idle close, 504 (slow
// upstream) and 413.
func TestTimeouts(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "slow") {
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	})
	p := startProxy(t, "request_header_timeout = 1\nclient_keepalive_idle_timeout = 1\nresponse_header_timeout = 1\nmax_request_body_size = 10\nrequest_body_idle_timeout = 1\n", nil)
	var wg sync.WaitGroup
	run := func(name string, f func(t *testing.T)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(name, f)
		}()
	}
	run("408 for a slow head", func(t *testing.T) {
		c := p.dial(t)
		fmt.Fprintf(c, "GET http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost:", up.port())
		resp, body := readResponse(t, bufio.NewReader(c), "GET")
		if resp.StatusCode != 408 || !resp.Close {
			t.Errorf("status %d %q close=%v, want 408 and close", resp.StatusCode, body, resp.Close)
		}
	})
	run("idle connection closed silently", func(t *testing.T) {
		c := p.dial(t)
		start := time.Now()
		n, err := c.Read(make([]byte, 1))
		if n != 0 || err != io.EOF || time.Since(start) < 900*time.Millisecond {
			t.Errorf("read %d, %v after %v; want EOF after about 1s", n, err, time.Since(start))
		}
	})
	run("504 for a slow upstream", func(t *testing.T) {
		status, body := p.get(t, "http://127.0.0.1:"+up.port()+"/ok/slow")
		if status != 504 || body != "request timed out\r\n" {
			t.Errorf("status %d %q, want 504", status, body)
		}
	})
	run("stalled request body", func(t *testing.T) {
		c := p.dial(t)
		fmt.Fprintf(c, "POST http://127.0.0.1:%s/ok/stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\nabc", up.port())
		start := time.Now()
		io.Copy(io.Discard, c) // the proxy gives up on the body and closes
		if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
			t.Errorf("closed after %v, want about request_body_idle_timeout (1s)", d)
		}
		for _, path := range up.requests() {
			if path == "/ok/stalled" {
				t.Errorf("upstream received the incomplete request")
			}
		}
	})
	run("413 for a large fixed body", func(t *testing.T) {
		resp, _ := p.roundTrip(t, "POST http://127.0.0.1:"+up.port()+"/ok/large HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
		if resp.StatusCode != 413 {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
		for _, path := range up.requests() {
			if path == "/ok/large" {
				t.Errorf("upstream received the over-limit request")
			}
		}
	})
	run("large chunked body cut off", func(t *testing.T) {
		c := p.dial(t)
		fmt.Fprintf(c, "POST http://127.0.0.1:%s/ok/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n", up.port())
		raw, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(raw), "HTTP/1.1 413 ") {
			t.Errorf("over-limit chunked body: %q, want 413", raw)
		}
		for _, path := range up.requests() {
			if path == "/ok/chunked" {
				t.Errorf("upstream received the over-limit chunked request")
			}
		}
	})
	wg.Wait()
}

// TestDecisionRecord checks the fields of one record.
func TestDecisionRecord(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "", nil)
	p.get(t, "http://127.0.0.1:"+up.port()+"/ok/x?token=secret")
	recs := p.waitRecords(t, 1)
	if len(recs) != 1 {
		t.Fatalf("records: %q", recs)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(recs[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"mode": "direct", "client_ip": "127.0.0.1", "method": "GET", "scheme": "http", "host": "127.0.0.1",
		"path": "/ok/x", "client": "loopback", "policy": "web", "rule": "web#1", "decision": "ALLOW",
		"reason": "rule", "status": float64(200), "bytes_out": float64(2),
	} {
		if rec[k] != want {
			t.Errorf("record[%s] = %v, want %v", k, rec[k], want)
		}
	}
	for _, k := range []string{"session_id", "client_port", "elapsed_ms", "upstream_addr"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("record lacks %s", k)
		}
	}
	if strings.Contains(recs[0], "secret") {
		t.Errorf("query logged without log_queries: %s", recs[0])
	}
}

// TestContentLengthZeroForwarded: SPEC §5, a client's Content-Length: 0
// reaches the upstream (some origins answer a POST without it with 411).
func TestContentLengthZeroForwarded(t *testing.T) {
	heads := make(chan string, 1)
	up := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		heads <- head.String()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	p := startProxy(t, "", nil)
	resp, _ := p.roundTrip(t, "POST http://127.0.0.1:"+up.port()+"/ok/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if head := <-heads; !strings.Contains(head, "\r\nContent-Length: 0\r\n") {
		t.Errorf("upstream head lacks Content-Length: 0:\n%s", head)
	}
}
