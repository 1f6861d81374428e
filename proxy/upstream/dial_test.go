package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// listen starts a TCP listener on 127.0.0.1 and returns it with its port.
func listen(t testing.TB) (net.Listener, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

// wantFirstAccept checks that the first connection ln accepts is c: no
// earlier (refused) attempt reached the listener.
func wantFirstAccept(t testing.TB, ln net.Listener, c net.Conn) {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	got, err := ln.Accept()
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	defer got.Close()
	if got.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("first accepted conn is from %v, want %v: a refused dial reached the listener", got.RemoteAddr(), c.LocalAddr())
	}
}

// wantPrivate checks that err is a 403 private_address *Error of class.
func wantPrivate(t testing.TB, err error, class Class) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindPrivate || e.Class != class {
		t.Fatalf("error = %v, want a KindPrivate *Error of class %v", err, class)
	}
	if e.Status() != 403 || e.Reason() != "private_address" {
		t.Errorf("Status, Reason = %d, %q; want 403, private_address", e.Status(), e.Reason())
	}
}

func TestDialLoopback(t *testing.T) {
	ln, port := listen(t)
	dns := &fakeDNS{answers: map[string][]netip.Addr{"loop.test.": {netip.MustParseAddr("127.0.0.1")}}}
	d := &Dialer{Resolver: &Resolver{DNS: dns}}
	ctx := context.Background()

	// Refused without allow_private_upstream, by literal and by name, at
	// every entry point.
	for _, host := range []string{"127.0.0.1", "loop.test", "::ffff:127.0.0.1"} {
		c, err := d.Dial(ctx, host, port, false)
		if c != nil {
			c.Close()
		}
		wantPrivate(t, err, Loopback)
		if _, err := d.ResolveVetted(ctx, host, port, false); err == nil {
			t.Errorf("ResolveVetted(%q, allowPrivate=false) = nil error", host)
		}
	}
	var e *Error
	_, err := d.Dial(ctx, "loop.test", port, false)
	if errors.As(err, &e) && e.Host != "loop.test" {
		t.Errorf("Error.Host = %q, want loop.test", e.Host)
	}

	// Accepted with it; the name is resolved once and the vetted address
	// dialed.
	before := len(dns.Queries())
	c, err := d.Dial(ctx, "loop.test", port, true)
	if err != nil {
		t.Fatalf("Dial(loop.test, allowPrivate=true): %v", err)
	}
	defer c.Close()
	if q := dns.Queries()[before:]; len(q) != 1 {
		t.Errorf("Dial resolved %v, want exactly one lookup", q)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("Dial returned %T, want *net.TCPConn", c)
	}
	wantFirstAccept(t, ln, c)
}

func TestVet(t *testing.T) {
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	self, err := NewSelfSet([]netip.AddrPort{netip.MustParseAddrPort("8.8.4.4:3128")})
	if err != nil {
		t.Fatal(err)
	}
	d := &Dialer{Self: self}
	tests := []struct {
		name         string
		in           []netip.Addr
		port         uint16
		allowPrivate bool
		want         []string
		class        Class // for an error
	}{
		{"public kept", addrs("8.8.8.8", "2606:4700::1111"), 443, false, []string{"8.8.8.8", "2606:4700::1111"}, 0},
		{"mixed keeps public in order", addrs("10.0.0.1", "8.8.8.8", "192.0.2.1", "::1", "2606:4700::1111", "64:ff9b::a9fe:a9fe"), 443, false, []string{"8.8.8.8", "2606:4700::1111"}, 0},
		{"mixed allowed keeps all", addrs("10.0.0.1", "8.8.8.8", "::1"), 443, true, []string{"10.0.0.1", "8.8.8.8", "::1"}, 0},
		{"all private", addrs("169.254.169.254", "10.0.0.1"), 443, false, nil, LinkLocal},
		{"nat64 wrapped loopback", addrs("64:ff9b::7f00:1"), 443, false, nil, Loopback},
		{"6to4 wrapped loopback", addrs("2002:7f00:1::"), 443, false, nil, Loopback},
		{"teredo", addrs("2001:0:4136:e378:8000:63bf:3fff:fdd2"), 443, false, nil, Teredo},
		{"own address other port", addrs("8.8.4.4"), 443, false, nil, Self},
		{"own address other port allowed", addrs("8.8.4.4"), 443, true, []string{"8.8.4.4"}, 0},
		{"own listener refused even if allowed", addrs("8.8.4.4", "8.8.8.8"), 3128, true, []string{"8.8.8.8"}, 0},
		{"only own listener", addrs("8.8.4.4"), 3128, true, nil, Self},
		{"unspecified reaches own listener", addrs("0.0.0.0"), 3128, true, nil, Self},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got, err := d.Vet(in, tt.port, tt.allowPrivate)
			if !slices.Equal(in, tt.in) {
				t.Errorf("Vet modified its input: %v", in)
			}
			if tt.want == nil {
				wantPrivate(t, err, tt.class)
				return
			}
			if err != nil {
				t.Fatalf("Vet(%v) error: %v", tt.in, err)
			}
			if s := addrStrings(got); !slices.Equal(s, tt.want) {
				t.Errorf("Vet(%v, %d, %v) = %v, want %v", tt.in, tt.port, tt.allowPrivate, s, tt.want)
			}
		})
	}
	if _, err := d.Vet([]netip.Addr{{}}, 443, true); err == nil {
		t.Error("Vet(zero Addr, allowPrivate=true) = nil error")
	}
	if _, err := d.Vet(nil, 443, true); err == nil {
		t.Error("Vet(nil) = nil error")
	}
}

// recordDial is a dial hook that records addresses and fails each with
// fail (or succeeds on ok).
type recordDial struct {
	mu    sync.Mutex
	addrs []string // guarded by mu
	ok    string   // the address that answers
}

func (r *recordDial) dial(ctx context.Context, network, address string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, address)
	r.mu.Unlock()
	if address == r.ok {
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
}

// TestDialMixed resolves a name with public and non-public answers and
// checks that only the public ones are dialed, in order, without
// re-resolving; no internet is needed because the dial is injected.
func TestDialMixed(t *testing.T) {
	dns := &fakeDNS{answers: map[string][]netip.Addr{"mixed.test.": {
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("93.184.216.34"),
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("2606:2800:220:1::1"),
		netip.MustParseAddr("::ffff:10.1.2.3"),
	}}}
	rec := &recordDial{}
	d := &Dialer{Resolver: &Resolver{DNS: dns}, dial: rec.dial}
	ctx := context.Background()

	vetted, err := d.ResolveVetted(ctx, "mixed.test", 443, false)
	if err != nil {
		t.Fatal(err)
	}
	if s := addrStrings(vetted); !slices.Equal(s, []string{"93.184.216.34", "2606:2800:220:1::1"}) {
		t.Errorf("ResolveVetted = %v, want the two public addresses", s)
	}

	_, err = d.Dial(ctx, "mixed.test", 443, false)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindConnect || e.Status() != 502 || e.Reason() != "connect_failed" || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial = %v, want a 502 KindConnect *Error wrapping ECONNREFUSED", err)
	}
	if e.Addr != netip.MustParseAddrPort("[2606:2800:220:1::1]:443") || e.Host != "mixed.test" {
		t.Errorf("Error = {Host %q, Addr %v}, want the last address tried", e.Host, e.Addr)
	}
	if want := []string{"93.184.216.34:443", "[2606:2800:220:1::1]:443"}; !slices.Equal(rec.addrs, want) {
		t.Errorf("dialed %v, want %v", rec.addrs, want)
	}
	if q := dns.Queries(); len(q) != 2 {
		t.Errorf("DNS queries %v, want one per ResolveVetted/Dial call", q)
	}

	// The first address that answers wins.
	rec.addrs, rec.ok = nil, "[2606:2800:220:1::1]:443"
	c, err := d.DialAddrs(ctx, vetted, 443, false)
	if err != nil {
		t.Fatalf("DialAddrs: %v", err)
	}
	c.Close()
	if want := []string{"93.184.216.34:443", "[2606:2800:220:1::1]:443"}; !slices.Equal(rec.addrs, want) {
		t.Errorf("dialed %v, want %v", rec.addrs, want)
	}
}

// TestDialControlBackstop passes non-public addresses straight to
// DialAddrs, skipping Vet: the Control hook refuses them before
// connect(2).
func TestDialControlBackstop(t *testing.T) {
	ln, port := listen(t)
	self, err := NewSelfSet([]netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port)})
	if err != nil {
		t.Fatal(err)
	}
	d := &Dialer{Self: self}
	ctx := context.Background()
	lo := netip.MustParseAddr("127.0.0.1")

	_, err = d.DialAddrs(ctx, []netip.Addr{lo}, port, false)
	wantPrivate(t, err, Loopback)
	var e *Error
	if errors.As(err, &e) && (e.Op != "dial" || e.Addr != netip.AddrPortFrom(lo, port)) {
		t.Errorf("Error = {Op %q, Addr %v}, want dial %v", e.Op, e.Addr, netip.AddrPortFrom(lo, port))
	}
	// 127.0.0.2:port is "the proxy's own listener": refused even when
	// private addresses are allowed, and refused by the hook (KindPrivate),
	// not by the kernel (nothing listens there: that would be KindConnect).
	_, err = d.DialAddrs(ctx, []netip.Addr{netip.MustParseAddr("127.0.0.2")}, port, true)
	wantPrivate(t, err, Self)

	// A refused address is skipped and the next one is tried.
	c, err := d.DialAddrs(ctx, []netip.Addr{netip.MustParseAddr("127.0.0.2"), lo}, port, true)
	if err != nil {
		t.Fatalf("DialAddrs(127.0.0.2, 127.0.0.1): %v", err)
	}
	defer c.Close()
	wantFirstAccept(t, ln, c)

	// The hook itself, for addresses a socket could be handed.
	ctl := d.control(false)
	for address, want := range map[string]bool{
		"93.184.216.34:443":       true,
		"[2606:2800:220:1::1]:80": true,
		"[::ffff:127.0.0.1]:80":   false,
		"[fe80::1%eth0]:80":       false,
		"[64:ff9b::a9fe:a9fe]:80": false,
		"0.0.0.0:80":              false,
		"not an address":          false,
	} {
		if err := ctl("tcp", address, nil); (err == nil) != want {
			t.Errorf("control(%q) = %v, want allowed: %v", address, err, want)
		}
	}
}

func TestDialSelf(t *testing.T) {
	proxyLn, proxyPort := listen(t) // stands for the proxy's own listener
	upLn, upPort := listen(t)       // an upstream on the same host
	self, err := NewSelfSet([]netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), proxyPort)})
	if err != nil {
		t.Fatal(err)
	}
	d := &Dialer{Self: self}
	ctx := context.Background()

	for _, host := range []string{"127.0.0.1", "::ffff:127.0.0.1"} {
		_, err := d.Dial(ctx, host, proxyPort, true)
		wantPrivate(t, err, Self)
	}
	c, err := d.Dial(ctx, "127.0.0.1", upPort, true)
	if err != nil {
		t.Fatalf("Dial(127.0.0.1:%d, allowPrivate=true): %v", upPort, err)
	}
	defer c.Close()
	wantFirstAccept(t, upLn, c)

	// Nothing reached the proxy's listener: the first conn it accepts is
	// this allowed probe from the test, not one of the refused dials.
	probe, err := net.Dial("tcp", proxyLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	wantFirstAccept(t, proxyLn, probe)
}

func TestDialRefused(t *testing.T) {
	ln, port := listen(t)
	ln.Close() // nothing listens on port now: connect(2) gets RST
	d := &Dialer{}
	_, err := d.Dial(context.Background(), "127.0.0.1", port, true)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindConnect || e.Status() != 502 {
		t.Fatalf("Dial(closed port) = %v, want a 502 KindConnect *Error", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial(closed port) = %v, want it to wrap ECONNREFUSED", err)
	}
}

// blockDial waits for the attempt's deadline like a SYN into a black hole.
func blockDial(ctx context.Context, network, address string) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
}

func TestDialTimeout(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800:220:1::1")}
	t.Run("each address gets ConnectTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			d := &Dialer{ConnectTimeout: 2 * time.Second, dial: blockDial}
			start := time.Now()
			_, err := d.DialAddrs(context.Background(), addrs, 443, false)
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindTimeout || e.Status() != 504 || e.Reason() != "upstream_timeout" {
				t.Fatalf("DialAddrs = %v, want a 504 upstream_timeout *Error", err)
			}
			if d := time.Since(start); d != 4*time.Second {
				t.Errorf("DialAddrs took %v, want 2 × 2s", d)
			}
		})
	})
	t.Run("default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			d := &Dialer{dial: blockDial}
			start := time.Now()
			d.DialAddrs(context.Background(), addrs[:1], 443, false)
			if d := time.Since(start); d != defaultConnectTimeout {
				t.Errorf("DialAddrs took %v, want %v", d, defaultConnectTimeout)
			}
		})
	})
	t.Run("request deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			d := &Dialer{dial: blockDial}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			_, err := d.DialAddrs(ctx, addrs, 443, false)
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindTimeout {
				t.Fatalf("DialAddrs = %v, want KindTimeout", err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("DialAddrs took %v, want the request's 1s", d)
			}
		})
	})
	t.Run("canceled request stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var n int
			d := &Dialer{dial: func(ctx context.Context, network, address string) (net.Conn, error) {
				n++
				return blockDial(ctx, network, address)
			}}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			_, err := d.DialAddrs(ctx, addrs, 443, false)
			var e *Error
			if !errors.As(err, &e) || e.Kind == KindTimeout {
				t.Errorf("DialAddrs after cancel = %v, want a non-timeout *Error", err)
			}
			if n != 1 {
				t.Errorf("dial attempts = %d, want 1", n)
			}
		})
	})
}

func TestDialAddrsNothing(t *testing.T) {
	d := &Dialer{}
	if _, err := d.DialAddrs(context.Background(), nil, 443, false); err == nil {
		t.Error("DialAddrs(nil) = nil error")
	}
	if _, err := d.DialAddrs(context.Background(), []netip.Addr{netip.MustParseAddr("8.8.8.8")}, 0, false); err == nil {
		t.Error("DialAddrs(port 0) = nil error")
	}
	_, err := d.Dial(context.Background(), "0177.0.0.1", 80, true)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindInvalidHost || e.Status() != 400 {
		t.Errorf("Dial(0177.0.0.1) = %v, want a 400 KindInvalidHost *Error", err)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "dial", Kind: KindPrivate, Host: "x.test", Addr: netip.MustParseAddrPort("127.0.0.1:80"), Class: Loopback},
			`dial "x.test" 127.0.0.1:80: refused: non-public address (loopback)`},
		{&Error{Op: "vet", Kind: KindPrivate, Addr: netip.MustParseAddrPort("127.0.0.1:3128"), Class: Self},
			`vet 127.0.0.1:3128: refused: the proxy's own address`},
		{&Error{Op: "resolve", Kind: KindTimeout, Host: "slow.test", Err: context.DeadlineExceeded},
			`resolve "slow.test": context deadline exceeded`},
		{&Error{Op: "resolve", Kind: KindTimeout, Host: "slow.test"}, `resolve "slow.test": timeout`},
		{&Error{Op: "resolve", Kind: KindInvalidHost, Host: "a\nb", Err: errors.New("bad")}, `resolve "a\nb": bad`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	for k := KindInvalidHost; k <= KindConnect; k++ {
		if s := k.String(); s == "" || strings.Contains(s, "unknown") {
			t.Errorf("Kind(%d).String() = %q", k, s)
		}
	}
	if (&Error{}).Status() != 502 {
		t.Error("zero Error status is not 502")
	}
}
