package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Defaults of the global flags.
const (
	defaultEndpoints = "127.0.0.1:7400"
	defaultTimeout   = 10 * time.Second
	// defaultTokenFile is read when no token is given in any other way: it
	// is where `tenantkv serve` (and `make run`) leaves the operator token
	// of a cluster bootstrapped in the current directory.
	defaultTokenFile = "data/operator.token"
)

// Environment variables of the global flags.
const (
	envEndpoints = "TENANTKV_ENDPOINTS"
	envToken     = "TENANTKV_TOKEN"
	envTokenFile = "TENANTKV_TOKEN_FILE"
	envTenant    = "TENANTKV_TENANT"
	envTLSCA     = "TENANTKV_TLS_CA"
	envTLSCert   = "TENANTKV_TLS_CERT"
	envTLSKey    = "TENANTKV_TLS_KEY"
)

// globalFlags are accepted by every command, before or after its name:
// `tenantkv --tenant acme get k` and `tenantkv get k --tenant acme` are the
// same.
type globalFlags struct {
	endpoints string
	token     string
	tokenFile string
	tenant    string
	json      bool
	timeout   time.Duration
	// TLS files. Client commands verify the nodes with tlsCA and present
	// tlsCert as their own certificate; serve uses them for its client
	// address (tlsCA then requires client certificates) and to dial the
	// members it joins.
	tlsCA, tlsCert, tlsKey string
}

// valueGlobals are the global flags that take a value, so that the command
// words can be found among flags that come before them.
var valueGlobals = map[string]bool{
	"endpoints": true, "token": true, "token-file": true, "tenant": true, "timeout": true,
	"tls-ca": true, "tls-cert": true, "tls-key": true,
}

// register adds the global flags to fs, taking defaults from env.
func (g *globalFlags) register(fs *flag.FlagSet, env func(string) string) {
	fs.StringVar(&g.endpoints, "endpoints", envOr(env, envEndpoints, defaultEndpoints),
		"comma-separated client addresses of cluster nodes (env "+envEndpoints+")")
	fs.StringVar(&g.token, "token", "", "access token (env "+envToken+")")
	fs.StringVar(&g.tokenFile, "token-file", "", "file holding the access token (env "+envTokenFile+")")
	fs.StringVar(&g.tenant, "tenant", env(envTenant), "tenant of data commands (env "+envTenant+")")
	fs.BoolVar(&g.json, "json", false, "print results as JSON")
	fs.DurationVar(&g.timeout, "timeout", defaultTimeout, "how long a command may take; 0 means no limit")
	fs.StringVar(&g.tlsCA, "tls-ca", env(envTLSCA), "connect over TLS, trusting the CA certificates in `FILE` (env "+envTLSCA+")")
	fs.StringVar(&g.tlsCert, "tls-cert", env(envTLSCert), "connect over TLS, presenting the client certificate in `FILE` (env "+envTLSCert+")")
	fs.StringVar(&g.tlsKey, "tls-key", env(envTLSKey), "key `FILE` of --tls-cert (env "+envTLSKey+")")
}

// clientTLS returns the TLS configuration of client commands: nil (plain
// TCP) when no TLS flag is given; otherwise TLS that trusts --tls-ca (the
// system's roots without it) and presents --tls-cert when the node asks
// for a client certificate.
func (g *globalFlags) clientTLS() (*tls.Config, error) {
	if g.tlsCA == "" && g.tlsCert == "" && g.tlsKey == "" {
		return nil, nil
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return nil, errTLSPair
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.tlsCA != "" {
		pem, err := os.ReadFile(g.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", g.tlsCA)
		}
	}
	if g.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(g.tlsCert, g.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// errTLSPair is a usage error: a certificate needs its key and a key its
// certificate.
var errTLSPair = errors.New("--tls-cert and --tls-key go together")

// envOr returns the environment variable key, or def when it is empty.
func envOr(env func(string) string, key, def string) string {
	if v := env(key); v != "" {
		return v
	}
	return def
}

// splitList splits a comma-separated list, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// usageError is a mistake in the command line: exit status 2 and a hint.
type usageError struct {
	cmd *command // nil for the top level
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *command, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// splitCommand separates the command words (one, or two for a group such as
// `tenant create`) from the rest of args, which keeps every flag wherever it
// was. Flags before the command words must be global flags; an unknown one
// is kept and later reported by the command's flag set. Words after "--" are
// never command words.
func splitCommand(args []string) (words, rest []string) {
	want := 1
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(words) == want || a == "--" {
			return words, append(rest, args[i:]...)
		}
		if len(a) > 1 && a[0] == '-' {
			rest = append(rest, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if valueGlobals[name] && !hasValue && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		words = append(words, a)
		if len(words) == 1 && isGroup(a) {
			want = 2
		}
	}
	return words, rest
}

// parseInterspersed parses args with fs, allowing flags after positional
// arguments, and returns the positional arguments. Everything after "--" is
// positional, so that a key may start with '-'.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a flag set that reports errors to its caller instead
// of printing them.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// resolveToken finds the access token, first of: --token, --token-file,
// TENANTKV_TOKEN, TENANTKV_TOKEN_FILE, ./data/operator.token. It returns ""
// when none is given and the default file does not exist.
func resolveToken(g *globalFlags, set map[string]bool, env func(string) string) (string, error) {
	switch {
	case set["token"]:
		return g.token, nil
	case set["token-file"]:
		return readTokenFile(g.tokenFile)
	case env(envToken) != "":
		return env(envToken), nil
	case env(envTokenFile) != "":
		return readTokenFile(env(envTokenFile))
	}
	tok, err := readTokenFile(defaultTokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return tok, err
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
