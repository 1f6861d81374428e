package policy

import (
	"net/netip"
	"strconv"
	"testing"

	"exfilguard/conf"
)

// The helpers build conf values directly, as conf's loader would after
// validation.

func pattern(tb testing.TB, s string) *conf.URLPattern {
	tb.Helper()
	if s == "" {
		return nil
	}
	p, err := conf.ParseURLPattern(s)
	if err != nil {
		tb.Fatalf("ParseURLPattern(%q) = %v", s, err)
	}
	return p
}

func compiled(tb testing.TB, s string) *Pattern {
	tb.Helper()
	p, err := CompilePattern(pattern(tb, s))
	if err != nil {
		tb.Fatalf("CompilePattern(%q) = %v", s, err)
	}
	return p
}

// allow is an ALLOW rule (inspect_payload true); no methods means ANY.
func allow(tb testing.TB, pat string, methods ...string) conf.Rule {
	tb.Helper()
	r := conf.Rule{Action: conf.Allow, URLPattern: pattern(tb, pat), InspectPayload: true}
	if len(methods) > 0 {
		r.Methods = methods
	}
	return r
}

// tunnel is a CONNECT-only ALLOW rule with inspect_payload false.
func tunnel(tb testing.TB, pat string) conf.Rule {
	tb.Helper()
	return conf.Rule{Action: conf.Allow, Methods: []string{"CONNECT"}, URLPattern: pattern(tb, pat)}
}

// deny is a DENY rule with status; no methods means ANY.
func deny(tb testing.TB, status int, pat string, methods ...string) conf.Rule {
	tb.Helper()
	r := conf.Rule{Action: conf.Deny, Status: status, URLPattern: pattern(tb, pat), InspectPayload: true}
	if len(methods) > 0 {
		r.Methods = methods
	}
	return r
}

func withReason(r conf.Rule, reason, body string) conf.Rule {
	r.Reason, r.Body = reason, body
	return r
}

func policyOf(name string, rules ...conf.Rule) conf.Policy {
	for i := range rules {
		rules[i].Pos = conf.Pos{File: "policies.toml", Line: 10 + i, Col: 1}
	}
	return conf.Policy{Name: name, Rules: rules, Pos: conf.Pos{File: "policies.toml", Line: 1, Col: 1}}
}

func clientOf(name, selector string, policies ...string) conf.Client {
	var p netip.Prefix
	if pp, err := netip.ParsePrefix(selector); err == nil {
		p = pp
	} else {
		a := netip.MustParseAddr(selector)
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return conf.Client{Name: name, Prefix: p, Policies: policies, Pos: conf.Pos{File: "clients.toml", Line: 1, Col: 1}}
}

func fallbackOf(name, selector string, policies ...string) conf.Client {
	c := clientOf(name, selector, policies...)
	c.Fallback = true
	return c
}

func mustCompile(tb testing.TB, cfg *conf.Config) *Ruleset {
	tb.Helper()
	rs, err := Compile(cfg)
	if err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	return rs
}

// oneClient compiles the policies for a single fallback client "c" that
// uses all of them in order.
func oneClient(tb testing.TB, policies ...conf.Policy) *Ruleset {
	tb.Helper()
	var names []string
	for _, p := range policies {
		names = append(names, p.Name)
	}
	return mustCompile(tb, &conf.Config{
		Clients:  []conf.Client{fallbackOf("c", "0.0.0.0/0", names...)},
		Policies: policies,
	})
}

// get builds a GET request for an absolute URL from 10.0.0.1.
func get(tb testing.TB, method, url string) *Request {
	tb.Helper()
	req, err := NewRequest(netip.MustParseAddr("10.0.0.1"), method, url)
	if err != nil {
		tb.Fatalf("NewRequest(%q, %q) = %v", method, url, err)
	}
	return req
}

func ruleID(policy string, i int) string { return policy + "#" + strconv.Itoa(i) }
