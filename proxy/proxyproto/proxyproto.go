// Package proxyproto reads the PROXY protocol header, versions 1 and 2, that a
// load balancer sends at the start of a TCP connection to carry the address of
// the client it relays, and applies ExfilGuard's listener rules for it
// (SPEC §8; reference §13).
//
// The wire format is the one of the HAProxy specification "The PROXY protocol,
// Versions 1 & 2" (haproxy doc/proxy-protocol.txt); comments cite its sections
// as "PP §2.1". Parsing is strict: anything that does not exactly match the
// protocol is an error, and the connection must be closed (PP §2.1: "Any
// sequence which does not exactly match the protocol must be discarded and
// cause the receiver to abort the connection").
//
// # Listener semantics
//
// The listener calls [Resolve] once per accepted connection, after setting a
// read deadline on it (the reference uses request_header_timeout, from accept
// until the header is read), and before the first HTTP read, on the same
// *bufio.Reader that the HTTP loop then uses. The client address for policy and
// logs is then h.Client(peer). Resolve decides as follows ("allowed" means the
// TCP peer is inside proxy_protocol_allowed_cidrs, see [Allowed]):
//
//	mode      peer         connection starts with        Resolve returns     listener
//	off       any          anything                      Header{}, nil       serve, client = peer; nothing read
//	optional  not allowed  anything                      Header{}, nil       serve, client = peer; nothing read (1)
//	required  not allowed  anything                      ErrNotAllowed       close, no response; nothing read
//	optional  allowed      no PROXY signature            Header{}, nil       serve, client = peer; nothing consumed
//	optional  allowed      valid header                  h, nil              serve, client = h.Client(peer) (2)
//	required  allowed      valid header                  h, nil              serve, client = h.Client(peer) (2)
//	required  allowed      no PROXY signature            ErrNoHeader         close, no response (WARN)
//	any       allowed      malformed header (3)          *Error              close, no response (WARN)
//	any       allowed      deadline, EOF, read error     the read error      close, no response (quiet)
//
// (1) A header from a peer that is not allowed is never honoured: its bytes are
// left for the HTTP parser, which rejects "PROXY …" or the binary signature as
// a malformed request line (400, then close). In required mode a peer that
// is not allowed is closed at once (issue 6), unlike the original, which
// served it as a normal client (reference §13 and its test
// proxy_protocol_allowlist_skips_untrusted_peer, §15.5).
//
// Optional mode guesses whether a header is present, which PP §2 forbids ("MUST
// not try to guess whether the protocol header is present or not ... it would
// open a major security breach by allowing untrusted parties to spoof their
// connection addresses"). It is kept, as in the original, for migrating a
// balancer to the protocol; it cannot be used to spoof because the guess is made
// only for allowed peers, and a non-allowed one's header is never honoured.
//
// (2) v1 "UNKNOWN", v2 LOCAL and v2 PROXY with AF_UNSPEC carry no address:
// h.Local is set and h.Client(peer) is the TCP peer (PP §2.1, §2.2).
//
// (3) Anything that starts with a signature ("PROXY", or the 12-byte v2
// signature) but is not a valid header, including a truncated one, an over-long
// v1 line and a v2 header with unknown version, command or family. No bytes are
// consumed on error.
//
// All reads are bounded: at most [MaxV1Len] bytes for a v1 line and
// 16+[MaxV2Payload] bytes for a v2 header are ever inspected, and nothing past
// the header is consumed. The caller's read deadline bounds the waiting: a
// prefix that could still become a signature (say "PRO" or "\r\n\r\n") waits
// for more bytes.
package proxyproto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Mode is the proxy_protocol setting of the listener.
type Mode uint8

const (
	// Off never reads a PROXY header. It is the zero value and the default.
	Off Mode = iota
	// Optional reads a header from an allowed peer when the connection starts
	// with one, and serves the connection as a normal one otherwise.
	Optional
	// Required demands a header from every allowed peer.
	Required
)

var modeNames = [...]string{Off: "off", Optional: "optional", Required: "required"}

// String returns the setting's spelling: "off", "optional" or "required".
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode returns the Mode spelt s ("off", "optional" or "required", exactly).
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return Off, errors.New(`proxyproto: mode must be "off", "optional" or "required"`)
}

// Header is a parsed PROXY protocol header.
//
// Exactly one of these holds: Version is 0 (no header was read; the zero
// Header), Local is set (a header that carries no address), or Source and
// Destination are both valid. IPv4-mapped IPv6 addresses are unmapped, and
// addresses never carry a zone.
type Header struct {
	// Version is 1 (text) or 2 (binary), or 0 when no header was read.
	Version int
	// Local reports a header that carries no address: v1 "UNKNOWN", v2 LOCAL,
	// or v2 PROXY with AF_UNSPEC. The TCP peer stays the client.
	Local bool
	// Source is the original client's address and port.
	Source netip.AddrPort
	// Destination is the address and port the original client connected to.
	Destination netip.AddrPort
}

// Client returns the address to use as the client of the connection whose TCP
// peer is peer: the header's source address when it carries one, else peer.
func (h Header) Client(peer netip.AddrPort) netip.AddrPort {
	if h.Source.IsValid() {
		return h.Source
	}
	return peer
}

// Error is a malformed PROXY header. Reason is a fixed phrase that never
// contains input bytes, so it can be logged as is.
type Error struct {
	Version int    // 1 or 2
	Reason  string // what is wrong, e.g. "bad source port"
}

func (e *Error) Error() string {
	return fmt.Sprintf("proxyproto: malformed v%d header: %s", e.Version, e.Reason)
}

// ErrNoHeader is returned by Read, and by Resolve in Required mode, when the
// connection does not start with a PROXY protocol signature.
var ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")

// ErrNotAllowed is returned by Resolve in required mode for a peer outside
// the allowed CIDRs: the connection is closed without a response.
var ErrNotAllowed = errors.New("proxyproto: peer is not allowed to connect in required mode")

// errSmallBuffer reports a caller's bufio.Reader that cannot hold the largest
// header; it is a programming error, not a property of the input.
var errSmallBuffer = errors.New("proxyproto: bufio.Reader smaller than MinBufferSize")

// MinBufferSize is the smallest bufio.Reader buffer Read accepts: the largest
// v2 header must fit, since it is peeked whole before being consumed.
const MinBufferSize = v2HeaderLen + MaxV2Payload

// Allowed reports whether peer may send a PROXY header, that is whether it is
// inside one of cidrs. An IPv4-mapped IPv6 peer (which a dual-stack Go listener
// reports for IPv4 clients) also matches its IPv4 form, and a zone is ignored;
// unlike the original, which compared the raw peer address.
func Allowed(peer netip.Addr, cidrs []netip.Prefix) bool {
	peer = peer.WithZone("")
	v4 := peer.Unmap()
	for _, p := range cidrs {
		if p.Contains(peer) || p.Contains(v4) {
			return true
		}
	}
	return false
}

// Resolve applies mode to a new connection whose TCP peer is peer and whose
// bytes br reads, as the package comment's table describes: it returns the
// header read (the zero Header when none is read) or the error that closes the
// connection. On success br holds exactly the bytes after the header.
// br must have a buffer of at least MinBufferSize bytes.
func Resolve(br *bufio.Reader, mode Mode, peer netip.Addr, allowed []netip.Prefix) (Header, error) {
	switch mode {
	case Off:
		return Header{}, nil
	case Optional, Required:
	default:
		return Header{}, fmt.Errorf("proxyproto: invalid mode %d", uint8(mode))
	}
	// A header is considered only from an allowed peer. In optional mode
	// any other peer is a normal client (reference §13); in required mode
	// only the load balancers may connect at all (issue 6, unlike the
	// original, which served such a peer as a normal client).
	if !Allowed(peer, allowed) {
		if mode == Required {
			return Header{}, ErrNotAllowed
		}
		return Header{}, nil
	}
	if br.Size() < MinBufferSize {
		return Header{}, errSmallBuffer
	}
	if mode == Optional {
		ok, err := Detect(br)
		if err != nil || !ok {
			return Header{}, err
		}
	}
	return Read(br)
}

// Detect reports whether the bytes br reads start with a PROXY protocol
// signature: "PROXY" for version 1 or the 12-byte binary signature for version
// 2 (PP §2.2, "Identifying the protocol version"). It only peeks and never
// consumes. It decides as soon as the bytes seen so far either complete a
// signature or cannot begin one; while they are a proper prefix of one (a
// client sending "PRO" and waiting) it waits for more, which the caller's read
// deadline bounds. A read error before a decision is returned, with io.EOF
// after a partial prefix turned into io.ErrUnexpectedEOF.
//
// A "yes" is not a promise that the header is valid: Read checks that.
func Detect(br *bufio.Reader) (bool, error) {
	v, err := detect(br)
	return v != 0, err
}

// Read reads the PROXY protocol header at the start of the bytes br reads
// and consumes exactly its bytes: on success, the first byte left in br is
// the first byte after the header's CRLF (v1) or after its 16+len bytes (v2).
// On error nothing is consumed. Errors are ErrNoHeader (no signature), *Error
// (malformed header), or a read error wrapped once (io.ErrUnexpectedEOF for a
// header cut short).
//
// br must have a buffer of at least MinBufferSize bytes. Read does not
// allocate on success.
func Read(br *bufio.Reader) (Header, error) {
	if br.Size() < MinBufferSize {
		return Header{}, errSmallBuffer
	}
	v, err := detect(br)
	switch {
	case err != nil:
		return Header{}, fmt.Errorf("proxyproto: read header: %w", err)
	case v == 1:
		return readV1(br)
	case v == 2:
		return readV2(br)
	}
	return Header{}, ErrNoHeader
}

// v1Sig is what a v1 header starts with; PP §2.2: "if ... the 5 first
// characters match the US-ASCII representation of "PROXY" then the protocol
// must be parsed as version 1".
const v1Sig = "PROXY"

// v2Sig is the 12-byte signature of a v2 header (PP §2.2).
const v2Sig = "\r\n\r\n\x00\r\nQUIT\n"

// detect returns 1 or 2 when br starts with the v1 or v2 signature, 0 when
// it cannot.
func detect(br *bufio.Reader) (int, error) {
	n := max(1, min(br.Buffered(), len(v2Sig)))
	for {
		b, err := br.Peek(n)
		switch {
		case len(b) >= len(v1Sig) && string(b[:len(v1Sig)]) == v1Sig:
			return 1, nil
		case len(b) >= len(v2Sig) && string(b[:len(v2Sig)]) == v2Sig:
			return 2, nil
		case !isPrefix(b, v1Sig) && !isPrefix(b, v2Sig):
			return 0, nil
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		// Ask for one byte more than we have, so Peek waits for at most one
		// read; never more than the longer signature.
		n = min(max(br.Buffered(), len(b)+1), len(v2Sig))
	}
}

// isPrefix reports whether b is a prefix of s.
func isPrefix(b []byte, s string) bool {
	return len(b) <= len(s) && string(b) == s[:len(b)]
}

// readErr turns a read error met inside a header (after its signature) into
// the error Read returns: EOF there means the header was cut short.
func readErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("proxyproto: read header: %w", err)
}
