package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ProcNode is one node of a Procs cluster: a `tenantkv serve` process
// whose ports and data directory stay the same across restarts, as a real
// node's would.
type ProcNode struct {
	Index              int
	ID, Dir            string
	Listen, Raft, HTTP string

	mu         sync.Mutex
	proc       *Process // the current life; nil before the first
	stopping   bool     // the cluster is shutting down
	unexpected string   // how a process died that nobody killed
	logs       []string // stderr of earlier lives
	lives      int
}

// Proc returns the node's current process, nil before its first start.
func (n *ProcNode) Proc() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Alive reports whether the node's process is running.
func (n *ProcNode) Alive() bool {
	p := n.Proc()
	return p != nil && p.Alive()
}

// Paused reports whether the node's process is stopped by Pause.
func (n *ProcNode) Paused() bool {
	p := n.Proc()
	return p != nil && p.Paused()
}

// Pid is the process ID of the current process.
func (n *ProcNode) Pid() int { return n.Proc().Cmd.Process.Pid }

// Stderr is the standard error of the current process.
func (n *ProcNode) Stderr() string {
	if p := n.Proc(); p != nil {
		return p.Stderr.String()
	}
	return ""
}

// TakeUnexpectedExit returns how the node's process died if nobody killed
// it ("" if it did not), and forgets it.
func (n *ProcNode) TakeUnexpectedExit() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	u := n.unexpected
	n.unexpected = ""
	return u
}

// History returns the standard error of each of the node's lives, the
// current one last, and how many it had.
func (n *ProcNode) History() (stderrs []string, lives int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := append([]string(nil), n.logs...)
	if n.proc != nil {
		out = append(out, n.proc.Stderr.String())
	}
	return out, n.lives
}

// Procs is a cluster of `tenantkv serve` processes on 127.0.0.1, built
// from this tree: the first node bootstraps, the others join it with its
// operator token.
type Procs struct {
	t      testing.TB
	Bin    string
	Nodes  []*ProcNode
	Token  string   // operator token
	Extra  []string // more serve flags of every node
	root   string
	prefix string
}

// StartProcs starts n nodes with the test timings and extra serve flags.
// The cluster is killed when the test ends. It skips t under -short.
func StartProcs(t testing.TB, n int, extra ...string) *Procs {
	t.Helper()
	Short(t)
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	c := &Procs{t: t, Bin: Binary(t), Extra: extra, root: t.TempDir(), prefix: "tc-" + hex.EncodeToString(suffix[:])}
	t.Cleanup(c.Close)
	for range n {
		if _, err := c.AddNode(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// AddNode starts one more node on fresh ports; it joins the first one.
func (c *Procs) AddNode() (*ProcNode, error) {
	i := len(c.Nodes)
	nd := &ProcNode{Index: i, ID: fmt.Sprintf("%s-p%d", c.prefix, i+1), Dir: filepath.Join(c.root, fmt.Sprintf("p%d", i+1))}
	c.Nodes = append(c.Nodes, nd)
	err := OnFreePorts(3, nd.Dir, func(ports []string) error {
		nd.Listen, nd.Raft, nd.HTTP = ports[0], ports[1], ports[2]
		return c.Start(nd)
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", nd.ID, err)
	}
	if i == 0 {
		if c.Token, err = OperatorToken(nd.Dir); err != nil {
			return nil, err
		}
	}
	return nd, nil
}

// Start launches nd on its directory and ports and waits for its ready
// line (not for /readyz: tests look at what the line promises).
func (c *Procs) Start(nd *ProcNode) error { return c.start(nd, (*Process).WaitReadyLine) }

// start launches nd and waits with wait.
func (c *Procs) start(nd *ProcNode, wait func(*Process, context.Context) error) error {
	args := []string{"serve", "--data", nd.Dir, "--node-id", nd.ID, "--listen", nd.Listen, "--raft", nd.Raft, "--http", nd.HTTP}
	args = append(args, ServeFlags()...)
	if nd.Index > 0 {
		args = append(args, "--join", c.Nodes[0].Listen, "--token-file", OperatorTokenPath(c.Nodes[0].Dir))
	}
	args = append(args, c.Extra...)
	p, err := StartProcess(nd.ID, "", ChildEnv(), c.Bin, args...)
	if err != nil {
		return err
	}
	nd.mu.Lock()
	if nd.proc != nil {
		nd.logs = append(nd.logs, nd.proc.Stderr.String())
	}
	nd.proc = p
	nd.lives++
	nd.mu.Unlock()
	go func() {
		<-p.Exited()
		nd.mu.Lock()
		defer nd.mu.Unlock()
		if !p.Killed() && !nd.stopping && nd.proc == p {
			nd.unexpected = fmt.Sprintf("%v; stderr: %s", p.waitErr, Tail(p.Stderr.String(), 2000))
		}
	}()
	if err := wait(p, context.Background()); err != nil {
		p.Kill()
		return err
	}
	return nil
}

// Kill sends SIGKILL to nd and waits for it to go. It returns false if it
// was not running.
func (c *Procs) Kill(nd *ProcNode) bool {
	p := nd.Proc()
	return p != nil && p.Kill()
}

// Pause stops nd with SIGSTOP; Resume continues it.
func (c *Procs) Pause(nd *ProcNode) bool {
	p := nd.Proc()
	return p != nil && p.Pause()
}

// Resume continues a node stopped by Pause.
func (c *Procs) Resume(nd *ProcNode) {
	if p := nd.Proc(); p != nil {
		p.Resume()
	}
}

// Stop stops nd gracefully (SIGTERM) and returns how it exited.
func (c *Procs) Stop(nd *ProcNode) error {
	p := nd.Proc()
	if p == nil || !p.Alive() {
		return nil
	}
	p.mu.Lock()
	p.killed = true // stopped on purpose
	p.mu.Unlock()
	return p.Stop(ReadyTimeout)
}

// Restart starts a dead node again on its directory and ports, retrying
// while a port is still held. It waits until the node has started, not
// until it is ready: a restarted node prints its ready line only once it
// knows a leader, which a node restarted while a quorum is down does not.
func (c *Procs) Restart(ctx context.Context, nd *ProcNode) error {
	if nd.Alive() {
		return nil
	}
	return RetryAddrInUse(ctx, func() error { return c.start(nd, (*Process).WaitStarted) })
}

// Close kills every node; the test's end calls it.
func (c *Procs) Close() {
	for _, nd := range c.Nodes {
		c.Shutdown(nd)
	}
}

// Shutdown kills nd for good: its exit is not unexpected.
func (c *Procs) Shutdown(nd *ProcNode) {
	nd.mu.Lock()
	nd.stopping = true
	nd.mu.Unlock()
	c.Resume(nd)
	c.Kill(nd)
}

// Endpoints returns every node's client address, up or down.
func (c *Procs) Endpoints() []string {
	var eps []string
	for _, nd := range c.Nodes {
		eps = append(eps, nd.Listen)
	}
	return eps
}

// ReportCrashes returns every line of the nodes' logs, over all their
// lives, that shows a data race, a panic or a fatal error.
func (c *Procs) ReportCrashes() []string {
	var out []string
	for _, nd := range c.Nodes {
		logs, _ := nd.History()
		for _, l := range logs {
			for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
				if i := strings.Index(l, bad); i >= 0 {
					out = append(out, fmt.Sprintf("%s reported %q:\n%s", nd.ID, bad, Tail(l[i:], 4000)))
				}
			}
		}
	}
	return out
}
