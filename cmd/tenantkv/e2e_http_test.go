package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestE2EHTTPCluster: three `tenantkv serve` processes; every request of
// the HTTP API sent to a follower (administration, writes, linearizable
// reads, a transaction, a watch stream) is served through it by the
// leader, and a stale read by the follower itself.
func TestE2EHTTPCluster(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	n1 := startNode(t, filepath.Join(dir, "n1"), "n1")
	tokenFile := filepath.Join(n1.dataDir, "operator.token")
	n2 := startNode(t, filepath.Join(dir, "n2"), "n2", "--join", n1.addr, "--token-file", tokenFile)
	n3 := startNode(t, filepath.Join(dir, "n3"), "n3", "--join", n1.addr, "--token-file", tokenFile)
	st := (&clusterCLI{t: t, endpoints: []string{n1.addr}, tokenFile: tokenFile}).status()
	var followers []*nodeProc
	for _, n := range []*nodeProc{n1, n2, n3} {
		if n.id != st.LeaderID {
			followers = append(followers, n)
		}
	}
	if len(followers) != 2 {
		t.Fatalf("leader %q among n1..n3: followers %d", st.LeaderID, len(followers))
	}
	opTok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	do := func(n *nodeProc, token, method, path, body string, hdr ...string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+n.httpAddr+"/v1"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	op := strings.TrimSpace(string(opTok))
	f1, f2 := followers[0], followers[1]
	if code, body, _ := do(f1, op, "POST", "/tenants", `{"name":"acme"}`); code != http.StatusCreated {
		t.Fatalf("create through a follower: %d %s", code, body)
	}
	code, body, _ := do(f2, op, "POST", "/tenants/acme/tokens", `{}`)
	if code != http.StatusCreated {
		t.Fatalf("token through a follower: %d %s", code, body)
	}
	var nt struct{ Token string }
	if err := json.Unmarshal([]byte(body), &nt); err != nil {
		t.Fatal(err)
	}
	tok := nt.Token
	// A watch through a follower: the stream is the leader's, relayed.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+f2.httpAddr+"/v1/tenants/acme/watch?prefix=k", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK || stream.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(stream.Body)
		t.Fatalf("watch through a follower: %d %s", stream.StatusCode, b)
	}
	for i := range 10 {
		k := fmt.Sprintf("k%d", i)
		if code, body, _ := do(f1, tok, "PUT", "/tenants/acme/keys/"+k, fmt.Sprint(i)); code != http.StatusOK {
			t.Fatalf("put through a follower: %d %s", code, body)
		}
		if code, body, _ := do(f2, tok, "GET", "/tenants/acme/keys/"+k, ""); code != http.StatusOK || body != fmt.Sprint(i) {
			t.Fatalf("linearizable get through the other follower: %d %q", code, body)
		}
	}
	if code, body, _ := do(f2, tok, "POST", "/tenants/acme/txn", `{"conditions":[{"key":"k0","value":"0"}],"mutations":[{"op":"add","key":"n","delta":7}]}`); code != http.StatusOK {
		t.Fatalf("txn through a follower: %d %s", code, body)
	}
	br := bufio.NewReader(stream.Body)
	var ids []string
	for len(ids) < 10 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("watch stream after %d events: %v", len(ids), err)
		}
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: "); ok {
			ids = append(ids, id)
		}
	}
	for i := 1; i < len(ids); i++ {
		if atoi(ids[i]) <= atoi(ids[i-1]) {
			t.Errorf("event ids not increasing: %v", ids)
		}
	}
	// Stale reads are the follower's own, within a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := do(f1, tok, "GET", "/tenants/acme/keys/k9?stale=true", "")
		if code == http.StatusOK && body == "9" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale read on a follower: %d %q", code, body)
		}
		time.Sleep(pollInterval)
	}
	if code, body, h := do(f1, tok, "GET", "/tenants/acme/keys/k1", "", "X-Tenantkv-Forwarded", "x"); code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("a request forwarded once, at a follower: %d %s", code, body)
	}
	if code, body, _ := do(f1, tok, "GET", "/tenants/other/keys/k1", ""); code != http.StatusForbidden {
		t.Errorf("another tenant through a follower: %d %s", code, body)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
