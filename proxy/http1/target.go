package http1

import (
	"net/netip"
	"strings"
)

// Host name limits (RFC 1035 §2.3.4): a name that DNS cannot carry is
// refused before it reaches a resolver.
const (
	maxHostLen  = 253 // without a trailing dot
	maxLabelLen = 63
)

// Target is a request-target split into what the proxy needs to judge and
// forward it.
type Target struct {
	// Scheme is "http" or "https" in lower case; empty for the
	// authority-form.
	Scheme string
	// Authority is host[:port] exactly as sent. The upstream gets it as
	// its Host so that signed requests stay valid (SPEC §5).
	Authority string
	// Host is the host as sent, without the brackets of an IPv6 literal:
	// a host name (letters, digits, "-", "_", dots), a dotted-decimal IPv4
	// address or an IPv6 address. Lowering its case is the caller's job.
	Host string
	// Port is the explicit port, else the scheme's default (80 or 443).
	Port uint16
	// PathQuery is the origin-form to send upstream: path and query as
	// sent, "/" when the path is empty, or "*" for OPTIONS with neither
	// path nor query (RFC 9112 §3.2.4). Empty for the authority-form.
	PathQuery string
}

// ParseAbsoluteForm parses the absolute-form target of a request to the
// proxy (RFC 9112 §3.2.2), http:// or https:// with the scheme in any case.
// It rejects userinfo (RFC 9110 §4.2.4: deprecated, and a way to disguise
// the host), a fragment, an empty or malformed host (see SplitAuthority) and
// bytes other than visible ASCII. Errors are *Error with Status 400.
func ParseAbsoluteForm(method, target string) (Target, error) {
	const op = "parse absolute-form target"
	for i := 0; i < len(target); i++ {
		if c := target[i]; chars[c]&cTarget == 0 || c == '#' {
			// A request-target has no fragment (RFC 9112 §3.2).
			return Target{}, newError(statusBadRequest, op, "byte other than visible ASCII, or a fragment")
		}
	}
	var t Target
	switch {
	case hasPrefixFold(target, "http://"):
		t.Scheme, t.Port, target = "http", 80, target[len("http://"):]
	case hasPrefixFold(target, "https://"):
		t.Scheme, t.Port, target = "https", 443, target[len("https://"):]
	default:
		return Target{}, newError(statusBadRequest, op, "scheme is not http:// or https://")
	}
	end := strings.IndexAny(target, "/?")
	if end < 0 {
		end = len(target)
	}
	t.Authority, t.PathQuery = target[:end], target[end:]
	host, port, err := splitAuthority(op, t.Authority)
	if err != nil {
		return Target{}, err
	}
	t.Host = host
	if port != 0 {
		t.Port = port
	}
	switch {
	case t.PathQuery == "" && method == "OPTIONS":
		t.PathQuery = "*"
	case t.PathQuery == "":
		t.PathQuery = "/"
	case t.PathQuery[0] == '?':
		// RFC 9112 §3.2.1: an empty path is sent as "/".
		t.PathQuery = "/" + t.PathQuery
	}
	return t, nil
}

// ParseAuthorityForm parses the authority-form target of CONNECT (RFC 9112
// §3.2.3): host:port with an explicit port from 1 to 65535 (RFC 9110
// §9.3.6), no userinfo, and a host as SplitAuthority accepts. Errors are
// *Error with Status 400.
func ParseAuthorityForm(target string) (Target, error) {
	const op = "parse CONNECT target"
	host, port, err := splitAuthority(op, target)
	if err != nil {
		return Target{}, err
	}
	if port == 0 {
		return Target{}, newError(statusBadRequest, op, "no port")
	}
	return Target{Authority: target, Host: host, Port: port}, nil
}

// SplitAuthority splits an authority, as in a Host field, into host and
// port; port is 0 when there is none (RFC 3986 §3.2). It is strict:
//
//   - no userinfo;
//   - the port, when present, is 1 to 65535 in decimal digits without a
//     leading zero;
//   - an IPv6 address is in brackets, without a zone;
//   - a host name has labels of letters, digits, "-" and "_", no empty
//     label (one trailing dot is allowed), and at most 253 bytes;
//   - a host whose last label is a number (digits, or "0x" and hex
//     digits, as WHATWG URL reads it) must be a dotted-decimal IPv4
//     address with four parts and no leading zeros: "0177.0.0.1",
//     "0x7f.1", "127.1" and "2130706433" are refused, because resolvers
//     read them as addresses that the policy never saw (peers §4.4).
//
// Errors are *Error with Status 400.
func SplitAuthority(authority string) (host string, port uint16, err error) {
	return splitAuthority("parse authority", authority)
}

func splitAuthority(op, a string) (host string, port uint16, err error) {
	if strings.IndexByte(a, '@') >= 0 {
		return "", 0, newError(statusBadRequest, op, "userinfo in authority")
	}
	var rest string
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, newError(statusBadRequest, op, "IPv6 literal has no closing bracket")
		}
		host, rest = a[1:end], a[end+1:]
		if !validIPv6(host) {
			return "", 0, newError(statusBadRequest, op, "invalid IPv6 literal")
		}
	} else {
		end := strings.IndexByte(a, ':')
		if end < 0 {
			end = len(a)
		}
		host, rest = a[:end], a[end:]
		if msg := checkHostName(host); msg != "" {
			return "", 0, newError(statusBadRequest, op, msg)
		}
	}
	if rest == "" {
		return host, 0, nil
	}
	if rest[0] != ':' {
		return "", 0, newError(statusBadRequest, op, "host not followed by a port")
	}
	port, ok := parsePort(rest[1:])
	if !ok {
		return "", 0, newError(statusBadRequest, op, "port is not a number from 1 to 65535")
	}
	return host, port, nil
}

// validIPv6 reports whether s is an IPv6 address without a zone. The
// characters are checked first so that netip sees no IPvFuture or "%25".
func validIPv6(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; chars[c]&cHex == 0 && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == ""
}

// checkHostName checks a reg-name or IPv4 host and says what is wrong.
func checkHostName(h string) string {
	name := strings.TrimSuffix(h, ".")
	if name == "" {
		return "empty host"
	}
	if len(name) > maxHostLen {
		return "host name too long"
	}
	last := ""
	for rest := name; rest != ""; {
		var label string
		label, rest, _ = strings.Cut(rest, ".")
		if label == "" || len(label) > maxLabelLen {
			return "empty or too long label in host"
		}
		for i := 0; i < len(label); i++ {
			if chars[label[i]]&cHost == 0 {
				return "host has a byte other than letters, digits, '-', '_' and '.'"
			}
		}
		last = label
	}
	if strings.HasSuffix(name, ".") {
		return "empty label in host"
	}
	if endsInNumber(last) && (name != h || !isDottedQuad(name)) {
		return "numeric host is not a dotted-decimal IPv4 address"
	}
	return ""
}

// endsInNumber reports whether label would make WHATWG URL parse the host
// as an IPv4 address: all digits, or "0x" or "0X" and hex digits.
func endsInNumber(label string) bool {
	if len(label) >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') {
		label = label[2:]
		for i := 0; i < len(label); i++ {
			if chars[label[i]]&cHex == 0 {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if label[i] < '0' || label[i] > '9' {
			return false
		}
	}
	return label != ""
}

// isDottedQuad reports whether s is dotted-decimal IPv4 (RFC 3986 §3.2.2
// IPv4address): four decimal octets, no leading zeros.
func isDottedQuad(s string) bool {
	for part := 0; part < 4; part++ {
		var octet string
		var found bool
		octet, s, found = strings.Cut(s, ".")
		if found != (part < 3) || octet == "" || len(octet) > 3 || len(octet) > 1 && octet[0] == '0' {
			return false
		}
		n := 0
		for i := 0; i < len(octet); i++ {
			if octet[i] < '0' || octet[i] > '9' {
				return false
			}
			n = n*10 + int(octet[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

// parsePort parses a port: decimal digits without sign or leading zero,
// 1 to 65535. A leading zero is refused so that each port has one
// spelling, the one the policy compares.
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, false
	}
	return uint16(n), true
}
