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
	"strconv"
	"sync"
	"time"

	"exfilguard/proxy/http1"
)

// Transport carries requests to upstream servers over HTTP/1.1 (plain or
// TLS), through connections from Dialer, keeping idle connections in one
// process-wide pool (SPEC §5 "Upstream").
//
// A connection goes back to the pool only after a fully and correctly
// framed exchange: the request body written to its end, the response body
// read to its clean end, no Connection: close, and no byte left over (an
// upstream that sent a body after a HEAD response is not trusted again).
type Transport struct {
	Dialer *Dialer
	// Roots verify upstream TLS servers (system roots plus
	// upstream_ca_file, see RootPool).
	Roots *x509.CertPool
	// TLSHandshakeTimeout bounds an upstream TLS handshake.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response head after the
	// request head is written.
	ResponseHeaderTimeout time.Duration
	// RequestBodyIdleTimeout bounds each write of the request body.
	RequestBodyIdleTimeout time.Duration
	// ResponseBodyIdleTimeout bounds each read of the response body.
	ResponseBodyIdleTimeout time.Duration
	// MaxResponseHeaderSize bounds a response head (502 past it).
	MaxResponseHeaderSize int
	// PoolCapacity is the most idle connections kept per pool key.
	PoolCapacity int
	// IdleTimeout closes a pooled connection idle this long.
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   map[poolKey][]*pconn // guarded by mu; most recently used last
	closed bool                 // guarded by mu
}

// poolKey says which requests a pooled connection may carry. The vetted
// address the connection was dialed to is part of each connection
// (pconn.addr): a connection is only ever reused for the same host name
// under the same allow_private_upstream flag it was vetted with.
type poolKey struct {
	scheme       string
	host         string
	port         uint16
	allowPrivate bool
}

// pconn is one upstream connection.
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

// RoundTrip sends req to target and returns the response with its body
// streaming. req.RequestURI is written as the request-target unchanged,
// req.Host as Host; the framing fields come from req.ContentLength (-1:
// chunked). A request without a body that fails on a reused connection
// before any response byte is retried once on a fresh connection.
func (t *Transport) RoundTrip(req *http.Request, target Target) (*http.Response, error) {
	key := poolKey{target.Scheme, target.Host, target.Port, target.AllowPrivate}
	pc, reused, err := t.getConn(req.Context(), key)
	if err != nil {
		return nil, err
	}
	resp, err := pc.roundTrip(req, reused)
	if err != nil && reused && errors.Is(err, errStale) && !hasBody(req) {
		pc, _, err = t.getFresh(req.Context(), key)
		if err != nil {
			return nil, err
		}
		resp, err = pc.roundTrip(req, false)
	}
	return resp, err
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
}

// getConn returns an idle connection for key, or a new one.
func (t *Transport) getConn(ctx context.Context, key poolKey) (*pconn, bool, error) {
	t.mu.Lock()
	list := t.idle[key]
	if n := len(list); n > 0 {
		pc := list[n-1]
		t.idle[key] = list[:n-1]
		pc.timer.Stop()
		t.mu.Unlock()
		traceGotConn(ctx, pc, true)
		return pc, true, nil
	}
	t.mu.Unlock()
	return t.getFresh(ctx, key)
}

// getFresh dials a new connection for key.
func (t *Transport) getFresh(ctx context.Context, key poolKey) (*pconn, bool, error) {
	conn, err := t.Dialer.Dial(ctx, key.host, key.port, key.allowPrivate)
	if err != nil {
		return nil, false, err
	}
	ap, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
	if key.scheme == "https" {
		tconn := tls.Client(conn, ClientTLSConfig(t.Roots, key.host, []string{"http/1.1"}))
		hctx, cancel := context.WithTimeout(ctx, t.TLSHandshakeTimeout)
		err := tconn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			if hctx.Err() == context.DeadlineExceeded {
				return nil, false, &Error{Op: "tls handshake", Kind: KindTimeout, Host: key.host, Addr: ap, Err: err}
			}
			return nil, false, &Error{Op: "tls handshake", Kind: KindConnect, Host: key.host, Addr: ap, Err: err}
		}
		conn = tconn
	}
	pc := &pconn{t: t, key: key, conn: conn, addr: ap}
	pc.br = bufio.NewReaderSize(pc, 16<<10)
	pc.bw = bufio.NewWriterSize(conn, 16<<10)
	pc.rd = http1.NewReader(pc.br, t.MaxResponseHeaderSize)
	traceGotConn(ctx, pc, false)
	return pc, false, nil
}

func traceGotConn(ctx context.Context, pc *pconn, reused bool) {
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: pc.conn, Reused: reused})
	}
}

// putIdle returns pc to the pool, or closes it when the pool for its key
// is full or the transport is closed.
func (t *Transport) putIdle(pc *pconn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.idle[pc.key]) >= t.PoolCapacity {
		pc.conn.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[poolKey][]*pconn{}
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	if pc.timer == nil {
		pc.timer = time.AfterFunc(t.IdleTimeout, func() { t.expire(pc) })
	} else {
		pc.timer.Reset(t.IdleTimeout)
	}
}

// expire closes pc if it is still idle.
func (t *Transport) expire(pc *pconn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[pc.key]
	for i, p := range list {
		if p == pc {
			t.idle[pc.key] = append(list[:i], list[i+1:]...)
			pc.conn.Close()
			return
		}
	}
}

// IdleConns returns how many idle connections the pool holds.
func (t *Transport) IdleConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, l := range t.idle {
		n += len(l)
	}
	return n
}

// Close closes every idle connection; connections in use close when their
// exchange ends. It is idempotent.
func (t *Transport) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for k, list := range t.idle {
		for _, pc := range list {
			pc.timer.Stop()
			pc.conn.Close()
		}
		delete(t.idle, k)
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
		pc.conn.SetReadDeadline(time.Now().Add(t.ResponseHeaderTimeout))
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
			<-bodyDone
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
	body := &responseBody{pc: pc, stop: stop, bodyDone: bodyDone, close: resp.Close,
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
	pc.conn.SetWriteDeadline(time.Now().Add(pc.t.RequestBodyIdleTimeout))
	w := http1.NewWriter(pc.bw)
	w.RequestLine(req.Method, req.RequestURI)
	w.Field("Host", req.Host)
	for name, values := range req.Header {
		switch name {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
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
	src := req.Body
	if req.ContentLength > 0 {
		src = io.NopCloser(io.LimitReader(req.Body, req.ContentLength))
	}
	n, err := io.Copy(dst, src)
	if err == nil && req.ContentLength > 0 && n != req.ContentLength {
		err = fmt.Errorf("request body is %d bytes, want %d", n, req.ContentLength)
	}
	if err == nil && cw != nil {
		err = cw.Close()
	}
	if err == nil {
		pc.conn.SetWriteDeadline(time.Now().Add(pc.t.RequestBodyIdleTimeout))
		err = pc.bw.Flush()
	}
	if err != nil {
		// The upstream must not take a truncated body for a whole one.
		pc.conn.Close()
		return fmt.Errorf("write request body: %w", err)
	}
	return nil
}

// deadlineWriter writes to the connection's buffer, renewing the write
// deadline for each write.
type deadlineWriter struct{ pc *pconn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.pc.conn.SetWriteDeadline(time.Now().Add(d.pc.t.RequestBodyIdleTimeout))
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
	trailer  http.Header
	once     sync.Once
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.pc.conn.SetReadDeadline(time.Now().Add(b.pc.t.ResponseBodyIdleTimeout))
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
		reusable := err == nil && !b.close && b.body.Done() && pc.br.Buffered() == 0
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
