// Package conf reads ExfilGuard's configuration: a strict TOML subset
// parser, a decoder into typed settings, clients and policies that rejects
// unknown and duplicate keys, a loader for the main file, the clients and
// policies files and their *.d directories and EXFILGUARD__ environment
// overrides, and one semantic validator. Every problem is reported with
// its FILE:LINE:COL, and all problems of a load are reported together.
package conf

import (
	"net/netip"
	"time"
)

// Config is everything one load produced. It is plain data: after Load
// returns, nothing in it changes.
type Config struct {
	// File is the main settings file as given; Dir is the directory that
	// relative paths in it are resolved against.
	File string
	Dir  string

	Settings Settings

	// Clients and Policies are in load order: the base file's entries in
	// document order, then each *.d file's in byte-wise name order.
	Clients  []Client
	Policies []Policy

	// Tests are the [[test]] tables of the policies files, in load order.
	Tests []Test

	// Files lists every file read, in load order.
	Files []string

	// settingPos records where each setting was given: a position in the
	// main file, or an environment variable.
	settingPos fieldPos
}

// LogFormat is the format of the log on standard output.
type LogFormat string

// Log formats.
const (
	LogJSON LogFormat = "json"
	LogText LogFormat = "text"
)

// ProxyProtocol says whether connections on the listener start with a
// PROXY protocol header.
type ProxyProtocol string

// PROXY protocol modes.
const (
	ProxyProtocolOff      ProxyProtocol = "off"
	ProxyProtocolOptional ProxyProtocol = "optional"
	ProxyProtocolRequired ProxyProtocol = "required"
)

// Settings are the main file's settings. Paths are absolute or relative to
// Config.Dir after loading (Load resolves them). Durations are written in
// the file as whole seconds and sizes as bytes. The defaults listed are
// applied by Load; the field comments say what zero means where zero is
// allowed.
type Settings struct {
	// Listen is the proxy's listening address, IP:port. Required.
	Listen netip.AddrPort `toml:"listen,required"`
	// CADir holds the CA material (root and intermediate). Required.
	CADir string `toml:"ca_dir,required,path"`
	// ClientsFile is the base clients file. Required.
	ClientsFile string `toml:"clients,required,path"`
	// PoliciesFile is the base policies file. Required.
	PoliciesFile string `toml:"policies,required,path"`
	// ClientsDir is a directory of extra clients files (*.toml). Empty
	// means none; a missing directory is not an error.
	ClientsDir string `toml:"clients_dir,path"`
	// PoliciesDir is a directory of extra policies files. Empty means none.
	PoliciesDir string `toml:"policies_dir,path"`
	// CertCacheDir caches minted leaf certificates on disk. Empty means
	// the in-memory cache only.
	CertCacheDir string `toml:"cert_cache_dir,path"`

	// Log is the log format, "json" (default) or "text".
	Log LogFormat `toml:"log"`
	// LogQueries includes query strings in logged paths. Default false.
	LogQueries bool `toml:"log_queries"`

	// LeafTTL is the validity of minted leaf certificates. Default 86400 s.
	LeafTTL time.Duration `toml:"leaf_ttl,positive"`
	// DNSResolveTimeout bounds one name resolution. Default 2 s.
	DNSResolveTimeout time.Duration `toml:"dns_resolve_timeout,positive"`
	// UpstreamConnectTimeout bounds one TCP connect. Default 5 s.
	UpstreamConnectTimeout time.Duration `toml:"upstream_connect_timeout,positive"`
	// TLSHandshakeTimeout bounds a TLS handshake on either side. Default 10 s.
	TLSHandshakeTimeout time.Duration `toml:"tls_handshake_timeout,positive"`
	// RequestHeaderTimeout bounds reading a request head once its first
	// byte arrived. Default 10 s.
	RequestHeaderTimeout time.Duration `toml:"request_header_timeout,positive"`
	// RequestBodyIdleTimeout bounds the gap between request body reads.
	// Default 30 s.
	RequestBodyIdleTimeout time.Duration `toml:"request_body_idle_timeout,positive"`
	// ResponseHeaderTimeout bounds the wait for the upstream response head.
	// Default 30 s.
	ResponseHeaderTimeout time.Duration `toml:"response_header_timeout,positive"`
	// ResponseBodyIdleTimeout bounds the gap between response body reads.
	// Default 60 s.
	ResponseBodyIdleTimeout time.Duration `toml:"response_body_idle_timeout,positive"`
	// RequestTotalTimeout bounds a whole exchange. Zero (default) means no
	// limit.
	RequestTotalTimeout time.Duration `toml:"request_total_timeout"`
	// ClientKeepaliveIdleTimeout closes a client connection with no new
	// request for this long. Default 30 s.
	ClientKeepaliveIdleTimeout time.Duration `toml:"client_keepalive_idle_timeout,positive"`
	// ConnectTunnelIdleTimeout closes a tunnel with no data in either
	// direction for this long. Default 60 s.
	ConnectTunnelIdleTimeout time.Duration `toml:"connect_tunnel_idle_timeout,positive"`
	// ConnectTunnelMaxLifetime bounds a tunnel's whole life. Zero (default)
	// means no limit.
	ConnectTunnelMaxLifetime time.Duration `toml:"connect_tunnel_max_lifetime"`
	// UpstreamIdleTimeout closes pooled idle upstream connections. Default
	// 90 s.
	UpstreamIdleTimeout time.Duration `toml:"upstream_idle_timeout,positive"`
	// ShutdownGracePeriod is how long SIGTERM waits for in-flight work.
	// Default 30 s.
	ShutdownGracePeriod time.Duration `toml:"shutdown_grace_period,positive"`

	// UpstreamPoolCapacity is the most idle upstream connections kept per
	// pool key. Default 32, at least 1.
	UpstreamPoolCapacity int64 `toml:"upstream_pool_capacity,positive"`
	// MaxRequestHeaderSize bounds a request head in bytes. Default 32768.
	MaxRequestHeaderSize int64 `toml:"max_request_header_size,positive"`
	// MaxResponseHeaderSize bounds an upstream response head in bytes.
	// Default 32768.
	MaxResponseHeaderSize int64 `toml:"max_response_header_size,positive"`
	// MaxRequestBodySize bounds a request body in bytes. Zero (default)
	// means no limit.
	MaxRequestBodySize int64 `toml:"max_request_body_size"`
	// MaxConnections bounds the open client connections: one accepted
	// past it is closed at once, before a byte is read. Default 10000;
	// zero means no limit.
	MaxConnections int64 `toml:"max_connections"`
	// MaxConnectionsPerIP bounds the open client connections from one
	// client address (with PROXY protocol, the address the header
	// carries), so that one client cannot take every connection. Default
	// 1000; zero means no limit.
	MaxConnectionsPerIP int64 `toml:"max_connections_per_ip"`

	// CacheDir enables the response cache of rules with a [policy.rule.cache]
	// table. Empty (default) means no response cache.
	CacheDir string `toml:"cache_dir,path"`
	// CacheMaxEntrySize bounds one cached response. Default 10485760.
	CacheMaxEntrySize int64 `toml:"cache_max_entry_size"`
	// CacheMaxEntries bounds the number of cached responses. Default 10000.
	CacheMaxEntries int64 `toml:"cache_max_entries"`
	// CacheTotalCapacity bounds the cache's size in bytes. Default 1073741824.
	CacheTotalCapacity int64 `toml:"cache_total_capacity"`
	// CacheSweeperInterval is how often expired entries are removed.
	// Default 300 s.
	CacheSweeperInterval time.Duration `toml:"cache_sweeper_interval"`
	// CacheSweeperBatchSize is how many entries one sweep examines. Default
	// 1000.
	CacheSweeperBatchSize int64 `toml:"cache_sweeper_batch_size"`

	// MetricsListen serves GET /metrics on IP:port. Unset means no metrics
	// endpoint.
	MetricsListen netip.AddrPort `toml:"metrics_listen"`
	// MetricsTLSCert and MetricsTLSKey serve the metrics over HTTPS; both or
	// neither.
	MetricsTLSCert string `toml:"metrics_tls_cert,path"`
	MetricsTLSKey  string `toml:"metrics_tls_key,path"`

	// UpstreamCAFile is a PEM bundle of extra roots trusted for upstream
	// TLS, in addition to the system roots. Empty means system roots only.
	UpstreamCAFile string `toml:"upstream_ca_file,path"`
	// HostsFile is a hosts(5) file consulted before DNS. Empty means DNS
	// only.
	HostsFile string `toml:"hosts_file,path"`

	// ProxyProtocol is "off" (default), "optional" or "required".
	ProxyProtocol ProxyProtocol `toml:"proxy_protocol"`
	// ProxyProtocolAllowedCIDRs are the peers whose PROXY headers are
	// honoured. Required and non-empty unless ProxyProtocol is off.
	ProxyProtocolAllowedCIDRs []netip.Prefix `toml:"proxy_protocol_allowed_cidrs"`
}

// DefaultSettings returns the settings with every default applied and the
// required settings unset.
func DefaultSettings() Settings {
	return Settings{
		Log:                        LogJSON,
		LeafTTL:                    86400 * time.Second,
		DNSResolveTimeout:          2 * time.Second,
		UpstreamConnectTimeout:     5 * time.Second,
		TLSHandshakeTimeout:        10 * time.Second,
		RequestHeaderTimeout:       10 * time.Second,
		RequestBodyIdleTimeout:     30 * time.Second,
		ResponseHeaderTimeout:      30 * time.Second,
		ResponseBodyIdleTimeout:    60 * time.Second,
		ClientKeepaliveIdleTimeout: 30 * time.Second,
		ConnectTunnelIdleTimeout:   60 * time.Second,
		UpstreamIdleTimeout:        90 * time.Second,
		ShutdownGracePeriod:        30 * time.Second,
		UpstreamPoolCapacity:       32,
		MaxRequestHeaderSize:       32768,
		MaxResponseHeaderSize:      32768,
		MaxConnections:             10000,
		MaxConnectionsPerIP:        1000,
		CacheMaxEntrySize:          10485760,
		CacheMaxEntries:            10000,
		CacheTotalCapacity:         1073741824,
		CacheSweeperInterval:       300 * time.Second,
		CacheSweeperBatchSize:      1000,
		ProxyProtocol:              ProxyProtocolOff,
	}
}

// Client maps source addresses to an ordered list of policies.
type Client struct {
	// Pos is the [[client]] header.
	Pos Pos
	// Name is unique across all clients files.
	Name string
	// Prefix is the selector: an ip as a /32 or /128, or a cidr. For the
	// fallback client it may be any prefix, including 0.0.0.0/0.
	Prefix netip.Prefix
	// IsCIDR says whether the selector was written as cidr (not ip).
	IsCIDR bool
	// Policies names the client's policies in evaluation order.
	Policies []string
	// Fallback marks the one client used when no selector matches.
	Fallback bool

	fields    fieldPos
	policyPos []Pos // where each of Policies was written
}

// Policy is a named, ordered list of rules.
type Policy struct {
	// Pos is the [[policy]] header.
	Pos   Pos
	Name  string
	Rules []Rule

	fields fieldPos
}

// Action is what a matching rule does.
type Action uint8

// Rule actions.
const (
	Allow Action = iota + 1
	Deny
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return "INVALID"
}

// Rule is one [[policy.rule]].
type Rule struct {
	// Pos is the [[policy.rule]] header.
	Pos    Pos
	Action Action
	// Methods lists the matched methods, upper-cased. Nil means ANY: every
	// method except CONNECT.
	Methods []string
	// URLPattern limits the rule to matching URLs. Nil matches every URL.
	URLPattern *URLPattern
	// InspectPayload false makes a CONNECT ALLOW rule a pass-through
	// tunnel. Default true.
	InspectPayload bool
	// AllowPrivateUpstream lets an ALLOW rule reach non-public addresses.
	AllowPrivateUpstream bool
	// Status, Reason and Body form a DENY rule's response. Status is
	// required for DENY; Reason "" means the standard phrase; Body "" means
	// an empty body.
	Status int
	Reason string
	Body   string
	// Cache, when non-nil, makes the rule's responses cacheable.
	Cache *RuleCache

	fields fieldPos
}

// ConnectOnly reports whether the rule's methods are exactly CONNECT.
func (r *Rule) ConnectOnly() bool {
	return len(r.Methods) == 1 && r.Methods[0] == "CONNECT"
}

// RuleCache is a [policy.rule.cache] table.
type RuleCache struct {
	Pos Pos

	// ForceCacheDuration caches responses for this long whatever their
	// headers say. Zero means the response's own caching headers decide.
	ForceCacheDuration time.Duration
}

// Expectation is the outcome a policy test expects.
type Expectation string

// Policy test expectations. Tunnel and Bump apply to CONNECT tests only.
const (
	ExpectAllow  Expectation = "ALLOW"
	ExpectDeny   Expectation = "DENY"
	ExpectTunnel Expectation = "TUNNEL"
	ExpectBump   Expectation = "BUMP"
)

// Test is one [[test]] table of a policies file: a request and the
// decision the policies must give it.
type Test struct {
	// Pos is the [[test]] header.
	Pos Pos
	// Client is the source address the request comes from.
	Client netip.Addr
	// Method is the request method, GET by default.
	Method string
	// URL is an absolute http:// or https:// URL, or for CONNECT the
	// host:port target.
	URL string
	// Expect is the expected outcome.
	Expect Expectation
	// Status, when non-zero, is the status a DENY must carry.
	Status int
	// Policy and Rule, when set, name the deciding policy and rule id
	// ("policy#index").
	Policy string
	Rule   string

	fields fieldPos
}
