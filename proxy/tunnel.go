package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tunnelConns relays a tunnel's two directions and ends it when it has
// been idle in both directions (SPEC §5: idle means no data either way)
// or has lived too long.
//
// Between two TCP connections on Linux the bytes move with splice(2)
// (TCPConn.ReadFrom), never entering user space; the kernel's per-socket
// record of the last data sent and received (tcp_info) then tells the
// watchdog whether the tunnel is idle, since no user-space code sees the
// bytes go by. Elsewhere the relay copies through a buffer and marks
// activity itself.
type tunnelConns struct {
	client, upstream net.Conn
	idle             time.Duration
	spliced          bool         // kernel relay; activity comes from tcp_info
	last             atomic.Int64 // unix nanoseconds of the last byte moved in user space
	in, out          atomic.Int64 // bytes from and to the client
	ended            atomic.Pointer[string]
	closeOnce        sync.Once
}

func newTunnelConns(client, upstream net.Conn, idle time.Duration) *tunnelConns {
	t := &tunnelConns{client: client, upstream: upstream, idle: idle}
	t.touch()
	ct, ok1 := client.(*net.TCPConn)
	ut, ok2 := upstream.(*net.TCPConn)
	if ok1 && ok2 {
		// Splice only when the watchdog can see the kernel's activity
		// record on both sockets; otherwise a busy tunnel would look idle.
		_, ok1 = sinceLastData(ct)
		_, ok2 = sinceLastData(ut)
		t.spliced = ok1 && ok2
	}
	return t
}

func (t *tunnelConns) touch() { t.last.Store(time.Now().UnixNano()) }

// idleFor reports how long no data has moved in either direction.
func (t *tunnelConns) idleFor() time.Duration {
	idle := time.Since(time.Unix(0, t.last.Load()))
	if t.spliced {
		for _, c := range [...]net.Conn{t.client, t.upstream} {
			d, ok := sinceLastData(c.(*net.TCPConn))
			if !ok {
				// The socket is closed: the tunnel is ending on its own,
				// and must not be recorded as idle.
				return 0
			}
			idle = min(idle, d)
		}
	}
	return idle
}

// close ends both directions; nothing is written into the tunnel.
func (t *tunnelConns) close() {
	t.closeOnce.Do(func() {
		t.client.Close()
		t.upstream.Close()
	})
}

// watch closes the tunnel when it is idle in both directions or its
// lifetime (0 = none) ends; the returned func stops watching.
func (t *tunnelConns) watch(lifetime time.Duration) (stop func()) {
	done := make(chan struct{})
	tick := max(t.idle/8, 10*time.Millisecond)
	var deadline <-chan time.Time
	var timer *time.Timer
	if lifetime > 0 {
		timer = time.NewTimer(lifetime)
		deadline = timer.C
	}
	go func() {
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		if timer != nil {
			defer timer.Stop()
		}
		for {
			select {
			case <-done:
				return
			case <-deadline:
				t.end(reasonLifetime)
				return
			case <-ticker.C:
				if t.idleFor() > t.idle {
					t.end(reasonIdle)
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// end closes the tunnel, recording why unless a reason is already set.
func (t *tunnelConns) end(reason string) {
	t.ended.CompareAndSwap(nil, &reason)
	t.close()
}

// copyToUpstream relays client → upstream: first the bytes already read
// from the client (those the ClientHello check buffered, then pipelined
// bytes it did not reach), then the connection itself.
func (t *tunnelConns) copyToUpstream(hello *bufio.Reader, rest *bytes.Reader) {
	buffered, _ := hello.Peek(hello.Buffered())
	n, err := t.upstream.Write(buffered)
	t.in.Add(int64(n))
	if err == nil {
		var m int64
		m, err = rest.WriteTo(t.upstream)
		t.in.Add(m)
	}
	if err != nil {
		t.close()
		return
	}
	t.touch()
	t.relay(t.upstream, t.client, &t.in)
}

// copyToClient relays upstream → client.
func (t *tunnelConns) copyToClient() {
	t.relay(t.client, t.upstream, &t.out)
}

// relay copies src to dst until src ends. At EOF it half-closes dst (the
// other direction goes on); on an error it ends the whole tunnel.
func (t *tunnelConns) relay(dst, src net.Conn, count *atomic.Int64) {
	var err error
	if t.spliced {
		var n int64
		n, err = dst.(*net.TCPConn).ReadFrom(src.(*net.TCPConn))
		count.Add(n)
	} else {
		err = t.copyBuffered(dst, src, count)
	}
	if err != nil {
		t.close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		t.close()
	}
}

// copyBuffered copies src to dst through a pooled buffer, marking
// activity for the watchdog after every transfer; nil means src ended.
func (t *tunnelConns) copyBuffered(dst, src net.Conn, count *atomic.Int64) error {
	buf := relayBufPool.Get().(*[32 << 10]byte)
	defer relayBufPool.Put(buf)
	for {
		n, rerr := src.Read(buf[:])
		if n > 0 {
			t.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			count.Add(int64(n))
			t.touch()
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// activityReader marks the tunnel active whenever bytes are read through
// it in user space: the ClientHello check reads the client's first bytes
// this way before the relay starts.
type activityReader struct {
	r io.Reader
	t *tunnelConns
}

func (a activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.t.touch()
	}
	return n, err
}

var relayBufPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}
