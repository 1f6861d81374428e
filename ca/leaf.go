package ca

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// maxHostName is the longest DNS name (RFC 1035 §2.3.4, without the root
// label's dot).
const maxHostName = 253

// errAborted is what callers waiting on a mint see if the minting call
// panicked instead of returning.
var errAborted = errors.New("mint leaf: aborted")

// Leaf returns a certificate for host (a DNS name or an IP literal,
// brackets allowed; case and one trailing dot are ignored). Its chain is
// the leaf followed by the intermediate; Leaf is set. The result is shared
// and must not be modified.
//
// Leaves come from the in-memory cache, then the disk cache, else they are
// minted; one with less than 10% of its lifetime left is minted again.
// Concurrent calls for a host that is not cached mint once: the first
// mints, the others wait for its result or for ctx to end. The minting
// call itself does not stop on ctx — minting takes well under a
// millisecond and its result serves the others.
func (a *Authority) Leaf(ctx context.Context, host string) (*tls.Certificate, error) {
	name := canonicalName(host)
	now := a.now()
	a.mu.Lock()
	if e := a.cache.m[name]; e != nil {
		if now.Before(e.renewAt) {
			a.cache.touchLocked(e)
			cert := e.cert
			a.mu.Unlock()
			a.hits.Add(1)
			return cert, nil
		}
		a.cache.removeLocked(e)
	}
	if c := a.inflight[name]; c != nil {
		a.mu.Unlock()
		return a.wait(ctx, c)
	}
	a.mu.Unlock()

	addr, err := checkName(name)
	if err != nil {
		return nil, fmt.Errorf("mint leaf for %q: %w", host, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The key is cloned: host may alias a caller's buffer, and the map
	// keeps it.
	name = strings.Clone(name)

	a.mu.Lock()
	// Another call may have started (or finished) the mint while the
	// lock was released.
	if e := a.cache.m[name]; e != nil && now.Before(e.renewAt) {
		a.cache.touchLocked(e)
		cert := e.cert
		a.mu.Unlock()
		a.hits.Add(1)
		return cert, nil
	}
	if c := a.inflight[name]; c != nil {
		a.mu.Unlock()
		return a.wait(ctx, c)
	}
	c := &call{done: make(chan struct{}), err: errAborted}
	a.inflight[name] = c
	a.mu.Unlock()

	defer func() {
		a.mu.Lock()
		delete(a.inflight, name)
		if c.err == nil {
			if at := renewAt(c.cert.Leaf); a.now().Before(at) {
				a.cache.addLocked(name, c.cert, at)
			}
		}
		a.mu.Unlock()
		close(c.done)
	}()
	c.cert, c.err = a.obtain(name, addr, now)
	return c.cert, c.err
}

// call is a mint under way. cert and err are written by the minting call
// before done is closed and read by waiters after.
type call struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// wait returns the result of a mint started by another call.
func (a *Authority) wait(ctx context.Context, c *call) (*tls.Certificate, error) {
	if a.testHookWait != nil {
		a.testHookWait()
	}
	select {
	case <-c.done:
		if c.err != nil {
			return nil, c.err
		}
		a.hits.Add(1)
		return c.cert, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// obtain reads name's leaf from the disk cache or mints (and stores) one.
func (a *Authority) obtain(name string, addr netip.Addr, now time.Time) (*tls.Certificate, error) {
	var path string
	if a.cacheDir != "" {
		path = a.cachePath(name)
		cert, err := a.readEntry(path, name, now)
		switch {
		case err == nil:
			a.hits.Add(1)
			return cert, nil
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, errRenew):
			a.log.Debug("leaf cache entry due for renewal", slog.String("path", path))
		default:
			a.log.Warn("discarding invalid leaf cache entry", slog.String("path", path), slog.Any("error", err))
		}
	}
	if a.testHookMint != nil {
		a.testHookMint()
	}
	cert, err := a.mint(name, addr, now)
	if err != nil {
		return nil, err
	}
	a.minted.Add(1)
	if path != "" {
		if err := a.writeEntry(path, cert); err != nil {
			// The leaf is good; only the next restart loses it.
			a.log.Warn("write leaf cache entry", slog.String("path", path), slog.Any("error", err))
		}
	}
	return cert, nil
}

// mint creates a leaf for name signed by the intermediate.
func (a *Authority) mint(name string, addr netip.Addr, now time.Time) (*tls.Certificate, error) {
	key, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("mint leaf: generate key: %w", err)
	}
	tmpl, err := leafTemplate(name, addr, a.inter, a.ttl, now)
	if err != nil {
		return nil, fmt.Errorf("mint leaf: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.inter, key.Public(), a.interKey)
	if err != nil {
		return nil, fmt.Errorf("mint leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mint leaf: parse: %w", err)
	}
	return &tls.Certificate{
		// SPEC §7: leaf and intermediate only. Clients hold the root; a
		// root in the chain is dead weight on every handshake.
		Certificate: [][]byte{der, a.inter.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// renewAt is when a leaf should be replaced: when less than a tenth of its
// lifetime remains (SPEC §7).
func renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-life / 10)
}

// canonicalName lower-cases host and removes IPv6 brackets and one
// trailing dot. It does not allocate when host is already canonical, so a
// cache hit costs no allocation.
func canonicalName(host string) string {
	if n := len(host); n >= 2 && host[0] == '[' && host[n-1] == ']' {
		host = host[1 : n-1]
	}
	if n := len(host); n > 1 && host[n-1] == '.' {
		host = host[:n-1]
	}
	return strings.ToLower(host) // returns host itself when nothing changes
}

// checkName accepts an IP literal (no zone) or a DNS name of letters,
// digits, '-' and '_' in dot-separated labels of 1 to 63 bytes. It returns
// the address for an IP literal and the zero Addr otherwise.
func checkName(name string) (netip.Addr, error) {
	if addr, err := netip.ParseAddr(name); err == nil {
		if addr.Zone() != "" {
			return netip.Addr{}, errors.New("IPv6 zone in host")
		}
		return addr, nil
	}
	if name == "" {
		return netip.Addr{}, errors.New("empty host")
	}
	if len(name) > maxHostName {
		return netip.Addr{}, errors.New("host name longer than 253 bytes")
	}
	label := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return netip.Addr{}, errors.New("empty label in host name")
			}
			label = 0
			continue
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			// Non-ASCII names must arrive as A-labels (RFC 5890); a
			// dNSName is an IA5String (RFC 5280 §4.2.1.6).
			return netip.Addr{}, fmt.Errorf("byte %#02x not allowed in a host name", c)
		}
		label++
		if label > 63 {
			return netip.Addr{}, errors.New("host name label longer than 63 bytes")
		}
	}
	if label == 0 {
		return netip.Addr{}, errors.New("empty label in host name")
	}
	return netip.Addr{}, nil
}
