package http1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// newTestReader returns a Reader over s with a small bufio buffer, so that
// heads and bodies also cross buffer refills.
func newTestReader(tb testing.TB, s string, maxHead int) (*Reader, *bufio.Reader) {
	tb.Helper()
	br := bufio.NewReaderSize(strings.NewReader(s), 16)
	return NewReader(br, maxHead), br
}

// status returns the Status of err if it is an *Error, else 0.
func status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// readAll reads b to its end.
func readAll(b *Body) (string, error) {
	var sb strings.Builder
	buf := make([]byte, 7) // odd and small, to cross chunk boundaries
	for {
		n, err := b.Read(buf)
		sb.Write(buf[:n])
		if err == io.EOF {
			return sb.String(), nil
		}
		if err != nil {
			return sb.String(), err
		}
	}
}

// rest returns what br still holds.
func rest(tb testing.TB, br *bufio.Reader) string {
	tb.Helper()
	b, err := io.ReadAll(br)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
