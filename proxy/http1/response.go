package http1

import (
	"io"
	"strconv"
)

// Fixed responses the proxy writes as they are.
const (
	// Continue is the interim response the proxy sends itself once an
	// Expect: 100-continue request is allowed and its upstream connected
	// (SPEC §5).
	Continue = "HTTP/1.1 100 Continue\r\n\r\n"
	// ConnectEstablished opens a CONNECT tunnel (reference §4.2.1).
	ConnectEstablished = "HTTP/1.1 200 Connection Established\r\nProxy-Agent: exfilguard\r\n\r\n"
)

// Bodies of the proxy's own responses (reference §4.6). They are fixed
// text and never quote the request; the detail goes to the log.
const (
	MsgInvalidRequest       = "invalid request\r\n"                            // 400: malformed head or body
	MsgInvalidTarget        = "invalid request target\r\n"                     // 400: bad target or Host
	MsgInvalidConnectTarget = "invalid CONNECT target\r\n"                     // 400
	MsgBlocked              = "request blocked by policy\r\n"                  // 403: default deny, private upstream
	MsgPrivateConnect       = "CONNECT to private networks is not allowed\r\n" // 403
	MsgHeadTimeout          = "request header timed out\r\n"                   // 408 (not in the original)
	MsgBodyTooLarge         = "request body exceeds configured limit\r\n"      // 413
	MsgExpectationFailed    = "expectation failed\r\n"                         // 417
	MsgMisdirected          = "misdirected request\r\n"                        // 421
	MsgHeadTooLarge         = "request header too large\r\n"                   // 431 (not in the original)
	MsgUpstreamFailed       = "upstream request failed\r\n"                    // 502
	MsgUpstreamClosed       = "upstream closed connection\r\n"                 // 502: closed before the status line
	MsgResolveFailed        = "failed to resolve CONNECT target\r\n"           // 502
	MsgTimedOut             = "request timed out\r\n"                          // 504
)

// DefaultMessage returns the body the proxy sends with status when nothing
// more specific applies, or "" for a status it does not generate.
func DefaultMessage(status int) string {
	switch status {
	case 400:
		return MsgInvalidRequest
	case 403:
		return MsgBlocked
	case 408:
		return MsgHeadTimeout
	case 413:
		return MsgBodyTooLarge
	case 417:
		return MsgExpectationFailed
	case 421:
		return MsgMisdirected
	case 431:
		return MsgHeadTooLarge
	case 502:
		return MsgUpstreamFailed
	case 504:
		return MsgTimedOut
	}
	return ""
}

// WriteError writes the proxy's response for status with its reason phrase
// and DefaultMessage as the body. See WriteResponse.
func WriteError(w io.Writer, status int) error {
	return WriteResponse(w, status, "", DefaultMessage(status))
}

// WriteResponse writes one of the proxy's own responses in a single Write,
// laid out as the original writes it (reference §4.6):
//
//	HTTP/1.1 <status> <reason>
//	Content-Length: <len(body)>
//	Connection: close
//	Content-Type: text/plain; charset=utf-8
//
//	<body>
//
// An empty reason means ReasonPhrase(status). The caller closes the
// connection afterwards. status must be 100 to 599 and reason free of
// control bytes but HTAB, else nothing is written and the error is an
// *Error with Status 500.
func WriteResponse(w io.Writer, status int, reason, body string) error {
	if reason == "" {
		reason = ReasonPhrase(status)
	}
	if status < 100 || status > 599 {
		return newError(statusInternalError, "write response", "status out of range")
	}
	for i := 0; i < len(reason); i++ {
		if chars[reason[i]]&cValue == 0 {
			return newError(statusInternalError, "write response", "control character in reason phrase")
		}
	}
	b := make([]byte, 0, 128+len(reason)+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"...)
	b = append(b, body...)
	_, err := w.Write(b)
	return err
}

// ReasonPhrase returns the reason phrase the original sends with status:
// the table of the Rust http crate, which differs from net/http's
// StatusText (413 is "Payload Too Large", 203 "Non Authoritative
// Information"), and "Unknown" for a status it does not name.
func ReasonPhrase(status int) string {
	if s, ok := reasons[status]; ok {
		return s
	}
	return "Unknown"
}

var reasons = map[int]string{
	100: "Continue",
	101: "Switching Protocols",
	102: "Processing",
	103: "Early Hints",
	200: "OK",
	201: "Created",
	202: "Accepted",
	203: "Non Authoritative Information",
	204: "No Content",
	205: "Reset Content",
	206: "Partial Content",
	207: "Multi-Status",
	208: "Already Reported",
	226: "IM Used",
	300: "Multiple Choices",
	301: "Moved Permanently",
	302: "Found",
	303: "See Other",
	304: "Not Modified",
	305: "Use Proxy",
	307: "Temporary Redirect",
	308: "Permanent Redirect",
	400: "Bad Request",
	401: "Unauthorized",
	402: "Payment Required",
	403: "Forbidden",
	404: "Not Found",
	405: "Method Not Allowed",
	406: "Not Acceptable",
	407: "Proxy Authentication Required",
	408: "Request Timeout",
	409: "Conflict",
	410: "Gone",
	411: "Length Required",
	412: "Precondition Failed",
	413: "Payload Too Large",
	414: "URI Too Long",
	415: "Unsupported Media Type",
	416: "Range Not Satisfiable",
	417: "Expectation Failed",
	418: "I'm a teapot",
	421: "Misdirected Request",
	422: "Unprocessable Entity",
	423: "Locked",
	424: "Failed Dependency",
	426: "Upgrade Required",
	428: "Precondition Required",
	429: "Too Many Requests",
	431: "Request Header Fields Too Large",
	451: "Unavailable For Legal Reasons",
	500: "Internal Server Error",
	501: "Not Implemented",
	502: "Bad Gateway",
	503: "Service Unavailable",
	504: "Gateway Timeout",
	505: "HTTP Version Not Supported",
	506: "Variant Also Negotiates",
	507: "Insufficient Storage",
	508: "Loop Detected",
	510: "Not Extended",
	511: "Network Authentication Required",
}
