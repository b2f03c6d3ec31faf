package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/tenantkv/tenantkv/raft"
)

// Authenticated peers.
//
// With peer TLS (Config.PeerTLS*), raft runs over mutual TLS: package raft
// accepts a raft connection only from a certificate of the cluster CA and
// dials only peers presenting one for the address dialled. Snapshots travel
// over the same transport, so they are covered.
//
// A join is the operator's request (the operator token, over the client
// port, as without peer TLS) to add a raft address to the cluster; with
// peer TLS the member that handles it first dials that address over the
// peer TLS (raft.Node.CheckPeer) and refuses the join unless the node there
// completes a mutual handshake with a certificate of the cluster CA for that
// address. So only a holder of a cluster certificate becomes a member, even
// for whoever holds an operator token, and no new protocol or port is
// needed: the join request itself carries nothing a peer could not be told
// by the operator anyway, and all the raft traffic that follows is mutual
// TLS. A certificate is not tied to a node ID: any cluster certificate
// serves any node; revoke by replacing the CA (docs/OPERATIONS.md).
//
// Without peer TLS, raft is plain TCP: whoever reaches the raft port can
// forge messages (a higher term, a log entry with an operator token of their
// choosing) and every node would replicate them. Start therefore refuses a
// raft address other hosts could reach, unless Config.InsecurePeers.

// peerTLSFlags names the configuration in errors, as operators set it.
const peerTLSFlags = "--peer-tls-cert, --peer-tls-key and --peer-tls-ca"

// validatePeerTLS checks that the peer TLS files come all three or none.
func (c *Config) validatePeerTLS() error {
	n := 0
	for _, f := range []string{c.PeerTLSCertFile, c.PeerTLSKeyFile, c.PeerTLSCAFile} {
		if f != "" {
			n++
		}
	}
	switch {
	case n != 0 && n != 3:
		return fmt.Errorf("server: peer TLS needs all three of a certificate, its key and the cluster CA (%s)", peerTLSFlags)
	case n == 3 && c.InsecurePeers:
		return errors.New("server: --insecure-peers contradicts peer TLS: with --peer-tls-* every raft connection is authenticated")
	}
	return nil
}

// loadPeerTLS reads the node's peer certificate and the cluster CA, and
// checks that the certificate is one the other nodes will accept: signed by
// the CA and usable for both server and client authentication. It returns
// nil without peer TLS.
func loadPeerTLS(cfg *Config) (*raft.PeerTLS, error) {
	if cfg.PeerTLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.PeerTLSCertFile, cfg.PeerTLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("server: peer tls: %w", err)
	}
	pem, err := os.ReadFile(cfg.PeerTLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("server: peer tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("server: peer tls ca: no certificates found in %s", cfg.PeerTLSCAFile)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("server: peer tls: %w", err)
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, u := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u.usage}})
		if err != nil {
			return nil, fmt.Errorf("server: peer tls: %s does not verify against the cluster CA %s for %s (a node certificate needs extendedKeyUsage serverAuth and clientAuth): %w",
				cfg.PeerTLSCertFile, cfg.PeerTLSCAFile, u.name, err)
		}
	}
	return &raft.PeerTLS{Certificate: cert, CAs: pool}, nil
}

// resolveTimeout bounds the lookup of a raft host name.
const resolveTimeout = 5 * time.Second

// checkPeerAddrs refuses, without peer TLS and without InsecurePeers, a raft
// address (bound or advertised) that another host could reach.
func checkPeerAddrs(ctx context.Context, cfg *Config) error {
	if cfg.PeerTLSCertFile != "" || cfg.InsecurePeers {
		return nil
	}
	for _, a := range []struct{ flag, addr string }{
		{"--raft", cfg.RaftAddr}, {"--raft-advertise", cfg.RaftAdvertiseAddr},
	} {
		if a.addr == "" {
			continue
		}
		if err := requireLoopback(ctx, a.addr); err != nil {
			return fmt.Errorf("%w: %s %s: %v; without peer TLS anyone who can reach the raft port can forge raft messages "+
				"(a forged log entry can mint an operator token). Give %s (docs/OPERATIONS.md shows how to make them), "+
				"use a loopback address such as 127.0.0.1, or pass --insecure-peers if only trusted hosts can reach it",
				ErrInsecurePeers, a.flag, a.addr, err, peerTLSFlags)
		}
	}
	return nil
}

// requireLoopback returns nil if every address host:port names is a
// loopback address (127.0.0.0/8, ::1), else why not.
func requireLoopback(ctx context.Context, hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("listens on every interface")
	}
	if ip := net.ParseIP(host); ip != nil {
		switch {
		case ip.IsUnspecified():
			return errors.New("listens on every interface")
		case !ip.IsLoopback():
			return errors.New("is not a loopback address")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("does not resolve (%v)", err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("resolves to %s, which is not a loopback address", ip.IP)
		}
	}
	return nil
}
