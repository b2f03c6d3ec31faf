package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/server"
)

// envMap is an environment for run and parse.
func envMap(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// runCLI calls run and returns its exit status and output.
func runCLI(t *testing.T, env func(string) string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, env, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		args        []string
		words, rest []string
	}{
		{nil, nil, nil},
		{[]string{"get", "k"}, []string{"get"}, []string{"k"}},
		{[]string{"--tenant", "acme", "get", "k"}, []string{"get"}, []string{"--tenant", "acme", "k"}},
		{[]string{"--tenant=acme", "--json", "get", "k"}, []string{"get"}, []string{"--tenant=acme", "--json", "k"}},
		{[]string{"-tenant", "acme", "get", "k", "--json"}, []string{"get"}, []string{"-tenant", "acme", "k", "--json"}},
		{[]string{"tenant", "create", "acme"}, []string{"tenant", "create"}, []string{"acme"}},
		{[]string{"tenant", "--json", "list"}, []string{"tenant", "list"}, []string{"--json"}},
		{[]string{"--endpoints", "a:1,b:2", "cluster", "status"}, []string{"cluster", "status"}, []string{"--endpoints", "a:1,b:2"}},
		{[]string{"tenant"}, []string{"tenant"}, nil},
		// "--" ends the search for command words.
		{[]string{"--", "get"}, nil, []string{"--", "get"}},
		{[]string{"put", "--", "-k", "-v"}, []string{"put"}, []string{"--", "-k", "-v"}},
		// An unknown flag is kept for the command's flag set to reject.
		{[]string{"--bogus", "get", "k"}, []string{"get"}, []string{"--bogus", "k"}},
	}
	for _, tt := range tests {
		words, rest := splitCommand(tt.args)
		if !slices.Equal(words, tt.words) || !slices.Equal(rest, tt.rest) {
			t.Errorf("splitCommand(%q) = %q, %q; want %q, %q", tt.args, words, rest, tt.words, tt.rest)
		}
	}
}

func TestParseGlobalFlagsAnywhere(t *testing.T) {
	tests := []struct {
		args   []string
		path   string
		pos    []string
		tenant string
		json   bool
	}{
		{[]string{"--tenant", "acme", "put", "k", "v"}, "put", []string{"k", "v"}, "acme", false},
		{[]string{"put", "k", "v", "--tenant", "acme"}, "put", []string{"k", "v"}, "acme", false},
		{[]string{"put", "k", "--tenant=acme", "v"}, "put", []string{"k", "v"}, "acme", false},
		{[]string{"-tenant", "acme", "get", "k", "-json"}, "get", []string{"k"}, "acme", true},
		{[]string{"--json", "tenant", "list"}, "tenant list", nil, "", true},
		{[]string{"tenant", "--json", "show", "acme"}, "tenant show", []string{"acme"}, "", true},
		{[]string{"tenant", "show", "acme", "--json"}, "tenant show", []string{"acme"}, "", true},
		{[]string{"scan", "--prefix", "u/", "--tenant", "t1", "--limit", "3"}, "scan", []string{}, "t1", false},
		// A later flag wins over an earlier one.
		{[]string{"--tenant", "a", "get", "k", "--tenant", "b"}, "get", []string{"k"}, "b", false},
		// After "--", everything is an argument.
		{[]string{"--tenant", "acme", "put", "--", "-k", "--json"}, "put", []string{"-k", "--json"}, "acme", false},
		{[]string{"put", "k", "-"}, "put", []string{"k", "-"}, "", false},
	}
	for _, tt := range tests {
		x := &cli{env: envMap(), set: map[string]bool{}}
		cmd, _, pos, err := x.parse(tt.args)
		if err != nil {
			t.Errorf("parse(%q): %v", tt.args, err)
			continue
		}
		if cmd.path != tt.path || !slices.Equal(pos, tt.pos) ||
			x.g.tenant != tt.tenant || x.g.json != tt.json {
			t.Errorf("parse(%q) = %q %q tenant %q json %v; want %q %q tenant %q json %v",
				tt.args, cmd.path, pos, x.g.tenant, x.g.json, tt.path, tt.pos, tt.tenant, tt.json)
		}
	}
}

func TestParseEnvFallbacks(t *testing.T) {
	env := envMap(envEndpoints, "10.0.0.1:7400,10.0.0.2:7400", envTenant, "from-env")

	x := &cli{env: env, set: map[string]bool{}}
	if _, _, _, err := x.parse([]string{"get", "k"}); err != nil {
		t.Fatal(err)
	}
	if x.g.endpoints != "10.0.0.1:7400,10.0.0.2:7400" || x.g.tenant != "from-env" || x.g.timeout != defaultTimeout {
		t.Errorf("from the environment: endpoints %q tenant %q timeout %v", x.g.endpoints, x.g.tenant, x.g.timeout)
	}

	x = &cli{env: env, set: map[string]bool{}}
	if _, _, _, err := x.parse([]string{"get", "k", "--tenant", "flag", "--endpoints", "h:1", "--timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	if x.g.endpoints != "h:1" || x.g.tenant != "flag" || x.g.timeout != 3*time.Second {
		t.Errorf("flags over the environment: endpoints %q tenant %q timeout %v", x.g.endpoints, x.g.tenant, x.g.timeout)
	}

	x = &cli{env: envMap(), set: map[string]bool{}}
	if _, _, _, err := x.parse([]string{"get", "k"}); err != nil {
		t.Fatal(err)
	}
	if x.g.endpoints != defaultEndpoints || x.g.tenant != "" {
		t.Errorf("defaults: endpoints %q tenant %q", x.g.endpoints, x.g.tenant)
	}
}

func TestServeFlagsFromEnv(t *testing.T) {
	env := envMap("TENANTKV_DATA", "/d", "TENANTKV_LISTEN", "1.2.3.4:1", "TENANTKV_JOIN", "a:1, b:2")
	fs := newFlagSet("serve")
	setupServe(fs, env)
	if err := fs.Parse([]string{"--listen", "5.6.7.8:2"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"data": "/d", "listen": "5.6.7.8:2", "join": "a:1, b:2", "raft": "127.0.0.1:7401",
		"http": "127.0.0.1:7402", "log-level": "info",
	} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
	if got := splitList("a:1, b:2,,"); !slices.Equal(got, []string{"a:1", "b:2"}) {
		t.Errorf("splitList = %q", got)
	}
	if envName("tls-cert") != "TENANTKV_TLS_CERT" || envName("node-id") != "TENANTKV_NODE_ID" {
		t.Errorf("envName: %s %s", envName("tls-cert"), envName("node-id"))
	}
}

// serveConfig parses serve's command line as run does and returns the
// node's configuration.
func serveConfig(t *testing.T, env func(string) string, args ...string) (server.Config, error) {
	t.Helper()
	x := &cli{env: env, stdout: io.Discard, stderr: io.Discard, set: map[string]bool{}, cmd: serveCommand}
	fs := newFlagSet("tenantkv serve")
	x.g.register(fs, env)
	var f serveFlags
	f.register(fs, env)
	if _, err := parseInterspersed(fs, args); err != nil {
		t.Fatalf("serve %q: %v", args, err)
	}
	fs.Visit(func(f *flag.Flag) { x.set[f.Name] = true })
	return f.config(x)
}

func TestServeRaftAndTLSFlags(t *testing.T) {
	env := envMap("TENANTKV_RAFT_ADVERTISE", "10.0.0.5:7401", "TENANTKV_HEARTBEAT_TIMEOUT", "300ms",
		"TENANTKV_ELECTION_TIMEOUT", "600ms", "TENANTKV_SNAPSHOT_INTERVAL", "30s", "TENANTKV_SNAPSHOT_THRESHOLD", "100",
		"TENANTKV_TRAILING_LOGS", "64", "TENANTKV_TLS_CERT", "node.pem", "TENANTKV_TLS_KEY", "node.key", "TENANTKV_TLS_CA", "ca.pem")
	cfg, err := serveConfig(t, env, "--election-timeout", "900ms", "--snapshot-threshold", "50", "--tls-ca", "other-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RaftAdvertiseAddr != "10.0.0.5:7401" || cfg.RaftAddr != "127.0.0.1:7401" {
		t.Errorf("raft addresses %q, advertised %q", cfg.RaftAddr, cfg.RaftAdvertiseAddr)
	}
	want := server.RaftTuning{HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 900 * time.Millisecond,
		SnapshotInterval: 30 * time.Second, SnapshotThreshold: 50, TrailingLogs: 64}
	if cfg.Raft != want {
		t.Errorf("raft tuning %+v, want %+v (flags win over the environment)", cfg.Raft, want)
	}
	if cfg.TLSCertFile != "node.pem" || cfg.TLSKeyFile != "node.key" || cfg.TLSCAFile != "other-ca.pem" {
		t.Errorf("TLS files %q %q %q", cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile)
	}

	// Left out: raft's defaults, no TLS.
	cfg, err = serveConfig(t, envMap())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Raft != (server.RaftTuning{}) || cfg.RaftAdvertiseAddr != "" || cfg.TLSCertFile != "" || cfg.TLSCAFile != "" {
		t.Errorf("defaults: %+v", cfg)
	}

	// An environment variable that does not parse is a usage error, unless
	// its flag is given.
	bad := envMap("TENANTKV_HEARTBEAT_TIMEOUT", "soon", "TENANTKV_SNAPSHOT_THRESHOLD", "many")
	_, err = serveConfig(t, bad, "--snapshot-threshold", "10")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `TENANTKV_HEARTBEAT_TIMEOUT: "soon" is not a duration`) {
		t.Errorf("bad TENANTKV_HEARTBEAT_TIMEOUT: %v", err)
	}
	_, err = serveConfig(t, bad, "--heartbeat-timeout", "200ms", "--election-timeout", "200ms")
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `TENANTKV_SNAPSHOT_THRESHOLD: "many" is not a count`) {
		t.Errorf("bad TENANTKV_SNAPSHOT_THRESHOLD: %v", err)
	}
	if _, err = serveConfig(t, bad, "--heartbeat-timeout", "200ms", "--election-timeout", "200ms", "--snapshot-threshold", "1"); err != nil {
		t.Errorf("flags given for both bad variables: %v", err)
	}
}

func TestResolveToken(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	write := func(path, content string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	flagFile := write(filepath.Join(dir, "flag.token"), "from-flag-file\n")
	envFile := write(filepath.Join(dir, "env.token"), "  from-env-file \n")

	resolve := func(env func(string) string, args ...string) (string, error) {
		x := &cli{env: env, set: map[string]bool{}}
		if _, _, _, err := x.parse(append([]string{"tenant", "list"}, args...)); err != nil {
			t.Fatal(err)
		}
		return resolveToken(&x.g, x.set, env)
	}
	bothEnv := envMap(envToken, "from-env", envTokenFile, envFile)

	// No token anywhere and no ./data/operator.token.
	if tok, err := resolve(envMap()); err != nil || tok != "" {
		t.Errorf("nothing given: %q, %v; want empty", tok, err)
	}
	write(filepath.Join(dir, "data", "operator.token"), "operator-secret\n")

	tests := []struct {
		name string
		env  func(string) string
		args []string
		want string
	}{
		{"default file", envMap(), nil, "operator-secret"},
		{"env file", envMap(envTokenFile, envFile), nil, "from-env-file"},
		{"env token over env file", bothEnv, nil, "from-env"},
		{"flag file over env", bothEnv, []string{"--token-file", flagFile}, "from-flag-file"},
		{"flag token over everything", bothEnv, []string{"--token-file", flagFile, "--token", "from-flag"}, "from-flag"},
	}
	for _, tt := range tests {
		tok, err := resolve(tt.env, tt.args...)
		if err != nil || tok != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, tok, err, tt.want)
		}
	}

	x := &cli{env: envMap(), set: map[string]bool{}}
	if _, _, _, err := x.parse([]string{"--token", "before", "tenant", "list"}); err != nil {
		t.Fatal(err)
	}
	if tok, _ := resolveToken(&x.g, x.set, x.env); tok != "before" {
		t.Errorf("--token before the command: %q", tok)
	}

	if _, err := resolve(envMap(), "--token-file", filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing --token-file: %v, want not exist", err)
	}
	code, _, stderr := runCLI(t, envMap(), "", "tenant", "list", "--token-file", filepath.Join(dir, "missing"))
	if code != 1 || !strings.HasPrefix(stderr, "tenantkv: token file: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("missing --token-file: exit %d, stderr %q", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the first line of stderr
	}{
		{nil, "no command given"},
		{[]string{"--json"}, "no command given"},
		{[]string{"--nope"}, "unknown flag --nope"},
		{[]string{"--tenat", "acme", "get", "k"}, "unknown flag --tenat (did you mean --tenant?)"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"gte", "k"}, `unknown command "gte" (did you mean "get"?)`},
		{[]string{"tenat", "create", "acme"}, `unknown command "tenat" (did you mean "tenant"?)`},
		{[]string{"status"}, `unknown command "status" (did you mean "cluster status"?)`},
		{[]string{"tenant", "craete", "acme"}, `unknown command "tenant craete" (did you mean "tenant create"?)`},
		{[]string{"tenant", "to", "acme"}, `unknown command "tenant to" (did you mean "tenant token" or "tenant tokens"?)`},
		{[]string{"tenant"}, `"tenant" needs a subcommand`},
		{[]string{"tenant", "frob"}, `unknown command "tenant frob"`},
		{[]string{"cluster"}, `"cluster" needs a subcommand`},
		{[]string{"get"}, "get: missing argument"},
		{[]string{"get", "a", "b"}, "get: too many arguments"},
		{[]string{"put", "k"}, "put: missing argument"},
		{[]string{"tenant", "create"}, "tenant create: missing argument"},
		{[]string{"cluster", "remove"}, "cluster remove: missing argument"},
		{[]string{"get", "k", "--bogus"}, "unknown flag --bogus"},
		{[]string{"get", "k", "--tok", "x"}, "unknown flag --tok (did you mean --token or --token-file?)"},
		{[]string{"tenant", "set", "acme", "--max-watch", "3"}, "unknown flag --max-watch (did you mean --max-watches?)"},
		{[]string{"--bogus", "get", "k"}, "unknown flag --bogus"},
		{[]string{"get", "k", "--tenant"}, "flag --tenant needs a value"},
		{[]string{"get", "k", "--timeout", "soon"}, `--timeout: "soon" is not a duration such as 500ms`},
		{[]string{"serve", "--insecure-peers=maybe"}, `--insecure-peers: "maybe" is not true or false`},
		{[]string{"get", "k", "--timeout", "-1s"}, "--timeout: negative"},
		{[]string{"get", "k", "--endpoints", ","}, "--endpoints: no address given"},
		{[]string{"scan", "--prefix", "a", "--start", "b"}, "--prefix cannot be combined"},
		{[]string{"scan", "--limit", "-1"}, "--limit: negative"},
		{[]string{"scan", "extra"}, "scan: too many arguments"},
		{[]string{"serve", "--log-level", "loud"}, "--log-level"},
		{[]string{"serve", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"serve", "--tls-ca", "ca.pem"}, "--tls-ca needs --tls-cert and --tls-key"},
		{[]string{"serve", "--heartbeat-timeout", "2s"}, "ElectionTimeout 1s is shorter than HeartbeatTimeout 2s"},
		{[]string{"serve", "--election-timeout", "1ms"}, "ElectionTimeout 1ms is below 5ms"},
		{[]string{"serve", "--snapshot-interval", "-1s"}, "SnapshotInterval -1s is below 5ms"},
		{[]string{"serve", "--snapshot-threshold", "-1"}, `--snapshot-threshold: "-1" is not a count`},
		{[]string{"get", "k", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "k.pem", "get", "k"}, "--tls-cert and --tls-key go together"},
		{[]string{"help", "frob"}, `unknown command "frob"`},
		{[]string{"token"}, `"token" needs a subcommand: create, revoke`},
		{[]string{"tenant", "set", "acme"}, "nothing to change"},
		{[]string{"tenant", "set", "acme", "--state", "frozen"}, `--state: "frozen" is not one of`},
		{[]string{"tenant", "set", "acme", "--label", "a=1", "--remove-label", "a"}, `label "a" is both set and removed`},
		{[]string{"tenant", "set", "acme", "--label", "a=", "--label", "b=2", "--remove-label", "b"}, `label "b" is both set and removed`},
		{[]string{"tenant", "set", "acme", "--max-keys", "-1"}, `--max-keys: "-1" is not a count`},
		{[]string{"tenant", "create", "acme", "--label", "novalue"}, `"novalue" is not KEY=VALUE`},
		{[]string{"tenant", "create", "acme", "--label", "=v"}, `"=v" is not KEY=VALUE`},
		{[]string{"tenant", "list", "--state", "gone"}, `--state: "gone" is not one of`},
		{[]string{"tenant", "rename", "a"}, "tenant rename: missing argument"},
		{[]string{"tenant", "token", "acme", "--ttl", "-1s"}, "--ttl: negative"},
		{[]string{"tenant", "revoke", "tkv_nothex"}, "is neither a token ID nor a token"},
		{[]string{"tenant", "export"}, "tenant export: missing argument"},
		{[]string{"tenant", "import", "a", "b"}, "tenant import: too many arguments"},
		{[]string{"token", "create", "--ttl", "-1h"}, "--ttl: negative"},
		{[]string{"token", "create", "extra"}, "token create: too many arguments"},
		{[]string{"token", "revoke"}, "token revoke: missing argument"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, envMap(), "", tt.args...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != 2 || !strings.HasPrefix(first, "tenantkv: ") || !strings.Contains(first, tt.want) {
			t.Errorf("tenantkv %q: exit %d, stderr %q; want exit 2 and %q", tt.args, code, stderr, tt.want)
		}
		if !strings.Contains(stderr, "tenantkv help") {
			t.Errorf("tenantkv %q: no usage hint in %q", tt.args, stderr)
		}
		if stdout != "" {
			t.Errorf("tenantkv %q: stdout %q, want nothing", tt.args, stdout)
		}
		// Flags are spelt as the help spells them, with two dashes.
		if m := singleDashFlag.FindString(first); m != "" {
			t.Errorf("tenantkv %q: %q spells a flag with one dash: %q", tt.args, first, m)
		}
	}
}

// singleDashFlag finds a flag name after one dash, such as " -timeout".
var singleDashFlag = regexp.MustCompile(`(^|[\s:])-[a-z][a-z-]+`)

func TestHelpAndVersion(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"Commands:", "tenant create NAME", "cluster remove NODE-ID", "TENANTKV_ENDPOINTS", "Exit status"}},
		{[]string{"-h"}, []string{"Commands:"}},
		{[]string{"--help"}, []string{"Commands:"}},
		{[]string{"help", "scan"}, []string{"usage: tenantkv scan", "--prefix P", "--reverse"}},
		{[]string{"scan", "-h"}, []string{"usage: tenantkv scan"}},
		{[]string{"help", "tenant"}, []string{"usage: tenantkv tenant create NAME", "usage: tenantkv tenant token NAME"}},
		{[]string{"help", "tenant", "token"}, []string{"usage: tenantkv tenant token NAME [--read-only] [--ttl D]"}},
		{[]string{"help"}, []string{"tenant set NAME [flags]", "tenant export NAME > FILE", "tenant import NAME < FILE",
			"tenant rename OLD NEW", "tenant tokens NAME", "tenant revoke TOKEN-ID", "token create [--ttl D]", "token revoke TOKEN-ID"}},
		{[]string{"help", "tenant", "set"}, []string{"--state S", "--max-keys N", "--label KEY=VALUE", "--remove-label KEY", "--clear-labels", "--label K= (an empty value)"}},
		{[]string{"help", "serve"}, []string{"--raft-advertise ADDR", "--heartbeat-timeout D", "--election-timeout D", "--snapshot-interval D",
			"--snapshot-threshold N", "TENANTKV_SNAPSHOT_THRESHOLD", "--tls-ca FILE (TENANTKV_TLS_CA)"}},
		{[]string{"help"}, []string{"--tls-ca FILE", "--tls-cert FILE, --tls-key FILE", "TENANTKV_TLS_CERT"}},
		{[]string{"help", "token"}, []string{"usage: tenantkv token create [--ttl D]", "usage: tenantkv token revoke TOKEN-ID"}},
		{[]string{"serve", "--help"}, []string{"--join ADDR", "TENANTKV_NODE_ID", "default 127.0.0.1:7400"}},
		{[]string{"version"}, []string{"tenantkv ", "go1."}},
		{[]string{"--json", "version"}, []string{`"version": "`, `"go": "go1.`}},
		{[]string{"--version"}, []string{"tenantkv ", "go1."}},
		{[]string{"--json", "--version"}, []string{`"version": "`}},
		{[]string{"help", "tenant", "set"}, []string{"--max-watches N"}},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, envMap(), "", tt.args...)
		if code != 0 || stderr != "" {
			t.Errorf("tenantkv %q: exit %d, stderr %q", tt.args, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("tenantkv %q: %q not in output:\n%s", tt.args, w, stdout)
			}
		}
	}
}

// TestVersionFlag checks that --version is the version command, with the
// version stamped at link time when there is one.
func TestVersionFlag(t *testing.T) {
	for _, v := range []string{"", "v1.2.3-4-gabcdef012345"} {
		old := version
		version = v
		_, cmdOut, _ := runCLI(t, envMap(), "", "version")
		code, flagOut, stderr := runCLI(t, envMap(), "", "--version")
		version = old
		if code != 0 || stderr != "" || flagOut != cmdOut {
			t.Errorf("version %q: --version printed %q (exit %d, stderr %q), version printed %q", v, flagOut, code, stderr, cmdOut)
		}
		if v != "" && !strings.HasPrefix(cmdOut, "tenantkv "+v+" go1.") {
			t.Errorf("stamped version %q: printed %q", v, cmdOut)
		}
	}
}

func TestCommandsAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.path] {
			t.Errorf("command %q listed twice", c.path)
		}
		seen[c.path] = true
		if c.summary == "" || (c.setup == nil && c.path != "help") {
			t.Errorf("command %q lacks a summary or a setup", c.path)
		}
		if g, _, ok := strings.Cut(c.path, " "); ok != isGroup(g) {
			t.Errorf("command %q: group %q not registered", c.path, g)
		}
		if c.setup != nil {
			fs := newFlagSet(c.path)
			(&globalFlags{}).register(fs, envMap())
			c.setup(fs, envMap()) // panics if a command redefines a global flag
		}
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("tenantkv: not found"), "tenantkv: not found"},
		{errors.New("token file: open x: no such file"), "tenantkv: token file: open x: no such file"},
		{errors.New("tenantkv: a\nb  c"), "tenantkv: a b c"},
		{fmt.Errorf("line 1 (get): %w", errors.New("tenantkv: tenant is locked")), "tenantkv: line 1 (get): tenant is locked"},
	}
	for _, tt := range tests {
		if got := errorLine(tt.err); got != tt.want {
			t.Errorf("errorLine(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestJSONKeysAndValues(t *testing.T) {
	tests := []struct {
		key, value []byte
		want       string
	}{
		{[]byte("k"), []byte("v"), `{"key":"k","value":"v"}`},
		{[]byte("k"), []byte{}, `{"key":"k","value":""}`},
		{[]byte("<&>"), []byte("é"), `{"key":"<&>","value":"é"}`},
		{[]byte{0xff, 0x00}, []byte{0xc3}, `{"key_base64":"/wA=","value_base64":"ww=="}`},
	}
	for _, tt := range tests {
		got, err := marshalCompact(newKVJSON(tt.key, tt.value))
		if err != nil || string(got) != tt.want {
			t.Errorf("newKVJSON(%q, %q) = %s, %v; want %s", tt.key, tt.value, got, err, tt.want)
		}
	}

	var buf bytes.Buffer
	arr := &jsonArray{w: &buf}
	if err := arr.close(); err != nil || buf.String() != "[]\n" {
		t.Errorf("empty array: %q, %v", buf.String(), err)
	}
	buf.Reset()
	arr = &jsonArray{w: &buf}
	for _, k := range []string{"a", "b"} {
		if err := arr.add(newKVJSON([]byte(k), []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	if err := arr.close(); err != nil {
		t.Fatal(err)
	}
	var kvs []map[string]string
	if err := json.Unmarshal(buf.Bytes(), &kvs); err != nil || len(kvs) != 2 || kvs[1]["key"] != "b" {
		t.Errorf("array %q: %v, %v", buf.String(), kvs, err)
	}
}

// The flag package's help error must stay distinguishable from usage errors.
func TestHelpIsNotAUsageError(t *testing.T) {
	x := &cli{env: envMap(), set: map[string]bool{}}
	_, _, _, err := x.parse([]string{"get", "-h"})
	var ue *usageError
	if !errors.Is(err, flag.ErrHelp) || errors.As(err, &ue) {
		t.Errorf("parse(get -h) = %v, want flag.ErrHelp", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1073741824": 1 << 30, "512MiB": 512 << 20, "2GiB": 2 << 30, "64K": 64 << 10, " 3 M": 3 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "GiB", "1TB", "99999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
