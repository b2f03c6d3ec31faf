package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/server"
)

// Without peer TLS, a raft address other hosts could reach is refused
// before anything is opened, with an error that says why and what to do.
func TestStartRefusesPlainRaftOffLoopback(t *testing.T) {
	for _, tc := range []struct{ name, raft, advertise, flag string }{
		{"every IPv4 interface", "0.0.0.0:7401", "", "--raft"},
		{"every IPv6 interface", "[::]:7401", "", "--raft"},
		{"no host", ":7401", "", "--raft"},
		{"a routable address", "192.0.2.1:7401", "", "--raft"},
		{"a host name that does not resolve to loopback", "tenantkv-no-such-host.invalid:7401", "", "--raft"},
		{"a routable advertised address", "127.0.0.1:0", "192.0.2.1:7401", "--raft-advertise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, err := server.Start(t.Context(), server.Config{
				DataDir: dir, ListenAddr: "127.0.0.1:0", HTTPAddr: "-",
				RaftAddr: tc.raft, RaftAdvertiseAddr: tc.advertise,
			})
			require.ErrorIs(t, err, server.ErrInsecurePeers)
			for _, want := range []string{tc.flag + " ", "--peer-tls-cert", "--peer-tls-key", "--peer-tls-ca", "--insecure-peers", "forge"} {
				require.Contains(t, err.Error(), want)
			}
			t.Log(err)
			_, statErr := os.Stat(dir)
			require.True(t, errors.Is(statErr, os.ErrNotExist), "the data directory was created before the refusal")
		})
	}
}

func TestConfigValidatePeerTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  server.Config
		ok   bool
	}{
		{"none", server.Config{}, true},
		{"all three", server.Config{PeerTLSCertFile: "c", PeerTLSKeyFile: "k", PeerTLSCAFile: "ca"}, true},
		{"insecure peers alone", server.Config{InsecurePeers: true}, true},
		{"certificate only", server.Config{PeerTLSCertFile: "c"}, false},
		{"no CA", server.Config{PeerTLSCertFile: "c", PeerTLSKeyFile: "k"}, false},
		{"CA only", server.Config{PeerTLSCAFile: "ca"}, false},
		{"all three and insecure peers", server.Config{PeerTLSCertFile: "c", PeerTLSKeyFile: "k", PeerTLSCAFile: "ca", InsecurePeers: true}, false},
	} {
		err := tc.cfg.Validate()
		if tc.ok {
			require.NoError(t, err, tc.name)
		} else {
			require.Error(t, err, tc.name)
		}
	}
}

// A node certificate that the other nodes would refuse (another CA, or no
// clientAuth usage) fails Start with an error naming the files.
func TestStartRefusesPeerCertificateOfAnotherCA(t *testing.T) {
	dir := t.TempDir()
	caFile, _, _ := writeTestCA(t, dir, "ca")
	_, otherCert, otherKey := writeTestCA(t, dir, "other")
	certFile, keyFile := writeTestLeaf(t, dir, otherCert, otherKey, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	_, err := server.Start(t.Context(), server.Config{
		DataDir: filepath.Join(dir, "data"), ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		PeerTLSCertFile: certFile, PeerTLSKeyFile: keyFile, PeerTLSCAFile: caFile,
	})
	require.ErrorContains(t, err, "does not verify against the cluster CA")

	_, caCert, caKey := writeTestCA(t, dir, "ca2")
	certFile, keyFile = writeTestLeaf(t, dir, caCert, caKey, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	_, err = server.Start(context.Background(), server.Config{
		DataDir: filepath.Join(dir, "data2"), ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		PeerTLSCertFile: certFile, PeerTLSKeyFile: keyFile, PeerTLSCAFile: filepath.Join(dir, "ca2.pem"),
	})
	require.ErrorContains(t, err, "clientAuth")
}

func writeTestCA(t *testing.T, dir, name string) (file string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	file = filepath.Join(dir, name+".pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return file, cert, key
}

func writeTestLeaf(t *testing.T, dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usages []x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	base := filepath.Join(dir, ca.Subject.CommonName+"-node")
	require.NoError(t, os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return base + ".crt", base + ".key"
}
