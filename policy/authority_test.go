package policy

import "testing"

func TestParseAuthority(t *testing.T) {
	for _, c := range []struct {
		in       string
		needPort bool
		host     string
		port     uint16
		ok       bool
	}{
		{"Example.COM", false, "example.com", 0, true},
		{"example.com:8443", true, "example.com", 8443, true},
		{"[2001:DB8::1]:443", true, "2001:db8::1", 443, true},
		{"10.0.0.1", false, "10.0.0.1", 0, true},
		{"example.com", true, "", 0, false},
		{"user@example.com", false, "", 0, false},
		{"exa mple.com", false, "", 0, false},
		{"example.com:", false, "", 0, false},
		{"example.com:0", false, "", 0, false},
		{"2001:db8::1", false, "", 0, false},
		{"0x7f.1", false, "", 0, false},
		{"", false, "", 0, false},
		{"h\x00", false, "", 0, false},
	} {
		host, port, err := ParseAuthority(c.in, c.needPort)
		if (err == nil) != c.ok || host != c.host || port != c.port {
			t.Errorf("ParseAuthority(%q, %v) = %q, %d, %v; want %q, %d, ok %v", c.in, c.needPort, host, port, err, c.host, c.port, c.ok)
		}
	}
}
