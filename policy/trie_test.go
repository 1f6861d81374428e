package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// linear is the slow reference: the longest prefix containing the
// (unmapped) address; among equal prefixes the last inserted.
type linear struct {
	prefixes []netip.Prefix
	vals     []int
}

func (l *linear) insert(p netip.Prefix, v int) {
	l.prefixes = append(l.prefixes, p.Masked())
	l.vals = append(l.vals, v)
}

func (l *linear) lookup(a netip.Addr) (netip.Prefix, int, bool) {
	a = a.Unmap()
	best, bestV, found := netip.Prefix{}, 0, false
	for i, p := range l.prefixes {
		if p.Addr().Is4() != a.Is4() || !p.Contains(a) {
			continue
		}
		if !found || p.Bits() >= best.Bits() {
			best, bestV, found = p, l.vals[i], true
		}
	}
	return best, bestV, found
}

func randAddr(r *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return netip.AddrFrom16(b)
}

// near returns an address that shares a random number of leading bits with
// p's address, so that lookups exercise deep paths, not just the root.
func near(r *rand.Rand, p netip.Prefix) netip.Addr {
	a := p.Addr()
	if r.IntN(4) == 0 {
		return a
	}
	if a.Is4() {
		b := a.As4()
		bit := r.IntN(32)
		b[bit/8] ^= 1 << (7 - bit%8)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	bit := r.IntN(128)
	b[bit/8] ^= 1 << (7 - bit%8)
	return netip.AddrFrom16(b)
}

func TestTrieMatchesLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 48; round++ {
		var tr Trie[int]
		var ref linear
		// Small tries are walked from the root; large ones go through
		// the stride table first.
		n := 1 + r.IntN(100)
		if round%4 == 3 || round%4 == 1 {
			n = 500 + r.IntN(3000)
		}
		var prefixes []netip.Prefix
		for i := 0; i < n; i++ {
			v4 := r.IntN(2) == 0
			var p netip.Prefix
			switch {
			case round%4 == 1:
				// Crowded: everything under 10.0.0.0/8 or 2001:db8::/32,
				// as a real clients file is; this builds nested tables.
				a := randAddr(r, v4)
				if v4 {
					b := a.As4()
					b[0], b[1] = 10, byte(r.IntN(4))
					p = netip.PrefixFrom(netip.AddrFrom4(b), 16+r.IntN(17))
				} else {
					b := a.As16()
					b[0], b[1], b[2], b[3], b[4] = 0x20, 0x01, 0x0d, 0xb8, byte(r.IntN(2))
					p = netip.PrefixFrom(netip.AddrFrom16(b), 40+r.IntN(89))
				}
			case len(prefixes) > 0 && r.IntN(3) == 0:
				// Nest inside or above an earlier prefix, and sometimes
				// repeat it (the later insert wins in both).
				q := prefixes[r.IntN(len(prefixes))]
				maxBits := q.Addr().BitLen()
				p = netip.PrefixFrom(near(r, q), r.IntN(maxBits+1))
			default:
				maxBits := 32
				if !v4 {
					maxBits = 128
				}
				// Favour realistic lengths but cover /0 and host routes.
				bits := r.IntN(maxBits + 1)
				if r.IntN(2) == 0 {
					bits = maxBits - r.IntN(maxBits/4+1)
				}
				p = netip.PrefixFrom(randAddr(r, v4), bits)
			}
			prefixes = append(prefixes, p)
			if err := tr.Insert(p, i); err != nil {
				t.Fatalf("Insert(%v) = %v", p, err)
			}
			ref.insert(p, i)
		}
		if round%8 == 5 {
			// Inserting after a lookup must drop the stride table.
			tr.Lookup(netip.IPv4Unspecified())
			p := netip.PrefixFrom(randAddr(r, true), 8+r.IntN(25))
			prefixes = append(prefixes, p)
			tr.Insert(p, n)
			ref.insert(p, n)
		}
		for q := 0; q < 500; q++ {
			var a netip.Addr
			switch r.IntN(4) {
			case 0:
				a = randAddr(r, r.IntN(2) == 0)
			case 1:
				a = near(r, prefixes[r.IntN(len(prefixes))])
				if a.Is4() {
					a = netip.AddrFrom16(a.As16()) // IPv4-mapped
				}
			default:
				a = near(r, prefixes[r.IntN(len(prefixes))])
			}
			gp, gv, gok := tr.Lookup(a)
			wp, wv, wok := ref.lookup(a)
			if gp != wp || gv != wv || gok != wok {
				t.Fatalf("round %d: Lookup(%v) = %v, %d, %v; want %v, %d, %v", round, a, gp, gv, gok, wp, wv, wok)
			}
		}
	}
}

// TestTrieConcurrentLookup runs first lookups (which build the stride
// table) from many goroutines; run with -race.
func TestTrieConcurrentLookup(t *testing.T) {
	tr, addrs := benchTrie(1000)
	want := make([]int32, len(addrs))
	done := make(chan []int32)
	for g := 0; g < 4; g++ {
		go func() {
			got := make([]int32, len(addrs))
			for i, a := range addrs {
				_, got[i], _ = tr.Lookup(a)
			}
			done <- got
		}()
	}
	for g := 0; g < 4; g++ {
		got := <-done
		if g == 0 {
			copy(want, got)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("Lookup(%v) = %d in one goroutine, %d in another", addrs[i], got[i], want[i])
			}
		}
	}
}

func TestTrieCases(t *testing.T) {
	var tr Trie[string]
	for _, e := range []struct {
		p string
		v string
	}{
		{"10.0.0.0/8", "ten"},
		{"10.1.0.0/16", "ten-one"},
		{"10.1.2.3/32", "host"},
		{"0.0.0.0/0", "all4"},
		{"2001:db8::/32", "doc"},
		{"2001:db8::1/128", "doc-host"},
		{"::ffff:10.9.0.0/112", "mapped"}, // never found: lookups unmap
	} {
		if err := tr.Insert(netip.MustParsePrefix(e.p), e.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Insert(netip.Prefix{}, "bad"); err == nil {
		t.Error("Insert(invalid prefix) = nil, want error")
	}
	for _, c := range []struct {
		addr, prefix, val string
	}{
		{"10.1.2.3", "10.1.2.3/32", "host"},
		{"10.1.2.4", "10.1.0.0/16", "ten-one"},
		{"10.2.0.1", "10.0.0.0/8", "ten"},
		{"11.0.0.1", "0.0.0.0/0", "all4"},
		{"::ffff:10.1.2.3", "10.1.2.3/32", "host"},
		{"::ffff:10.9.0.1", "10.0.0.0/8", "ten"},
		{"2001:db8::1", "2001:db8::1/128", "doc-host"},
		{"2001:db8::2", "2001:db8::/32", "doc"},
		{"2001:db9::2", "", ""},
		{"::1", "", ""},
	} {
		p, v, ok := tr.Lookup(netip.MustParseAddr(c.addr))
		want := c.prefix != ""
		if ok != want || want && (p.String() != c.prefix || v != c.val) {
			t.Errorf("Lookup(%s) = %v, %q, %v; want %s, %q, %v", c.addr, p, v, ok, c.prefix, c.val, want)
		}
	}
	if _, _, ok := tr.Lookup(netip.Addr{}); ok {
		t.Error("Lookup(zero Addr) found a value")
	}
	if got := tr.Len(); got != 7 {
		t.Errorf("Len() = %d, want 7", got)
	}
	var empty Trie[int]
	if _, _, ok := empty.Lookup(netip.MustParseAddr("1.2.3.4")); ok {
		t.Error("empty Trie found a value")
	}
}

func TestTrieLookupAllocs(t *testing.T) {
	tr, addrs := benchTrie(1000)
	allocs := testing.AllocsPerRun(100, func() {
		for _, a := range addrs[:50] {
			tr.Lookup(a)
		}
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times, want 0", allocs)
	}
}

// benchTrie builds a trie of n client selectors (a mix of /24, /28, /32
// IPv4 and /64, /128 IPv6, like a clients file) and addresses inside them.
func benchTrie(n int) (*Trie[int32], []netip.Addr) {
	r := rand.New(rand.NewPCG(7, 7))
	var tr Trie[int32]
	tr.Insert(netip.MustParsePrefix("0.0.0.0/0"), 0)
	addrs := make([]netip.Addr, 0, n)
	for i := 1; i <= n; i++ {
		var p netip.Prefix
		switch i % 5 {
		case 0:
			p = netip.PrefixFrom(randAddr(r, false), 64)
		case 1:
			p = netip.PrefixFrom(randAddr(r, false), 128)
		case 2:
			p = netip.PrefixFrom(randAddr(r, true), 24)
		case 3:
			p = netip.PrefixFrom(randAddr(r, true), 28)
		default:
			p = netip.PrefixFrom(randAddr(r, true), 32)
		}
		tr.Insert(p, int32(i))
		addrs = append(addrs, near(r, p.Masked()))
	}
	return &tr, addrs
}

func BenchmarkTrieLookup10k(b *testing.B) {
	tr, addrs := benchTrie(10000)
	tr.Prepare() // build the lookup tables outside the timed loop
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		tr.Lookup(addrs[i%len(addrs)])
		i++
	}
}
