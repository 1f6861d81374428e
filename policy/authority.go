package policy

import (
	"errors"
	"strings"
)

// ParseAuthority splits a request authority ("host", "host:port",
// "[v6]" or "[v6]:port", RFC 9110 §7.2) as the proxy's front ends receive
// it in an absolute-form target, a Host header or an HTTP/2 :authority.
// The host comes back in lower case without brackets; port 0 means none
// was given, which is an error when needPort is set (CONNECT). Userinfo,
// spaces, control bytes and hosts that are neither names nor dotted-decimal
// IPv4 or bracketed IPv6 literals are errors.
func ParseAuthority(authority string, needPort bool) (host string, port uint16, err error) {
	for i := 0; i < len(authority); i++ {
		if c := authority[i]; c <= ' ' || c >= 0x7f {
			return "", 0, errors.New("authority must not contain spaces, control or non-ASCII characters")
		}
	}
	if strings.IndexByte(authority, '@') >= 0 {
		return "", 0, errors.New("authority must not contain userinfo ('@')")
	}
	return splitHostPort(authority, needPort)
}
