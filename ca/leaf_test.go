package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLeaf(t *testing.T) {
	clock := newFakeClock()
	const ttl = 6 * time.Hour
	a := openTest(t, Options{LeafTTL: ttl, Now: clock.Now})
	for _, tc := range []struct {
		host string
		name string // the name in the certificate
		ip   bool
	}{
		{"example.com", "example.com", false},
		{"API.Example.COM.", "api.example.com", false},
		{"_svc.internal-host", "_svc.internal-host", false},
		{"10.1.2.3", "10.1.2.3", true},
		{"[2001:db8::1]", "2001:db8::1", true},
		{"::1", "::1", true},
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".example", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".example", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			cert, err := a.Leaf(context.Background(), tc.host)
			if err != nil {
				t.Fatalf("Leaf(%q): %v", tc.host, err)
			}
			verifyLeaf(t, a, cert, tc.name, clock.Now())
			leaf := cert.Leaf
			if !bytes.Equal(cert.Certificate[1], a.Intermediate().Raw) {
				t.Error("second certificate is not the intermediate")
			}
			if tc.ip {
				want := netip.MustParseAddr(tc.name)
				if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(want.AsSlice()) {
					t.Errorf("SAN DNS %v IP %v, want IP %v only", leaf.DNSNames, leaf.IPAddresses, want)
				}
			} else if len(leaf.IPAddresses) != 0 || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tc.name {
				t.Errorf("SAN DNS %v IP %v, want DNS %q only", leaf.DNSNames, leaf.IPAddresses, tc.name)
			}
			wantCN := tc.name
			if len(wantCN) > maxCommonName {
				wantCN = ""
			}
			if leaf.Subject.CommonName != wantCN {
				t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, wantCN)
			}
			if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
				t.Errorf("EKU = %v, want serverAuth only", leaf.ExtKeyUsage)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %v, want DigitalSignature", leaf.KeyUsage)
			}
			if leaf.IsCA || leaf.BasicConstraintsValid {
				t.Error("leaf has basicConstraints")
			}
			if !bytes.Equal(leaf.AuthorityKeyId, a.Intermediate().SubjectKeyId) {
				t.Errorf("AKI %x, want intermediate SKI %x", leaf.AuthorityKeyId, a.Intermediate().SubjectKeyId)
			}
			if !bytes.Equal(leaf.RawIssuer, a.Intermediate().RawSubject) {
				t.Error("issuer is not the intermediate's subject")
			}
			if got := leaf.NotAfter.Sub(clock.Now()); got != ttl {
				t.Errorf("NotAfter - now = %v, want leaf_ttl %v", got, ttl)
			}
			if got := clock.Now().Sub(leaf.NotBefore); got != leafBackdate {
				t.Errorf("now - NotBefore = %v, want %v", got, leafBackdate)
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
			}
			if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature %v, want ECDSA-SHA256", leaf.SignatureAlgorithm)
			}
			if !keyMatches(cert.PrivateKey.(*ecdsa.PrivateKey), leaf) {
				t.Error("private key does not match the leaf")
			}
		})
	}
}

// TestLeafHandshake serves a leaf over real TLS to a client that trusts
// only the root.
func TestLeafHandshake(t *testing.T) {
	a := openTest(t, Options{})
	for _, host := range []string{"example.com", "192.0.2.7", "2001:db8::5"} {
		t.Run(host, func(t *testing.T) {
			cert, err := a.Leaf(context.Background(), host)
			if err != nil {
				t.Fatal(err)
			}
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			srv := tls.Server(c1, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
			errc := make(chan error, 1)
			go func() { errc <- srv.Handshake() }()
			cfg := &tls.Config{RootCAs: a.RootPool(), ServerName: host, MinVersion: tls.VersionTLS12}
			cli := tls.Client(c2, cfg)
			if err := cli.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if got := len(cli.ConnectionState().PeerCertificates); got != 2 {
				t.Errorf("client received %d certificates, want 2", got)
			}
		})
	}
}

func TestLeafInvalidHost(t *testing.T) {
	a := openTest(t, Options{})
	for _, host := range []string{
		"",
		".",
		"a..b",
		".example.com",
		"exa mple.com",
		"bücher.example",
		"fe80::1%eth0",
		"[fe80::1%25eth0]",
		"*.example.com",
		"example.com:443",
		"a/b",
		strings.Repeat("a", 64) + ".example",
		strings.Repeat("abcdefghi.", 26) + "com",
	} {
		t.Run(fmt.Sprintf("%q", host), func(t *testing.T) {
			if cert, err := a.Leaf(context.Background(), host); err == nil {
				t.Errorf("Leaf(%q) = %v, want an error", host, cert.Leaf.DNSNames)
			}
		})
	}
	if n := a.Minted(); n != 0 {
		t.Errorf("Minted() = %d after invalid hosts, want 0", n)
	}
}

func TestLeafSingleflight(t *testing.T) {
	a := openTest(t, Options{})
	const n = 200
	// The minting call waits until every other call has joined it, so
	// the test proves they share one mint rather than racing past it.
	var waiting atomic.Int32
	joined := make(chan struct{})
	a.testHookWait = func() {
		if waiting.Add(1) == n-1 {
			close(joined)
		}
	}
	a.testHookMint = func() {
		select {
		case <-joined:
		case <-time.After(10 * time.Second):
			t.Error("waiters never joined the mint")
		}
	}
	certs := make([]*tls.Certificate, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			certs[i], errs[i] = a.Leaf(context.Background(), "once.example.com")
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if certs[i] != certs[0] {
			t.Fatalf("call %d got a different certificate", i)
		}
	}
	if got := a.Minted(); got != 1 {
		t.Errorf("Minted() = %d for %d concurrent first calls, want 1", got, n)
	}
	if got := a.CacheHits(); got != n-1 {
		t.Errorf("CacheHits() = %d, want %d", got, n-1)
	}

	// Different hosts mint separately, then hit.
	a.testHookWait, a.testHookMint = nil, nil
	var wg2 sync.WaitGroup
	for i := range 10 {
		wg2.Go(func() {
			for range 5 {
				if _, err := a.Leaf(context.Background(), fmt.Sprintf("h%d.example.com", i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg2.Wait()
	if got := a.Minted(); got != 11 {
		t.Errorf("Minted() = %d after 10 more hosts, want 11", got)
	}
}

func TestLeafContext(t *testing.T) {
	a := openTest(t, Options{})

	// A canceled context on a miss mints nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Leaf(ctx, "canceled.example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("Leaf(canceled) = %v, want context.Canceled", err)
	}
	if a.Minted() != 0 {
		t.Error("minted despite a canceled context")
	}

	// A waiter gives up when its context ends; the mint goes on.
	release := make(chan struct{})
	minting := make(chan struct{})
	a.testHookMint = func() {
		close(minting)
		<-release
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Leaf(context.Background(), "slow.example.com")
		done <- err
	}()
	<-minting
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.Leaf(ctx, "slow.example.com"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting Leaf = %v, want context.DeadlineExceeded", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("minting Leaf = %v", err)
	}
	// A cached leaf is returned whatever the context.
	if _, err := a.Leaf(ctx, "slow.example.com"); err != nil {
		t.Errorf("cached Leaf with an ended context = %v", err)
	}
	if a.Minted() != 1 {
		t.Errorf("Minted() = %d, want 1", a.Minted())
	}
}

func TestLeafLRU(t *testing.T) {
	a := openTest(t, Options{CacheSize: 2})
	ctx := context.Background()
	get := func(host string) *tls.Certificate {
		t.Helper()
		c, err := a.Leaf(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expectMinted := func(want uint64) {
		t.Helper()
		if got := a.Minted(); got != want {
			t.Fatalf("Minted() = %d, want %d", got, want)
		}
	}
	ca := get("a.test")
	get("b.test")
	expectMinted(2)
	if get("a.test") != ca { // a is now the most recent; b the least
		t.Fatal("hit returned another certificate")
	}
	expectMinted(2)
	get("c.test") // evicts b
	expectMinted(3)
	if a.cache.lenLocked() != 2 {
		t.Fatalf("cache holds %d, want 2", a.cache.lenLocked())
	}
	get("a.test")
	expectMinted(3)
	get("b.test") // evicted: minted again, evicting c
	expectMinted(4)
	get("c.test")
	expectMinted(5)
	if got := a.CacheHits(); got != 2 {
		t.Errorf("CacheHits() = %d, want 2", got)
	}
}

func TestLeafRenewsInMemory(t *testing.T) {
	clock := newFakeClock()
	const ttl = 10 * time.Hour
	a := openTest(t, Options{LeafTTL: ttl, Now: clock.Now})
	first, err := a.Leaf(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	// One second before less than 10% of the lifetime remains.
	clock.Add(renewAt(first.Leaf).Add(-time.Second).Sub(clock.Now()))
	if c, _ := a.Leaf(context.Background(), "example.com"); c != first {
		t.Fatal("leaf with just over 10% of its lifetime left was replaced")
	}
	clock.Add(2 * time.Second)
	second, err := a.Leaf(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if second == first || a.Minted() != 2 {
		t.Fatalf("leaf with under 10%% of its lifetime left not re-minted (minted %d)", a.Minted())
	}
	verifyLeaf(t, a, second, "example.com", clock.Now())
}

func TestLeafShortTTL(t *testing.T) {
	// A TTL shorter than the usual backdate still leaves a usable leaf.
	clock := newFakeClock()
	a := openTest(t, Options{LeafTTL: 10 * time.Second, Now: clock.Now})
	c, err := a.Leaf(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Leaf.NotAfter.Sub(clock.Now()); got != 10*time.Second {
		t.Errorf("validity after now %v, want 10s", got)
	}
	if !clock.Now().Before(renewAt(c.Leaf)) {
		t.Fatal("fresh leaf already due for renewal")
	}
	if c2, _ := a.Leaf(context.Background(), "example.com"); c2 != c {
		t.Error("fresh short leaf not cached")
	}
}

func TestLeafHitAllocs(t *testing.T) {
	a := openTest(t, Options{})
	ctx := context.Background()
	if _, err := a.Leaf(ctx, "alloc.example.com"); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { a.Leaf(ctx, "alloc.example.com") }); n != 0 {
		t.Errorf("cached Leaf allocates %v times, want 0", n)
	}
}

func TestCanonicalName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com.", "example.com"},
		{"[::1]", "::1"},
		{"[2001:DB8::1]", "2001:db8::1"},
		{".", "."},
		{"", ""},
	} {
		if got := canonicalName(tc.in); got != tc.want {
			t.Errorf("canonicalName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkMint(b *testing.B) {
	a := openTest(b, Options{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.mint("bench.example.com", netip.Addr{}, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafCached(b *testing.B) {
	a := openTest(b, Options{})
	ctx := context.Background()
	if _, err := a.Leaf(ctx, "bench.example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Leaf(ctx, "bench.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafCachedParallel(b *testing.B) {
	a := openTest(b, Options{})
	ctx := context.Background()
	hosts := make([]string, 64)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d.example.com", i)
		if _, err := a.Leaf(ctx, hosts[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := a.Leaf(ctx, hosts[i%len(hosts)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
