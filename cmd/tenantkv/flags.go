package main

import (
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
}

// valueGlobals are the global flags that take a value, so that the command
// words can be found among flags that come before them.
var valueGlobals = map[string]bool{
	"endpoints": true, "token": true, "token-file": true, "tenant": true, "timeout": true,
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
}

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
