package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantkv/tenantkv/internal/testpki"
)

// TestE2EPeerTLS runs three `tenantkv serve` processes with peer TLS: they
// join and replicate over mutual TLS; a node with a certificate of another
// CA cannot join; and without peer TLS a raft address that is not loopback
// is refused with an error that names the flags.
func TestE2EPeerTLS(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	peerFlags := func(ca *testpki.CA, name string) []string {
		t.Helper()
		f, err := ca.WriteFiles(dir, name, testpki.Leaf{})
		if err != nil {
			t.Fatal(err)
		}
		return []string{"--peer-tls-cert", f.Cert, "--peer-tls-key", f.Key, "--peer-tls-ca", f.CA}
	}
	ca, err := testpki.NewCA("cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	n1 := startNode(t, filepath.Join(dir, "n1"), "n1", peerFlags(ca, "n1")...)
	tokenFile := filepath.Join(n1.dataDir, "operator.token")
	nodes := []*nodeProc{n1}
	for _, id := range []string{"n2", "n3"} {
		args := append([]string{"--join", n1.addr, "--token-file", tokenFile}, peerFlags(ca, id)...)
		nodes = append(nodes, startNode(t, filepath.Join(dir, id), id, args...))
	}
	var endpoints []string
	for _, n := range nodes {
		endpoints = append(endpoints, n.addr)
	}
	c := &clusterCLI{t: t, endpoints: endpoints, tokenFile: tokenFile}
	if st := c.status(); len(st.Members) != 3 {
		t.Fatalf("members %+v, want 3", st.Members)
	}
	c.ok("tenant", "create", "acme")
	c.ok("--tenant", "acme", "put", "k", "v")
	for _, n := range nodes {
		one := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: tokenFile}
		if out := one.ok("--tenant", "acme", "get", "k"); out != "v\n" {
			t.Errorf("get through %s: %q", n.name, out)
		}
	}

	other, err := testpki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--data", filepath.Join(dir, "rogue"), "--node-id", "rogue",
		"--listen", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--http", "-",
		"--join", n1.addr, "--token-file", tokenFile}, peerFlags(other, "rogue")...)
	r := tkv(t, "", nil, "", args...)
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("a node with a certificate of another CA: %v", r)
	}
	if st := c.status(); len(st.Members) != 3 {
		t.Errorf("members after the refused join: %+v", st.Members)
	}

	r = tkv(t, "", nil, "", "serve", "--data", filepath.Join(dir, "plain"), "--listen", "127.0.0.1:0",
		"--raft", "0.0.0.0:7401", "--http", "-")
	for _, want := range []string{"--raft 0.0.0.0:7401", "--peer-tls-cert", "--insecure-peers"} {
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("plain raft on 0.0.0.0: want exit 1 and %q: %v", want, r)
		}
	}
}
