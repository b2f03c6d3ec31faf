package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// Deadlines of a local cluster.
const (
	nodeReadyTimeout   = 60 * time.Second
	clusterFormTimeout = 30 * time.Second
	nodeStopTimeout    = 15 * time.Second
	pollEvery          = 50 * time.Millisecond
)

// LocalOptions configure StartLocal.
type LocalOptions struct {
	// Binary is the tenantkv executable that runs the nodes (`serve`).
	Binary string
	// Nodes is the number of nodes; zero means 1.
	Nodes int
	// Dir is where the cluster's temporary directory is made; empty means
	// the system's temporary directory.
	Dir string
	// Status receives a line when the cluster is up; nil discards it.
	Status io.Writer
}

// LocalCluster is a cluster of real `tenantkv serve` processes on free ports
// of 127.0.0.1, with their data in a temporary directory. Close stops them
// and removes the directory.
type LocalCluster struct {
	dir   string
	token string
	nodes []*localNode
}

type localNode struct {
	id, addr, httpAddr string
	cmd                *exec.Cmd
	log                *os.File
	logPath            string
	exited             chan struct{}
	waitErr            error // set before exited is closed
}

// StartLocal starts a cluster of opts.Nodes nodes: the first bootstraps it,
// the others join it with its operator token, one after the other. It
// returns once every node answers /readyz and the cluster lists every
// member. On failure it stops what it started.
func StartLocal(ctx context.Context, opts LocalOptions) (_ *LocalCluster, err error) {
	n := max(opts.Nodes, 1)
	if opts.Binary == "" {
		return nil, errors.New("bench: no tenantkv binary to start nodes with")
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("bench: tenantkv binary: %w", err)
	}
	dir, err := os.MkdirTemp(opts.Dir, "tenantkv-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	c := &LocalCluster{dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		var join []string
		if i > 0 {
			join = []string{"--join", c.nodes[0].addr, "--token-file", filepath.Join(dir, "n1", "operator.token")}
		}
		node, err := startNode(ctx, opts.Binary, dir, "n"+strconv.Itoa(i+1), join)
		if node != nil {
			c.nodes = append(c.nodes, node)
		}
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if c.token, err = waitToken(ctx, filepath.Join(dir, "n1", "operator.token")); err != nil {
				return nil, err
			}
		}
	}
	if err := c.waitMembers(ctx, n); err != nil {
		return nil, err
	}
	if opts.Status != nil {
		fmt.Fprintf(opts.Status, "local cluster of %s up in %.1fs (%s)\n", plural(n, "node"), time.Since(start).Seconds(), dir)
	}
	return c, nil
}

// Target returns the cluster as a bench target.
func (c *LocalCluster) Target() Target {
	t := Target{Token: c.token, Nodes: len(c.nodes), Description: "local, " + plural(len(c.nodes), "node")}
	for _, n := range c.nodes {
		t.Endpoints = append(t.Endpoints, n.addr)
		t.HTTP = append(t.HTTP, n.httpAddr)
	}
	return t
}

// RSS returns the resident memory of each node's process, in bytes, read
// from /proc/PID/status; it fails where there is no /proc.
func (c *LocalCluster) RSS() ([]int64, error) {
	out := make([]int64, len(c.nodes))
	for i, n := range c.nodes {
		v := procField(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid), "VmRSS")
		kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
		if v == "" || err != nil {
			return nil, fmt.Errorf("bench: resident memory of node %s: not available on %s", n.id, "this system")
		}
		out[i] = kb << 10
	}
	return out, nil
}

// Close stops every node (SIGTERM, then SIGKILL after nodeStopTimeout) and
// removes the cluster's directory. It is safe to call more than once, and
// on a nil *LocalCluster.
func (c *LocalCluster) Close() error {
	if c == nil {
		return nil
	}
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.nodes[i].stop()
	}
	c.nodes = nil
	if c.dir == "" {
		return nil
	}
	err := os.RemoveAll(c.dir)
	c.dir = ""
	return err
}

// errPortTaken: a node could not bind one of its addresses.
var errPortTaken = errors.New("bench: address already in use")

// startNode starts one node on free ports, retrying on other ports when one
// was taken meanwhile, and waits for it to be ready. A node that started
// but never became ready is returned with the error, for the caller to stop.
func startNode(ctx context.Context, binary, dir, id string, extra []string) (*localNode, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		data := filepath.Join(dir, id)
		args := append([]string{"serve", "--data", data, "--node-id", id, "--listen", ports[0],
			"--raft", ports[1], "--http", ports[2], "--log-level", "warn",
			"--debug"}, extra...) // settle flushes every node: POST /debug/flush
		n := &localNode{id: id, addr: ports[0], httpAddr: ports[2], exited: make(chan struct{}),
			logPath: filepath.Join(dir, id+".log")}
		if n.log, err = os.Create(n.logPath); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		n.cmd = exec.Command(binary, args...)
		n.cmd.Env = childEnv()
		n.cmd.SysProcAttr = nodeProcAttr()
		n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
		if err := n.cmd.Start(); err != nil {
			n.log.Close()
			return nil, fmt.Errorf("bench: start node %s: %w", id, err)
		}
		go func() {
			n.waitErr = n.cmd.Wait()
			close(n.exited)
		}()
		err = n.waitReady(ctx)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return n, err
		}
		n.stop()
		if err := os.RemoveAll(data); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
}

// childEnv is this process's environment without TENANTKV_ variables,
// which could change what a node does.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TENANTKV_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePorts returns n distinct free TCP addresses of 127.0.0.1. Another
// process may take one before it is used; callers retry then.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitReady polls /readyz until it answers 200.
func (n *localNode) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, nodeReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.exited:
			log := n.logTail()
			if strings.Contains(log, "address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("bench: node %s exited before it was ready: %v: %s", n.id, n.waitErr, log)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("bench: node %s not ready after %v: %s", n.id, nodeReadyTimeout, n.logTail())
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// logTail returns the end of the node's log.
func (n *localNode) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// stop ends the node gracefully, or kills it after nodeStopTimeout.
func (n *localNode) stop() {
	defer n.log.Close()
	select {
	case <-n.exited:
		return
	default:
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = n.cmd.Process.Kill()
	}
	select {
	case <-n.exited:
	case <-time.After(nodeStopTimeout):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// waitToken waits for the bootstrap node's operator token file.
func waitToken(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, nodeReadyTimeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("bench: no operator token in %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitMembers waits until the cluster has a leader and n members.
func (c *LocalCluster) waitMembers(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, clusterFormTimeout)
	defer cancel()
	db, err := client.Open(ctx, c.Target().Endpoints, &client.Options{Token: c.token})
	if err != nil {
		return fmt.Errorf("bench: connect to the local cluster: %w", err)
	}
	defer db.Close()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		st, err := db.ClusterStatus(ctx)
		if err == nil && st.LeaderID != "" && len(st.Members) == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: local cluster did not form with %s: last status %+v, %v", plural(n, "member"), st, err)
		case <-tick.C:
		}
	}
}
