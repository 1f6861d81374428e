package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"exfilguard/conf"
)

// Ruleset is compiled configuration: clients resolved through a
// longest-prefix trie and their ordered policies. It is immutable and safe
// for concurrent use; a reload compiles a new one and swaps it whole.
type Ruleset struct {
	clients  []client
	trie     Trie[int32] // client index by selector
	fallback int32
	policies []policy
}

type client struct {
	name     string
	prefix   netip.Prefix
	fallback bool
	policies []*policy
}

type policy struct {
	name  string
	rules []rule
}

// rule is a compiled rule. Decide reads the rules of a policy one after
// the other, so a rule keeps what every check reads in its first 64 bytes
// (one cache line) and the rest behind info.
type rule struct {
	// methods is the set of standard methods matched (methodBit); a
	// request with an extension method is matched against info.methods,
	// or by anyMethod.
	methods     methodSet
	anyMethod   bool // methods absent: every method but CONNECT
	connectOnly bool
	hasPattern  bool // false: every URL
	// connect is what the rule does when it matches a CONNECT's
	// authority (SPEC §4).
	connect connectStepKind
	pat     Pattern
	info    *ruleInfo
}

// ruleInfo is the part of a rule read once it matched, or by Explain.
type ruleInfo struct {
	id      string
	action  conf.Action
	methods []string
	// dec is the decision for an ordinary request, cdec for a CONNECT;
	// both without Client.
	dec, cdec Decision
	pos       conf.Pos
}

// methodSet is a set of standard methods, one bit each.
type methodSet uint16

// methodBit returns the bit of a standard method (RFC 9110 §9.1 and
// RFC 5789 PATCH), or 0 for an extension method. Methods are
// case-sensitive: "get" is an extension method.
func methodBit(m string) methodSet {
	switch m {
	case "GET":
		return 1 << 0
	case "HEAD":
		return 1 << 1
	case "POST":
		return 1 << 2
	case "PUT":
		return 1 << 3
	case "DELETE":
		return 1 << 4
	case "CONNECT":
		return 1 << 5
	case "OPTIONS":
		return 1 << 6
	case "TRACE":
		return 1 << 7
	case "PATCH":
		return 1 << 8
	}
	return 0
}

// anyMethods is every standard method but CONNECT.
const anyMethods = methodSet(1<<9-1) &^ (1 << 5)

// Compile turns validated configuration into a Ruleset. conf's validator
// has checked the configuration; Compile still rechecks the per-rule and
// per-client invariants the decisions rely on (one fallback, rule
// vocabulary, DENY responses) and returns a conf.ErrorList instead of
// compiling something that would decide differently than the file reads.
// Overlapping selectors are the validator's alone to reject.
func Compile(cfg *conf.Config) (*Ruleset, error) {
	if cfg == nil {
		return nil, errors.New("compile policies: nil config")
	}
	var errs conf.ErrorList
	fail := func(pos conf.Pos, format string, args ...any) {
		errs = append(errs, &conf.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	rs := &Ruleset{fallback: -1, policies: make([]policy, len(cfg.Policies))}
	byName := make(map[string]*policy, len(cfg.Policies))
	for i := range cfg.Policies {
		cp := &cfg.Policies[i]
		p := &rs.policies[i]
		p.name = cp.Name
		if _, dup := byName[cp.Name]; dup {
			fail(cp.Pos, "duplicate policy name %q", cp.Name)
		}
		byName[cp.Name] = p
		p.rules = make([]rule, len(cp.Rules))
		for j := range cp.Rules {
			if err := p.rules[j].compile(cp.Name, j, &cp.Rules[j]); err != nil {
				fail(cp.Rules[j].Pos, "policy %q rule %d: %v", cp.Name, j, err)
			}
		}
	}

	rs.clients = make([]client, len(cfg.Clients))
	names := make(map[string]bool, len(cfg.Clients))
	for i := range cfg.Clients {
		cc := &cfg.Clients[i]
		c := &rs.clients[i]
		c.name, c.fallback = cc.Name, cc.Fallback
		if names[cc.Name] {
			fail(cc.Pos, "duplicate client name %q", cc.Name)
		}
		names[cc.Name] = true
		c.prefix = cc.Prefix.Masked()
		switch {
		case !cc.Prefix.IsValid():
			fail(cc.Pos, "client %q has no valid selector", cc.Name)
		case cc.Prefix.Addr().Is4In6():
			// Peers are unmapped before lookup (SPEC §4), so such a
			// selector could never match.
			fail(cc.Pos, "client %q selector %s is IPv4-mapped: write it as IPv4", cc.Name, cc.Prefix)
		}
		if len(cc.Policies) == 0 {
			fail(cc.Pos, "client %q has no policies", cc.Name)
		}
		for _, name := range cc.Policies {
			p, ok := byName[name]
			if !ok {
				fail(cc.Pos, "client %q references unknown policy %q", cc.Name, name)
				continue
			}
			c.policies = append(c.policies, p)
		}
		if cc.Fallback {
			if rs.fallback >= 0 {
				fail(cc.Pos, "client %q is a second fallback client (first: %q)", cc.Name, rs.clients[rs.fallback].name)
			} else {
				rs.fallback = int32(i)
			}
		}
	}
	if rs.fallback < 0 {
		fail(conf.Pos{File: cfg.Settings.ClientsFile}, "no fallback client: exactly one client needs fallback = true")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// The fallback's selector goes in first so that a client listed with
	// the very same prefix takes it over: a selector written for a
	// client is never shadowed by the catch-all (unlike the original,
	// reference §2).
	rs.trie.Insert(rs.clients[rs.fallback].prefix, rs.fallback)
	for i := range rs.clients {
		if !rs.clients[i].fallback {
			rs.trie.Insert(rs.clients[i].prefix, int32(i))
		}
	}
	rs.trie.Prepare() // not on the first request
	return rs, nil
}

func (r *rule) compile(policyName string, index int, cr *conf.Rule) error {
	// Nothing refers back into cr: the Ruleset stays the same whatever
	// happens to the configuration it came from.
	info := &ruleInfo{
		id:      policyName + "#" + strconv.Itoa(index),
		action:  cr.Action,
		methods: slices.Clone(cr.Methods),
		pos:     cr.Pos,
	}
	r.info = info
	if cr.Action != conf.Allow && cr.Action != conf.Deny {
		return fmt.Errorf("action %v is not ALLOW or DENY", cr.Action)
	}
	switch {
	case cr.Methods == nil:
		r.anyMethod, r.methods = true, anyMethods
	case len(cr.Methods) == 0:
		return errors.New("methods is empty")
	}
	for _, m := range cr.Methods {
		if m == "" || m == "ANY" {
			return fmt.Errorf("method %q in a list", m)
		}
		if m == "CONNECT" && len(cr.Methods) > 1 {
			return errors.New("CONNECT must not be combined with other methods")
		}
		r.methods |= methodBit(m)
	}
	r.connectOnly = cr.ConnectOnly()
	if cr.URLPattern != nil {
		p, err := CompilePattern(cr.URLPattern)
		if err != nil {
			return err
		}
		r.pat, r.hasPattern = *p, true
	}
	switch {
	case r.connectOnly && cr.Action == conf.Allow && cr.InspectPayload:
		return errors.New("a CONNECT ALLOW rule must set inspect_payload = false")
	case !cr.InspectPayload && !r.connectOnly:
		return errors.New("inspect_payload = false needs methods = [\"CONNECT\"]")
	}
	// SPEC §4: CONNECT-only rules and ALLOW rules decide a CONNECT to
	// their authority; a DENY decides it only when it covers every method
	// (ANY) and every path, any narrower DENY waits for the inner
	// requests.
	r.connect = stepSkip
	if r.connectOnly || cr.Action == conf.Allow || r.anyMethod && (!r.hasPattern || r.pat.anyPath()) {
		r.connect = stepDecide
	}

	d := Decision{Reason: ReasonRule, Policy: policyName, Rule: info.id}
	if cr.Action == conf.Allow {
		d.Action, d.AllowPrivate = Allow, cr.AllowPrivateUpstream
		info.dec, info.cdec = d, d
		info.cdec.Action = Inspect
		if r.connectOnly {
			info.cdec.Action = Tunnel
		}
		return nil
	}
	if cr.Status < 400 || cr.Status > 599 {
		return fmt.Errorf("DENY status %d is not in 400..599", cr.Status)
	}
	for i := 0; i < len(cr.Reason); i++ {
		// RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
		if c := cr.Reason[i]; c < ' ' && c != '\t' || c == 0x7f {
			return errors.New("DENY reason contains a control character")
		}
	}
	d.Action, d.Status, d.Body = Deny, cr.Status, cr.Body
	d.Phrase = cr.Reason
	if d.Phrase == "" {
		d.Phrase = StatusPhrase(cr.Status)
	}
	info.dec, info.cdec = d, d
	return nil
}

// Client returns the name of the client that a is resolved to.
func (rs *Ruleset) Client(a netip.Addr) string {
	return rs.client(a).name
}

// client resolves a peer address: the longest selector containing it,
// else the fallback client (SPEC §4).
func (rs *Ruleset) client(a netip.Addr) *client {
	if _, i, ok := rs.trie.Lookup(a); ok {
		return &rs.clients[i]
	}
	return &rs.clients[rs.fallback]
}

// Decide decides an ordinary request: the first rule of the client's
// policies, in order, that matches the method, scheme, host, port and
// path decides; nothing matching is a default deny. A Request with Method
// CONNECT is decided by DecideConnect. Decide does not allocate.
func (rs *Ruleset) Decide(req *Request) Decision {
	if req.Method == "CONNECT" {
		return rs.DecideConnect(req.Client, req.Host, req.Port)
	}
	c := rs.client(req.Client)
	var v view
	v.init(req.Method, req.Scheme, req.Host, req.Port, req.Path)
	for _, p := range c.policies {
		for i := range p.rules {
			r := &p.rules[i]
			if r.mayMatch(&v) && r.check(&v) == matchOK {
				d := r.info.dec
				d.Client = c.name
				return d
			}
		}
	}
	return defaultDeny(c)
}

func defaultDeny(c *client) Decision {
	return Decision{
		Action: Deny,
		Reason: ReasonDefaultDeny,
		Client: c.name,
		Status: DefaultDenyStatus,
		Phrase: StatusPhrase(DefaultDenyStatus),
		Body:   DefaultDenyBody,
	}
}

// mayMatch is a quick test of necessary conditions for check: false
// means check would fail. It is small enough to be inlined into Decide's
// loop, where most rules are rejected on the method, scheme, port or
// exact host hash without a call. Explain calls check alone, and reaches
// the same decisions because mayMatch never rejects a match.
func (r *rule) mayMatch(v *view) bool {
	return (v.methodBit == 0 || r.methods&v.methodBit != 0) && r.mayMatchAuthority(v)
}

// mayMatchAuthority is mayMatch for the scheme, host and port alone, for
// the CONNECT walk.
func (r *rule) mayMatchAuthority(v *view) bool {
	p := &r.pat
	return !r.hasPattern || p.scheme == v.scheme && (p.anyPort || p.port == v.port) &&
		(p.hostKind != hostExact || p.hostHash == v.host.hash) &&
		(p.hostKind != hostLabels || v.host.nlabels >= p.minLabels)
}

// check matches an ordinary request. The parts are checked in the order
// Explain reports them.
func (r *rule) check(v *view) mismatch {
	if !r.matchMethod(v) {
		return missMethod
	}
	if !r.hasPattern {
		return matchOK
	}
	return r.pat.check(v, true)
}

// matchMethod compares case-sensitively against the upper-cased rule
// methods: "get" is an extension method, not GET (RFC 9110 §9.1;
// reference §3.2). ANY never matches CONNECT: a CONNECT is only ever
// judged by the CONNECT walk.
func (r *rule) matchMethod(v *view) bool {
	if v.methodBit != 0 {
		return r.methods&v.methodBit != 0
	}
	if r.anyMethod {
		return true
	}
	for _, m := range r.info.methods {
		if m == v.method {
			return true
		}
	}
	return false
}

// DecideConnect decides a CONNECT to host:port from client (SPEC §4, "CONNECT
// decision"): the client's policies and rules are walked in order, looking
// only at each rule's authority, as https:
//   - a matching CONNECT-only rule: ALLOW tunnels, DENY denies;
//   - a matching other rule (no pattern, or an https pattern): ALLOW
//     bumps; a DENY for every method and path denies; any narrower DENY
//     is skipped, to be applied to the inner requests;
//   - nothing: default deny.
//
// DecideConnect does not allocate.
func (rs *Ruleset) DecideConnect(client netip.Addr, host string, port uint16) Decision {
	c := rs.client(client)
	if port == 0 {
		// A CONNECT names its port (RFC 9110 §9.3.6); 0 is no port and
		// must not fall back to 443.
		return defaultDeny(c)
	}
	var v view
	v.init("CONNECT", "https", host, port, "")
	// skipped is the first narrower DENY that matched the authority. Its
	// paths are enforced inside a bump; a tunnel would carry them unseen,
	// so a tunnel decided after it fails closed.
	var skipped *rule
	for _, p := range c.policies {
		for i := range p.rules {
			r := &p.rules[i]
			if !r.mayMatchAuthority(&v) {
				continue
			}
			switch st, _ := r.connectStep(&v); st {
			case stepSkip:
				if skipped == nil {
					skipped = r
				}
			case stepDecide:
				d := r.info.cdec
				if d.Action == Tunnel && skipped != nil {
					d = skipped.info.dec
					d.Reason = ReasonDenyUnenforceable
				}
				d.Client = c.name
				return d
			}
		}
	}
	return defaultDeny(c)
}

// connectStepKind is what one rule does in the CONNECT walk.
type connectStepKind uint8

const (
	stepNoMatch connectStepKind = iota // authority differs (see mismatch)
	stepDecide                         // the rule decides (its cdec)
	stepSkip                           // a narrower DENY, left for the inner requests
)

func (r *rule) connectStep(v *view) (connectStepKind, mismatch) {
	if r.hasPattern {
		if m := r.pat.check(v, false); m != matchOK {
			return stepNoMatch, m
		}
	}
	return r.connect, matchOK
}
