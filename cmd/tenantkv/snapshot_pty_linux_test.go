package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotProgressOnTerminal runs snapshot save and restore with
// stderr on a pseudo-terminal: the byte bar is drawn there (save; restore's
// verify and write phases), and nothing is drawn elsewhere.
func TestSnapshotProgressOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node; skipped with -short")
	}
	ptm, tty := openPTY(t)
	dir := t.TempDir()
	t.Chdir(dir)
	srv := startInProcess(t, filepath.Join(dir, "data"))
	env := envMap(envEndpoints, srv.Addr())
	for _, args := range [][]string{{"tenant", "create", "acme"}, {"--tenant", "acme", "put", "a", "1"}} {
		if code, _, stderr := runCLI(t, env, "", args...); code != 0 {
			t.Fatalf("tenantkv %q: %s", args, stderr)
		}
	}
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{"snapshot", "save", "s.tkvsnap"}, env, strings.NewReader(""), &stdout, tty); code != 0 {
		t.Fatalf("save: exit %d: %q", code, drain(t, ptm))
	}
	if out := drain(t, ptm); !strings.Contains(out, "\rsnapshot save [") || !strings.Contains(out, "100%") || !strings.HasSuffix(out, "\r\n") {
		t.Errorf("save progress on the terminal: %q", out)
	}
	if !strings.HasPrefix(stdout.String(), "saved snapshot s.tkvsnap: ") {
		t.Errorf("save stdout: %q", stdout.String())
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"snapshot", "restore", "s.tkvsnap", "--data", "r", "--node-id", "r1"}, env, strings.NewReader(""), &stdout, tty); code != 0 {
		t.Fatalf("restore: exit %d: %q", code, drain(t, ptm))
	}
	if out := drain(t, ptm); !strings.Contains(out, "\rsnapshot restore verify [") || !strings.Contains(out, "\rsnapshot restore write [") {
		t.Errorf("restore progress on the terminal: %q", out)
	}
	if !strings.Contains(stdout.String(), "start it with: tenantkv serve --data r --raft 127.0.0.1:7401") {
		t.Errorf("restore stdout: %q", stdout.String())
	}
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"snapshot", "verify", "s.tkvsnap"}, env, strings.NewReader(""), &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("verify with stderr not a terminal: exit %d, stderr %q", code, stderr.String())
	}
}
