package main

// End-to-end tests of TLS (client commands and joining) and of serve's raft
// flags, with real processes.

import (
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
	"slices"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue writes a certificate signed by ca, for 127.0.0.1 when server, and
// its key; it returns their files.
func (ca *testCA) issue(t *testing.T, dir, name string, serial int64, usage ...x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestE2ETLS runs a cluster whose nodes require client certificates: client
// commands reach it with --tls-ca, --tls-cert and --tls-key (or their
// environment variables), and a second node joins it over TLS.
func TestE2ETLS(t *testing.T) {
	skipShort(t)
	t.Parallel()
	pki := t.TempDir()
	ca := newTestCA(t, pki, "ca")
	// A node's certificate serves clients and authenticates it to the
	// members it joins.
	nodeCert, nodeKey := ca.issue(t, pki, "node", 2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	clientCert, clientKey := ca.issue(t, pki, "client", 3, x509.ExtKeyUsageClientAuth)
	other := newTestCA(t, pki, "other-ca")
	tlsServe := []string{"--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-ca", ca.file}

	d1 := t.TempDir()
	n1 := startNode(t, d1, "t1", tlsServe...)
	tokenFile := filepath.Join(d1, "operator.token")
	c := &clusterCLI{t: t, endpoints: []string{n1.addr}, tokenFile: tokenFile,
		env: []string{"TENANTKV_TLS_CA=" + ca.file, "TENANTKV_TLS_CERT=" + clientCert, "TENANTKV_TLS_KEY=" + clientKey}}
	if out := c.ok("tenant", "create", "acme"); !strings.HasPrefix(out, "created tenant acme (id ") {
		t.Errorf("tenant create over TLS: %q", out)
	}
	c.ok("--tenant", "acme", "put", "hello", "world")

	// The same with flags instead of the environment.
	flags := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: tokenFile}
	if out := flags.ok("--tls-ca", ca.file, "--tenant", "acme", "get", "hello", "--tls-cert", clientCert, "--tls-key", clientKey); out != "world\n" {
		t.Errorf("get with TLS flags: %q", out)
	}
	// Without TLS, without a client certificate, or trusting another CA,
	// the node cannot be reached.
	flags.fails(1, "tenantkv: unavailable", "--tenant", "acme", "get", "hello")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-ca", ca.file}, "tls: certificate required"},
		{[]string{"--tls-ca", other.file, "--tls-cert", clientCert, "--tls-key", clientKey}, "certificate signed by unknown authority"},
		{[]string{"--tls-ca", filepath.Join(pki, "missing.pem")}, "--tls-ca: open "},
	} {
		r := flags.run("", append(tt.args, "--tenant", "acme", "get", "hello")...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("tenantkv %q get: %v; want exit 1 and %q", tt.args, r, tt.want)
		}
	}
	flags.fails(2, "tenantkv: --tls-cert and --tls-key go together", "--tls-cert", clientCert, "cluster", "status")

	// A second node joins over TLS, verifying the first with the CA.
	n2 := startNode(t, t.TempDir(), "t2", append(tlsServe, "--join", n1.addr, "--token-file", tokenFile)...)
	via2 := &clusterCLI{t: t, endpoints: []string{n2.addr}, tokenFile: tokenFile, env: c.env}
	if got := memberIDs(via2.status()); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("members after the TLS join: %v", got)
	}
	if out := via2.ok("--tenant", "acme", "get", "hello"); out != "world\n" {
		t.Errorf("get through the joined node: %q", out)
	}
	via2.ok("--tenant", "acme", "put", "from", "t2")

	// A node that does not trust the members' certificates gives up at
	// once instead of retrying for ever.
	var err error
	for attempt := 1; attempt <= 3; attempt++ { // again on other ports if one was taken
		ports := freePorts(t, 3)
		args := []string{binPath, "serve", "--data", t.TempDir(), "--node-id", "t3", "--listen", ports[0], "--raft", ports[1],
			"--http", ports[2], "--tls-cert", nodeCert, "--tls-key", nodeKey, "--tls-ca", other.file,
			"--join", n1.addr, "--token-file", tokenFile}
		n3 := launch(t, "t3", t.TempDir(), childEnv(), shellJoin(args))
		if err = n3.waitReady(t.Context()); !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "over TLS") || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("joining with a CA that does not sign the members' certificates: %v", err)
	}

	// Removing a node that is not a member fails; removing one that is
	// works.
	c.fails(1, "tenantkv: member not found: t3", "cluster", "remove", "t3")
	if out := c.ok("cluster", "remove", "t2"); out != "removed node t2\n" {
		t.Errorf("cluster remove t2: %q", out)
	}
	c.fails(1, "tenantkv: member not found: t2", "cluster", "remove", "t2")
}

// TestE2ERaftFlags starts a node with serve's raft flags: the advertised
// raft address is the member's, short timeouts work (the leader lease is cut
// to fit), and snapshots follow --snapshot-interval and --snapshot-threshold
// (with raft's default interval of 2 minutes, none would appear in time).
func TestE2ERaftFlags(t *testing.T) {
	skipShort(t)
	t.Parallel()
	advertise := freePorts(t, 1)[0]
	dataDir := t.TempDir()
	n := startNode(t, dataDir, "r1", "--raft-advertise", advertise, "--heartbeat-timeout", "200ms",
		"--election-timeout", "300ms", "--snapshot-interval", "100ms", "--snapshot-threshold", "8")
	c := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: filepath.Join(dataDir, "operator.token")}
	st := c.status()
	if len(st.Members) != 1 || st.Members[0].RaftAddr != advertise {
		t.Errorf("members %+v, want one with raft address %s", st.Members, advertise)
	}

	snapshots := func() []os.DirEntry {
		entries, err := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return entries
	}
	c.ok("tenant", "create", "acme")
	for i := range 10 {
		c.ok("--tenant", "acme", "put", "k", strings.Repeat("v", i))
	}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for len(snapshots()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot in %s within %v of 11 writes", filepath.Join(dataDir, "raft", "snapshots"), readyTimeout)
		}
		<-tick.C
	}
}
