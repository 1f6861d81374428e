// Package pipeline is the one request path of ExfilGuard. Every front end
// (plain HTTP/1.1, CONNECT, bumped HTTP/1.1, bumped HTTP/2) hands its
// requests to the same Handler, which canonicalises the request, resolves
// the client, decides with the policy snapshot of that moment, writes one
// decision record, and then forwards or answers (SPEC §5 "One pipeline").
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
)

// FrontEnd says how a request reached the proxy.
type FrontEnd uint8

// Front ends.
const (
	// Plain is an absolute-form request on the listener.
	Plain FrontEnd = iota + 1
	// Connect is a CONNECT on the listener.
	Connect
	// BumpH1 and BumpH2 are requests inside a bumped CONNECT tunnel.
	BumpH1
	BumpH2
)

func (f FrontEnd) String() string {
	switch f {
	case Plain:
		return "plain"
	case Connect:
		return "connect"
	case BumpH1:
		return "bump_h1"
	case BumpH2:
		return "bump_h2"
	}
	return "unknown"
}

// ConnInfo holds the facts of a client connection that every request on
// it shares. The front end puts it in the request context (NewContext);
// it is not changed afterwards.
type ConnInfo struct {
	// Peer is the client's address: the TCP peer, or the source address
	// of a trusted PROXY protocol header. IPv4-mapped addresses are
	// unmapped.
	Peer netip.AddrPort
	// SessionID is shared by a CONNECT and every request inside it, and by
	// the requests of one plain connection.
	SessionID string
	// FrontEnd is how the requests arrive.
	FrontEnd FrontEnd
	// ConnectHost and ConnectPort are the CONNECT target of a bumped
	// tunnel (host in lower case, IPv6 without brackets); every inner
	// request must name this authority (else 421).
	ConnectHost string
	ConnectPort uint16
	// ConnectAddrs are the addresses the CONNECT of a bumped tunnel
	// resolved and vetted; inner requests connect only to these.
	ConnectAddrs []netip.Addr
}

type connInfoKey struct{}

// NewContext returns ctx carrying info.
func NewContext(ctx context.Context, info *ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, info)
}

// FromContext returns the ConnInfo in ctx, or nil.
func FromContext(ctx context.Context) *ConnInfo {
	info, _ := ctx.Value(connInfoKey{}).(*ConnInfo)
	return info
}

// NewSessionID returns a random 128-bit identifier in hex.
func NewSessionID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
