package proxy

import (
	"errors"
	"fmt"

	"golang.org/x/net/http2"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"

	"exfilguard/ca"
	"exfilguard/conf"
	"exfilguard/policy"
	"exfilguard/proxy/metrics"
	"exfilguard/proxy/pipeline"
	"exfilguard/proxy/proxyproto"
	"exfilguard/proxy/upstream"
)

// New builds a Server from the settings: the upstream resolver, dialer and
// transport, and the pipeline deciding with policies. listening are the
// addresses the process listens on, as bound: the dialer refuses to
// connect back to them (SPEC §6, self-connection).
//
// m, when not nil, receives the metrics of every request and tunnel, and
// reads the upstream pool and leaf certificate counters at scrape time.
func New(s *conf.Settings, policies *atomic.Pointer[policy.Ruleset], log *slog.Logger, listening []netip.AddrPort, m *metrics.Set) (*Server, error) {
	roots, err := upstream.RootPool(s.UpstreamCAFile)
	if err != nil {
		return nil, fmt.Errorf("upstream TLS roots: %w", err)
	}
	var hosts *upstream.Hosts
	if s.HostsFile != "" {
		if hosts, err = upstream.ReadHosts(s.HostsFile); err != nil {
			return nil, fmt.Errorf("hosts_file: %w", err)
		}
	}
	self, err := upstream.NewSelfSet(listening)
	if err != nil {
		return nil, fmt.Errorf("listening addresses: %w", err)
	}
	authority, err := ca.Open(s.CADir, ca.Options{LeafTTL: s.LeafTTL, CacheDir: s.CertCacheDir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	dialer := &upstream.Dialer{
		Resolver:       &upstream.Resolver{Hosts: hosts, Timeout: s.DNSResolveTimeout},
		ConnectTimeout: s.UpstreamConnectTimeout,
		Self:           self,
	}
	tr := &upstream.Transport{
		Dialer:                  dialer,
		Roots:                   roots,
		TLSHandshakeTimeout:     s.TLSHandshakeTimeout,
		ResponseHeaderTimeout:   s.ResponseHeaderTimeout,
		RequestBodyIdleTimeout:  s.RequestBodyIdleTimeout,
		ResponseBodyIdleTimeout: s.ResponseBodyIdleTimeout,
		MaxResponseHeaderSize:   int(s.MaxResponseHeaderSize),
		PoolCapacity:            int(s.UpstreamPoolCapacity),
		MaxIdle:                 maxIdleUpstream,
		IdleTimeout:             s.UpstreamIdleTimeout,
	}
	srv := &Server{
		Config: Config{
			KeepaliveIdleTimeout:     s.ClientKeepaliveIdleTimeout,
			RequestHeaderTimeout:     s.RequestHeaderTimeout,
			MaxRequestHeaderSize:     int(s.MaxRequestHeaderSize),
			RequestBodyIdleTimeout:   s.RequestBodyIdleTimeout,
			ResponseBodyIdleTimeout:  s.ResponseBodyIdleTimeout,
			TLSHandshakeTimeout:      s.TLSHandshakeTimeout,
			ConnectTunnelIdleTimeout: s.ConnectTunnelIdleTimeout,
			ConnectTunnelMaxLifetime: s.ConnectTunnelMaxLifetime,
			ProxyProtocol:            proxyMode(s.ProxyProtocol),
			ProxyProtocolAllowed:     s.ProxyProtocolAllowedCIDRs,
			MaxConnections:           int(s.MaxConnections),
			MaxConnectionsPerIP:      int(s.MaxConnectionsPerIP),
		},
		Handler: &pipeline.Handler{
			Policies:            policies,
			Upstream:            transportAdapter{tr},
			Log:                 log,
			LogQueries:          s.LogQueries,
			MaxRequestBodySize:  s.MaxRequestBodySize,
			RequestTotalTimeout: s.RequestTotalTimeout,
			Metrics:             m,
		},
		metrics:   m,
		Log:       log,
		transport: tr,
		dialer:    dialer,
		authority: authority,
		// Bumped HTTP/2: idle sessions close like idle HTTP/1.1 ones; the
		// header list is bounded like an HTTP/1.1 head.
		h2:     &http2.Server{IdleTimeout: s.ClientKeepaliveIdleTimeout},
		h2Base: &http.Server{MaxHeaderBytes: int(s.MaxRequestHeaderSize)},
	}
	// Registering h2 with h2Base lets Shutdown send every bumped HTTP/2
	// session a GOAWAY (RFC 9113 §6.8) through h2Base.Shutdown: idle
	// sessions close at once and busy ones after their last stream.
	if err := http2.ConfigureServer(srv.h2Base, srv.h2); err != nil {
		return nil, err
	}
	if m != nil {
		m.SetUpstreamPool(tr.PoolCapacity, tr.IdleConns)
		m.SetLeafCounters(authority.Minted, authority.CacheHits)
		m.SetOpenConnections(srv.openConns)
	}
	return srv, nil
}

// CheckFiles reads the files New reads (the CA material, the upstream CA
// bundle and the hosts file) as New would, without writing anything, and
// returns every problem: `exfilguard check` runs it so that what would
// stop New stops check first. A missing or empty ca_dir passes, since New
// generates the CA there.
func CheckFiles(s *conf.Settings) error {
	var errs []error
	if err := ca.Check(s.CADir); err != nil {
		errs = append(errs, err)
	}
	if _, err := upstream.RootPool(s.UpstreamCAFile); err != nil {
		errs = append(errs, err)
	}
	if s.HostsFile != "" {
		if _, err := upstream.ReadHosts(s.HostsFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// maxIdleUpstream bounds the idle upstream connections kept over all
// hosts (upstream_pool_capacity bounds them per host): without it, a
// client sending one request to each of many hosts a wildcard rule allows
// would leave a connection per host open for upstream_idle_timeout. 1024
// keeps every connection of 32 hosts at the default pool capacity.
const maxIdleUpstream = 1024

// proxyMode maps the setting to the parser's mode; conf has validated it.
func proxyMode(m conf.ProxyProtocol) proxyproto.Mode {
	switch m {
	case conf.ProxyProtocolOptional:
		return proxyproto.Optional
	case conf.ProxyProtocolRequired:
		return proxyproto.Required
	}
	return proxyproto.Off
}

// transportAdapter lets the pipeline forward through upstream.Transport;
// the two Target types have the same fields, and neither package imports
// the other (STYLE.md import directions).
type transportAdapter struct{ t *upstream.Transport }

func (a transportAdapter) RoundTrip(req *http.Request, t pipeline.Target) (*http.Response, error) {
	return a.t.RoundTrip(req, upstream.Target(t))
}
