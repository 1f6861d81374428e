package policy

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"

	"exfilguard/conf"
)

// Explanation says how a request was decided, for `exfilguard explain`
// (SPEC §2): the client chosen and why, every rule considered and why it
// did or did not match, and the decision. Explain walks the rules with
// the same matching code as Decide, so both always agree.
type Explanation struct {
	Request  ExplainedRequest `json:"request"`
	Client   ClientChoice     `json:"client"`
	Policies []PolicyTrace    `json:"policies"`
	Decision Decision         `json:"decision"`
	// Outcome is "forward", "tunnel", "bump" or "deny".
	Outcome string `json:"outcome"`
}

// ExplainedRequest is the request as it was matched.
type ExplainedRequest struct {
	Client netip.Addr `json:"client"`
	Method string     `json:"method"`
	Scheme string     `json:"scheme"`
	Host   string     `json:"host"`
	Port   uint16     `json:"port"`
	// Path is the canonical policy path; empty for CONNECT.
	Path string `json:"path,omitempty"`
}

// ClientChoice is the client a request was resolved to.
type ClientChoice struct {
	Name string `json:"name"`
	// Selector is the longest selector that contains the address, empty
	// when none does and the fallback client was used.
	Selector string `json:"selector,omitempty"`
	Fallback bool   `json:"fallback"`
	Why      string `json:"why"`
}

// PolicyTrace is one policy of the client and the rules of it that were
// considered, up to the deciding one.
type PolicyTrace struct {
	Name  string      `json:"name"`
	Rules []RuleTrace `json:"rules"`
}

// RuleTrace is one rule considered.
type RuleTrace struct {
	// Rule is the rule id, "policy#index".
	Rule string `json:"rule"`
	// Pos is where the rule is written, FILE:LINE:COL.
	Pos        string `json:"pos,omitempty"`
	Action     string `json:"action"`
	Methods    string `json:"methods"`
	URLPattern string `json:"url_pattern,omitempty"`
	// Result is "match" (the rule decided), "no match" or "skip" (a
	// narrower DENY passed over by the CONNECT walk).
	Result string `json:"result"`
	Why    string `json:"why"`
}

// Rule trace results.
const (
	resultMatch   = "match"
	resultNoMatch = "no match"
	resultSkip    = "skip"
)

// Explain explains Decide(req). A Request with Method CONNECT is
// explained as ExplainConnect does.
func (rs *Ruleset) Explain(req *Request) Explanation {
	if req.Method == "CONNECT" {
		return rs.ExplainConnect(req.Client, req.Host, req.Port)
	}
	var v view
	v.init(req.Method, req.Scheme, req.Host, req.Port, req.Path)
	e := Explanation{Request: ExplainedRequest{
		Client: req.Client, Method: req.Method, Scheme: req.Scheme,
		Host: req.Host, Port: v.port, Path: req.Path,
	}}
	c := rs.explainClient(&e, req.Client)
	for _, p := range c.policies {
		pt := PolicyTrace{Name: p.name, Rules: []RuleTrace{}}
		for i := range p.rules {
			r := &p.rules[i]
			t := r.trace()
			m := r.check(&v)
			if m == matchOK {
				t.Result, t.Why = resultMatch, r.matchWhy()
				pt.Rules = append(pt.Rules, t)
				e.Policies = append(e.Policies, pt)
				e.Decision = r.info.dec
				e.Decision.Client = c.name
				e.Outcome = outcome(e.Decision)
				return e
			}
			t.Result, t.Why = resultNoMatch, r.mismatchWhy(m, &v, req.Host)
			pt.Rules = append(pt.Rules, t)
		}
		e.Policies = append(e.Policies, pt)
	}
	e.Decision = defaultDeny(c)
	e.Outcome = outcome(e.Decision)
	return e
}

// ExplainConnect explains DecideConnect(client, host, port).
func (rs *Ruleset) ExplainConnect(client netip.Addr, host string, port uint16) Explanation {
	var v view
	v.init("CONNECT", "https", host, port, "")
	e := Explanation{Request: ExplainedRequest{
		Client: client, Method: "CONNECT", Scheme: "https", Host: host, Port: v.port,
	}}
	c := rs.explainClient(&e, client)
	var skipped *rule // as in DecideConnect
	for _, p := range c.policies {
		pt := PolicyTrace{Name: p.name, Rules: []RuleTrace{}}
		for i := range p.rules {
			r := &p.rules[i]
			t := r.trace()
			switch st, m := r.connectStep(&v); st {
			case stepDecide:
				t.Result, t.Why = resultMatch, r.connectWhy()
				e.Decision = r.info.cdec
				if e.Decision.Action == Tunnel && skipped != nil {
					t.Why = fmt.Sprintf("CONNECT rule matches the authority, but a tunnel cannot enforce the earlier DENY %s: CONNECT denied with that rule's response", skipped.info.id)
					e.Decision = skipped.info.dec
					e.Decision.Reason = ReasonDenyUnenforceable
				}
				pt.Rules = append(pt.Rules, t)
				e.Policies = append(e.Policies, pt)
				e.Decision.Client = c.name
				e.Outcome = outcome(e.Decision)
				return e
			case stepSkip:
				if skipped == nil {
					skipped = r
				}
				t.Result, t.Why = resultSkip, "DENY for some paths only: enforced on the inner requests if the CONNECT is bumped"
				if !r.anyMethod {
					t.Why = "DENY for some methods only: enforced on the inner requests if the CONNECT is bumped"
				}
			default:
				t.Result, t.Why = resultNoMatch, r.mismatchWhy(m, &v, host)
			}
			pt.Rules = append(pt.Rules, t)
		}
		e.Policies = append(e.Policies, pt)
	}
	e.Decision = defaultDeny(c)
	e.Outcome = outcome(e.Decision)
	return e
}

func (rs *Ruleset) explainClient(e *Explanation, a netip.Addr) *client {
	c := rs.client(a)
	e.Client.Name, e.Client.Fallback = c.name, c.fallback
	p, _, ok := rs.trie.Lookup(a)
	switch {
	case !ok:
		e.Client.Why = fmt.Sprintf("no selector contains %s: fallback client", a)
	default:
		e.Client.Selector = p.String()
		e.Client.Why = fmt.Sprintf("selector %s is the longest that contains %s", p, a)
		if c.fallback {
			e.Client.Why += " (the fallback client's own selector)"
		}
	}
	if a.Is4In6() {
		e.Client.Why += fmt.Sprintf("; %s is IPv4-mapped and was looked up as %s", a, a.Unmap())
	}
	return c
}

func (r *rule) trace() RuleTrace {
	t := RuleTrace{Rule: r.info.id, Action: r.info.action.String(), Methods: "ANY"}
	if r.info.pos.File != "" {
		t.Pos = r.info.pos.String()
	}
	if !r.anyMethod {
		t.Methods = strings.Join(r.info.methods, ",")
	}
	if r.hasPattern {
		t.URLPattern = r.pat.x.raw
	}
	return t
}

func (r *rule) matchWhy() string {
	if !r.hasPattern {
		return "method matches; no url_pattern, so every URL matches"
	}
	return "method, scheme, host, port and path match"
}

func (r *rule) connectWhy() string {
	switch {
	case r.connectOnly && r.info.action == conf.Allow:
		return "CONNECT rule matches the authority: tunnel"
	case r.connectOnly:
		return "CONNECT rule matches the authority: CONNECT denied"
	case r.info.action == conf.Deny:
		return "DENY for every method and path matches the authority: CONNECT denied"
	}
	return "ALLOW matches the authority: bump, and decide each inner request"
}

// mismatchWhy says in one sentence why r did not match; host is the
// request host as given.
func (r *rule) mismatchWhy(m mismatch, v *view, host string) string {
	switch m {
	case missMethod:
		switch {
		case r.anyMethod:
			return "ANY never matches CONNECT"
		case r.connectOnly:
			return "CONNECT rule: used for CONNECT only"
		}
		return fmt.Sprintf("method %s is not in %s", v.method, strings.Join(r.info.methods, ","))
	case missScheme:
		if v.method == "CONNECT" {
			return fmt.Sprintf("pattern scheme %s: a CONNECT is matched as https", r.pat.scheme)
		}
		return fmt.Sprintf("scheme %s is not %s", v.scheme, r.pat.scheme)
	case missHost:
		return fmt.Sprintf("host %s does not match %s", host, r.pat.x.hostRaw)
	case missPort:
		return fmt.Sprintf("port %d is not %d", v.port, r.pat.port)
	case missPath:
		return fmt.Sprintf("path %s does not match %s", v.path, r.pat.x.pathRaw)
	}
	return "no match"
}

func outcome(d Decision) string {
	switch d.Action {
	case Allow:
		return "forward"
	case Tunnel:
		return "tunnel"
	case Inspect:
		return "bump"
	}
	return "deny"
}

// WriteText writes the explanation in a readable text form:
//
//	request   GET https://api.example.com:443/v1/x from 10.0.0.5
//	client    office: selector 10.0.0.0/24 is the longest that contains 10.0.0.5
//	policy    api
//	  api#0  ALLOW  GET,HEAD  https://api.example.com/v2/**  no match: path /v1/x does not match /v2/**
//	  api#1  ALLOW  ANY       https://api.example.com/**     match: method, scheme, host, port and path match
//	decision  ALLOW by rule api#1
//	outcome   forward
//
// The rules of a policy are aligned in columns.
func (e Explanation) WriteText(w io.Writer) error {
	// Header lines have no tab, so each policy's rule lines form their
	// own tabwriter block.
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%-10s", label)
		fmt.Fprintf(tw, format, args...)
		fmt.Fprintln(tw)
	}
	r := e.Request
	hostport := hostPort(r.Host, r.Port)
	if r.Method == "CONNECT" {
		line("request", "CONNECT %s from %s", hostport, r.Client)
	} else {
		line("request", "%s %s://%s%s from %s", r.Method, r.Scheme, hostport, r.Path, r.Client)
	}
	line("client", "%s: %s", e.Client.Name, e.Client.Why)
	for _, p := range e.Policies {
		line("policy", "%s", p.Name)
		for _, t := range p.Rules {
			pat := t.URLPattern
			if pat == "" {
				pat = "(any URL)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s: %s\n", t.Rule, t.Action, t.Methods, pat, t.Result, t.Why)
		}
	}
	d := e.Decision
	switch {
	case d.Reason == ReasonDefaultDeny:
		line("decision", "default deny: no rule matched")
	default:
		line("decision", "%s by rule %s", d.Action, d.Rule)
	}
	switch {
	case d.Action == Deny:
		line("outcome", "deny: %d %s, body %q", d.Status, d.Phrase, d.Body)
	case d.AllowPrivate:
		line("outcome", "%s (private upstream addresses allowed)", e.Outcome)
	default:
		line("outcome", "%s", e.Outcome)
	}
	return tw.Flush()
}

func hostPort(host string, port uint16) string {
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}
