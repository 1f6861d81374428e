package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The files in ca_dir (SPEC §7).
const (
	rootCertFile  = "root.crt"
	rootKeyFile   = "root.key"
	interCertFile = "intermediate.crt"
	interKeyFile  = "intermediate.key"
)

// renewBefore is how close to its expiry the intermediate is renewed at
// startup (SPEC §7).
const renewBefore = 30 * 24 * time.Hour

// material is the loaded content of ca_dir.
type material struct {
	root     *x509.Certificate
	rootKey  crypto.Signer // nil when root.key is absent (external CA)
	inter    *x509.Certificate
	interKey crypto.Signer
}

// layout says which of the four files exist.
type layout struct {
	rootCert, rootKey, interCert, interKey bool
}

func (l layout) none() bool {
	return !l.rootCert && !l.rootKey && !l.interCert && !l.interKey
}

// complete reports whether the material can be loaded: root.key is
// optional, the other three are required.
func (l layout) complete() bool {
	return l.rootCert && l.interCert && l.interKey
}

// statLayout looks for the four files. A missing directory holds none.
func statLayout(dir string) (layout, error) {
	var l layout
	for _, f := range []struct {
		name string
		ok   *bool
	}{
		{rootCertFile, &l.rootCert},
		{rootKeyFile, &l.rootKey},
		{interCertFile, &l.interCert},
		{interKeyFile, &l.interKey},
	} {
		_, err := os.Stat(filepath.Join(dir, f.name))
		switch {
		case err == nil:
			*f.ok = true
		case errors.Is(err, fs.ErrNotExist):
		default:
			return layout{}, err
		}
	}
	return l, nil
}

// incompleteError describes partial material: what is missing and how to
// recover.
func incompleteError(dir string, l layout) error {
	var missing, present []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{rootCertFile, l.rootCert},
		{interCertFile, l.interCert},
		{interKeyFile, l.interKey},
		{rootKeyFile, l.rootKey},
	} {
		switch {
		case f.ok:
			present = append(present, f.name)
		case f.name != rootKeyFile:
			missing = append(missing, f.name)
		}
	}
	return fmt.Errorf("incomplete CA material in %s: missing %s (present: %s); add the missing files (root.key is optional), or remove the present ones to generate a new CA",
		dir, strings.Join(missing, ", "), strings.Join(present, ", "))
}

// loadMaterial reads and cross-checks the files of a complete layout.
func loadMaterial(dir string, l layout) (*material, error) {
	var m material
	var err error
	if m.root, err = readCertFile(filepath.Join(dir, rootCertFile)); err != nil {
		return nil, err
	}
	if m.inter, err = readCertFile(filepath.Join(dir, interCertFile)); err != nil {
		return nil, err
	}
	if m.interKey, err = readKeyFile(filepath.Join(dir, interKeyFile)); err != nil {
		return nil, err
	}
	if l.rootKey {
		if m.rootKey, err = readKeyFile(filepath.Join(dir, rootKeyFile)); err != nil {
			return nil, err
		}
		if !keyMatches(m.rootKey, m.root) {
			return nil, fmt.Errorf("%s does not match the public key of %s", filepath.Join(dir, rootKeyFile), filepath.Join(dir, rootCertFile))
		}
	}
	if !keyMatches(m.interKey, m.inter) {
		return nil, fmt.Errorf("%s does not match the public key of %s", filepath.Join(dir, interKeyFile), filepath.Join(dir, interCertFile))
	}
	if err := checkChain(m.inter, m.root); err != nil {
		return nil, fmt.Errorf("%s does not chain to %s: %w", filepath.Join(dir, interCertFile), filepath.Join(dir, rootCertFile), err)
	}
	return &m, nil
}

// checkChain checks, without regard to time, that inter is a CA able to
// sign TLS server leaves and that root signed it. Expiry is judged
// separately (assess), because an expired intermediate can be renewed.
func checkChain(inter, root *x509.Certificate) error {
	if !bytes.Equal(inter.RawIssuer, root.RawSubject) {
		return errors.New("issuer name differs from the root's subject")
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return err
	}
	if !inter.BasicConstraintsValid || !inter.IsCA {
		return errors.New("not a CA certificate")
	}
	if inter.KeyUsage != 0 && inter.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("key usage lacks keyCertSign")
	}
	if len(inter.ExtKeyUsage) > 0 &&
		!slices.Contains(inter.ExtKeyUsage, x509.ExtKeyUsageServerAuth) &&
		!slices.Contains(inter.ExtKeyUsage, x509.ExtKeyUsageAny) {
		// Clients apply an intermediate's EKU to its leaves.
		return errors.New("extended key usage excludes serverAuth")
	}
	return nil
}

// verdict is what assess decides about loaded material.
type verdict struct {
	renew bool     // mint a new intermediate now
	warn  []string // things an operator should know
}

// assess judges the material's validity periods at now. It refuses an
// expired root (nothing it issued verifies) and an expired intermediate
// without root.key (nothing can renew it, and every bumped handshake
// would fail). An intermediate within renewBefore of expiry is renewed
// when root.key is present and otherwise only warned about.
func assess(dir string, m *material, now time.Time) (verdict, error) {
	var v verdict
	rootPath := filepath.Join(dir, rootCertFile)
	interPath := filepath.Join(dir, interCertFile)
	if !now.Before(m.root.NotAfter) {
		return v, fmt.Errorf("%s expired at %s; create a new CA (empty %s) and distribute the new root.crt", rootPath, m.root.NotAfter.UTC().Format(time.RFC3339), dir)
	}
	if m.root.NotAfter.Sub(now) < renewBefore {
		v.warn = append(v.warn, fmt.Sprintf("%s expires at %s; create a new CA and distribute its root.crt", rootPath, m.root.NotAfter.UTC().Format(time.RFC3339)))
	}
	left := m.inter.NotAfter.Sub(now)
	switch {
	case left >= renewBefore:
	case m.rootKey == nil && left <= 0:
		return v, fmt.Errorf("%s expired at %s and %s is absent to renew it; have the issuing CA sign a new intermediate", interPath, m.inter.NotAfter.UTC().Format(time.RFC3339), filepath.Join(dir, rootKeyFile))
	case m.rootKey == nil:
		v.warn = append(v.warn, fmt.Sprintf("%s expires at %s and %s is absent to renew it; have the issuing CA sign a new intermediate", interPath, m.inter.NotAfter.UTC().Format(time.RFC3339), filepath.Join(dir, rootKeyFile)))
	case m.root.NotAfter.After(m.inter.NotAfter):
		// Renewing helps only when the root outlives the current
		// intermediate; otherwise the new one would end no later.
		v.renew = true
	}
	if now.Before(m.inter.NotBefore) {
		v.warn = append(v.warn, fmt.Sprintf("%s is not valid before %s; check the clock", interPath, m.inter.NotBefore.UTC().Format(time.RFC3339)))
	}
	return v, nil
}

// generate creates a new root and intermediate in dir, which holds none of
// the four files.
func generate(dir string, now time.Time) (*material, error) {
	rootKey, err := newKey()
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	tmpl, err := rootTemplate(rootKey.Public(), now)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse root certificate: %w", err)
	}
	m := &material{root: root, rootKey: rootKey}
	if err := m.newIntermediate(now, nil); err != nil {
		return nil, err
	}
	// Keys first: a crash part way leaves partial material, which the
	// next start refuses with a message naming what is missing.
	rootKeyPEM, err := encodeKey(rootKey)
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, rootKeyFile), rootKeyPEM, keyMode, true); err != nil {
		return nil, fmt.Errorf("write root key: %w", err)
	}
	if err := writeFile(filepath.Join(dir, rootCertFile), encodeCert(root.Raw), certMode, true); err != nil {
		return nil, fmt.Errorf("write root certificate: %w", err)
	}
	if err := m.writeIntermediate(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// newIntermediate mints a fresh intermediate key and certificate signed by
// the root key, keeping rawSubject as its name when given.
func (m *material) newIntermediate(now time.Time, rawSubject []byte) error {
	key, err := newKey()
	if err != nil {
		return fmt.Errorf("generate intermediate key: %w", err)
	}
	tmpl, err := intermediateTemplate(key.Public(), m.root, rawSubject, now)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.root, key.Public(), m.rootKey)
	if err != nil {
		return fmt.Errorf("create intermediate certificate: %w", err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse intermediate certificate: %w", err)
	}
	m.inter, m.interKey = inter, key
	return nil
}

// writeIntermediate stores the intermediate key and certificate. Each file
// is replaced atomically; a crash between the two renames leaves a key
// that does not match the certificate, which the next start refuses with
// a message naming both files.
func (m *material) writeIntermediate(dir string) error {
	keyPEM, err := encodeKey(m.interKey)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, interKeyFile), keyPEM, keyMode, true); err != nil {
		return fmt.Errorf("write intermediate key: %w", err)
	}
	if err := writeFile(filepath.Join(dir, interCertFile), encodeCert(m.inter.Raw), certMode, true); err != nil {
		return fmt.Errorf("write intermediate certificate: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// removeTemps deletes temporary files a crash left in ca_dir
// (".root.key.tmp-…" and the like); they may hold key material.
func removeTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		for _, f := range []string{rootCertFile, rootKeyFile, interCertFile, interKeyFile} {
			if strings.HasPrefix(name, "."+f+tmpMarker) && e.Type().IsRegular() {
				os.Remove(filepath.Join(dir, name))
			}
		}
	}
}
