package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"exfilguard/policy"
	"exfilguard/proxy/metrics"
)

// Upstream carries allowed requests to their origin servers.
type Upstream interface {
	// RoundTrip sends req to target and returns the response, its body
	// streaming. req.RequestURI is the raw origin-form target to send
	// (never re-encoded), req.Host the authority exactly as the client
	// wrote it, req.Header the headers to send (hop-by-hop ones already
	// removed). Errors that should produce a particular status implement
	// StatusError; errors with Timeout() true produce 504.
	RoundTrip(req *http.Request, target Target) (*http.Response, error)
}

// Target is where an allowed request goes and what it may reach.
type Target struct {
	Scheme string // "http" or "https"
	Host   string // lower case, IPv6 without brackets
	Port   uint16
	// AllowPrivate is the deciding rule's allow_private_upstream.
	AllowPrivate bool
	// Addrs, when set, are the only addresses to connect to: inside a
	// bumped tunnel, those its CONNECT resolved and vetted.
	Addrs []netip.Addr
}

// StatusError is implemented by upstream errors that set the response
// status and the decision record's reason word.
type StatusError interface {
	error
	Status() int
	Reason() string
}

// ReasonWriter is implemented by HTTP/1.1 response writers, which can send
// a reason phrase (HTTP/2 has none, RFC 9113 §8.3.2).
type ReasonWriter interface {
	WriteHeaderReason(code int, reason string)
}

// Handler is the request pipeline: an http.Handler that every front end
// calls for each request. A Handler must not be copied after first use.
type Handler struct {
	// Policies is the current policy snapshot; reload stores a new one.
	Policies *atomic.Pointer[policy.Ruleset]
	// Upstream forwards allowed requests.
	Upstream Upstream
	// Log receives one decision record per request.
	Log *slog.Logger
	// LogQueries includes query strings in logged paths.
	LogQueries bool
	// MaxRequestBodySize bounds request bodies; zero means no limit.
	MaxRequestBodySize int64
	// RequestTotalTimeout bounds an exchange from decision to the last
	// response byte; zero means no limit.
	RequestTotalTimeout time.Duration
	// Metrics counts every decision record; nil means none.
	Metrics *metrics.Set
}

// Reason words of decision records beyond policy's (SPEC §8).
const (
	ReasonInvalidRequest    = "invalid_request"
	ReasonMisdirected       = "misdirected"
	ReasonExpectation       = "expectation_failed"
	ReasonUpgrade           = "upgrade_unsupported"
	ReasonBodyTooLarge      = "body_too_large"
	ReasonPrivateAddress    = "private_address"
	ReasonUpstreamTimeout   = "upstream_timeout"
	ReasonUpstreamFailed    = "upstream_failed"
	ReasonRequestTimeout    = "request_timeout"
	ReasonClientGone        = "client_gone"
	ReasonResponseTruncated = "response_truncated"
)

// Fixed bodies of the proxy's own responses (reference §4.6). They never
// contain request bytes: the detail goes to the log.
const (
	BodyInvalidTarget  = "invalid request target\r\n"
	BodyExpectation    = "expectation failed\r\n"
	BodyTooLarge       = "request body exceeds configured limit\r\n"
	BodyBlocked        = policy.DefaultDenyBody
	BodyMisdirected    = "misdirected request\r\n"
	BodyUpstreamFailed = "upstream request failed\r\n"
	BodyTimedOut       = "request timed out\r\n"
	BodyUpgrade        = "protocol upgrades are not supported\r\n"
)

// errBodyTooLarge is returned by request body reads past
// MaxRequestBodySize.
var errBodyTooLarge = errors.New("request body exceeds max_request_body_size")

// copyBufPool holds the buffers that response bodies are relayed through.
var copyBufPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// exchange is one request going through the pipeline and what its
// decision record will say.
type exchange struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	info  *ConnInfo
	start time.Time

	preq     policy.Request
	decision policy.Decision
	decided  bool
	action   string // ALLOW, DENY or ERROR
	status   int
	reason   string
	detail   string
	bodyIn   countingReader
	bytesOut int64
	upstream string // ip:port of the upstream connection
	reused   bool
	headSent bool
}

// ServeHTTP runs one request through the pipeline.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := FromContext(r.Context())
	if info == nil {
		panic("pipeline: internal error: request without ConnInfo")
	}
	ex := &exchange{h: h, w: w, r: r, info: info, start: time.Now()}
	if m := h.Metrics; m != nil {
		mode := metricsMode(info.FrontEnd)
		m.RequestStarted(mode)
		defer m.RequestDone(mode)
	}
	// The record is written even when forwarding aborts the response
	// (panic(http.ErrAbortHandler)), so that nothing goes unlogged.
	defer ex.record()
	ex.serve()
}

func (ex *exchange) serve() {
	r := ex.r
	ex.preq.Client = ex.info.Peer.Addr()
	ex.preq.Method = r.Method
	// The target comes first so that every refusal's record names it.
	if !ex.canonicalize() {
		return
	}
	// RFC 9110 §7.8: Upgrade (WebSocket, h2c) is out of scope (SPEC §10);
	// refuse rather than half-support it.
	if len(r.Header.Values("Upgrade")) > 0 {
		ex.fail(http.StatusBadRequest, "", BodyUpgrade, ReasonUpgrade, "Upgrade header")
		return
	}
	// RFC 9110 §10.1.1: the only expectation defined is 100-continue.
	if exp := r.Header.Values("Expect"); len(exp) > 1 || len(exp) == 1 && !strings.EqualFold(exp[0], "100-continue") {
		ex.fail(http.StatusExpectationFailed, "", BodyExpectation, ReasonExpectation, "unsupported Expect")
		return
	}
	rs := ex.h.Policies.Load()
	if rs == nil {
		panic("pipeline: internal error: nil ruleset")
	}
	ex.decision = rs.Decide(&ex.preq)
	ex.decided = true
	d := &ex.decision
	if d.Action != policy.Allow {
		ex.action = "DENY"
		ex.reason = string(d.Reason)
		ex.respond(d.Status, d.Phrase, d.Body)
		return
	}
	ex.action = "ALLOW"
	ex.reason = string(d.Reason)
	if max := ex.h.MaxRequestBodySize; max > 0 && r.ContentLength > max {
		// A fixed length is refused before the upstream is contacted.
		ex.fail(http.StatusRequestEntityTooLarge, "", BodyTooLarge, ReasonBodyTooLarge, "Content-Length over max_request_body_size")
		ex.action = "DENY"
		return
	}
	ex.forward()
}

// canonicalize fills ex.preq's scheme, host, port and canonical path
// (SPEC §4), answering 400 or 421 when that is impossible.
func (ex *exchange) canonicalize() bool {
	r, info := ex.r, ex.info
	scheme := "https"
	if info.FrontEnd == Plain {
		scheme = r.URL.Scheme
	}
	def := uint16(443)
	if scheme == "http" {
		def = 80
	}
	host, port, err := policy.ParseAuthority(r.Host, false)
	if err != nil {
		ex.fail(http.StatusBadRequest, "", BodyInvalidTarget, ReasonInvalidRequest, "authority: "+err.Error())
		return false
	}
	if port == 0 {
		port = def
	}
	// One trailing dot names the same host (RFC 1034 §3.1); without it the
	// pool key, the SNI and the CONNECT comparison use one spelling.
	host = strings.TrimSuffix(host, ".")
	ex.preq.Scheme, ex.preq.Host, ex.preq.Port = scheme, host, port
	if info.FrontEnd == BumpH1 || info.FrontEnd == BumpH2 {
		// RFC 9110 §7.4 / RFC 9113 §8.1.1: a request for an authority the
		// connection is not for is misdirected. Inside a bumped tunnel it
		// would also bypass the CONNECT decision (domain fronting).
		if host != strings.TrimSuffix(info.ConnectHost, ".") || port != info.ConnectPort {
			ex.fail(http.StatusMisdirectedRequest, "", BodyMisdirected, ReasonMisdirected, "authority differs from the CONNECT target")
			return false
		}
	}
	path, err := policy.CanonicalPath(r.RequestURI)
	if err != nil {
		ex.fail(http.StatusBadRequest, "", BodyInvalidTarget, ReasonInvalidRequest, err.Error())
		return false
	}
	ex.preq.Path = path
	return true
}

// fail answers with one of the proxy's own errors.
func (ex *exchange) fail(status int, phrase, body, reason, detail string) {
	ex.action = "ERROR"
	ex.reason = reason
	ex.detail = detail
	ex.respond(status, phrase, body)
}

// respond writes a proxy-generated response: fixed text, its length, and
// (on HTTP/1.1) Connection: close.
func (ex *exchange) respond(status int, phrase, body string) {
	if phrase == "" {
		phrase = policy.StatusPhrase(status)
	}
	h := ex.w.Header()
	clear(h)
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if ex.info.FrontEnd != BumpH2 {
		h["Connection"] = []string{"close"}
	}
	ex.writeHeader(status, phrase)
	n, _ := io.WriteString(ex.w, body)
	ex.bytesOut += int64(n)
}

func (ex *exchange) writeHeader(status int, phrase string) {
	ex.status = status
	ex.headSent = true
	if rw, ok := ex.w.(ReasonWriter); ok {
		rw.WriteHeaderReason(status, phrase)
		return
	}
	ex.w.WriteHeader(status)
}

// forward sends an allowed request upstream and relays the response.
func (ex *exchange) forward() {
	r := ex.r
	ctx := r.Context()
	if ex.h.RequestTotalTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ex.h.RequestTotalTimeout)
		defer cancel()
	}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(ci httptrace.GotConnInfo) {
			if ap, err := netip.ParseAddrPort(ci.Conn.RemoteAddr().String()); err == nil {
				ex.upstream = ap.String()
			}
			ex.reused = ci.Reused
		},
		Got1xxResponse: ex.relayInterim,
	})
	out := r.Clone(ctx)
	out.Header = forwardHeaders(r.Header)
	if r.ContentLength == 0 && len(r.Header["Content-Length"]) > 0 {
		// SPEC §5: a client's Content-Length: 0 is forwarded (the
		// transport writes the framing fields itself).
		out.Header["Content-Length"] = []string{"0"}
	}
	ex.bodyIn.r, ex.bodyIn.limit = r.Body, ex.h.MaxRequestBodySize
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = &ex.bodyIn
	}
	resp, err := ex.h.Upstream.RoundTrip(out, Target{
		Scheme: ex.preq.Scheme, Host: ex.preq.Host, Port: ex.preq.Port,
		AllowPrivate: ex.decision.AllowPrivate,
		Addrs:        ex.info.ConnectAddrs,
	})
	if err != nil {
		ex.upstreamError(ctx, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// SPEC §5: an upstream 101 is refused; nothing was relayed yet.
		ex.fail(http.StatusBadGateway, "", BodyUpstreamFailed, ReasonUpstreamFailed, "upstream answered 101 Switching Protocols")
		return
	}
	h := ex.w.Header()
	clear(h)
	copyResponseHeaders(h, resp.Header)
	if resp.ContentLength >= 0 && !bodyless(r.Method, resp.StatusCode) || r.Method == http.MethodHead && resp.Header.Get("Content-Length") != "" {
		h["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	if resp.Close && resp.ContentLength < 0 && ex.info.FrontEnd != BumpH2 {
		// A close-delimited body can only be relayed close-delimited.
		h["Connection"] = []string{"close"}
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	ex.writeHeader(resp.StatusCode, strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))))
	if err := ex.relayBody(resp.Body); err != nil {
		// SPEC §5: once a head is relayed, a failure closes the
		// connection; no bytes are appended.
		var cw clientWriteError
		switch ex.reason = contextReason(ctx); {
		case ex.reason != "":
		case errors.As(err, &cw):
			ex.reason = ReasonClientGone
		default:
			ex.reason = ReasonResponseTruncated
		}
		ex.detail = err.Error()
		panic(http.ErrAbortHandler)
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
}

// relayInterim relays an upstream 1xx (other than 101) to the client
// (RFC 9110 §15.2).
func (ex *exchange) relayInterim(code int, header textproto.MIMEHeader) error {
	if code == http.StatusSwitchingProtocols {
		return errors.New("upstream sent 101 Switching Protocols")
	}
	h := ex.w.Header()
	clear(h)
	copyResponseHeaders(h, http.Header(header))
	ex.w.WriteHeader(code)
	clear(h)
	return nil
}

// relayBody copies the response body to the client, flushing as it goes
// so that streamed responses are not held back.
func (ex *exchange) relayBody(body io.Reader) error {
	buf := copyBufPool.Get().(*[32 << 10]byte)
	defer copyBufPool.Put(buf)
	flusher, _ := ex.w.(http.Flusher)
	for {
		n, rerr := body.Read(buf[:])
		if n > 0 {
			m, werr := ex.w.Write(buf[:n])
			ex.bytesOut += int64(m)
			if werr != nil {
				return clientWriteError{werr}
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read response body: %w", rerr)
		}
	}
}

// contextReason says why an exchange's context ended, "" while it has
// not: request_total_timeout is its only deadline, so a deadline is a
// request_timeout; a cancel means the client reset its HTTP/2 stream or
// went away, or Shutdown closed its connection, and is client_gone.
func contextReason(ctx context.Context) string {
	switch err := ctx.Err(); {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonRequestTimeout
	}
	return ReasonClientGone
}

// clientWriteError is a response body relay that failed on the client's
// side: the client went away, not the upstream.
type clientWriteError struct{ err error }

func (e clientWriteError) Error() string { return "write response body: " + e.err.Error() }
func (e clientWriteError) Unwrap() error { return e.err }

// upstreamError answers a failed RoundTrip: nothing was relayed yet.
func (ex *exchange) upstreamError(ctx context.Context, err error) {
	ex.detail = err.Error()
	var hs interface{ TLSHandshake() bool }
	if m := ex.h.Metrics; m != nil && errors.As(err, &hs) && hs.TLSHandshake() {
		m.TLSHandshakeFailure(metrics.SideUpstream)
	}
	var se StatusError
	var ne net.Error
	switch {
	case errors.Is(err, errBodyTooLarge):
		ex.fail(http.StatusRequestEntityTooLarge, "", BodyTooLarge, ReasonBodyTooLarge, err.Error())
		ex.action = "DENY"
	case errors.As(err, &se):
		body := BodyUpstreamFailed
		switch se.Status() {
		case http.StatusBadRequest:
			body = BodyInvalidTarget
		case http.StatusForbidden:
			body = BodyBlocked
		case http.StatusGatewayTimeout:
			body = BodyTimedOut
		}
		ex.fail(se.Status(), "", body, se.Reason(), err.Error())
		if se.Status() == http.StatusForbidden {
			ex.action = "DENY"
		}
	case contextReason(ctx) == ReasonRequestTimeout:
		ex.fail(http.StatusGatewayTimeout, "", BodyTimedOut, ReasonRequestTimeout, err.Error())
	case contextReason(ctx) == ReasonClientGone:
		ex.fail(http.StatusBadGateway, "", BodyUpstreamFailed, ReasonClientGone, err.Error())
	case errors.As(err, &ne) && ne.Timeout():
		ex.fail(http.StatusGatewayTimeout, "", BodyTimedOut, ReasonUpstreamTimeout, err.Error())
	default:
		ex.fail(http.StatusBadGateway, "", BodyUpstreamFailed, ReasonUpstreamFailed, err.Error())
	}
}

// bodyless reports whether a response has no body whatever its headers
// say (RFC 9112 §6.3).
func bodyless(method string, status int) bool {
	return method == http.MethodHead || status/100 == 1 || status == http.StatusNoContent || status == http.StatusNotModified
}

// countingReader counts request body bytes and enforces the body limit.
// n is atomic: the transport may still be reading the body on its own
// goroutine when the record is written.
type countingReader struct {
	r     io.Reader
	n     atomic.Int64
	limit int64 // 0 = none
}

// Read never hands on the bytes that pass the limit.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	total := c.n.Add(int64(n))
	if c.limit > 0 && total > c.limit {
		return 0, errBodyTooLarge
	}
	return n, err
}

func (c *countingReader) Close() error {
	if rc, ok := c.r.(io.Closer); ok {
		return rc.Close()
	}
	return nil
}
