package upstream

import (
	"bufio"
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
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"exfilguard/proxy/http1"
)

// Transport carries requests to upstream servers through connections
// from Dialer (SPEC §5 "Upstream"). An http target gets HTTP/1.1 over TCP
// (no h2c). An https target gets TLS offering ALPN h2 and http/1.1, then
// HTTP/2 when the origin picks h2 and HTTP/1.1 otherwise.
//
// HTTP/1.1 connections carry one exchange at a time and wait between
// exchanges in one process-wide idle pool. A connection goes back to the
// pool only after a fully and correctly framed exchange: the request body
// written to its end, the response body read to its clean end, no
// Connection: close, and no byte left over (an upstream that sent a body
// after a HEAD response is not trusted again).
//
// An HTTP/2 connection is shared: every request for its pool key opens a
// stream on it while it takes new streams, and a connection that dies ends
// only the streams on it (transport_h2.go).
//
// The fields must not change after the first RoundTrip.
type Transport struct {
	Dialer *Dialer
	// Roots verify upstream TLS servers (system roots plus
	// upstream_ca_file, see RootPool).
	Roots *x509.CertPool
	// TLSHandshakeTimeout bounds an upstream TLS handshake. Zero means no
	// limit.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response head after the
	// request head is written (on HTTP/2, after the stream is opened).
	// Zero means no limit.
	ResponseHeaderTimeout time.Duration
	// RequestBodyIdleTimeout bounds each write of the request body; on
	// HTTP/2, each write to the connection (a stalled connection is
	// closed). Zero means no limit.
	RequestBodyIdleTimeout time.Duration
	// ResponseBodyIdleTimeout bounds each read of the response body. Zero
	// means no limit.
	ResponseBodyIdleTimeout time.Duration
	// MaxResponseHeaderSize bounds a response head (502 past it); on
	// HTTP/2, the decoded header list as RFC 9113 §6.5.2 counts it. Zero
	// means http1.DefaultMaxHeadSize.
	MaxResponseHeaderSize int
	// PoolCapacity is the most idle HTTP/1.1 connections kept per pool
	// key. Zero means none are kept.
	PoolCapacity int
	// MaxIdle is the most idle connections kept over all pool keys,
	// HTTP/1.1 and HTTP/2 together; past it, a connection that falls idle
	// is closed instead of kept. Zero means no bound.
	//
	// Without it, a client sending one request to each of many hosts a
	// wildcard rule allows leaves an idle connection per host until
	// IdleTimeout, file descriptors that every other client needs. The
	// newcomer is closed rather than the oldest idle connection evicted,
	// so that such a client cannot empty the pool of everyone else.
	MaxIdle int
	// IdleTimeout closes a connection idle this long: a pooled HTTP/1.1
	// connection, or an HTTP/2 connection without streams. Zero means
	// idle connections stay open until Close.
	IdleTimeout time.Duration

	h2once sync.Once
	h2t    *http2.Transport // set once by h2Transport

	mu      sync.Mutex
	idle    map[poolKey][]*pconn     // guarded by mu; most recently used last
	h2conns map[poolKey][]*h2conn    // guarded by mu; shared HTTP/2 connections
	dialing map[poolKey]*pendingDial // guarded by mu; https dials under way
	closed  bool                     // guarded by mu
	// nidle counts the idle connections: those in idle, and those in
	// h2conns without streams. Guarded by mu.
	nidle int
}

// poolKey says which requests a connection may carry. The vetted address
// the connection was dialed to is part of each connection (pconn.addr,
// h2conn.addr): a connection is only ever reused for the same host name
// under the same allow_private_upstream flag it was vetted with, and for a
// request with pinned addresses (Target.Addrs) only if its address is one
// of them.
type poolKey struct {
	scheme       string
	host         string
	port         uint16
	allowPrivate bool
}

// upstreamConn is a connection that can carry one request now: a *pconn
// (HTTP/1.1, checked out of the pool) or an *h2conn with a stream
// reserved for the request.
type upstreamConn interface {
	// roundTrip sends req and returns the response head, its body
	// streaming. reused says whether the connection carried an earlier
	// request; a failure that a fresh connection may not have is then
	// wrapped in errStale.
	roundTrip(req *http.Request, reused bool) (*http.Response, error)
}

// pendingDial is an https dial under way for a pool key. Other requests
// for the key wait for it rather than dial too, because the origin may
// pick h2 and then one connection serves them all.
type pendingDial struct {
	done chan struct{} // closed when the dial has ended
	h2   bool          // the dial made an HTTP/2 connection now shared; set before done closes
}

// pconn is one upstream HTTP/1.1 connection.
type pconn struct {
	t     *Transport
	key   poolKey
	conn  net.Conn
	addr  netip.AddrPort
	br    *bufio.Reader
	bw    *bufio.Writer
	rd    *http1.Reader
	timer *time.Timer // idle timeout while pooled; guarded by t.mu
	// nread counts the bytes read from conn, to tell whether any byte of
	// a response arrived before a failure.
	nread int64
}

// Read counts what the buffered reader takes from the connection.
func (pc *pconn) Read(p []byte) (int, error) {
	n, err := pc.conn.Read(p)
	pc.nread += int64(n)
	return n, err
}

// Target is where a request goes.
type Target struct {
	Scheme       string // "http" or "https"
	Host         string // lower case, IPv6 without brackets
	Port         uint16
	AllowPrivate bool
	// Addrs, when set, are the only addresses to connect to: those the
	// CONNECT of a bumped tunnel resolved and vetted. They are vetted
	// again under AllowPrivate, and the name is not resolved again.
	Addrs []netip.Addr
}

// errStale marks a failure on a reused connection before any byte of a
// response arrived: the upstream had closed it while it was idle.
var errStale = errors.New("upstream closed an idle connection")

// alpnH2 is what an https dial offers (SPEC §5: h2 when the origin
// negotiates it, HTTP/1.1 otherwise).
var alpnH2 = []string{"h2", "http/1.1"}

// RoundTrip sends req to target and returns the response with its body
// streaming. req.RequestURI is sent as the request-target (HTTP/1.1) or
// :path (HTTP/2) unchanged, req.Host as Host or :authority; the framing
// comes from req.ContentLength (-1: unknown length). A request without a
// body that fails on a reused connection before any response byte is
// retried once on a fresh connection.
//
// With target.Addrs set, the connection goes to one of those addresses
// that pass Dialer.Vet under target.AllowPrivate, and the name is never
// resolved; if none passes, the error is the *Error of Vet (KindPrivate:
// 403) and nothing is dialed.
func (t *Transport) RoundTrip(req *http.Request, target Target) (*http.Response, error) {
	key := poolKey{target.Scheme, target.Host, target.Port, target.AllowPrivate}
	var addrs []netip.Addr
	if len(target.Addrs) > 0 {
		// The inner request's rule sets allow_private_upstream, which may
		// differ from the CONNECT's: the pinned addresses are vetted again.
		var err error
		if addrs, err = t.Dialer.Vet(target.Addrs, target.Port, target.AllowPrivate); err != nil {
			return nil, withHost(err, target.Host)
		}
	}
	ctx := req.Context()
	c, reused, err := t.getConn(ctx, key, addrs)
	if err != nil {
		return nil, err
	}
	resp, err := c.roundTrip(req, reused)
	if err != nil && reused && errors.Is(err, errStale) && !hasBody(req) {
		if c, err = t.dial(ctx, key, addrs); err != nil {
			return nil, err
		}
		resp, err = c.roundTrip(req, false)
	}
	return resp, err
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
}

// pinned reports whether a connection to ap may carry a request whose
// addresses are addrs (nil: any vetted address).
func pinned(ap netip.AddrPort, addrs []netip.Addr) bool {
	if addrs == nil {
		return true
	}
	a := ap.Addr().Unmap()
	return slices.ContainsFunc(addrs, func(b netip.Addr) bool { return b.Unmap() == a })
}

// getConn returns a connection for key: a shared HTTP/2 connection that
// takes another stream, an idle HTTP/1.1 connection, or a new one.
// Concurrent requests for an https key wait for one dial instead of each
// making its own, in case the origin picks h2.
func (t *Transport) getConn(ctx context.Context, key poolKey, addrs []netip.Addr) (upstreamConn, bool, error) {
	coalesce := key.scheme == "https"
	for {
		t.mu.Lock()
		hc, reused, dead := t.reserveH2Locked(key, addrs)
		if hc != nil {
			t.mu.Unlock()
			closeH2(dead)
			traceGotConn(ctx, hc.conn, reused)
			return hc, reused, nil
		}
		if pc := t.takeIdleLocked(key, addrs); pc != nil {
			t.mu.Unlock()
			closeH2(dead)
			traceGotConn(ctx, pc.conn, true)
			return pc, true, nil
		}
		if !coalesce {
			t.mu.Unlock()
			closeH2(dead)
			c, err := t.dial(ctx, key, addrs)
			return c, false, err
		}
		if d := t.dialing[key]; d != nil {
			t.mu.Unlock()
			closeH2(dead)
			select {
			case <-d.done:
				// An h2 connection now serves the key, unless it is full
				// or pinned elsewhere; an HTTP/1.1 origin or a failed
				// dial leaves each request to dial for itself.
				coalesce = d.h2
				continue
			case <-ctx.Done():
				return nil, false, fmt.Errorf("wait for upstream connection: %w", ctx.Err())
			}
		}
		d := &pendingDial{done: make(chan struct{})}
		if t.dialing == nil {
			t.dialing = map[poolKey]*pendingDial{}
		}
		t.dialing[key] = d
		t.mu.Unlock()
		closeH2(dead)

		c, err := t.dial(ctx, key, addrs)
		t.mu.Lock()
		delete(t.dialing, key)
		if hc, ok := c.(*h2conn); ok { // c is nil on error
			d.h2 = hc.pooled
		}
		t.mu.Unlock()
		close(d.done)
		return c, false, err
	}
}

// takeIdleLocked checks out the most recently used idle HTTP/1.1
// connection for key whose address is pinned.
func (t *Transport) takeIdleLocked(key poolKey, addrs []netip.Addr) *pconn {
	list := t.idle[key]
	for i := len(list) - 1; i >= 0; i-- {
		pc := list[i]
		if !pinned(pc.addr, addrs) {
			continue
		}
		t.setIdleLocked(key, slices.Delete(list, i, i+1))
		t.nidle--
		if pc.timer != nil {
			pc.timer.Stop()
		}
		return pc
	}
	return nil
}

// dial makes a new connection for key: to addrs when set (the caller
// vetted them), else to the vetted addresses of the host. For https it
// runs the TLS handshake offering h2 and http/1.1; an h2 connection is
// shared from then on, with one stream reserved for the caller.
func (t *Transport) dial(ctx context.Context, key poolKey, addrs []netip.Addr) (upstreamConn, error) {
	var conn net.Conn
	var err error
	if addrs != nil {
		conn, err = t.Dialer.DialAddrs(ctx, addrs, key.port, key.allowPrivate)
		if err != nil {
			return nil, withHost(err, key.host)
		}
	} else if conn, err = t.Dialer.Dial(ctx, key.host, key.port, key.allowPrivate); err != nil {
		return nil, err
	}
	ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	if key.scheme == "https" {
		tconn := tls.Client(conn, ClientTLSConfig(t.Roots, key.host, alpnH2))
		hctx, cancel := withTimeout(ctx, t.TLSHandshakeTimeout)
		err := tconn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			if hctx.Err() == context.DeadlineExceeded {
				return nil, &Error{Op: "tls handshake", Kind: KindTimeout, Host: key.host, Addr: ap, Err: err}
			}
			return nil, &Error{Op: "tls handshake", Kind: KindConnect, Host: key.host, Addr: ap, Err: err}
		}
		if tconn.ConnectionState().NegotiatedProtocol == "h2" {
			hc, err := t.newH2Conn(ctx, key, tconn, ap)
			if err != nil {
				return nil, err
			}
			return hc, nil
		}
		conn = tconn
	}
	pc := &pconn{t: t, key: key, conn: conn, addr: ap}
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	pc.bw = bufio.NewWriterSize(conn, 16<<10)
	pc.rd = http1.NewReader(pc.br, t.MaxResponseHeaderSize)
	traceGotConn(ctx, conn, false)
	return pc, nil
}

// setIdleLocked stores the idle list of key; an empty one leaves the map,
// which would otherwise keep a key for every host ever visited.
func (t *Transport) setIdleLocked(key poolKey, list []*pconn) {
	if len(list) == 0 {
		delete(t.idle, key)
		return
	}
	t.idle[key] = list
}

// withTimeout is context.WithTimeout, where zero means no limit.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// deadline returns the deadline d from now, or none for zero.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

func traceGotConn(ctx context.Context, conn net.Conn, reused bool) {
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: conn, Reused: reused})
	}
}

// putIdle returns pc to the pool, or closes it when the pool for its key
// is full or the transport is closed.
func (t *Transport) putIdle(pc *pconn) {
	t.mu.Lock()
	if t.closed || len(t.idle[pc.key]) >= t.PoolCapacity || t.idleFullLocked() {
		t.mu.Unlock()
		pc.conn.Close()
		return
	}
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[poolKey][]*pconn{}
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	t.nidle++
	if t.IdleTimeout <= 0 {
		return
	}
	if pc.timer == nil {
		pc.timer = time.AfterFunc(t.IdleTimeout, func() { t.expire(pc) })
	} else {
		pc.timer.Reset(t.IdleTimeout)
	}
}

// expire closes pc if it is still idle.
func (t *Transport) expire(pc *pconn) {
	t.mu.Lock()
	list := t.idle[pc.key]
	i := slices.Index(list, pc)
	if i >= 0 {
		t.setIdleLocked(pc.key, slices.Delete(list, i, i+1))
		t.nidle--
	}
	t.mu.Unlock()
	if i >= 0 {
		pc.conn.Close()
	}
}

// idleFullLocked reports whether MaxIdle idle connections are kept.
func (t *Transport) idleFullLocked() bool {
	return t.MaxIdle > 0 && t.nidle >= t.MaxIdle
}

// IdleConns returns how many idle HTTP/1.1 connections the pool holds.
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.idle {
		n += len(l)
	}
	return n
}

// Close closes every idle connection; connections in use (HTTP/1.1
// exchanges, HTTP/2 connections with streams) take no new request and
// close when their last exchange ends. It is idempotent.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	var idle []*pconn
	for k, list := range t.idle {
		for _, pc := range list {
			if pc.timer != nil {
				pc.timer.Stop()
			}
		}
		idle = append(idle, list...)
		delete(t.idle, k)
	}
	var h2idle, h2busy []*h2conn
	for k, list := range t.h2conns {
		for _, hc := range list {
			hc.pooled = false
			hc.idleGen++
			if hc.active == 0 {
				h2idle = append(h2idle, hc)
			} else {
				h2busy = append(h2busy, hc)
			}
		}
		delete(t.h2conns, k)
	}
	t.nidle = 0
	t.mu.Unlock()
	for _, pc := range idle {
		pc.conn.Close()
	}
	closeH2(h2idle)
	for _, hc := range h2busy {
		// Closed by streamDone when its last stream ends.
		hc.cc.SetDoNotReuse()
	}
}

// roundTrip runs one exchange on pc. On error pc is closed.
func (pc *pconn) roundTrip(req *http.Request, reused bool) (*http.Response, error) {
	ctx := req.Context()
	t := pc.t
	// Cancelling the request (client gone, total timeout) interrupts any
	// blocked read or write on the connection.
	stop := context.AfterFunc(ctx, func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return nil, err
	}

	startRead := pc.nread
	if err := pc.writeHead(req); err != nil {
		if reused {
			err = fmt.Errorf("%w: %w", errStale, err)
		}
		return fail(fmt.Errorf("write request head: %w", err))
	}

	// The body is written while the response head is awaited: an upstream
	// may answer (413, 401) before reading it all.
	bodyDone := make(chan error, 1)
	if hasBody(req) {
		go func() { bodyDone <- pc.writeBody(req) }()
	} else {
		bodyDone <- nil
	}

	var head *http1.ResponseHead
	for {
		pc.conn.SetReadDeadline(deadline(t.ResponseHeaderTimeout))
		var err error
		head, err = pc.rd.ReadResponseHead()
		if err != nil {
			if reused && pc.nread == startRead && (errors.Is(err, io.EOF) || isConnReset(err)) {
				err = fmt.Errorf("%w: %w", errStale, err)
			}
			if errors.Is(err, errStale) {
				// Not yet an error to report: the caller retries.
			} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && ctx.Err() == nil {
				err = &Error{Op: "read response head", Kind: KindTimeout, Host: pc.key.host, Addr: pc.addr, Err: err}
			}
			pc.conn.Close()
			var bre *BodyReadError
			if berr := <-bodyDone; errors.As(berr, &bre) {
				err = berr // the response was cut off by our own abort
			}
			return fail(err)
		}
		if head.StatusCode == http.StatusSwitchingProtocols {
			pc.conn.Close()
			<-bodyDone
			return fail(errors.New("upstream answered 101 Switching Protocols"))
		}
		if head.StatusCode >= 200 {
			break
		}
		// RFC 9110 §15.2: relay interim responses, keep waiting.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(head.StatusCode, mimeHeader(head.Fields)); err != nil {
				pc.conn.Close()
				<-bodyDone
				return fail(err)
			}
		}
	}
	pc.conn.SetReadDeadline(time.Time{})

	framing := head.Framing(req.Method)
	resp := &http.Response{
		Status:        strconv.Itoa(head.StatusCode) + " " + string(head.Reason),
		StatusCode:    head.StatusCode,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header(mimeHeader(head.Fields)),
		ContentLength: -1,
		Close:         head.Close || framing == http1.BodyUntilClose,
		Trailer:       http.Header{},
		Request:       req,
	}
	switch framing {
	case http1.BodyLength:
		resp.ContentLength = head.ContentLength
	case http1.BodyNone:
		resp.ContentLength = 0
		if head.ContentLength > 0 {
			// A HEAD response keeps the length of the body it describes.
			resp.ContentLength = head.ContentLength
		}
	}
	body := &responseBody{pc: pc, stop: stop, bodyDone: bodyDone, close: resp.Close, head: req.Method == http.MethodHead,
		body: pc.rd.Body(framing, head.ContentLength, 0), trailer: resp.Trailer}
	if framing == http1.BodyNone {
		body.finish(nil)
		resp.Body = http.NoBody
	} else {
		resp.Body = body
	}
	return resp, nil
}

func isConnReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// writeHead writes the request line, Host and header fields, and the
// framing field that the body needs.
func (pc *pconn) writeHead(req *http.Request) error {
	pc.conn.SetWriteDeadline(deadline(pc.t.RequestBodyIdleTimeout))
	w := http1.NewWriter(pc.bw)
	w.RequestLine(req.Method, req.RequestURI)
	w.Field("Host", req.Host)
	for name, values := range req.Header {
		switch name {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Te":
			// Framing is written below; TE would need a matching
			// Connection option on HTTP/1.1 (RFC 9110 §10.1.4), and the
			// pipeline keeps it only for HTTP/2's "trailers".
			continue
		}
		for _, v := range values {
			w.Field(name, v)
		}
	}
	switch {
	case req.ContentLength > 0:
		w.ContentLength(req.ContentLength)
	case req.ContentLength < 0 && hasBody(req):
		w.Field("Transfer-Encoding", "chunked")
	case len(req.Header["Content-Length"]) > 0:
		// SPEC §5: a client's Content-Length: 0 is forwarded.
		w.ContentLength(0)
	}
	if err := w.EndHead(); err != nil {
		return err
	}
	if hasBody(req) {
		return nil // flushed with the first body bytes
	}
	return pc.bw.Flush()
}

// writeBody writes the request body, re-framed: Content-Length bytes
// exactly, or chunked.
func (pc *pconn) writeBody(req *http.Request) error {
	var dst io.Writer = deadlineWriter{pc}
	var cw *http1.ChunkedWriter
	if req.ContentLength < 0 {
		cw = http1.NewChunkedWriter(dst)
		dst = cw
	}
	src := &sourceReader{r: req.Body}
	var from io.Reader = src
	if req.ContentLength > 0 {
		from = io.LimitReader(src, req.ContentLength)
	}
	n, err := io.Copy(dst, from)
	if src.err != nil {
		// The client's body failed (too large, malformed, too slow): that,
		// not the upstream, is what the caller must report.
		pc.conn.Close()
		return &BodyReadError{Err: src.err}
	}
	if err == nil && req.ContentLength > 0 && n != req.ContentLength {
		err = fmt.Errorf("request body is %d bytes, want %d", n, req.ContentLength)
	}
	if err == nil && cw != nil {
		err = cw.Close()
	}
	if err == nil {
		pc.conn.SetWriteDeadline(deadline(pc.t.RequestBodyIdleTimeout))
		err = pc.bw.Flush()
	}
	if err != nil {
		// The upstream must not take a truncated body for a whole one.
		pc.conn.Close()
		return fmt.Errorf("write request body: %w", err)
	}
	return nil
}

// BodyReadError is a failure to read the request body from the client
// while forwarding it; Unwrap gives the cause (such as the pipeline's body
// size limit).
type BodyReadError struct{ Err error }

func (e *BodyReadError) Error() string { return "read request body: " + e.Err.Error() }
func (e *BodyReadError) Unwrap() error { return e.Err }

// sourceReader remembers the error of the request body it reads.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// deadlineWriter writes to the connection's buffer, renewing the write
// deadline for each write.
type deadlineWriter struct{ pc *pconn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.pc.conn.SetWriteDeadline(deadline(d.pc.t.RequestBodyIdleTimeout))
	n, err := d.pc.bw.Write(p)
	if err == nil {
		err = d.pc.bw.Flush()
	}
	return n, err
}

// responseBody streams a response body and decides, at its end, whether
// the connection can be reused.
type responseBody struct {
	pc       *pconn
	body     *http1.Body
	stop     func() bool
	bodyDone chan error
	close    bool
	head     bool // the request was a HEAD
	trailer  http.Header
	once     sync.Once
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.pc.conn.SetReadDeadline(deadline(b.pc.t.ResponseBodyIdleTimeout))
	n, err := b.body.Read(p)
	if err == io.EOF {
		for _, f := range b.body.Trailers() {
			b.trailer.Add(string(f.Name), string(f.Value))
		}
		b.finish(nil)
	} else if err != nil {
		b.finish(err)
	}
	return n, err
}

// Close ends the exchange; a body not read to its end closes the
// connection.
func (b *responseBody) Close() error {
	b.finish(errors.New("response body closed early"))
	return nil
}

// finish ends the exchange once: the connection goes back to the pool
// only when everything was framed correctly.
func (b *responseBody) finish(err error) {
	b.once.Do(func() {
		pc := b.pc
		b.stop()
		// After a HEAD, a misbehaving upstream may send the body it
		// described; bytes still in flight cannot be seen here, so such a
		// connection is never reused (SPEC §5, as the original).
		reusable := err == nil && !b.close && !b.head && b.body.Done() && pc.br.Buffered() == 0
		if reusable {
			// The request body must have been written to its end too.
			select {
			case berr := <-b.bodyDone:
				reusable = berr == nil
			default:
				reusable = false
			}
		}
		if !reusable {
			pc.conn.Close()
			go func() { <-b.bodyDone }() // the writer ends on the closed conn
			return
		}
		pc.conn.SetDeadline(time.Time{})
		pc.t.putIdle(pc)
	})
}

// mimeHeader converts fields to a header map with canonical names.
func mimeHeader(fs http1.Fields) textproto.MIMEHeader {
	h := make(textproto.MIMEHeader, len(fs))
	for _, f := range fs {
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		h[k] = append(h[k], string(f.Value))
	}
	return h
}
