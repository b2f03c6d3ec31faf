package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/server"
)

// txCluster is an in-process cluster of real servers over TCP on
// 127.0.0.1, whose nodes can be killed (Close) and restarted on the same
// addresses and data directories.
type txCluster struct {
	t     testing.TB
	token string // operator token
	mu    sync.Mutex
	nodes []*txNode
}

type txNode struct {
	cfg server.Config
	s   *server.Server // nil while down
}

var txRaft = server.RaftTuning{
	HeartbeatTimeout:   100 * time.Millisecond,
	ElectionTimeout:    100 * time.Millisecond,
	LeaderLeaseTimeout: 50 * time.Millisecond,
}

func newTxCluster(t testing.TB, size int) *txCluster {
	t.Helper()
	c := &txCluster{t: t}
	t.Cleanup(c.close)
	base := t.TempDir()
	for i := range size {
		cfg := server.Config{
			NodeID:     "n" + string(rune('0'+i)),
			DataDir:    filepath.Join(base, "n"+string(rune('0'+i))),
			ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
			Raft: txRaft,
		}
		if i > 0 {
			cfg.Join, cfg.JoinToken = []string{c.nodes[0].cfg.ListenAddr}, c.token
		}
		s := c.startServer(cfg)
		// Restarts reuse the bound addresses.
		cfg.ListenAddr, cfg.RaftAddr = s.Addr(), s.RaftAddr()
		c.nodes = append(c.nodes, &txNode{cfg: cfg, s: s})
		if i == 0 {
			tok, err := os.ReadFile(filepath.Join(cfg.DataDir, server.OperatorTokenFile))
			if err != nil {
				t.Fatal(err)
			}
			c.token = strings.TrimSpace(string(tok))
		}
	}
	return c
}

func (c *txCluster) startServer(cfg server.Config) *server.Server {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := server.Start(ctx, cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.NodeID, err)
	}
	return s
}

func (c *txCluster) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.s != nil {
			n.s.Close()
			n.s = nil
		}
	}
}

func (c *txCluster) addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.cfg.ListenAddr)
	}
	return out
}

// leader returns the index of the node that leads, waiting for one.
func (c *txCluster) leader(ctx context.Context) int {
	c.t.Helper()
	db := c.open(ctx, c.token)
	defer db.Close()
	for {
		st, err := db.ClusterStatus(ctx)
		if err == nil {
			for _, m := range st.Members {
				if !m.Leader {
					continue
				}
				for i, n := range c.nodes {
					if n.cfg.ListenAddr == m.ClientAddr && n.s != nil {
						return i
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no leader: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (c *txCluster) kill(i int) {
	c.mu.Lock()
	s := c.nodes[i].s
	c.nodes[i].s = nil
	c.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

func (c *txCluster) restart(i int) {
	s := c.startServer(c.nodes[i].cfg)
	c.mu.Lock()
	c.nodes[i].s = s
	c.mu.Unlock()
}

func (c *txCluster) open(ctx context.Context, token string) *client.DB {
	c.t.Helper()
	// A token just made may not have reached the follower the hello goes
	// to: nodes authenticate against their own replica.
	deadline := time.Now().Add(10 * time.Second)
	for {
		db, err := client.Open(ctx, c.addrs(), &client.Options{Token: token, DialTimeout: time.Second})
		if err == nil {
			return db
		}
		if !errors.Is(err, client.ErrPermissionDenied) || time.Now().After(deadline) {
			c.t.Fatalf("open: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tenant creates a tenant and returns a DB holding a token of it.
func (c *txCluster) tenant(ctx context.Context, name string, cfg *client.TenantConfig) *client.DB {
	c.t.Helper()
	admin := c.open(ctx, c.token)
	defer admin.Close()
	if _, err := admin.CreateTenant(ctx, name, cfg); err != nil {
		c.t.Fatal(err)
	}
	tok, err := admin.NewTenantToken(ctx, name)
	if err != nil {
		c.t.Fatal(err)
	}
	db := c.open(ctx, tok)
	c.t.Cleanup(func() { db.Close() })
	return db
}
