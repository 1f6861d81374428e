package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// defaultConnectTimeout is upstream_connect_timeout's default
// (reference §1.1).
const defaultConnectTimeout = 5 * time.Second

// Kind says what went wrong on the way out; it sets the status.
type Kind uint8

// The kinds of Error.
const (
	KindInvalidHost Kind = iota + 1 // the host is not a strict name or IP literal: 400
	KindResolve                     // the lookup failed or found nothing: 502
	KindTimeout                     // dns_resolve_timeout or upstream_connect_timeout passed: 504
	KindPrivate                     // every address is non-public, or the proxy itself: 403
	KindConnect                     // every connect attempt failed (refused, unreachable): 502
)

// String returns the kind as a word.
func (k Kind) String() string {
	switch k {
	case KindInvalidHost:
		return "invalid_host"
	case KindResolve:
		return "resolve"
	case KindTimeout:
		return "timeout"
	case KindPrivate:
		return "private"
	case KindConnect:
		return "connect"
	}
	return "unknown"
}

// Error is a failure to resolve, vet or connect. Its Kind sets the status
// the proxy answers with; the detail is for the log only.
type Error struct {
	Op    string         // "resolve", "vet" or "dial"
	Kind  Kind           // what went wrong
	Host  string         // the host asked for, if known
	Addr  netip.AddrPort // the address concerned, if one
	Class Class          // for KindPrivate: why the address was refused
	Err   error          // the underlying error, if any
}

func (e *Error) Error() string {
	var b []byte
	b = append(b, e.Op...)
	if e.Host != "" {
		b = fmt.Appendf(b, " %q", e.Host)
	}
	if e.Addr.IsValid() {
		b = append(b, ' ')
		b = e.Addr.AppendTo(b)
	}
	switch {
	case e.Kind == KindPrivate && e.Class == Self:
		b = append(b, ": refused: the proxy's own address"...)
	case e.Kind == KindPrivate:
		b = fmt.Appendf(b, ": refused: non-public address (%s)", e.Class)
	case e.Kind == KindTimeout && e.Err == nil:
		b = append(b, ": timeout"...)
	}
	if e.Err != nil {
		b = append(b, ": "...)
		b = append(b, e.Err.Error()...)
	}
	return string(b)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the error is a timeout, as net.Error does.
func (e *Error) Timeout() bool { return e.Kind == KindTimeout }

// Status is the HTTP status the proxy answers with (SPEC §5): 403 for a
// private address, 504 for a timeout, 400 for an invalid host, else 502.
func (e *Error) Status() int {
	switch e.Kind {
	case KindInvalidHost:
		return http.StatusBadRequest
	case KindPrivate:
		return http.StatusForbidden
	case KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// Reason is the decision log's reason word (SPEC §8): private_address,
// upstream_timeout, invalid_request, resolve_failed or connect_failed.
// TLSHandshake reports whether the error is a failed upstream TLS
// handshake, which the metrics count apart.
func (e *Error) TLSHandshake() bool { return e.Op == "tls handshake" }

// Reason returns the decision record's reason word for the error.
func (e *Error) Reason() string {
	switch e.Kind {
	case KindInvalidHost:
		return "invalid_request"
	case KindResolve:
		return "resolve_failed"
	case KindTimeout:
		return "upstream_timeout"
	case KindPrivate:
		return "private_address"
	}
	return "connect_failed"
}

// Dialer resolves, vets and connects to upstream addresses; with
// Transport it is the only way out of the proxy. It is safe for concurrent use; its fields must not
// change after first use.
//
// The address check happens twice: Vet (through ResolveVetted) filters the
// resolved list before anything is dialed, so a CONNECT can be refused
// with 403 before any packet leaves, and DialAddrs's net.Dialer Control
// hook checks the exact address each socket is about to connect to, as a
// backstop for callers that pass addresses they did not vet (peers §4.1).
type Dialer struct {
	// Resolver resolves host names. Nil means a Resolver with no hosts
	// file, the system resolver and the default timeout.
	Resolver *Resolver
	// ConnectTimeout bounds one TCP connect attempt
	// (upstream_connect_timeout). Zero means 5s.
	ConnectTimeout time.Duration
	// Self holds the proxy's own listening addresses. Nil means none.
	Self *SelfSet

	// dial replaces the net.Dialer in tests. When set, the Control hook
	// does not run.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func (d *Dialer) connectTimeout() time.Duration {
	if d.ConnectTimeout > 0 {
		return d.ConnectTimeout
	}
	return defaultConnectTimeout
}

// Classify is the package Classify plus the proxy's own addresses, which
// are Self.
func (d *Dialer) Classify(a netip.Addr) Class {
	c := Classify(a)
	if c == Public && d.Self.Contains(a) {
		return Self
	}
	return c
}

// check decides whether a connection to ap may be made: a non-public
// address only when allowPrivate, and the proxy's own listener never. A
// refusal is an *Error of kind KindPrivate.
func (d *Dialer) check(ap netip.AddrPort, allowPrivate bool) error {
	// Self-connection is refused even under allow_private_upstream: the
	// proxy would forward to itself and loop until it runs out of
	// connections. Its other ports are only Self-class (non-public).
	if d.Self.Loops(ap) {
		return &Error{Op: "vet", Kind: KindPrivate, Addr: ap, Class: Self}
	}
	// An invalid address is refused even when private ones are allowed:
	// there is nothing to connect to.
	if c := d.Classify(ap.Addr()); c == Invalid || c != Public && !allowPrivate {
		return &Error{Op: "vet", Kind: KindPrivate, Addr: ap, Class: c}
	}
	return nil
}

// Vet returns the addresses of addrs that may be dialed on port, in order,
// in a new slice (SPEC §6): all of them if allowPrivate, else only the
// public ones; never the proxy's own listener. If none is left the error is
// an *Error of kind KindPrivate whose Class is that of the first address.
func (d *Dialer) Vet(addrs []netip.Addr, port uint16, allowPrivate bool) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(addrs))
	var first error
	for _, a := range addrs {
		if err := d.check(netip.AddrPortFrom(a, port), allowPrivate); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		if first == nil {
			return nil, &Error{Op: "vet", Kind: KindResolve, Err: errors.New("no addresses")}
		}
		return nil, first
	}
	return out, nil
}

// ResolveVetted resolves host and vets the result for port. This is the
// check before any dial: a CONNECT answers 403 on KindPrivate without
// connecting, then dials the returned list with DialAddrs, never the name
// again (peers §4.1, DNS rebinding).
func (d *Dialer) ResolveVetted(ctx context.Context, host string, port uint16, allowPrivate bool) ([]netip.Addr, error) {
	r := d.Resolver
	if r == nil {
		r = &Resolver{}
	}
	addrs, err := r.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	vetted, err := d.Vet(addrs, port, allowPrivate)
	if err != nil {
		return nil, withHost(err, host)
	}
	return vetted, nil
}

// DialAddrs connects to port on addrs, trying them in order, each attempt
// bounded by ConnectTimeout, and returns the first TCP connection made,
// with TCP_NODELAY set. Before connect(2) the Control hook refuses an
// address that Vet would refuse (KindPrivate), so an unvetted list is still
// safe. If every attempt fails, the error is the last attempt's *Error:
// KindPrivate, KindTimeout or KindConnect.
func (d *Dialer) DialAddrs(ctx context.Context, addrs []netip.Addr, port uint16, allowPrivate bool) (net.Conn, error) {
	if len(addrs) == 0 || port == 0 {
		return nil, &Error{Op: "dial", Kind: KindConnect, Err: errors.New("no address or no port")}
	}
	var last error
	for _, a := range addrs {
		if ctx.Err() != nil && last != nil {
			break // the request is gone; last says why the earlier attempts failed
		}
		c, err := d.dialOne(ctx, netip.AddrPortFrom(a, port), allowPrivate)
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// Dial resolves host, vets the addresses and connects to the first that
// answers: ResolveVetted then DialAddrs.
func (d *Dialer) Dial(ctx context.Context, host string, port uint16, allowPrivate bool) (net.Conn, error) {
	addrs, err := d.ResolveVetted(ctx, host, port, allowPrivate)
	if err != nil {
		return nil, err
	}
	c, err := d.DialAddrs(ctx, addrs, port, allowPrivate)
	if err != nil {
		return nil, withHost(err, host)
	}
	return c, nil
}

// withHost records host in err if it is an *Error without one.
func withHost(err error, host string) error {
	if e, ok := err.(*Error); ok && e.Host == "" {
		e.Host = host
	}
	return err
}

// dialOne makes one connect attempt.
func (d *Dialer) dialOne(ctx context.Context, ap netip.AddrPort, allowPrivate bool) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.connectTimeout())
	defer cancel()
	dial := d.dial
	if dial == nil {
		nd := &net.Dialer{Control: d.control(allowPrivate)}
		dial = nd.DialContext
	}
	c, err := dial(ctx, "tcp", ap.String())
	if err != nil {
		var ue *Error
		if errors.As(err, &ue) {
			ue.Op = "dial"
			return nil, ue // refused by the Control hook
		}
		kind := KindConnect
		var ne net.Error
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			kind = KindTimeout
		}
		return nil, &Error{Op: "dial", Kind: kind, Addr: ap, Err: err}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Go sets TCP_NODELAY on every TCP conn already; say so here so
		// that a change of default cannot add Nagle delays to relayed
		// bytes (reference §7.4).
		if err := tc.SetNoDelay(true); err != nil {
			c.Close()
			return nil, &Error{Op: "dial", Kind: KindConnect, Addr: ap, Err: err}
		}
	}
	return c, nil
}

// control returns the net.Dialer Control hook: it runs after the socket is
// created and before connect(2), with the final address, and refuses it if
// check does (peers §4.1: the backstop against any path that dials an
// unvetted address). An address it cannot parse is refused.
func (d *Dialer) control(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &Error{Op: "dial", Kind: KindPrivate, Class: Invalid, Err: fmt.Errorf("unexpected address %q", address)}
		}
		return d.check(ap, allowPrivate)
	}
}
