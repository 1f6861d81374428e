package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"exfilguard/conf"
)

// NewRequest builds the Request that a policy test (SPEC §9) or
// `exfilguard explain` describes: a request from client with method to
// target. For CONNECT, target is an authority, host:port with a required
// port (RFC 9110 §9.3.6); otherwise it is an absolute http:// or https://
// URL whose path is reduced to its canonical policy path. An empty method
// is GET. The parsing is strict and rejects what the proxy would reject:
// userinfo, fragments, spaces, IPv6 without brackets, non-dotted-decimal
// IPv4, bad ports and paths that CanonicalPath refuses.
func NewRequest(client netip.Addr, method, target string) (*Request, error) {
	if method == "" {
		method = "GET"
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return nil, errors.New("target must not contain spaces, control or non-ASCII characters")
		}
	}
	if strings.IndexByte(target, '@') >= 0 {
		// RFC 9110 §4.2.4: userinfo is deprecated and a classic way to
		// disguise the real host.
		return nil, errors.New("target must not contain userinfo ('@')")
	}
	if strings.IndexByte(target, '#') >= 0 {
		return nil, errors.New("target must not contain a fragment ('#')")
	}
	req := &Request{Client: client, Method: method}
	if method == "CONNECT" {
		if strings.ContainsAny(target, "/?") {
			return nil, fmt.Errorf("CONNECT target %q must be host:port", target)
		}
		host, port, err := splitHostPort(target, true)
		if err != nil {
			return nil, fmt.Errorf("CONNECT target %q: %v", target, err)
		}
		req.Scheme, req.Host, req.Port, req.Path = "https", host, port, ""
		return req, nil
	}
	sch, rest, ok := strings.Cut(target, "://")
	sch = strings.ToLower(sch) // RFC 3986 §3.1: schemes are case-insensitive
	if !ok || sch != "http" && sch != "https" {
		return nil, fmt.Errorf("url %q must start with http:// or https://", target)
	}
	authority, pathQuery := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, pathQuery = rest[:i], rest[i:]
	}
	host, port, err := splitHostPort(authority, false)
	if err != nil {
		return nil, fmt.Errorf("url %q: %v", target, err)
	}
	if port == 0 {
		port = 80
		if sch == "https" {
			port = 443
		}
	}
	path, err := CanonicalPath(pathQuery)
	if err != nil {
		return nil, fmt.Errorf("url %q: %v", target, err)
	}
	req.Scheme, req.Host, req.Port, req.Path = sch, host, port, path
	return req, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port" and
// checks both parts. The host comes back in lower case without brackets;
// port 0 means none was given.
func splitHostPort(hp string, needPort bool) (host string, port uint16, err error) {
	var portStr string
	hasPort := false
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", 0, errors.New("IPv6 literal is missing its closing ']'")
		}
		host = hp[1:end]
		if a, ok := parseAddr(host); !ok || !a.Is6() {
			return "", 0, fmt.Errorf("[%s] is not an IPv6 address", host)
		}
		switch rest := hp[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			portStr, hasPort = rest[1:], true
		default:
			return "", 0, errors.New("IPv6 literal must be followed by ':port' or nothing")
		}
	} else {
		host, portStr, hasPort = strings.Cut(hp, ":")
		if strings.IndexByte(portStr, ':') >= 0 {
			return "", 0, errors.New("IPv6 literal must be written in brackets")
		}
		if host == "" {
			return "", 0, errors.New("no host")
		}
		var h hostView
		h.init(host)
		if h.kind == viewOther {
			return "", 0, fmt.Errorf("host %q is neither a host name nor a dotted-decimal IPv4 address", host)
		}
	}
	if hasPort {
		p, ok := conf.ParsePort(portStr)
		if !ok {
			return "", 0, fmt.Errorf("port %q must be a decimal number from 1 to 65535", portStr)
		}
		port = p
	} else if needPort {
		return "", 0, errors.New("no port")
	}
	return strings.ToLower(host), port, nil
}
