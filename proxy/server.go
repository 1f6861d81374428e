// Package proxy is ExfilGuard's listener: it accepts client connections,
// tracks them, runs the HTTP/1.1 request loop on each, and hands every
// request to the one pipeline (package pipeline).
package proxy

import (
	"context"
	"net/http"

	"errors"
	"exfilguard/ca"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"exfilguard/proxy/metrics"
	"exfilguard/proxy/pipeline"
	"exfilguard/proxy/proxyproto"
	"exfilguard/proxy/upstream"

	"golang.org/x/net/http2"
)

// Config holds the listener's limits and timeouts. Zero values are not
// defaulted here: main fills every field from conf.Settings.
type Config struct {
	// KeepaliveIdleTimeout closes a connection that sends no first byte of
	// a request head for this long, silently.
	KeepaliveIdleTimeout time.Duration
	// RequestHeaderTimeout bounds a request head from its first byte;
	// expiry answers 408 and closes.
	RequestHeaderTimeout time.Duration
	// MaxRequestHeaderSize bounds a request head in bytes (431 past it).
	MaxRequestHeaderSize int
	// RequestBodyIdleTimeout bounds each read of a request body.
	RequestBodyIdleTimeout time.Duration
	// ResponseBodyIdleTimeout bounds each write to the client.
	ResponseBodyIdleTimeout time.Duration
	// TLSHandshakeTimeout bounds the client TLS handshake of a bump.
	TLSHandshakeTimeout time.Duration
	// ConnectTunnelIdleTimeout closes a tunnel with no data either way.
	ConnectTunnelIdleTimeout time.Duration
	// ConnectTunnelMaxLifetime bounds a tunnel or bumped session; zero
	// means no bound.
	ConnectTunnelMaxLifetime time.Duration
	// ProxyProtocol says whether connections start with a PROXY protocol
	// header; ProxyProtocolAllowed are the peers whose headers count.
	ProxyProtocol        proxyproto.Mode
	ProxyProtocolAllowed []netip.Prefix
	// MaxConnections bounds the open client connections; one accepted
	// past it is closed at once. Zero means no limit.
	MaxConnections int
	// MaxConnectionsPerIP bounds the open client connections from one
	// client address: the peer's, or with PROXY protocol the address
	// the header carries. Zero means no limit.
	MaxConnectionsPerIP int
}

// Server accepts client connections and serves them.
type Server struct {
	Config  Config
	Handler *pipeline.Handler
	Log     *slog.Logger

	// transport, when set, is closed with the server.
	transport *upstream.Transport
	// dialer resolves, vets and dials CONNECT targets.
	dialer *upstream.Dialer
	// authority mints the leaves of bumped tunnels.
	authority *ca.Authority
	// metrics, when set, counts tunnels and handshake failures.
	metrics *metrics.Set
	// h2 serves bumped HTTP/2; h2Base carries its limits.
	h2     *http2.Server
	h2Base *http.Server

	// baseCtx is the parent of every connection's context; cancelBase
	// cancels it when the server closes.
	initOnce   sync.Once
	baseCtx    context.Context
	cancelBase context.CancelFunc

	inShutdown atomic.Bool
	mu         sync.Mutex
	listeners  map[net.Listener]struct{} // guarded by mu
	conns      map[*conn]struct{}        // guarded by mu
	perIP      map[netip.Addr]int        // guarded by mu; open conns by client address (limits.go)
	connWG     sync.WaitGroup            // one per conn goroutine
	refusals   refusalLog
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.perIP = map[netip.Addr]int{}
	})
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// acceptBackoffMax bounds the wait after a temporary accept error (such
// as EMFILE), so that running out of file descriptors does not spin.
const acceptBackoffMax = time.Second

// Serve accepts connections on ln until Shutdown or Close. It always
// returns a non-nil error; after Shutdown or Close it is ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if !s.trackListener(ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Temporary() { //nolint:staticcheck // EMFILE and friends are reported as temporary
				backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
				s.Log.Warn("accept failed; backing off", slog.String("error", err.Error()), slog.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c, refused := s.newConn(nc)
		if refused {
			continue
		}
		if c == nil {
			nc.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.connWG.Done()
			defer s.untrack(c)
			c.serve(s.baseCtx)
		}()
	}
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

// newConn registers a connection. It returns nil when shutting down, and
// nil and refused, having closed nc, when a connection limit is reached.
func (s *Server) newConn(nc net.Conn) (c *conn, refused bool) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	peer := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	c = &conn{srv: s, nc: nc, peer: peer}
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		return nil, false
	}
	if limit, ok := s.admitLocked(c); !ok {
		s.mu.Unlock()
		s.refuse(c, limit)
		return nil, true
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	return c, false
}

// goAwayH2 sends every bumped HTTP/2 session a GOAWAY (RFC 9113 §6.8)
// through the hook http2.ConfigureServer registered on h2Base (which has
// no listener and tracks no connection of its own). Shutdown calls it on
// every tick: a session whose TLS handshake was under way when Shutdown
// began registers later, and a session is told once however often this
// runs.
func (s *Server) goAwayH2(ctx context.Context) {
	if s.h2Base != nil {
		s.h2Base.Shutdown(ctx)
	}
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.releaseIPLocked(c)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, lets connections in
// the middle of a request finish it (and then close), and waits until all
// are gone or ctx ends; then it closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.inShutdown.Store(true)
	s.closeListeners()
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		s.closeIdle()
		s.goAwayH2(ctx)
		select {
		case <-done:
			s.cancelBase()
			s.closeTransport()
			return nil
		case <-ctx.Done():
			s.closeAll()
			<-done
			s.closeTransport()
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// Close closes the listeners and every connection at once and waits for
// their goroutines. It is idempotent.
func (s *Server) Close() error {
	s.init()
	s.inShutdown.Store(true)
	s.closeListeners()
	s.closeAll()
	s.connWG.Wait()
	s.closeTransport()
	return nil
}

func (s *Server) closeTransport() {
	if s.transport != nil {
		s.transport.Close()
	}
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.closeIfIdle()
	}
}

func (s *Server) closeAll() {
	s.cancelBase()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}
