package proxy

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// v2Header builds a PROXY v2 header for a TCP/IPv4 connection from src.
func v2Header(src string, sport uint16) string {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11) // version 2, PROXY; TCP over IPv4
	b = binary.BigEndian.AppendUint16(b, 12)
	b = append(b, net.ParseIP(src).To4()...)
	b = append(b, 127, 0, 0, 1)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, 3128)
	return string(b)
}

// TestProxyProtocol: from an allowed peer the header's source is the
// client (here the fallback, which is denied with 470, instead of the
// loopback client, which is allowed); elsewhere it is not honoured.
func TestProxyProtocol(t *testing.T) {
	up := newUpstream(t, nil)
	get := "GET http://127.0.0.1:" + up.port() + "/ok/x HTTP/1.1\r\nHost: a\r\n\r\n"
	send := func(p *testProxy, raw string) (status int, closed bool) {
		c := p.dial(t)
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, true
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, false
	}
	t.Run("required, allowed peer", func(t *testing.T) {
		p := startProxy(t, "proxy_protocol = \"required\"\nproxy_protocol_allowed_cidrs = [\"127.0.0.0/8\"]\n", nil)
		if s, _ := send(p, "PROXY TCP4 192.0.2.9 127.0.0.1 5555 3128\r\n"+get); s != 470 {
			t.Errorf("v1 from 192.0.2.9: %d, want 470 (the fallback client)", s)
		}
		if s, _ := send(p, v2Header("192.0.2.9", 5555)+get); s != 470 {
			t.Errorf("v2 from 192.0.2.9: %d, want 470", s)
		}
		if s, _ := send(p, "PROXY TCP4 127.0.0.5 127.0.0.1 5555 3128\r\n"+get); s != 200 {
			t.Errorf("v1 from 127.0.0.5: %d, want 200 (the loopback client)", s)
		}
		if _, closed := send(p, get); !closed {
			t.Errorf("no header in required mode: served, want closed")
		}
		if _, closed := send(p, "PROXY TCP4 192.0.2.9 127.0.0.1 99999 3128\r\n"+get); !closed {
			t.Errorf("malformed header: served, want closed")
		}
		recs := p.waitRecords(t, 3)
		if !strings.Contains(recs[0], `"client_ip":"192.0.2.9"`) || !strings.Contains(recs[0], `"client_port":5555`) {
			t.Errorf("record does not carry the PROXY source: %s", recs[0])
		}
	})
	t.Run("required, peer not allowed", func(t *testing.T) {
		p := startProxy(t, "proxy_protocol = \"required\"\nproxy_protocol_allowed_cidrs = [\"10.0.0.0/8\"]\n", nil)
		before := len(up.requests())
		if _, closed := send(p, "PROXY TCP4 127.0.0.5 127.0.0.1 5555 3128\r\n"+get); !closed {
			t.Errorf("header from a peer not allowed: served, want closed")
		}
		if len(up.requests()) != before {
			t.Errorf("upstream reached")
		}
	})
	t.Run("optional", func(t *testing.T) {
		p := startProxy(t, "proxy_protocol = \"optional\"\nproxy_protocol_allowed_cidrs = [\"127.0.0.0/8\"]\n", nil)
		if s, _ := send(p, get); s != 200 {
			t.Errorf("no header: %d, want 200 as a normal connection", s)
		}
		if s, _ := send(p, "PROXY TCP4 192.0.2.9 127.0.0.1 5555 3128\r\n"+get); s != 470 {
			t.Errorf("v1 header: %d, want 470", s)
		}
	})
	t.Run("optional, peer not allowed", func(t *testing.T) {
		p := startProxy(t, "proxy_protocol = \"optional\"\nproxy_protocol_allowed_cidrs = [\"10.0.0.0/8\"]\n", nil)
		if s, _ := send(p, get); s != 200 {
			t.Errorf("no header: %d, want 200", s)
		}
		// The header is not honoured: it is a malformed request line.
		if s, _ := send(p, "PROXY TCP4 192.0.2.9 127.0.0.1 5555 3128\r\n"+get); s != 400 {
			t.Errorf("header from a peer not allowed: %d, want 400", s)
		}
	})
}
