package policy

import (
	"net/netip"
	"strings"
	"testing"

	"exfilguard/conf"
)

func testAt(line int, client, method, url string, expect conf.Expectation) conf.Test {
	return conf.Test{
		Pos:    conf.Pos{File: "policies.toml", Line: line, Col: 1},
		Client: netip.MustParseAddr(client),
		Method: method,
		URL:    url,
		Expect: expect,
	}
}

func TestRunTests(t *testing.T) {
	rs := parityRuleset(t)
	withStatus := func(tc conf.Test, status int) conf.Test { tc.Status = status; return tc }
	withRule := func(tc conf.Test, policy, rule string) conf.Test { tc.Policy, tc.Rule = policy, rule; return tc }
	passing := []conf.Test{
		testAt(1, "10.42.16.5", "", "https://api.example.com/v1/x", conf.ExpectAllow),
		testAt(2, "10.42.16.5", "GET", "https://api.example.com/admin/x", conf.ExpectDeny),
		withStatus(testAt(3, "10.42.16.5", "GET", "https://api.example.com/admin/x", conf.ExpectDeny), 451),
		withRule(testAt(4, "10.42.16.5", "DELETE", "https://api.example.com/x", conf.ExpectDeny), "api", "api#1"),
		testAt(5, "10.42.16.5", "CONNECT", "secure.partner.com:443", conf.ExpectTunnel),
		testAt(6, "10.42.16.5", "CONNECT", "api.example.com:443", conf.ExpectBump),
		testAt(7, "10.42.16.5", "CONNECT", "api.example.com:443", conf.ExpectAllow),
		withStatus(testAt(8, "192.0.2.1", "CONNECT", "api.example.com:443", conf.ExpectDeny), 470),
		withStatus(testAt(9, "2001:db8:1::7", "GET", "https://nowhere.example/", conf.ExpectDeny), 403),
		testAt(10, "10.42.16.5", "GET", "http://[2001:db8::1]:8080/", conf.ExpectAllow),
		testAt(11, "10.42.16.5", "GET", "https://api.example.com/x/../admin/y?z", conf.ExpectDeny),
	}
	if f := RunTests(rs, passing); len(f) != 0 {
		t.Fatalf("RunTests(passing) = %v", f)
	}

	for _, c := range []struct {
		test conf.Test
		want string
	}{
		{
			testAt(20, "10.42.16.5", "GET", "https://api.example.com/admin/x", conf.ExpectAllow),
			"policies.toml:20:1: policy test failed: expected ALLOW, got DENY 451 (decided by rule api#0)",
		},
		{
			withStatus(testAt(21, "10.42.16.5", "GET", "https://api.example.com/admin/x", conf.ExpectDeny), 403),
			"policies.toml:21:1: policy test failed: expected DENY 403, got DENY 451 (decided by rule api#0)",
		},
		{
			testAt(22, "2001:db8:1::7", "GET", "https://nowhere.example/", conf.ExpectAllow),
			"policies.toml:22:1: policy test failed: expected ALLOW, got DENY 403 (default deny)",
		},
		{
			testAt(23, "10.42.16.5", "CONNECT", "secure.partner.com:443", conf.ExpectBump),
			"policies.toml:23:1: policy test failed: expected BUMP, got TUNNEL (decided by rule tunnels#0)",
		},
		{
			withRule(testAt(24, "10.42.16.5", "GET", "https://api.example.com/x", conf.ExpectAllow), "", "api#3"),
			"policies.toml:24:1: policy test failed: expected ALLOW by rule api#3, got ALLOW (decided by rule api#2)",
		},
		{
			withRule(testAt(25, "10.42.16.5", "GET", "https://api.example.com/x", conf.ExpectAllow), "tunnels", ""),
			"policies.toml:25:1: policy test failed: expected ALLOW by policy tunnels, got ALLOW (decided by rule api#2)",
		},
		{
			testAt(26, "10.42.16.5", "GET", "https://api.example.com/x", conf.ExpectTunnel),
			"policies.toml:26:1: policy test failed: expected TUNNEL, got ALLOW (decided by rule api#2)",
		},
		{
			testAt(27, "10.42.16.5", "GET", "https://api.example.com/%2e%2e/admin", conf.ExpectDeny),
			`policies.toml:27:1: policy test failed: url "https://api.example.com/%2e%2e/admin": canonical path: dot segment written with %2e`,
		},
		{
			testAt(28, "10.42.16.5", "CONNECT", "api.example.com", conf.ExpectBump),
			`policies.toml:28:1: policy test failed: CONNECT target "api.example.com": no port`,
		},
	} {
		f := RunTests(rs, []conf.Test{c.test})
		if len(f) != 1 {
			t.Errorf("RunTests(line %d) = %v, want one failure", c.test.Pos.Line, f)
			continue
		}
		if got := f[0].Error(); got != c.want {
			t.Errorf("failure = %q\nwant        %q", got, c.want)
		}
	}
}

func TestNewRequest(t *testing.T) {
	client := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct {
		method, target string
		want           Request // zero Method: an error
	}{
		{"", "https://Example.com/a?b", Request{Method: "GET", Scheme: "https", Host: "example.com", Port: 443, Path: "/a"}},
		{"GET", "HTTP://example.com", Request{Method: "GET", Scheme: "http", Host: "example.com", Port: 80, Path: "/"}},
		{"GET", "http://example.com:8080?x", Request{Method: "GET", Scheme: "http", Host: "example.com", Port: 8080, Path: "/"}},
		{"GET", "http://[2001:DB8::1]:81/x/./y", Request{Method: "GET", Scheme: "http", Host: "2001:db8::1", Port: 81, Path: "/x/y"}},
		{"GET", "http://10.0.0.1/", Request{Method: "GET", Scheme: "http", Host: "10.0.0.1", Port: 80, Path: "/"}},
		{"GET", "http://example.com./", Request{Method: "GET", Scheme: "http", Host: "example.com.", Port: 80, Path: "/"}},
		{"CONNECT", "example.com:443", Request{Method: "CONNECT", Scheme: "https", Host: "example.com", Port: 443}},
		{"CONNECT", "[::1]:8443", Request{Method: "CONNECT", Scheme: "https", Host: "::1", Port: 8443}},
		{"GET", "ftp://example.com/", Request{}},
		{"GET", "example.com/", Request{}},
		{"GET", "https://user@example.com/", Request{}},
		{"GET", "https://example.com/#frag", Request{}},
		{"GET", "https://exa mple.com/", Request{}},
		{"GET", "https:///x", Request{}},
		{"GET", "https://example.com:0/", Request{}},
		{"GET", "https://example.com:65536/", Request{}},
		{"GET", "https://example.com:/", Request{}},
		{"GET", "https://example.com:08/", Request{}},
		{"GET", "https://2001:db8::1/", Request{}},
		{"GET", "https://[2001:db8::1/", Request{}},
		{"GET", "https://[10.0.0.1]/", Request{}},
		{"GET", "https://[::1]x/", Request{}},
		{"GET", "https://0177.0.0.1/", Request{}},
		{"GET", "https://0x7f.1/", Request{}},
		{"GET", "https://2130706433/", Request{}},
		{"GET", "https://ex_ample.com/", Request{Method: "GET", Scheme: "https", Host: "ex_ample.com", Port: 443, Path: "/"}},
		{"GET", "https://ex%41mple.com/", Request{}},
		{"GET", "https://a..b/", Request{}},
		{"GET", "https://h/a\\b", Request{}},
		{"CONNECT", "example.com", Request{}},
		{"CONNECT", "example.com:443/x", Request{}},
		{"CONNECT", "https://example.com:443", Request{}},
		{"CONNECT", ":443", Request{}},
	} {
		got, err := NewRequest(client, c.method, c.target)
		if c.want.Method == "" {
			if err == nil {
				t.Errorf("NewRequest(%q, %q) = %+v, want an error", c.method, c.target, got)
			}
			continue
		}
		c.want.Client = client
		if err != nil || *got != c.want {
			t.Errorf("NewRequest(%q, %q) = %+v, %v; want %+v", c.method, c.target, got, err, c.want)
		}
	}
	if _, err := NewRequest(client, "GET", "https://h/%2e%2e/x"); err == nil || !strings.Contains(err.Error(), "%2e") {
		t.Errorf("NewRequest(encoded dot segment) = %v", err)
	}
}
