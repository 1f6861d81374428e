package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenGenerates(t *testing.T) {
	// A missing directory, two levels deep.
	dir := filepath.Join(t.TempDir(), "var", "ca")
	start := time.Now()
	log, logs := newLogger()
	a, err := Open(dir, Options{Logger: log})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !strings.Contains(logs.String(), "generated new certificate authority material") {
		t.Errorf("log = %q, want the generation line", logs.String())
	}

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("ca_dir mode = %04o, want 0700", got)
	}
	for name, want := range map[string]fs.FileMode{
		rootCertFile:  0o644,
		rootKeyFile:   0o600,
		interCertFile: 0o644,
		interKeyFile:  0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %04o, want %04o", name, got, want)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("ca_dir holds %d entries, want the 4 files (no temporaries)", len(ents))
	}
	keyPEM, _ := os.ReadFile(filepath.Join(dir, rootKeyFile))
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("root.key is not PEM PKCS#8")
	}

	root, inter := a.Root(), a.Intermediate()
	checkCA := func(name string, c *x509.Certificate, maxPath int, years int) {
		t.Helper()
		if !c.BasicConstraintsValid || !c.IsCA {
			t.Errorf("%s: not a CA", name)
		}
		if c.MaxPathLen != maxPath || (maxPath == 0 && !c.MaxPathLenZero) {
			t.Errorf("%s: MaxPathLen = %d (zero %v), want %d", name, c.MaxPathLen, c.MaxPathLenZero, maxPath)
		}
		if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("%s: KeyUsage = %v, want CertSign|CRLSign", name, c.KeyUsage)
		}
		if len(c.SubjectKeyId) != 20 {
			t.Errorf("%s: SubjectKeyId length %d, want 20", name, len(c.SubjectKeyId))
		}
		if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Errorf("%s: signature %v, want ECDSA-SHA256", name, c.SignatureAlgorithm)
		}
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: public key %T, want ECDSA P-256", name, c.PublicKey)
		}
		if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
			t.Errorf("%s: serial %v not a positive 128-bit number", name, c.SerialNumber)
		}
		if c.NotBefore.After(start) {
			t.Errorf("%s: NotBefore %v not backdated", name, c.NotBefore)
		}
		want := start.AddDate(years, 0, 0)
		if d := c.NotAfter.Sub(want); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: NotAfter = %v, want about %v", name, c.NotAfter, want)
		}
	}
	checkCA("root", root, 1, 10)
	checkCA("intermediate", inter, 0, 1)
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root not self-signed: %v", err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	if !bytes.Equal(inter.AuthorityKeyId, root.SubjectKeyId) {
		t.Errorf("intermediate AKI %x, want root SKI %x", inter.AuthorityKeyId, root.SubjectKeyId)
	}
	if root.Subject.CommonName != rootCommonName || inter.Subject.CommonName != intermediateCommonName {
		t.Errorf("subjects %q, %q", root.Subject, inter.Subject)
	}
	if got, want := a.RootFile(), filepath.Join(dir, rootCertFile); got != want {
		t.Errorf("RootFile() = %q, want %q", got, want)
	}

	// Re-opening reuses the material: same certificates, files untouched.
	before := readFiles(t, dir)
	log, logs = newLogger()
	b, err := Open(dir, Options{Logger: log})
	if err != nil {
		t.Fatalf("re-Open: %v", err)
	}
	if !b.Root().Equal(root) || !b.Intermediate().Equal(inter) {
		t.Error("re-Open produced different certificates")
	}
	for name, data := range readFiles(t, dir) {
		if !bytes.Equal(data, before[name]) {
			t.Errorf("re-Open rewrote %s", name)
		}
	}
	if !strings.Contains(logs.String(), "loaded existing certificate authority material") {
		t.Errorf("log = %q, want the load line", logs.String())
	}
}

func TestOpenDirWithOtherFiles(t *testing.T) {
	// "Empty" means none of the four files: a lost+found or README does
	// not count.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if len(readFiles(t, dir)) != 4 {
		t.Fatal("material not generated")
	}
}

func TestOpenPartial(t *testing.T) {
	all := readFiles(t, generated(t))
	names := []string{rootCertFile, rootKeyFile, interCertFile, interKeyFile}
	for mask := 0; mask < 16; mask++ {
		files := make(map[string][]byte)
		var present []string
		for i, name := range names {
			if mask&(1<<i) != 0 {
				files[name] = all[name]
				present = append(present, name)
			}
		}
		t.Run(fmt.Sprintf("present=%s", strings.Join(present, "+")), func(t *testing.T) {
			dir := writeFiles(t, files)
			_, err := Open(dir, Options{})
			loadable := files[rootCertFile] != nil && files[interCertFile] != nil && files[interKeyFile] != nil
			switch {
			case len(files) == 0 || loadable:
				if err != nil {
					t.Fatalf("Open = %v, want success", err)
				}
				if err := Check(dir); err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
			default:
				if err == nil {
					t.Fatal("Open succeeded on partial material")
				}
				if !strings.Contains(err.Error(), "incomplete CA material") {
					t.Errorf("Open = %v, want incomplete CA material", err)
				}
				for _, name := range []string{rootCertFile, interCertFile, interKeyFile} {
					if files[name] == nil && !strings.Contains(err.Error(), name) {
						t.Errorf("Open = %v, does not name missing %s", err, name)
					}
				}
				if Check(dir) == nil {
					t.Error("Check accepted partial material")
				}
				// Nothing was generated over the partial material.
				if got := len(readFiles(t, dir)); got != len(files) {
					t.Errorf("directory now holds %d CA files, want %d", got, len(files))
				}
			}
		})
	}
}

func TestOpenKeyMode(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode fs.FileMode
		ok   bool
	}{
		{interKeyFile, 0o640, false},
		{interKeyFile, 0o604, false},
		{interKeyFile, 0o644, false},
		{rootKeyFile, 0o640, false},
		{rootKeyFile, 0o606, false},
		{interKeyFile, 0o400, true},
		{rootKeyFile, 0o400, true},
	} {
		t.Run(fmt.Sprintf("%s_%04o", tc.file, tc.mode), func(t *testing.T) {
			dir := generated(t)
			path := filepath.Join(dir, tc.file)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{})
			if tc.ok {
				if err != nil {
					t.Fatalf("Open = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Open accepted a group/other-readable key")
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600") {
				t.Errorf("Open = %v, want the file name and the chmod 600 fix", err)
			}
			if Check(dir) == nil {
				t.Error("Check accepted the key mode")
			}
		})
	}
}

// externalCA makes a root with its own key (P-384, another subject) and an
// intermediate it signs, as a company PKI would.
func externalCA(t *testing.T) (rootPEM, interPEM, interKeyPEM []byte, inter *x509.Certificate) {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber:          serialOrFatal(t),
		Subject:               pkix.Name{CommonName: "Corp Root", Organization: []string{"Corp"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	interKey, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          serialOrFatal(t),
		Subject:               pkix.Name{CommonName: "Corp Egress Proxy CA", Organization: []string{"Corp"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ = x509.ParseCertificate(interDER)
	// SEC 1 with an EC PARAMETERS block, as `openssl ecparam -genkey` writes.
	sec1, err := x509.MarshalECPrivateKey(interKey)
	if err != nil {
		t.Fatal(err)
	}
	interKeyPEM = append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	return encodeCert(rootDER), encodeCert(interDER), interKeyPEM, inter
}

func serialOrFatal(t *testing.T) *big.Int {
	t.Helper()
	n, err := serialNumber()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenExternalIntermediate(t *testing.T) {
	t.Run("generated without root.key", func(t *testing.T) {
		dir := generated(t)
		if err := os.Remove(filepath.Join(dir, rootKeyFile)); err != nil {
			t.Fatal(err)
		}
		a, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open = %v, want success without root.key", err)
		}
		cert, err := a.Leaf(context.Background(), "example.com")
		if err != nil {
			t.Fatal(err)
		}
		verifyLeaf(t, a, cert, "example.com", time.Now())
		if _, err := os.Stat(filepath.Join(dir, rootKeyFile)); err == nil {
			t.Error("Open recreated root.key")
		}
	})
	t.Run("corporate CA, SEC 1 key", func(t *testing.T) {
		rootPEM, interPEM, keyPEM, inter := externalCA(t)
		dir := writeFiles(t, map[string][]byte{rootCertFile: rootPEM, interCertFile: interPEM, interKeyFile: keyPEM})
		a, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		cert, err := a.Leaf(context.Background(), "api.example.com")
		if err != nil {
			t.Fatal(err)
		}
		verifyLeaf(t, a, cert, "api.example.com", time.Now())
		if !bytes.Equal(cert.Leaf.RawIssuer, inter.RawSubject) {
			t.Errorf("leaf issuer %v, want the loaded intermediate's subject %v", cert.Leaf.Issuer, inter.Subject)
		}
		if err := Check(dir); err != nil {
			t.Errorf("Check = %v", err)
		}
	})
}

func TestOpenRefusesBadMaterial(t *testing.T) {
	a := readFiles(t, generated(t))
	b := readFiles(t, generated(t))
	twoCerts := append(append([]byte{}, a[rootCertFile]...), a[interCertFile]...)
	for _, tc := range []struct {
		name    string
		replace map[string][]byte
		remove  string
		want    string
	}{
		{"intermediate from another root", map[string][]byte{interCertFile: b[interCertFile], interKeyFile: b[interKeyFile]}, "", "does not chain"},
		{"intermediate from another root, no root.key", map[string][]byte{interCertFile: b[interCertFile], interKeyFile: b[interKeyFile]}, rootKeyFile, "does not chain"},
		{"intermediate key mismatch", map[string][]byte{interKeyFile: b[interKeyFile]}, "", "intermediate.key does not match"},
		{"root key mismatch", map[string][]byte{rootKeyFile: b[rootKeyFile]}, "", "root.key does not match"},
		{"root.crt with two certificates", map[string][]byte{rootCertFile: twoCerts}, "", "more than one certificate"},
		{"garbage root.crt", map[string][]byte{rootCertFile: []byte("not a certificate\n")}, "", "no PEM block"},
		{"key in certificate file", map[string][]byte{interCertFile: a[interKeyFile]}, "", "want CERTIFICATE"},
		{"certificate in key file", map[string][]byte{interKeyFile: a[interCertFile]}, "", "want PRIVATE KEY"},
		{"empty key file", map[string][]byte{interKeyFile: nil}, "", "no private key"},
		{"two keys", map[string][]byte{interKeyFile: append(append([]byte{}, a[interKeyFile]...), a[interKeyFile]...)}, "", "more than one private key"},
		{"root signed by intermediate", map[string][]byte{rootCertFile: a[interCertFile]}, rootKeyFile, "does not chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := make(map[string][]byte)
			for k, v := range a {
				files[k] = v
			}
			for k, v := range tc.replace {
				files[k] = v
			}
			delete(files, tc.remove)
			dir := writeFiles(t, files)
			_, err := Open(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if err := Check(dir); err == nil {
				t.Error("Check accepted it")
			}
		})
	}
}

func TestRenewal(t *testing.T) {
	now := time.Now()
	t.Run("expiring, root.key present", func(t *testing.T) {
		dir := generated(t)
		old := craftIntermediate(t, dir, now.AddDate(0, 0, -355), now.AddDate(0, 0, 10))
		log, logs := newLogger()
		a, err := Open(dir, Options{Logger: log})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		inter := a.Intermediate()
		if inter.Equal(old) {
			t.Fatal("intermediate expiring in 10 days was not renewed")
		}
		if want := now.AddDate(1, 0, 0); inter.NotAfter.Sub(want).Abs() > time.Minute {
			t.Errorf("renewed NotAfter = %v, want about %v", inter.NotAfter, want)
		}
		if err := inter.CheckSignatureFrom(a.Root()); err != nil {
			t.Errorf("renewed intermediate does not chain to the same root: %v", err)
		}
		if !bytes.Equal(inter.RawSubject, old.RawSubject) {
			t.Errorf("renewed subject %v, want %v", inter.Subject, old.Subject)
		}
		if !strings.Contains(logs.String(), "renewed intermediate certificate") {
			t.Errorf("log = %q, want the renewal line", logs.String())
		}
		// The new material is on disk and loads without another renewal.
		b, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Intermediate().Equal(inter) {
			t.Error("renewed intermediate not persisted")
		}
		cert, err := b.Leaf(context.Background(), "example.com")
		if err != nil {
			t.Fatal(err)
		}
		verifyLeaf(t, b, cert, "example.com", time.Now())
		for _, name := range []string{interKeyFile} {
			fi, _ := os.Stat(filepath.Join(dir, name))
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %04o after renewal", name, fi.Mode().Perm())
			}
		}
	})
	t.Run("expired, root.key present", func(t *testing.T) {
		dir := generated(t)
		old := craftIntermediate(t, dir, now.AddDate(-1, 0, -1), now.AddDate(0, 0, -1))
		a, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if a.Intermediate().Equal(old) || !a.Intermediate().NotAfter.After(now) {
			t.Error("expired intermediate not renewed")
		}
	})
	t.Run("31 days left is kept", func(t *testing.T) {
		dir := generated(t)
		old := craftIntermediate(t, dir, now.AddDate(0, 0, -300), now.AddDate(0, 0, 31))
		a, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !a.Intermediate().Equal(old) {
			t.Error("intermediate with 31 days left was renewed")
		}
	})
	t.Run("expiring, no root.key: warning", func(t *testing.T) {
		dir := generated(t)
		old := craftIntermediate(t, dir, now.AddDate(0, 0, -355), now.AddDate(0, 0, 10))
		os.Remove(filepath.Join(dir, rootKeyFile))
		log, logs := newLogger()
		a, err := Open(dir, Options{Logger: log})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !a.Intermediate().Equal(old) {
			t.Error("intermediate changed without root.key")
		}
		if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "root.key is absent") {
			t.Errorf("log = %q, want a warning about the missing root.key", s)
		}
	})
	t.Run("expired, no root.key: refused", func(t *testing.T) {
		dir := generated(t)
		craftIntermediate(t, dir, now.AddDate(-1, 0, -1), now.AddDate(0, 0, -1))
		os.Remove(filepath.Join(dir, rootKeyFile))
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("Open = %v, want an expired-intermediate error", err)
		}
		if Check(dir) == nil {
			t.Error("Check accepted an expired intermediate it cannot renew")
		}
	})
}
