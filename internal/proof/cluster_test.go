package proof

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/testcluster"
	"github.com/tenantkv/tenantkv/internal/testcluster/inproc"
	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// Deadlines of the cluster harness (internal/testcluster's). They bound
// waits; nothing sleeps for correctness.
const (
	startTimeout   = testcluster.StartTimeout
	recoverTimeout = testcluster.RecoverTimeout
	pollEvery      = testcluster.PollInterval
)

// testRaft is the raft timing of in-process clusters, the one of every
// test cluster (internal/testcluster/inproc).
var testRaft = inproc.Tuning

// testLogger receives the logs of in-process nodes; nil discards them.
var testLogger *slog.Logger

// testNode is one in-process node. Its ports stay the same across restarts,
// as a real node's would.
type testNode struct {
	idx    int
	id     string
	dir    string
	listen string // client address
	raft   string // the node's own raft address, behind the proxy
	proxy  *Proxy // nil without a Network

	mu  sync.Mutex
	srv *server.Server // nil while down
}

func (n *testNode) server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// cluster is a set of in-process nodes over real TCP on 127.0.0.1, each
// behind a fault-injecting proxy for its raft traffic. It is built from
// internal/testcluster's parts (ports, retries, timings, -short); its nodes
// are this package's own, since the attack tests start nodes by hand.
type cluster struct {
	t      testing.TB
	net    *Network
	nodes  []*testNode
	token  string // operator token
	tuning server.RaftTuning
	logger *slog.Logger // nil discards the nodes' logs
	admin  *client.DB   // operator client on every endpoint
	// configure, if set, adjusts each node's configuration (peer TLS).
	configure func(nd *testNode, cfg *server.Config)
	// root holds the nodes' directories; it is removed after the cluster
	// is shut down (its TempDir is made before the shutdown is registered,
	// and cleanups run last first).
	root string
}

// newCluster starts n nodes: the first bootstraps, the others join it. The
// cluster is shut down when the test ends.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return newClusterTuned(t, n, testRaft)
}

// newClusterTuned is newCluster with the given raft timing.
func newClusterTuned(t testing.TB, n int, tuning server.RaftTuning) *cluster {
	t.Helper()
	return newClusterWith(t, n, &cluster{tuning: tuning, logger: testLogger})
}

// newClusterWith is newCluster with the tuning, logger and configure hook
// of proto.
func newClusterWith(t testing.TB, n int, proto *cluster) *cluster {
	t.Helper()
	testcluster.Short(t)
	root := t.TempDir() // before the shutdown below, so removed after it
	c := &cluster{t: t, net: NewNetwork(), tuning: proto.tuning, logger: proto.logger, configure: proto.configure, root: root}
	t.Cleanup(c.close)
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	for i := range n {
		nd := &testNode{idx: i, id: fmt.Sprintf("proof-%s-n%d", hex.EncodeToString(suffix[:]), i+1),
			dir: filepath.Join(root, fmt.Sprintf("n%d", i+1))}
		p, err := c.net.Listen(nd.id)
		if err != nil {
			t.Fatal(err)
		}
		nd.proxy = p
		c.nodes = append(c.nodes, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout*time.Duration(n))
	defer cancel()
	for _, nd := range c.nodes {
		if err := c.firstStart(ctx, nd); err != nil {
			t.Fatalf("start %s: %v", nd.id, err)
		}
		if nd.idx == 0 {
			tok, err := testcluster.OperatorToken(nd.dir)
			if err != nil {
				t.Fatal(err)
			}
			c.token = tok
		}
	}
	c.checkAdvertised(ctx)
	db, err := client.Open(ctx, c.endpoints(), &client.Options{Token: c.token, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.admin = db
	return c
}

// firstStart starts a node on fresh ports, trying others if one was taken
// between choosing and binding it.
func (c *cluster) firstStart(ctx context.Context, nd *testNode) error {
	return testcluster.OnFreePorts(2, nd.dir, func(ports []string) error {
		nd.listen, nd.raft = ports[0], ports[1]
		nd.proxy.SetTarget(nd.raft)
		return c.start(ctx, nd)
	})
}

func (c *cluster) config(nd *testNode) server.Config {
	cfg := server.Config{
		NodeID:     nd.id,
		DataDir:    nd.dir,
		ListenAddr: nd.listen,
		RaftAddr:   nd.raft,
		HTTPAddr:   "-",
		Raft:       c.tuning,
		Logger:     c.logger,
	}
	if nd.proxy != nil {
		cfg.RaftAdvertiseAddr = nd.proxy.Addr()
	}
	if nd.idx > 0 {
		cfg.Join = []string{c.nodes[0].listen}
		cfg.JoinToken = c.token
	}
	if c.configure != nil {
		c.configure(nd, &cfg)
	}
	return cfg
}

func (c *cluster) start(ctx context.Context, nd *testNode) error {
	srv, err := server.Start(ctx, c.config(nd))
	if err != nil {
		return err
	}
	nd.mu.Lock()
	nd.srv = srv
	nd.mu.Unlock()
	return nil
}

// checkAdvertised fails the test if the raft configuration does not list
// the proxies' addresses: the network faults would then be no-ops.
func (c *cluster) checkAdvertised(ctx context.Context) {
	if len(c.nodes) < 2 {
		return
	}
	want := map[string]string{}
	for _, nd := range c.nodes {
		want[nd.id] = nd.proxy.Addr()
	}
	var st *wire.ClusterStatus
	err := poll(ctx, func() error {
		var err error
		st, err = c.status(ctx, c.nodes[0])
		if err == nil && len(st.Members) != len(c.nodes) {
			err = fmt.Errorf("%d members", len(st.Members))
		}
		return err
	})
	if err != nil {
		c.t.Fatalf("cluster status: %v", err)
	}
	for _, m := range st.Members {
		if want[m.ID] != m.RaftAddr {
			c.t.Fatalf("node %s advertises raft address %s, not its proxy %s: server.Config.RaftAdvertiseAddr "+
				"is not honoured, so the network faults of this test would change nothing", m.ID, m.RaftAddr, want[m.ID])
		}
	}
}

// kill stops a node (Close: its connections drop, raft stops). It returns
// false if the node was already down.
func (c *cluster) kill(nd *testNode) bool {
	nd.mu.Lock()
	srv := nd.srv
	nd.srv = nil
	nd.mu.Unlock()
	if srv == nil {
		return false
	}
	if err := srv.Close(); err != nil {
		c.t.Logf("close %s: %v", nd.id, err)
	}
	return true
}

// restart starts a stopped node again on its data directory and ports,
// retrying while a port is still held by a connection of the old one.
func (c *cluster) restart(ctx context.Context, nd *testNode) error {
	if nd.server() != nil {
		return nil
	}
	return testcluster.RetryAddrInUse(ctx, func() error { return c.start(ctx, nd) })
}

func (c *cluster) close() {
	if c.admin != nil {
		c.admin.Close()
	}
	var wg sync.WaitGroup
	for _, nd := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.kill(nd)
		}()
	}
	wg.Wait()
	c.net.Close()
}

// endpoints returns every node's client address, up or down.
func (c *cluster) endpoints() []string {
	var eps []string
	for _, nd := range c.nodes {
		eps = append(eps, nd.listen)
	}
	return eps
}

// running returns the nodes that are up.
func (c *cluster) running() []*testNode {
	var out []*testNode
	for _, nd := range c.nodes {
		if nd.server() != nil {
			out = append(out, nd)
		}
	}
	return out
}

// status asks one node for its view of the cluster.
func (c *cluster) status(ctx context.Context, nd *testNode) (*wire.ClusterStatus, error) {
	return nodeStatus(ctx, nd.listen, c.token)
}

// nodeStatus asks the node at addr for its view of the cluster.
func nodeStatus(ctx context.Context, addr, token string) (*wire.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, _, err := loginRaw(ctx, addr, token)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	rc.timeout = 2 * time.Second
	resp, _, err := rc.call(&wire.Request{Op: wire.OpClusterStatus})
	if err != nil {
		return nil, err
	}
	if resp.Code != wire.CodeOK || resp.Cluster == nil {
		return nil, fmt.Errorf("cluster status on %s: %s: %s", addr, resp.Code, resp.Msg)
	}
	return resp.Cluster, nil
}

// leader returns the node that says it is the leader, or nil.
func (c *cluster) leader(ctx context.Context) *testNode {
	for _, nd := range c.running() {
		st, err := c.status(ctx, nd)
		if err == nil && st.LeaderID == nd.id {
			return nd
		}
	}
	return nil
}

// waitLeader polls until a node says it is the leader.
func (c *cluster) waitLeader(ctx context.Context) (*testNode, error) {
	var l *testNode
	err := poll(ctx, func() error {
		if l = c.leader(ctx); l == nil {
			return errors.New("no leader")
		}
		return nil
	})
	return l, err
}

// waitWritable polls until the cluster acknowledges a write through the
// operator client.
func (c *cluster) waitWritable(ctx context.Context, tenant string) error {
	return inproc.WaitWritable(ctx, c.admin, tenant, 2*time.Second)
}

// The waits and ports of internal/testcluster, under this package's names.

func freePorts(n int) ([]string, error) { return testcluster.FreePorts(n) }

// permanentError stops poll at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// poll calls f until it returns nil, a *permanentError or ctx ends; it
// returns f's last error.
func poll(ctx context.Context, f func() error) error {
	return testcluster.Poll(ctx, func() error {
		err := f()
		if pe := (*permanentError)(nil); errors.As(err, &pe) {
			return testcluster.Permanent(pe.err)
		}
		return err
	})
}

// pause waits d or until ctx ends. It paces the nemesis; it never stands in
// for waiting on a condition.
func pause(ctx context.Context, d time.Duration) { testcluster.Pause(ctx, d) }
