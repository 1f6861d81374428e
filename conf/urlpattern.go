package conf

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// URLPattern is a parsed url_pattern, scheme://host[:port][/path]. Parsing
// owns the syntax; package policy compiles the parts into matchers.
type URLPattern struct {
	// Raw is the pattern as written.
	Raw string
	// Scheme is "http" or "https".
	Scheme string
	// Host is the host pattern in lower case: "*" for any host, an exact
	// name, a name with whole-label wildcards ("*" one label, "**" one or
	// more), or an IP literal (IPv6 without brackets), in which case Addr
	// is valid.
	Host string
	Addr netip.Addr
	// Port is the port to match. A pattern without a port matches the
	// scheme's default port only (80 or 443); ":*" sets AnyPort.
	Port    uint16
	AnyPort bool
	// Path is the path pattern, starting with "/", or "" for any path.
	// "*" matches within one segment; a "**" segment matches any number of
	// segments, including none.
	Path string
}

// Limits from RFC 1035 §2.3.4 (names and labels) and RFC 9110 §4.2.1
// (default ports).
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// DefaultPort returns the default port of scheme, or 0.
func DefaultPort(scheme string) uint16 {
	switch scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// AnyPath reports whether the pattern matches every path: no path, or
// exactly "/**".
func (p *URLPattern) AnyPath() bool {
	return p.Path == "" || p.Path == "/**"
}

// String returns the pattern as written.
func (p *URLPattern) String() string { return p.Raw }

// ParseURLPattern parses a url_pattern. Its errors are plain messages; the
// decoder adds the position.
//
//	url-pattern = scheme "://" host [ ":" ( port / "*" ) ] [ path ]
//	scheme      = "http" / "https"                 ; lower case only
//	host        = "*" / ip-literal / IPv4address / label *( "." label )
//	ip-literal  = "[" IPv6address "]"
//	label       = "*" / "**" / 1*63( ALPHA / DIGIT / "-" )
//	path        = 1*( "/" segment )
//	segment     = "**" / *( pchar-without-pct / "*" )
func ParseURLPattern(s string) (*URLPattern, error) {
	p := &URLPattern{Raw: s}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return nil, errors.New("url_pattern must not contain spaces, control or non-ASCII characters")
		}
	}
	if strings.ContainsAny(s, "?#") {
		return nil, errors.New("url_pattern must not contain a query or fragment: queries never take part in matching")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, errors.New(`url_pattern must start with "http://" or "https://"`)
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("url_pattern scheme %q must be http or https (lower case)", scheme)
	}
	p.Scheme = scheme
	hostport, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	if hostport == "" {
		return nil, errors.New("url_pattern has no host")
	}
	if strings.ContainsRune(hostport, '@') {
		return nil, errors.New("url_pattern must not contain userinfo ('@')")
	}
	host, port, err := splitPatternHostPort(hostport)
	if err != nil {
		return nil, err
	}
	switch {
	case port == "":
		p.Port = DefaultPort(scheme)
	case port == "*":
		p.AnyPort = true
	default:
		n, ok := ParsePort(port)
		if !ok {
			return nil, fmt.Errorf("url_pattern port %q must be a decimal number from 1 to 65535, or *", port)
		}
		p.Port = n
	}
	if err := p.parseHost(host); err != nil {
		return nil, err
	}
	if path != "" {
		if err := checkPathPattern(path); err != nil {
			return nil, err
		}
		p.Path = path
	}
	return p, nil
}

// splitPatternHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
// The host keeps its brackets.
func splitPatternHostPort(hp string) (host, port string, err error) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("url_pattern IPv6 literal is missing its closing ']'")
		}
		host, rest := hp[:end+1], hp[end+1:]
		if rest == "" {
			return host, "", nil
		}
		if rest[0] != ':' || len(rest) == 1 {
			return "", "", errors.New("url_pattern IPv6 literal must be followed by ':port' or nothing")
		}
		return host, rest[1:], nil
	}
	host, port, found := strings.Cut(hp, ":")
	if !found {
		return hp, "", nil
	}
	if strings.ContainsRune(port, ':') {
		return "", "", errors.New("url_pattern IPv6 literal must be written in brackets, like https://[2001:db8::1]/")
	}
	if port == "" {
		return "", "", errors.New("url_pattern has ':' but no port")
	}
	return host, port, nil
}

// ParsePort parses a port: plain decimal digits, no sign, no leading zero,
// 1–65535. Patterns, policy tests and requests all use it, so that a port
// has one spelling everywhere.
func ParsePort(s string) (uint16, bool) {
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

func (p *URLPattern) parseHost(host string) error {
	if host == "" {
		return errors.New("url_pattern has no host")
	}
	if host == "*" {
		p.Host = "*"
		return nil
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("url_pattern host %s is not a valid IPv6 address", host)
		}
		if a.Is4In6() {
			return fmt.Errorf("url_pattern host %s is an IPv4-mapped address: write the IPv4 address %s", host, a.Unmap())
		}
		p.Host, p.Addr = a.String(), a
		return nil
	}
	host = strings.ToLower(host)
	if len(host) > maxHostLen {
		return fmt.Errorf("url_pattern host is longer than %d characters", maxHostLen)
	}
	labels := strings.Split(host, ".")
	last := labels[len(labels)-1]
	// A name whose last label is numeric is an IPv4 address or nothing
	// (WHATWG URL "ends in a number"): octal, hex and short forms such as
	// 0177.0.0.1, 0x7f.1 or 2130706433 are refused rather than guessed at.
	if IsNumericLabel(last) {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return fmt.Errorf("url_pattern host %q is not a valid IPv4 address (only dotted-decimal a.b.c.d is accepted)", host)
		}
		p.Host, p.Addr = a.String(), a
		return nil
	}
	for _, l := range labels {
		if err := checkHostLabel(l); err != nil {
			return fmt.Errorf("url_pattern host %q: %v", host, err)
		}
	}
	p.Host = host
	return nil
}

// IsNumericLabel reports whether l is all decimal digits or a 0x number.
// A host whose last label is numeric is an IPv4 address or nothing: url
// patterns and request hosts must agree on that, so both use this.
func IsNumericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func checkHostLabel(l string) error {
	switch {
	case l == "":
		return errors.New("empty label (a leading, trailing or doubled '.')")
	case l == "*" || l == "**":
		return nil
	case strings.ContainsRune(l, '*'):
		return fmt.Errorf("label %q mixes '*' with other characters: wildcards match whole labels only", l)
	case len(l) > maxLabelLen:
		return fmt.Errorf("label %q is longer than %d characters", l, maxLabelLen)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has %q: host labels are letters, digits and '-'", l, c)
		}
	}
	return nil
}

// checkPathPattern checks a path pattern that starts with "/".
func checkPathPattern(path string) error {
	for _, seg := range strings.Split(path[1:], "/") {
		switch seg {
		case "**", "*", "":
			continue
		case ".", "..":
			// Canonical request paths never contain dot segments (RFC 3986
			// §5.2.4 removes them), so such a pattern could never match.
			return fmt.Errorf("url_pattern path segment %q can never match: request paths are matched after dot-segment removal", seg)
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("url_pattern path segment %q: '**' must be a whole segment", seg)
		}
		for i := 0; i < len(seg); i++ {
			if !isPathPatternChar(seg[i]) {
				return fmt.Errorf("url_pattern path segment %q has %q: allowed are letters, digits, '*' and -._~!$&'()+,;=:@", seg, seg[i])
			}
		}
	}
	return nil
}

// isPathPatternChar reports whether c may appear in a path pattern: the
// pchar set of RFC 3986 §3.3 without percent-encoding, plus '*'.
func isPathPatternChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()+,;=:@*", c) >= 0
}
