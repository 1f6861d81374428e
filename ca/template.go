package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// Names and lifetimes of the generated material (SPEC §7; reference §9.2).
const (
	rootCommonName         = "ExfilGuard Root CA"
	intermediateCommonName = "ExfilGuard Intermediate CA"

	rootYears         = 10
	intermediateYears = 1

	// caBackdate moves a CA certificate's notBefore into the past so that
	// a client whose clock runs behind still accepts it. It only has to
	// cover the leaves' own backdate.
	caBackdate = time.Hour
	// leafBackdate does the same for leaves: five minutes absorbs ordinary
	// clock skew between the proxy and its clients. Leaves shorter than
	// that are backdated by their TTL instead, so the renewal margin (a
	// tenth of the whole validity) never exceeds the forward part.
	leafBackdate = 5 * time.Minute

	// maxCommonName is ub-common-name (RFC 5280 Appendix A.1): a longer
	// host goes into the SAN only.
	maxCommonName = 64
)

// serialLimit is 2^128: serials are 128 random bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newKey makes the P-256 key every generated certificate uses.
func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// serialNumber returns a random positive serial of at most 128 bits.
// RFC 5280 §4.1.2.2: positive, unique per issuer, at most 20 octets. With
// 128 random bits a collision is negligible, and the serial is the
// unpredictable value the CA/Browser Forum asks for (at least 64 bits from
// a CSPRNG) so a chosen-prefix collision on the signature is impractical.
func serialNumber() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 { // zero is not positive
			return n, nil
		}
	}
}

// keyID computes a subject key identifier: the SHA-256 of the
// subjectPublicKey BIT STRING truncated to 160 bits (RFC 7093 §2, method 1;
// RFC 5280 §4.2.1.2 leaves the method open).
func keyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// rootTemplate describes the self-signed root. The signature algorithm is
// left to crypto/x509, which picks ecdsa-with-SHA256 for a P-256 key (RFC
// 5758 §3.2).
func rootTemplate(pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(pub)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		// RFC 5280 §4.1.2.2: see serialNumber.
		SerialNumber: serial,
		// RFC 5280 §4.1.2.6: a CA's subject must be a non-empty name; it
		// is also the issuer name of everything the root signs (§4.1.2.4).
		Subject: pkix.Name{CommonName: rootCommonName},
		// RFC 5280 §4.1.2.5: backdated for clients whose clocks run behind.
		NotBefore: now.Add(-caBackdate),
		// Ten years (SPEC §7): the root is what clients are asked to
		// trust, so it should outlive many intermediates.
		NotAfter: now.AddDate(rootYears, 0, 0),
		// RFC 5280 §4.2.1.9: cA=TRUE is what makes this a CA whose public
		// key verifies certificate signatures; crypto/x509 marks the
		// extension critical, as §4.2.1.9 requires for such certificates.
		BasicConstraintsValid: true,
		IsCA:                  true,
		// RFC 5280 §4.2.1.9 pathLenConstraint 1: one intermediate may
		// follow the root, and that intermediate may sign only leaves.
		MaxPathLen: 1,
		// RFC 5280 §4.2.1.3: keyCertSign is required to sign certificates
		// (and must be set whenever cA is TRUE); cRLSign keeps the door
		// open for revoking an intermediate. Written as critical.
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// RFC 5280 §4.2.1.2: CA certificates MUST carry a subject key
		// identifier; path builders match it with the issued
		// certificates' authority key identifier. The authority key
		// identifier itself (§4.2.1.1) may be omitted in a self-signed
		// certificate, and crypto/x509 omits it.
		SubjectKeyId: ski,
	}, nil
}

// intermediateTemplate describes an intermediate signed by root. A
// non-empty rawSubject (a renewed intermediate) keeps the old subject
// name so the CA's names stay stable; otherwise the default name is used.
func intermediateTemplate(pub crypto.PublicKey, root *x509.Certificate, rawSubject []byte, now time.Time) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	ski, err := keyID(pub)
	if err != nil {
		return nil, err
	}
	notAfter := now.AddDate(intermediateYears, 0, 0)
	if notAfter.After(root.NotAfter) {
		// An intermediate cannot usefully outlive its issuer: clients
		// stop accepting the chain when the root expires.
		notAfter = root.NotAfter
	}
	return &x509.Certificate{
		// RFC 5280 §4.1.2.2: see serialNumber.
		SerialNumber: serial,
		// RFC 5280 §4.1.2.6: non-empty for a CA; it is the issuer name of
		// every leaf (§4.1.2.4).
		Subject: pkix.Name{CommonName: intermediateCommonName},
		// A renewal keeps the old DER-encoded name byte for byte
		// (crypto/x509 prefers RawSubject over Subject when set), so the
		// issuer name clients and logs see does not change.
		RawSubject: rawSubject,
		// RFC 5280 §4.1.2.5: backdated for clients whose clocks run behind.
		NotBefore: now.Add(-caBackdate),
		// One year (SPEC §7), never past the root: a short-lived signing
		// key limits the damage of a leak; Open renews it.
		NotAfter: notAfter,
		// RFC 5280 §4.2.1.9: cA=TRUE lets the intermediate sign leaves;
		// critical, as for the root.
		BasicConstraintsValid: true,
		IsCA:                  true,
		// RFC 5280 §4.2.1.9 pathLenConstraint 0: only end-entity
		// certificates may follow, so a leaked leaf key can never act as a
		// CA. MaxPathLenZero is how crypto/x509 writes an explicit 0.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		// RFC 5280 §4.2.1.3: keyCertSign to sign leaves; cRLSign as for
		// the root.
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// RFC 5280 §4.2.1.2: required for a CA; matched by the leaves'
		// authority key identifier.
		SubjectKeyId: ski,
		// RFC 5280 §4.2.1.1: MUST be present in certificates a CA issues
		// (other than self-signed ones) so path builders pick the right
		// root key. crypto/x509 copies it from the parent's subject key
		// identifier; set here too so the intent is on the page.
		AuthorityKeyId: root.SubjectKeyId,
	}, nil
}

// leafTemplate describes the leaf for name (already canonical: lower case,
// no brackets, no trailing dot). addr is valid when name is an IP literal.
func leafTemplate(name string, addr netip.Addr, issuer *x509.Certificate, ttl time.Duration, now time.Time) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	backdate := min(leafBackdate, ttl)
	notAfter := now.Add(ttl)
	if notAfter.After(issuer.NotAfter) {
		// A leaf outliving its issuer would fail verification anyway.
		notAfter = issuer.NotAfter
	}
	t := &x509.Certificate{
		// RFC 5280 §4.1.2.2: see serialNumber.
		SerialNumber: serial,
		// RFC 5280 §4.1.2.5: backdated for client clock skew; valid for
		// leaf_ttl from now (SPEC §7).
		NotBefore: now.Add(-backdate),
		NotAfter:  notAfter,
		// RFC 5280 §4.2.1.3: a TLS server key only signs handshakes
		// (ECDHE; RFC 8446 §4.4.3). keyEncipherment is meaningless for an
		// ECDSA key.
		KeyUsage: x509.KeyUsageDigitalSignature,
		// RFC 5280 §4.2.1.12: restricts the key to TLS server
		// authentication, which is all a bumped tunnel needs.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// RFC 5280 §4.2.1.1: the intermediate's key identifier, so clients
		// find the issuer key; crypto/x509 copies it from the parent.
		AuthorityKeyId: issuer.SubjectKeyId,
		// No basicConstraints: RFC 5280 §4.2.1.9 lets end-entity
		// certificates omit it, and absence means "not a CA". No subject
		// key identifier either: nothing chains to a leaf, and the
		// CA/Browser Forum profile does not recommend one for subscriber
		// certificates (RFC 5280 §4.2.1.2 makes it a SHOULD only).
	}
	if len(name) <= maxCommonName {
		// RFC 5280 §4.1.2.6 allows an empty subject when the SAN is
		// present, and clients match the SAN (RFC 6125 §6.4.4). The CN is
		// kept for old clients that still read it.
		t.Subject = pkix.Name{CommonName: name}
	}
	// RFC 5280 §4.2.1.6: exactly one name, the CONNECT host — an iPAddress
	// entry for an IP literal, a dNSName otherwise (RFC 6125 §6.2.1, §6.4).
	// crypto/x509 takes net.IP here.
	if addr.IsValid() {
		t.IPAddresses = []net.IP{addr.AsSlice()}
	} else {
		t.DNSNames = []string{name}
	}
	return t, nil
}
