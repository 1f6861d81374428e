package http1

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxHeadSize is the head size limit NewReader uses when given zero:
// the default of max_request_header_size and max_response_header_size.
const DefaultMaxHeadSize = 32 << 10

// Reader reads HTTP/1.1 messages from a *bufio.Reader owned by the caller:
// heads, then their bodies. It never consumes a byte beyond the message it
// was asked for, so what is buffered after a head or a body belongs to the
// next message, or to a tunnel after CONNECT.
//
// The first error is sticky: every later call returns it, because after a
// malformed or truncated message the stream cannot be trusted.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	maxHead int

	buf    []byte // the current head, as read
	peek   []byte // what br holds beyond the lines taken so far
	peeked int    // bytes of the current head taken from peek
	fields Fields // the current head's fields
	req    RequestHead
	resp   ResponseHead

	body     Body
	line     []byte     // the current chunk-size line
	tbuf     []byte     // the current trailer section, as read
	toffs    []fieldOff // where the trailer fields are in tbuf
	trailers Fields

	// bad is the status of a malformed message: 400 after a request head,
	// 502 after a response head. tooLarge is that of a head over maxHead.
	bad, tooLarge int
	// pending is set while the body that the last request head declares,
	// declared and declaredLen, has not been asked for with Body.
	pending     bool
	declared    Framing
	declaredLen int64

	err error // sticky
}

// fieldOff locates one field in a buffer: name buf[ns:ne], value buf[vs:ve].
type fieldOff struct{ ns, ne, vs, ve int }

// NewReader returns a Reader of br whose heads may be at most maxHeadSize
// bytes, start-line and final CRLF included; zero means
// DefaultMaxHeadSize.
func NewReader(br *bufio.Reader, maxHeadSize int) *Reader {
	r := &Reader{}
	r.Reset(br, maxHeadSize)
	return r
}

// Reset makes r read from br with a new head size limit, as NewReader, but
// keeps the buffers r has grown. Heads and bodies r returned become invalid.
func (r *Reader) Reset(br *bufio.Reader, maxHeadSize int) {
	if maxHeadSize <= 0 {
		maxHeadSize = DefaultMaxHeadSize
	}
	r.br, r.maxHead = br, maxHeadSize
	r.body, r.pending, r.err = Body{}, false, nil
	r.bad = statusBadRequest
}

// ReadRequestHead reads a request line and header section (RFC 9112 §3,
// §5). The head and its slices are valid until the next head is read or r
// is Reset; reading the body leaves them intact.
//
// It returns io.EOF, unwrapped, when the stream ends before the first byte
// (a clean close); an *Error with Status 400 for a malformed or truncated
// head and 431 for one larger than the limit; and other read errors
// wrapped, so that a deadline set on the conn shows as
// os.ErrDeadlineExceeded. To tell an idle conn from a slow head, Peek one
// byte with the idle deadline before calling ReadRequestHead with the head
// deadline.
//
// The body that the head declares (see RequestHead.Framing) must be read
// with Body before the next head.
func (r *Reader) ReadRequestHead() (*RequestHead, error) {
	const op = "read request head"
	if err := r.startHead(op, statusBadRequest, statusHeadTooLarge); err != nil {
		return nil, err
	}
	line, err := r.nextLine(op)
	if err != nil {
		return nil, err
	}
	// RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
	// Exactly one SP between the parts; §3 allows a server to accept other
	// whitespace, which is how request lines get read two ways.
	if len(line) == 0 {
		// RFC 9112 §2.2 lets a server ignore empty lines before the
		// request-line; SPEC §5 rejects them.
		return nil, r.fail(newError(r.bad, op, "empty line before the request line"))
	}
	i := 0
	for i < len(line) && chars[line[i]]&cToken != 0 {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		return nil, r.fail(newError(r.bad, op, "method is not a token followed by one space"))
	}
	methodEnd := i
	i++
	targetStart := i
	// Eight bytes at a time while all are visible ASCII: targets carry
	// long paths and queries.
	for ; i+8 <= len(line); i += 8 {
		x := binary.LittleEndian.Uint64(line[i:])
		if hasLess(x, 0x21)|hasMore(x, 0x7e) != 0 {
			break
		}
	}
	for i < len(line) && chars[line[i]]&cTarget != 0 {
		i++
	}
	if i == targetStart || i == len(line) || line[i] != ' ' {
		return nil, r.fail(newError(r.bad, op, "request target is empty, has bytes other than visible ASCII or is not followed by one space"))
	}
	method, target := line[:methodEnd:methodEnd], line[targetStart:i:i]
	if v := line[i+1:]; string(v) != "HTTP/1.1" {
		// SPEC §5: HTTP/1.0 and every other version are refused.
		if string(v) == "HTTP/1.0" {
			return nil, r.fail(newError(r.bad, op, "HTTP/1.0 is not supported"))
		}
		return nil, r.fail(newError(r.bad, op, "version is not HTTP/1.1"))
	}

	f, err := r.readFields(op, true)
	if err != nil {
		return nil, err
	}
	h := &r.req
	*h = RequestHead{
		Method:        method,
		Target:        target,
		Fields:        r.fields,
		ContentLength: f.contentLength,
		Chunked:       f.chunked,
		HasHost:       f.seen&fHost != 0,
		Close:         f.close,
		KeepAlive:     f.keepAlive,
		Expect:        f.expect,
		Upgrade:       f.seen&fUpgrade != 0,
		Size:          len(r.buf),
	}
	if h.HasHost {
		h.Host = f.host
	}
	r.endHead()
	r.declared, r.declaredLen = h.Framing(), h.ContentLength
	r.pending = r.declared != BodyNone
	return h, nil
}

// ReadResponseHead reads a status line and header section (RFC 9112 §4,
// §5) with the rules of ReadRequestHead. The head and its slices are valid
// until the next head is read or r is Reset.
//
// It returns io.EOF, unwrapped, when the stream ends before the first byte
// (the upstream closed: a stale pooled conn); an *Error with Status 502 for
// a malformed, truncated or oversized head, HTTP/1.0 included; and other
// read errors wrapped.
func (r *Reader) ReadResponseHead() (*ResponseHead, error) {
	const op = "read response head"
	if err := r.startHead(op, statusBadGateway, statusBadGateway); err != nil {
		return nil, err
	}
	line, err := r.nextLine(op)
	if err != nil {
		return nil, err
	}
	// RFC 9112 §4: status-line = HTTP-version SP status-code SP
	// [ reason-phrase ]. A missing SP before an empty reason is accepted:
	// it cannot be read two ways, and servers do send it.
	const version = "HTTP/1.1 "
	if len(line) < len(version)+3 || string(line[:len(version)]) != version {
		if len(line) >= len(version) && string(line[:len(version)]) == "HTTP/1.0 " {
			return nil, r.fail(newError(r.bad, op, "HTTP/1.0 is not supported"))
		}
		return nil, r.fail(newError(r.bad, op, "status line does not start with HTTP/1.1 and a status code"))
	}
	code := 0
	for _, c := range line[len(version) : len(version)+3] {
		if c < '0' || c > '9' {
			return nil, r.fail(newError(r.bad, op, "status code is not three digits"))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || code > 599 {
		// RFC 9110 §15: valid status codes are 100 to 599.
		return nil, r.fail(newError(r.bad, op, "status code out of range"))
	}
	reasonStart := len(line)
	if rest := line[len(version)+3:]; len(rest) > 0 {
		if rest[0] != ' ' {
			return nil, r.fail(newError(r.bad, op, "status code not followed by a space"))
		}
		// reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
		for _, c := range rest[1:] {
			if chars[c]&cValue == 0 {
				return nil, r.fail(newError(r.bad, op, "control character in reason phrase"))
			}
		}
		reasonStart = len(version) + 4
	}
	reasonEnd := len(line)

	f, err := r.readFields(op, false)
	if err != nil {
		return nil, err
	}
	if code < 200 && (f.contentLength >= 0 || f.chunked) {
		// RFC 9110 §8.6, RFC 9112 §6.1: a 1xx response has no content
		// and no framing fields.
		return nil, r.fail(newError(r.bad, op, "framing field in a 1xx response"))
	}
	r.endHead()
	h := &r.resp
	*h = ResponseHead{
		StatusCode:    code,
		Reason:        line[reasonStart:reasonEnd:reasonEnd],
		Fields:        r.fields,
		ContentLength: f.contentLength,
		Chunked:       f.chunked,
		Close:         f.close,
		KeepAlive:     f.keepAlive,
		Upgrade:       f.seen&fUpgrade != 0,
		Size:          len(r.buf),
	}
	return h, nil
}

// startHead checks that a new head may be read and prepares to read one.
// bad is the status of a malformed message and tooLarge that of a head
// over the limit.
func (r *Reader) startHead(op string, bad, tooLarge int) error {
	if r.err != nil {
		return r.err
	}
	if r.pending || r.body.active && !r.body.done {
		// Reading on would parse body bytes as a head.
		return r.fail(newError(statusInternalError, op, "previous message body not fully read"))
	}
	r.body = Body{}
	r.bad, r.tooLarge = bad, tooLarge
	r.buf = r.buf[:0]
	// Wait for the first byte, then take lines from what is buffered
	// without consuming it (see nextLine).
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err != nil {
			if err == io.EOF {
				return r.fail(io.EOF) // a clean close
			}
			return r.fail(fmt.Errorf("%s: %w", op, err))
		}
	}
	r.peek, _ = r.br.Peek(r.br.Buffered())
	r.peeked = 0
	return nil
}

// endHead consumes the head's bytes that nextLine took from r.peek.
func (r *Reader) endHead() {
	r.br.Discard(r.peeked)
	r.peek, r.peeked = nil, 0
}

// fail makes err sticky and returns it.
func (r *Reader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// nextLine appends the next line of the head to r.buf and returns it
// without its CRLF. A line already buffered in br is taken from r.peek
// without a read call, the common case; otherwise what was taken is
// consumed and the line is read from br.
//
// Slices of r.buf stay valid when append moves it: the old array is
// never written again.
func (r *Reader) nextLine(op string) ([]byte, error) {
	start := len(r.buf)
	if i := bytes.IndexByte(r.peek, '\n'); i >= 0 {
		if start+i+1 > r.maxHead {
			return nil, r.fail(newError(r.tooLarge, op, "head larger than the limit"))
		}
		r.buf = append(r.buf, r.peek[:i+1]...)
		r.peek = r.peek[i+1:]
		r.peeked += i + 1
	} else {
		r.endHead()
		var err error
		r.buf, err = readLine(r.br, r.buf, r.maxHead)
		switch {
		case err == nil:
		case err == errLineTooLong:
			return nil, r.fail(newError(r.tooLarge, op, "head larger than the limit"))
		case err == io.EOF:
			return nil, r.fail(newError(r.bad, op, "unexpected EOF"))
		default:
			return nil, r.fail(fmt.Errorf("%s: %w", op, err))
		}
	}
	line := r.buf[start:]
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		// RFC 9112 §2.2 allows a recipient to accept a bare LF as a line
		// terminator; SPEC §5 requires CRLF.
		return nil, r.fail(newError(r.bad, op, "bare LF"))
	}
	return line[: n-2 : n-2], nil
}

// errLineTooLong is returned by readLine when a line does not fit.
var errLineTooLong = errors.New("line too long")

// readLine appends the next line from br, LF included, to buf, failing
// with errLineTooLong if buf would grow beyond max bytes.
func readLine(br *bufio.Reader, buf []byte, max int) ([]byte, error) {
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max {
			return buf, errLineTooLong
		}
		buf = append(buf, frag...)
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}

// facts are what a header section says about framing and routing.
type facts struct {
	seen             int // the fHost, fContentLength, ... bits seen
	contentLength    int64
	chunked          bool
	close, keepAlive bool
	expect           Expect
	host             []byte
}

// readFields parses the header section after the start-line (RFC 9112 §5)
// into r.fields and checks its framing fields. Host and Expect mean
// something in requests only. The field slices point into r.buf, which
// holds the whole head and does not move, and are capped so that appending
// to one cannot overwrite the head.
func (r *Reader) readFields(op string, request bool) (facts, error) {
	f := facts{contentLength: -1}
	r.fields = r.fields[:0]
	for {
		line, err := r.nextLine(op)
		if err != nil {
			return f, err
		}
		if len(line) == 0 {
			break
		}
		nameEnd, valStart, valEnd, msg := splitField(line)
		if msg != "" {
			return f, r.fail(newError(r.bad, op, msg))
		}
		name, value := line[:nameEnd:nameEnd], line[valStart:valEnd:valEnd]
		if k := fieldKind(name); k != fOther && (request || k != fHost && k != fExpect) {
			if msg := f.add(k, value); msg != "" {
				return f, r.fail(newError(r.bad, op, msg))
			}
			if k == fHost {
				f.host = value
			}
		}
		r.fields = append(r.fields, Field{name, value})
	}
	if f.contentLength >= 0 && f.chunked {
		// RFC 9112 §6.3: a message with both "ought to be handled as an
		// error"; it is the classic request smuggling vector.
		return f, r.fail(newError(r.bad, op, "both Content-Length and Transfer-Encoding"))
	}
	return f, nil
}

// add records a framing or routing field and returns what is wrong with it.
func (f *facts) add(k int, v []byte) string {
	repeated := f.seen&k != 0
	f.seen |= k
	switch k {
	case fHost:
		if repeated {
			// RFC 9112 §3.2: more than one Host field → 400.
			return "more than one Host field"
		}
	case fContentLength:
		if repeated {
			// RFC 9112 §6.3 lets a recipient accept identical repeats;
			// SPEC §5 does not.
			return "more than one Content-Length field"
		}
		n, ok := parseContentLength(v)
		if !ok {
			return "Content-Length is not plain decimal digits"
		}
		f.contentLength = n
	case fTransferEncoding:
		if repeated {
			return "more than one Transfer-Encoding field"
		}
		// RFC 9112 §6.1: only a final "chunked" delimits a request body;
		// the proxy implements no other coding, so anything but exactly
		// "chunked" (names are case-insensitive, §7) is refused rather
		// than guessed at: "chunked, identity", "xchunked", "chunked,".
		if !equalFold(v, "chunked") {
			return "Transfer-Encoding is not exactly chunked"
		}
		f.chunked = true
	case fConnection:
		if repeated {
			return "more than one Connection field"
		}
		var ok bool
		if f.close, f.keepAlive, ok = parseConnection(v); !ok {
			return "Connection is not a list of tokens"
		}
	case fExpect:
		// RFC 9110 §10.1.1: 100-continue is the only expectation defined.
		if !repeated && equalFold(v, "100-continue") {
			f.expect = ExpectContinue
		} else {
			f.expect = ExpectOther
		}
	}
	return ""
}
