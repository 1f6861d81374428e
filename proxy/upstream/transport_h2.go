package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"exfilguard/proxy/http1"
)

// h2conn is an upstream HTTP/2 connection, shared by the streams of every
// request for its pool key (SPEC §5: "h2 upstream connections are shared
// by streams to the same key"). x/net/http2's ClientConn runs the
// connection; the Transport decides which requests use it and when it
// closes.
type h2conn struct {
	t    *Transport
	key  poolKey
	cc   *http2.ClientConn
	conn *tls.Conn // for httptrace.GotConnInfo
	addr netip.AddrPort

	// The fields below are guarded by t.mu.
	active  int         // streams reserved or open and not yet finished
	used    bool        // a stream was opened before: Reused for GotConn
	pooled  bool        // in t.h2conns
	idleGen uint64      // bumped whenever an idle timer armed earlier must not fire
	timer   *time.Timer // closes the connection idle for IdleTimeout
}

// Causes of a stream's context cancellation, told apart from the
// request's own context ending.
var (
	errHeaderTimeout = errors.New("no response head within response_header_timeout")
	errBodyIdle      = errors.New("no response body bytes within response_body_idle_timeout")
)

// h2Transport returns the http2.Transport that runs the ClientConns; dial
// makes the TLS connections, so it never dials.
func (t *Transport) h2Transport() *http2.Transport {
	t.h2once.Do(func() {
		limit := t.MaxResponseHeaderSize
		if limit <= 0 {
			limit = http1.DefaultMaxHeadSize
		}
		t.h2t = &http2.Transport{
			// The proxy relays what the origin sends: it adds no
			// Accept-Encoding and does not decompress.
			DisableCompression: true,
			MaxHeaderListSize:  uint32(limit),
			// A connection that takes no bytes for this long is closed,
			// with its streams: HTTP/2's counterpart of the per-write
			// request body timeout on an HTTP/1.1 connection.
			WriteByteTimeout: t.RequestBodyIdleTimeout,
			// No IdleConnTimeout: the Transport closes idle connections
			// itself (streamDone, expireH2), so that none closes between
			// being chosen for a request and the request's stream.
		}
	})
	return t.h2t
}

// newH2Conn starts HTTP/2 on conn, whose origin picked h2, shares it under
// key, and reserves its first stream for the caller.
func (t *Transport) newH2Conn(ctx context.Context, key poolKey, conn *tls.Conn, addr netip.AddrPort) (*h2conn, error) {
	cc, err := t.h2Transport().NewClientConn(conn)
	if err != nil {
		conn.Close()
		return nil, &Error{Op: "start http2", Kind: KindConnect, Host: key.host, Addr: addr, Err: err}
	}
	if !cc.ReserveNewRequest() {
		cc.Close()
		return nil, &Error{Op: "start http2", Kind: KindConnect, Host: key.host, Addr: addr, Err: errors.New("new connection takes no stream")}
	}
	hc := &h2conn{t: t, key: key, cc: cc, conn: conn, addr: addr, active: 1, used: true}
	t.mu.Lock()
	if !t.closed {
		if t.h2conns == nil {
			t.h2conns = map[poolKey][]*h2conn{}
		}
		t.h2conns[key] = append(t.h2conns[key], hc)
		hc.pooled = true
	}
	t.mu.Unlock()
	traceGotConn(ctx, conn, false)
	return hc, nil
}

// reserveH2Locked reserves a stream on a shared connection for key whose
// address is pinned. reused says whether the connection had streams
// before. Connections without streams that take no new ones (closed, or
// going away) leave the map and are returned in dead, for the caller to
// close once t.mu is released.
func (t *Transport) reserveH2Locked(key poolKey, addrs []netip.Addr) (hc *h2conn, reused bool, dead []*h2conn) {
	list := t.h2conns[key]
	for i := 0; i < len(list); {
		c := list[i]
		// CanTakeNewRequest and ReserveNewRequest take only the
		// ClientConn's state lock, never one held across network I/O
		// (State does), so they may run under t.mu.
		if c.active == 0 && !c.cc.CanTakeNewRequest() {
			list = append(list[:i], list[i+1:]...)
			c.pooled = false
			c.idleGen++
			t.nidle--
			dead = append(dead, c)
			continue
		}
		if pinned(c.addr, addrs) && c.cc.ReserveNewRequest() {
			hc = c
			break
		}
		i++
	}
	if len(list) == 0 {
		delete(t.h2conns, key)
	} else {
		t.h2conns[key] = list
	}
	if hc == nil {
		return nil, false, dead
	}
	if hc.active == 0 {
		t.nidle--
	}
	hc.active++
	hc.idleGen++
	if hc.timer != nil {
		hc.timer.Stop()
	}
	reused, hc.used = hc.used, true
	return hc, reused, dead
}

// closeH2 closes connections that have left the map.
func closeH2(list []*h2conn) {
	for _, hc := range list {
		hc.cc.Close()
	}
}

// streamDone ends a stream reserved by reserveH2Locked or newH2Conn. The
// connection closes when it has no streams left and is no longer shared
// or takes no new streams; else it waits IdleTimeout for one.
func (t *Transport) streamDone(hc *h2conn) {
	t.mu.Lock()
	hc.active--
	if hc.active > 0 {
		t.mu.Unlock()
		return
	}
	if hc.pooled && hc.cc.CanTakeNewRequest() && !t.idleFullLocked() {
		t.nidle++
		if d := t.IdleTimeout; d > 0 {
			hc.idleGen++
			gen := hc.idleGen
			hc.timer = time.AfterFunc(d, func() { t.expireH2(hc, gen) })
		}
		t.mu.Unlock()
		return
	}
	t.removeH2Locked(hc)
	t.mu.Unlock()
	hc.cc.Close()
}

// expireH2 closes hc if it is still idle since the timer of generation
// gen was armed.
func (t *Transport) expireH2(hc *h2conn, gen uint64) {
	t.mu.Lock()
	if hc.idleGen != gen || hc.active > 0 || !hc.pooled {
		t.mu.Unlock()
		return
	}
	t.nidle--
	t.removeH2Locked(hc)
	t.mu.Unlock()
	hc.cc.Close()
}

// removeH2Locked takes hc out of the map.
func (t *Transport) removeH2Locked(hc *h2conn) {
	if !hc.pooled {
		return
	}
	hc.pooled = false
	hc.idleGen++
	list := t.h2conns[hc.key]
	for i, c := range list {
		if c == hc {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.h2conns, hc.key)
	} else {
		t.h2conns[hc.key] = list
	}
}

// roundTrip runs one request on a stream of hc reserved for it.
func (hc *h2conn) roundTrip(req *http.Request, reused bool) (*http.Response, error) {
	t := hc.t
	ctx, cancel := context.WithCancelCause(req.Context())
	// ClientConn has no response header timeout of its own (the
	// http2.Transport takes it from a net/http Transport): the timer
	// cancels the stream, which sends RST_STREAM and ends RoundTrip.
	var timer *time.Timer
	if d := t.ResponseHeaderTimeout; d > 0 {
		timer = time.AfterFunc(d, func() { cancel(errHeaderTimeout) })
	}
	resp, err := hc.cc.RoundTrip(h2Request(ctx, req))
	timedOut := timer != nil && !timer.Stop()
	if err == nil && timedOut {
		// The head arrived as the timer fired: the stream is canceled.
		resp.Body.Close()
		err = errHeaderTimeout
	}
	if err != nil {
		cancel(nil)
		t.streamDone(hc)
		return nil, hc.roundTripError(req.Context(), err, timedOut, reused)
	}
	body := &h2Body{hc: hc, body: resp.Body, ctx: ctx, parent: req.Context(), cancel: cancel}
	if d := t.ResponseBodyIdleTimeout; d > 0 {
		body.timer = time.AfterFunc(d, func() { cancel(errBodyIdle) })
		body.timer.Stop() // each Read arms it
	}
	resp.Body = body
	resp.Request = req
	return resp, nil
}

// roundTripError maps a failed stream to the error kinds: a timeout is
// KindTimeout (504), the request's own end says so, a reused connection
// that died is errStale (retried for a request without a body), anything
// else is a plain error (502).
func (hc *h2conn) roundTripError(ctx context.Context, err error, timedOut, reused bool) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: http2 round trip: %w", ctx.Err(), err)
	case timedOut:
		// As on HTTP/1.1, where the connection is closed: a connection
		// that leaves a stream without an answer takes no new ones.
		hc.cc.SetDoNotReuse()
		return &Error{Op: "read response head", Kind: KindTimeout, Host: hc.key.host, Addr: hc.addr, Err: err}
	case reused && hc.unprocessed(err):
		return fmt.Errorf("%w: http2: %w", errStale, err)
	}
	return fmt.Errorf("http2 round trip: %w", err)
}

// unprocessed reports whether a stream failed because the connection was
// closed or going away, or because the server refused it (RFC 9113 §8.7:
// REFUSED_STREAM means nothing was processed): the HTTP/2 counterpart of
// an idle HTTP/1.1 connection closed by the upstream. No response head
// had arrived.
func (hc *h2conn) unprocessed(err error) bool {
	if se, ok := errors.AsType[http2.StreamError](err); ok && se.Code == http2.ErrCodeRefusedStream {
		return true
	}
	st := hc.cc.State()
	return st.Closed || st.Closing
}

// h2Request returns the request x/net/http2 sends for req, bound to ctx.
//
// :path must be req.RequestURI unchanged. http2 sends URL.RequestURI(),
// which for an Opaque URL is Opaque, "?" and RawQuery as they are, with no
// escaping or cleaning; an Opaque that starts with "//" would be taken for
// a network path, so it is written with the authority, which http2 strips
// again ("https://" + :authority is cut from a :path that does not start
// with "/"). :authority is req.Host.
func h2Request(ctx context.Context, req *http.Request) *http.Request {
	path, query, hasQuery := strings.Cut(req.RequestURI, "?")
	u := &url.URL{Scheme: "https", Host: req.Host, Opaque: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	if strings.HasPrefix(path, "//") {
		u.Opaque = "//" + req.Host + path
	}
	out := &http.Request{
		Method:     req.Method,
		URL:        u,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     h2Header(req.Header),
		Host:       req.Host,
	}
	if hasBody(req) {
		// -1: DATA frames until the body's EOF, else exactly this many
		// bytes (http2 resets the stream on a mismatch).
		out.Body = req.Body
		out.ContentLength = req.ContentLength
	}
	return out.WithContext(ctx)
}

// h2Header returns the fields of h that HTTP/2 may carry. RFC 9113
// §8.2.2: connection-specific fields are not sent (http2 refuses most of
// them), and TE only as "trailers". Host travels as :authority and
// Content-Length is set from the body's length.
func h2Header(h http.Header) http.Header {
	out := make(http.Header, len(h)+1)
	for k, vs := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Host", "Content-Length":
			continue
		case "Te":
			if len(vs) == 1 && strings.EqualFold(strings.TrimSpace(vs[0]), "trailers") {
				out[k] = []string{"trailers"}
			}
			continue
		}
		out[k] = vs
	}
	if _, ok := out["User-Agent"]; !ok {
		// An empty User-Agent entry keeps http2 from adding its own:
		// the proxy forwards what the client sent, and nothing else.
		out["User-Agent"] = nil
	}
	return out
}

// h2Body is a response body read from an HTTP/2 stream, each read bounded
// by ResponseBodyIdleTimeout. Its end (EOF, error or Close) ends the
// stream for the connection's accounting.
type h2Body struct {
	hc     *h2conn
	body   io.ReadCloser
	ctx    context.Context // the stream's
	parent context.Context // the request's
	cancel context.CancelCauseFunc
	timer  *time.Timer // cancels ctx with errBodyIdle; nil for no limit
	once   sync.Once
}

func (b *h2Body) Read(p []byte) (int, error) {
	if b.timer != nil {
		b.timer.Reset(b.hc.t.ResponseBodyIdleTimeout)
	}
	n, err := b.body.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if err != nil {
		if err != io.EOF && b.parent.Err() == nil && context.Cause(b.ctx) == errBodyIdle {
			b.hc.cc.SetDoNotReuse()
			err = &Error{Op: "read response body", Kind: KindTimeout, Host: b.hc.key.host, Addr: b.hc.addr, Err: err}
		}
		b.finish()
	}
	return n, err
}

// Close ends the stream; one not read to its end is reset.
func (b *h2Body) Close() error {
	err := b.body.Close()
	b.finish()
	return err
}

func (b *h2Body) finish() {
	b.once.Do(func() {
		if b.timer != nil {
			b.timer.Stop()
		}
		b.cancel(nil)
		b.hc.t.streamDone(b.hc)
	})
}
