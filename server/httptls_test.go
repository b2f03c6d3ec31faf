package server_test

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/testpki"
	"github.com/tenantkv/tenantkv/server"
)

// TestHTTPOverTLS: with --http-tls-cert and --http-tls-key the HTTP address
// (API, health, metrics) speaks TLS only: a client that trusts the CA is
// served, a plain HTTP request is refused, and a certificate without its
// key is refused at start.
func TestHTTPOverTLS(t *testing.T) {
	ca, err := testpki.NewCA("tenantkv http test CA")
	require.NoError(t, err)
	files, err := ca.WriteFiles(t.TempDir(), "http", testpki.Leaf{})
	require.NoError(t, err)
	s, op := startNodeWith(t, func(c *server.Config) {
		c.HTTPTLSCertFile, c.HTTPTLSKeyFile = files.Cert, files.Key
	})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}}
	c := &httpc{t: t, base: "https://" + s.HTTPAddr(), token: op, hc: hc}
	tok := c.tenantWithToken("acme", nil, false)
	c.with(tok).must(http.StatusOK, "PUT", keyPath("acme", []byte("k")), []byte("over tls"))
	require.Equal(t, "over tls", string(c.with(tok).must(http.StatusOK, "GET", keyPath("acme", []byte("k")), nil).body))
	resp, err := hc.Get("https://" + s.HTTPAddr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// Plain HTTP to the TLS address: Go's TLS server answers 400.
	plain, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + s.HTTPAddr() + "/readyz")
	if err == nil {
		plain.Body.Close()
		require.Equal(t, http.StatusBadRequest, plain.StatusCode)
	}

	cfg := server.Config{DataDir: t.TempDir(), HTTPTLSCertFile: files.Cert}
	require.ErrorContains(t, cfg.Validate(), "TLS on the HTTP address needs both")
}
