package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"exfilguard/proxy/metrics"
	"exfilguard/proxy/proxyproto"
)

// Connection limits: max_connections and max_connections_per_ip.
//
// A connection over a limit is closed as soon as it is accepted, before a
// byte of it is read. There is no request yet that a response could
// answer, and refusals come in floods, so each must cost next to nothing:
// no write, no goroutine, no lingering. (A 503 written ahead of the
// request would mostly be lost anyway: closing a socket with unread
// request bytes sends a reset, which discards it at the client.) The log
// says which limit was met, at most once per refusalLogEvery, and
// exfilguard_connections_refused_total counts every refusal.

// refusalLogEvery bounds the refusal warnings: a flood of refused
// connections must not become a flood of log lines.
const refusalLogEvery = time.Second

// admitLocked counts c against the limits and reports whether it may be
// served; limit is the one it met when not.
func (s *Server) admitLocked(c *conn) (limit metrics.Refusal, ok bool) {
	if max := s.Config.MaxConnections; max > 0 && len(s.conns) >= max {
		return metrics.RefusedMaxConnections, false
	}
	// Behind PROXY protocol the peer is the load balancer; the client's
	// address is known once the header is read, when conn.serve calls
	// admitProxied.
	if s.Config.ProxyProtocol != proxyproto.Off {
		return 0, true
	}
	return metrics.RefusedMaxConnectionsPerIP, s.admitIPLocked(c)
}

// admitIPLocked counts c against max_connections_per_ip under its client
// address and reports whether it may be served.
func (s *Server) admitIPLocked(c *conn) bool {
	max := s.Config.MaxConnectionsPerIP
	if max <= 0 {
		return true
	}
	a := c.peer.Addr()
	if s.perIP[a] >= max {
		return false
	}
	s.perIP[a]++
	c.countedAs = a
	return true
}

// admitProxied counts c, whose client address came from its PROXY
// protocol header (or is the peer's, when there was none), against
// max_connections_per_ip, and refuses it when over.
func (s *Server) admitProxied(c *conn) bool {
	s.mu.Lock()
	ok := s.admitIPLocked(c)
	s.mu.Unlock()
	if !ok {
		s.refuse(c, metrics.RefusedMaxConnectionsPerIP)
	}
	return ok
}

// releaseIPLocked undoes admitIPLocked when c closes.
func (s *Server) releaseIPLocked(c *conn) {
	a := c.countedAs
	if !a.IsValid() {
		return
	}
	c.countedAs = netip.Addr{}
	if n := s.perIP[a] - 1; n > 0 {
		s.perIP[a] = n
	} else {
		delete(s.perIP, a)
	}
}

// refuse closes c, which met limit, counts it and logs it.
func (s *Server) refuse(c *conn, limit metrics.Refusal) {
	c.nc.Close()
	if s.metrics != nil {
		s.metrics.ConnectionRefused(limit)
	}
	max := s.Config.MaxConnections
	if limit == metrics.RefusedMaxConnectionsPerIP {
		max = s.Config.MaxConnectionsPerIP
	}
	s.refusals.log(s.Log, limit, max, c.peer.Addr())
}

// refusalLog rate-limits the refusal warnings.
type refusalLog struct {
	mu       sync.Mutex
	last     time.Time // guarded by mu; when the last warning was written
	unlogged int       // guarded by mu; refusals since then
}

func (r *refusalLog) log(log *slog.Logger, limit metrics.Refusal, max int, client netip.Addr) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < refusalLogEvery {
		r.unlogged++
		r.mu.Unlock()
		return
	}
	unlogged := r.unlogged
	r.last, r.unlogged = now, 0
	r.mu.Unlock()
	log.LogAttrs(context.Background(), slog.LevelWarn, "connection refused: limit reached",
		slog.String("limit", limit.String()), slog.Int("max", max), slog.String("client", client.String()),
		slog.Int("refused_unlogged", unlogged))
}

// openConns returns how many client connections are open.
func (s *Server) openConns() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
