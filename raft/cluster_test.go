package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/testcluster"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// This file is the test cluster: N nodes in one process, each with its own
// on-disk store and raft directory, over raft's in-memory transport or real
// TCP on 127.0.0.1.

type transportKind string

const (
	// inmemTransport is raft's InmemTransport; partitions use Disconnect.
	// It has no heartbeat fast path.
	inmemTransport transportKind = "inmem"
	// tcpTransport is raft's NetworkTransport over real TCP sockets with a
	// stream layer that can cut links, so partitions work over TCP too.
	tcpTransport transportKind = "tcp"
	// builtinTCP is the transport Node builds itself from RaftAddr.
	builtinTCP transportKind = "tcp-builtin"
)

type clusterOptions struct {
	snapshotThreshold uint64
	snapshotInterval  time.Duration
	trailingLogs      uint64
	maxAppendEntries  int
	commitTimeout     time.Duration
	// publish gives each node a ClientAddr, published as member metadata.
	publish bool
	// slow triples the test timeouts; defaultTimeouts uses the production
	// defaults (1s heartbeat and election), for benchmarks under load.
	slow            bool
	defaultTimeouts bool
}

type testCluster struct {
	t    testing.TB
	kind transportKind
	opts clusterOptions
	base string // parent of every node's directory
	seq  int
	// mu guards nodes and each testNode's node and store fields, which
	// change on kill and restart while writer goroutines look for the
	// leader.
	mu    sync.Mutex
	nodes []*testNode
}

type testNode struct {
	c     *testCluster
	id    string
	dir   string
	addr  string // raft address, fixed after the first start
	store *store.Store
	node  *Node // nil while killed
	inmem *hraft.InmemTransport
	links *linkCutter
}

// testLogger discards unless TENANTKV_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("TENANTKV_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newCluster starts size nodes: the first bootstraps, the others join it
// through AddVoter. Everything is shut down by t.Cleanup.
func newCluster(t testing.TB, size int, kind transportKind, opts clusterOptions) *testCluster {
	testcluster.Short(t)
	// The base directory is made first so that its removal, a cleanup too,
	// runs after the nodes are shut down (cleanups run last-in first-out).
	c := &testCluster{t: t, kind: kind, opts: opts, base: t.TempDir()}
	t.Cleanup(c.shutdown)
	first := c.addNode()
	c.start(first, true)
	c.waitLeader()
	for i := 1; i < size; i++ {
		c.join(c.addNode())
	}
	c.waitConverged()
	return c
}

func (c *testCluster) addNode() *testNode {
	n := &testNode{c: c, id: fmt.Sprintf("n%d", c.seq), dir: c.tempDir()}
	c.seq++
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

func (c *testCluster) tempDir() string {
	dir, err := os.MkdirTemp(c.base, "node")
	require.NoError(c.t, err)
	return dir
}

// join starts n and adds it to the cluster as a voter.
func (c *testCluster) join(n *testNode) {
	c.start(n, false)
	require.Eventually(c.t, func() bool {
		l := c.leaderOrNil()
		if l == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err := l.node.AddVoter(ctx, n.id, n.addr)
		if err != nil {
			c.t.Logf("add voter %s: %v", n.id, err)
		}
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "join %s", n.id)
}

func (c *testCluster) config(n *testNode, bootstrap bool) Config {
	// The timings of every test cluster (internal/testcluster).
	hb, el, lease := testcluster.HeartbeatTimeout, testcluster.ElectionTimeout, testcluster.LeaderLeaseTimeout
	switch {
	case c.opts.defaultTimeouts:
		hb, el, lease = 0, 0, 0
	case c.opts.slow:
		hb, el, lease = 3*hb, 3*el, 3*lease
	}
	cfg := Config{
		ID:                 n.id,
		Dir:                filepath.Join(n.dir, "raft"),
		Store:              n.store,
		Bootstrap:          bootstrap,
		Logger:             testLogger(),
		HeartbeatTimeout:   hb,
		ElectionTimeout:    el,
		LeaderLeaseTimeout: lease,
		CommitTimeout:      c.opts.commitTimeout,
		SnapshotInterval:   c.opts.snapshotInterval,
		SnapshotThreshold:  c.opts.snapshotThreshold,
		TrailingLogs:       c.opts.trailingLogs,
		MaxAppendEntries:   c.opts.maxAppendEntries,
	}
	if c.opts.publish {
		cfg.ClientAddr = "client-of-" + n.id
	}
	return cfg
}

// start opens n's store and starts its node from its directories.
func (c *testCluster) start(n *testNode, bootstrap bool) {
	t := c.t
	st, err := store.Open(filepath.Join(n.dir, "store"), nil)
	require.NoError(t, err)
	c.mu.Lock()
	n.store = st
	c.mu.Unlock()
	cfg := c.config(n, bootstrap)
	switch c.kind {
	case inmemTransport:
		if n.addr == "" {
			n.addr = n.id
		}
		_, n.inmem = hraft.NewInmemTransport(hraft.ServerAddress(n.addr))
		for _, o := range c.live() {
			if o != n && o.inmem != nil {
				o.inmem.Connect(hraft.ServerAddress(n.addr), n.inmem)
				n.inmem.Connect(hraft.ServerAddress(o.addr), o.inmem)
			}
		}
		cfg.Transport = n.inmem
	case tcpTransport:
		bind := n.addr
		if bind == "" {
			bind = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", bind)
		require.NoError(t, err)
		n.links = &linkCutter{Listener: ln, blocked: map[string]bool{}, conns: map[string]map[net.Conn]bool{}}
		n.addr = ln.Addr().String()
		cfg.Transport = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream: n.links, MaxPool: 3, Timeout: 2 * time.Second,
			Logger: newHCLogAdapter(cfg.Logger, "transport"),
		})
	case builtinTCP:
		cfg.RaftAddr = n.addr
		if cfg.RaftAddr == "" {
			cfg.RaftAddr = "127.0.0.1:0"
		}
	}
	node, err := NewNode(cfg)
	require.NoError(t, err)
	c.mu.Lock()
	n.node = node
	n.addr = node.RaftAddr()
	c.mu.Unlock()
}

// kill shuts n's node down and closes its store. Shutdown is graceful in
// raft's sense, but nothing beyond what a crash leaves is relied upon: the
// store was written without fsync and is reopened from disk.
func (c *testCluster) kill(n *testNode) {
	c.mu.Lock()
	node, st := n.node, n.store
	n.node, n.store = nil, nil
	c.mu.Unlock()
	require.NotNil(c.t, node, "%s already down", n.id)
	require.NoError(c.t, node.Shutdown())
	require.NoError(c.t, st.Close())
	for _, o := range c.all() {
		if o.inmem != nil && o != n {
			o.inmem.Disconnect(hraft.ServerAddress(n.addr))
		}
	}
}

func (c *testCluster) restart(n *testNode) { c.start(n, false) }

func (c *testCluster) shutdown() {
	for _, n := range c.live() {
		c.kill(n)
	}
}

// all returns every node ever added, live or not.
func (c *testCluster) all() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*testNode(nil), c.nodes...)
}

func (c *testCluster) live() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, n := range c.nodes {
		if n.node != nil {
			out = append(out, n)
		}
	}
	return out
}

// nodeOf returns n's running node, or nil while it is down.
func (c *testCluster) nodeOf(n *testNode) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.node
}

// leaderOrNil returns the live node (among `among`, default all) that is a
// ready leader in the highest term, or nil.
func (c *testCluster) leaderOrNil(among ...*testNode) *testNode {
	if len(among) == 0 {
		among = c.live()
	}
	var best *testNode
	var bestTerm uint64
	for _, n := range among {
		node := c.nodeOf(n)
		if node == nil || !node.IsLeader() {
			continue
		}
		term := node.raft.CurrentTerm()
		if node.leader.readyTerm() == term && term > bestTerm {
			best, bestTerm = n, term
		}
	}
	return best
}

func (c *testCluster) waitLeader(among ...*testNode) *testNode {
	var l *testNode
	require.Eventually(c.t, func() bool {
		l = c.leaderOrNil(among...)
		return l != nil
	}, 20*time.Second, 10*time.Millisecond, "no leader elected")
	return l
}

func (c *testCluster) followers() []*testNode {
	l := c.waitLeader()
	var out []*testNode
	for _, n := range c.live() {
		if n != l {
			out = append(out, n)
		}
	}
	return out
}

// propose sends cmd to the leader, following leadership changes, until it
// gets an answer other than ErrNotLeader. ErrCommitUnknown is returned.
func (c *testCluster) propose(cmd command.Command, among ...*testNode) (*fsm.Result, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		node := c.nodeOf(c.waitLeader(among...))
		if node == nil {
			continue // killed meanwhile
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := node.Propose(ctx, cmd)
		cancel()
		// ErrNotLeader and a plain ErrShutdown (the node was killed before
		// raft took the command) are definite failures: retry elsewhere.
		retry := errors.Is(err, ErrNotLeader) || (errors.Is(err, ErrShutdown) && !errors.Is(err, ErrCommitUnknown))
		if !retry || time.Now().After(deadline) {
			return res, err
		}
		time.Sleep(5 * time.Millisecond) // let the election settle
	}
}

func (c *testCluster) mustPropose(cmd command.Command, among ...*testNode) *fsm.Result {
	res, err := c.propose(cmd, among...)
	require.NoError(c.t, err)
	return res
}

func (c *testCluster) createTenant(name string) keyspace.TenantID {
	return c.mustPropose(&command.CreateTenant{Name: name, CreatedAt: time.Unix(1700000000, 0).UTC()}).TenantID
}

// waitConverged waits until every live node has applied the same index and
// all stores have the same checksum (tenants and system keyspace alike).
// Replicas that stay different past the deadline fail the test.
func (c *testCluster) waitConverged() {
	c.t.Helper()
	var last string
	ok := assertEventually(20*time.Second, func() bool {
		l := c.waitLeader()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := l.node.ReadBarrier(ctx)
		cancel()
		if err != nil {
			last = fmt.Sprintf("read barrier on %s: %v", l.id, err)
			return false
		}
		target := l.node.AppliedIndex()
		var parts []string
		sums := map[uint64]bool{}
		for _, n := range c.live() {
			applied := n.node.AppliedIndex()
			sum, err := n.store.Checksum()
			require.NoError(c.t, err)
			parts = append(parts, fmt.Sprintf("%s applied=%d sum=%x", n.id, applied, sum))
			if applied != target {
				last = strings.Join(parts, "; ") + fmt.Sprintf(" (target %d)", target)
				return false
			}
			sums[sum] = true
		}
		last = strings.Join(parts, "; ")
		return len(sums) == 1 && l.node.AppliedIndex() == target
	})
	if !ok {
		c.t.Fatalf("replicas did not converge: %s", last)
	}
}

// assertEventually polls cond every 10ms until it holds or d passes.
func assertEventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// partition cuts every link between the nodes of group and the others.
func (c *testCluster) partition(group ...*testNode) {
	in := map[*testNode]bool{}
	for _, n := range group {
		in[n] = true
	}
	for _, a := range c.all() {
		for _, b := range c.all() {
			if in[a] && !in[b] {
				c.cut(a, b)
				c.cut(b, a)
			}
		}
	}
}

func (c *testCluster) cut(from, to *testNode) {
	switch {
	case from.inmem != nil:
		from.inmem.Disconnect(hraft.ServerAddress(to.addr))
	case from.links != nil:
		from.links.block(to.addr)
	default:
		c.t.Fatalf("transport %s cannot be partitioned", c.kind)
	}
}

// heal restores every link between live nodes.
func (c *testCluster) heal() {
	for _, a := range c.live() {
		for _, b := range c.live() {
			if a == b {
				continue
			}
			switch {
			case a.inmem != nil:
				a.inmem.Connect(hraft.ServerAddress(b.addr), b.inmem)
			case a.links != nil:
				a.links.unblock(b.addr)
			}
		}
	}
}

// get reads key of tenant id from n's store.
func (n *testNode) get(id keyspace.TenantID, key string) ([]byte, error) {
	v, err := n.store.Tenant(id)
	if err != nil {
		return nil, err
	}
	return v.Get([]byte(key))
}

func (n *testNode) stat(name string) string { return n.node.Stats()[name] }

// sortedIDs is for stable failure messages.
func sortedIDs(ns []*testNode) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	sort.Strings(out)
	return out
}

// linkCutter is a raft StreamLayer over real TCP whose outgoing links can be
// cut. Every raft connection is dialed by the side sending requests, so
// cutting both directions of a pair (partition) stops all traffic between
// them, heartbeats included, while the transport above is raft's real
// NetworkTransport with its heartbeat fast path.
type linkCutter struct {
	net.Listener
	mu      sync.Mutex
	blocked map[string]bool
	conns   map[string]map[net.Conn]bool
}

var _ hraft.StreamLayer = (*linkCutter)(nil)

func (l *linkCutter) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	a := string(addr)
	l.mu.Lock()
	blocked := l.blocked[a]
	l.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("test partition: %s unreachable", a)
	}
	conn, err := net.DialTimeout("tcp", a, timeout)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocked[a] {
		conn.Close()
		return nil, fmt.Errorf("test partition: %s unreachable", a)
	}
	if l.conns[a] == nil {
		l.conns[a] = map[net.Conn]bool{}
	}
	tc := &trackedConn{Conn: conn, l: l, addr: a}
	l.conns[a][tc] = true
	return tc, nil
}

func (l *linkCutter) block(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocked[addr] = true
	for c := range l.conns[addr] {
		c.(*trackedConn).Conn.Close()
	}
	delete(l.conns, addr)
}

func (l *linkCutter) unblock(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.blocked, addr)
}

type trackedConn struct {
	net.Conn
	l    *linkCutter
	addr string
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns[c.addr], c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
