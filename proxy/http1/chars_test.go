package http1

import (
	"encoding/binary"
	"testing"
)

// TestByteParallel checks the eight-byte tests against byte-by-byte ones
// for every byte value in every position.
func TestByteParallel(t *testing.T) {
	for pos := range 8 {
		for c := range 256 {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			x := binary.LittleEndian.Uint64(b[:])
			if got, want := hasLess(x, 0x20) != 0, c < 0x20; got != want {
				t.Errorf("hasLess(%x at %d, 0x20) = %v", c, pos, got)
			}
			if got, want := hasLess(x, 0x21) != 0, c < 0x21; got != want {
				t.Errorf("hasLess(%x at %d, 0x21) = %v", c, pos, got)
			}
			if got, want := hasMore(x, 0x7e) != 0, c > 0x7e; got != want {
				t.Errorf("hasMore(%x at %d, 0x7e) = %v", c, pos, got)
			}
			if got, want := hasZero(x^(lsb*0x7f)) != 0, c == 0x7f; got != want {
				t.Errorf("hasZero(%x at %d ^ 0x7f) = %v", c, pos, got)
			}
		}
	}
}

// TestCharClasses spot-checks the byte classes against the RFC grammars.
func TestCharClasses(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		tchar := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || contains("!#$%&'*+-.^_`|~", b)
		if got := chars[b]&cToken != 0; got != tchar {
			t.Errorf("token(%#x) = %v", c, got)
		}
		value := c == '\t' || c >= 0x20 && c != 0x7f
		if got := chars[b]&cValue != 0; got != value {
			t.Errorf("value(%#x) = %v", c, got)
		}
		if got := chars[b]&cTarget != 0; got != (c > 0x20 && c < 0x7f) {
			t.Errorf("target(%#x) = %v", c, got)
		}
		qd := c == '\t' || c == ' ' || c == '!' || c >= 0x23 && c <= 0x5b || c >= 0x5d && c <= 0x7e || c >= 0x80
		if got := chars[b]&cQdtext != 0; got != qd {
			t.Errorf("qdtext(%#x) = %v", c, got)
		}
	}
}
