package conf

import (
	"net/netip"
	"strconv"
	"strings"
)

// decodeClients reads a clients file: [[client]] tables.
//
//	[[client]]
//	name = "app"  ip = "10.0.0.1" | cidr = "10.0.0.0/24"
//	policies = ["p1", "p2"]  fallback = false
func decodeClients(t *table) []Client {
	var out []Client
	for _, ct := range t.tables("client", "[[client]]") {
		c := Client{Pos: ct.keyAt(ct.n)}
		ct.str("name", &c.Name)
		var ip, cidr string
		hasIP := ct.str("ip", &ip)
		hasCIDR := ct.str("cidr", &cidr)
		switch {
		case hasIP && hasCIDR:
			ct.p.add(ct.pos["cidr"], "client %q sets both ip and cidr; use exactly one", c.Name)
		case hasIP:
			a, err := parseAddr(strings.TrimSpace(ip))
			if err != nil {
				ct.p.add(ct.pos["ip"], "ip: %v", err)
				break
			}
			c.Prefix = netip.PrefixFrom(a, a.BitLen())
		case hasCIDR:
			p, err := parseCIDR(strings.TrimSpace(cidr))
			if err != nil {
				ct.p.add(ct.pos["cidr"], "cidr: %v", err)
				break
			}
			c.Prefix, c.IsCIDR = p, true
		}
		if list, pos, ok := ct.strings("policies"); ok {
			c.Policies, c.policyPos = list, pos
		}
		ct.boolean("fallback", &c.Fallback)
		ct.finish()
		c.fields = ct.pos
		out = append(out, c)
	}
	t.finish()
	return out
}

// decodePolicies reads a policies file: [[policy]] tables with their
// [[policy.rule]] tables, and [[test]] tables.
func decodePolicies(t *table) ([]Policy, []Test) {
	var policies []Policy
	for _, pt := range t.tables("policy", "[[policy]]") {
		p := Policy{Pos: pt.keyAt(pt.n)}
		pt.str("name", &p.Name)
		for _, rt := range pt.tables("rule", "[[policy.rule]]") {
			p.Rules = append(p.Rules, decodeRule(rt))
		}
		pt.finish()
		p.fields = pt.pos
		policies = append(policies, p)
	}
	var tests []Test
	for _, tt := range t.tables("test", "[[test]]") {
		tests = append(tests, decodeTest(tt))
	}
	t.finish()
	return policies, tests
}

// decodeRule reads one [[policy.rule]].
//
//	action = "ALLOW" | "DENY"   methods = [...]   url_pattern = "..."
//	inspect_payload = true      allow_private_upstream = false
//	status = 470  reason = "..."  body = "..."   [policy.rule.cache]
func decodeRule(t *table) Rule {
	r := Rule{Pos: t.keyAt(t.n), InspectPayload: true}
	var action string
	if t.str("action", &action) {
		switch action {
		case "ALLOW":
			r.Action = Allow
		case "DENY":
			r.Action = Deny
		default:
			t.p.add(t.pos["action"], `action must be "ALLOW" or "DENY" (upper case), not %q`, action)
		}
	}
	if list, pos, ok := t.strings("methods"); ok {
		r.Methods = decodeMethods(t, list, pos)
	}
	var pattern string
	if t.str("url_pattern", &pattern) {
		up, err := ParseURLPattern(pattern)
		if err != nil {
			t.p.add(t.pos["url_pattern"], "%v", err)
		} else {
			r.URLPattern = up
		}
	}
	t.boolean("inspect_payload", &r.InspectPayload)
	t.boolean("allow_private_upstream", &r.AllowPrivateUpstream)
	var status int64
	if t.integer("status", 1<<31-1, &status) {
		r.Status = int(status)
	}
	t.str("reason", &r.Reason)
	t.str("body", &r.Body)
	if ct := t.subtable("cache", "[policy.rule.cache]"); ct != nil {
		r.Cache = &RuleCache{Pos: ct.keyAt(ct.n)}
		ct.seconds("force_cache_duration", &r.Cache.ForceCacheDuration)
		ct.finish()
	}
	// splice is the original's deprecated spelling of a tunnel rule; name
	// the replacement rather than calling it unknown.
	t.known = append(t.known, "splice")
	if v := t.n.field("splice"); v != nil {
		t.p.add(t.keyAt(v), "splice is no longer supported; write methods = [\"CONNECT\"] and inspect_payload = false")
	}
	t.finish()
	r.fields = t.pos
	return r
}

// decodeMethods upper-cases a methods list and checks each entry: a token,
// listed once, "ANY" (any case) only alone, CONNECT only alone. ANY alone
// means every method but CONNECT and is returned as nil.
func decodeMethods(t *table, list []string, pos []Pos) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = strings.ToUpper(m)
	}
	if len(out) == 1 && out[0] == "ANY" {
		return nil
	}
	if len(out) == 0 {
		t.p.add(t.pos["methods"], `methods must not be empty; omit it or write ["ANY"] to match every method except CONNECT`)
		return nil
	}
	for i, m := range out {
		switch {
		case m == "ANY":
			t.p.add(pos[i], `"ANY" must be the only entry of methods`)
		case !isToken(m):
			t.p.add(pos[i], "method %q is not an HTTP token (RFC 9110 §9.1)", list[i])
		case contains(out[:i], m):
			t.p.add(pos[i], "method %q is listed twice", m)
		case m == "CONNECT" && len(out) > 1:
			t.p.add(pos[i], "CONNECT must not be combined with other methods: write a separate CONNECT rule")
		}
	}
	return out
}

// decodeTest reads one [[test]].
//
//	client = "10.0.0.5"  method = "GET"  url = "https://..." | "host:port"
//	expect = "ALLOW" | "DENY" | "TUNNEL" | "BUMP"  status = 470
//	policy = "name"  rule = "name#0"
func decodeTest(t *table) Test {
	tc := Test{Pos: t.keyAt(t.n), Method: "GET"}
	var client string
	if t.str("client", &client) {
		a, err := parseAddr(client)
		if err != nil {
			t.p.add(t.pos["client"], "client: %v", err)
		} else {
			tc.Client = a
		}
	}
	if t.str("method", &tc.Method) {
		if !isToken(tc.Method) {
			t.p.add(t.pos["method"], "method %q is not an HTTP token", tc.Method)
		}
	}
	t.str("url", &tc.URL)
	var expect string
	if t.str("expect", &expect) {
		switch e := Expectation(expect); e {
		case ExpectAllow, ExpectDeny, ExpectTunnel, ExpectBump:
			tc.Expect = e
		default:
			t.p.add(t.pos["expect"], `expect must be "ALLOW", "DENY", "TUNNEL" or "BUMP", not %q`, expect)
		}
	}
	var status int64
	if t.integer("status", 1<<31-1, &status) {
		tc.Status = int(status)
	}
	t.str("policy", &tc.Policy)
	t.str("rule", &tc.Rule)
	t.finish()
	tc.fields = t.pos
	return tc
}

// isToken reports whether s is an RFC 9110 §5.6.2 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isTokenChar: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
// / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseRuleID splits "policy#index".
func parseRuleID(id string) (policy string, index int, ok bool) {
	i := strings.LastIndexByte(id, '#')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 || id[i+1:] != strconv.Itoa(n) {
		return "", 0, false
	}
	return id[:i], n, true
}
