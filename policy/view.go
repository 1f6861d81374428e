package policy

import (
	"hash/maphash"
	"net/netip"
	"strings"

	"exfilguard/conf"
)

// view is a request prepared once for matching against every rule. It
// lives on the caller's stack.
type view struct {
	method    string
	methodBit methodSet
	scheme    scheme
	port      uint16
	path      string
	host      hostView
}

func (v *view) init(method, sch, host string, port uint16, path string) {
	v.method, v.methodBit = method, methodBit(method)
	v.scheme = parseScheme(sch)
	v.port = port
	if port == 0 {
		switch v.scheme {
		case schemeHTTP:
			v.port = 80
		case schemeHTTPS:
			v.port = 443
		}
	}
	v.path = path
	v.host.init(host)
}

// viewKind classifies a request host.
type viewKind uint8

const (
	viewOther viewKind = iota // neither a valid name nor an IP literal: matched only by "*"
	viewName
	viewAddr
)

// maxNameLen is the longest host name, RFC 1035 §2.3.4 (253 characters
// without the trailing dot). It also lets label offsets fit in a byte.
const maxNameLen = 253

// hostView is a request host classified once: an IP address (IPv4-mapped
// IPv6 unmapped, so that [::ffff:10.0.0.1] is judged as 10.0.0.1, the
// address the dialer will reach), or a name split into labels.
type hostView struct {
	kind viewKind
	name string // viewName: without the trailing dot, case as sent
	// lower says name has no upper-case letters, so that it can be
	// compared with plain string equality.
	lower bool
	addr  netip.Addr // viewAddr
	// hash is hashName of the lower-cased name.
	hash uint64
	// starts[i] is the offset of label i in name; nlabels counts them.
	nlabels uint8
	starts  [maxNameLen/2 + 1]uint8
}

func (h *hostView) init(host string) {
	h.kind, h.name, h.lower, h.addr, h.nlabels, h.hash = viewOther, "", false, netip.Addr{}, 0, 0
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		if a, ok := parseAddr(host[1 : len(host)-1]); ok && a.Is6() {
			h.kind, h.addr = viewAddr, a.Unmap()
		}
		return
	}
	if strings.IndexByte(host, ':') >= 0 {
		if a, ok := parseAddr(host); ok && a.Is6() {
			h.kind, h.addr = viewAddr, a.Unmap()
		}
		return
	}
	// RFC 1034 §3.1: a trailing dot marks an absolute name; "example.com."
	// and "example.com" are the same host. Only one dot is removed.
	name := strings.TrimSuffix(host, ".")
	if !h.scanName(name) {
		return
	}
	if conf.IsNumericLabel(name[h.starts[h.nlabels-1]:]) {
		// A name ending in a number is an IPv4 address or nothing (the
		// WHATWG URL rule conf uses too): "10.0.0.1" is an address, while
		// "0x7f.1" or "2130706433" match no pattern but "*" (peers §4.4).
		h.nlabels = 0
		if a, ok := parseAddr(name); ok && a.Is4() {
			h.kind, h.addr = viewAddr, a
		}
		return
	}
	h.kind, h.name = viewName, name
	h.hash = h.hashLower()
}

// hashLower returns hashName of the lower-cased name.
func (h *hostView) hashLower() uint64 {
	if h.lower {
		return hashName(h.name)
	}
	var buf [maxNameLen]byte
	for i := 0; i < len(h.name); i++ {
		c := h.name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return maphash.Bytes(nameSeed, buf[:len(h.name)])
}

// scanName checks name as checkName does and records its labels and
// whether it is in lower case, in one pass.
func (h *hostView) scanName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	lower, n, start := true, 0, 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if i == start {
				return false
			}
			h.starts[n] = uint8(start)
			n++
			start = i + 1
		case 'A' <= c && c <= 'Z':
			lower = false
		default:
			return false
		}
	}
	if start == len(name) {
		return false
	}
	h.starts[n] = uint8(start)
	h.nlabels, h.lower = uint8(n+1), lower
	return true
}

// label returns label i of a name view.
func (h *hostView) label(i int) string {
	start := int(h.starts[i])
	if i+1 < int(h.nlabels) {
		return h.name[start : int(h.starts[i+1])-1]
	}
	return h.name[start:]
}

// parseAddr parses an IP address without a zone. netip.ParseAddr is
// strict (no octal, hex or short IPv4 forms) and does not allocate when
// there is no zone; a zone never names an upstream host.
func parseAddr(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, '%') >= 0 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// checkName reports whether s is a host name: at most maxNameLen bytes of
// non-empty dot-separated labels made of letters, digits, '-' and '_'
// (RFC 1123 §2.1 plus the '_' that DNS allows and service names use), and
// returns the number of labels.
func checkName(s string) (labels int, ok bool) {
	if s == "" || len(s) > maxNameLen {
		return 0, false
	}
	labels = 1
	start := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if i == start {
				return 0, false
			}
			labels++
			start = i + 1
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return 0, false
		}
	}
	if start == len(s) {
		return 0, false
	}
	return labels, true
}
