package main

// Helpers of the end-to-end tests: processes, ports and CLI invocations.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deadlines of the end-to-end tests. They bound waits; no test sleeps.
const (
	readyTimeout    = 30 * time.Second // a node prints its ready line and /readyz answers
	failoverTimeout = 30 * time.Second // writes succeed again after the leader died
	commandTimeout  = 60 * time.Second // one CLI invocation, whatever its --timeout
	pollInterval    = 50 * time.Millisecond
)

// childEnv is the environment of child processes: this process's, without
// any TENANTKV_ variable that could change what the tests run, plus extra.
// A binary built with the race detector would sleep a second when it exits
// (GORACE's atexit_sleep_ms): every CLI invocation would take that long.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	env = append(env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return append(env, extra...)
}

// freePorts returns n distinct free TCP ports of 127.0.0.1. Another process
// may take one before it is used: callers retry on bind failure.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return addrs
}

// syncBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// nodeProc is a running `tenantkv serve` process.
type nodeProc struct {
	name     string
	id       string // node ID, from the ready line
	addr     string // client address
	httpAddr string // "" if unknown
	dataDir  string
	cmd      *exec.Cmd
	stdout   syncBuffer
	stderr   syncBuffer
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // set before exited is closed
}

// errAddrInUse: the node could not bind one of its addresses.
var errAddrInUse = errors.New("address already in use")

// launch starts `sh -c "exec <line>"` in dir: a shell so that README lines
// run as written. The process is killed when the test ends.
func launch(t *testing.T, name, dir string, env []string, line string) *nodeProc {
	t.Helper()
	p := &nodeProc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command("sh", "-c", "exec "+line)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race (its stderr follows)", name)
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr (last 3000 bytes):\n%s", name, p.stdout.String(), name, tail(p.stderr.String(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// kill stops the process at once (SIGKILL) and waits for it.
func (p *nodeProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// alive reports whether the process is running.
func (p *nodeProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitReady waits until the node printed its ready line and, when its HTTP
// address is known, /readyz answers 200. It fails with errAddrInUse when
// the node exited because an address was taken.
func (p *nodeProc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	hc := &http.Client{Timeout: time.Second}
	for {
		if !p.alive() {
			if strings.Contains(p.stderr.String(), "address already in use") {
				return errAddrInUse
			}
			return fmt.Errorf("%s exited before it was ready: %v: %s", p.name, p.waitErr, lastLine(p.stderr.String()))
		}
		if line := readyLine(p.stdout.String()); line != "" {
			p.parseReadyLine(line)
			if p.httpAddr == "" || readyz(ctx, hc, p.httpAddr) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v", p.name, readyTimeout)
		case <-tick.C:
		}
	}
}

func readyz(ctx context.Context, hc *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// readyLine returns serve's ready line from its stdout, or "".
func readyLine(stdout string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "tenantkv: node ") && strings.Contains(l, " ready: ") {
			return l
		}
	}
	return ""
}

// parseReadyLine takes the node ID and addresses from the ready line,
// "tenantkv: node ID ready: clients on A, raft on B, http on C, data in D, …".
func (p *nodeProc) parseReadyLine(line string) {
	f := strings.Fields(line)
	if len(f) > 2 {
		p.id = f[2]
	}
	for i := 0; i+2 < len(f); i++ {
		v := strings.TrimSuffix(f[i+2], ",")
		switch {
		case f[i] == "clients" && f[i+1] == "on":
			p.addr = v
		case f[i] == "http" && f[i+1] == "on" && v != "-":
			p.httpAddr = v
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// startNode starts `tenantkv serve` with its data in dataDir on free ports,
// with the given node ID and extra flags, retrying with other ports when
// one was taken in the meantime.
func startNode(t *testing.T, dataDir, id string, extra ...string) *nodeProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 3)
		args := append([]string{binPath, "serve", "--data", dataDir, "--node-id", id,
			"--listen", ports[0], "--raft", ports[1], "--http", ports[2], "--log-level", "debug"}, extra...)
		p := launch(t, id, t.TempDir(), childEnv(), shellJoin(args))
		p.dataDir = dataDir
		err := p.waitReady(t.Context())
		if err == nil {
			if p.addr != ports[0] || p.id != id {
				t.Fatalf("%s: ready line %q does not match node %s on %s", id, readyLine(p.stdout.String()), id, ports[0])
			}
			return p
		}
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			t.Fatalf("start %s: %v", id, err)
		}
		t.Logf("start %s: a port was taken, retrying on others", id)
		if err := os.RemoveAll(dataDir); err != nil {
			t.Fatal(err)
		}
	}
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
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(readyTimeout):
		t.Fatalf("%s did not exit within %v of SIGTERM", p.name, readyTimeout)
	}
	if p.waitErr != nil {
		t.Errorf("%s after SIGTERM: %v", p.name, p.waitErr)
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Errorf("%s after SIGTERM: no stopped log line", p.name)
	}
}
