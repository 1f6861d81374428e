package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// Limits of a DNS name, RFC 1035 §2.3.4.
const (
	maxNameLen  = 253 // octets in the text form without the trailing dot
	maxLabelLen = 63
)

// defaultResolveTimeout is dns_resolve_timeout's default (reference §1.1).
const defaultResolveTimeout = 2 * time.Second

// Host is an outbound host as ParseHost reads it: an IP literal or a DNS
// name, never both.
type Host struct {
	// Addr is the address of an IP literal, IPv4-mapped forms unmapped;
	// the zero Addr for a name.
	Addr netip.Addr
	// Name is the lower-case DNS name without its trailing dot; empty for
	// an IP literal.
	Name string
}

// String returns the name or the address in its canonical text form.
func (h Host) String() string {
	if h.Addr.IsValid() {
		return h.Addr.String()
	}
	return h.Name
}

// ParseHost parses an outbound host strictly (SPEC §6, peers §4.4). It
// accepts an IPv4 address in dotted-decimal (netip's strict form: four
// decimal octets, no leading zeros), an IPv6 address without brackets or
// zone, or a DNS name of letters, digits, '-', '_' and '.' with labels of
// 1–63 octets and at most 253 in all; one trailing dot is removed and the
// name is lower-cased. A name whose last label is numeric (all digits, or
// starting with 0x) must be a dotted-decimal IPv4 address: "0177.0.0.1",
// "0x7f.1", "2130706433" and "127.1" are what inet_aton would read as
// 127.0.0.1, so they are rejected rather than passed to a resolver that
// might. "1.2.3.4." is 1.2.3.4, as policy reads it.
func ParseHost(s string) (Host, error) {
	if s == "" {
		return Host{}, errors.New("empty host")
	}
	if strings.IndexByte(s, ':') >= 0 {
		// A zone names a link, not a host; no upstream is link-local.
		if strings.IndexByte(s, '%') < 0 {
			if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
				return Host{Addr: a.Unmap()}, nil
			}
		}
		return Host{}, fmt.Errorf("host %q is not an IPv6 address", s)
	}
	// RFC 1034 §3.1: a trailing dot marks an absolute name.
	name := strings.TrimSuffix(s, ".")
	if name == "" || len(name) > maxNameLen {
		return Host{}, fmt.Errorf("host %q is not a valid name", s)
	}
	start, upper := 0, false
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if n := i - start; n == 0 || n > maxLabelLen {
				return Host{}, fmt.Errorf("host %q is not a valid name", s)
			}
			if i < len(name) {
				start = i + 1
			}
			continue
		}
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return Host{}, fmt.Errorf("host %q is not a valid name", s)
		}
	}
	if isNumericLabel(name[start:]) {
		// The WHATWG URL rule, as conf and policy apply it: a host ending
		// in a number is an IPv4 address or nothing.
		if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
			return Host{Addr: a}, nil
		}
		return Host{}, fmt.Errorf("host %q is not a dotted-decimal IPv4 address", s)
	}
	if upper {
		name = strings.ToLower(name)
	}
	return Host{Name: name}, nil
}

// isNumericLabel reports whether l is all decimal digits or starts with
// 0x or 0X.
func isNumericLabel(l string) bool {
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return l != ""
}

// Hosts is a parsed hosts(5) file (hosts_file): names to addresses. A nil
// *Hosts is empty. It is immutable and safe for concurrent use.
type Hosts struct {
	byName map[string][]netip.Addr // lower-case name → addresses in file order
}

// ReadHosts reads and parses the hosts(5) file at path.
func ReadHosts(path string) (*Hosts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read hosts file: %w", err)
	}
	return ParseHosts(path, data)
}

// ParseHosts parses hosts(5) text; file names it in errors. Each line is
// "ADDRESS NAME [ALIAS…]" with fields separated by spaces or tabs and '#'
// starting a comment; blank lines are skipped. Addresses are parsed as
// strictly as ParseHost parses IP literals (no zones) and names as it
// parses names (so a numeric name is an error). A name on several lines
// gets the addresses of all of them, in file order. Every malformed line is
// reported as "FILE:LINE: message".
func ParseHosts(file string, data []byte) (*Hosts, error) {
	h := &Hosts{byName: make(map[string][]netip.Addr)}
	var errs []error
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if err := h.parseLine(line); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %v", file, n, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return h, nil
}

// parseLine adds one hosts(5) line to h.
func (h *Hosts) parseLine(line []byte) error {
	line = bytes.TrimSuffix(line, []byte("\r")) // CRLF files are common
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	var fields []string
	for f := range bytes.FieldsFuncSeq(line, func(r rune) bool { return r == ' ' || r == '\t' }) {
		fields = append(fields, string(f))
	}
	if len(fields) == 0 {
		return nil
	}
	if len(fields) == 1 {
		return fmt.Errorf("address %q has no host name", fields[0])
	}
	var addr netip.Addr
	if strings.IndexByte(fields[0], '%') < 0 {
		addr, _ = netip.ParseAddr(fields[0])
	}
	if !addr.IsValid() {
		return fmt.Errorf("%q is not an IP address (dotted-decimal IPv4 or IPv6 without zone)", fields[0])
	}
	addr = addr.Unmap()
	for _, f := range fields[1:] {
		host, err := ParseHost(f)
		if err != nil {
			return err
		}
		if host.Name == "" {
			return fmt.Errorf("host name %q is an IP address", f)
		}
		if !slices.Contains(h.byName[host.Name], addr) {
			h.byName[host.Name] = append(h.byName[host.Name], addr)
		}
	}
	return nil
}

// Lookup returns the addresses of name (as ParseHost returns it), nil if the
// file does not have it. The slice must not be modified.
func (h *Hosts) Lookup(name string) []netip.Addr {
	if h == nil {
		return nil
	}
	return h.byName[name]
}

// DNS is the part of *net.Resolver that Resolver uses.
type DNS interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Resolver turns an outbound host into addresses: an IP literal is its own
// address, a name is looked up in Hosts and then DNS. It is safe for
// concurrent use; its fields must not change after first use.
type Resolver struct {
	// Hosts holds hosts_file, consulted before DNS. Nil means no file.
	Hosts *Hosts
	// DNS answers for names Hosts does not have. Nil means
	// net.DefaultResolver (which reads /etc/hosts too).
	DNS DNS
	// Timeout bounds one DNS lookup (dns_resolve_timeout). Zero means 2s.
	Timeout time.Duration
}

func (r *Resolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return defaultResolveTimeout
}

// Resolve returns the addresses of host, unmapped, without duplicates, in
// the order the hosts file or resolver gave them, never empty. It does not
// vet them; see Dialer.ResolveVetted. A failure is an *Error of kind
// KindInvalidHost, KindResolve or KindTimeout.
func (r *Resolver) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	h, err := ParseHost(host)
	if err != nil {
		return nil, &Error{Op: "resolve", Kind: KindInvalidHost, Host: host, Err: err}
	}
	if h.Addr.IsValid() {
		return []netip.Addr{h.Addr}, nil
	}
	if addrs := r.Hosts.Lookup(h.Name); len(addrs) > 0 {
		return slices.Clone(addrs), nil
	}
	dns := r.DNS
	if dns == nil {
		dns = net.DefaultResolver
	}
	lctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	// The name is queried as an absolute name (trailing dot) so that the
	// resolv.conf search list never applies: the address must belong to
	// the name the policy judged, not to NAME.some.search.domain.
	addrs, err := dns.LookupNetIP(lctx, "ip", h.Name+".")
	if err != nil {
		kind := KindResolve
		var de *net.DNSError
		switch {
		case errors.Is(lctx.Err(), context.DeadlineExceeded):
			kind = KindTimeout // ours, or the request's deadline
		case ctx.Err() == nil && errors.As(err, &de) && de.IsTimeout:
			kind = KindTimeout // the server's own timeout
		}
		return nil, &Error{Op: "resolve", Kind: kind, Host: h.Name, Err: err}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		// LookupNetIP may return IPv4 answers in their 16-byte form
		// (golang.org/issue/53554).
		if a = a.Unmap(); a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &Error{Op: "resolve", Kind: KindResolve, Host: h.Name, Err: errors.New("no addresses")}
	}
	return out, nil
}
