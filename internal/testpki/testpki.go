// Package testpki makes certificate authorities and node certificates at
// test time, so that tests of TLS need no committed key material. It is for
// tests only: keys are ECDSA P-256, certificates last a day.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority. Its methods are safe for concurrent use.
type CA struct {
	// Cert is the CA's self-signed certificate, and PEM its encoding.
	Cert *x509.Certificate
	PEM  []byte
	key  *ecdsa.PrivateKey
}

// NewCA returns a new CA named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// SelfSigned returns the CA's own certificate and key as a TLS certificate:
// a self-signed certificate, such as an attacker can make.
func (ca *CA) SelfSigned() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{ca.Cert.Raw}, PrivateKey: ca.key}
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a certificate to issue. The zero Leaf is a node
// certificate for 127.0.0.1, ::1 and localhost, for both server and client
// authentication.
type Leaf struct {
	IPs    []net.IP
	DNS    []string
	Usages []x509.ExtKeyUsage
}

// IssuePEM issues a certificate named name and returns it and its key, PEM.
func (ca *CA) IssuePEM(name string, l Leaf) (certPEM, keyPEM []byte, err error) {
	if l.IPs == nil && l.DNS == nil {
		l.IPs, l.DNS = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, []string{"localhost"}
	}
	if l.Usages == nil {
		l.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.Usages,
		IPAddresses:  l.IPs,
		DNSNames:     l.DNS,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// Issue is IssuePEM as a TLS certificate.
func (ca *CA) Issue(name string, l Leaf) (tls.Certificate, error) {
	c, k, err := ca.IssuePEM(name, l)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(c, k)
}

// Files is a node's certificate, key and CA, written to files.
type Files struct{ Cert, Key, CA string }

// WriteFiles issues a certificate named name and writes it, its key and
// the CA certificate into dir (mode 0600), under names that start with
// prefix.
func (ca *CA) WriteFiles(dir, prefix string, l Leaf) (Files, error) {
	c, k, err := ca.IssuePEM(prefix, l)
	if err != nil {
		return Files{}, err
	}
	f := Files{
		Cert: filepath.Join(dir, prefix+".crt"),
		Key:  filepath.Join(dir, prefix+".key"),
		CA:   filepath.Join(dir, prefix+"-ca.crt"),
	}
	for _, w := range []struct {
		path string
		b    []byte
	}{{f.Cert, c}, {f.Key, k}, {f.CA, ca.PEM}} {
		if err := os.WriteFile(w.path, w.b, 0o600); err != nil {
			return Files{}, fmt.Errorf("testpki: %w", err)
		}
	}
	return f, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}
