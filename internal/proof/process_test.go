package proof

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// The process-level variant runs real `tenantkv serve` processes, built from
// this tree, and injects the faults only processes have: SIGSTOP/SIGCONT
// pauses (a node that stops answering without closing anything, like a long
// GC pause or a VM stall) and SIGKILL (nothing is flushed or closed).

// binary builds cmd/tenantkv once per test binary, with the race detector
// when the tests have it. TestMain removes it.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func buildBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "tenantkv-proof-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "tenantkv")
		args := []string{"build", "-o", built.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/tenantkv/tenantkv/cmd/tenantkv")...).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("building tenantkv: %v", built.err)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// lockedBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// procNode is one `tenantkv serve` process; its ports and data directory
// stay the same across restarts.
type procNode struct {
	idx                int
	id, dir            string
	listen, raft, http string

	mu             sync.Mutex
	cmd            *exec.Cmd
	exited         chan struct{} // closed when the current process has exited
	waitErr        error
	stdout, stderr *lockedBuffer
	paused         bool
	killed         bool     // the test killed the current process
	stopping       bool     // the cluster is shutting down
	unexpectedExit string   // how the process died if nobody killed it
	logs           []string // stderr of earlier lives
	lives          int
}

// procCluster is a cluster of tenantkv processes on 127.0.0.1.
type procCluster struct {
	t     testing.TB
	bin   string
	nodes []*procNode
	token string
	admin *client.DB
}

const procReadyTimeout = 60 * time.Second

func newProcCluster(t testing.TB, n int) *procCluster {
	t.Helper()
	pc := &procCluster{t: t, bin: buildBinary(t)}
	t.Cleanup(pc.close)
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	root := t.TempDir()
	for i := range n {
		nd := &procNode{idx: i, id: fmt.Sprintf("proof-%s-p%d", hex.EncodeToString(suffix[:]), i+1),
			dir: filepath.Join(root, fmt.Sprintf("p%d", i+1))}
		pc.nodes = append(pc.nodes, nd)
		var err error
		for attempt := 1; ; attempt++ {
			var ports []string
			if ports, err = freePorts(3); err != nil {
				t.Fatal(err)
			}
			nd.listen, nd.raft, nd.http = ports[0], ports[1], ports[2]
			err = pc.start(nd)
			if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
				break
			}
			os.RemoveAll(nd.dir)
		}
		if err != nil {
			t.Fatalf("start %s: %v", nd.id, err)
		}
		if i == 0 {
			tok, err := os.ReadFile(filepath.Join(nd.dir, "operator.token"))
			if err != nil {
				t.Fatal(err)
			}
			pc.token = strings.TrimSpace(string(tok))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), procReadyTimeout)
	defer cancel()
	db, err := client.Open(ctx, pc.endpoints(), &client.Options{Token: pc.token, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pc.admin = db
	return pc
}

// start launches nd and waits for its ready line.
func (pc *procCluster) start(nd *procNode) error {
	args := []string{"serve", "--data", nd.dir, "--node-id", nd.id, "--listen", nd.listen, "--raft", nd.raft, "--http", nd.http}
	if nd.idx > 0 {
		args = append(args, "--join", pc.nodes[0].listen, "--token-file", filepath.Join(pc.nodes[0].dir, "operator.token"))
	}
	cmd := exec.Command(pc.bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "GORACE=atexit_sleep_ms=0")
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	nd.mu.Lock()
	nd.cmd, nd.exited, nd.stdout, nd.stderr = cmd, exited, stdout, stderr
	nd.paused, nd.killed = false, false
	nd.lives++
	nd.mu.Unlock()
	go func() {
		err := cmd.Wait()
		nd.mu.Lock()
		nd.waitErr = err
		if !nd.killed && !nd.stopping {
			nd.unexpectedExit = fmt.Sprintf("%v; stderr: %s", err, tailOf(stderr.String(), 2000))
		}
		nd.mu.Unlock()
		close(exited)
	}()
	deadline := time.NewTimer(procReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if strings.Contains(stdout.String(), " ready: ") {
			return nil
		}
		select {
		case <-exited:
			if strings.Contains(stderr.String(), "address already in use") {
				return fmt.Errorf("%s: %w", nd.id, syscall.EADDRINUSE)
			}
			return fmt.Errorf("%s exited before it was ready: %v: %s", nd.id, nd.waitErr, tailOf(stderr.String(), 2000))
		case <-deadline.C:
			pc.kill(nd)
			return fmt.Errorf("%s not ready after %v: %s", nd.id, procReadyTimeout, tailOf(stderr.String(), 2000))
		case <-tick.C:
		}
	}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func (nd *procNode) alive() bool {
	nd.mu.Lock()
	exited := nd.exited
	nd.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to go. It returns false if
// it was not running.
func (pc *procCluster) kill(nd *procNode) bool {
	if !nd.alive() {
		return false
	}
	nd.mu.Lock()
	nd.killed = true
	cmd, exited := nd.cmd, nd.exited
	nd.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	nd.mu.Lock()
	nd.logs = append(nd.logs, nd.stderr.String())
	nd.paused = false
	nd.mu.Unlock()
	return true
}

// pause stops the process with SIGSTOP; resume continues it.
func (pc *procCluster) pause(nd *procNode) bool {
	if !nd.alive() {
		return false
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.paused {
		return false
	}
	nd.paused = true
	return nd.cmd.Process.Signal(syscall.SIGSTOP) == nil
}

func (pc *procCluster) resume(nd *procNode) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.paused && nd.cmd != nil {
		_ = nd.cmd.Process.Signal(syscall.SIGCONT)
	}
	nd.paused = false
}

func (nd *procNode) isPaused() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.paused
}

// restart starts a dead node again, retrying while its ports are held.
func (pc *procCluster) restart(ctx context.Context, nd *procNode) error {
	if nd.alive() {
		return nil
	}
	return poll(ctx, func() error {
		err := pc.start(nd)
		if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
			return &permanentError{err}
		}
		return err
	})
}

func (pc *procCluster) close() {
	if pc.admin != nil {
		pc.admin.Close()
	}
	for _, nd := range pc.nodes {
		pc.resume(nd)
		nd.mu.Lock()
		nd.stopping = true
		nd.mu.Unlock()
		pc.kill(nd)
	}
}

func (pc *procCluster) endpoints() []string {
	var eps []string
	for _, nd := range pc.nodes {
		eps = append(eps, nd.listen)
	}
	return eps
}

func (pc *procCluster) operator() *client.DB { return pc.admin }

func (pc *procCluster) operatorToken() string { return pc.token }

// leader returns the running, unpaused node that says it leads, or nil.
func (pc *procCluster) leader(ctx context.Context) *procNode {
	for _, nd := range pc.nodes {
		if !nd.alive() || nd.isPaused() {
			continue
		}
		if st, err := nodeStatus(ctx, nd.listen, pc.token); err == nil && st.LeaderID == nd.id {
			return nd
		}
	}
	return nil
}

func (pc *procCluster) waitWritable(ctx context.Context, tenant string) error {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	return poll(ctx, func() error {
		opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return pc.admin.Tenant(tenant).Set(opCtx, []byte("\xffprobe"), []byte("ok"))
	})
}

func (pc *procCluster) heal(ctx context.Context) error {
	for _, nd := range pc.nodes {
		pc.resume(nd)
	}
	for _, nd := range pc.nodes {
		nd.mu.Lock()
		unexpected := nd.unexpectedExit
		nd.unexpectedExit = ""
		nd.mu.Unlock()
		if unexpected != "" {
			return fmt.Errorf("NODE CRASHED: %s exited without being killed: %s", nd.id, unexpected)
		}
		if err := pc.restart(ctx, nd); err != nil {
			return fmt.Errorf("restart %s: %w", nd.id, err)
		}
	}
	return nil
}

func (pc *procCluster) verify(t testing.TB, name string) {
	t.Helper()
	for _, nd := range pc.nodes {
		nd.mu.Lock()
		logs := append(append([]string(nil), nd.logs...), nd.stderr.String())
		lives := nd.lives
		nd.mu.Unlock()
		for _, l := range logs {
			for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
				if i := strings.Index(l, bad); i >= 0 {
					totals.Violations.Add(1)
					t.Errorf("%s: %s reported %q:\n%s", name, nd.id, bad, tailOf(l[i:], 4000))
				}
			}
		}
		t.Logf("%s: %s ran %d times", name, nd.id, lives)
	}
}

// The faults of process clusters.

func (n *nemesis) procLeaderOrAny(ctx context.Context) *procNode {
	if l := n.p.leader(ctx); l != nil {
		return l
	}
	return n.p.nodes[n.rng.IntN(len(n.p.nodes))]
}

func (n *nemesis) procOthers(of *procNode) []*procNode {
	var out []*procNode
	for _, nd := range n.p.nodes {
		if nd != of {
			out = append(out, nd)
		}
	}
	return out
}

func (n *nemesis) procKillRestart(ctx context.Context, victims ...*procNode) error {
	for _, v := range victims {
		if n.p.kill(v) {
			totals.Crashes.Add(1)
		}
	}
	pause(ctx, n.between(100*time.Millisecond, 2*time.Second))
	for _, v := range victims {
		if err := n.p.restart(context.Background(), v); err != nil {
			return err
		}
	}
	return nil
}

func (n *nemesis) procPause(ctx context.Context, v *procNode, lo, hi time.Duration) {
	if n.p.pause(v) {
		totals.Pauses.Add(1)
	}
	pause(ctx, n.between(lo, hi))
	n.p.resume(v)
}

var (
	procFaultPauseLeader = fault{"sigstop-leader", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		n.note("SIGSTOP leader %s", l.id)
		n.procPause(ctx, l, time.Second, 5*time.Second)
		return nil
	}}
	procFaultPauseFollower = fault{"sigstop-follower", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		others := n.procOthers(l)
		v := others[n.rng.IntN(len(others))]
		n.note("SIGSTOP follower %s", v.id)
		n.procPause(ctx, v, time.Second, 5*time.Second)
		return nil
	}}
	procFaultKillLeader = fault{"sigkill-leader", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		n.note("SIGKILL leader %s", l.id)
		return n.procKillRestart(ctx, l)
	}}
	procFaultKillFollower = fault{"sigkill-follower", func(ctx context.Context, n *nemesis) error {
		l := n.procLeaderOrAny(ctx)
		others := n.procOthers(l)
		v := others[n.rng.IntN(len(others))]
		n.note("SIGKILL follower %s", v.id)
		return n.procKillRestart(ctx, v)
	}}
	procFaultKillAll = fault{"sigkill-all", func(ctx context.Context, n *nemesis) error {
		n.note("SIGKILL every node")
		return n.procKillRestart(ctx, n.p.nodes...)
	}}
	procFaultPauseThenKill = fault{"sigstop-then-sigkill-leader", func(ctx context.Context, n *nemesis) error {
		// A leader frozen mid-flight is killed while frozen: whatever it
		// had not written is lost, and the others have moved on.
		l := n.procLeaderOrAny(ctx)
		n.note("SIGSTOP leader %s, then SIGKILL it", l.id)
		if n.p.pause(l) {
			totals.Pauses.Add(1)
		}
		pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
		return n.procKillRestart(ctx, l)
	}}
)

var allProcFaults = []fault{procFaultPauseLeader, procFaultPauseFollower, procFaultKillLeader, procFaultKillFollower,
	procFaultKillAll, procFaultPauseThenKill}

// runProcesses runs cfg on a fresh cluster of processes.
func runProcesses(t testing.TB, cfg linConfig) linResult {
	t.Helper()
	pc := newProcCluster(t, cfg.nodes)
	return runLinearizability(t, cfg, pc, &nemesis{p: pc})
}

// TestLinearizabilityProcesses runs clients against three real tenantkv
// processes while a nemesis pauses them (SIGSTOP/SIGCONT) and kills them
// (SIGKILL), the leader among them, and checks every key's history. Skipped
// with -short: it builds the binary.
func TestLinearizabilityProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tenantkv binary and runs processes; skipped with -short")
	}
	runProcesses(t, linConfig{
		name: "proc-short", nodes: 3, tenants: 2, keys: 3, workers: 6,
		duration: 15 * time.Second, faults: allProcFaults, seed: uint64(time.Now().UnixNano()),
	})
}
