package server

import "testing"

// The forwarding transport follows the node's own HTTP address: TLS when
// it serves TLS, trusting the client CA; plain otherwise.
func TestForwardSchemeFollowsHTTPTLS(t *testing.T) {
	plain := newHTTPAPI(&Server{})
	if plain.forwardScheme() != "http" || plain.forward.TLSClientConfig != nil {
		t.Fatalf("plain node: scheme %s, TLS %v", plain.forwardScheme(), plain.forward.TLSClientConfig)
	}
	s := &Server{}
	s.cfg.HTTPTLSCertFile, s.cfg.HTTPTLSKeyFile = "c", "k"
	a := newHTTPAPI(s)
	if a.forwardScheme() != "https" || a.forward.TLSClientConfig == nil {
		t.Fatalf("TLS node: scheme %s, TLS %v", a.forwardScheme(), a.forward.TLSClientConfig)
	}
}
