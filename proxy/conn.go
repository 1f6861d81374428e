package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"exfilguard/proxy/http1"
	"exfilguard/proxy/pipeline"
	"exfilguard/proxy/proxyproto"
)

// Connection states, for Shutdown: an idle connection (waiting for the
// first byte of a request) may be closed at once; an active one finishes
// its request first.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// conn is one client connection and its HTTP/1.1 request loop: on the
// listener (plain), or inside a bumped CONNECT tunnel, where nc is the
// TLS connection.
type conn struct {
	srv   *Server
	nc    net.Conn
	peer  netip.AddrPort
	state atomic.Int32
	info  *pipeline.ConnInfo
	// outer is the listener's connection when c is the request loop
	// inside a bumped tunnel: c's idle and active states are kept on it,
	// so that Shutdown closes an idle bumped session like an idle plain
	// connection.
	outer *conn
	// inTunnel is set while the connection is a pass-through tunnel, which
	// Shutdown closes at once: it has no request boundary to wait for.
	inTunnel atomic.Bool
	// connectUnanswered is set while a CONNECT counts as a request in
	// flight: from its head until its 200 or refusal is written.
	connectUnanswered bool
	// countedAs is the client address c counts under for
	// max_connections_per_ip, when it does; guarded by srv.mu.
	countedAs netip.Addr

	br *bufio.Reader
	bw *bufio.Writer
	rd *http1.Reader
}

// closeIfIdle closes c if it is waiting for a request, or is a tunnel.
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) || c.inTunnel.Load() {
		c.nc.Close()
	}
}

// serve runs the request loop until the client closes, an error closes
// the connection, or the server shuts down.
func (c *conn) serve(ctx context.Context) {
	defer c.nc.Close()
	c.br = bufio.NewReaderSize(c.nc, 8<<10)
	if !c.readProxyHeader() {
		return
	}
	if c.srv.Config.ProxyProtocol != proxyproto.Off && !c.srv.admitProxied(c) {
		return
	}
	c.info = &pipeline.ConnInfo{Peer: c.peer, SessionID: pipeline.NewSessionID(), FrontEnd: pipeline.Plain}
	c.loop(pipeline.NewContext(ctx, c.info))
}

// readProxyHeader applies the PROXY protocol settings (SPEC §8): from an
// allowed peer, the header's source address becomes the client address.
// It reports whether to serve the connection; a missing (required),
// malformed or late header closes it without a response.
func (c *conn) readProxyHeader() bool {
	cfg := &c.srv.Config
	if cfg.ProxyProtocol == proxyproto.Off {
		return true
	}
	c.nc.SetReadDeadline(time.Now().Add(cfg.RequestHeaderTimeout))
	h, err := proxyproto.Resolve(c.br, cfg.ProxyProtocol, c.peer.Addr(), cfg.ProxyProtocolAllowed)
	c.nc.SetReadDeadline(time.Time{})
	if err != nil {
		var pe *proxyproto.Error
		if errors.Is(err, proxyproto.ErrNoHeader) || errors.Is(err, proxyproto.ErrNotAllowed) || errors.As(err, &pe) {
			c.srv.Log.Warn("PROXY protocol header refused; connection closed", "peer", c.peer.String(), "error", err.Error())
		}
		return false
	}
	client := h.Client(c.peer)
	c.peer = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	return true
}

// loop runs the request loop on c.nc; ctx carries c.info.
func (c *conn) loop(ctx context.Context) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, 8<<10)
	}
	c.bw = bufio.NewWriterSize(c.nc, 8<<10)
	c.rd = http1.NewReader(c.br, c.srv.Config.MaxRequestHeaderSize)
	for {
		if !c.serveOne(ctx) {
			return
		}
	}
}

// serveOne reads and serves one request and reports whether the
// connection may carry another.
func (c *conn) serveOne(ctx context.Context) bool {
	cfg := &c.srv.Config
	// SPEC §5: no first byte within client_keepalive_idle_timeout → close
	// silently. The request clock starts at the first byte.
	state := &c.state
	if c.outer != nil {
		state = &c.outer.state
	}
	state.Store(stateIdle)
	if c.srv.inShutdown.Load() {
		return false
	}
	c.nc.SetReadDeadline(time.Now().Add(cfg.KeepaliveIdleTimeout))
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	if !state.CompareAndSwap(stateIdle, stateActive) {
		return false // closed by Shutdown
	}
	c.nc.SetReadDeadline(time.Now().Add(cfg.RequestHeaderTimeout))
	head, err := c.rd.ReadRequestHead()
	if err != nil {
		c.rejectHead(ctx, err)
		return false
	}
	c.nc.SetReadDeadline(time.Time{})
	method := string(head.Method)

	bumped := c.info.FrontEnd == pipeline.BumpH1
	if method == http.MethodConnect {
		if bumped {
			c.reject(ctx, method, http.StatusBadRequest, pipeline.ReasonInvalidRequest, "CONNECT inside a bumped tunnel")
			return false
		}
		c.serveConnect(ctx, head)
		return false // the connection is a tunnel now, or closed
	}
	target, err := c.requestTarget(head, method)
	if err != nil {
		c.reject(ctx, method, http.StatusBadRequest, pipeline.ReasonInvalidRequest, err.Error())
		return false
	}
	req := c.newRequest(ctx, head, method, target)
	w := &responseWriter{c: c, req: req, header: http.Header{}, closeAfter: head.Close}
	if head.Expect == http1.ExpectContinue {
		req.Body.(*requestBody).continueW = w
	}
	if !c.runHandler(w, req) {
		return false
	}
	if !w.finish() {
		return false
	}
	// Keep the connection only when the request body was read to its end:
	// otherwise its rest would be taken for the next request head.
	body := req.Body.(*requestBody)
	return !w.closeAfter && body.body.Done() && !c.srv.inShutdown.Load()
}

// requestTarget checks the request form. SPEC §5: the listener takes
// absolute-form only (origin-form means the client does not know it talks
// to a proxy); inside a bumped tunnel only origin-form (RFC 9112 §3.2.1)
// with a Host field, whose value the pipeline compares with the CONNECT.
func (c *conn) requestTarget(head *http1.RequestHead, method string) (http1.Target, error) {
	if c.info.FrontEnd != pipeline.BumpH1 {
		return http1.ParseAbsoluteForm(method, string(head.Target))
	}
	target := string(head.Target)
	if !strings.HasPrefix(target, "/") && !(target == "*" && method == http.MethodOptions) {
		return http1.Target{}, errors.New("request inside a bumped tunnel is not in origin-form")
	}
	if !head.HasHost {
		return http1.Target{}, errors.New("request inside a bumped tunnel has no Host")
	}
	return http1.Target{Scheme: "https", Authority: string(head.Host), PathQuery: target}, nil
}

// runHandler calls the pipeline and reports whether the response may be
// finished; an aborted handler (http.ErrAbortHandler) closes the
// connection without another byte (SPEC §5).
func (c *conn) runHandler(w *responseWriter, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.srv.Log.Error("panic serving request", "panic", fmt.Sprint(v))
			}
			ok = false
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return true
}

// rejectHead answers a head that could not be read: 408 for a head that
// timed out after its first byte, the parser's status for a malformed or
// oversized one, nothing for a connection closed mid-head.
func (c *conn) rejectHead(ctx context.Context, err error) {
	var he *http1.Error
	switch {
	case errors.As(err, &he):
		c.reject(ctx, "", he.Status, pipeline.ReasonInvalidRequest, he.Reason)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.reject(ctx, "", http.StatusRequestTimeout, pipeline.ReasonRequestTimeout, "request head not complete within request_header_timeout")
	default:
		c.srv.Handler.RecordRejected(ctx, "", 0, pipeline.ReasonInvalidRequest, "read request head: "+err.Error())
	}
}

// reject writes one of the proxy's fixed error responses and its record.
func (c *conn) reject(ctx context.Context, method string, status int, reason, detail string) {
	c.srv.Handler.RecordRejected(ctx, method, status, reason, detail)
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.Config.ResponseBodyIdleTimeout))
	http1.WriteResponse(c.bw, status, "", http1.DefaultMessage(status))
	c.bw.Flush()
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// newRequest turns a head into the http.Request the pipeline sees:
// RequestURI is the origin-form target to forward, Host and URL.Host the
// authority as the client wrote it.
func (c *conn) newRequest(ctx context.Context, head *http1.RequestHead, method string, t http1.Target) *http.Request {
	h := make(http.Header, len(head.Fields))
	for _, f := range head.Fields {
		k := http.CanonicalHeaderKey(string(f.Name))
		h[k] = append(h[k], string(f.Value))
	}
	// RFC 9112 §3.2.2: with an absolute-form target the Host field is
	// ignored; the target's authority is the one judged and forwarded.
	delete(h, "Host")
	req := &http.Request{
		Method:     method,
		URL:        &url.URL{Scheme: t.Scheme, Host: t.Authority},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       t.Authority,
		RequestURI: t.PathQuery,
		RemoteAddr: c.peer.String(),
		Close:      head.Close,
	}
	framing := head.Framing()
	switch framing {
	case http1.BodyLength:
		req.ContentLength = head.ContentLength
	case http1.BodyChunked:
		req.ContentLength = -1
	}
	rb := &requestBody{c: c, body: c.rd.Body(framing, head.ContentLength, 0)}
	if framing == http1.BodyNone {
		rb.empty = true
	}
	req.Body = rb
	return req.WithContext(ctx)
}

// requestBody reads the client's request body with the body idle timeout,
// answering 100 Continue first when the client waits for it (SPEC §5: only
// once the request is allowed and the upstream connected, which is when
// the transport starts reading the body).
type requestBody struct {
	c         *conn
	body      *http1.Body
	empty     bool
	continueW *responseWriter // set while a 100 Continue is owed
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.empty {
		return 0, io.EOF
	}
	if w := b.continueW; w != nil {
		b.continueW = nil
		if !w.wroteHeader {
			w.writeInterim(http.StatusContinue, nil)
		}
	}
	b.c.nc.SetReadDeadline(time.Now().Add(b.c.srv.Config.RequestBodyIdleTimeout))
	return b.body.Read(p)
}

func (b *requestBody) Close() error { return nil }

// responseWriter writes the pipeline's response to an HTTP/1.1 client.
// The body is framed by Content-Length when the handler sets it, else
// until close when the handler sets Connection: close, else chunked.
type responseWriter struct {
	c      *conn
	req    *http.Request
	header http.Header

	wroteHeader bool
	closeAfter  bool // the connection ends after this response
	bodyless    bool // HEAD, 204 or 304
	length      int64
	written     int64
	chunked     *http1.ChunkedWriter
	err         error // sticky write error
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sends the head with the standard reason phrase; 1xx codes
// are sent at once as interim responses.
func (w *responseWriter) WriteHeader(code int) {
	w.WriteHeaderReason(code, http1.ReasonPhrase(code))
}

// WriteHeaderReason implements pipeline.ReasonWriter.
func (w *responseWriter) WriteHeaderReason(code int, reason string) {
	if w.wroteHeader {
		return
	}
	if code >= 100 && code < 200 {
		w.writeInterim(code, w.header)
		return
	}
	w.wroteHeader = true
	h := w.header
	hw := http1.NewWriter(w.c.bw)
	hw.StatusLine(code, reason)
	w.bodyless = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	w.length = -1
	if v := h.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.length = n
		}
	}
	for _, v := range h["Connection"] {
		if strings.EqualFold(strings.TrimSpace(v), "close") {
			w.closeAfter = true
		}
	}
	if w.c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	writeFields(hw, h)
	switch {
	case w.length >= 0:
		hw.ContentLength(w.length)
	case w.bodyless:
	default:
		// Chunked even when the connection closes afterwards (an upstream
		// body delimited by its close): a response cut off by an abort
		// then lacks its last chunk, which the client can detect, where
		// a close-delimited one would look complete (RFC 9112 §6.3).
		hw.Field("Transfer-Encoding", "chunked")
		w.chunked = http1.NewChunkedWriter(w.c.bw)
	}
	if w.closeAfter {
		hw.Field("Connection", "close")
	}
	w.setErr(hw.EndHead())
}

// writeInterim sends a 1xx response (RFC 9110 §15.2).
func (w *responseWriter) writeInterim(code int, h http.Header) {
	hw := http1.NewWriter(w.c.bw)
	hw.StatusLine(code, http1.ReasonPhrase(code))
	writeFields(hw, h)
	w.setErr(hw.EndHead())
	w.Flush()
}

// writeFields writes h in name order (a map has none), leaving out the
// fields the writer frames itself.
func writeFields(hw *http1.Writer, h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range h[k] {
			hw.Field(k, v)
		}
	}
}

func (w *responseWriter) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.bodyless {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		w.setErr(http.ErrContentLength)
		return 0, w.err
	}
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.srv.Config.ResponseBodyIdleTimeout))
	var n int
	var err error
	if w.chunked != nil {
		n, err = w.chunked.Write(p)
	} else {
		n, err = w.c.bw.Write(p)
	}
	w.written += int64(n)
	w.setErr(err)
	return n, err
}

// Flush sends what is buffered to the client.
func (w *responseWriter) Flush() {
	w.c.nc.SetWriteDeadline(time.Now().Add(w.c.srv.Config.ResponseBodyIdleTimeout))
	w.setErr(w.c.bw.Flush())
}

// finish completes the response (the last chunk and trailers, or checks
// the length) and reports whether the connection is still usable.
func (w *responseWriter) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked != nil && w.err == nil {
		var trailers http1.Fields
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					trailers = append(trailers, http1.Field{Name: []byte(name), Value: []byte(v)})
				}
			}
		}
		w.setErr(w.chunked.CloseWithTrailers(trailers))
	}
	if w.length >= 0 && !w.bodyless && w.written != w.length {
		w.setErr(http.ErrContentLength)
	}
	w.Flush()
	return w.err == nil
}
