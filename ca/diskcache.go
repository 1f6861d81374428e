package ca

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The disk cache holds one file per host in cert_cache_dir:
//
//	leaf-<hex SHA-256 of (domain tag, SHA-256 of the intermediate, host)>.pem
//
// with three PEM blocks: the leaf CERTIFICATE, the intermediate
// CERTIFICATE and the leaf's PRIVATE KEY (PKCS#8), mode 0600. Because the
// intermediate is part of the name, a new intermediate makes old entries
// misses; the startup sweep deletes them once they no longer chain to the
// current intermediate. The flat "leaf-" namespace leaves the rest of the
// directory alone (the Debian layout shares it with the response cache,
// reference §12.6).
const (
	entryPrefix = "leaf-"
	entrySuffix = ".pem"
	// entryTag separates these hashes from any other use of SHA-256 and
	// versions the layout.
	entryTag = "exfilguard leaf cache v1\x00"

	// Limits on an entry file (reference §8.2); larger input is not an
	// entry this package wrote.
	maxEntryCerts    = 16
	maxEntryCertSize = 256 << 10
	maxEntrySize     = 1 << 20

	// staleTemp is the age after which the sweep deletes a temporary file
	// left by an interrupted write. Younger ones may belong to a writer
	// still at work (another process sharing the directory).
	staleTemp = 10 * time.Minute
)

// errRenew marks a cache entry that is valid but due for renewal.
var errRenew = errors.New("leaf due for renewal")

// cachePath returns the disk cache file for name.
func (a *Authority) cachePath(name string) string {
	h := sha256.New()
	h.Write([]byte(entryTag))
	h.Write(a.interID[:]) // fixed length, so name needs no delimiter
	h.Write([]byte(name))
	var sum [sha256.Size]byte
	return filepath.Join(a.cacheDir, entryPrefix+hex.EncodeToString(h.Sum(sum[:0]))+entrySuffix)
}

// readEntry loads and validates name's cache entry. Any error means the
// caller mints; the file is then overwritten.
func (a *Authority) readEntry(path, name string, now time.Time) (*tls.Certificate, error) {
	data, _, err := readBounded(path, maxEntrySize)
	if err != nil {
		return nil, err
	}
	certs, key, err := parseEntry(data)
	if err != nil {
		return nil, err
	}
	leaf, err := a.checkEntry(certs, key)
	if err != nil {
		return nil, err
	}
	if err := checkLeafName(leaf, name); err != nil {
		return nil, err
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("leaf not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if !now.Before(renewAt(leaf)) {
		return nil, errRenew
	}
	return &tls.Certificate{
		Certificate: [][]byte{certs[0], a.inter.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// writeEntry stores cert in the disk cache.
func (a *Authority) writeEntry(path string, cert *tls.Certificate) error {
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("leaf key %T is not a signer", cert.PrivateKey)
	}
	keyPEM, err := encodeKey(signer)
	if err != nil {
		return err
	}
	var data []byte
	for _, der := range cert.Certificate {
		data = append(data, encodeCert(der)...)
	}
	data = append(data, keyPEM...)
	return writeFile(path, data, keyMode, false)
}

// parseEntry splits an entry file into its certificates (DER) and key,
// within the limits of reference §8.2.
func parseEntry(data []byte) ([][]byte, crypto.Signer, error) {
	var certs [][]byte
	var keyDER []byte
	total := 0
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		data = rest
		switch block.Type {
		case "CERTIFICATE":
			if len(certs) == maxEntryCerts {
				return nil, nil, fmt.Errorf("more than %d certificates", maxEntryCerts)
			}
			if len(block.Bytes) == 0 || len(block.Bytes) > maxEntryCertSize {
				return nil, nil, fmt.Errorf("certificate of %d bytes", len(block.Bytes))
			}
			total += len(block.Bytes)
			certs = append(certs, block.Bytes)
		case "PRIVATE KEY":
			if keyDER != nil {
				return nil, nil, errors.New("more than one private key")
			}
			keyDER = block.Bytes
		default:
			return nil, nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, nil, errors.New("trailing data")
	}
	if total > maxEntrySize {
		return nil, nil, fmt.Errorf("certificates total %d bytes", total)
	}
	if keyDER == nil {
		return nil, nil, errors.New("no private key")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, nil, fmt.Errorf("parse private key: %w", err)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("private key %T is not a signer", parsed)
	}
	return certs, key, nil
}

// checkEntry checks that certs is a leaf issued by the current
// intermediate followed by that intermediate, that key is the leaf's, and
// that the leaf is a TLS server certificate. It returns the parsed leaf.
func (a *Authority) checkEntry(certs [][]byte, key crypto.Signer) (*x509.Certificate, error) {
	if len(certs) != 2 {
		return nil, fmt.Errorf("%d certificates, want leaf and intermediate", len(certs))
	}
	if !bytes.Equal(certs[1], a.inter.Raw) {
		return nil, errors.New("not issued by the current intermediate")
	}
	leaf, err := x509.ParseCertificate(certs[0])
	if err != nil {
		return nil, err
	}
	if err := leaf.CheckSignatureFrom(a.inter); err != nil {
		return nil, err
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return nil, errors.New("leaf lacks serverAuth")
	}
	if !keyMatches(key, leaf) {
		return nil, errors.New("key does not match the leaf")
	}
	return leaf, nil
}

// checkLeafName checks that the leaf names name and nothing else.
func checkLeafName(leaf *x509.Certificate, name string) error {
	addr, err := checkName(name)
	if err != nil {
		return err
	}
	if addr.IsValid() {
		if len(leaf.DNSNames) == 0 && len(leaf.IPAddresses) == 1 {
			if got, ok := netip.AddrFromSlice(leaf.IPAddresses[0]); ok && got.Unmap() == addr.Unmap() {
				return nil
			}
		}
	} else if len(leaf.IPAddresses) == 0 && len(leaf.DNSNames) == 1 && leaf.DNSNames[0] == name {
		return nil
	}
	return errors.New("leaf names another host")
}

// sweep deletes, at startup, disk cache files that can never be served
// again: entries that are unreadable, expired or not issued by the current
// intermediate, and temporary files older than staleTemp. Other files are
// left alone.
func (a *Authority) sweep() {
	ents, err := os.ReadDir(a.cacheDir)
	if err != nil {
		a.log.Warn("sweep leaf cache", slog.Any("error", err))
		return
	}
	now := a.now()
	removed := 0
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(a.cacheDir, name)
		switch {
		case strings.HasPrefix(name, "."+entryPrefix) && strings.Contains(name, tmpMarker):
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTemp {
				if os.Remove(path) == nil {
					removed++
				}
			}
		case strings.HasPrefix(name, entryPrefix) && strings.HasSuffix(name, entrySuffix):
			if a.entryLive(path, now) {
				continue
			}
			if os.Remove(path) == nil {
				removed++
			}
		}
	}
	if removed > 0 {
		a.log.Info("removed stale leaf cache entries", slog.String("dir", a.cacheDir), slog.Int("count", removed))
	}
}

// entryLive reports whether the entry at path may still be served: it
// parses, was issued with the current intermediate and has not expired.
// Signatures and keys are left to readEntry, so a sweep of many entries
// stays cheap.
func (a *Authority) entryLive(path string, now time.Time) bool {
	data, _, err := readBounded(path, maxEntrySize)
	if err != nil {
		return false
	}
	certs, _, err := parseEntry(data)
	if err != nil || len(certs) != 2 || !bytes.Equal(certs[1], a.inter.Raw) {
		return false
	}
	leaf, err := x509.ParseCertificate(certs[0])
	return err == nil && now.Before(leaf.NotAfter)
}
