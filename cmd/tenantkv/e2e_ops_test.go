package main

// End-to-end tests of readiness, the client's patience with a node that is
// not ready, the logs and the binary's own commands (issue 12, items 1 and
// 5), through real `tenantkv serve` processes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/testcluster"
)

// relaunch starts a killed node again with the same command line, without
// waiting for anything, and returns the new process.
func relaunch(t *testing.T, old *nodeProc) *nodeProc {
	t.Helper()
	if old.alive() {
		t.Fatalf("%s is still running", old.name)
	}
	line := strings.TrimPrefix(old.cmd.Args[len(old.cmd.Args)-1], "exec ")
	p := launch(t, old.name, old.cmd.Dir, old.cmd.Env, line)
	p.dataDir, p.id, p.addr, p.httpAddr = old.dataDir, old.id, old.addr, old.httpAddr
	return p
}

// waitLog waits until the process's stderr holds s at least n times.
func waitLog(t *testing.T, p *nodeProc, s string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d× %q in %s's log", n, s, p.name), readyTimeout, func() error {
		if !p.alive() {
			t.Fatalf("%s exited: %s", p.name, tail(p.stderr.String(), 2000))
		}
		if c := strings.Count(p.stderr.String(), s); c < n {
			return fmt.Errorf("%d times", c)
		}
		return nil
	})
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, httpAddr string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + httpAddr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestE2EReadyAfterRestart checks that a restarted member of a three-node
// cluster prints its ready line, and answers /readyz 200, only once it has
// a leader and has caught up with it, and that a client command against a
// node that is up but not ready waits for it instead of failing.
func TestE2EReadyAfterRestart(t *testing.T) {
	skipShort(t)
	tc := startTrio(t)
	lives := append([]*nodeProc(nil), tc.nodes...) // every process, for the log checks
	_, followers := tc.roles(t)
	cli := tc.cli(t, tc.nodes...)
	cli.ok("tenant", "create", "ready")
	db := cli.openClient()
	ready := db.Tenant("ready")
	ctx := t.Context()

	// A follower misses 300 writes (more than raft sends in one append),
	// then restarts: when its ready line is out, it holds all of them.
	f := followers[0]
	f.kill()
	const writes = 300
	for i := range writes {
		if err := ready.Set(ctx, fmt.Appendf(nil, "k%03d", i), fmt.Appendf(nil, "v%03d", i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	p := relaunch(t, f)
	lives = append(lives, p)
	if err := p.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(tc.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	local := openTokenDB(t, strings.TrimSpace(string(tok)), p.addr).Tenant("ready").WithStaleReads()
	for i := writes - 1; i >= 0; i-- {
		v, err := local.Get(ctx, fmt.Appendf(nil, "k%03d", i))
		if err != nil || string(v) != fmt.Sprintf("v%03d", i) {
			t.Fatalf("%s printed its ready line without write %d, acknowledged before its restart: %q, %v", p.name, i, v, err)
		}
	}
	for i, n := range tc.nodes {
		if n == f {
			tc.nodes[i] = p
		}
	}

	// The whole cluster goes down; one node comes back alone. It has no
	// quorum, so no leader: no ready line, /readyz 503.
	for _, n := range tc.nodes {
		n.kill()
	}
	a := relaunch(t, tc.nodes[0])
	lives = append(lives, a)
	waitLog(t, a, "msg=serving ", 1)
	waitLog(t, a, `msg="entering candidate state"`, 2) // it stood for election and failed
	if code, body := readyz(t, a.httpAddr); code != http.StatusServiceUnavailable || body != "no leader" {
		t.Errorf("/readyz of a node without a leader: %d %q, want 503 \"no leader\"", code, body)
	}
	if line := readyLine(a.stdout.String()); line != "" {
		t.Errorf("a node without a leader printed its ready line: %q", line)
	}

	// A client command against it alone waits instead of failing in
	// milliseconds with "not ready".
	get, err := testcluster.StartProcess("get", t.TempDir(), childEnv("TENANTKV_TOKEN_FILE="+tc.tokenFile), binPath,
		"--endpoints", a.addr, "--tenant", "ready", "--timeout", "60s", "get", fmt.Sprintf("k%03d", writes-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { get.Kill() })
	// It asks again and again, and is still waiting.
	eventually(t, "the get asking the node again", readyTimeout, func() error {
		if !get.Alive() {
			t.Fatalf("get against a node without a leader gave up: %v, stderr %q", get.WaitErr(), get.Stderr.String())
		}
		if c := strings.Count(a.stderr.String(), "hello refused: node not ready"); c < 3 {
			return fmt.Errorf("%d hellos refused", c)
		}
		return nil
	})

	// A second node makes a quorum: both become ready and the get succeeds.
	b := relaunch(t, tc.nodes[1])
	lives = append(lives, b)
	for _, n := range []*nodeProc{a, b} {
		if err := n.waitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-get.Exited():
	case <-time.After(commandTimeout):
		t.Fatal("get did not finish once the cluster had a leader")
	}
	if err := get.WaitErr(); err != nil || get.Stdout.String() != fmt.Sprintf("v%03d\n", writes-1) {
		t.Errorf("get once a leader was elected: %v, stdout %q, stderr %q", err, get.Stdout.String(), get.Stderr.String())
	}

	checkTextLogs(t, lives)
}

// noiseMessages are the raft lines rate-limited while a peer is down.
var noiseMessages = []string{"failed to appendEntries to", "failed to heartbeat to", "failed to pipeline appendEntries",
	"failed to start pipeline replication to", "failed to send snapshot to", "failed to contact", "failed to make requestVote RPC"}

var addrInValue = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// checkTextLogs checks the text logs of processes: every line is key=value
// pairs with no key twice, each line names the node once, and raft's lines
// about a peer that is down are at least 10s apart for each peer.
func checkTextLogs(t *testing.T, procs []*nodeProc) {
	t.Helper()
	raftAddr := map[string]string{} // node ID → raft address, from the ready lines
	for _, p := range procs {
		if f := strings.Fields(readyLine(p.stdout.String())); len(f) > 2 {
			for i := 0; i+2 < len(f); i++ {
				if f[i] == "raft" && f[i+1] == "on" {
					raftAddr[f[2]] = strings.TrimSuffix(f[i+2], ",")
				}
			}
		}
	}
	noise := 0
	for _, p := range procs {
		last := map[string]time.Time{} // peer → time of its last noise line
		for line := range strings.Lines(p.stderr.String()) {
			line = strings.TrimSpace(line)
			if line == "" || !strings.HasPrefix(line, "time=") {
				continue // a panic or race report is caught elsewhere
			}
			kv, err := logfmtPairs(line)
			if err != nil {
				t.Errorf("%s: %v: %s", p.name, err, line)
				continue
			}
			seen := map[string]bool{}
			for _, pair := range kv {
				if seen[pair[0]] {
					t.Errorf("%s: key %s twice on a line: %s", p.name, pair[0], line)
				}
				seen[pair[0]] = true
			}
			if !seen["node"] {
				t.Errorf("%s: a line without node=: %s", p.name, line)
			}
			vals := map[string]string{}
			for _, pair := range kv {
				vals[pair[0]] = pair[1]
			}
			isNoise := false
			for _, m := range noiseMessages {
				isNoise = isNoise || vals["msg"] == m
			}
			if !isNoise {
				continue
			}
			noise++
			peer := addrInValue.FindString(vals["peer"] + vals["target"])
			if peer == "" {
				peer = raftAddr[vals["server-id"]]
			}
			at, err := time.Parse(time.RFC3339Nano, vals["time"])
			if err != nil || peer == "" {
				t.Errorf("%s: noise line without a time or a peer: %s", p.name, line)
				continue
			}
			if prev, ok := last[peer]; ok && at.Sub(prev) < 10*time.Second-200*time.Millisecond {
				t.Errorf("%s: two lines about peer %s %v apart (at most one per 10s): %s", p.name, peer, at.Sub(prev), line)
			}
			last[peer] = at
		}
	}
	if noise == 0 {
		t.Error("no node logged a failure to reach a peer that was down: the rate limit was not checked")
	}
}

// logfmtPairs splits a line of slog's text handler into its key=value
// pairs, unquoting quoted values.
func logfmtPairs(line string) ([][2]string, error) {
	var out [][2]string
	for i := 0; i < len(line); {
		if line[i] == ' ' {
			i++
			continue
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq <= 0 {
			return nil, fmt.Errorf("no key=value at byte %d", i)
		}
		key := line[i : i+eq]
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				return nil, errors.New("unterminated quoted value")
			}
			val = line[i+1 : j] // escapes left in: only compared, not shown
			i = j + 1
		} else {
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			val = line[i : i+j]
			i += j
		}
		out = append(out, [2]string{key, val})
	}
	return out, nil
}

// TestE2EOpsSingleNode drives one node logging JSON through the binary's
// own commands: version, completion, did you mean, tenant set
// --max-watches.
func TestE2EOpsSingleNode(t *testing.T) {
	skipShort(t)
	dataDir := filepath.Join(t.TempDir(), "d")
	n := startNode(t, dataDir, "ops", "--log-format", "json")
	cli := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: filepath.Join(dataDir, "operator.token")}

	// version and --version print the same line.
	v, vflag := tkv(t, "", nil, "", "version"), tkv(t, "", nil, "", "--version")
	if v.code != 0 || vflag.code != 0 || v.stdout != vflag.stdout || !strings.HasPrefix(v.stdout, "tenantkv ") {
		t.Errorf("version: %v; --version: %v", v, vflag)
	}

	// Completion scripts that their shells accept.
	for _, shell := range []string{"bash", "zsh"} {
		sh, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("no %s: its script is not checked", shell)
			continue
		}
		r := tkv(t, "", nil, "", "completion", shell)
		script := filepath.Join(t.TempDir(), "tenantkv."+shell)
		if err := os.WriteFile(script, []byte(r.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if r.code != 0 || r.stderr != "" {
			t.Errorf("completion %s: %v", shell, r)
		} else if out, err := exec.Command(sh, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("%s -n on its completion script: %v\n%s", shell, err, out)
		}
	}

	// Mistakes get what was probably meant.
	cli.fails(2, `tenantkv: unknown command "tenant craete" (did you mean "tenant create"?)`, "tenant", "craete", "w")
	cli.fails(2, "tenantkv: unknown flag --tenat (did you mean --tenant?)", "get", "k", "--tenat", "w")
	cli.fails(2, `tenantkv: --timeout: "soon" is not a duration`, "get", "k", "--timeout", "soon")

	// tenant set --max-watches: the limit is kept and applied.
	cli.ok("tenant", "create", "w")
	if out := cli.ok("tenant", "set", "w", "--max-watches", "1"); !strings.Contains(out, "max_watches=1") {
		t.Errorf("tenant set --max-watches 1: %q", out)
	}
	if got := cli.showJSON("w").Limits.MaxWatches; got != 1 {
		t.Errorf("tenant show: max_watches %d, want 1", got)
	}
	tok := strings.TrimSpace(cli.ok("tenant", "token", "w"))
	first, err := testcluster.StartProcess("watch", t.TempDir(), childEnv("TENANTKV_ENDPOINTS="+n.addr, "TENANTKV_TOKEN="+tok), binPath, "watch", "k")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Kill() })
	// Once it has delivered a change it is running, and a running watch
	// waits for a place rather than being refused.
	eventually(t, "the first watch delivering a change", failoverTimeout, func() error {
		if !first.Alive() {
			return fmt.Errorf("the first watch ended: %v: %s", first.WaitErr(), first.Stderr.String())
		}
		if r := cli.as(tok, "put", "k", "v"); r.code != 0 {
			return fmt.Errorf("put: %v", r)
		}
		if !strings.Contains(first.Stdout.String(), "\tset\tk\tv") {
			return errors.New("no change printed yet")
		}
		return nil
	})
	eventually(t, "a second watch refused while the first holds the tenant's only one", failoverTimeout, func() error {
		if !first.Alive() {
			t.Fatalf("the first watch ended: %v: %s", first.WaitErr(), first.Stderr.String())
		}
		r := cli.as(tok, "watch", "k2", "--timeout", "2s")
		if r.code == 1 && strings.Contains(r.stderr, "rate limited") {
			return nil
		}
		return fmt.Errorf("second watch: %v", r)
	})
	first.Kill()
	cli.ok("tenant", "set", "w", "--max-watches", "0")
	if got := cli.showJSON("w").Limits.MaxWatches; got != 0 {
		t.Errorf("after --max-watches 0: max_watches %d, want 0 (the default)", got)
	}

	// Every log line is one JSON object with no key twice, naming the node.
	if err := n.Stop(readyTimeout); err != nil {
		t.Errorf("after SIGTERM: %v", err)
	}
	raftLines := 0
	for line := range strings.Lines(n.stderr.String()) {
		keys, vals := jsonKeys(t, strings.TrimSpace(line))
		if vals["node"] != "ops" || len(keys) < 4 || keys[0] != "time" || keys[1] != "level" || keys[2] != "msg" {
			t.Errorf("log line %s", line)
		}
		if vals["component"] == "raft" {
			raftLines++
		}
	}
	if raftLines == 0 || !strings.Contains(n.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("%d raft lines, stopped line %v", raftLines, strings.Contains(n.stderr.String(), `"msg":"stopped"`))
	}
}

// TestE2EMakeBuild builds the binary the way the README says, with make,
// and checks that it prints the version git gives the tree, and that
// `make clean` removes what the README says and nothing else.
func TestE2EMakeBuild(t *testing.T) {
	skipShort(t)
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	describe, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tenantkv")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "make", "-s", "-C", root, "build", "BIN="+bin)
	build.Env = childEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := runProgram(t, "", nil, "", bin, args...)
		want := "tenantkv " + strings.TrimSpace(string(describe)) + " go1."
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
			t.Errorf("tenantkv %s after make build: %v; want %q…", args[0], r, want)
		}
	}

	// `make clean` runs exactly what the README promises.
	out, err := exec.Command("make", "-s", "-n", "-C", root, "clean").Output()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`make clean` removes `\\./(\\w+)` and `\\./(\\w+)`").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md does not say what `make clean` removes")
	}
	if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("rm -rf %s %s", m[1], m[2]); got != want {
		t.Errorf("make clean runs %q; the README says it removes ./%s and ./%s (%q)", got, m[1], m[2], want)
	}
}
