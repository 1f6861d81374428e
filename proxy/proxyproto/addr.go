package proxyproto

import "net/netip"

// The v1 address parsers work on the line's bytes so that reading a header
// does not allocate (netip.ParseAddr takes a string). They accept exactly what
// netip.ParseAddr accepts for the family, without a zone; the tests check that
// agreement.

// parseIPv4 parses a dotted-quad IPv4 address. PP §2.1: "exactly 4 integers in
// the range [0..255] inclusive written in decimal representation separated by
// exactly one dot between each other. Heading zeroes are not permitted".
func parseIPv4(s []byte) (netip.Addr, bool) {
	var ip [4]byte
	if !parseIPv4Into(s, &ip) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

func parseIPv4Into(s []byte, ip *[4]byte) bool {
	i := 0
	for k := range ip {
		if k > 0 {
			if i >= len(s) || s[i] != '.' {
				return false
			}
			i++
		}
		start, v := i, 0
		for i < len(s) && i-start < 3 && '0' <= s[i] && s[i] <= '9' {
			v = v*10 + int(s[i]-'0')
			i++
		}
		if i == start || v > 255 || s[start] == '0' && i-start > 1 {
			return false
		}
		ip[k] = byte(v)
	}
	return i == len(s)
}

// parseIPv6 parses a textual IPv6 address (RFC 4291 §2.2). PP §2.1: "series of
// sets of 4 hexadecimal digits (upper or lower case) delimited by colons ...
// with the acceptance of one double colon sequence"; the "canonical format" the
// sender must use (RFC 5952 §5) writes IPv4-mapped addresses with a trailing
// dotted quad, so that form (RFC 4291 §2.2 form 3) is accepted too. Zones are
// not.
func parseIPv6(s []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // index in ip where "::" stands, if any
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, uint32(0)
		for ; off < len(s); off++ {
			d := unhex(s[off])
			if d < 0 {
				break
			}
			if off > 3 {
				return netip.Addr{}, false // more than 4 digits
			}
			acc = acc<<4 | uint32(d)
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(s) && s[off] == '.' {
			// The embedded IPv4 address ends the string and fills the last
			// 32 bits, either directly or after a "::".
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return netip.Addr{}, false
			}
			if !parseIPv4Into(s, (*[4]byte)(ip[i:i+4])) {
				return netip.Addr{}, false
			}
			i += 4
			s = nil
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return netip.Addr{}, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false // a second "::"
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		copy(ip[ellipsis+n:], ip[ellipsis:i])
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false // "::" must stand for at least one group
	}
	return netip.AddrFrom16(ip), true
}

// unhex returns the value of the hexadecimal digit c, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
