package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var plainVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// TestE2EHTTP runs, against a real `tenantkv serve`, the README's curl
// quickstart (its ```bash blocks, with the conventions of the README
// test: `# → text` is the expected output) and docs/http-example.py,
// when curl and jq, and python3, are installed; each part skips cleanly
// otherwise.
func TestE2EHTTP(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, filepath.Join(dir, "data"), "h1")
	if n.httpAddr == "" {
		t.Fatal("the node's ready line has no HTTP address")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("readme-curl", func(t *testing.T) {
		for _, tool := range []string{"curl", "jq"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("no %s: %v", tool, err)
			}
		}
		b, err := os.ReadFile(filepath.Join(root, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(string(b), "### The HTTP API: a curl quickstart")
		if !ok {
			t.Fatal("README.md has no curl quickstart")
		}
		if i := strings.Index(section, "\n### "); i >= 0 {
			section = section[:i]
		}
		steps, err := parseQuickstart(quickstartMarker + " -->\n" + strings.ReplaceAll(section, "```bash", "```sh"))
		if err != nil {
			t.Fatalf("README.md curl quickstart: %v", err)
		}
		for _, must := range []string{"/tenants", "/tokens", "-X PUT", "/keys/", "keys?prefix=", "/txn", "/watch", "globex"} {
			if !slices.ContainsFunc(steps, func(s readmeStep) bool { return strings.Contains(s.cmd, must) }) {
				t.Errorf("the curl quickstart has no command with %q", must)
			}
		}
		vars := map[string]string{}
		for _, s := range steps {
			t.Logf("README.md curl: %s", s.cmd)
			cmd := strings.ReplaceAll(s.cmd, "127.0.0.1:7402", n.httpAddr)
			if strings.Contains(cmd, "/watch") {
				cmd = strings.Replace(cmd, "curl -sN", "curl -sN --max-time 3", 1) // a stream ends only when its client goes
			}
			var env []string
			for k, v := range vars {
				env = append(env, k+"="+v)
			}
			// A plain assignment (API=...) carries over as a $(...) one does.
			if k, v, ok := strings.Cut(cmd, "="); ok && plainVarRE.MatchString(k) && !strings.ContainsAny(v, " $") {
				vars[k] = v
				continue
			}
			res := runProgram(t, dir, env, "", "sh", "-c", cmd)
			if res.code != s.exit {
				t.Fatalf("%s: %v", s.cmd, res)
			}
			if s.assign != "" {
				vars[s.assign] = strings.TrimSpace(res.stdout)
			}
			if s.expect != nil && !slices.Equal(normalizeLines(res.stdout), normalizeLines(strings.Join(s.expect, "\n"))) {
				t.Errorf("%s:\n got %q\nwant %q", s.cmd, normalizeLines(res.stdout), s.expect)
			}
		}
	})

	t.Run("python-example", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skipf("no python3: %v", err)
		}
		tok, err := os.ReadFile(filepath.Join(dir, "data", "operator.token"))
		if err != nil {
			t.Fatal(err)
		}
		res := runProgram(t, dir, []string{"TENANTKV_HTTP=http://" + n.httpAddr, "TENANTKV_TOKEN=" + strings.TrimSpace(string(tok))},
			"", py, filepath.Join(root, "docs", "http-example.py"))
		if res.code != 0 || strings.TrimSpace(res.stdout) != "ok" {
			t.Fatalf("docs/http-example.py: %v", res)
		}
	})
}
