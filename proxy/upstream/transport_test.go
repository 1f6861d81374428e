package upstream

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// origin is an httptest upstream that counts its connections.
type origin struct {
	*httptest.Server
	newConns    atomic.Int32
	closedConns atomic.Int32

	mu    sync.Mutex
	conns []net.Conn // guarded by mu; in the order accepted
}

// Origin kinds for startOrigin.
const (
	plainOrigin = "http"     // HTTP/1.1 over TCP
	h1Origin    = "https-h1" // TLS, ALPN http/1.1 only
	h2Origin    = "https-h2" // TLS, ALPN h2 (EnableHTTP2)
)

func startOrigin(t testing.TB, kind string, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{Server: httptest.NewUnstartedServer(h)}
	o.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			o.newConns.Add(1)
			o.mu.Lock()
			o.conns = append(o.conns, c)
			o.mu.Unlock()
		}
		if st == http.StateClosed || st == http.StateHijacked {
			o.closedConns.Add(1)
		}
	}
	switch kind {
	case plainOrigin:
		o.Start()
	case h1Origin:
		o.StartTLS()
	case h2Origin:
		o.EnableHTTP2 = true
		o.StartTLS()
	default:
		t.Fatalf("unknown origin kind %q", kind)
	}
	t.Cleanup(o.Close)
	return o
}

// roots trusts the origin's certificate (for 127.0.0.1 and example.com).
func (o *origin) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	if c := o.Certificate(); c != nil {
		pool.AddCert(c)
	}
	return pool
}

// target is the origin as host (its certificate names 127.0.0.1 and
// example.com); without pinned addresses host must be 127.0.0.1.
func (o *origin) target(host string, addrs ...netip.Addr) Target {
	ap := netip.MustParseAddrPort(o.Listener.Addr().String())
	scheme := "http"
	if o.TLS != nil {
		scheme = "https"
	}
	return Target{Scheme: scheme, Host: host, Port: ap.Port(), AllowPrivate: true, Addrs: addrs}
}

// serverConn returns the origin's side of the client conn c.
func (o *origin) serverConn(t testing.TB, c net.Conn) net.Conn {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, sc := range o.conns {
		if sc.RemoteAddr().String() == c.LocalAddr().String() {
			return sc
		}
	}
	t.Fatalf("no origin conn from %v", c.LocalAddr())
	return nil
}

// newTestTransport returns a Transport trusting roots whose resolver asks
// dns (nil: a DNS that knows no name).
func newTestTransport(t testing.TB, roots *x509.CertPool, dns *fakeDNS) *Transport {
	t.Helper()
	if dns == nil {
		dns = &fakeDNS{}
	}
	tr := &Transport{
		Dialer:                  &Dialer{Resolver: &Resolver{DNS: dns}},
		Roots:                   roots,
		TLSHandshakeTimeout:     10 * time.Second,
		ResponseHeaderTimeout:   10 * time.Second,
		RequestBodyIdleTimeout:  10 * time.Second,
		ResponseBodyIdleTimeout: 10 * time.Second,
		PoolCapacity:            4,
		IdleTimeout:             time.Minute,
	}
	t.Cleanup(tr.Close)
	return tr
}

// newRequest builds a request as the pipeline passes it to RoundTrip: the
// raw origin-form target in RequestURI, the authority in Host.
func newRequest(ctx context.Context, method, host, uri string, body io.Reader, length int64) *http.Request {
	req := &http.Request{
		Method:     method,
		RequestURI: uri,
		Host:       host,
		Header:     http.Header{},
		Body:       http.NoBody,
	}
	if body != nil {
		req.Body = io.NopCloser(body)
		req.ContentLength = length
	}
	return req.WithContext(ctx)
}

// exchange is one RoundTrip and what it reported.
type exchange struct {
	resp *http.Response
	body string
	conn httptrace.GotConnInfo
	err  error // of RoundTrip or of reading the body
}

// roundTrip runs req through tr, reads the body to its end and closes it.
func roundTrip(tr *Transport, req *http.Request, target Target) exchange {
	var ex exchange
	ctx := httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) { ex.conn = ci },
	})
	ex.resp, ex.err = tr.RoundTrip(req.WithContext(ctx), target)
	if ex.err != nil {
		return ex
	}
	b, err := io.ReadAll(ex.resp.Body)
	ex.resp.Body.Close()
	ex.body, ex.err = string(b), err
	return ex
}

// get runs a GET of uri and fails the test unless it succeeds.
func get(t testing.TB, tr *Transport, target Target, uri string) exchange {
	t.Helper()
	ex := roundTrip(tr, newRequest(t.Context(), "GET", target.Host, uri, nil, 0), target)
	if ex.err != nil {
		t.Fatalf("GET %s: %v", uri, ex.err)
	}
	return ex
}

// waitFor polls cond until it holds, for at most 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// barrier answers once n requests are in the handler at the same time,
// proving that they were carried concurrently.
func barrier(n int) http.HandlerFunc {
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			io.WriteString(w, "ok")
		case <-time.After(10 * time.Second):
			http.Error(w, "not concurrent", http.StatusInternalServerError)
		}
	}
}

// TestTransportH1Pool checks HTTP/1.1 to a plain origin and to a TLS
// origin that offers only http/1.1: one connection, reused from the pool.
func TestTransportH1Pool(t *testing.T) {
	for _, kind := range []string{plainOrigin, h1Origin} {
		t.Run(kind, func(t *testing.T) {
			o := startOrigin(t, kind, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.Proto+" "+r.Host+" "+r.RequestURI)
			})
			tr := newTestTransport(t, o.roots(), nil)
			target := o.target("127.0.0.1")
			for i, wantReused := range []bool{false, true, true} {
				ex := get(t, tr, target, "/a?b")
				if want := "HTTP/1.1 127.0.0.1 /a?b"; ex.body != want {
					t.Errorf("request %d: body = %q, want %q", i, ex.body, want)
				}
				if ex.resp.ProtoMajor != 1 {
					t.Errorf("request %d: response Proto = %s, want HTTP/1.1", i, ex.resp.Proto)
				}
				if ex.conn.Reused != wantReused {
					t.Errorf("request %d: GotConn Reused = %v, want %v", i, ex.conn.Reused, wantReused)
				}
				if n := tr.IdleConns(); n != 1 {
					t.Errorf("request %d: IdleConns() = %d, want 1", i, n)
				}
			}
			if n := o.newConns.Load(); n != 1 {
				t.Errorf("origin accepted %d connections, want 1", n)
			}
		})
	}
}

// TestTransportH1Concurrent sends concurrent requests to an https origin
// that speaks only HTTP/1.1: the requests that waited for the first dial
// (in case it made an h2 connection) each dial their own.
func TestTransportH1Concurrent(t *testing.T) {
	const n = 4
	o := startOrigin(t, h1Origin, barrier(n))
	tr := newTestTransport(t, o.roots(), nil)
	target := o.target("127.0.0.1")
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ex := roundTrip(tr, newRequest(t.Context(), "GET", "127.0.0.1", "/", nil, 0), target)
			if ex.err != nil || ex.body != "ok" {
				t.Errorf("GET = %q, %v; want ok", ex.body, ex.err)
			}
		})
	}
	wg.Wait()
	if got := o.newConns.Load(); got != n {
		t.Errorf("origin accepted %d connections, want %d", got, n)
	}
}

// liveDial is a Dialer.dial hook that connects for real and records the
// addresses dialed.
type liveDial struct {
	mu    sync.Mutex
	addrs []string // guarded by mu
}

func (d *liveDial) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *liveDial) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.addrs)
}

// TestTransportPinnedAddrs checks Target.Addrs: the name is never
// resolved, the pinned addresses are vetted again under the request's
// AllowPrivate, and a connection is reused only if its address is pinned.
func TestTransportPinnedAddrs(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	other := netip.MustParseAddr("127.0.0.2")
	tests := []struct {
		kind, host string
		proto      int
	}{
		// origin.invalid cannot resolve (RFC 6761 §6.4); TLS needs a name
		// in the test certificate, which the fake DNS does not know.
		{plainOrigin, "origin.invalid", 1},
		{h1Origin, "example.com", 1},
		{h2Origin, "example.com", 2},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			o := startOrigin(t, tt.kind, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.Host)
			})
			dns := &fakeDNS{}
			tr := newTestTransport(t, o.roots(), dns)
			rec := &liveDial{}
			tr.Dialer.dial = rec.dial
			port := o.target(tt.host).Port
			want := netip.AddrPortFrom(loop, port).String()

			ex := get(t, tr, o.target(tt.host, loop), "/")
			if ex.body != tt.host || ex.resp.ProtoMajor != tt.proto {
				t.Errorf("GET = %q over HTTP/%d, want %q over HTTP/%d", ex.body, ex.resp.ProtoMajor, tt.host, tt.proto)
			}
			if q := dns.Queries(); len(q) != 0 {
				t.Errorf("DNS queries %v, want none: the name is pinned", q)
			}
			if d := rec.dialed(); !slices.Equal(d, []string{want}) {
				t.Errorf("dialed %v, want [%s]", d, want)
			}

			// Pinned to another address, the request may not use the
			// connection to 127.0.0.1: it dials 127.0.0.2 (nothing
			// listens there; the outcome does not matter).
			roundTrip(tr, newRequest(t.Context(), "GET", tt.host, "/", nil, 0), o.target(tt.host, other))
			if d := rec.dialed(); len(d) != 2 || d[1] != netip.AddrPortFrom(other, port).String() {
				t.Errorf("dialed %v, want a dial of 127.0.0.2 second", d)
			}

			// Pinned to both, it reuses the connection to 127.0.0.1.
			ex = get(t, tr, o.target(tt.host, other, loop), "/")
			if !ex.conn.Reused {
				t.Error("GotConn Reused = false, want the connection to the pinned 127.0.0.1 reused")
			}
			if d := rec.dialed(); len(d) != 2 {
				t.Errorf("dialed %v, want no third dial", d)
			}

			// A rule without allow_private_upstream refuses the
			// loopback address the CONNECT allowed: 403, nothing dialed.
			refused := o.target(tt.host, loop)
			refused.AllowPrivate = false
			ex = roundTrip(tr, newRequest(t.Context(), "GET", tt.host, "/", nil, 0), refused)
			wantPrivate(t, ex.err, Loopback)
			if e := ex.err.(*Error); e.Host != tt.host {
				t.Errorf("Error.Host = %q, want %q", e.Host, tt.host)
			}
			if d := rec.dialed(); len(d) != 2 {
				t.Errorf("dialed %v after a refusal, want nothing more", d)
			}
			if q := dns.Queries(); len(q) != 0 {
				t.Errorf("DNS queries %v, want none", q)
			}
			if n := o.newConns.Load(); n != 1 {
				t.Errorf("origin accepted %d connections, want 1", n)
			}
		})
	}
}

// TestTransportPinnedPrivateNothingDialed checks the refusal on a fresh
// Transport: no connection exists that could hide a dial.
func TestTransportPinnedPrivateNothingDialed(t *testing.T) {
	o := startOrigin(t, plainOrigin, func(w http.ResponseWriter, r *http.Request) {})
	tr := newTestTransport(t, nil, nil)
	rec := &liveDial{}
	tr.Dialer.dial = rec.dial
	target := o.target("origin.invalid", netip.MustParseAddr("127.0.0.1"))
	target.AllowPrivate = false
	_, err := tr.RoundTrip(newRequest(t.Context(), "GET", "origin.invalid", "/", nil, 0), target)
	wantPrivate(t, err, Loopback)
	if e, ok := err.(*Error); !ok || e.Status() != http.StatusForbidden {
		t.Errorf("RoundTrip error = %v, want a 403 *Error", err)
	}
	if d := rec.dialed(); len(d) != 0 {
		t.Errorf("dialed %v, want nothing", d)
	}
	if n := o.newConns.Load(); n != 0 {
		t.Errorf("origin accepted %d connections, want 0", n)
	}
}

// TestTransportRawTarget checks that the request-target and :path are
// the bytes the client sent, on both protocols.
func TestTransportRawTarget(t *testing.T) {
	uris := []string{
		"/",
		"/a%2Fb",
		"/a/../b",
		"/a/./b/..",
		"//double//slash",
		"/%2e%2E/x",
		"/~user/!$&'()*+,;=:@-._",
		"/p%20q?x=%2F..&y=a+b&z=%zz",
		"/empty-query?",
		"/q?a=1?b=2&c=/../d",
		"/UPPER/Case%7e",
	}
	for _, kind := range []string{plainOrigin, h1Origin, h2Origin} {
		t.Run(kind, func(t *testing.T) {
			o := startOrigin(t, kind, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.RequestURI)
			})
			tr := newTestTransport(t, o.roots(), nil)
			target := o.target("127.0.0.1")
			for _, uri := range uris {
				ex := get(t, tr, target, uri)
				if ex.body != uri {
					t.Errorf("origin got request-target %q, want %q", ex.body, uri)
				}
			}
		})
	}
}

// TestTransportIdleTimeout checks that idle connections close after
// IdleTimeout, on both protocols.
func TestTransportIdleTimeout(t *testing.T) {
	for _, kind := range []string{h1Origin, h2Origin} {
		t.Run(kind, func(t *testing.T) {
			o := startOrigin(t, kind, func(w http.ResponseWriter, r *http.Request) {})
			tr := newTestTransport(t, o.roots(), nil)
			tr.IdleTimeout = 50 * time.Millisecond
			target := o.target("127.0.0.1")
			get(t, tr, target, "/")
			waitFor(t, "the origin to see its connection closed", func() bool { return o.closedConns.Load() == 1 })
			tr.mu.Lock()
			n, m := len(tr.idle), len(tr.h2conns)
			tr.mu.Unlock()
			if n != 0 || m != 0 {
				t.Errorf("after the idle timeout: %d idle keys, %d h2 keys; want none", n, m)
			}
			idleCount(t, tr)
		})
	}
}

// idleCount counts the idle connections as MaxIdle does, by looking, and
// checks the running count against it.
func idleCount(t testing.TB, tr *Transport) int {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, l := range tr.idle {
		n += len(l)
	}
	for _, l := range tr.h2conns {
		for _, hc := range l {
			if hc.active == 0 {
				n++
			}
		}
	}
	if n != tr.nidle {
		t.Errorf("nidle = %d, but %d connections are idle", tr.nidle, n)
	}
	return n
}

// TestTransportMaxIdle: past MaxIdle idle connections over all keys, a
// connection that falls idle is closed; those already kept stay, and a
// kept one taken out and given back is kept again.
func TestTransportMaxIdle(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		o := startOrigin(t, plainOrigin, func(w http.ResponseWriter, r *http.Request) {})
		tr := newTestTransport(t, nil, nil)
		tr.MaxIdle = 3
		loopback := netip.MustParseAddr("127.0.0.1")
		for i := range 5 {
			get(t, tr, o.target(fmt.Sprintf("h%d.test", i), loopback), "/")
		}
		if n := idleCount(t, tr); n != 3 {
			t.Errorf("%d idle connections for 5 hosts, want MaxIdle = 3", n)
		}
		waitFor(t, "two connections to close", func() bool { return o.closedConns.Load() == 2 })
		if ex := get(t, tr, o.target("h0.test", loopback), "/"); !ex.conn.Reused {
			t.Errorf("the first host's kept connection was not reused")
		}
		if n := idleCount(t, tr); n != 3 {
			t.Errorf("%d idle connections after a reuse, want 3", n)
		}
		if ex := get(t, tr, o.target("h4.test", loopback), "/"); ex.conn.Reused {
			t.Errorf("a host whose connection was closed reused one")
		}
		if n := idleCount(t, tr); n != 3 {
			t.Errorf("%d idle connections, want 3", n)
		}
	})
	t.Run("http2", func(t *testing.T) {
		o := startOrigin(t, h2Origin, func(w http.ResponseWriter, r *http.Request) {})
		tr := newTestTransport(t, o.roots(), nil)
		tr.MaxIdle = 1
		loopback := netip.MustParseAddr("127.0.0.1")
		get(t, tr, o.target("127.0.0.1"), "/")
		get(t, tr, o.target("example.com", loopback), "/")
		if n := idleCount(t, tr); n != 1 {
			t.Errorf("%d idle connections, want MaxIdle = 1", n)
		}
		waitFor(t, "the second connection to close", func() bool { return o.closedConns.Load() == 1 })
		if ex := get(t, tr, o.target("127.0.0.1"), "/"); !ex.conn.Reused {
			t.Errorf("the kept h2 connection was not reused")
		}
		if n := idleCount(t, tr); n != 1 {
			t.Errorf("%d idle connections after a reuse, want 1", n)
		}
	})
}
