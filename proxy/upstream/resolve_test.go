package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseHost(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(long63+".", 3) + strings.Repeat("b", 61) // 64*3 + 61 = 253
	tests := []struct {
		name string
		in   string
		want string // Host.String(); "" means an error
		addr bool   // want an IP literal
	}{
		{"name", "example.com", "example.com", false},
		{"upper case", "API.Example.COM", "api.example.com", false},
		{"trailing dot", "example.com.", "example.com", false},
		{"two trailing dots", "example.com..", "", false},
		{"single label", "localhost", "localhost", false},
		{"underscore and hyphen", "_srv.my-host.example", "_srv.my-host.example", false},
		{"digits then letters", "1password.com", "1password.com", false},
		{"hex-looking label not last", "0x7f.example", "0x7f.example", false},
		{"label 63", long63 + ".com", long63 + ".com", false},
		{"label 64", long63 + "a.com", "", false},
		{"name 253", name253, name253, false},
		{"name 253 with dot", name253 + ".", name253, false},
		{"name 254", name253 + "b", "", false},
		{"empty label", "a..b", "", false},
		{"leading dot", ".example.com", "", false},
		{"dot only", ".", "", false},
		{"empty", "", "", false},
		{"space", "exa mple.com", "", false},
		{"non-ascii", "exämple.com", "", false},
		{"slash", "example.com/x", "", false},
		{"percent", "example%2ecom", "", false},
		{"brackets", "[::1]", "", false},
		{"port", "example.com:443", "", false},

		{"ipv4", "127.0.0.1", "127.0.0.1", true},
		{"ipv4 public", "8.8.8.8", "8.8.8.8", true},
		{"ipv4 trailing dot", "1.2.3.4.", "1.2.3.4", true},
		{"ipv6", "::1", "::1", true},
		{"ipv6 upper", "2001:DB8::1", "2001:db8::1", true},
		{"ipv6 mapped is unmapped", "::ffff:127.0.0.1", "127.0.0.1", true},
		{"ipv6 zone", "fe80::1%eth0", "", false},
		{"ipv6 bad", "1:2:3", "", false},
		{"ipv4 in v6 text with colon", "127.0.0.1:80", "", false},

		// Odd IPv4 spellings (peers §4.4): what inet_aton accepts.
		{"octal", "0177.0.0.1", "", false},
		{"leading zero", "127.0.0.01", "", false},
		{"hex short", "0x7f.1", "", false},
		{"hex full", "0x7f000001", "", false},
		{"hex dotted", "0x7f.0x0.0x0.0x1", "", false},
		{"decimal", "2130706433", "", false},
		{"short", "127.1", "", false},
		{"three parts", "127.0.1", "", false},
		{"five parts", "1.2.3.4.5", "", false},
		{"octet too big", "256.0.0.1", "", false},
		{"numeric last label", "example.123", "", false},
		{"hex last label", "example.0x1", "", false},
		{"upper hex last label", "example.0X1", "", false},
		{"bare 0x", "0x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHost(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseHost(%q) = %v, want error", tt.in, h)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHost(%q) error: %v", tt.in, err)
			}
			if got := h.String(); got != tt.want {
				t.Errorf("ParseHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := h.Addr.IsValid(); got != tt.addr || (h.Name != "") == tt.addr {
				t.Errorf("ParseHost(%q) = {Addr %v, Name %q}, want an IP literal: %v", tt.in, h.Addr, h.Name, tt.addr)
			}
		})
	}
}

func TestParseHostAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		ParseHost("api.example.com")
		ParseHost("10.1.2.3")
		ParseHost("2001:db8::1")
	})
	if allocs != 0 {
		t.Errorf("ParseHost of lower-case input allocates %v times, want 0", allocs)
	}
}

func TestParseHosts(t *testing.T) {
	const text = "# a comment line\n" +
		"127.0.0.1\tlocalhost  # trailing comment\n" +
		"\n" +
		"   \t\n" +
		"::1 localhost ip6-localhost\n" +
		"10.0.0.5 API.internal. api-alias\r\n" +
		"10.0.0.6 api.internal\n" +
		"10.0.0.5 api.internal\n" + // duplicate address: kept once
		"::ffff:192.0.2.1 mapped.test\n" +
		"2001:db8::5 api.internal"
	h, err := ParseHosts("hosts", []byte(text))
	if err != nil {
		t.Fatalf("ParseHosts: %v", err)
	}
	tests := []struct {
		name string
		want []string
	}{
		{"localhost", []string{"127.0.0.1", "::1"}},
		{"ip6-localhost", []string{"::1"}},
		{"api.internal", []string{"10.0.0.5", "10.0.0.6", "2001:db8::5"}},
		{"api-alias", []string{"10.0.0.5"}},
		{"mapped.test", []string{"192.0.2.1"}},
		{"missing.test", nil},
	}
	for _, tt := range tests {
		if got := addrStrings(h.Lookup(tt.name)); !slices.Equal(got, tt.want) {
			t.Errorf("Lookup(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	var nilHosts *Hosts
	if got := nilHosts.Lookup("localhost"); got != nil {
		t.Errorf("nil Hosts Lookup = %v", got)
	}
}

func TestParseHostsErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings of the error, in order
	}{
		{"address only", "127.0.0.1\n", []string{"f:1: address \"127.0.0.1\" has no host name"}},
		{"bad address", "ok.test 127.0.0.1\n", []string{"f:1: \"ok.test\" is not an IP address"}},
		{"octal address", "0177.0.0.1 x.test\n", []string{"f:1:"}},
		{"short address", "127.1 x.test\n", []string{"f:1:"}},
		{"zone", "fe80::1%eth0 x.test\n", []string{"f:1:"}},
		{"numeric name", "127.0.0.1 2130706433\n", []string{"f:1:", "not a dotted-decimal IPv4"}},
		{"ip as name", "127.0.0.1 10.0.0.1\n", []string{"f:1: host name \"10.0.0.1\" is an IP address"}},
		{"bad name", "127.0.0.1 bad/name\n", []string{"f:1:"}},
		{"every line reported", "# ok\n127.0.0.1 ok\nbad\n\n10.0.0.1 a..b\n", []string{"f:3:", "f:5:"}},
		{"line without newline", "127.0.0.1 ok\n1.2.3.4", []string{"f:2:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHosts("f", []byte(tt.text))
			if err == nil {
				t.Fatalf("ParseHosts(%q) = %v, want error", tt.text, h)
			}
			msg := err.Error()
			for _, w := range tt.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("ParseHosts(%q) error %q, want it to contain %q", tt.text, msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestReadHosts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("192.0.2.7 pinned.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHosts(path)
	if err != nil {
		t.Fatalf("ReadHosts: %v", err)
	}
	if got := addrStrings(h.Lookup("pinned.test")); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Errorf("Lookup(pinned.test) = %v", got)
	}
	if _, err := ReadHosts(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadHosts(missing file) = nil error")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("# x\nnot-an-ip name\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHosts(bad); err == nil || !strings.Contains(err.Error(), bad+":2:") {
		t.Errorf("ReadHosts(bad) = %v, want an error at %s:2", err, bad)
	}
}

// fakeDNS is a DNS that answers from a map and records its queries.
type fakeDNS struct {
	mu      sync.Mutex
	queries []string // guarded by mu
	answers map[string][]netip.Addr
	err     error
	block   bool // wait for the context to end
}

func (f *fakeDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	f.queries = append(f.queries, network+" "+host)
	f.mu.Unlock()
	if network != "ip" {
		return nil, errors.New("fakeDNS: unexpected network " + network)
	}
	if f.block {
		<-ctx.Done()
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: ctx.Err() == context.DeadlineExceeded}
	}
	if f.err != nil {
		return nil, f.err
	}
	if a, ok := f.answers[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeDNS) Queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

func TestResolve(t *testing.T) {
	hostsPath := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hostsPath, []byte("192.0.2.7 pinned.test\n2001:db8::7 pinned.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hosts, err := ReadHosts(hostsPath)
	if err != nil {
		t.Fatal(err)
	}
	dns := &fakeDNS{answers: map[string][]netip.Addr{
		"example.com.": {
			netip.MustParseAddr("::ffff:93.184.216.34"), // 16-byte IPv4 (golang.org/issue/53554)
			netip.MustParseAddr("2606:2800:220:1::1"),
			netip.MustParseAddr("93.184.216.34"), // duplicate once unmapped
			netip.MustParseAddr("2606:2800:220:1::1"),
			netip.MustParseAddr("10.0.0.1"),
		},
		"pinned.test.": {netip.MustParseAddr("203.0.113.99")}, // hosts file wins
		"empty.test.":  {},
	}}
	r := &Resolver{Hosts: hosts, DNS: dns, Timeout: time.Second}

	tests := []struct {
		name    string
		host    string
		want    []string
		kind    Kind
		queries []string
	}{
		{"dns, unmapped and deduplicated in order", "Example.COM.", []string{"93.184.216.34", "2606:2800:220:1::1", "10.0.0.1"}, 0, []string{"ip example.com."}},
		{"hosts file first", "pinned.test", []string{"192.0.2.7", "2001:db8::7"}, 0, nil},
		{"ipv4 literal, no lookup", "127.0.0.1", []string{"127.0.0.1"}, 0, nil},
		{"ipv6 literal, no lookup", "::1", []string{"::1"}, 0, nil},
		{"mapped literal", "::ffff:10.0.0.1", []string{"10.0.0.1"}, 0, nil},
		{"not found", "missing.test", nil, KindResolve, []string{"ip missing.test."}},
		{"empty answer", "empty.test", nil, KindResolve, []string{"ip empty.test."}},
		{"odd IPv4 spelling, no lookup", "0x7f.1", nil, KindInvalidHost, nil},
		{"decimal IPv4 spelling, no lookup", "2130706433", nil, KindInvalidHost, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(dns.Queries())
			got, err := r.Resolve(context.Background(), tt.host)
			if tt.kind != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Kind != tt.kind {
					t.Fatalf("Resolve(%q) = %v, %v; want an *Error of kind %v", tt.host, got, err, tt.kind)
				}
			} else if err != nil {
				t.Fatalf("Resolve(%q) error: %v", tt.host, err)
			}
			if s := addrStrings(got); !slices.Equal(s, tt.want) {
				t.Errorf("Resolve(%q) = %v, want %v", tt.host, s, tt.want)
			}
			if q := dns.Queries()[before:]; !slices.Equal(q, tt.queries) {
				t.Errorf("Resolve(%q) queried %v, want %v", tt.host, q, tt.queries)
			}
		})
	}

	// The result is the caller's: changing it does not change the hosts file.
	got, _ := r.Resolve(context.Background(), "pinned.test")
	got[0] = netip.MustParseAddr("127.0.0.1")
	if again, _ := r.Resolve(context.Background(), "pinned.test"); again[0] != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("Resolve result aliases the hosts table: %v", again)
	}
}

func TestResolveErrors(t *testing.T) {
	t.Run("server failure is a resolve error", func(t *testing.T) {
		r := &Resolver{DNS: &fakeDNS{err: &net.DNSError{Err: "server misbehaving", Name: "x.test", IsTemporary: true}}}
		_, err := r.Resolve(context.Background(), "x.test")
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindResolve || e.Status() != 502 || e.Reason() != "resolve_failed" {
			t.Fatalf("Resolve = %v, want a 502 KindResolve *Error", err)
		}
		var de *net.DNSError
		if !errors.As(err, &de) {
			t.Errorf("Resolve error %v does not wrap the *net.DNSError", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &Resolver{DNS: &fakeDNS{block: true}, Timeout: 3 * time.Second}
			start := time.Now()
			_, err := r.Resolve(context.Background(), "slow.test")
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindTimeout || e.Status() != 504 || e.Reason() != "upstream_timeout" || !e.Timeout() {
				t.Fatalf("Resolve = %v, want a 504 upstream_timeout *Error", err)
			}
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("Resolve gave up after %v, want 3s", d)
			}
		})
	})
	t.Run("default timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &Resolver{DNS: &fakeDNS{block: true}}
			start := time.Now()
			r.Resolve(context.Background(), "slow.test")
			if d := time.Since(start); d != defaultResolveTimeout {
				t.Errorf("Resolve gave up after %v, want %v", d, defaultResolveTimeout)
			}
		})
	})
	t.Run("canceled request is not a timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := &Resolver{DNS: &fakeDNS{block: true}}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			_, err := r.Resolve(ctx, "slow.test")
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindResolve {
				t.Fatalf("Resolve after cancel = %v, want KindResolve", err)
			}
		})
	})
}

func addrStrings(addrs []netip.Addr) []string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return s
}
