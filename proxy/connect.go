package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"exfilguard/policy"
	"exfilguard/proxy/http1"
	"exfilguard/proxy/metrics"
	"exfilguard/proxy/pipeline"
	"exfilguard/proxy/tlshello"
	"exfilguard/proxy/upstream"
)

// Reason words of CONNECT records beyond the pipeline's.
const (
	reasonSNIMismatch  = "sni_mismatch"
	reasonTLSHandshake = "tls_handshake_failed"
	reasonTLSMalformed = "tls_malformed"
	reasonIdle         = "tunnel_idle"
	reasonLifetime     = "tunnel_max_lifetime"
)

// maxHelloPeek bounds the bytes read while looking for the ClientHello's
// server name: a TLS record carries at most 16 KiB (RFC 8446 §5.1), and a
// hello larger than one record is rare.
const maxHelloPeek = 16<<10 + 5 + 1024

// serveConnect handles a CONNECT (SPEC §5 "CONNECT"): it decides through
// the pipeline, resolves and vets the target, and then tunnels or bumps.
// The connection never returns to the request loop.
func (c *conn) serveConnect(ctx context.Context, head *http1.RequestHead) {
	h := c.srv.Handler
	rec := &pipeline.ConnectRecord{Start: time.Now()}
	defer func() { h.RecordConnect(ctx, rec) }()
	// A CONNECT is a request in flight until it is answered; after its
	// 200 it is an open tunnel (exfilguard_open_tunnels) instead.
	if m := c.srv.metrics; m != nil {
		m.RequestStarted(metrics.ModeTunnel)
		c.connectUnanswered = true
		defer c.connectAnswered()
	}

	// RFC 9110 §9.3.6: a CONNECT request has no content.
	if head.Framing() != http1.BodyNone {
		c.refuseConnect(rec, http.StatusBadRequest, "", http1.MsgInvalidConnectTarget, "ERROR", pipeline.ReasonInvalidRequest, "CONNECT with a body")
		return
	}
	t, err := http1.ParseAuthorityForm(string(head.Target))
	if err != nil {
		c.refuseConnect(rec, http.StatusBadRequest, "", http1.MsgInvalidConnectTarget, "ERROR", pipeline.ReasonInvalidRequest, err.Error())
		return
	}
	host := strings.TrimSuffix(strings.ToLower(t.Host), ".")
	rec.Host, rec.Port = host, t.Port
	d := h.DecideConnect(ctx, host, t.Port)
	rec.Decision, rec.Decided = d, true
	if d.Action == policy.Deny {
		c.refuseConnect(rec, d.Status, d.Phrase, d.Body, "DENY", string(d.Reason), "")
		return
	}
	addrs, err := c.srv.dialer.ResolveVetted(ctx, host, t.Port, d.AllowPrivate)
	if err != nil {
		c.refuseUpstream(rec, err)
		return
	}
	if d.Action == policy.Tunnel {
		c.tunnel(ctx, rec, host, t.Port, addrs, d.AllowPrivate)
		return
	}
	c.bump(ctx, rec, host, t.Port, addrs)
}

// connectAnswered ends the CONNECT's count as a request in flight, once.
func (c *conn) connectAnswered() {
	if c.connectUnanswered {
		c.connectUnanswered = false
		c.srv.metrics.RequestDone(metrics.ModeTunnel)
	}
}

// refuseConnect answers a CONNECT with one of the proxy's fixed responses.
func (c *conn) refuseConnect(rec *pipeline.ConnectRecord, status int, phrase, body, action, reason, detail string) {
	defer c.connectAnswered()
	rec.Fail(status, action, reason, detail)
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.Config.ResponseBodyIdleTimeout))
	if err := http1.WriteResponse(c.bw, status, phrase, body); err != nil {
		rec.Detail = err.Error()
	}
	c.bw.Flush()
}

// refuseUpstream answers a failure to resolve, vet or connect.
func (c *conn) refuseUpstream(rec *pipeline.ConnectRecord, err error) {
	var ue *upstream.Error
	if !errors.As(err, &ue) {
		c.refuseConnect(rec, http.StatusBadGateway, "", http1.MsgUpstreamFailed, "ERROR", pipeline.ReasonUpstreamFailed, err.Error())
		return
	}
	switch ue.Kind {
	case upstream.KindPrivate:
		c.refuseConnect(rec, http.StatusForbidden, "", http1.MsgPrivateConnect, "DENY", pipeline.ReasonPrivateAddress, err.Error())
	case upstream.KindResolve:
		c.refuseConnect(rec, http.StatusBadGateway, "", http1.MsgResolveFailed, "ERROR", ue.Reason(), err.Error())
	case upstream.KindInvalidHost:
		c.refuseConnect(rec, http.StatusBadRequest, "", http1.MsgInvalidConnectTarget, "ERROR", pipeline.ReasonInvalidRequest, err.Error())
	default:
		c.refuseConnect(rec, ue.Status(), "", http1.DefaultMessage(ue.Status()), "ERROR", ue.Reason(), err.Error())
	}
}

// established sends the 200 that opens a tunnel.
func (c *conn) established(rec *pipeline.ConnectRecord) error {
	defer c.connectAnswered()
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.Config.ConnectTunnelIdleTimeout))
	if _, err := io.WriteString(c.bw, http1.ConnectEstablished); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Time{})
	rec.Status, rec.Action = http.StatusOK, "ALLOW"
	rec.Reason = string(rec.Decision.Reason)
	return nil
}

// pipelined returns a copy of the bytes the client sent after the CONNECT
// head that c.br already holds; SPEC §5 keeps them, unlike the original.
func (c *conn) pipelined() []byte {
	buffered, _ := c.br.Peek(c.br.Buffered())
	return bytes.Clone(buffered)
}

// tunnel connects to the vetted addresses and relays bytes both ways
// untouched, after checking that a TLS ClientHello names the CONNECT host.
func (c *conn) tunnel(ctx context.Context, rec *pipeline.ConnectRecord, host string, port uint16, addrs []netip.Addr, allowPrivate bool) {
	up, err := c.srv.dialer.DialAddrs(ctx, addrs, port, allowPrivate)
	if err != nil {
		c.refuseUpstream(rec, err)
		return
	}
	defer up.Close()
	rec.Upstream = up.RemoteAddr().String()
	if err := c.established(rec); err != nil {
		rec.Fail(0, "ERROR", pipeline.ReasonClientGone, err.Error())
		return
	}
	if m := c.srv.metrics; m != nil {
		m.TunnelOpened(metrics.ModeTunnel)
		defer m.TunnelClosed(metrics.ModeTunnel)
	}
	c.inTunnel.Store(true)
	if c.srv.inShutdown.Load() {
		c.nc.Close() // Shutdown began while this tunnel was being set up
	}
	tn := newTunnelConns(c.nc, up, c.srv.Config.ConnectTunnelIdleTimeout)
	rest := bytes.NewReader(c.pipelined())
	hello := bufio.NewReaderSize(io.MultiReader(rest, activityReader{c.nc, tn}), maxHelloPeek)

	// Relay upstream → client at once (some protocols speak first) while
	// the client's first bytes are checked.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tn.copyToClient()
	}()
	stop := tn.watch(c.srv.Config.ConnectTunnelMaxLifetime)

	// SPEC §5 tunnel SNI check: a ClientHello naming another host than
	// the CONNECT is domain fronting; close before it reaches the upstream.
	// The wait for the client's first bytes has no deadline of its own:
	// in a protocol where the server speaks first the client may be
	// silent while the download keeps the tunnel busy, and the watchdog
	// ends the wait when the tunnel is idle both ways or too old.
	name, isTLS, err := tlshello.ReadServerName(hello, maxHelloPeek)
	var ne net.Error
	switch {
	case err != nil && (tn.ended.Load() != nil || errors.As(err, &ne)):
		// The watchdog ended the tunnel, or the client went away before
		// its first bytes: not a malformed hello.
		tn.close()
	case err != nil && !errors.Is(err, io.EOF):
		rec.Fail(rec.Status, "DENY", reasonTLSMalformed, "client hello: "+err.Error())
		tn.close()
	case isTLS && name != "" && name != host:
		rec.Fail(rec.Status, "DENY", reasonSNIMismatch, fmt.Sprintf("ClientHello server name %q differs from the CONNECT host", name))
		tn.close()
	default:
		tn.copyToUpstream(hello, rest)
	}
	wg.Wait()
	stop()
	rec.BytesIn, rec.BytesOut = tn.in.Load(), tn.out.Load()
	if r := tn.ended.Load(); r != nil && rec.Reason != reasonSNIMismatch && rec.Reason != reasonTLSMalformed {
		rec.Reason = *r
	}
}

// bump terminates the client's TLS with a leaf minted for the CONNECT
// host and serves the requests inside through the pipeline: HTTP/2 when
// the client negotiates it, HTTP/1.1 otherwise (SPEC §5 "Bump").
func (c *conn) bump(ctx context.Context, rec *pipeline.ConnectRecord, host string, port uint16, addrs []netip.Addr) {
	if err := c.established(rec); err != nil {
		rec.Fail(0, "ERROR", pipeline.ReasonClientGone, err.Error())
		return
	}
	var sniMismatch atomic.Bool
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// SPEC §5: a client SNI other than the CONNECT host fails the
			// handshake (domain fronting).
			if sni := strings.TrimSuffix(strings.ToLower(hello.ServerName), "."); sni != "" && sni != host {
				sniMismatch.Store(true)
				return nil, fmt.Errorf("server name %q differs from the CONNECT host", hello.ServerName)
			}
			return c.srv.authority.Leaf(hello.Context(), host)
		},
	}
	tc := tls.Server(&prefixConn{Conn: c.nc, r: io.MultiReader(bytes.NewReader(c.pipelined()), c.nc)}, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.srv.Config.TLSHandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		if m := c.srv.metrics; m != nil {
			m.TLSHandshakeFailure(metrics.SideClient)
		}
		reason := reasonTLSHandshake
		if sniMismatch.Load() {
			reason = reasonSNIMismatch
			rec.Action = "DENY"
		} else {
			rec.Action = "ERROR"
		}
		rec.Reason, rec.Detail = reason, "client TLS handshake: "+err.Error()
		return
	}
	defer tc.Close()
	if m := c.srv.metrics; m != nil {
		m.TunnelOpened(metrics.ModeBump)
		defer m.TunnelClosed(metrics.ModeBump)
	}
	if lt := c.srv.Config.ConnectTunnelMaxLifetime; lt > 0 {
		timer := time.AfterFunc(lt, func() { tc.Close() })
		defer timer.Stop()
	}
	info := &pipeline.ConnInfo{
		Peer: c.peer, SessionID: c.info.SessionID, FrontEnd: pipeline.BumpH1,
		ConnectHost: host, ConnectPort: port, ConnectAddrs: addrs,
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		info.FrontEnd = pipeline.BumpH2
		c.srv.h2.ServeConn(tc, &http2.ServeConnOpts{
			Context:    pipeline.NewContext(ctx, info),
			Handler:    c.srv.Handler,
			BaseConfig: c.srv.h2Base,
		})
		return
	}
	inner := &conn{srv: c.srv, nc: tc, peer: c.peer, info: info, outer: c}
	inner.loop(pipeline.NewContext(ctx, info))
}

// prefixConn is a net.Conn whose reads come from r: the bytes the client
// pipelined after the CONNECT head, then the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }
