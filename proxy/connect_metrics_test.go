//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// stalledListener returns a loopback port whose accept queue is full, so
// that a further connect(2) waits for the SYN to be answered: the proxy's
// dial to it hangs until upstream_connect_timeout.
func stalledListener(tb testing.TB) (port string) {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	// A backlog of 0 queues one connection; the SYN of the next is dropped.
	if err := syscall.Listen(fd, 0); err != nil {
		tb.Fatal(err)
	}
	// FileListener works on a duplicate; f owns fd and closes it.
	f := os.NewFile(uintptr(fd), "stalled")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	// The first connection fills the queue; the second, if the kernel
	// queues one more, must not wait long to find out.
	for i, timeout := range []time.Duration{5 * time.Second, 200 * time.Millisecond} {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), timeout)
		if err != nil {
			if i == 0 {
				tb.Fatalf("filling the accept queue: %v", err)
			}
			break // the queue is already full
		}
		tb.Cleanup(func() { c.Close() })
	}
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port
}

// TestConnectMetrics: a CONNECT counts as a request in flight until it is
// answered, then as an open tunnel; failures on the way to the upstream
// count as upstream errors by kind, and refusals that are not upstream
// errors do not.
func TestConnectMetrics(t *testing.T) {
	env := newConnectEnv(t, "upstream_connect_timeout = 1\n")
	const (
		inflight = `exfilguard_inflight_requests{mode="tunnel"}`
		tunnels  = `exfilguard_open_tunnels{mode="tunnel"}`
	)

	// Unanswered: the dial hangs until upstream_connect_timeout.
	stalled := stalledListener(t)
	c := env.p.dial(t)
	fmt.Fprintf(c, "CONNECT tunnel.test:%s HTTP/1.1\r\nHost: tunnel.test\r\n\r\n", stalled)
	answered := make(chan int, 1)
	go func() {
		// No t.Fatal off the test goroutine: a failure is status 0.
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		if err != nil {
			answered <- 0
			return
		}
		answered <- resp.StatusCode
	}()
	env.p.waitMetric(t, inflight, "1")
	if status := <-answered; status != 504 {
		t.Errorf("CONNECT to a stalled port: %d, want 504", status)
	}
	env.p.waitMetric(t, inflight, "0")
	env.p.waitMetric(t, `exfilguard_upstream_errors_total{kind="upstream_timeout"}`, "1")

	// Answered with 200: an open tunnel, no longer a request in flight.
	c, _, resp := env.connect(t, "tunnel.test:"+env.echoPort())
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	env.p.waitMetric(t, tunnels, "1")
	env.p.waitMetric(t, inflight, "0")
	c.Close()
	env.p.waitMetric(t, tunnels, "0")

	// Refused on the way to the upstream: counted by kind.
	if _, _, resp := env.connect(t, "noprivate.test:"+env.echoPort()); resp.StatusCode != 403 {
		t.Errorf("private target: %d", resp.StatusCode)
	}
	env.p.waitMetric(t, `exfilguard_upstream_errors_total{kind="private_address"}`, "1")
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closedPort, _ := net.SplitHostPort(closed.Addr().String())
	closed.Close()
	if _, _, resp := env.connect(t, "tunnel.test:"+closedPort); resp.StatusCode != 502 {
		t.Errorf("closed port: %d", resp.StatusCode)
	}
	env.p.waitMetric(t, `exfilguard_upstream_errors_total{kind="connect_failed"}`, "1")

	// Not upstream errors: a policy denial and a malformed target.
	env.connect(t, "blocked.example:443")
	env.connect(t, "tunnel.test")
	env.p.waitMetric(t, inflight, "0")
	for _, kind := range []string{"request_timeout", "body_too_large", "misdirected_request", "upstream_closed", "resolve_failed", "other"} {
		series := `exfilguard_upstream_errors_total{kind="` + kind + `"}`
		if got := env.p.metric(t, series); got != "0" {
			t.Errorf("%s = %s, want 0: only upstream_timeout, private_address and connect_failed happened", series, got)
		}
	}
}
