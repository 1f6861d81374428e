package policy

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"exfilguard/conf"
)

// parityRuleset has a bit of everything: several clients, tunnel rules,
// narrow and wide denials, wildcards, IP literals.
func parityRuleset(tb testing.TB) *Ruleset {
	tb.Helper()
	return mustCompile(tb, &conf.Config{
		Clients: []conf.Client{
			clientOf("office", "10.42.16.0/27", "tunnels", "api", "catch-all"),
			clientOf("laptop", "2001:db8:1::7", "api"),
			fallbackOf("others", "0.0.0.0/0", "catch-all"),
		},
		Policies: []conf.Policy{
			policyOf("tunnels",
				tunnel(t(tb), "https://secure.partner.com/**"),
				deny(tb, 403, "https://*.blocked.example:*/**", "CONNECT"),
			),
			policyOf("api",
				deny(tb, 451, "https://api.example.com/admin/**"),
				deny(tb, 405, "https://api.example.com/**", "DELETE"),
				allow(tb, "https://api.example.com/**", "GET", "HEAD", "POST"),
				allow(tb, "http://[2001:db8::1]:8080/**"),
				allow(tb, "https://**.cdn.example/static/*.js", "GET"),
			),
			policyOf("catch-all",
				withReason(deny(tb, 470, ""), "Policy Blocked", "Blocked by ExfilGuard\n"),
			),
		},
	})
}

// t adapts a testing.TB for the helpers that take one; it exists only to
// keep the table above readable.
func t(tb testing.TB) testing.TB { return tb }

var parityCases = []struct{ client, method, target string }{
	{"10.42.16.5", "GET", "https://api.example.com/v1/x"},
	{"10.42.16.5", "GET", "https://api.example.com/admin/x"},
	{"10.42.16.5", "DELETE", "https://api.example.com/v1/x"},
	{"10.42.16.5", "PUT", "https://api.example.com/v1/x"},
	{"10.42.16.5", "GET", "https://API.Example.COM./v1/../admin/"},
	{"10.42.16.5", "GET", "http://[2001:0db8::1]:8080/x"},
	{"10.42.16.5", "GET", "https://a.b.cdn.example/static/app.js"},
	{"10.42.16.5", "GET", "https://cdn.example/static/app.js"},
	{"10.42.16.5", "CONNECT", "secure.partner.com:443"},
	{"10.42.16.5", "CONNECT", "x.blocked.example:8443"},
	{"10.42.16.5", "CONNECT", "api.example.com:443"},
	{"10.42.16.5", "CONNECT", "api.example.com:8443"},
	{"10.42.16.5", "CONNECT", "nowhere.example:443"},
	{"::ffff:10.42.16.9", "GET", "https://api.example.com/"},
	{"2001:db8:1::7", "GET", "https://api.example.com/"},
	{"2001:db8:1::7", "CONNECT", "secure.partner.com:443"},
	{"2001:db8:1::7", "POST", "http://nowhere.example/"},
	{"192.0.2.1", "GET", "https://api.example.com/"},
	{"192.0.2.1", "CONNECT", "api.example.com:443"},
}

func TestExplainAgreesWithDecide(t *testing.T) {
	rs := parityRuleset(t)
	for _, c := range parityCases {
		req, err := NewRequest(netip.MustParseAddr(c.client), c.method, c.target)
		if err != nil {
			t.Fatalf("NewRequest(%s %s) = %v", c.method, c.target, err)
		}
		d := rs.Decide(req)
		e := rs.Explain(req)
		if e.Decision != d {
			t.Errorf("%s %s from %s: Explain decided %+v, Decide %+v", c.method, c.target, c.client, e.Decision, d)
		}
		if c.method == "CONNECT" {
			if dc := rs.DecideConnect(req.Client, req.Host, req.Port); dc != d {
				t.Errorf("CONNECT %s: DecideConnect = %+v, Decide = %+v", c.target, dc, d)
			}
			if ec := rs.ExplainConnect(req.Client, req.Host, req.Port); ec.Decision != d {
				t.Errorf("CONNECT %s: ExplainConnect = %+v, Decide = %+v", c.target, ec.Decision, d)
			}
		}
		// The last rule traced is the deciding one, marked "match".
		if d.Reason == ReasonRule {
			last := e.Policies[len(e.Policies)-1]
			lr := last.Rules[len(last.Rules)-1]
			if lr.Rule != d.Rule || lr.Result != "match" {
				t.Errorf("%s %s: last traced rule %+v, want %s matched", c.method, c.target, lr, d.Rule)
			}
		}
		var buf bytes.Buffer
		if err := e.WriteText(&buf); err != nil {
			t.Errorf("WriteText = %v", err)
		}
		if _, err := json.Marshal(e); err != nil {
			t.Errorf("json.Marshal(Explanation) = %v", err)
		}
	}
}

func TestExplainText(t *testing.T) {
	rs := parityRuleset(t)
	req, err := NewRequest(netip.MustParseAddr("10.42.16.5"), "DELETE", "https://api.example.com/v1/x?q=1")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rs.Explain(req).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	want := `request   DELETE https://api.example.com:443/v1/x from 10.42.16.5
client    office: selector 10.42.16.0/27 is the longest that contains 10.42.16.5
policy    tunnels
  tunnels#0  ALLOW  CONNECT  https://secure.partner.com/**   no match: CONNECT rule: used for CONNECT only
  tunnels#1  DENY   CONNECT  https://*.blocked.example:*/**  no match: CONNECT rule: used for CONNECT only
policy    api
  api#0  DENY  ANY     https://api.example.com/admin/**  no match: path /v1/x does not match /admin/**
  api#1  DENY  DELETE  https://api.example.com/**        match: method, scheme, host, port and path match
decision  DENY by rule api#1
outcome   deny: 405 Method Not Allowed, body ""
`
	if got := buf.String(); got != want {
		t.Errorf("WriteText:\n%s\nwant:\n%s", got, want)
	}

	buf.Reset()
	if err := rs.ExplainConnect(netip.MustParseAddr("192.0.2.1"), "api.example.com", 443).WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"request   CONNECT api.example.com:443 from 192.0.2.1",
		"client    others: selector 0.0.0.0/0 is the longest that contains 192.0.2.1 (the fallback client's own selector)",
		"catch-all#0",
		"match: DENY for every method and path matches the authority: CONNECT denied",
		`outcome   deny: 470 Policy Blocked, body "Blocked by ExfilGuard\n"`,
	} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("ExplainConnect text lacks %q:\n%s", s, buf.String())
		}
	}
}

func TestExplainConnectTrace(t *testing.T) {
	rs := oneClient(t, policyOf("p",
		deny(t, 403, "https://h/admin/**"),
		deny(t, 405, "https://h/**", "POST"),
		allow(t, "http://h/**"),
		allow(t, "https://h/**"),
	))
	e := rs.ExplainConnect(netip.MustParseAddr("10.0.0.1"), "h", 443)
	var results []string
	for _, r := range e.Policies[0].Rules {
		results = append(results, r.Result)
	}
	if got, want := strings.Join(results, ","), "skip,skip,no match,match"; got != want {
		t.Errorf("ExplainConnect results = %s, want %s", got, want)
	}
	if e.Outcome != "bump" || e.Decision.Action != Inspect {
		t.Errorf("ExplainConnect outcome = %s %v, want bump INSPECT", e.Outcome, e.Decision.Action)
	}
	if why := e.Policies[0].Rules[2].Why; !strings.Contains(why, "CONNECT is matched as https") {
		t.Errorf("http rule why = %q", why)
	}
}

func TestExplainFallbackClient(t *testing.T) {
	rs := mustCompile(t, &conf.Config{
		Clients: []conf.Client{
			clientOf("office", "10.0.0.0/8", "p"),
			fallbackOf("rest", "192.0.2.1", "p"),
		},
		Policies: []conf.Policy{policyOf("p", allow(t, ""))},
	})
	e := rs.Explain(get(t, "GET", "http://h/"))
	if e.Client.Name != "office" || e.Client.Selector != "10.0.0.0/8" || e.Client.Fallback {
		t.Errorf("Explain client = %+v, want office by 10.0.0.0/8", e.Client)
	}
	e = rs.Explain(&Request{Client: netip.MustParseAddr("2001:db8::1"), Method: "GET", Scheme: "http", Host: "h", Path: "/"})
	if e.Client.Name != "rest" || e.Client.Selector != "" || !e.Client.Fallback || !strings.Contains(e.Client.Why, "no selector contains") {
		t.Errorf("Explain client = %+v, want the fallback with no selector", e.Client)
	}
}
