package metrics

import (
	"io"
	"net/http"
	"runtime"
	"strconv"
	"time"
)

// Mode is the mode label: how a request reached the proxy.
type Mode uint8

// Modes.
const (
	ModeDirect Mode = iota // a plain HTTP request to the proxy
	ModeTunnel             // a CONNECT, whatever became of it
	ModeBump               // a request inside a bumped (inspected) tunnel
	numModes
)

var modeNames = []string{"direct", "tunnel", "bump"}

// String returns the label value: direct, tunnel or bump.
func (m Mode) String() string {
	if m < numModes {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode returns the Mode whose String is s.
func ParseMode(s string) (Mode, bool) {
	for i, n := range modeNames {
		if n == s {
			return Mode(i), true
		}
	}
	return 0, false
}

// Decision is the decision label: what the decision record says.
type Decision uint8

// Decisions.
const (
	DecisionAllow Decision = iota // forwarded, or a CONNECT tunnelled or bumped
	DecisionDeny                  // refused by policy or a limit
	DecisionError                 // failed: invalid request, upstream failure, timeout
	numDecisions
)

var decisionNames = []string{"ALLOW", "DENY", "ERROR"}

// String returns the label value: ALLOW, DENY or ERROR, as in the decision
// log (reference §10.2).
func (d Decision) String() string {
	if d < numDecisions {
		return decisionNames[d]
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// ParseDecision returns the Decision whose String is s.
func ParseDecision(s string) (Decision, bool) {
	for i, n := range decisionNames {
		if n == s {
			return Decision(i), true
		}
	}
	return 0, false
}

// Side is the side label of TLS handshake failures.
type Side uint8

// Sides.
const (
	SideClient   Side = iota // the proxy's TLS server in a bumped tunnel
	SideUpstream             // the proxy's TLS client to an origin
)

// Closed label value sets.
var (
	statusClasses = []string{"2xx", "3xx", "4xx", "5xx", "other"}
	// methods are the RFC 9110 §9 methods and PATCH (RFC 5789), sorted;
	// anything else counts as "other".
	methods       = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "other"}
	upstreamKinds = []string{
		"request_timeout", "body_too_large", "private_address", "misdirected_request", "upstream_closed",
		"upstream_timeout", "resolve_failed", "connect_failed", "other",
	}
)

// Indexes into methods and upstreamKinds.
const (
	methodOther        = 9
	kindMisdirected    = 3
	kindUpstreamClosed = 4
	kindOther          = 8
)

// Request is one finished request or CONNECT, as its decision record
// describes it.
type Request struct {
	Mode     Mode
	Decision Decision
	// Method counts as itself when it is one of the standard methods,
	// else as "other".
	Method string
	// Status is the status sent; 0 (none sent) counts as 5xx, as in the
	// original.
	Status int
	// Client, Policy and Rule are the configured names of the decision;
	// "" leaves the request out of that name's families (a request
	// refused before a client was resolved; a default deny, which has no
	// policy or rule).
	Client, Policy, Rule string
	// Duration is the time from the request's start to its record.
	Duration time.Duration
	// BytesIn and BytesOut are the decision record's bytes_in (from the
	// client) and bytes_out (to the client).
	BytesIn, BytesOut int64
}

// Policies describes a loaded policy set: a hash of it for
// exfilguard_policy_info, and the configured names that label the client,
// policy and rule series.
type Policies struct {
	Hash     string
	Clients  []string
	Policies []string
	Rules    []string // rule ids, "policy#index"
}

// Options configure a Set.
type Options struct {
	// Version is the build_info version; empty means "unknown".
	Version string
	// OmitProcess leaves out the process_* and go_* families, whose values
	// change from scrape to scrape (for golden tests).
	OmitProcess bool
}

// Set is the ExfilGuard metric set (SPEC §8, reference §11.2): every
// family exists from New on, so each has its # TYPE line from the first
// scrape. Its methods are safe for concurrent use; the recording ones do
// not lock or allocate.
//
// The original's response cache families (cache_*) are left out: there is
// no response cache (SPEC §10).
type Set struct {
	reg Registry

	requests       *CounterVec   // decision, mode
	clientRequests *CounterVec   // client, decision, mode
	policyRequests *CounterVec   // policy, decision, mode
	status         *CounterVec   // status_class, mode
	method         *CounterVec   // method, mode
	clientDuration *HistogramVec // client, decision, mode
	policyDuration *HistogramVec // policy, decision, mode
	ruleHits       *CounterVec   // rule
	bytes          *CounterVec   // direction, mode

	poolIdle      *Func
	poolCapacity  *Gauge
	poolReuse     *CounterVec // reused
	poolMiss      *Counter
	upstreamError *CounterVec // kind

	inflight     *GaugeVec // mode
	openConns    *Func
	connsRefused *CounterVec // reason
	tunnels      *GaugeVec   // mode (tunnel, bump)
	leavesMinted *Func
	leafHits     *Func
	tlsFailures  *CounterVec // side

	reloads    *CounterVec // result
	lastReload *Gauge
	policyInfo *Info
	buildInfo  *Info
}

// New returns a Set with every family at zero.
func New(o Options) *Set {
	mode := Label{Name: "mode", Values: modeNames}
	decision := Label{Name: "decision", Values: decisionNames}
	s := &Set{
		requests: NewCounterVec("exfilguard_requests_total", "Total requests by decision",
			decision, mode),
		clientRequests: NewCounterVec("exfilguard_client_requests_total", "Total requests by client and decision",
			Label{Name: "client"}, decision, mode),
		policyRequests: NewCounterVec("exfilguard_policy_requests_total", "Total requests by policy and decision",
			Label{Name: "policy"}, decision, mode),
		status: NewCounterVec("exfilguard_requests_status_total", "Requests by status class",
			Label{Name: "status_class", Values: statusClasses}, mode),
		method: NewCounterVec("exfilguard_requests_method_total", "Requests by method",
			Label{Name: "method", Values: methods}, mode),
		clientDuration: NewHistogramVec("exfilguard_client_request_duration_seconds", "Request latency per client",
			durationBuckets, Label{Name: "client"}, decision, mode),
		policyDuration: NewHistogramVec("exfilguard_policy_request_duration_seconds", "Request latency per policy",
			durationBuckets, Label{Name: "policy"}, decision, mode),
		ruleHits: NewCounterVec("exfilguard_rule_hits_total", "Rule match counter",
			Label{Name: "rule"}),
		bytes: NewCounterVec("exfilguard_transferred_bytes_total",
			"Bytes received from clients (in) and sent to them (out), as the decision records count them",
			Label{Name: "direction", Values: []string{"in", "out"}}, mode),

		// upstream_pool_in_use keeps the original's name, and its help
		// text says what the original's value was too: the number of idle
		// pooled connections, not of connections in use.
		poolIdle: NewGaugeFunc("exfilguard_upstream_pool_in_use", "Idle upstream pool size", nil),
		poolReuse: NewCounterVec("exfilguard_upstream_pool_reuse_total", "Upstream connection reuse counts",
			Label{Name: "reused", Values: []string{"yes", "no"}}),
		upstreamError: NewCounterVec("exfilguard_upstream_errors_total", "Upstream errors by kind",
			Label{Name: "kind", Values: upstreamKinds}),

		inflight: NewGaugeVec("exfilguard_inflight_requests", "Requests and CONNECTs being handled",
			mode),
		tunnels: NewGaugeVec("exfilguard_open_tunnels", "Open CONNECT tunnels, spliced (tunnel) or bumped (bump)",
			Label{Name: "mode", Values: modeNames[ModeTunnel:]}),
		openConns: NewGaugeFunc("exfilguard_open_connections", "Open client connections", nil),
		connsRefused: NewCounterVec("exfilguard_connections_refused_total",
			"Client connections closed unserved because max_connections or max_connections_per_ip was reached",
			Label{Name: "limit", Values: refusalNames}),
		leavesMinted: NewCounterFunc("exfilguard_leaf_certificates_minted_total", "Leaf certificates signed by the CA", nil),
		leafHits:     NewCounterFunc("exfilguard_leaf_cache_hits_total", "Leaf certificates found in the memory or disk cache", nil),
		tlsFailures: NewCounterVec("exfilguard_tls_handshake_failures_total",
			"TLS handshake failures with clients in bumped tunnels and with upstreams",
			Label{Name: "side", Values: []string{"client", "upstream"}}),

		reloads: NewCounterVec("exfilguard_reloads_total", "Policy reloads by result",
			Label{Name: "result", Values: []string{"success", "failure"}}),
		policyInfo: NewInfo("exfilguard_policy_info", "Hash of the loaded clients and policies", "hash"),
		buildInfo:  NewInfo("exfilguard_build_info", "ExfilGuard build", "version"),
	}
	capacity := NewGaugeVec("exfilguard_upstream_pool_capacity", "Configured upstream pool capacity")
	s.poolCapacity = capacity.With()
	miss := NewCounterVec("exfilguard_upstream_pool_miss_total", "Misses in upstream pool")
	s.poolMiss = miss.With()
	last := NewGaugeVec("exfilguard_last_reload_success_timestamp_seconds",
		"Unix time of the last successful policy load, at startup or on reload")
	s.lastReload = last.With()

	s.buildInfo.Set(o.Version)

	s.reg.Register(s.requests, s.clientRequests, s.policyRequests, s.status, s.method,
		s.clientDuration, s.policyDuration, s.ruleHits, s.bytes,
		s.poolIdle, capacity, s.poolReuse, miss, s.upstreamError,
		s.inflight, s.tunnels, s.openConns, s.connsRefused, s.leavesMinted, s.leafHits, s.tlsFailures,
		s.reloads, last, s.policyInfo, s.buildInfo)
	if !o.OmitProcess {
		s.reg.Register(NewGaugeFunc("go_goroutines", "Number of goroutines that currently exist.",
			func() float64 { return float64(runtime.NumGoroutine()) }))
		s.reg.Register(processFamilies()...)
	}
	return s
}

// Registry returns the registry holding the set's families.
func (s *Set) Registry() *Registry { return &s.reg }

// WriteText writes every family in the text exposition format 0.0.4.
func (s *Set) WriteText(w io.Writer) error { return s.reg.WriteText(w) }

// Handler returns the GET /metrics endpoint of the set.
func (s *Set) Handler() http.Handler { return s.reg.Handler() }

// Record counts one finished request or CONNECT: the requests, status,
// method and bytes families, the client and policy families when the
// request has them, and a hit of its rule. It does not allocate.
func (s *Set) Record(r Request) {
	if r.Mode >= numModes || r.Decision >= numDecisions {
		panic("metrics: internal error: invalid Mode or Decision")
	}
	d, m := int(r.Decision), int(r.Mode)
	s.requests.With(d, m).Inc()
	s.status.With(statusClass(r.Status), m).Inc()
	s.method.With(methodIndex(r.Method), m).Inc()
	if r.BytesIn > 0 {
		s.bytes.With(0, m).Add(uint64(r.BytesIn))
	}
	if r.BytesOut > 0 {
		s.bytes.With(1, m).Add(uint64(r.BytesOut))
	}
	secs := r.Duration.Seconds()
	if r.Client != "" {
		s.clientRequests.WithName(r.Client, d, m).Inc()
		s.clientDuration.WithName(r.Client, d, m).Observe(secs)
	}
	if r.Policy != "" {
		s.policyRequests.WithName(r.Policy, d, m).Inc()
		s.policyDuration.WithName(r.Policy, d, m).Observe(secs)
	}
	if r.Rule != "" {
		s.ruleHits.WithName(r.Rule).Inc()
	}
}

// statusClass returns the index in statusClasses of a status; 0 (no
// status sent) is taken as 500 first, as the original did.
func statusClass(code int) int {
	if code == 0 {
		code = 500
	}
	if code >= 200 && code < 600 {
		return code/100 - 2
	}
	return 4
}

// methodIndex returns the index in methods of m, which is compared
// case-sensitively (RFC 9110 §9.1).
func methodIndex(m string) int {
	switch m {
	case http.MethodConnect:
		return 0
	case http.MethodDelete:
		return 1
	case http.MethodGet:
		return 2
	case http.MethodHead:
		return 3
	case http.MethodOptions:
		return 4
	case http.MethodPatch:
		return 5
	case http.MethodPost:
		return 6
	case http.MethodPut:
		return 7
	case http.MethodTrace:
		return 8
	}
	return methodOther
}

// RequestStarted counts a request or CONNECT in flight; RequestDone must
// follow.
func (s *Set) RequestStarted(m Mode) { s.inflight.With(int(m)).Inc() }

// RequestDone ends a RequestStarted.
func (s *Set) RequestDone(m Mode) { s.inflight.With(int(m)).Dec() }

// TunnelOpened counts an open tunnel, m being ModeTunnel (spliced) or
// ModeBump; TunnelClosed must follow. ModeDirect is not a tunnel and is
// ignored.
func (s *Set) TunnelOpened(m Mode) {
	if m != ModeDirect {
		s.tunnels.With(int(m - ModeTunnel)).Inc()
	}
}

// TunnelClosed ends a TunnelOpened.
func (s *Set) TunnelClosed(m Mode) {
	if m != ModeDirect {
		s.tunnels.With(int(m - ModeTunnel)).Dec()
	}
}

// UpstreamConn counts an upstream connection taken for a request:
// reused from the pool, or a pool miss and a fresh connect.
func (s *Set) UpstreamConn(reused bool) {
	if reused {
		s.poolReuse.With(0).Inc()
		return
	}
	s.poolMiss.Inc()
	s.poolReuse.With(1).Inc()
}

// UpstreamError counts a request or CONNECT that failed on the way to
// the upstream or from it, by the reason word of its record: the
// original's kinds request_timeout, body_too_large, private_address,
// misdirected_request (the record's misdirected) and upstream_closed (the
// record's response_truncated), the dialer's upstream_timeout,
// resolve_failed and connect_failed, and other for upstream_failed. Any
// other word (a policy decision, a malformed request, a client that went
// away) is not an upstream error and is not counted.
func (s *Set) UpstreamError(reason string) {
	k := -1
	switch reason {
	case "misdirected":
		k = kindMisdirected
	case "response_truncated":
		k = kindUpstreamClosed
	case "upstream_failed":
		k = kindOther
	default:
		for i, w := range upstreamKinds[:kindOther] {
			if w == reason {
				k = i
				break
			}
		}
	}
	if k >= 0 {
		s.upstreamError.With(k).Inc()
	}
}

// Refusal is the limit label of refused connections: which limit a client
// connection met.
type Refusal uint8

// Refusals.
const (
	RefusedMaxConnections      Refusal = iota // max_connections
	RefusedMaxConnectionsPerIP                // max_connections_per_ip
)

var refusalNames = []string{"max_connections", "max_connections_per_ip"}

// String returns the label value: the setting's name.
func (r Refusal) String() string {
	if int(r) < len(refusalNames) {
		return refusalNames[r]
	}
	return "Refusal(" + strconv.Itoa(int(r)) + ")"
}

// ConnectionRefused counts a client connection closed unserved because of
// limit r.
func (s *Set) ConnectionRefused(r Refusal) { s.connsRefused.With(int(r)).Inc() }

// SetOpenConnections sets the function reporting how many client
// connections are open (read at scrape time; it must be safe for
// concurrent use).
func (s *Set) SetOpenConnections(open func() int) {
	if open == nil {
		s.openConns.Set(nil)
		return
	}
	s.openConns.Set(func() float64 { return float64(open()) })
}

// TLSHandshakeFailure counts a failed TLS handshake on side.
func (s *Set) TLSHandshakeFailure(side Side) { s.tlsFailures.With(int(side)).Inc() }

// SetUpstreamPool sets the configured pool capacity and the function
// reporting how many idle connections the pool holds (read at scrape
// time; it must be safe for concurrent use).
func (s *Set) SetUpstreamPool(capacity int, idle func() int) {
	s.poolCapacity.Set(float64(capacity))
	if idle == nil {
		s.poolIdle.Set(nil)
		return
	}
	s.poolIdle.Set(func() float64 { return float64(idle()) })
}

// SetLeafCounters sets the functions reporting how many leaf certificates
// the CA has minted and how many it found in its caches (read at scrape
// time; they must be safe for concurrent use).
func (s *Set) SetLeafCounters(minted, cacheHits func() uint64) {
	for _, p := range []struct {
		fn *Func
		f  func() uint64
	}{{s.leavesMinted, minted}, {s.leafHits, cacheHits}} {
		if p.f == nil {
			p.fn.Set(nil)
			continue
		}
		f := p.f
		p.fn.Set(func() float64 { return float64(f()) })
	}
}

// Loaded installs a policy set loaded at time at, at startup or by a
// reload: its hash, the names of its clients, policies and rules, and the
// last successful load time. Series of names kept keep their counts.
func (s *Set) Loaded(p Policies, at time.Time) {
	s.clientRequests.SetNames(p.Clients)
	s.clientDuration.SetNames(p.Clients)
	s.policyRequests.SetNames(p.Policies)
	s.policyDuration.SetNames(p.Policies)
	s.ruleHits.SetNames(p.Rules)
	s.policyInfo.Set(p.Hash)
	s.lastReload.Set(float64(at.Unix()) + float64(at.Nanosecond())/1e9)
}

// Reloaded counts a successful reload and installs its policy set as
// Loaded does.
func (s *Set) Reloaded(p Policies, at time.Time) {
	s.Loaded(p, at)
	s.reloads.With(0).Inc()
}

// ReloadFailed counts a refused reload; the old policy set stays.
func (s *Set) ReloadFailed() { s.reloads.With(1).Inc() }
