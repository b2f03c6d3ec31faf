package main

// Helpers of the end-to-end tests: processes, ports and CLI invocations.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/testcluster"
)

// Deadlines of the end-to-end tests. They bound waits; no test sleeps.
// The node timings and the process harness are internal/testcluster's.
const (
	readyTimeout    = testcluster.ReadyTimeout // a node prints its ready line and /readyz answers
	failoverTimeout = 30 * time.Second         // writes succeed again after the leader died
	commandTimeout  = 60 * time.Second         // one CLI invocation, whatever its --timeout
	pollInterval    = 50 * time.Millisecond
)

// childEnv is the environment of child processes (testcluster.ChildEnv).
func childEnv(extra ...string) []string { return testcluster.ChildEnv(extra...) }

// freePorts returns n distinct free TCP ports of 127.0.0.1. Another process
// may take one before it is used: callers retry on bind failure.
func freePorts(t *testing.T, n int) []string { return testcluster.MustFreePorts(t, n) }

// nodeProc is a running `tenantkv serve` process (testcluster.Process)
// under the names these tests use.
type nodeProc struct {
	*testcluster.Process
	name     string
	id       string // node ID, from the ready line
	addr     string // client address
	httpAddr string // "" if unknown
	dataDir  string
	cmd      *exec.Cmd
	stdout   *testcluster.Buffer
	stderr   *testcluster.Buffer
}

// errAddrInUse: the node could not bind one of its addresses.
var errAddrInUse = testcluster.ErrAddrInUse

// launch starts `sh -c "exec <line>"` in dir (testcluster.Launch). The
// process is killed when the test ends.
func launch(t *testing.T, name, dir string, env []string, line string) *nodeProc {
	t.Helper()
	p := testcluster.Launch(t, name, dir, env, line)
	return &nodeProc{Process: p, name: name, cmd: p.Cmd, stdout: p.Stdout, stderr: p.Stderr}
}

func tail(s string, n int) string { return testcluster.Tail(s, n) }

// kill stops the process at once (SIGKILL) and waits for it.
func (p *nodeProc) kill() { p.Kill() }

// alive reports whether the process is running.
func (p *nodeProc) alive() bool { return p.Alive() }

// waitReady waits until the node printed its ready line and, when its HTTP
// address is known, /readyz answers 200. It fails with errAddrInUse when
// the node exited because an address was taken.
func (p *nodeProc) waitReady(ctx context.Context) error {
	err := p.WaitReady(ctx)
	p.id, p.addr, p.httpAddr = p.ID, p.Addr, p.HTTPAddr
	return err
}

// readyLine returns serve's ready line from its stdout, or "".
func readyLine(stdout string) string { return testcluster.ReadyLine(stdout) }

// startNode starts `tenantkv serve` with its data in dataDir on free ports,
// with the test timings, the given node ID and extra flags (which win over
// the timings), retrying with other ports when one was taken in the
// meantime.
func startNode(t *testing.T, dataDir, id string, extra ...string) *nodeProc {
	t.Helper()
	testcluster.Short(t)
	var p *nodeProc
	err := testcluster.OnFreePorts(3, dataDir, func(ports []string) error {
		args := append([]string{binPath, "serve", "--data", dataDir, "--node-id", id,
			"--listen", ports[0], "--raft", ports[1], "--http", ports[2], "--log-level", "debug"}, testcluster.ServeFlags()...)
		p = launch(t, id, t.TempDir(), childEnv(), shellJoin(append(args, extra...)))
		p.dataDir = dataDir
		err := p.waitReady(t.Context())
		if err == nil && (p.addr != ports[0] || p.id != id) {
			t.Fatalf("%s: ready line %q does not match node %s on %s", id, readyLine(p.stdout.String()), id, ports[0])
		}
		if errors.Is(err, errAddrInUse) {
			t.Logf("start %s: a port was taken, retrying on others", id)
		}
		return err
	})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return p
}

// shellJoin quotes args for sh.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// result is what one CLI invocation did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// tkv runs the binary with args in dir (a temporary directory if empty),
// stdin as its standard input and env added to a clean environment.
func tkv(t *testing.T, dir string, env []string, stdin string, args ...string) result {
	t.Helper()
	return runProgram(t, dir, env, stdin, binPath, args...)
}

// runProgram runs a program to its end, like tkv.
func runProgram(t *testing.T, dir string, env []string, stdin string, prog string, args ...string) result {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %q: %v", prog, args, err)
	}
	if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("%s %q reported a data race:\n%s", prog, args, stderr.String())
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// clusterCLI runs commands against a cluster with its operator token.
type clusterCLI struct {
	t         *testing.T
	endpoints []string
	tokenFile string
	env       []string // more environment, such as TENANTKV_TLS_CA=…
}

func (c *clusterCLI) run(stdin string, args ...string) result {
	c.t.Helper()
	return tkv(c.t, "", append([]string{
		"TENANTKV_ENDPOINTS=" + strings.Join(c.endpoints, ","),
		"TENANTKV_TOKEN_FILE=" + c.tokenFile,
	}, c.env...), stdin, args...)
}

// ok runs a command that must succeed and returns its stdout.
func (c *clusterCLI) ok(args ...string) string {
	c.t.Helper()
	r := c.run("", args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("tenantkv %q: %v", args, r)
	}
	return r.stdout
}

// fails runs a command that must fail with exit status code and a stderr
// whose first line starts with msg.
func (c *clusterCLI) fails(code int, msg string, args ...string) {
	c.t.Helper()
	r := c.run("", args...)
	first, _, _ := strings.Cut(r.stderr, "\n")
	if r.code != code || !strings.HasPrefix(first, msg) || r.stdout != "" {
		c.t.Errorf("tenantkv %q: %v; want exit %d and %q", args, r, code, msg)
	}
	if code == 1 && strings.Count(r.stderr, "\n") != 1 {
		c.t.Errorf("tenantkv %q: stderr is not one line: %q", args, r.stderr)
	}
}

// status is `cluster status --json` decoded.
func (c *clusterCLI) status() clusterJSON {
	c.t.Helper()
	var st clusterJSON
	out := c.ok("cluster", "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("cluster status --json: %v\n%s", err, out)
	}
	return st
}

func leaders(st clusterJSON) []string {
	var ids []string
	for _, m := range st.Members {
		if m.Leader {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func memberIDs(st clusterJSON) []string {
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// graceful sends SIGTERM and checks that the node exits with status 0.
func (p *nodeProc) graceful(t *testing.T) {
	t.Helper()
	err := p.Stop(readyTimeout)
	if p.alive() {
		t.Fatalf("%s: %v", p.name, err)
	}
	if err != nil {
		t.Errorf("%s after SIGTERM: %v", p.name, err)
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Errorf("%s after SIGTERM: no stopped log line", p.name)
	}
}
