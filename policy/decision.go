package policy

import (
	"net/netip"
	"strconv"
)

// Action is what the proxy does with a request or a CONNECT.
type Action uint8

// Actions. The zero Action is Deny, so a zero Decision fails closed.
const (
	// Deny answers with the decision's Status, Phrase and Body.
	Deny Action = iota
	// Allow forwards an ordinary request upstream.
	Allow
	// Tunnel splices a CONNECT through untouched.
	Tunnel
	// Inspect bumps a CONNECT: TLS is terminated and every inner request
	// is decided on its own.
	Inspect
)

// String returns the action's name: DENY, ALLOW, TUNNEL or INSPECT.
func (a Action) String() string {
	switch a {
	case Deny:
		return "DENY"
	case Allow:
		return "ALLOW"
	case Tunnel:
		return "TUNNEL"
	case Inspect:
		return "INSPECT"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText makes an Action appear by name in JSON.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Reason is the machine word saying why a decision was made. It is one of
// the constants below; the pipeline adds its own words (private_address,
// sni_mismatch, ...) to its log records.
type Reason string

// Decision reasons.
const (
	// ReasonRule: a rule decided (Decision.Rule names it).
	ReasonRule Reason = "rule"
	// ReasonDefaultDeny: no rule of the client's policies matched.
	ReasonDefaultDeny Reason = "default_deny"
	// ReasonDenyUnenforceable: a CONNECT that a tunnel rule would allow
	// is denied because an earlier DENY for some paths or methods of the
	// same authority matched it, and a tunnel cannot see paths or
	// methods. The decision carries that DENY rule and its response.
	ReasonDenyUnenforceable Reason = "deny_unenforceable"
)

// Default deny response, reference §4.6.
const (
	DefaultDenyStatus = 403
	DefaultDenyBody   = "request blocked by policy\r\n"
)

// Decision is the outcome of Decide or DecideConnect. It is a small value
// whose strings all come from the configuration, never from the request.
type Decision struct {
	Action Action `json:"action"`
	Reason Reason `json:"reason"`
	// Client is the resolved client's name; it is set on every decision,
	// default denials included.
	Client string `json:"client"`
	// Policy and Rule name the deciding rule, Rule as "policy#index" with
	// a 0-based index. Both are empty for a default deny.
	Policy string `json:"policy,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// AllowPrivate lets an Allow, Tunnel or Inspect decision reach
	// non-public upstream addresses (allow_private_upstream).
	AllowPrivate bool `json:"allow_private,omitempty"`
	// Status, Phrase and Body are a Deny's response: the rule's status,
	// its reason or else the standard phrase (StatusPhrase), and its body.
	// Zero for the other actions.
	Status int    `json:"status,omitempty"`
	Phrase string `json:"phrase,omitempty"`
	Body   string `json:"body,omitempty"`
}

// Request is the canonical view of an ordinary request.
type Request struct {
	// Client is the connection's source address (or the PROXY protocol
	// source); an IPv4-mapped address is looked up as IPv4.
	Client netip.Addr
	// Method is compared case-sensitively (RFC 9110 §9.1).
	Method string
	// Scheme is "http" or "https".
	Scheme string
	// Host is a name or an IP literal, IPv6 without brackets. Case and
	// one trailing dot do not matter.
	Host string
	// Port is the request port; zero means the scheme's default.
	Port uint16
	// Path is the canonical policy path (CanonicalPath).
	Path string
}
