package conf

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"
)

// This file turns parse trees into typed values. The decoder checks types
// and the syntax of single values (an address, a CIDR, a url_pattern);
// validate.go checks everything that relates values to each other.

// fieldPos records where each key of a table was written: the position of
// its value. A key that is absent has no entry, so it also records presence.
type fieldPos map[string]Pos

// at returns where key's value was written, or def when key is absent.
func (f fieldPos) at(key string, def Pos) Pos {
	if p, ok := f[key]; ok {
		return p
	}
	return def
}

func (f fieldPos) has(key string) bool {
	_, ok := f[key]
	return ok
}

// table reads the keys of one TOML table, reporting type errors and, in
// finish, keys it was not asked for.
type table struct {
	p    *problems
	file string
	n    *node
	// what names the table in messages: "[[policy.rule]]", "the settings".
	what  string
	known []string
	pos   fieldPos
}

func newTable(p *problems, file string, n *node, what string) *table {
	return &table{p: p, file: file, n: n, what: what, pos: fieldPos{}}
}

// at returns n's position in the table's file.
// Values from the environment already name their variable as File.
func (t *table) at(n *node) Pos {
	pos := n.pos
	if pos.File == "" {
		pos.File = t.file
	}
	return pos
}

func (t *table) keyAt(n *node) Pos {
	pos := n.keyPos
	if pos.File == "" {
		pos.File = t.file
	}
	return pos
}

// get marks key as known and returns its value if present and of kind k.
func (t *table) get(key string, k kind) *node {
	t.known = append(t.known, key)
	v := t.n.field(key)
	if v == nil {
		return nil
	}
	t.pos[key] = t.at(v)
	if v.kind != k {
		t.p.add(t.at(v), "%s must be %s, not %s", key, article(k), article(v.kind))
		return nil
	}
	return v
}

func article(k kind) string {
	switch k {
	case kindInteger, kindArray:
		return "an " + k.String()
	}
	return "a " + k.String()
}

func (t *table) str(key string, dst *string) bool {
	if v := t.get(key, kindString); v != nil {
		*dst = v.str
		return true
	}
	return false
}

func (t *table) boolean(key string, dst *bool) bool {
	if v := t.get(key, kindBool); v != nil {
		*dst = v.boolean
		return true
	}
	return false
}

// integer reads a non-negative integer no larger than max.
func (t *table) integer(key string, max int64, dst *int64) bool {
	v := t.get(key, kindInteger)
	if v == nil {
		return false
	}
	if v.integer < 0 {
		t.p.add(t.at(v), "%s must not be negative", key)
		return false
	}
	if v.integer > max {
		t.p.add(t.at(v), "%s must be at most %d", key, max)
		return false
	}
	*dst = v.integer
	return true
}

// maxSeconds is the largest whole number of seconds a time.Duration holds.
const maxSeconds = int64(1<<63-1) / int64(time.Second)

// seconds reads a duration written as whole seconds.
func (t *table) seconds(key string, dst *time.Duration) bool {
	var n int64
	if !t.integer(key, maxSeconds, &n) {
		return false
	}
	*dst = time.Duration(n) * time.Second
	return true
}

// strings reads an array of strings. A present but empty array yields a
// non-nil empty slice, so that callers can tell it from an absent key.
func (t *table) strings(key string) ([]string, []Pos, bool) {
	v := t.get(key, kindArray)
	if v == nil {
		return nil, nil, false
	}
	out := make([]string, 0, len(v.array))
	pos := make([]Pos, 0, len(v.array))
	ok := true
	for _, e := range v.array {
		if e.kind != kindString {
			t.p.add(t.at(e), "%s must be an array of strings, found %s", key, article(e.kind))
			ok = false
			continue
		}
		out = append(out, e.str)
		pos = append(pos, t.at(e))
	}
	return out, pos, ok
}

// subtable reads a table-valued key.
func (t *table) subtable(key, what string) *table {
	v := t.get(key, kindTable)
	if v == nil {
		return nil
	}
	return newTable(t.p, t.file, v, what)
}

// tables reads an array of tables ([[key]]).
func (t *table) tables(key, what string) []*table {
	t.known = append(t.known, key)
	v := t.n.field(key)
	if v == nil {
		return nil
	}
	t.pos[key] = t.at(v)
	if v.kind != kindArray {
		t.p.add(t.keyAt(v), "%s must be written as [[%s]] tables, not %s", key, strings.Trim(what, "[]"), article(v.kind))
		return nil
	}
	out := make([]*table, 0, len(v.array))
	for _, e := range v.array {
		if e.kind != kindTable {
			t.p.add(t.at(e), "%s must be written as [[%s]] tables, found %s", key, strings.Trim(what, "[]"), article(e.kind))
			continue
		}
		out = append(out, newTable(t.p, t.file, e, what))
	}
	return out
}

// finish reports every key of the table that no reader asked for.
func (t *table) finish() {
	for _, key := range t.n.keys {
		if contains(t.known, key) {
			continue
		}
		v := t.n.fields[key]
		msg := fmt.Sprintf("unknown key %q in %s", key, t.what)
		if s := suggest(key, t.known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		t.p.add(t.keyAt(v), "%s", msg)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the known key nearest to key by edit distance, if it is
// near enough to be a plausible typo.
func suggest(key string, known []string) string {
	best, bestDist := "", len(key)/3+2
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// settingField describes one field of Settings, from its struct tag:
// `toml:"key[,required][,path][,positive]"`.
type settingField struct {
	key      string
	index    int
	required bool // must be set
	path     bool // resolved against the main file's directory
	positive bool // must be greater than zero
}

var settingFields = func() []settingField {
	st := reflect.TypeFor[Settings]()
	out := make([]settingField, 0, st.NumField())
	for i := range st.NumField() {
		tag := st.Field(i).Tag.Get("toml")
		if tag == "" {
			continue
		}
		parts := strings.Split(tag, ",")
		f := settingField{key: parts[0], index: i}
		for _, opt := range parts[1:] {
			switch opt {
			case "required":
				f.required = true
			case "path":
				f.path = true
			case "positive":
				f.positive = true
			default:
				panic("conf: internal error: unknown tag option " + opt)
			}
		}
		out = append(out, f)
	}
	return out
}()

// SettingKeys returns every key of the main settings file, in the order
// of the Settings struct.
func SettingKeys() []string {
	keys := make([]string, len(settingFields))
	for i, f := range settingFields {
		keys[i] = f.key
	}
	return keys
}

// decodeSettings reads the main file's root table into s.
func decodeSettings(t *table, s *Settings) {
	v := reflect.ValueOf(s).Elem()
	for _, f := range settingFields {
		decodeSetting(t, f.key, v.Field(f.index))
	}
	t.finish()
}

var (
	typeDuration  = reflect.TypeFor[time.Duration]()
	typeAddrPort  = reflect.TypeFor[netip.AddrPort]()
	typePrefixes  = reflect.TypeFor[[]netip.Prefix]()
	typeLogFormat = reflect.TypeFor[LogFormat]()
	typeProxyProt = reflect.TypeFor[ProxyProtocol]()
)

// decodeSetting reads key into the settings field dst according to the
// field's Go type.
func decodeSetting(t *table, key string, dst reflect.Value) {
	switch dst.Type() {
	case typeDuration:
		var d time.Duration
		if t.seconds(key, &d) {
			dst.SetInt(int64(d))
		}
	case typeAddrPort:
		var s string
		if t.str(key, &s) {
			ap, err := parseListenAddr(s)
			if err != nil {
				t.p.add(t.pos[key], "%s %v", key, err)
				return
			}
			dst.Set(reflect.ValueOf(ap))
		}
	case typePrefixes:
		list, pos, ok := t.strings(key)
		if !ok {
			return
		}
		prefixes := make([]netip.Prefix, 0, len(list))
		for i, s := range list {
			p, err := parseCIDR(s)
			if err != nil {
				t.p.add(pos[i], "%s: %v", key, err)
				continue
			}
			prefixes = append(prefixes, p)
		}
		dst.Set(reflect.ValueOf(prefixes))
	case typeLogFormat:
		var s string
		if t.str(key, &s) {
			switch f := LogFormat(s); f {
			case LogJSON, LogText:
				dst.SetString(s)
			default:
				t.p.add(t.pos[key], `log must be "json" or "text", not %q`, s)
			}
		}
	case typeProxyProt:
		decodeProxyProtocol(t, key, dst)
	default:
		switch dst.Kind() {
		case reflect.String:
			var s string
			if t.str(key, &s) {
				if s == "" {
					t.p.add(t.pos[key], "%s must not be empty; remove the line to leave it unset", key)
					return
				}
				dst.SetString(s)
			}
		case reflect.Bool:
			var b bool
			if t.boolean(key, &b) {
				dst.SetBool(b)
			}
		case reflect.Int64:
			var n int64
			if t.integer(key, 1<<63-1, &n) {
				dst.SetInt(n)
			}
		default:
			panic("conf: internal error: no decoder for setting " + key)
		}
	}
}

// decodeProxyProtocol accepts "off", "optional" or "required" in any case,
// or a boolean (true = required, false = off), as the original did.
func decodeProxyProtocol(t *table, key string, dst reflect.Value) {
	t.known = append(t.known, key)
	v := t.n.field(key)
	if v == nil {
		return
	}
	t.pos[key] = t.at(v)
	switch v.kind {
	case kindBool:
		if v.boolean {
			dst.SetString(string(ProxyProtocolRequired))
		} else {
			dst.SetString(string(ProxyProtocolOff))
		}
		return
	case kindString:
		switch m := ProxyProtocol(strings.ToLower(v.str)); m {
		case ProxyProtocolOff, ProxyProtocolOptional, ProxyProtocolRequired:
			dst.SetString(string(m))
			return
		}
	}
	t.p.add(t.at(v), `%s must be "off", "optional" or "required"`, key)
}

// parseListenAddr parses IP:port; host names are not accepted because a
// listening socket binds an address, not a name.
func parseListenAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%q must be IP:port, like 127.0.0.1:3128 or [::1]:3128 (host names are not accepted)", s)
	}
	return ap, nil
}

// parseAddr parses a single IP address strictly: dotted-decimal IPv4
// (no octal, hex or short forms) or IPv6, no zone, not IPv4-mapped.
func parseAddr(s string) (netip.Addr, error) {
	if strings.ContainsRune(s, '/') {
		return netip.Addr{}, fmt.Errorf("%q is a CIDR, not an address", s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q has an IPv6 zone, which cannot match a peer address", s)
	}
	if a.Is4In6() {
		// Peers are unmapped before lookup, so a mapped selector never matches.
		return netip.Addr{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write %s", s, a.Unmap())
	}
	return a, nil
}

// parseCIDR parses a.b.c.d/n or v6/n strictly: host bits must be zero, so
// that a typo like 10.1.2.3/8 is caught rather than silently widened.
func parseCIDR(s string) (netip.Prefix, error) {
	if !strings.ContainsRune(s, '/') {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (it needs a /prefix-length)", s)
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix, which never matches (peers are unmapped first); write it as IPv4", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, m)
	}
	return p, nil
}
