package conf

import (
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
)

// This file is the one semantic validator: every rule of reference §1.4
// and §1.8 (v0.3 vocabulary) and SPEC §3–§4 that relates values to each
// other. It reports every problem, each at the position of the value at
// fault.

// maxLeafTTL is the longest leaf validity clients accept: the CA/Browser
// Forum baseline caps TLS server certificates at 398 days, and Apple and
// Chrome refuse longer ones.
const maxLeafTTL = 398 * 24 * time.Hour

func (c *Config) validateSettings(p *problems) {
	s := &c.Settings
	at := func(key string) Pos { return c.settingPos.at(key, Pos{File: c.File}) }
	v := reflect.ValueOf(s).Elem()
	for _, f := range settingFields {
		if f.positive && c.settingPos.has(f.key) && v.Field(f.index).Int() <= 0 {
			p.add(at(f.key), "%s must be greater than 0", f.key)
		}
	}
	if s.LeafTTL > maxLeafTTL {
		p.add(at("leaf_ttl"), "leaf_ttl must be at most %d seconds (398 days): clients refuse longer-lived TLS certificates", int64(maxLeafTTL/time.Second))
	}
	// Only when both are written: the default per-address limit under a
	// lower global one is simply never reached.
	if s.MaxConnections > 0 && s.MaxConnectionsPerIP > s.MaxConnections && c.settingPos.has("max_connections_per_ip") {
		p.add(at("max_connections_per_ip"), "max_connections_per_ip (%d) is larger than max_connections (%d), so it can never be reached", s.MaxConnectionsPerIP, s.MaxConnections)
	}
	if s.ProxyProtocol != ProxyProtocolOff && !c.settingPos.has("proxy_protocol_allowed_cidrs") {
		p.add(at("proxy_protocol"), "proxy_protocol = %q needs proxy_protocol_allowed_cidrs: the peers whose PROXY headers are trusted", s.ProxyProtocol)
	} else if s.ProxyProtocol != ProxyProtocolOff && len(s.ProxyProtocolAllowedCIDRs) == 0 {
		// An empty list trusts no peer: with "required" every connection
		// would be closed, with "optional" every header refused.
		p.add(at("proxy_protocol_allowed_cidrs"), "proxy_protocol_allowed_cidrs is empty: proxy_protocol = %q needs at least one trusted peer", s.ProxyProtocol)
	}
	if s.CacheDir != "" {
		for _, key := range []string{"cache_max_entry_size", "cache_max_entries", "cache_total_capacity", "cache_sweeper_interval", "cache_sweeper_batch_size"} {
			if c.settingPos.has(key) && v.Field(settingIndex(key)).Int() <= 0 {
				p.add(at(key), "%s must be greater than 0 when cache_dir is set", key)
			}
		}
	}
	switch {
	case s.MetricsTLSCert != "" && s.MetricsTLSKey == "":
		p.add(at("metrics_tls_cert"), "metrics_tls_cert is set but metrics_tls_key is not: set both or neither")
	case s.MetricsTLSKey != "" && s.MetricsTLSCert == "":
		p.add(at("metrics_tls_key"), "metrics_tls_key is set but metrics_tls_cert is not: set both or neither")
	}
	if s.MetricsTLSCert != "" && !s.MetricsListen.IsValid() {
		p.add(at("metrics_tls_cert"), "metrics_tls_cert is set but metrics_listen is not")
	}
	if s.MetricsListen.IsValid() && s.MetricsListen == s.Listen && s.Listen.Port() != 0 {
		p.add(at("metrics_listen"), "metrics_listen must differ from listen (%s)", s.Listen)
	}
	for _, key := range []string{"ca_dir", "cert_cache_dir", "cache_dir"} {
		if dir := v.Field(settingIndex(key)).String(); dir != "" {
			checkDir(p, at(key), key, dir)
		}
	}
	for _, key := range []string{"metrics_tls_cert", "metrics_tls_key", "upstream_ca_file", "hosts_file"} {
		if file := v.Field(settingIndex(key)).String(); file != "" {
			checkFile(p, at(key), key, file)
		}
	}
}

func settingIndex(key string) int {
	for _, f := range settingFields {
		if f.key == key {
			return f.index
		}
	}
	panic("conf: internal error: no setting " + key)
}

// checkDir reports a path that exists but is not a readable directory. A
// missing directory is fine: it is created when first needed.
func checkDir(p *problems, pos Pos, key, dir string) {
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return
	}
	if err == nil && !fi.IsDir() {
		p.add(pos, "%s %s is not a directory", key, dir)
		return
	}
	if err == nil {
		_, err = os.ReadDir(dir)
	}
	if err != nil {
		p.add(pos, "%s %s cannot be read: %v", key, dir, unwrapPathError(err))
	}
}

// checkFile reports a file that cannot be read.
func checkFile(p *problems, pos Pos, key, file string) {
	f, err := os.Open(file)
	if err != nil {
		p.add(pos, "%s %s cannot be read: %v", key, file, unwrapPathError(err))
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		p.add(pos, "%s %s is not a regular file", key, file)
	}
}

// completeness says which sets of files were all read and parsed.
type completeness struct {
	policies, clients bool
}

// validatePolicies checks the policies, clients and tests of every file
// together.
func (c *Config) validatePolicies(p *problems, complete completeness) {
	first := Pos{File: c.Settings.PoliciesFile}
	if len(c.Policies) == 0 && complete.policies {
		p.add(first, "no policies defined: add a [[policy]] table")
	}
	byName := map[string]*Policy{}
	seen := map[string]Pos{}
	for i := range c.Policies {
		pol := &c.Policies[i]
		if checkName(p, "policy", pol.Name, pol.fields, pol.Pos, seen) {
			byName[pol.Name] = pol
		}
		validateRules(p, pol)
	}
	c.validateClients(p, byName, complete)
	c.validateTests(p, byName, complete)
}

func validateRules(p *problems, pol *Policy) {
	if len(pol.Rules) == 0 {
		p.add(pol.Pos, "policy %q has no rules: add a [[policy.rule]]", pol.Name)
	}
	seenNonConnect := false
	for i := range pol.Rules {
		r := &pol.Rules[i]
		at := func(key string) Pos { return r.fields.at(key, r.Pos) }
		id := fmt.Sprintf("%s#%d", pol.Name, i)
		if !r.fields.has("action") {
			p.add(r.Pos, "rule %s has no action: add action = \"ALLOW\" or \"DENY\"", id)
		}
		switch r.Action {
		case Allow:
			for _, key := range []string{"status", "reason", "body"} {
				if r.fields.has(key) {
					p.add(at(key), "%s applies to DENY rules only", key)
				}
			}
		case Deny:
			switch {
			case !r.fields.has("status"):
				p.add(r.Pos, "DENY rule %s needs a status, such as status = 403", id)
			case r.Status < 400 || r.Status > 599:
				// RFC 9110 §15: a refusal is a client or server error. A 1xx
				// is interim, a 2xx answer to CONNECT opens the tunnel
				// (§9.3.6), 204 and 304 cannot carry the body.
				p.add(at("status"), "DENY status %d must be from 400 to 599", r.Status)
			}
			if r.fields.has("reason") {
				if msg := checkReason(r.Reason); msg != "" {
					p.add(at("reason"), "%s", msg)
				}
			}
			if r.AllowPrivateUpstream {
				p.add(at("allow_private_upstream"), "allow_private_upstream applies to ALLOW rules only")
			}
			if !r.InspectPayload {
				p.add(at("inspect_payload"), "inspect_payload = false applies to ALLOW rules only: a DENY never opens a tunnel")
			}
		}
		if r.Cache != nil && (r.Action == Deny || r.ConnectOnly()) {
			p.add(r.Cache.Pos, "[policy.rule.cache] applies to ALLOW rules for requests, not to DENY or CONNECT rules")
		}
		connect := r.ConnectOnly()
		if connect && seenNonConnect {
			p.add(at("methods"), "CONNECT rules must come before the other rules of their policy: rule %s follows a non-CONNECT rule", id)
		}
		if !connect {
			seenNonConnect = true
		}
		if connect && r.URLPattern != nil && r.URLPattern.Scheme != "https" {
			p.add(at("url_pattern"), "a CONNECT rule's url_pattern must use https://: CONNECT is decided on https authorities only")
		}
		if connect && r.Action == Allow && r.InspectPayload {
			p.add(at("methods"), "CONNECT ALLOW rules must set inspect_payload = false (HTTPS rules for other methods already allow CONNECT with inspection)")
		}
		if !r.InspectPayload && r.Action == Allow {
			if !connect {
				p.add(at("inspect_payload"), `inspect_payload = false needs methods = ["CONNECT"]`)
			}
			if r.URLPattern == nil && !r.fields.has("url_pattern") || r.URLPattern != nil && r.URLPattern.Path != "/**" {
				p.add(at("inspect_payload"), "inspect_payload = false needs a url_pattern ending in /**: a tunnel cannot see paths")
			}
		}
	}
}

// checkName reports a [[what]] table whose name is missing, empty or
// already taken (names are unique across all files), and returns whether
// the name is new; seen maps the names so far to their tables.
func checkName(p *problems, what, name string, fields fieldPos, pos Pos, seen map[string]Pos) bool {
	switch prev, dup := seen[name]; {
	case !fields.has("name"):
		p.add(pos, "[[%s]] has no name", what)
	case name == "":
		p.add(fields.at("name", pos), "%s name must not be empty", what)
	case dup:
		p.add(fields.at("name", pos), "duplicate %s name %q (first defined at %s)", what, name, prev)
	default:
		seen[name] = pos
		return true
	}
	return false
}

// checkReason checks a reason phrase (RFC 9112 §4: HTAB, SP, VCHAR and
// obs-text) and returns a message, or "" when it is fine.
func checkReason(s string) string {
	if strings.TrimSpace(s) == "" {
		return "reason must not be empty; omit it to use the standard phrase"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return "reason must not contain control characters such as CR or LF"
		}
	}
	return ""
}

func (c *Config) validateClients(p *problems, policies map[string]*Policy, complete completeness) {
	seen := map[string]Pos{}
	var fallbacks []*Client
	for i := range c.Clients {
		cl := &c.Clients[i]
		checkName(p, "client", cl.Name, cl.fields, cl.Pos, seen)
		if !cl.fields.has("ip") && !cl.fields.has("cidr") {
			p.add(cl.Pos, "client %q must set either ip or cidr", cl.Name)
		}
		if !cl.fields.has("policies") || len(cl.Policies) == 0 {
			p.add(cl.fields.at("policies", cl.Pos), "client %q must list at least one policy", cl.Name)
		}
		for j, name := range cl.Policies {
			pos := cl.policyPos[j]
			switch {
			case slices.Contains(cl.Policies[:j], name):
				p.add(pos, "client %q lists policy %q twice", cl.Name, name)
			case policies[name] == nil && complete.policies:
				p.add(pos, "client %q references unknown policy %q%s", cl.Name, name, didYouMean(name, mapKeys(policies)))
			}
		}
		if cl.Fallback {
			fallbacks = append(fallbacks, cl)
		}
	}
	switch {
	case !complete.clients:
		// A file that failed to parse may hold the fallback.
	case len(fallbacks) == 0 && len(c.Clients) > 0:
		p.add(Pos{File: c.Settings.ClientsFile}, "no fallback client: exactly one client must set fallback = true")
	case len(fallbacks) == 0:
		p.add(Pos{File: c.Settings.ClientsFile}, "no clients defined: add a [[client]] table with fallback = true")
	}
	for _, fb := range fallbacks[min(1, len(fallbacks)):] {
		p.add(fb.fields.at("fallback", fb.Pos), "client %q is a second fallback client (the first is %q at %s): exactly one is allowed", fb.Name, fallbacks[0].Name, fallbacks[0].Pos)
	}
	c.validateSelectors(p)
}

// didYouMean returns "; did you mean %q?" for the known name nearest to
// name, or "".
func didYouMean(name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validateSelectors rejects overlapping selectors: non-fallback selectors
// never overlap (so at most one client matches an address), and no two
// clients, fallback included, have the same selector. Sorting by address
// then prefix length makes each prefix follow the prefixes containing it,
// so one pass with a stack of enclosing prefixes finds every overlap in
// O(n log n), which matters for configurations with thousands of clients.
func (c *Config) validateSelectors(p *problems) {
	type sel struct {
		prefix netip.Prefix
		client *Client
		index  int // in c.Clients: load order, to report the later one
	}
	var sels []sel
	for i := range c.Clients {
		if cl := &c.Clients[i]; cl.Prefix.IsValid() {
			sels = append(sels, sel{cl.Prefix, cl, i})
		}
	}
	// later orders a pair as (earlier, later) in load order.
	later := func(x, y sel) (*Client, *Client) {
		if x.index > y.index {
			x, y = y, x
		}
		return x.client, y.client
	}
	slices.SortStableFunc(sels, func(a, b sel) int {
		if d := a.prefix.Addr().Compare(b.prefix.Addr()); d != 0 {
			return d
		}
		return cmp.Compare(a.prefix.Bits(), b.prefix.Bits())
	})
	selPos := func(cl *Client) Pos {
		if cl.IsCIDR {
			return cl.fields.at("cidr", cl.Pos)
		}
		return cl.fields.at("ip", cl.Pos)
	}
	var stack []sel // enclosing non-fallback prefixes, outermost first
	for i, s := range sels {
		if i > 0 && sels[i-1].prefix == s.prefix {
			// Report at the later definition in load order.
			a, b := later(sels[i-1], s)
			p.add(selPos(b), "client %q selects %s, which is already claimed by client %q (%s)", b.Name, s.prefix, a.Name, a.Pos)
			continue
		}
		if s.client.Fallback {
			continue // the fallback may contain or sit inside other selectors
		}
		for len(stack) > 0 && !stack[len(stack)-1].prefix.Contains(s.prefix.Addr()) {
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			a, b := later(stack[len(stack)-1], s)
			p.add(selPos(b), "client %q (%s) overlaps client %q (%s at %s): selectors of non-fallback clients must not overlap", b.Name, b.Prefix, a.Name, a.Prefix, a.Pos)
		}
		stack = append(stack, s)
	}
}

func (c *Config) validateTests(p *problems, policies map[string]*Policy, complete completeness) {
	for i := range c.Tests {
		t := &c.Tests[i]
		at := func(key string) Pos { return t.fields.at(key, t.Pos) }
		for _, key := range []string{"client", "url", "expect"} {
			if !t.fields.has(key) {
				p.add(t.Pos, "[[test]] needs %s", key)
			}
		}
		connect := t.Method == "CONNECT"
		if t.fields.has("url") {
			if msg := checkTestURL(t.URL, connect); msg != "" {
				p.add(at("url"), "%s", msg)
			}
		}
		switch {
		case connect && t.Expect == ExpectAllow:
			p.add(at("expect"), `a CONNECT test expects "TUNNEL", "BUMP" or "DENY"`)
		case !connect && (t.Expect == ExpectTunnel || t.Expect == ExpectBump):
			p.add(at("expect"), `expect = %q needs method = "CONNECT"`, t.Expect)
		}
		if t.fields.has("status") {
			switch {
			case t.Expect != ExpectDeny:
				p.add(at("status"), `status is checked for expect = "DENY" only`)
			case t.Status < 400 || t.Status > 599:
				p.add(at("status"), "status %d must be from 400 to 599, as DENY statuses are", t.Status)
			}
		}
		if !complete.policies {
			continue // the policies a test names may be in the broken file
		}
		if t.fields.has("policy") && policies[t.Policy] == nil {
			p.add(at("policy"), "test names unknown policy %q%s", t.Policy, didYouMean(t.Policy, mapKeys(policies)))
		}
		if t.fields.has("rule") {
			name, idx, ok := parseRuleID(t.Rule)
			switch pol := policies[name]; {
			case !ok:
				p.add(at("rule"), `rule %q must be a rule id, "policy#index" (0-based)`, t.Rule)
			case pol == nil:
				p.add(at("rule"), "rule %q names unknown policy %q%s", t.Rule, name, didYouMean(name, mapKeys(policies)))
			case idx >= len(pol.Rules):
				p.add(at("rule"), "rule %q: policy %q has %d rules", t.Rule, name, len(pol.Rules))
			case t.fields.has("policy") && t.Policy != name:
				p.add(at("rule"), "rule %q is not in policy %q", t.Rule, t.Policy)
			}
		}
	}
}

// checkTestURL checks the shape of a test's url: host:port for CONNECT,
// an absolute http:// or https:// URL otherwise. The policy package parses
// it fully when it runs the test.
func checkTestURL(u string, connect bool) string {
	if connect {
		i := strings.LastIndexByte(u, ':')
		if i <= 0 || strings.Contains(u, "/") {
			return fmt.Sprintf("url %q of a CONNECT test must be host:port", u)
		}
		if _, ok := ParsePort(u[i+1:]); !ok {
			return fmt.Sprintf("url %q of a CONNECT test needs a port from 1 to 65535", u)
		}
		return ""
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Sprintf("url %q must be an absolute http:// or https:// URL", u)
	}
	return ""
}
