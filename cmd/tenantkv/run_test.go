package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantkv/tenantkv/server"
)

// startInProcess starts a single-node cluster in this process, with its
// data in dataDir, on free ports.
func startInProcess(t *testing.T, dataDir string) *server.Server {
	t.Helper()
	srv, err := server.Start(t.Context(), server.Config{
		DataDir:    dataDir,
		ListenAddr: "127.0.0.1:0",
		RaftAddr:   "127.0.0.1:0",
		HTTPAddr:   "-",
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestRunAgainstNode runs commands through run against an in-process node,
// relying on the ./data/operator.token fallback for the operator token and
// on the tenant token's own tenant when --tenant is absent.
func TestRunAgainstNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	srv := startInProcess(t, filepath.Join(dir, "data"))
	env := envMap(envEndpoints, srv.Addr())

	must := func(stdin string, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, stdin, args...)
		if code != 0 {
			t.Fatalf("tenantkv %q: exit %d, stderr %q", args, code, stderr)
		}
		return stdout
	}
	fail := func(wantCode int, wantErr string, args ...string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, "", args...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != wantCode || !strings.HasPrefix(first, wantErr) || stdout != "" {
			t.Errorf("tenantkv %q: exit %d, stdout %q, stderr %q; want exit %d and %q…",
				args, code, stdout, stderr, wantCode, wantErr)
		}
	}

	// No token given: ./data/operator.token is the operator's.
	if out := must("", "tenant", "create", "acme"); !strings.HasPrefix(out, "created tenant acme (id ") {
		t.Errorf("tenant create: %q", out)
	}
	must("", "--tenant", "acme", "put", "k1", "v1")
	must("", "put", "k2", "--tenant", "acme", "v2")
	must("line one\nline two\n", "put", "k3", "-", "--tenant", "acme")
	if out := must("", "get", "k1", "--tenant", "acme"); out != "v1\n" {
		t.Errorf("get k1: %q", out)
	}
	if out := must("", "--tenant", "acme", "get", "k3"); out != "line one\nline two\n\n" {
		t.Errorf("get k3 (put from stdin): %q", out)
	}
	if out := must("", "scan", "--tenant", "acme", "--start", "k2"); out != "k2\tv2\nk3\tline one\nline two\n\n" {
		t.Errorf("scan --start k2: %q", out)
	}
	fail(1, "tenantkv: not found", "get", "nope", "--tenant", "acme")
	fail(2, "tenantkv: no tenant given: use --tenant NAME or TENANTKV_TENANT (an operator token has no tenant of its own)", "get", "k1")

	// TENANTKV_TENANT stands in for --tenant.
	code, stdout, stderr := runCLI(t, envMap(envEndpoints, srv.Addr(), envTenant, "acme"), "", "get", "k2")
	if code != 0 || stdout != "v2\n" {
		t.Errorf("get with TENANTKV_TENANT: exit %d, %q, %q", code, stdout, stderr)
	}

	// A tenant token works on its own tenant without --tenant.
	tok := strings.TrimSpace(must("", "tenant", "token", "acme"))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		t.Fatalf("tenant token printed %q", tok)
	}
	code, stdout, stderr = runCLI(t, envMap(envEndpoints, srv.Addr(), envToken, tok), "", "get", "k1")
	if code != 0 || stdout != "v1\n" {
		t.Errorf("get with a tenant token: exit %d, %q, %q", code, stdout, stderr)
	}
	must("", "tenant", "create", "other")
	code, _, stderr = runCLI(t, envMap(envEndpoints, srv.Addr(), envToken, tok), "", "get", "k1", "--tenant", "other")
	if code != 1 || stderr != "tenantkv: permission denied\n" {
		t.Errorf("tenant token on another tenant: exit %d, stderr %q", code, stderr)
	}

	// A wrong token is refused.
	fail(1, "tenantkv: permission denied", "--token", "tkv_nope", "tenant", "list")

	// Removing a node the cluster does not know is an error, not a no-op.
	code, _, stderr = runCLI(t, env, "", "cluster", "remove", "nosuch")
	if code != 1 || stderr != "tenantkv: member not found: nosuch\n" {
		t.Errorf("cluster remove nosuch: exit %d, stderr %q", code, stderr)
	}
}
