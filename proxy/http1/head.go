package http1

import (
	"encoding/binary"
	"math"
)

// Field is one header or trailer field: its name as sent and its value
// without the surrounding OWS (RFC 9110 §5.5). In a head read by a Reader,
// both slices point into the Reader's buffer.
type Field struct {
	Name, Value []byte
}

// Fields is a field section in the order it was sent.
type Fields []Field

// Get returns the value of the first field called name, compared without
// regard to ASCII case (RFC 9110 §5.1), and whether there is one.
func (fs Fields) Get(name string) (value []byte, ok bool) {
	for i := range fs {
		if foldEqual(fs[i].Name, name) {
			return fs[i].Value, true
		}
	}
	return nil, false
}

// Count returns the number of fields called name, compared without regard
// to ASCII case.
func (fs Fields) Count(name string) int {
	n := 0
	for i := range fs {
		if foldEqual(fs[i].Name, name) {
			n++
		}
	}
	return n
}

// Expect is what a request's Expect field asks for (RFC 9110 §10.1.1).
type Expect uint8

const (
	ExpectNone     Expect = iota // no Expect field
	ExpectContinue               // one Expect field, "100-continue" in any case
	ExpectOther                  // any other value, or more than one Expect field: answer 417
)

// Framing says how a message body is delimited (RFC 9112 §6.3).
type Framing uint8

const (
	BodyNone       Framing = iota // no body
	BodyLength                    // Content-Length bytes
	BodyChunked                   // the chunked transfer coding (RFC 9112 §7.1)
	BodyUntilClose                // everything until the upstream closes (responses only)
)

func (f Framing) String() string {
	switch f {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	}
	return "invalid"
}

// RequestHead is a request line and header section (RFC 9112 §3, §5) with
// the framing facts already checked and extracted. A head returned by a
// Reader, with every slice in it, is valid until that Reader reads the next
// head; reading the body leaves it intact.
type RequestHead struct {
	Method []byte // a token, case preserved (RFC 9110 §9.1)
	Target []byte // the request-target exactly as sent: visible ASCII only
	Fields Fields // every header field in order, names as sent

	// ContentLength is the Content-Length value, -1 when absent.
	ContentLength int64
	// Chunked is set by "Transfer-Encoding: chunked", the only transfer
	// coding accepted. Chunked and ContentLength >= 0 never go together.
	Chunked bool
	// Host is the Host field value and HasHost whether there is one; a
	// second Host field is an error (RFC 9112 §3.2).
	Host    []byte
	HasHost bool
	// Close and KeepAlive say whether the Connection field lists "close"
	// and "keep-alive" (RFC 9112 §9.3, §9.6).
	Close, KeepAlive bool
	// Expect is what the Expect field asks for.
	Expect Expect
	// Upgrade is set when the request has an Upgrade field (RFC 9110 §7.8).
	Upgrade bool
	// Size is the number of bytes of the head on the wire, final CRLF
	// included.
	Size int
}

// Framing returns how the request's body is delimited (RFC 9112 §6.3:
// chunked, else Content-Length, else no body). A Content-Length of zero is
// BodyNone.
func (h *RequestHead) Framing() Framing {
	switch {
	case h.Chunked:
		return BodyChunked
	case h.ContentLength > 0:
		return BodyLength
	}
	return BodyNone
}

// ResponseHead is a status line and header section (RFC 9112 §4, §5) with
// the framing facts already checked and extracted. A head returned by a
// Reader, with every slice in it, is valid until that Reader reads the next
// head; reading the body leaves it intact.
type ResponseHead struct {
	StatusCode int    // 100 to 599
	Reason     []byte // the reason-phrase, possibly empty
	Fields     Fields // every header field in order, names as sent

	// ContentLength is the Content-Length value, -1 when absent.
	ContentLength int64
	// Chunked is set by "Transfer-Encoding: chunked", the only transfer
	// coding accepted.
	Chunked bool
	// Close and KeepAlive say whether the Connection field lists "close"
	// and "keep-alive".
	Close, KeepAlive bool
	// Upgrade is set when the response has an Upgrade field.
	Upgrade bool
	// Size is the number of bytes of the head on the wire.
	Size int
}

// Framing returns how the response's body is delimited, given the method
// of the request it answers (RFC 9112 §6.3): none for HEAD and for 1xx, 204
// and 304; chunked; Content-Length; otherwise until the connection closes.
// A 2xx answer to CONNECT is a tunnel, not a body; the caller handles it.
func (h *ResponseHead) Framing(method string) Framing {
	switch {
	case method == "HEAD" || h.StatusCode < 200 || h.StatusCode == 204 || h.StatusCode == 304:
		return BodyNone
	case h.Chunked:
		return BodyChunked
	case h.ContentLength > 0:
		return BodyLength
	case h.ContentLength == 0:
		return BodyNone
	}
	return BodyUntilClose
}

// parseContentLength parses a Content-Length value: plain decimal digits,
// no sign, no list, no overflow (RFC 9110 §8.6: Content-Length = 1*DIGIT).
func parseContentLength[T ~string | ~[]byte](v T) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseConnection parses a Connection value, a comma-separated list of
// tokens in which empty elements are allowed and ignored (RFC 9110 §7.6.1,
// §5.6.1), and says whether it lists close and keep-alive.
func parseConnection[T ~string | ~[]byte](v T) (close, keepAlive, ok bool) {
	for len(v) > 0 {
		var elem T
		elem, v = cutComma(v)
		elem = trimOWS(elem)
		switch {
		case len(elem) == 0:
		case !isToken(elem):
			return false, false, false
		case equalFold(elem, "close"):
			close = true
		case equalFold(elem, "keep-alive"):
			keepAlive = true
		}
	}
	return close, keepAlive, true
}

// cutComma splits s at its first comma.
func cutComma[T ~string | ~[]byte](s T) (before, after T) {
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			return s[:i], s[i+1:]
		}
	}
	return s, s[len(s):]
}

// Fields whose repetition or combination changes how a message is framed
// or routed.
const (
	fHost = 1 << iota
	fContentLength
	fTransferEncoding
	fConnection
	fExpect
	fUpgrade
	fOther = 0
)

// fieldKind classifies a field name.
func fieldKind[T ~string | ~[]byte](name T) int {
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			return fHost
		}
	case 6:
		if equalFold(name, "expect") {
			return fExpect
		}
	case 7:
		if equalFold(name, "upgrade") {
			return fUpgrade
		}
	case 10:
		if equalFold(name, "connection") {
			return fConnection
		}
	case 14:
		if equalFold(name, "content-length") {
			return fContentLength
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return fTransferEncoding
		}
	}
	return fOther
}

// splitField parses a field line without its CRLF: field-name ":" OWS
// field-value OWS (RFC 9112 §5). It returns the end of the name and the
// bounds of the value, or a message saying what is wrong.
func splitField(line []byte) (nameEnd, valStart, valEnd int, msg string) {
	i := 0
	for i < len(line) && chars[line[i]]&cToken != 0 {
		i++
	}
	if i == 0 {
		if len(line) > 0 && isOWS(line[0]) {
			// RFC 9112 §5.2: obs-fold is rejected, and so is whitespace
			// between the start-line and the first field (§2.2).
			return 0, 0, 0, "obs-fold or leading whitespace"
		}
		return 0, 0, 0, "invalid field name"
	}
	if i == len(line) || line[i] != ':' {
		if i < len(line) && isOWS(line[i]) {
			// RFC 9112 §5.1: "No whitespace is allowed between the
			// field name and colon"; a server MUST reject it with 400.
			return 0, 0, 0, "whitespace between field name and colon"
		}
		return 0, 0, 0, "invalid field name"
	}
	nameEnd = i
	i++
	for i < len(line) && isOWS(line[i]) {
		i++
	}
	valStart = i
	// Eight bytes at a time while none is a control byte (HTAB included,
	// which then goes the slow way) or DEL: values are most of a head.
	for ; i+8 <= len(line); i += 8 {
		x := binary.LittleEndian.Uint64(line[i:])
		if hasLess(x, 0x20)|hasZero(x^(lsb*0x7f)) != 0 {
			break
		}
	}
	for ; i < len(line); i++ {
		if chars[line[i]]&cValue == 0 {
			if line[i] == '\r' {
				return 0, 0, 0, "bare CR in field value"
			}
			return 0, 0, 0, "control character in field value"
		}
	}
	valEnd = len(line)
	for valEnd > valStart && isOWS(line[valEnd-1]) {
		valEnd--
	}
	return nameEnd, valStart, valEnd, ""
}

// Byte-parallel tests on eight bytes in a uint64 ("Bit Twiddling Hacks",
// Sean Eron Anderson): nonzero exactly when some byte matches.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasZero reports, as a nonzero value, whether a byte of x is zero.
func hasZero(x uint64) uint64 { return (x - lsb) & ^x & msb }

// hasLess reports, as a nonzero value, whether a byte of x is less than n,
// for n <= 128.
func hasLess(x uint64, n byte) uint64 { return (x - lsb*uint64(n)) & ^x & msb }

// hasMore reports, as a nonzero value, whether a byte of x is more than n,
// for n <= 127.
func hasMore(x uint64, n byte) uint64 { return (x + lsb*uint64(127-n) | x) & msb }
