package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"exfilguard/conf"
)

func TestDecide(t *testing.T) {
	rs := oneClient(t,
		policyOf("api",
			allow(t, "https://api.example.com/v1/**", "GET", "HEAD"),
			deny(t, 451, "https://api.example.com/v1/admin/**"), // shadowed by #0 for GET
			deny(t, 405, "https://api.example.com/**", "DELETE"),
			allow(t, "https://api.example.com:*/**", "POST"),
			withReason(deny(t, 470, "http://*.internal.example/**"), "Policy Blocked", "Blocked by ExfilGuard\n"),
			deny(t, 413, "http://big.example/"),
			allow(t, "http://[2001:db8::1]/"),
			deny(t, 499, "http://odd.example/"),
		),
		policyOf("second",
			allow(t, "http://extension.example/", "PROPFIND"),
			allow(t, "https://any-method.example/"),
			allow(t, ""), // no pattern: every URL, every method but CONNECT
		),
	)
	for _, c := range []struct {
		name, method, url string
		action            Action
		rule              string
		status            int
		phrase, body      string
	}{
		{"first rule", "GET", "https://api.example.com/v1/users", Allow, "api#0", 0, "", ""},
		{"first match wins over a later deny", "GET", "https://api.example.com/v1/admin/x", Allow, "api#0", 0, "", ""},
		{"method not listed falls through", "PUT", "https://api.example.com/v1/admin/x", Deny, "api#1", 451, "Unavailable For Legal Reasons", ""},
		{"deny by method", "DELETE", "https://api.example.com/v2", Deny, "api#2", 405, "Method Not Allowed", ""},
		{"any port", "POST", "https://api.example.com:8443/v2", Allow, "api#3", 0, "", ""},
		{"rule without port does not match 8443", "GET", "https://api.example.com:8443/v1/users", Allow, "second#2", 0, "", ""},
		{"custom reason and body", "GET", "http://db.internal.example/x", Deny, "api#4", 470, "Policy Blocked", "Blocked by ExfilGuard\n"},
		{"standard phrase from the http crate table", "GET", "http://big.example/", Deny, "api#5", 413, "Payload Too Large", ""},
		{"unknown status phrase", "GET", "http://odd.example/", Deny, "api#7", 499, "Unknown", ""},
		{"IPv6 literal as address", "GET", "http://[2001:0db8:0:0::1]/", Allow, "api#6", 0, "", ""},
		{"extension method", "PROPFIND", "http://extension.example/", Allow, "second#0", 0, "", ""},
		{"methods are case-sensitive", "propfind", "http://extension.example/x", Allow, "second#2", 0, "", ""},
		{"lower-case get is not GET", "get", "https://api.example.com/v1/admin/x", Deny, "api#1", 451, "Unavailable For Legal Reasons", ""},
		{"dot segments resolved before matching", "GET", "https://api.example.com/v1/../v2/x", Allow, "second#2", 0, "", ""},
		{"query ignored", "DELETE", "https://api.example.com/x?y=/v1/", Deny, "api#2", 405, "Method Not Allowed", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := get(t, c.method, c.url)
			d := rs.Decide(req)
			if d.Action != c.action || d.Rule != c.rule || d.Status != c.status || d.Phrase != c.phrase || d.Body != c.body || d.Reason != ReasonRule || d.Client != "c" {
				t.Errorf("Decide(%s %s) = %+v, want %v by %s (%d %q %q)", c.method, c.url, d, c.action, c.rule, c.status, c.phrase, c.body)
			}
			if pol, _, _ := strings.Cut(c.rule, "#"); d.Policy != pol {
				t.Errorf("Decide(%s %s).Policy = %q, want %q", c.method, c.url, d.Policy, pol)
			}
		})
	}
}

func TestDefaultDeny(t *testing.T) {
	rs := oneClient(t, policyOf("p", allow(t, "https://only.example/")))
	for _, req := range []*Request{
		get(t, "GET", "https://other.example/"),
		get(t, "CONNECT", "other.example:443"),
	} {
		d := rs.Decide(req)
		want := Decision{Action: Deny, Reason: ReasonDefaultDeny, Client: "c", Status: 403, Phrase: "Forbidden", Body: "request blocked by policy\r\n"}
		if d != want {
			t.Errorf("Decide(%+v) = %+v, want %+v", req, d, want)
		}
	}
}

func TestAnyNeverMatchesConnect(t *testing.T) {
	rs := oneClient(t, policyOf("p", allow(t, "")))
	if d := rs.Decide(&Request{Client: netip.MustParseAddr("10.0.0.1"), Method: "CONNECT", Scheme: "https", Host: "h", Port: 443}); d.Action != Inspect {
		// An ALLOW for every URL bumps a CONNECT (the walk), it does not
		// match it as a method.
		t.Errorf("Decide(CONNECT) = %v, want INSPECT", d)
	}
	var v view
	v.init("CONNECT", "https", "h", 443, "")
	if r := &rs.policies[0].rules[0]; r.check(&v) != missMethod {
		t.Errorf("ANY rule check(CONNECT) = %v, want missMethod", r.check(&v))
	}
}

func TestDecideConnect(t *testing.T) {
	client := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct {
		name     string
		policies []conf.Policy
		host     string
		port     uint16
		action   Action
		rule     string
		status   int
		private  bool
	}{
		{
			name: "DENY for a sub-path before ALLOW still bumps",
			policies: []conf.Policy{policyOf("p",
				deny(t, 403, "https://h/admin/**"),
				allow(t, "https://h/**"),
			)},
			host: "h", port: 443, action: Inspect, rule: "p#1",
		},
		{
			name: "DENY ANY without pattern denies with its own status",
			policies: []conf.Policy{policyOf("p",
				allow(t, "https://allowed.example/**"),
				withReason(deny(t, 470, ""), "Policy Blocked", "Blocked\n"),
			)},
			host: "other", port: 443, action: Deny, rule: "p#1", status: 470,
		},
		{
			name: "DENY ANY with /** denies the CONNECT",
			policies: []conf.Policy{policyOf("p",
				deny(t, 451, "https://h/**"),
				allow(t, "https://h/**"),
			)},
			host: "h", port: 443, action: Deny, rule: "p#0", status: 451,
		},
		{
			name: "DENY with methods is skipped",
			policies: []conf.Policy{policyOf("p",
				deny(t, 405, "https://h/**", "POST"),
				allow(t, "https://h/**", "GET"),
			)},
			host: "h", port: 443, action: Inspect, rule: "p#1",
		},
		{
			name: "explicit CONNECT tunnel rule wins over a later inspect rule",
			policies: []conf.Policy{
				policyOf("tunnels", tunnel(t, "https://h/**")),
				policyOf("inspect", allow(t, "https://h/**")),
			},
			host: "h", port: 443, action: Tunnel, rule: "tunnels#0",
		},
		{
			name: "inspect rule in an earlier policy wins over a later tunnel",
			policies: []conf.Policy{
				policyOf("inspect", allow(t, "https://h/**")),
				policyOf("tunnels", tunnel(t, "https://h/**")),
			},
			host: "h", port: 443, action: Inspect, rule: "inspect#0",
		},
		{
			name: "CONNECT DENY rule",
			policies: []conf.Policy{policyOf("p",
				deny(t, 403, "https://*.example:*/**", "CONNECT"),
				allow(t, ""),
			)},
			host: "a.example", port: 8443, action: Deny, rule: "p#0", status: 403,
		},
		{
			name: "http patterns never match a CONNECT",
			policies: []conf.Policy{policyOf("p",
				allow(t, "http://h:443/**"),
			)},
			host: "h", port: 443, action: Deny, status: 403,
		},
		{
			name: "pattern without port: 443 only",
			policies: []conf.Policy{policyOf("p",
				allow(t, "https://h/**"),
			)},
			host: "h", port: 8443, action: Deny, status: 403,
		},
		{
			name: "tunnel with private upstream",
			policies: []conf.Policy{policyOf("p", func() conf.Rule {
				r := tunnel(t, "https://[2001:db8::5]:*/**")
				r.AllowPrivateUpstream = true
				return r
			}())},
			host: "2001:db8:0::5", port: 22, action: Tunnel, rule: "p#0", private: true,
		},
		{
			name:     "no match is default deny",
			policies: []conf.Policy{policyOf("p", allow(t, "https://h/**"))},
			host:     "nothere", port: 443, action: Deny, status: 403,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := oneClient(t, c.policies...)
			d := rs.DecideConnect(client, c.host, c.port)
			if d.Action != c.action || d.Rule != c.rule || d.Status != c.status || d.AllowPrivate != c.private {
				t.Errorf("DecideConnect(%s:%d) = %+v, want %v by %q status %d", c.host, c.port, d, c.action, c.rule, c.status)
			}
			if c.rule == "" && d.Reason != ReasonDefaultDeny {
				t.Errorf("DecideConnect(%s:%d).Reason = %q, want default_deny", c.host, c.port, d.Reason)
			}
		})
	}
}

// TestBumpThenInnerDeny: the CONNECT is bumped, and the narrower DENY is
// applied to the inner request.
func TestBumpThenInnerDeny(t *testing.T) {
	rs := oneClient(t, policyOf("p",
		withReason(deny(t, 403, "https://h/admin/**"), "", "admin is off limits\n"),
		allow(t, "https://h/**"),
	))
	if d := rs.DecideConnect(netip.MustParseAddr("10.0.0.1"), "h", 443); d.Action != Inspect {
		t.Fatalf("DecideConnect(h:443) = %v, want INSPECT", d)
	}
	if d := rs.Decide(get(t, "GET", "https://h/admin/x")); d.Action != Deny || d.Rule != "p#0" || d.Body != "admin is off limits\n" {
		t.Errorf("Decide(GET https://h/admin/x) = %+v, want DENY by p#0", d)
	}
	if d := rs.Decide(get(t, "GET", "https://h/public/../admin/x")); d.Action != Deny || d.Rule != "p#0" {
		t.Errorf("Decide(GET https://h/public/../admin/x) = %+v, want DENY by p#0", d)
	}
	if d := rs.Decide(get(t, "GET", "https://h/public")); d.Action != Allow || d.Rule != "p#1" {
		t.Errorf("Decide(GET https://h/public) = %+v, want ALLOW by p#1", d)
	}
}

// TestTunnelAfterNarrowerDeny: a tunnel rule in a later policy must not
// carry the paths that an earlier, narrower DENY forbids; the CONNECT
// fails closed with that DENY's response (review finding; SPEC §4 assumes
// a skipped DENY is followed by a bump).
func TestTunnelAfterNarrowerDeny(t *testing.T) {
	client := netip.MustParseAddr("10.0.0.1")
	rs := oneClient(t,
		policyOf("guard", withReason(deny(t, 451, "https://h.example/admin/**"), "Admin Blocked", "no admin\n")),
		policyOf("tunnels", tunnel(t, "https://h.example/**")),
	)
	d := rs.DecideConnect(client, "h.example", 443)
	if d.Action != Deny || d.Rule != "guard#0" || d.Status != 451 || d.Phrase != "Admin Blocked" || d.Reason != ReasonDenyUnenforceable {
		t.Errorf("DecideConnect(h.example:443) = %+v, want DENY 451 by guard#0, reason %s", d, ReasonDenyUnenforceable)
	}
	ex := rs.ExplainConnect(client, "h.example", 443)
	if ex.Decision != d || ex.Outcome != "deny" {
		t.Errorf("ExplainConnect = %+v / %q, want the same decision as DecideConnect", ex.Decision, ex.Outcome)
	}
	// Another host of the tunnel rule is unaffected.
	if d := rs.DecideConnect(client, "other.h.example", 443); d.Action == Tunnel {
		t.Errorf("DecideConnect(other.h.example) = %v; the pattern does not cover it", d)
	}
	if d := rs.DecideConnect(client, "other.h.example", 0); d.Action != Deny || d.Reason != ReasonDefaultDeny {
		t.Errorf("DecideConnect(port 0) = %v, want the default deny", d)
	}
	rs = oneClient(t,
		policyOf("guard", deny(t, 451, "https://h.example/admin/**")),
		policyOf("tunnels", tunnel(t, "https://*.example/**")),
	)
	if d := rs.DecideConnect(client, "x.example", 443); d.Action != Tunnel {
		t.Errorf("DecideConnect(x.example) = %v, want TUNNEL: the DENY names another host", d)
	}
}

func TestClientResolution(t *testing.T) {
	rs := mustCompile(t, &conf.Config{
		Clients: []conf.Client{
			clientOf("office", "10.42.16.0/27", "office"),
			clientOf("laptop", "10.42.48.7", "laptop"),
			clientOf("v6", "2001:db8:1::/48", "office"),
			fallbackOf("everyone", "0.0.0.0/0", "deny"),
			clientOf("same-as-fallback", "0.0.0.0/0", "office"), // takes the prefix over
		},
		Policies: []conf.Policy{
			policyOf("office", allow(t, "")),
			policyOf("laptop", allow(t, "")),
			policyOf("deny", deny(t, 470, "")),
		},
	})
	for _, c := range []struct{ addr, client string }{
		{"10.42.16.1", "office"},
		{"::ffff:10.42.16.31", "office"},
		{"10.42.16.32", "same-as-fallback"},
		{"10.42.48.7", "laptop"},
		{"10.42.48.8", "same-as-fallback"},
		{"2001:db8:1:2::1", "v6"},
		{"2001:db8:2::1", "everyone"},
		{"::1", "everyone"},
	} {
		a := netip.MustParseAddr(c.addr)
		if got := rs.Client(a); got != c.client {
			t.Errorf("Client(%s) = %q, want %q", c.addr, got, c.client)
		}
		if d := rs.Decide(&Request{Client: a, Method: "GET", Scheme: "http", Host: "h", Port: 80, Path: "/"}); d.Client != c.client {
			t.Errorf("Decide from %s: Client = %q, want %q", c.addr, d.Client, c.client)
		}
	}
	if got := rs.Client(netip.Addr{}); got != "everyone" {
		t.Errorf("Client(invalid) = %q, want the fallback", got)
	}
}

func TestCompileErrors(t *testing.T) {
	good := func() *conf.Config {
		return &conf.Config{
			Clients:  []conf.Client{fallbackOf("all", "0.0.0.0/0", "p")},
			Policies: []conf.Policy{policyOf("p", allow(t, ""))},
		}
	}
	for _, c := range []struct {
		name   string
		mutate func(*conf.Config)
		want   string
	}{
		{"nil config", nil, "nil config"},
		{"no fallback", func(c *conf.Config) { c.Clients[0].Fallback = false }, "no fallback client"},
		{"two fallbacks", func(c *conf.Config) {
			c.Clients = append(c.Clients, fallbackOf("all6", "::/0", "p"))
		}, "second fallback"},
		{"unknown policy", func(c *conf.Config) { c.Clients[0].Policies = []string{"nope"} }, "unknown policy"},
		{"no policies", func(c *conf.Config) { c.Clients[0].Policies = nil }, "no policies"},
		{"invalid selector", func(c *conf.Config) { c.Clients[0].Prefix = netip.Prefix{} }, "no valid selector"},
		{"mapped selector", func(c *conf.Config) {
			c.Clients = append(c.Clients, clientOf("m", "::ffff:10.0.0.0/104", "p"))
		}, "IPv4-mapped"},
		{"duplicate client", func(c *conf.Config) {
			c.Clients = append(c.Clients, clientOf("all", "10.0.0.1", "p"))
		}, "duplicate client"},
		{"duplicate policy", func(c *conf.Config) { c.Policies = append(c.Policies, c.Policies[0]) }, "duplicate policy"},
		{"bad action", func(c *conf.Config) { c.Policies[0].Rules[0].Action = 0 }, "not ALLOW or DENY"},
		{"deny without status", func(c *conf.Config) { c.Policies[0].Rules[0] = deny(t, 0, "") }, "status 0"},
		{"reason with CRLF", func(c *conf.Config) {
			c.Policies[0].Rules[0] = withReason(deny(t, 403, ""), "x\r\nSet-Cookie: a", "")
		}, "control character"},
		{"empty methods", func(c *conf.Config) { c.Policies[0].Rules[0].Methods = []string{} }, "methods is empty"},
		{"CONNECT mixed", func(c *conf.Config) { c.Policies[0].Rules[0].Methods = []string{"GET", "CONNECT"} }, "CONNECT must not be combined"},
		{"CONNECT ALLOW inspecting", func(c *conf.Config) {
			c.Policies[0].Rules[0].Methods = []string{"CONNECT"}
		}, "inspect_payload = false"},
		{"tunnel without CONNECT", func(c *conf.Config) { c.Policies[0].Rules[0].InspectPayload = false }, "needs methods"},
		{"bad pattern", func(c *conf.Config) {
			c.Policies[0].Rules[0].URLPattern = &conf.URLPattern{Raw: "gopher://h", Scheme: "gopher", Host: "h", Port: 70}
		}, "not http or https"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cfg *conf.Config
			if c.mutate != nil {
				cfg = good()
				c.mutate(cfg)
			}
			rs, err := Compile(cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Compile = %v, %v; want an error containing %q", rs, err, c.want)
			}
		})
	}
	if _, err := Compile(good()); err != nil {
		t.Fatalf("Compile(good) = %v", err)
	}
	// Positions come through for `exfilguard check`.
	cfg := good()
	cfg.Policies[0].Rules[0] = deny(t, 1000, "")
	cfg.Policies[0].Rules[0].Pos = conf.Pos{File: "p.toml", Line: 7, Col: 1}
	_, err := Compile(cfg)
	if errs := conf.Errors(err); len(errs) != 1 || errs[0].Pos.Line != 7 || !strings.HasPrefix(err.Error(), "p.toml:7:1: ") {
		t.Errorf("Compile error = %v, want one error at p.toml:7:1", err)
	}
}

func TestStatusPhrase(t *testing.T) {
	for code, want := range map[int]string{
		403: "Forbidden", 413: "Payload Too Large", 421: "Misdirected Request",
		451: "Unavailable For Legal Reasons", 470: "Unknown", 203: "Non Authoritative Information",
		999: "Unknown", 100: "Continue", 511: "Network Authentication Required",
	} {
		if got := StatusPhrase(code); got != want {
			t.Errorf("StatusPhrase(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Deny: "DENY", Allow: "ALLOW", Tunnel: "TUNNEL", Inspect: "INSPECT", 9: "Action(9)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", a, got, want)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	rs, reqs := bigRuleset(t, 1000)
	for _, req := range []*Request{reqs.first, reqs.last, reqs.none, reqs.glob} {
		if n := testing.AllocsPerRun(100, func() { rs.Decide(req) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %v times, want 0", req, n)
		}
	}
	a := netip.MustParseAddr("10.0.0.1")
	if n := testing.AllocsPerRun(100, func() { rs.DecideConnect(a, "host999.example.com", 443) }); n != 0 {
		t.Errorf("DecideConnect allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { rs.DecideConnect(a, "[2001:db8::1]", 443) }); n != 0 {
		t.Errorf("DecideConnect(IPv6) allocates %v times, want 0", n)
	}
}

type benchReqs struct{ first, last, none, glob *Request }

// bigRuleset is one policy of n rules, each for its own host, with a mix
// of methods and path shapes, plus a client trie of 10,000 selectors.
func bigRuleset(tb testing.TB, n int) (*Ruleset, benchReqs) {
	tb.Helper()
	rules := make([]conf.Rule, 0, n)
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("host%d.example.com", i)
		switch i % 4 {
		case 0:
			rules = append(rules, allow(tb, "https://"+host+"/api/**", "GET", "HEAD"))
		case 1:
			rules = append(rules, deny(tb, 403, "https://"+host+"/admin/**"))
		case 2:
			rules = append(rules, allow(tb, "https://*."+host+"/v*/**/x"))
		default:
			rules = append(rules, allow(tb, "https://"+host+"/exact/path", "POST"))
		}
	}
	clients := []conf.Client{fallbackOf("fallback", "0.0.0.0/0", "big")}
	for i := 0; i < 10000; i++ {
		clients = append(clients, clientOf(fmt.Sprintf("c%d", i), fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), "big"))
	}
	rs := mustCompile(tb, &conf.Config{Clients: clients, Policies: []conf.Policy{policyOf("big", rules...)}})
	client := netip.MustParseAddr("10.20.30.40")
	last := n - 1
	for last%4 != 0 {
		last--
	}
	return rs, benchReqs{
		first: &Request{Client: client, Method: "GET", Scheme: "https", Host: "host0.example.com", Port: 443, Path: "/api/v1/users/42"},
		last:  &Request{Client: client, Method: "GET", Scheme: "https", Host: fmt.Sprintf("host%d.example.com", last), Port: 443, Path: "/api/v1/users/42"},
		none:  &Request{Client: client, Method: "GET", Scheme: "https", Host: "nothing.example.org", Port: 443, Path: "/"},
		glob:  &Request{Client: client, Method: "GET", Scheme: "https", Host: "a.host2.example.com", Port: 443, Path: "/v2/a/b/x"},
	}
}

func BenchmarkDecide(b *testing.B) {
	rs, reqs := bigRuleset(b, 1000)
	for _, c := range []struct {
		name string
		req  *Request
		rule string
	}{
		{"first", reqs.first, "big#0"},
		{"glob-third", reqs.glob, "big#2"},
		{"last-of-1000", reqs.last, "big#996"},
		{"default-deny-1000", reqs.none, ""},
	} {
		if d := rs.Decide(c.req); d.Rule != c.rule {
			b.Fatalf("Decide(%+v) = %+v, want rule %q", c.req, d, c.rule)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rs.Decide(c.req)
			}
		})
	}
}

func BenchmarkDecideConnect(b *testing.B) {
	rs, _ := bigRuleset(b, 1000)
	a := netip.MustParseAddr("10.20.30.40")
	b.ReportAllocs()
	for b.Loop() {
		rs.DecideConnect(a, "host996.example.com", 443)
	}
}

func BenchmarkClientLookup10k(b *testing.B) {
	rs, _ := bigRuleset(b, 4)
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{10, byte(i * 7 % 40), byte(i * 13), byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rs.client(addrs[i%len(addrs)])
		i++
	}
}

// TestDecideConcurrent shares one Ruleset between goroutines; run with
// -race.
func TestDecideConcurrent(t *testing.T) {
	rs := parityRuleset(t)
	done := make(chan Decision)
	for g := 0; g < 4; g++ {
		go func() {
			var last Decision
			for i := 0; i < 200; i++ {
				last = rs.Decide(&Request{Client: netip.MustParseAddr("10.42.16.5"), Method: "GET", Scheme: "https", Host: "api.example.com", Port: 443, Path: "/v1/x"})
				rs.DecideConnect(netip.MustParseAddr("192.0.2.1"), "api.example.com", 443)
			}
			done <- last
		}()
	}
	for g := 0; g < 4; g++ {
		if d := <-done; d.Rule != "api#2" {
			t.Errorf("Decide = %+v, want api#2", d)
		}
	}
}
