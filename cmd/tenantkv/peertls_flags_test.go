package main

import (
	"errors"
	"strings"
	"testing"
)

func TestServePeerTLSFlags(t *testing.T) {
	env := envMap("TENANTKV_PEER_TLS_CERT", "node.crt", "TENANTKV_PEER_TLS_KEY", "node.key", "TENANTKV_PEER_TLS_CA", "ca.crt")
	cfg, err := serveConfig(t, env, "--peer-tls-ca", "other-ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PeerTLSCertFile != "node.crt" || cfg.PeerTLSKeyFile != "node.key" || cfg.PeerTLSCAFile != "other-ca.crt" || cfg.InsecurePeers {
		t.Errorf("peer TLS %q %q %q, insecure %v (flags win over the environment)", cfg.PeerTLSCertFile, cfg.PeerTLSKeyFile, cfg.PeerTLSCAFile, cfg.InsecurePeers)
	}

	cfg, err = serveConfig(t, envMap("TENANTKV_INSECURE_PEERS", "true"))
	if err != nil || !cfg.InsecurePeers {
		t.Errorf("TENANTKV_INSECURE_PEERS=true: %v, %v", cfg.InsecurePeers, err)
	}
	cfg, err = serveConfig(t, envMap("TENANTKV_INSECURE_PEERS", "true"), "--insecure-peers=false")
	if err != nil || cfg.InsecurePeers {
		t.Errorf("--insecure-peers=false over the environment: %v, %v", cfg.InsecurePeers, err)
	}
	cfg, err = serveConfig(t, envMap())
	if err != nil || cfg.InsecurePeers || cfg.PeerTLSCertFile != "" {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}

	var ue *usageError
	for _, tc := range []struct {
		env  func(string) string
		args []string
		want string
	}{
		{envMap(), []string{"--peer-tls-cert", "c.crt"}, "peer TLS needs all three"},
		{envMap("TENANTKV_PEER_TLS_CERT", "c.crt", "TENANTKV_PEER_TLS_KEY", "c.key"), nil, "--peer-tls-ca"},
		{env, []string{"--insecure-peers"}, "--insecure-peers contradicts peer TLS"},
		{envMap("TENANTKV_INSECURE_PEERS", "maybe"), nil, `TENANTKV_INSECURE_PEERS: "maybe" is not true or false`},
	} {
		_, err := serveConfig(t, tc.env, tc.args...)
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}

	code, stdout, stderr := runCLI(t, envMap(), "", "help", "serve")
	if code != 0 || stderr != "" {
		t.Fatalf("help serve: exit %d, %s", code, stderr)
	}
	for _, w := range []string{"--peer-tls-cert FILE", "--peer-tls-key FILE", "--peer-tls-ca FILE", "--insecure-peers", "TENANTKV_PEER_TLS_CERT", "TENANTKV_INSECURE_PEERS"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("help serve does not mention %s", w)
		}
	}
}
