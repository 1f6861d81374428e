package http1

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// Writer writes message heads to a *bufio.Writer, one part at a time, and
// checks every part against the rules the Reader enforces, so that it never
// emits a head the Reader would refuse: no CR or LF can be injected, and
// framing fields are neither repeated nor combined. The first error is
// sticky and returned by EndHead; an *Error has Status 400 for a request
// head and 502 for a response head. Parts written before an error may
// already have been flushed: close the connection.
//
// The Writer does not flush.
type Writer struct {
	bw     *bufio.Writer
	status int // of an *Error: 400 for a request head, 502 for a response head
	seen   int // fHost, fContentLength, ... written in the current head
	err    error
	num    [20]byte
}

// NewWriter returns a Writer to bw.
func NewWriter(bw *bufio.Writer) *Writer {
	return &Writer{bw: bw, status: statusBadRequest}
}

// Err returns the sticky error, if any.
func (w *Writer) Err() error { return w.err }

func (w *Writer) fail(msg string) {
	if w.err == nil {
		w.err = newError(w.status, "write head", msg)
	}
}

func (w *Writer) ioErr(err error) {
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("write head: %w", err)
	}
}

// RequestLine starts a request head: method SP target SP HTTP/1.1 CRLF
// (RFC 9112 §3). method must be a token and target non-empty visible
// ASCII.
func (w *Writer) RequestLine(method, target string) {
	w.status, w.seen = statusBadRequest, 0
	if w.err != nil {
		return
	}
	if !isToken(method) {
		w.fail("method is not a token")
		return
	}
	if target == "" {
		w.fail("empty request target")
		return
	}
	for i := 0; i < len(target); i++ {
		if chars[target[i]]&cTarget == 0 {
			w.fail("request target has bytes other than visible ASCII")
			return
		}
	}
	w.bw.WriteString(method)
	w.bw.WriteByte(' ')
	w.bw.WriteString(target)
	_, err := w.bw.WriteString(" HTTP/1.1\r\n")
	w.ioErr(err)
}

// StatusLine starts a response head: HTTP/1.1 SP code SP reason CRLF (RFC
// 9112 §4). code must be 100 to 599; reason may be empty and must hold no
// control bytes but HTAB.
func (w *Writer) StatusLine(code int, reason string) {
	w.status, w.seen = statusBadGateway, 0
	if w.err != nil {
		return
	}
	if code < 100 || code > 599 {
		w.fail("status code out of range")
		return
	}
	for i := 0; i < len(reason); i++ {
		if chars[reason[i]]&cValue == 0 {
			w.fail("control character in reason phrase")
			return
		}
	}
	w.bw.WriteString("HTTP/1.1 ")
	w.bw.Write(strconv.AppendInt(w.num[:0], int64(code), 10))
	w.bw.WriteByte(' ')
	w.bw.WriteString(reason)
	_, err := w.bw.WriteString("\r\n")
	w.ioErr(err)
}

// Field writes one header field, name: value CRLF. name must be a token;
// value must hold no control bytes but HTAB and no leading or trailing
// whitespace (RFC 9110 §5.5). A Host, Content-Length, Transfer-Encoding or
// Connection field may be written once; Content-Length must be digits,
// Transfer-Encoding exactly "chunked", Connection a list of tokens, and
// Content-Length and Transfer-Encoding exclude each other.
func (w *Writer) Field(name, value string) {
	if checkField(w, name, value) {
		w.bw.WriteString(name)
		w.bw.WriteString(": ")
		w.bw.WriteString(value)
		_, err := w.bw.WriteString("\r\n")
		w.ioErr(err)
	}
}

// FieldBytes is Field for byte slices, as in a Field read by a Reader.
func (w *Writer) FieldBytes(name, value []byte) {
	if checkField(w, name, value) {
		w.bw.Write(name)
		w.bw.WriteString(": ")
		w.bw.Write(value)
		_, err := w.bw.WriteString("\r\n")
		w.ioErr(err)
	}
}

// Fields writes each of fs with FieldBytes.
func (w *Writer) Fields(fs Fields) {
	for _, f := range fs {
		w.FieldBytes(f.Name, f.Value)
	}
}

// ContentLength writes Content-Length: n.
func (w *Writer) ContentLength(n int64) {
	if n < 0 {
		w.fail("negative Content-Length")
		return
	}
	w.FieldBytes(contentLength, strconv.AppendInt(w.num[:0], n, 10))
}

var contentLength = []byte("Content-Length")

func checkField[T ~string | ~[]byte](w *Writer, name, value T) bool {
	if w.err != nil {
		return false
	}
	if !isToken(name) {
		w.fail("field name is not a token")
		return false
	}
	if !isFieldValue(value) {
		w.fail("field value has control bytes or surrounding whitespace")
		return false
	}
	k := fieldKind(name)
	if w.status == statusBadGateway && (k == fHost || k == fExpect) {
		k = fOther
	}
	if k == fOther || k == fExpect || k == fUpgrade {
		return true
	}
	if w.seen&k != 0 {
		w.fail("repeated framing or routing field")
		return false
	}
	w.seen |= k
	switch k {
	case fContentLength:
		if _, ok := parseContentLength(value); !ok {
			w.fail("Content-Length is not plain decimal digits")
			return false
		}
	case fTransferEncoding:
		if !equalFold(value, "chunked") {
			w.fail("Transfer-Encoding is not exactly chunked")
			return false
		}
	case fConnection:
		if _, _, ok := parseConnection(value); !ok {
			w.fail("Connection is not a list of tokens")
			return false
		}
	}
	if w.seen&(fContentLength|fTransferEncoding) == fContentLength|fTransferEncoding {
		w.fail("both Content-Length and Transfer-Encoding")
		return false
	}
	return true
}

// EndHead ends the head with an empty line and returns the sticky error.
func (w *Writer) EndHead() error {
	if w.err == nil {
		_, err := w.bw.WriteString("\r\n")
		w.ioErr(err)
	}
	w.seen = 0
	return w.err
}

// ChunkedWriter writes the chunked transfer coding (RFC 9112 §7.1): each
// Write is one chunk, Close or CloseWithTrailers the last chunk and the
// trailer section. It writes no chunk extensions. Its writes are small, so
// w should be buffered. The first error is sticky.
type ChunkedWriter struct {
	w      io.Writer
	err    error
	closed bool
	hdr    [18]byte // 16 hex digits and CRLF
}

// NewChunkedWriter returns a ChunkedWriter to w.
func NewChunkedWriter(w io.Writer) *ChunkedWriter {
	return &ChunkedWriter{w: w}
}

// Write writes p as one chunk. An empty p writes nothing: a chunk of size
// zero would end the body.
func (cw *ChunkedWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	if cw.closed {
		cw.err = newError(statusInternalError, "write chunk", "write after close")
		return 0, cw.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	hdr := append(strconv.AppendUint(cw.hdr[:0], uint64(len(p)), 16), '\r', '\n')
	if _, cw.err = cw.w.Write(hdr); cw.err != nil {
		return 0, cw.err
	}
	n, err := cw.w.Write(p)
	if err != nil {
		cw.err = err
		return n, err
	}
	_, cw.err = io.WriteString(cw.w, "\r\n")
	return n, cw.err
}

// Close writes the last chunk and an empty trailer section.
func (cw *ChunkedWriter) Close() error { return cw.CloseWithTrailers(nil) }

// CloseWithTrailers writes the last chunk and trailers as the trailer
// section. Each trailer must be a valid field that may be sent as a
// trailer: none that frames, routes or is hop-by-hop (RFC 9110 §6.5.1).
func (cw *ChunkedWriter) CloseWithTrailers(trailers Fields) error {
	if cw.err != nil || cw.closed {
		return cw.err
	}
	for _, f := range trailers {
		if !isToken(f.Name) || !isFieldValue(f.Value) || !allowedTrailer(f.Name) {
			cw.err = newError(statusInternalError, "write trailers", "invalid or forbidden trailer field")
			return cw.err
		}
	}
	cw.closed = true
	if _, cw.err = io.WriteString(cw.w, "0\r\n"); cw.err != nil {
		return cw.err
	}
	for _, f := range trailers {
		for _, b := range [][]byte{f.Name, []byte(": "), f.Value, []byte("\r\n")} {
			if _, cw.err = cw.w.Write(b); cw.err != nil {
				return cw.err
			}
		}
	}
	_, cw.err = io.WriteString(cw.w, "\r\n")
	return cw.err
}

// flusher is a writer with buffered bytes, like *bufio.Writer.
type flusher interface{ Flush() error }

// copyBufferSize is the buffer CopyBody makes when given none: large
// enough that a read rarely ends short of what the socket holds, small
// enough to pool per request.
const copyBufferSize = 32 << 10

// CopyBody reads b to its end and writes it to dst in its own framing: the
// bytes of a length or until-close body as they are, a chunked body
// re-encoded as chunked (one chunk per read, extensions dropped, trailers
// kept). The head before it, with its framing field, is the caller's. buf
// is the copy buffer; nil means a new one of 32 KiB. If dst has a
// Flush() error method, as *bufio.Writer does, it is called after each
// write so that streamed bodies are not held back.
//
// It returns the number of body bytes copied. Read errors are returned as
// b returned them (an *Error for framing and limits); write errors are
// wrapped in *SendError.
func CopyBody(dst io.Writer, b *Body, buf []byte) (int64, error) {
	if buf == nil {
		buf = make([]byte, copyBufferSize)
	}
	fl, _ := dst.(flusher)
	var cw *ChunkedWriter
	out := dst
	if b.Framing() == BodyChunked {
		cw = NewChunkedWriter(dst)
		out = cw
	}
	var written int64
	for {
		n, rerr := b.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return written, &SendError{err}
			}
			written += int64(n)
		}
		if rerr == io.EOF && cw != nil {
			if err := cw.CloseWithTrailers(b.Trailers()); err != nil {
				return written, &SendError{err}
			}
		}
		if fl != nil && (n > 0 || rerr == io.EOF) {
			if err := fl.Flush(); err != nil {
				return written, &SendError{err}
			}
		}
		switch {
		case rerr == io.EOF:
			return written, nil
		case rerr != nil:
			return written, rerr
		}
	}
}

// SendError is a failure to write a body that CopyBody was copying: the
// receiving side went away, not the sending one.
type SendError struct{ Err error }

func (e *SendError) Error() string { return "write body: " + e.Err.Error() }

func (e *SendError) Unwrap() error { return e.Err }
