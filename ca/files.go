package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes (SPEC §7). Keys are 0600 as SPEC says (STYLE suggests 0400
// for the root key; SPEC wins). Loading accepts any key mode without group
// or other bits, 0400 included. Certificates are public.
const (
	dirMode  fs.FileMode = 0o700
	keyMode  fs.FileMode = 0o600
	certMode fs.FileMode = 0o644
)

// maxPEMFile bounds a CA file read from ca_dir: a certificate or key is a
// few KiB; anything much larger is not one.
const maxPEMFile = 1 << 20

// tmpMarker separates a file's name from the random suffix of its
// temporary twin (".root.key.tmp-123"), so leftovers are recognisable.
const tmpMarker = ".tmp-"

// writeFile writes data to path through a temporary file in the same
// directory and a rename, so readers see the old content or the new, never
// a torn file. sync also flushes the file before the rename (CA material;
// the leaf cache does without: a torn entry is detected and replaced).
func writeFile(path string, data []byte, perm fs.FileMode, sync bool) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+tmpMarker+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600 already; certificates are widened.
	if perm != 0o600 {
		if err := f.Chmod(perm); err != nil {
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// syncDir flushes a directory so renames into it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readBounded reads a regular file of at most limit bytes. The returned
// FileInfo describes the opened file, not the path, so a mode check on it
// cannot race a rename.
func readBounded(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, nil, fmt.Errorf("%s: %d bytes, larger than %d", path, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, fi, nil
}

// readCertFile reads a PEM file holding exactly one CERTIFICATE block.
// Text before the block is allowed (openssl x509 -text writes some);
// anything but white space after it is not.
func readCertFile(path string) (*x509.Certificate, error) {
	data, _, err := readBounded(path, maxPEMFile)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: PEM block %q, want CERTIFICATE", path, block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: more than one certificate, or trailing data", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// readKeyFile reads a private key file after checking that neither group
// nor other can read it (SPEC §7, beyond the original). The key may be
// PKCS#8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY", as openssl ecparam
// writes it, optionally after an "EC PARAMETERS" block).
func readKeyFile(path string) (crypto.Signer, error) {
	data, fi, err := readBounded(path, maxPEMFile)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets group or other access the private key; run chmod 600 %s", path, perm, path)
	}
	key, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// parseKeyPEM decodes the one private key in data.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	var key crypto.Signer
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			if len(bytes.TrimSpace(data)) != 0 {
				return nil, errors.New("trailing data after the key")
			}
			break
		}
		data = rest
		var parsed any
		var err error
		switch block.Type {
		case "EC PARAMETERS":
			continue // the curve is named inside the key too
		case "PRIVATE KEY":
			parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			parsed, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			return nil, fmt.Errorf("PEM block %q, want PRIVATE KEY or EC PRIVATE KEY", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parse private key: %w", err)
		}
		if key != nil {
			return nil, errors.New("more than one private key")
		}
		switch k := parsed.(type) {
		case *ecdsa.PrivateKey:
			key = k
		case *rsa.PrivateKey:
			key = k
		case ed25519.PrivateKey:
			key = k
		default:
			return nil, fmt.Errorf("unsupported private key type %T", parsed)
		}
	}
	if key == nil {
		return nil, errors.New("no private key")
	}
	return key, nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// encodeKey writes key as PEM PKCS#8.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// encodeCert writes a DER certificate as PEM.
func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
