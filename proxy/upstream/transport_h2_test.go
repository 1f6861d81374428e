package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestTransportH2Shared checks that requests for one key share one h2
// connection, one after another and at the same time.
func TestTransportH2Shared(t *testing.T) {
	t.Run("sequential", func(t *testing.T) {
		o := startOrigin(t, h2Origin, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto+" "+r.Host)
		})
		tr := newTestTransport(t, o.roots(), nil)
		target := o.target("127.0.0.1")
		var first net.Conn
		for i, wantReused := range []bool{false, true, true} {
			ex := get(t, tr, target, "/")
			if want := "HTTP/2.0 127.0.0.1"; ex.body != want || ex.resp.ProtoMajor != 2 {
				t.Errorf("request %d: %q over %s, want %q over HTTP/2.0", i, ex.body, ex.resp.Proto, want)
			}
			if ex.conn.Reused != wantReused {
				t.Errorf("request %d: GotConn Reused = %v, want %v", i, ex.conn.Reused, wantReused)
			}
			if _, ok := ex.conn.Conn.(*tls.Conn); !ok {
				t.Errorf("request %d: GotConn Conn is %T, want *tls.Conn", i, ex.conn.Conn)
			}
			if i == 0 {
				first = ex.conn.Conn
			} else if ex.conn.Conn != first {
				t.Errorf("request %d: GotConn reported another connection", i)
			}
		}
		if n := o.newConns.Load(); n != 1 {
			t.Errorf("origin accepted %d connections, want 1", n)
		}
		if n := tr.IdleConns(); n != 0 {
			t.Errorf("IdleConns() = %d, want 0: h2 connections are not in the HTTP/1.1 pool", n)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		// From a cold start: the requests wait for the first dial,
		// which makes the h2 connection they all use.
		const n = 8
		o := startOrigin(t, h2Origin, barrier(n))
		tr := newTestTransport(t, o.roots(), nil)
		target := o.target("127.0.0.1")
		var wg sync.WaitGroup
		var reused atomic.Int32
		for range n {
			wg.Go(func() {
				ex := roundTrip(tr, newRequest(t.Context(), "GET", "127.0.0.1", "/", nil, 0), target)
				if ex.err != nil || ex.body != "ok" {
					t.Errorf("GET = %q, %v; want ok", ex.body, ex.err)
				}
				if ex.conn.Reused {
					reused.Add(1)
				}
			})
		}
		wg.Wait()
		if got := o.newConns.Load(); got != 1 {
			t.Errorf("origin accepted %d connections, want 1", got)
		}
		if got := reused.Load(); got != n-1 {
			t.Errorf("%d requests reported a reused connection, want %d", got, n-1)
		}
	})
}

// TestTransportH2Trailers checks that response trailers, declared or
// not, are in resp.Trailer once the body has been read.
func TestTransportH2Trailers(t *testing.T) {
	o := startOrigin(t, h2Origin, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})
	tr := newTestTransport(t, o.roots(), nil)
	target := o.target("127.0.0.1")
	resp, err := tr.RoundTrip(newRequest(t.Context(), "GET", "127.0.0.1", "/", nil, 0), target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, ok := resp.Trailer["X-Sum"]; !ok {
		t.Errorf("before the body: Trailer = %v, want X-Sum announced", resp.Trailer)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "body" {
		t.Fatalf("body = %q, %v", b, err)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("Trailer X-Sum = %q, want 42", got)
	}
	if got := resp.Trailer.Get("X-Late"); got != "yes" {
		t.Errorf("Trailer X-Late = %q, want yes", got)
	}
}

// TestTransportH2Request checks what an h2 origin receives: the fields as
// given minus the connection-specific ones, no User-Agent or
// Accept-Encoding of the transport's own, and the body with its length.
func TestTransportH2Request(t *testing.T) {
	o := startOrigin(t, h2Origin, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var names []string
		for k := range r.Header {
			names = append(names, k)
		}
		w.Header().Set("Content-Encoding", "gzip") // not decoded by the transport
		fmt.Fprintf(w, "%s %d %q te=%q ua=%q custom=%q fields=%d",
			r.Method, r.ContentLength, b, r.Header.Get("Te"), r.Header.Values("User-Agent"), r.Header.Get("X-Custom"), len(names))
	})
	tr := newTestTransport(t, o.roots(), nil)
	target := o.target("127.0.0.1")
	tests := []struct {
		name   string
		method string
		body   io.Reader
		length int64
		header map[string]string
		want   string
	}{
		{"no body", "GET", nil, 0, nil, `GET 0 "" te="" ua=[] custom="" fields=0`},
		{"known length", "POST", strings.NewReader("hello"), 5, nil, `POST 5 "hello" te="" ua=[] custom="" fields=1`},
		{"unknown length", "PUT", strings.NewReader("stream"), -1, nil, `PUT -1 "stream" te="" ua=[] custom="" fields=0`},
		{"connection-specific fields", "GET", nil, 0, map[string]string{
			"Connection":        "keep-alive",
			"Keep-Alive":        "timeout=5",
			"Proxy-Connection":  "keep-alive",
			"Transfer-Encoding": "chunked",
			"Upgrade":           "websocket",
			"Te":                "trailers",
			"X-Custom":          "v",
			"User-Agent":        "client/1",
		}, `GET 0 "" te="trailers" ua=["client/1"] custom="v" fields=3`},
		{"te other than trailers", "GET", nil, 0, map[string]string{"Te": "gzip"}, `GET 0 "" te="" ua=[] custom="" fields=0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t.Context(), tt.method, "127.0.0.1", "/", tt.body, tt.length)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			ex := roundTrip(tr, req, target)
			if ex.err != nil {
				t.Fatal(ex.err)
			}
			if ex.body != tt.want {
				t.Errorf("origin got %s\nwant %s", ex.body, tt.want)
			}
			if ce := ex.resp.Header.Get("Content-Encoding"); ce != "gzip" || ex.resp.Uncompressed {
				t.Errorf("Content-Encoding = %q (Uncompressed %v), want gzip passed through", ce, ex.resp.Uncompressed)
			}
		})
	}
}

// TestTransportH2Interim checks that 1xx responses reach the trace's
// Got1xxResponse before the final response.
func TestTransportH2Interim(t *testing.T) {
	o := startOrigin(t, h2Origin, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	tr := newTestTransport(t, o.roots(), nil)
	var got []string
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, fmt.Sprint(code, " ", h.Get("Link")))
			return nil
		},
	})
	ex := roundTrip(tr, newRequest(ctx, "GET", "127.0.0.1", "/", nil, 0), o.target("127.0.0.1"))
	if ex.err != nil || ex.body != "final" || ex.resp.StatusCode != 200 {
		t.Fatalf("GET = %v %q, %v; want 200 final", ex.resp, ex.body, ex.err)
	}
	if want := "103 </style.css>; rel=preload"; len(got) != 1 || got[0] != want {
		t.Errorf("Got1xxResponse calls %q, want [%q]", got, want)
	}
}

// held is a stream whose response head arrived and whose body waits for
// the origin handler's release.
type held struct {
	resp *http.Response
	conn net.Conn
}

// hold starts a request to /hold and reads the first body bytes.
func hold(t testing.TB, tr *Transport, target Target) held {
	t.Helper()
	var h held
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) { h.conn = ci.Conn },
	})
	resp, err := tr.RoundTrip(newRequest(ctx, "GET", target.Host, "/hold", nil, 0), target)
	if err != nil {
		t.Fatalf("GET /hold: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	buf := make([]byte, len("start"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("GET /hold: first bytes: %v", err)
	}
	h.resp = resp
	return h
}

// holdHandler answers /hold with "start", then "end" once release is
// closed, and anything else with "ok".
func holdHandler(release chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hold" {
			io.WriteString(w, "ok")
			return
		}
		io.WriteString(w, "start")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			io.WriteString(w, "end")
		case <-r.Context().Done():
		}
	}
}

// TestTransportH2DeadConn kills one upstream h2 connection while streams
// are open on it and on another: only the streams on the dead one fail,
// and the next request for its key dials a new connection.
func TestTransportH2DeadConn(t *testing.T) {
	release := make(chan struct{})
	o := startOrigin(t, h2Origin, holdHandler(release))
	tr := newTestTransport(t, o.roots(), nil)
	loop := netip.MustParseAddr("127.0.0.1")
	targetA := o.target("127.0.0.1")
	targetB := o.target("example.com", loop) // another key, so another connection

	a1, a2 := hold(t, tr, targetA), hold(t, tr, targetA)
	b := hold(t, tr, targetB)
	if a1.conn != a2.conn || a1.conn == b.conn {
		t.Fatal("want /hold A1 and A2 on one connection, B on another")
	}
	if n := o.newConns.Load(); n != 2 {
		t.Fatalf("origin accepted %d connections, want 2", n)
	}

	o.serverConn(t, a1.conn).Close()
	for i, h := range []held{a1, a2} {
		if rest, err := io.ReadAll(h.resp.Body); err == nil {
			t.Errorf("stream A%d on the dead connection: rest of body %q, nil error; want an error", i+1, rest)
		}
	}

	ex := get(t, tr, targetA, "/")
	if ex.body != "ok" || ex.conn.Reused || ex.conn.Conn == a1.conn {
		t.Errorf("after the death: GET = %q on reused=%v, want ok on a new connection", ex.body, ex.conn.Reused)
	}
	if n := o.newConns.Load(); n != 3 {
		t.Errorf("origin accepted %d connections, want 3", n)
	}

	close(release)
	if rest, err := io.ReadAll(b.resp.Body); err != nil || string(rest) != "end" {
		t.Errorf("stream B on the live connection: rest of body %q, %v; want end", rest, err)
	}
	ex = get(t, tr, targetB, "/")
	if !ex.conn.Reused || ex.conn.Conn != b.conn {
		t.Error("key B: want its connection reused after the other died")
	}
	// Both keys' connections are idle now; the dead one is not counted.
	if n := idleCount(t, tr); n != 2 {
		t.Errorf("%d idle connections, want 2", n)
	}
}

// TestTransportH2Close checks Close: an idle h2 connection closes at
// once, a busy one when its last stream ends, and later requests still
// work on connections that are not kept.
func TestTransportH2Close(t *testing.T) {
	release := make(chan struct{})
	o := startOrigin(t, h2Origin, holdHandler(release))
	tr := newTestTransport(t, o.roots(), nil)
	targetA := o.target("127.0.0.1")
	targetB := o.target("example.com", netip.MustParseAddr("127.0.0.1"))

	get(t, tr, targetA, "/")
	b := hold(t, tr, targetB)
	tr.Close()
	tr.Close() // idempotent
	waitFor(t, "the idle connection to close", func() bool { return o.closedConns.Load() == 1 })

	close(release)
	if rest, err := io.ReadAll(b.resp.Body); err != nil || string(rest) != "end" {
		t.Errorf("stream open at Close: rest of body %q, %v; want end", rest, err)
	}
	b.resp.Body.Close()
	waitFor(t, "the busy connection to close after its stream", func() bool { return o.closedConns.Load() == 2 })

	get(t, tr, targetA, "/")
	waitFor(t, "a connection made after Close to close", func() bool { return o.closedConns.Load() == 3 })
	tr.mu.Lock()
	n := len(tr.h2conns)
	tr.mu.Unlock()
	if n != 0 {
		t.Errorf("%d h2 keys after Close, want none", n)
	}
	idleCount(t, tr)
}

// pipeOrigin is an h2 origin over net.Pipe, for synctest bubbles: each
// dial starts a TLS server on the other end running serve.
type pipeOrigin struct {
	tls   *tls.Config
	serve func(c net.Conn)
	roots *x509.CertPool
	wg    sync.WaitGroup
	dials atomic.Int32
	open  atomic.Int32 // connections not yet ended by the server
}

func newPipeOrigin(t testing.TB, serve func(net.Conn)) *pipeOrigin {
	pki := newTestPKI(t) // inside the bubble: valid at its clock
	p := &pipeOrigin{
		tls:   &tls.Config{Certificates: []tls.Certificate{pki.leaf}, NextProtos: []string{"h2"}},
		serve: serve,
		roots: x509.NewCertPool(),
	}
	p.roots.AddCert(pki.root)
	return p
}

func (p *pipeOrigin) dial(ctx context.Context, network, address string) (net.Conn, error) {
	p.dials.Add(1)
	p.open.Add(1)
	c, s := net.Pipe()
	p.wg.Go(func() {
		defer p.open.Add(-1)
		ts := tls.Server(s, p.tls)
		defer ts.Close()
		if ts.Handshake() == nil {
			p.serve(ts)
		}
	})
	return c, nil
}

func (p *pipeOrigin) transport(t testing.TB) *Transport {
	return &Transport{
		Dialer:                  &Dialer{dial: p.dial},
		Roots:                   p.roots,
		TLSHandshakeTimeout:     10 * time.Second,
		ResponseHeaderTimeout:   5 * time.Second,
		RequestBodyIdleTimeout:  10 * time.Second,
		ResponseBodyIdleTimeout: 7 * time.Second,
		IdleTimeout:             time.Minute,
	}
}

var pipeTarget = Target{Scheme: "https", Host: "127.0.0.1", Port: 443, AllowPrivate: true}

// TestTransportH2Timeouts checks response_header_timeout, the response
// body idle timeout and the idle timeout on h2, in a synctest bubble.
func TestTransportH2Timeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPipeOrigin(t, fakeH2(func(path string, n int) h2Action {
			switch path {
			case "/slow-head":
				return h2Silent
			case "/slow-body":
				return h2Start
			}
			return h2OK
		}))
		tr := p.transport(t)
		req := func(path string) *http.Request {
			return newRequest(t.Context(), "GET", "127.0.0.1", path, nil, 0)
		}

		start := time.Now()
		_, err := tr.RoundTrip(req("/slow-head"), pipeTarget)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindTimeout || e.Status() != http.StatusGatewayTimeout {
			t.Errorf("slow head: error %v, want a 504 KindTimeout *Error", err)
		}
		if d := time.Since(start); d != tr.ResponseHeaderTimeout {
			t.Errorf("slow head failed after %v, want %v", d, tr.ResponseHeaderTimeout)
		}

		// The connection that left a stream unanswered takes no new one.
		ex := roundTrip(tr, req("/"), pipeTarget)
		if ex.err != nil || ex.body != "ok" || ex.conn.Reused {
			t.Errorf("after the timeout: GET = %q, %v, reused %v; want ok on a new connection", ex.body, ex.err, ex.conn.Reused)
		}
		synctest.Wait()
		if n, open := p.dials.Load(), p.open.Load(); n != 2 || open != 1 {
			t.Errorf("%d dials, %d open; want 2 dials and the timed-out connection closed", n, open)
		}

		resp, err := tr.RoundTrip(req("/slow-body"), pipeTarget)
		if err != nil {
			t.Fatalf("slow body: %v", err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("slow body: first bytes: %v", err)
		}
		start = time.Now()
		_, err = resp.Body.Read(buf)
		if !errors.As(err, &e) || e.Kind != KindTimeout {
			t.Errorf("slow body: read error %v, want a KindTimeout *Error", err)
		}
		if d := time.Since(start); d != tr.ResponseBodyIdleTimeout {
			t.Errorf("slow body failed after %v, want %v", d, tr.ResponseBodyIdleTimeout)
		}
		resp.Body.Close()

		ex = roundTrip(tr, req("/"), pipeTarget)
		if ex.err != nil || ex.body != "ok" || ex.conn.Reused {
			t.Errorf("after the body timeout: GET = %q, %v, reused %v; want ok on a new connection", ex.body, ex.err, ex.conn.Reused)
		}
		synctest.Wait()
		if open := p.open.Load(); open != 1 {
			t.Errorf("%d connections open, want 1", open)
		}
		time.Sleep(tr.IdleTimeout - time.Second)
		synctest.Wait()
		if open := p.open.Load(); open != 1 {
			t.Errorf("before the idle timeout: %d connections open, want 1", open)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if open := p.open.Load(); open != 0 {
			t.Errorf("after the idle timeout: %d connections open, want 0", open)
		}
		tr.Close()
		p.wg.Wait()
	})
}

// h2Action is what a fakeH2 origin does with a request.
type h2Action int

const (
	h2OK     h2Action = iota // answer 200 "ok"
	h2Silent                 // send nothing: no response head
	h2Start                  // send the head and "start", then nothing
	h2Close                  // close the connection
)

// fakeH2 is an HTTP/2 origin written with a Framer, for synctest bubbles
// (http2.Server keeps channels in sync.Pools, which must not cross
// bubbles). answer says what to do with each request; n counts the
// requests on the connection from 1. Frames are read on their own
// goroutine, as an HTTP/2 server does: net.Pipe does not buffer, and the
// client may be writing when the origin writes.
func fakeH2(answer func(path string, n int) h2Action) func(net.Conn) {
	type frame struct {
		settings bool   // SETTINGS to acknowledge
		ping     []byte // PING to acknowledge
		path     string // request HEADERS
		stream   uint32
	}
	return func(c net.Conn) {
		var wg sync.WaitGroup
		defer wg.Wait()
		defer c.Close() // ends the reader
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
			return
		}
		fr := http2.NewFramer(c, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		frames := make(chan frame, 64) // the reader never waits for the writer
		done := make(chan struct{})
		defer close(done)
		wg.Go(func() {
			defer close(frames)
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					return
				}
				var ff frame
				switch f := f.(type) {
				case *http2.SettingsFrame:
					if f.IsAck() {
						continue
					}
					ff.settings = true
				case *http2.PingFrame:
					if f.IsAck() {
						continue
					}
					ff.ping = bytes.Clone(f.Data[:])
				case *http2.MetaHeadersFrame:
					ff.path, ff.stream = f.PseudoValue("path"), f.StreamID
				default:
					continue
				}
				select {
				case frames <- ff:
				case <-done:
					return
				}
			}
		})
		if fr.WriteSettings() != nil {
			return
		}
		n := 0
		for f := range frames {
			switch {
			case f.settings:
				fr.WriteSettingsAck()
			case f.ping != nil:
				fr.WritePing(true, [8]byte(f.ping))
			default:
				n++
				var block bytes.Buffer
				enc := hpack.NewEncoder(&block)
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				switch answer(f.path, n) {
				case h2OK:
					enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "2"})
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.stream, BlockFragment: block.Bytes(), EndHeaders: true})
					fr.WriteData(f.stream, true, []byte("ok"))
				case h2Start:
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.stream, BlockFragment: block.Bytes(), EndHeaders: true})
					fr.WriteData(f.stream, false, []byte("start"))
				case h2Close:
					return
				}
			}
		}
	}
}

// TestTransportH2StaleRetry checks the retry rule on h2: a request
// without a body that fails on a reused connection the upstream closed is
// sent again on a fresh one; a request with a body is not.
func TestTransportH2StaleRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var heads atomic.Int32
		p := newPipeOrigin(t, fakeH2(func(path string, n int) h2Action {
			heads.Add(1)
			if n > 1 {
				return h2Close
			}
			return h2OK
		}))
		tr := p.transport(t)

		get(t, tr, pipeTarget, "/")
		ex := roundTrip(tr, newRequest(t.Context(), "GET", "127.0.0.1", "/", nil, 0), pipeTarget)
		if ex.err != nil || ex.body != "ok" {
			t.Errorf("GET on the dropped connection = %q, %v; want ok after a retry", ex.body, ex.err)
		}
		if n, h := p.dials.Load(), heads.Load(); n != 2 || h != 3 {
			t.Errorf("%d dials, %d requests seen; want 2 and 3", n, h)
		}

		ex = roundTrip(tr, newRequest(t.Context(), "POST", "127.0.0.1", "/", strings.NewReader("x"), 1), pipeTarget)
		if ex.err == nil {
			t.Error("POST with a body on a dropped connection succeeded, want an error: it may have been processed")
		}
		if n := p.dials.Load(); n != 2 {
			t.Errorf("%d dials, want 2: no retry with a body", n)
		}
		tr.Close()
		p.wg.Wait()
	})
}
