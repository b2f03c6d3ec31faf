// Package inproc runs test clusters of real server.Servers in the test's
// process: real Pebble on disk, real raft over TCP on 127.0.0.1. It is for
// tests only.
package inproc

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
	"github.com/tenantkv/tenantkv/server"
)

// Tuning is the raft timing of in-process clusters: testcluster's.
var Tuning = server.RaftTuning{
	HeartbeatTimeout:   testcluster.HeartbeatTimeout,
	ElectionTimeout:    testcluster.ElectionTimeout,
	LeaderLeaseTimeout: testcluster.LeaderLeaseTimeout,
}

// Options adjust a cluster. The zero value is a cluster with Tuning whose
// nodes log nothing.
type Options struct {
	// Tuning replaces the test timing when set (server.RaftTuning{} for
	// raft's defaults).
	Tuning *server.RaftTuning
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger
	// IDPrefix begins every node ID; empty: a random one, so that two
	// clusters of a test never share IDs.
	IDPrefix string
	// Configure, if set, adjusts a node's configuration before each of
	// its starts (advertised addresses, peer TLS).
	Configure func(n *Node, cfg *server.Config)
	// RunShort keeps the cluster under -short, for a benchmark that picks
	// its own -short size; tests leave it false.
	RunShort bool
}

// Node is one in-process node. Its addresses and data directory stay the
// same across restarts, as a real node's would.
type Node struct {
	Index        int
	ID, Dir      string
	Listen, Raft string // client and raft addresses, fixed by the first start

	mu  sync.Mutex
	srv *server.Server // nil while down
}

// Server returns the node's server, nil while it is down.
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Cluster is a set of in-process nodes: the first bootstraps, the others
// join it.
type Cluster struct {
	t     testing.TB
	opts  Options
	root  string
	Nodes []*Node
	Token string // operator token
}

// Start starts n nodes and shuts them down when the test ends. It skips t
// under -short (a cluster test) unless opts.RunShort.
func Start(t testing.TB, n int, opts *Options) *Cluster {
	t.Helper()
	if opts == nil || !opts.RunShort {
		testcluster.Short(t)
	}
	c := &Cluster{t: t, root: t.TempDir()} // before the shutdown below, so removed after it
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.IDPrefix == "" {
		var suffix [3]byte
		_, _ = rand.Read(suffix[:])
		c.opts.IDPrefix = "tc-" + hex.EncodeToString(suffix[:])
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.StartTimeout*time.Duration(n))
	defer cancel()
	for range n {
		if _, err := c.AddNode(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// AddNode starts one more node on fresh ports, joining the first.
func (c *Cluster) AddNode(ctx context.Context) (*Node, error) {
	i := len(c.Nodes)
	n := &Node{Index: i, ID: fmt.Sprintf("%s-n%d", c.opts.IDPrefix, i+1), Dir: filepath.Join(c.root, fmt.Sprintf("n%d", i+1))}
	c.Nodes = append(c.Nodes, n)
	err := testcluster.OnFreePorts(2, n.Dir, func(ports []string) error {
		n.Listen, n.Raft = ports[0], ports[1]
		return c.start(ctx, n)
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", n.ID, err)
	}
	if i == 0 {
		if c.Token, err = testcluster.OperatorToken(n.Dir); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Config is n's configuration: its directory and addresses, the cluster's
// timing and logger, a join of the first node for the others, then what
// Options.Configure changes.
func (c *Cluster) Config(n *Node) server.Config {
	tuning := Tuning
	if c.opts.Tuning != nil {
		tuning = *c.opts.Tuning
	}
	cfg := server.Config{
		NodeID:     n.ID,
		DataDir:    n.Dir,
		ListenAddr: n.Listen,
		RaftAddr:   n.Raft,
		HTTPAddr:   "-",
		Raft:       tuning,
		Logger:     c.opts.Logger,
	}
	if n.Index > 0 {
		cfg.Join = []string{c.Nodes[0].Listen}
		cfg.JoinToken = c.Token
	}
	if c.opts.Configure != nil {
		c.opts.Configure(n, &cfg)
	}
	return cfg
}

func (c *Cluster) start(ctx context.Context, n *Node) error {
	srv, err := server.Start(ctx, c.Config(n))
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return nil
}

// Kill stops n (Close: its connections drop, raft stops). It returns false
// if n was already down.
func (c *Cluster) Kill(n *Node) bool {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv == nil {
		return false
	}
	if err := srv.Close(); err != nil {
		c.t.Logf("close %s: %v", n.ID, err)
	}
	return true
}

// Restart starts a stopped node again on its directory and addresses,
// retrying while a port is still held by a connection of the old one.
func (c *Cluster) Restart(ctx context.Context, n *Node) error {
	if n.Server() != nil {
		return nil
	}
	return testcluster.RetryAddrInUse(ctx, func() error { return c.start(ctx, n) })
}

// Close stops every node; the test's end calls it.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() { c.Kill(n) })
	}
	wg.Wait()
}

// Endpoints returns every node's client address, up or down.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.Listen)
	}
	return eps
}

// Running returns the nodes that are up.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Server() != nil {
			out = append(out, n)
		}
	}
	return out
}

// Open opens a client of every endpoint with token. A token just made may
// not have reached the node the hello goes to (nodes authenticate against
// their own replica): Open retries permission denied for a while.
func (c *Cluster) Open(ctx context.Context, token string) (*client.DB, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		db, err := client.Open(ctx, c.Endpoints(), &client.Options{Token: token, DialTimeout: time.Second})
		if err == nil || !errors.Is(err, client.ErrPermissionDenied) || time.Now().After(deadline) {
			return db, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leader waits until a running node says it leads, and returns it.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	db, err := c.Open(ctx, c.Token)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var l *Node
	err = testcluster.Poll(ctx, func() error {
		st, err := db.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			for _, n := range c.Nodes {
				if m.Leader && n.Listen == m.ClientAddr && n.Server() != nil {
					l = n
					return nil
				}
			}
		}
		return errors.New("no leader")
	})
	return l, err
}

// WaitWritable polls until db acknowledges a write to tenant, for at most
// testcluster.RecoverTimeout, each attempt bounded by attempt.
func WaitWritable(ctx context.Context, db *client.DB, tenant string, attempt time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, testcluster.RecoverTimeout)
	defer cancel()
	return testcluster.Poll(ctx, func() error {
		opCtx, cancel := context.WithTimeout(ctx, attempt)
		defer cancel()
		return db.Tenant(tenant).Set(opCtx, []byte("\xffprobe"), []byte("ok"))
	})
}
