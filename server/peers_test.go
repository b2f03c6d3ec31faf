package server_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/testpki"
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
	ca, err := testpki.NewCA("ca")
	require.NoError(t, err)
	other, err := testpki.NewCA("other")
	require.NoError(t, err)
	good, err := ca.WriteFiles(dir, "good", testpki.Leaf{})
	require.NoError(t, err)
	foreign, err := other.WriteFiles(dir, "foreign", testpki.Leaf{})
	require.NoError(t, err)
	_, err = server.Start(t.Context(), server.Config{
		DataDir: filepath.Join(dir, "data"), ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		PeerTLSCertFile: foreign.Cert, PeerTLSKeyFile: foreign.Key, PeerTLSCAFile: good.CA,
	})
	require.ErrorContains(t, err, "does not verify against the cluster CA")

	serverOnly, err := ca.WriteFiles(dir, "server-only", testpki.Leaf{Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	require.NoError(t, err)
	_, err = server.Start(t.Context(), server.Config{
		DataDir: filepath.Join(dir, "data2"), ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		PeerTLSCertFile: serverOnly.Cert, PeerTLSKeyFile: serverOnly.Key, PeerTLSCAFile: serverOnly.CA,
	})
	require.ErrorContains(t, err, "clientAuth")
}

// InsecurePeers lets a node advertise a raft address other hosts could
// reach without peer TLS (here only advertised: tests bind loopback only).
func TestStartInsecurePeersAllowsPlainRaftOffLoopback(t *testing.T) {
	srv, err := server.Start(t.Context(), server.Config{
		DataDir: filepath.Join(t.TempDir(), "data"), ListenAddr: "127.0.0.1:0", HTTPAddr: "-",
		RaftAddr: "127.0.0.1:0", RaftAdvertiseAddr: "192.0.2.1:7401", InsecurePeers: true, Raft: fastRaft,
	})
	require.NoError(t, err)
	defer srv.Close()
	require.Equal(t, "192.0.2.1:7401", srv.RaftAddr())
}
