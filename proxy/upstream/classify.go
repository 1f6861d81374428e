package upstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Class is what Classify says about an address: Public, or the reason it
// is not public. The String form is a short word for logs.
type Class uint8

// The classes. Every class but Public is non-public: an upstream address of
// that class is used only when the matching rule says
// allow_private_upstream = true (SPEC §6).
const (
	Public        Class = iota // a global unicast address
	Invalid                    // the zero netip.Addr
	Unspecified                // 0.0.0.0/8, ::
	Loopback                   // 127.0.0.0/8, ::1
	Private                    // RFC 1918
	UniqueLocal                // fc00::/7
	LinkLocal                  // 169.254.0.0/16, fe80::/10
	SiteLocal                  // fec0::/10
	CGNAT                      // 100.64.0.0/10
	Multicast                  // 224.0.0.0/4, ff00::/8
	Broadcast                  // 255.255.255.255
	Documentation              // TEST-NETs, 2001:db8::/32, 3fff::/20
	Benchmark                  // 198.18.0.0/15, 2001:2::/48
	IETFProtocol               // 192.0.0.0/24
	Relay6to4                  // 192.88.99.0/24
	Discard                    // 100::/64
	ORCHID                     // 2001:10::/28, 2001:20::/28
	NAT64                      // 64:ff9b:1::/48
	Teredo                     // 2001::/32
	Reserved                   // 240.0.0.0/4, IPv6 outside 2000::/3
	Self                       // one of the proxy's own listening addresses
	numClasses
)

var classNames = [numClasses]string{
	Public:        "public",
	Invalid:       "invalid",
	Unspecified:   "unspecified",
	Loopback:      "loopback",
	Private:       "private",
	UniqueLocal:   "unique_local",
	LinkLocal:     "link_local",
	SiteLocal:     "site_local",
	CGNAT:         "cgnat",
	Multicast:     "multicast",
	Broadcast:     "broadcast",
	Documentation: "documentation",
	Benchmark:     "benchmark",
	IETFProtocol:  "ietf_protocol",
	Relay6to4:     "6to4",
	Discard:       "discard",
	ORCHID:        "orchid",
	NAT64:         "nat64",
	Teredo:        "teredo",
	Reserved:      "reserved",
	Self:          "self",
}

// String returns the reason word: "public", "loopback", "cgnat", ….
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "unknown"
}

// rangeEntry is one row of an address table.
type rangeEntry struct {
	p     netip.Prefix
	class Class
}

// ranges4 is the IPv4 part of the non-public table: the original's list
// (reference §7.2), which is the IANA IPv4 Special-Purpose Address Registry
// (RFC 6890) less the globally reachable entries, plus the rest of the
// reserved space. Rows are checked in order; the first match wins.
var ranges4 = [...]rangeEntry{
	// RFC 791 §3.2, RFC 6890 §2.2.2: "this network". Linux connects a
	// socket aimed at 0.0.0.0 to the local host.
	{netip.MustParsePrefix("0.0.0.0/8"), Unspecified},
	{netip.MustParsePrefix("10.0.0.0/8"), Private},            // RFC 1918
	{netip.MustParsePrefix("100.64.0.0/10"), CGNAT},           // RFC 6598 shared address space; some cloud metadata lives here
	{netip.MustParsePrefix("127.0.0.0/8"), Loopback},          // RFC 1122 §3.2.1.3
	{netip.MustParsePrefix("169.254.0.0/16"), LinkLocal},      // RFC 3927; cloud metadata at 169.254.169.254
	{netip.MustParsePrefix("172.16.0.0/12"), Private},         // RFC 1918
	{netip.MustParsePrefix("192.0.0.0/24"), IETFProtocol},     // RFC 6890 §2.2.2 IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), Documentation},    // RFC 5737 TEST-NET-1
	{netip.MustParsePrefix("192.88.99.0/24"), Relay6to4},      // RFC 3068 6to4 relay anycast, deprecated by RFC 7526
	{netip.MustParsePrefix("192.168.0.0/16"), Private},        // RFC 1918
	{netip.MustParsePrefix("198.18.0.0/15"), Benchmark},       // RFC 2544
	{netip.MustParsePrefix("198.51.100.0/24"), Documentation}, // RFC 5737 TEST-NET-2
	{netip.MustParsePrefix("203.0.113.0/24"), Documentation},  // RFC 5737 TEST-NET-3
	{netip.MustParsePrefix("224.0.0.0/4"), Multicast},         // RFC 5771
	{netip.MustParsePrefix("255.255.255.255/32"), Broadcast},  // RFC 919 limited broadcast; before 240.0.0.0/4
	{netip.MustParsePrefix("240.0.0.0/4"), Reserved},          // RFC 1112 §4 "reserved for future use"
}

// ranges6 is the IPv6 part: the original's list (reference §7.2, from the
// IANA IPv6 Special-Purpose Address Registry, RFC 6890) plus the ranges
// SPEC §6 adds. The IPv4-embedding forms (mapped, compatible, NAT64
// well-known prefix, 6to4) are not rows: Classify decodes them first and
// classifies the embedded IPv4 address; :: and ::1, the two exceptions
// inside the compatible form, are decided there too. Rows are checked in
// order and are at most /64 long (see spans6).
var ranges6 = [...]rangeEntry{
	{netip.MustParsePrefix("100::/64"), Discard}, // RFC 6666 discard-only
	// RFC 8215: local-use IPv4/IPv6 translation prefix. The embedding is
	// operator-defined, so the IPv4 address cannot be recovered; all of it
	// is non-public (peers §4.3).
	{netip.MustParsePrefix("64:ff9b:1::/48"), NAT64},
	// RFC 4380 Teredo: the client's IPv4 address is obfuscated in the low
	// 32 bits and the server's sits in bits 32–63; the tunnel reaches
	// whatever they say, so the whole /32 is non-public (peers §4.3).
	{netip.MustParsePrefix("2001::/32"), Teredo},
	{netip.MustParsePrefix("2001:2::/48"), Benchmark},       // RFC 5180
	{netip.MustParsePrefix("2001:10::/28"), ORCHID},         // RFC 4843 (deprecated)
	{netip.MustParsePrefix("2001:20::/28"), ORCHID},         // RFC 7343 ORCHIDv2
	{netip.MustParsePrefix("2001:db8::/32"), Documentation}, // RFC 3849
	{netip.MustParsePrefix("3fff::/20"), Documentation},     // RFC 9637
	{netip.MustParsePrefix("fc00::/7"), UniqueLocal},        // RFC 4193
	{netip.MustParsePrefix("fe80::/10"), LinkLocal},         // RFC 4291 §2.5.6
	{netip.MustParsePrefix("fec0::/10"), SiteLocal},         // RFC 3879 deprecated site-local, still routed by some stacks
	{netip.MustParsePrefix("ff00::/8"), Multicast},          // RFC 4291 §2.7
}

// globalUnicast6 is the only IPv6 block IANA has allocated for global
// unicast (IANA IPv6 Address Space registry; RFC 4291 §2.4). Anything else
// not matched above is "Reserved by IETF" and never a legitimate upstream.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// span is a table row compiled to a masked compare on an integer: the
// IPv4 address, or the high 64 bits of an IPv6 address. A linear scan of
// these is several times faster than netip.Prefix.Contains per row.
type span struct {
	base, mask uint64
	class      Class
}

var (
	spans4 = compile(ranges4[:], 32)
	spans6 = compile(append(ranges6[:], rangeEntry{globalUnicast6, Public}), 64)
)

// compile turns table rows into spans of a width-bit integer (32 for
// IPv4, 64 for the high half of IPv6).
func compile(rows []rangeEntry, width int) []span {
	out := make([]span, len(rows))
	for i, r := range rows {
		bits := r.p.Bits()
		if bits > width {
			panic(fmt.Sprintf("upstream: internal error: range %v is longer than /%d", r.p, width))
		}
		var v uint64
		if width == 32 {
			b := r.p.Addr().As4()
			v = uint64(binary.BigEndian.Uint32(b[:]))
		} else {
			b := r.p.Addr().As16()
			v = binary.BigEndian.Uint64(b[:8])
		}
		mask := ^uint64(0) << (width - bits) & (^uint64(0) >> (64 - width))
		out[i] = span{base: v & mask, mask: mask, class: r.class}
	}
	return out
}

// Classify reports whether a is a public address and, if not, why. It
// knows the fixed tables only; Dialer.Classify adds the proxy's own
// addresses. A zone is ignored; an IPv4-mapped address is classified as
// its IPv4 address. Classify does not allocate.
func Classify(a netip.Addr) Class {
	if !a.IsValid() {
		return Invalid
	}
	// A zone says which link, not which address: fe80::1%eth0 is
	// link-local. As4 and As16 ignore it.
	a = a.Unmap()
	if a.Is4() {
		return classify4(a.As4())
	}
	b := a.As16()
	switch {
	case isZero(b[:12]):
		switch {
		case b[12]|b[13]|b[14] != 0 || b[15] > 1:
			// RFC 4291 §2.5.5.1: IPv4-compatible ::a.b.c.d (deprecated).
			return classify4([4]byte(b[12:]))
		case b[15] == 1:
			return Loopback // RFC 4291 §2.5.3
		default:
			return Unspecified // RFC 4291 §2.5.2
		}
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && isZero(b[4:12]):
		// RFC 6052 §2.1: the NAT64 well-known prefix 64:ff9b::/96 carries
		// the IPv4 address in its last 32 bits; a translator sends the
		// connection there.
		return classify4([4]byte(b[12:]))
	case b[0] == 0x20 && b[1] == 0x02:
		// RFC 3056 §2: 6to4 2002:V4ADDR::/48 puts the IPv4 address of the
		// site's relay in bits 16–47.
		return classify4([4]byte(b[2:6]))
	}
	hi := binary.BigEndian.Uint64(b[:8])
	for _, s := range spans6 {
		if hi&s.mask == s.base {
			return s.class
		}
	}
	return Reserved // outside 2000::/3
}

// classify4 classifies an IPv4 address given as four bytes.
func classify4(b [4]byte) Class {
	v := uint64(binary.BigEndian.Uint32(b[:]))
	for _, s := range spans4 {
		if v&s.mask == s.base {
			return s.class
		}
	}
	return Public
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// SelfSet is the set of the proxy's own listening addresses (SPEC §6,
// self-connection; peers §4.2). A nil *SelfSet is empty. It is immutable
// after NewSelfSet and safe for concurrent use.
//
// An address in the set has class Self: non-public, so reachable only
// under allow_private_upstream, because it is the proxy's host and its
// other services. The exact listening address and port is refused even
// then, see Loops.
type SelfSet struct {
	entries []selfEntry
}

// selfEntry is one listening port on a set of local addresses.
type selfEntry struct {
	p    netip.Prefix
	port uint16
}

// interfaceAddrs lists the machine's addresses; a test hook.
var interfaceAddrs = net.InterfaceAddrs

// NewSelfSet builds the set from the addresses the process listens on (the
// proxy listener and the metrics listener, as bound, so with real ports).
// An unspecified address (0.0.0.0 or ::) stands for every interface
// address from net.InterfaceAddrs, in both families because Go listens
// dual-stack on either, and for the whole loopback range of an interface
// (a socket bound to 0.0.0.0 answers 127.0.0.2 too). Every listening port
// also counts on 0.0.0.0 and ::, which Linux connects to the local host.
func NewSelfSet(listen []netip.AddrPort) (*SelfSet, error) {
	s := &SelfSet{}
	var local []netip.Prefix // interface addresses, read once
	for _, l := range listen {
		a, port := l.Addr().WithZone("").Unmap(), l.Port()
		if !a.IsValid() {
			return nil, errors.New("self addresses: invalid listening address")
		}
		s.add(netip.IPv4Unspecified(), port)
		s.add(netip.IPv6Unspecified(), port)
		if !a.IsUnspecified() {
			s.add(a, port)
			continue
		}
		if local == nil {
			ifas, err := interfaceAddrs()
			if err != nil {
				return nil, fmt.Errorf("self addresses: list interface addresses: %w", err)
			}
			for _, ifa := range ifas {
				if p, ok := localPrefix(ifa); ok {
					local = append(local, p)
				}
			}
			if local == nil {
				local = []netip.Prefix{}
			}
		}
		for _, p := range local {
			s.entries = append(s.entries, selfEntry{p, port})
		}
	}
	return s, nil
}

// localPrefix converts an interface address: the address itself, or the
// whole network for a loopback interface.
func localPrefix(ifa net.Addr) (netip.Prefix, bool) {
	ipn, ok := ifa.(*net.IPNet)
	if !ok {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(ipn.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	if a.IsLoopback() {
		ones, _ := ipn.Mask.Size()
		if ones > a.BitLen() {
			ones = a.BitLen()
		}
		if p, err := a.Prefix(ones); err == nil {
			return p, true
		}
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

func (s *SelfSet) add(a netip.Addr, port uint16) {
	s.entries = append(s.entries, selfEntry{netip.PrefixFrom(a, a.BitLen()), port})
}

// Contains reports whether a is one of the proxy's own addresses, on any
// port.
func (s *SelfSet) Contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	a = a.WithZone("").Unmap()
	for _, e := range s.entries {
		if e.p.Contains(a) {
			return true
		}
	}
	return false
}

// Loops reports whether a connection to ap would reach one of the proxy's
// own listeners, that is the proxy would connect to itself.
func (s *SelfSet) Loops(ap netip.AddrPort) bool {
	if s == nil {
		return false
	}
	a := ap.Addr().WithZone("").Unmap()
	for _, e := range s.entries {
		if e.port == ap.Port() && e.p.Contains(a) {
			return true
		}
	}
	return false
}
