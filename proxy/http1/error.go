package http1

// Error is a malformed or oversized message. Status is the response the
// proxy should send for it (400, 413 or 431 for a client's request, 502 for
// an upstream's response); Reason says what was wrong, for the log only: it
// may quote nothing of the input and is never sent to the client.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Statuses set on an *Error.
const (
	statusBadRequest    = 400 // malformed request (RFC 9110 §15.5.1)
	statusTooLarge      = 413 // body over the configured limit (RFC 9110 §15.5.14)
	statusHeadTooLarge  = 431 // request head over its limit (RFC 6585 §5)
	statusBadGateway    = 502 // malformed or oversized upstream response (RFC 9110 §15.6.3)
	statusInternalError = 500 // the caller broke the Reader's contract
)

func newError(status int, op, msg string) *Error {
	return &Error{Status: status, Reason: op + ": " + msg}
}
