package proxy

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (*net.TCPConn, *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// TestSinceLastData checks the kernel activity record that a spliced
// tunnel's idle timer depends on: it resets when data moves either way
// and grows while the connection is silent.
func TestSinceLastData(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("tcp_info is read on Linux only")
	}
	a, b := tcpPair(t)
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.TCPConn{a, b} {
		d, ok := sinceLastData(c)
		if !ok || d > 100*time.Millisecond {
			t.Fatalf("right after a byte: %v %v", d, ok)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, c := range []*net.TCPConn{a, b} {
		if d, ok := sinceLastData(c); !ok || d < 250*time.Millisecond {
			t.Fatalf("after 300 ms of silence: %v %v", d, ok)
		}
	}
	a.Close()
	if _, ok := sinceLastData(a); ok {
		t.Errorf("a closed connection still reports activity")
	}
}

// TestTunnelSplicedOnLinux checks that a tunnel between two TCP
// connections relays in the kernel on Linux and through user space
// elsewhere.
func TestTunnelSplicedOnLinux(t *testing.T) {
	a, b := tcpPair(t)
	tn := newTunnelConns(a, b, time.Second)
	if want := runtime.GOOS == "linux"; tn.spliced != want {
		t.Errorf("spliced = %v on %s", tn.spliced, runtime.GOOS)
	}
	// A connection that is not TCP (here a TLS-less pipe) never splices.
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if tn := newTunnelConns(p, b, time.Second); tn.spliced {
		t.Errorf("spliced over a net.Pipe")
	}
}

// TestTunnelIdleOneWay checks SPEC §5's shared idle timer with traffic
// in one direction only: a download or an upload that outlasts the idle
// timeout keeps the tunnel open, in the spliced relay too, where no
// user-space code sees the bytes.
func TestTunnelIdleOneWay(t *testing.T) {
	env := newConnectEnv(t, "connect_tunnel_idle_timeout = 1\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	const ticks, every = 10, 250 * time.Millisecond // 2.5 s, past the 1 s idle timeout

	t.Run("download", func(t *testing.T) {
		served := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer c.Close()
			for range ticks {
				if _, err := io.WriteString(c, "tick|"); err != nil {
					served <- err
					return
				}
				time.Sleep(every)
			}
			served <- nil
		}()
		c, br, resp := env.connect(t, "tunnel.test:"+port)
		defer c.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %d", resp.StatusCode)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(br)
		if want := strings.Repeat("tick|", ticks); string(got) != want || err != nil {
			t.Errorf("download through the tunnel: %q %v, want %q", got, err, want)
		}
		if err := <-served; err != nil {
			t.Errorf("upstream: %v", err)
		}
	})

	t.Run("upload", func(t *testing.T) {
		received := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				received <- nil
				return
			}
			defer c.Close()
			got, _ := io.ReadAll(c)
			received <- got
		}()
		c, _, resp := env.connect(t, "tunnel.test:"+port)
		defer c.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %d", resp.StatusCode)
		}
		var sent bytes.Buffer
		for i := range ticks {
			if _, err := io.WriteString(c, "tock|"); err != nil {
				t.Fatalf("write %d after %v: %v", i, time.Duration(i)*every, err)
			}
			sent.WriteString("tock|")
			time.Sleep(every)
		}
		c.(*net.TCPConn).CloseWrite()
		if got := <-received; !bytes.Equal(got, sent.Bytes()) {
			t.Errorf("upload through the tunnel: %q, want %q", got, sent.Bytes())
		}
	})

	for _, rec := range env.p.waitRecords(t, 2) {
		if strings.Contains(rec, "tunnel_idle") {
			t.Errorf("a tunnel with one-way traffic ended as idle: %s", rec)
		}
	}
}
