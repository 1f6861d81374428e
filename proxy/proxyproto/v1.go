package proxyproto

import (
	"bufio"
	"bytes"
	"net/netip"
)

// MaxV1Len is the longest v1 line, CRLF included. PP §2.1: "If the CRLF
// sequence is not found in the first 107 characters, the receiver should
// declare the line invalid" (the worst case is "PROXY UNKNOWN" followed by two
// full IPv6 addresses and two 5-digit ports). The original accepted 256.
const MaxV1Len = 107

// v1Prefix is "PROXY" and "exactly one space" (PP §2.1).
const v1Prefix = v1Sig + " "

var (
	errV1TooLong  = &Error{1, "no CRLF in the first 107 bytes"}
	errV1Prefix   = &Error{1, `line does not start with "PROXY "`}
	errV1Char     = &Error{1, "byte outside printable US-ASCII"}
	errV1EOL      = &Error{1, "line not ended by CRLF"}
	errV1Protocol = &Error{1, `protocol is not "TCP4", "TCP6" or "UNKNOWN"`}
	errV1Fields   = &Error{1, "not exactly 4 fields separated by single spaces"}
	errV1Src      = &Error{1, "bad source address"}
	errV1Dst      = &Error{1, "bad destination address"}
	errV1SrcPort  = &Error{1, "bad source port"}
	errV1DstPort  = &Error{1, "bad destination port"}
)

// readV1 reads a v1 line, which detect saw begin with "PROXY". It peeks at
// most MaxV1Len bytes, one read at a time, and fails as soon as the bytes seen
// cannot be a valid line: PP §2.1 recommends "to abort the connection as soon
// as possible". On success it consumes the line, CRLF included, and nothing
// more.
func readV1(br *bufio.Reader) (Header, error) {
	n := min(max(br.Buffered(), len(v1Sig)), MaxV1Len)
	i := 0 // bytes of b already checked
	for {
		b, err := br.Peek(n)
		for ; i < len(b); i++ {
			c := b[i]
			// PP §2.1: "The receiver must not tolerate a single CR or LF
			// character to end the line when a complete CRLF sequence is
			// expected."
			if i > 0 && b[i-1] == '\r' && c != '\n' {
				return Header{}, errV1EOL
			}
			switch {
			case c == '\n':
				if i == 0 || b[i-1] != '\r' {
					return Header{}, errV1EOL
				}
				h, perr := parseV1(b[:i+1])
				if perr != nil {
					return Header{}, perr
				}
				br.Discard(i + 1) // cannot fail: the bytes are buffered
				return h, nil
			case i < len(v1Prefix):
				if c != v1Prefix[i] {
					return Header{}, errV1Prefix
				}
			case c == '\r':
			case c < 0x20 || c > 0x7e:
				// PP §2.1: the header is "one line of US-ASCII text".
				return Header{}, errV1Char
			}
		}
		if len(b) >= MaxV1Len {
			return Header{}, errV1TooLong
		}
		if err != nil {
			return Header{}, readErr(err)
		}
		n = min(max(br.Buffered(), len(b)+1), MaxV1Len)
	}
}

// parseV1 parses a complete v1 line: "PROXY " and then, exactly (PP §2.1),
//
//	"UNKNOWN" [ " " *anything ] CRLF
//	( "TCP4" | "TCP6" ) SP srcaddr SP dstaddr SP srcport SP dstport CRLF
//
// readV1 has checked the "PROXY " prefix, the CRLF ending and that every other
// byte is printable US-ASCII.
func parseV1(line []byte) (Header, error) {
	s := line[len(v1Prefix) : len(line)-len("\r\n")]
	proto, rest, more := bytes.Cut(s, []byte{' '})
	var v6 bool
	switch string(proto) {
	case "UNKNOWN":
		// PP §2.1: "For "UNKNOWN", the rest of the line before the CRLF may be
		// omitted by the sender, and the receiver must ignore anything
		// presented before the CRLF is found"; the receiver "SHOULD accept the
		// connection and use the real connection's parameters".
		return Header{Version: 1, Local: true}, nil
	case "TCP4":
	case "TCP6":
		v6 = true
	default:
		return Header{}, errV1Protocol
	}
	if !more {
		return Header{}, errV1Fields
	}
	srcText, rest, ok1 := bytes.Cut(rest, []byte{' '})
	dstText, rest, ok2 := bytes.Cut(rest, []byte{' '})
	sportText, dportText, ok3 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || !ok3 {
		return Header{}, errV1Fields
	}
	// An empty or extra field (two spaces in a row, a trailing space) makes
	// one of the four fail to parse below.

	// PP §2.1: the destination "is the same format as the layer 3 source
	// address and matches the same family", which the protocol names.
	src, ok := parseAddr(srcText, v6)
	if !ok {
		return Header{}, errV1Src
	}
	dst, ok := parseAddr(dstText, v6)
	if !ok {
		return Header{}, errV1Dst
	}
	sport, ok := parsePort(sportText)
	if !ok {
		return Header{}, errV1SrcPort
	}
	dport, ok := parsePort(dportText)
	if !ok {
		return Header{}, errV1DstPort
	}
	return Header{
		Version:     1,
		Source:      netip.AddrPortFrom(src.Unmap(), sport),
		Destination: netip.AddrPortFrom(dst.Unmap(), dport),
	}, nil
}

// parseAddr parses an IPv6 address if v6, else an IPv4 one.
func parseAddr(s []byte, v6 bool) (netip.Addr, bool) {
	if v6 {
		return parseIPv6(s)
	}
	return parseIPv4(s)
}

// parsePort parses a v1 port. PP §2.1: "a decimal integer in the range
// [0..65535] inclusive. Heading zeroes are not permitted".
func parsePort(s []byte) (uint16, bool) {
	if len(s) == 0 || len(s) > len("65535") || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	v := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return uint16(v), v <= 65535
}

// AppendV1 appends h as a v1 line (PP §2.1) to b: "PROXY TCP4 …" when both
// addresses are IPv4, "PROXY TCP6 …" (IPv4 ones written IPv4-mapped) when
// either is IPv6, and "PROXY UNKNOWN\r\n" when h carries no address. Read
// parses the result back to h with Version 1.
func (h Header) AppendV1(b []byte) []byte {
	if !h.Source.IsValid() || !h.Destination.IsValid() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	src, dst := h.Source.Addr().WithZone(""), h.Destination.Addr().WithZone("")
	if src.Unmap().Is4() && dst.Unmap().Is4() {
		b = append(b, "PROXY TCP4 "...)
		src, dst = src.Unmap(), dst.Unmap()
	} else {
		b = append(b, "PROXY TCP6 "...)
		src, dst = netip.AddrFrom16(src.As16()), netip.AddrFrom16(dst.As16())
	}
	b = src.AppendTo(b)
	b = append(b, ' ')
	b = dst.AppendTo(b)
	b = append(b, ' ')
	b = appendUint(b, h.Source.Port())
	b = append(b, ' ')
	b = appendUint(b, h.Destination.Port())
	return append(b, "\r\n"...)
}

// appendUint appends v in decimal.
func appendUint(b []byte, v uint16) []byte {
	var buf [5]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}
