package policy

import (
	"errors"
	"math/bits"
	"net/netip"
	"sync"
)

// Trie maps IP prefixes to values and answers longest-prefix lookups. It
// keeps IPv4 and IPv6 apart: an IPv4 prefix never matches an IPv6 address
// and the other way round. The zero Trie is empty and ready to use.
//
// Insert is not safe for concurrent use; once filled, any number of
// goroutines may call Lookup at the same time.
//
// The trie is path-compressed (a PATRICIA trie): a node exists only where
// a value is stored or where two branches part. On top of it, the first
// Lookup builds stride tables (level compression, as in Nilsson and
// Karlsson's LC-trie): a table indexed by the next k bits of the address
// replaces the top k levels of a crowded subtree, recursively. Every level
// of a trie walk is a dependent memory load, and with thousands of clients
// those loads are what a lookup costs; with the tables a lookup among
// 10,000 prefixes takes two or three.
type Trie[T any] struct {
	// nodes[0] is unused so that a child index of 0 means "none".
	nodes []trieNode[T]
	// roots are the /0 nodes of the IPv4 (0) and IPv6 (1) tries, or 0.
	roots [2]int32
	// counts are the prefixes stored per family.
	counts [2]int

	// once builds the stride tables; Insert resets it.
	once sync.Once
	// tables[top[fam]-1] is a family's top table; top 0 means none.
	tables []strideTable
	top    [2]int32
}

// trieNode is a prefix of key's top nbits bits (the other bits are zero).
// Nodes live in one slice and refer to children by index, which keeps them
// close in memory.
type trieNode[T any] struct {
	key    u128
	nbits  uint8
	hasVal bool
	child  [2]int32
	val    T
}

// strideTable covers the prefix key/plen and is indexed by the k address
// bits that follow it.
type strideTable struct {
	key     u128
	plen, k uint8
	entries []strideEntry
}

// strideEntry says, for one slot: best, the deepest node holding a value
// whose prefix contains the slot (0: none), and next, where the lookup
// goes on: 0 nowhere, n > 0 a trie walk from node n, n < 0 the table
// tables[-n-1].
type strideEntry struct {
	best, next int32
}

// Stride table sizing. A family gets a table from minStridePrefixes
// prefixes (below that a walk is short and stays in cache), a subtree
// gets its own table from minNestedPrefixes. A table has about two slots
// per prefix below it, at most 2^maxStrideBits (512 KiB).
const (
	minStridePrefixes = 64
	minNestedPrefixes = 16
	maxStrideBits     = 16
)

// u128 is an address as a 128-bit big-endian number. IPv4 addresses use
// the top 32 bits, so that bit 0 is always the most significant bit.
type u128 struct{ hi, lo uint64 }

func addrKey(a netip.Addr) (k u128, family int) {
	if a.Is4() {
		b := a.As4()
		return u128{hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32}, 0
	}
	b := a.As16()
	var k6 u128
	for i := 0; i < 8; i++ {
		k6.hi = k6.hi<<8 | uint64(b[i])
		k6.lo = k6.lo<<8 | uint64(b[i+8])
	}
	return k6, 1
}

// bit returns bit i of k, 0 being the most significant.
func (k u128) bit(i uint8) int {
	if i < 64 {
		return int(k.hi >> (63 - i) & 1)
	}
	return int(k.lo >> (127 - i) & 1)
}

// bitsAt returns the n bits of k (1 ≤ n ≤ 32) from bit off on.
func (k u128) bitsAt(off, n uint8) uint32 {
	var v uint64
	switch {
	case off == 0:
		v = k.hi
	case off < 64:
		v = k.hi<<off | k.lo>>(64-off)
	default:
		v = k.lo << (off - 64)
	}
	return uint32(v >> (64 - n))
}

// mask keeps the top n bits of k.
func (k u128) mask(n uint8) u128 {
	switch {
	case n == 0:
		return u128{}
	case n < 64:
		return u128{hi: k.hi &^ (^uint64(0) >> n)}
	case n == 64:
		return u128{hi: k.hi}
	case n < 128:
		return u128{hi: k.hi, lo: k.lo &^ (^uint64(0) >> (n - 64))}
	}
	return k
}

// commonLen returns the number of leading bits k and o share.
func (k u128) commonLen(o u128) uint8 {
	if x := k.hi ^ o.hi; x != 0 {
		return uint8(bits.LeadingZeros64(x))
	}
	return 64 + uint8(bits.LeadingZeros64(k.lo^o.lo))
}

var errInvalidPrefix = errors.New("invalid prefix")

// Insert stores v under p. Host bits of p are ignored (10.1.2.3/8 is
// 10.0.0.0/8). Inserting a prefix that is already present replaces its
// value. Insert returns an error only for an invalid prefix.
func (t *Trie[T]) Insert(p netip.Prefix, v T) error {
	if !p.IsValid() {
		return errInvalidPrefix
	}
	t.once = sync.Once{}
	t.tables, t.top = nil, [2]int32{}
	key, fam := addrKey(p.Addr())
	plen := uint8(p.Bits())
	key = key.mask(plen)
	if len(t.nodes) == 0 {
		t.nodes = make([]trieNode[T], 1, 16)
	}
	if t.roots[fam] == 0 {
		t.roots[fam] = t.newNode(trieNode[T]{})
	}
	n := t.roots[fam]
	for {
		nd := &t.nodes[n]
		if nd.nbits == plen {
			if !nd.hasVal {
				t.counts[fam]++
			}
			nd.hasVal, nd.val = true, v
			return nil
		}
		// Invariant: nd's prefix is a proper prefix of key/plen.
		b := key.bit(nd.nbits)
		c := nd.child[b]
		if c != 0 {
			cn := &t.nodes[c]
			common := min(key.commonLen(cn.key), plen, cn.nbits)
			if common == cn.nbits {
				n = c
				continue
			}
			ckey := cn.key
			leaf := t.newNode(trieNode[T]{key: key, nbits: plen, hasVal: true, val: v})
			if common == plen {
				// The new prefix sits between nd and c.
				t.nodes[leaf].child[ckey.bit(plen)] = c
				t.nodes[n].child[b] = leaf
			} else {
				// The new prefix and c part ways below a new branch node.
				mid := t.newNode(trieNode[T]{key: key.mask(common), nbits: common})
				t.nodes[mid].child[key.bit(common)] = leaf
				t.nodes[mid].child[ckey.bit(common)] = c
				t.nodes[n].child[b] = mid
			}
		} else {
			leaf := t.newNode(trieNode[T]{key: key, nbits: plen, hasVal: true, val: v})
			t.nodes[n].child[b] = leaf // not nd: t.nodes may have moved
		}
		t.counts[fam]++
		return nil
	}
}

func (t *Trie[T]) newNode(nd trieNode[T]) int32 {
	t.nodes = append(t.nodes, nd)
	return int32(len(t.nodes) - 1)
}

// Len returns the number of prefixes stored.
func (t *Trie[T]) Len() int { return t.counts[0] + t.counts[1] }

// Lookup returns the value of the longest stored prefix that contains a,
// and that prefix. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is looked
// up as the IPv4 address a.b.c.d (RFC 4291 §2.5.5.2: it denotes an IPv4
// node), so a mapped prefix stored in the trie is never found. The zone of
// a is ignored. Lookup does not allocate.
func (t *Trie[T]) Lookup(a netip.Addr) (p netip.Prefix, v T, ok bool) {
	if !a.IsValid() || len(t.nodes) == 0 {
		return p, v, false
	}
	t.once.Do(t.buildTables)
	a = a.Unmap()
	key, fam := addrKey(a)
	maxBits := uint8(128)
	if fam == 0 {
		maxBits = 32
	}
	best, n := int32(0), t.roots[fam]
	for ti := t.top[fam]; ti != 0; {
		st := &t.tables[ti-1]
		if key.mask(st.plen) != st.key {
			n = 0
			break
		}
		e := st.entries[key.bitsAt(st.plen, st.k)]
		best = e.best
		if e.next >= 0 {
			n = e.next
			break
		}
		ti = -e.next
	}
	for n != 0 {
		nd := &t.nodes[n]
		if key.mask(nd.nbits) != nd.key {
			break
		}
		if nd.hasVal {
			best = n
		}
		if nd.nbits >= maxBits {
			break
		}
		n = nd.child[key.bit(nd.nbits)]
	}
	if best == 0 {
		return p, v, false
	}
	nd := &t.nodes[best]
	return prefixOf(nd.key, nd.nbits, fam), nd.val, true
}

// Prepare builds the lookup tables now rather than on the first Lookup.
// Calling it is optional.
func (t *Trie[T]) Prepare() { t.once.Do(t.buildTables) }

// buildTables builds the stride tables of the families with enough
// prefixes.
func (t *Trie[T]) buildTables() {
	if t.counts[0] < minStridePrefixes && t.counts[1] < minStridePrefixes {
		return
	}
	below := make([]int32, len(t.nodes))
	for fam, root := range t.roots {
		if root != 0 && t.counts[fam] >= minStridePrefixes {
			t.countBelow(below, root)
			t.top[fam] = t.newTable(below, root, 0, maxBitsOf(fam))
		}
	}
}

func maxBitsOf(fam int) uint8 {
	if fam == 0 {
		return 32
	}
	return 128
}

// countBelow sets below[n] to the number of values in n's subtree.
func (t *Trie[T]) countBelow(below []int32, n int32) int32 {
	nd := &t.nodes[n]
	c := int32(0)
	if nd.hasVal {
		c = 1
	}
	for _, ch := range nd.child {
		if ch != 0 {
			c += t.countBelow(below, ch)
		}
	}
	below[n] = c
	return c
}

// newTable builds a table rooted at node n (which it covers, with best
// the deepest value node above n) and returns its index + 1.
func (t *Trie[T]) newTable(below []int32, n, best int32, maxBits uint8) int32 {
	nd := &t.nodes[n]
	k := min(uint8(bits.Len32(uint32(below[n])))+1, maxStrideBits, maxBits-nd.nbits)
	t.tables = append(t.tables, strideTable{key: nd.key, plen: nd.nbits, k: k, entries: make([]strideEntry, 1<<k)})
	ti := int32(len(t.tables))
	t.fill(below, ti, n, best, maxBits)
	return ti
}

// fill fills the slots of table ti under node n, whose prefix is at least
// as long as the table's; best is the deepest value node above n.
func (t *Trie[T]) fill(below []int32, ti, n, best int32, maxBits uint8) {
	st := &t.tables[ti-1]
	end := st.plen + st.k
	nd := &t.nodes[n]
	if nd.nbits >= end {
		// n lies in (or is) one slot: the lookup goes on at n, through a
		// table of its own when its subtree is crowded.
		next := n
		if below[n] >= minNestedPrefixes && nd.nbits < maxBits {
			next = -t.newTable(below, n, best, maxBits)
			st = &t.tables[ti-1] // t.tables may have moved
		}
		st.entries[nd.key.bitsAt(st.plen, st.k)] = strideEntry{best: best, next: next}
		return
	}
	if nd.hasVal {
		best = n
	}
	for b := range 2 {
		// The slots of the half of n's range that goes to child b.
		lo := nd.key.bitsAt(st.plen, st.k) | uint32(b)<<(end-nd.nbits-1)
		count := uint32(1) << (end - nd.nbits - 1)
		for s := lo; s < lo+count; s++ {
			st.entries[s] = strideEntry{best: best}
		}
		if c := nd.child[b]; c != 0 {
			t.fill(below, ti, c, best, maxBits)
			st = &t.tables[ti-1]
		}
	}
}

// prefixOf turns a node key back into a netip.Prefix.
func prefixOf(k u128, nbits uint8, fam int) netip.Prefix {
	if fam == 0 {
		h := k.hi >> 32
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}), int(nbits))
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(k.hi >> (56 - 8*i))
		b[i+8] = byte(k.lo >> (56 - 8*i))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), int(nbits))
}
