package proxyproto

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"net/netip"
)

// MaxV2Payload is the largest v2 address block plus TLVs accepted, as in the
// original (reference §8.2, §13). PP §2.2 bounds the length field only by 16
// bits; 512 bytes hold the largest address block (AF_UNIX, 216 bytes) and the
// TLVs load balancers send in practice, and keep the whole header within the
// 536 bytes PP §2 designs both formats to fit in.
const MaxV2Payload = 512

// v2HeaderLen is the fixed part of a v2 header: signature, version and
// command, family and protocol, length (PP §2.2, struct proxy_hdr_v2).
const v2HeaderLen = 16

// The command, family and TLV codes of PP §2.2.
const (
	v2Version = 0x2

	cmdLocal = 0x0
	cmdProxy = 0x1

	famUnspec    = 0x00 // AF_UNSPEC, UNSPEC
	famTCP4      = 0x11 // AF_INET, STREAM
	famTCP6      = 0x21 // AF_INET6, STREAM
	addrLenTCP4  = 2*4 + 2*2
	addrLenTCP6  = 2*16 + 2*2
	tlvHeaderLen = 3

	tlvCRC32C = 0x03 // PP §2.2.3, PP2_TYPE_CRC32C
)

var (
	errV2Version = &Error{2, "version is not 2"}
	errV2Command = &Error{2, "command is not LOCAL or PROXY"}
	errV2TooLong = &Error{2, "address block and TLVs longer than 512 bytes"}
	errV2Family  = &Error{2, "address family and protocol not TCP over IPv4 or IPv6, or UNSPEC"}
	errV2Short   = &Error{2, "length shorter than the address block"}
	errV2TLV     = &Error{2, "TLV overruns the header"}
	errV2CRCLen  = &Error{2, "CRC32C TLV is not 4 bytes or repeated"}
	errV2CRC     = &Error{2, "CRC32C mismatch"}
)

// castagnoli is the CRC32c table of PP §2.2.3 (RFC 4960 Appendix B).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readV2 reads a v2 header, which detect saw begin with the signature. It
// checks the fixed 16 bytes before waiting for the rest, so a bad version,
// command, family or length fails without reading further. On success it
// consumes exactly 16+len bytes.
func readV2(br *bufio.Reader) (Header, error) {
	b, err := br.Peek(v2HeaderLen)
	if err != nil {
		return Header{}, readErr(err)
	}
	// PP §2.2: the version "must always be sent as \x2 and the receiver must
	// only accept this value"; for other commands "Receivers must drop
	// connections presenting unexpected values here".
	if b[12]>>4 != v2Version {
		return Header{}, errV2Version
	}
	cmd, fam := b[12]&0x0f, b[13]
	n := int(binary.BigEndian.Uint16(b[14:16]))
	if n > MaxV2Payload {
		return Header{}, errV2TooLong
	}
	var addrLen int
	switch cmd {
	case cmdLocal:
		// PP §2.2: LOCAL: "The receiver must accept this connection as valid
		// and must use the real connection endpoints and discard the protocol
		// block including the family which is ignored."
	case cmdProxy:
		switch fam {
		case famUnspec:
			// PP §2.2: with AF_UNSPEC "The receiver is free to accept the
			// connection anyway and use the real endpoint addresses"; the
			// counterpart of v1 UNKNOWN, accepted as the original did.
		case famTCP4:
			addrLen = addrLenTCP4
		case famTCP6:
			addrLen = addrLenTCP6
		default:
			// UDP and AF_UNIX cannot reach a TCP listener through a correctly
			// configured balancer, and other values "must be rejected as
			// invalid by receivers" (PP §2.2). PP §2.2 lets a receiver reject
			// unsupported families rather than fall back to UNSPEC; ExfilGuard
			// does, as the original did for AF_UNIX, so that no unknown
			// client is served as the balancer.
			return Header{}, errV2Family
		}
	default:
		return Header{}, errV2Command
	}
	if n < addrLen {
		return Header{}, errV2Short
	}

	// PP §2.2: "The receiver must not start to parse an address before the
	// whole address block is received."
	b, err = br.Peek(v2HeaderLen + n)
	if err != nil {
		return Header{}, readErr(err)
	}
	h := Header{Version: 2, Local: addrLen == 0}
	if addrLen == 0 {
		// LOCAL or AF_UNSPEC: the block, whatever it holds, is skipped
		// ("Receivers MUST always consider this field to skip the appropriate
		// number of bytes", PP §2.2).
		br.Discard(v2HeaderLen + n) // cannot fail: the bytes are buffered
		return h, nil
	}
	a := b[v2HeaderLen:]
	if addrLen == addrLenTCP4 {
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
	} else {
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])).Unmap(), binary.BigEndian.Uint16(a[32:34]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])).Unmap(), binary.BigEndian.Uint16(a[34:36]))
	}
	if err := checkTLVs(b, v2HeaderLen+addrLen); err != nil {
		return Header{}, err
	}
	br.Discard(v2HeaderLen + n) // cannot fail: the bytes are buffered
	return h, nil
}

// checkTLVs walks the TLVs of the whole header hdr, which start at off (PP
// §2.2: type, 16-bit length, value). Their contents are ignored, but each
// must fit in the header, and a CRC32C TLV (PP §2.2.3) must hold the header's
// checksum: "If it is not, the receiver MUST treat the TCP connection providing
// the header as invalid."
func checkTLVs(hdr []byte, off int) error {
	crcAt := -1
	for off < len(hdr) {
		if len(hdr)-off < tlvHeaderLen {
			return errV2TLV
		}
		typ, n := hdr[off], int(binary.BigEndian.Uint16(hdr[off+1:off+3]))
		off += tlvHeaderLen
		if len(hdr)-off < n {
			return errV2TLV
		}
		if typ == tlvCRC32C {
			if n != 4 || crcAt >= 0 {
				return errV2CRCLen
			}
			crcAt = off
		}
		off += n
	}
	if crcAt >= 0 {
		want := binary.BigEndian.Uint32(hdr[crcAt : crcAt+4])
		if crc32cZeroed(hdr, crcAt) != want {
			return errV2CRC
		}
	}
	return nil
}

// zeroCRC stands for the checksum field while it is computed; a package
// variable, read only, since a local one escapes through crc32.Update.
var zeroCRC [4]byte

// crc32cZeroed is the CRC32c of hdr with the 4 bytes at at replaced by zeros
// (PP §2.2.3), computed without copying hdr.
func crc32cZeroed(hdr []byte, at int) uint32 {
	c := crc32.Update(0, castagnoli, hdr[:at])
	c = crc32.Update(c, castagnoli, zeroCRC[:])
	return crc32.Update(c, castagnoli, hdr[at+4:])
}

// AppendV2 appends h as a v2 header (PP §2.2) without TLVs to b: PROXY over
// TCP4 when both addresses are IPv4, over TCP6 (IPv4 ones IPv4-mapped) when
// either is IPv6, and a LOCAL header when h carries no address. Read parses the
// result back to h with Version 2.
func (h Header) AppendV2(b []byte) []byte {
	b = append(b, v2Sig...)
	if !h.Source.IsValid() || !h.Destination.IsValid() {
		return append(b, v2Version<<4|cmdLocal, famUnspec, 0, 0)
	}
	src, dst := h.Source.Addr().Unmap(), h.Destination.Addr().Unmap()
	if src.Is4() && dst.Is4() {
		b = append(b, v2Version<<4|cmdProxy, famTCP4, 0, addrLenTCP4)
		b = append(b, src.AsSlice()...)
		b = append(b, dst.AsSlice()...)
	} else {
		b = append(b, v2Version<<4|cmdProxy, famTCP6, 0, addrLenTCP6)
		s16, d16 := src.As16(), dst.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Source.Port())
	return binary.BigEndian.AppendUint16(b, h.Destination.Port())
}
