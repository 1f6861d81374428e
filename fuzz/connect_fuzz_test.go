package fuzz

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"exfilguard/policy"
	"exfilguard/proxy/http1"
)

// FuzzConnectTarget parses CONNECT targets (RFC 9112 §3.2.3) with the wire
// parser the listener uses and with the policy's authority parser.
// Properties: no panic; an accepted target has a port from 1 to 65535 and
// re-serialises to a target that parses to the same host and port; and
// the two parsers agree on the host and port of every target both accept,
// so that what is judged is what is dialed.
func FuzzConnectTarget(f *testing.F) {
	for _, s := range []string{
		"example.com:443", "EXAMPLE.com.:8443", "[2001:db8::1]:443", "[::ffff:127.0.0.1]:443",
		"127.0.0.1:80", "0177.0.0.1:443", "2130706433:443", "a_b.example:1", "host", "host:",
		"host:0", "host:65536", "user@host:443", "host:443/", "[::1]", "[fe80::1%eth0]:443",
		"xn--bcher-kva.example:443", "a..b:443", ":443",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		wt, werr := http1.ParseAuthorityForm(target)
		ph, pp, perr := policy.ParseAuthority(target, true)
		if werr != nil {
			return
		}
		if wt.Port == 0 {
			t.Fatalf("ParseAuthorityForm(%q) port 0", target)
		}
		again, err := http1.ParseAuthorityForm(net.JoinHostPort(wt.Host, strconv.Itoa(int(wt.Port))))
		if err != nil || !strings.EqualFold(again.Host, wt.Host) || again.Port != wt.Port {
			t.Fatalf("ParseAuthorityForm(%q) = %+v; re-serialised it gives %+v, %v", target, wt, again, err)
		}
		if perr != nil {
			return
		}
		if ph != strings.ToLower(wt.Host) || pp != wt.Port {
			t.Fatalf("parsers disagree on %q: wire %s:%d, policy %s:%d", target, wt.Host, wt.Port, ph, pp)
		}
	})
}
