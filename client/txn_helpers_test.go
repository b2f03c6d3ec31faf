package client_test

import (
	"context"
	"testing"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/testcluster/inproc"
)

// txCluster is the shared in-process cluster (internal/testcluster/inproc)
// with the helpers these tests call: nodes by index, and fatal errors.
type txCluster struct {
	*inproc.Cluster
	t     testing.TB
	token string // operator token
}

func newTxCluster(t testing.TB, size int) *txCluster {
	t.Helper()
	c := inproc.Start(t, size, nil)
	return &txCluster{Cluster: c, t: t, token: c.Token}
}

// leader returns the index of the node that leads, waiting for one.
func (c *txCluster) leader(ctx context.Context) int {
	c.t.Helper()
	l, err := c.Leader(ctx)
	if err != nil {
		c.t.Fatalf("no leader: %v", err)
	}
	return l.Index
}

func (c *txCluster) kill(i int) { c.Kill(c.Nodes[i]) }

func (c *txCluster) restart(i int) {
	c.t.Helper()
	if err := c.Restart(context.Background(), c.Nodes[i]); err != nil {
		c.t.Fatalf("restart %s: %v", c.Nodes[i].ID, err)
	}
}

func (c *txCluster) open(ctx context.Context, token string) *client.DB {
	c.t.Helper()
	db, err := c.Open(ctx, token)
	if err != nil {
		c.t.Fatalf("open: %v", err)
	}
	return db
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
