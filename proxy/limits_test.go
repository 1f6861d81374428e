package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// dialFrom opens a raw connection to the proxy from 127.0.0.<from>.
func (p *testProxy) dialFrom(tb testing.TB, from byte) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}}
	c, err := d.Dial("tcp", p.addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// waitOpen waits until the server tracks n connections.
func (p *testProxy) waitOpen(tb testing.TB, n int) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.srv.openConns() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d connections open, want %d", p.srv.openConns(), n)
		}
	}
}

// refused reports whether c was closed by the proxy without a byte.
func refused(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err != nil && !errorsIsTimeout(err)
}

func errorsIsTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// served sends a GET for the loopback upstream on c and returns the
// status, 0 when the connection fails.
func served(c net.Conn, upPort string) int {
	fmt.Fprintf(c, "GET http://127.0.0.1:%s/ok/x HTTP/1.1\r\nHost: a\r\n\r\n", upPort)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMaxConnections: past max_connections a new connection is closed
// unread and counted; once one closes, new ones are served again.
func TestMaxConnections(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "max_connections = 3\nmax_connections_per_ip = 0\n", nil)
	var held []net.Conn
	for range 3 {
		held = append(held, p.dial(t))
	}
	p.waitOpen(t, 3)
	if c := p.dial(t); !refused(c) {
		t.Errorf("connection past max_connections was not closed")
	}
	held[0].Close()
	p.waitOpen(t, 2)
	if s := served(p.dial(t), up.port()); s != 200 {
		t.Errorf("after one closed: status %d, want 200", s)
	}
	for series, want := range map[string]string{
		`exfilguard_connections_refused_total{limit="max_connections"}`:        "1",
		`exfilguard_connections_refused_total{limit="max_connections_per_ip"}`: "0",
		`exfilguard_open_connections`:                                          "3", // two held, one served and kept alive
	} {
		if got := p.metric(t, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	if !strings.Contains(p.logs.String(), `"msg":"connection refused: limit reached","limit":"max_connections","max":3`) {
		t.Errorf("refusal not logged:\n%s", p.logs.String())
	}
}

// TestMaxConnectionsPerIP: one address past its limit is refused while
// another is served; a closed connection frees its address's slot.
func TestMaxConnectionsPerIP(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "max_connections_per_ip = 2\n", nil)
	a1, _ := p.dialFrom(t, 2), p.dialFrom(t, 2)
	p.waitOpen(t, 2)
	refusing := time.Now()
	for range 3 {
		if c := p.dialFrom(t, 2); !refused(c) {
			t.Errorf("third connection from 127.0.0.2 was not refused")
		}
	}
	refusedWithin := time.Since(refusing)
	other := p.dialFrom(t, 3)
	if s := served(other, up.port()); s != 200 {
		t.Errorf("127.0.0.3 while 127.0.0.2 is at its limit: status %d, want 200", s)
	}
	other.Close()
	a1.Close()
	p.waitOpen(t, 1)
	if s := served(p.dialFrom(t, 2), up.port()); s != 200 {
		t.Errorf("127.0.0.2 after one of its connections closed: status %d, want 200", s)
	}
	if got := p.metric(t, `exfilguard_connections_refused_total{limit="max_connections_per_ip"}`); got != "3" {
		t.Errorf(`exfilguard_connections_refused_total{limit="max_connections_per_ip"} = %s, want 3`, got)
	}
	// At most one warning a second; each says how many refusals since
	// the previous one went unlogged.
	warnings, accounted := 0, 0
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if !strings.Contains(line, "connection refused: limit reached") {
			continue
		}
		var rec struct {
			Unlogged int `json:"refused_unlogged"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("warning %q: %v", line, err)
		}
		warnings++
		accounted += 1 + rec.Unlogged
	}
	switch {
	case refusedWithin < refusalLogEvery && warnings != 1:
		t.Errorf("%d refusal warnings for 3 refusals within %v, want 1", warnings, refusedWithin)
	case warnings < 1 || accounted > 3:
		t.Errorf("%d refusal warnings accounting for %d refusals, for 3 refusals:\n%s", warnings, accounted, p.logs.String())
	}
}

// TestMaxConnectionsPerIPProxyProtocol: behind PROXY protocol the limit
// counts the client address the header carries, not the load balancer's.
func TestMaxConnectionsPerIPProxyProtocol(t *testing.T) {
	up := newUpstream(t, nil)
	p := startProxy(t, "max_connections_per_ip = 2\nproxy_protocol = \"required\"\nproxy_protocol_allowed_cidrs = [\"127.0.0.0/8\"]\n", nil)
	header := func(client string) string { return "PROXY TCP4 " + client + " 127.0.0.1 5555 3128\r\n" }
	// Two connections of 127.0.0.5, held, through the balancer at
	// 127.0.0.1.
	for range 2 {
		c := p.dial(t)
		io.WriteString(c, header("127.0.0.5"))
	}
	p.waitOpen(t, 2)
	// The header has to be read before the client is known.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		p.srv.mu.Lock()
		n := p.srv.perIP[mustAddr("127.0.0.5")]
		p.srv.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.5 counts %d connections, want 2", n)
		}
	}
	c := p.dial(t)
	io.WriteString(c, header("127.0.0.5"))
	if !refused(c) {
		t.Errorf("third connection of 127.0.0.5 through the balancer was not refused")
	}
	// Other clients through the same balancer are served: the balancer's
	// own address holds four connections by now, past the limit of two.
	for _, client := range []string{"127.0.0.6", "127.0.0.7"} {
		c := p.dial(t)
		io.WriteString(c, header(client))
		if s := served(c, up.port()); s != 200 {
			t.Errorf("client %s through the balancer: status %d, want 200", client, s)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
