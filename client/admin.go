package client

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// TenantConfig is the configuration of a new tenant. Zero fields mean
// "unlimited" or the server's default. A nil *TenantConfig means all
// defaults.
type TenantConfig struct {
	MaxBytes      uint64 // logical bytes stored
	MaxKeys       uint64 // keys stored
	OpsPerSec     uint64 // sustained requests per second
	Burst         uint64 // requests above OpsPerSec allowed in a burst
	MaxConcurrent uint64 // requests in flight at once
	MaxWatches    uint64 // watches open at once
	Labels        map[string]string
}

// Limits are a tenant's limits; zero means unlimited.
type Limits struct {
	MaxBytes      uint64
	MaxKeys       uint64
	OpsPerSec     uint64
	Burst         uint64
	MaxConcurrent uint64
	MaxWatches    uint64
}

// Usage is what a tenant stores and has done.
type Usage struct {
	LogicalBytes uint64
	Keys         uint64
	DiskBytes    uint64
	Reads        uint64
	Writes       uint64
	BytesRead    uint64
	BytesWritten uint64
	Throttled    uint64
	Errors       uint64
}

// TenantInfo describes a tenant.
type TenantInfo struct {
	ID        uint64
	Name      string
	State     string // "active", "read-only" or "locked"
	CreatedAt time.Time
	Limits    Limits
	Labels    map[string]string
	Usage     Usage
}

// ClusterStatus describes the cluster as the answering node sees it.
type ClusterStatus struct {
	NodeID       string // the node that answered
	LeaderID     string // "" when no leader is known
	Term         uint64
	AppliedIndex uint64
	CommitIndex  uint64
	Members      []Member
}

// Member is one node of the cluster.
type Member struct {
	ID         string
	RaftAddr   string
	ClientAddr string
	HTTPAddr   string
	Suffrage   string // "voter" or "nonvoter"
	Leader     bool
}

// CreateTenant creates a tenant named name with cfg (nil for defaults) and
// returns it. It needs an operator token. An existing name is an error
// matching ErrTenantExists; a bad name one matching ErrInvalidName. An error
// matching ErrCommitUnknown means the tenant may or may not exist.
func (db *DB) CreateTenant(ctx context.Context, name string, cfg *TenantConfig) (*TenantInfo, error) {
	var resp wire.Response
	req := wire.Request{Op: wire.OpCreateTenant, Name: name, Config: cfg.wire()}
	if err := db.do(ctx, &req, &resp, false); err != nil {
		return nil, err
	}
	if resp.Tenant == nil {
		return nil, fmt.Errorf("%w: create-tenant answer without a tenant", ErrInternal)
	}
	return tenantInfoOf(resp.Tenant), nil
}

// DeleteTenant deletes the tenant and all its keys. Its ID is never reused,
// so a new tenant of the same name starts empty. It needs an operator token.
func (db *DB) DeleteTenant(ctx context.Context, name string) error {
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpDeleteTenant, Name: name}, &resp, false)
}

// TenantInfo describes one tenant. An unknown name is an error matching
// ErrTenantNotFound.
func (db *DB) TenantInfo(ctx context.Context, name string) (*TenantInfo, error) {
	var resp wire.Response
	if err := db.do(ctx, &wire.Request{Op: wire.OpGetTenant, Name: name}, &resp, true); err != nil {
		return nil, err
	}
	if resp.Tenant == nil {
		return nil, fmt.Errorf("%w: get-tenant answer without a tenant", ErrInternal)
	}
	return tenantInfoOf(resp.Tenant), nil
}

// ListTenants returns every tenant in name order, fetched page by page. It
// needs an operator token. Like Range, a list of several pages is not one
// snapshot.
func (db *DB) ListTenants(ctx context.Context) ([]TenantInfo, error) {
	var out []TenantInfo
	after := ""
	for {
		var resp wire.Response
		if err := db.do(ctx, &wire.Request{Op: wire.OpListTenants, After: after}, &resp, true); err != nil {
			return nil, err
		}
		for i := range resp.Tenants {
			out = append(out, *tenantInfoOf(&resp.Tenants[i]))
		}
		if resp.Next == "" {
			return out, nil
		}
		if resp.Next == after {
			return nil, fmt.Errorf("%w: list-tenants cursor %q does not advance", ErrInternal, after)
		}
		after = resp.Next
	}
}

// NewTenantToken creates a read-write token for the tenant and returns its
// secret, which is shown only this once. It needs an operator token.
func (db *DB) NewTenantToken(ctx context.Context, tenant string) (string, error) {
	var resp wire.Response
	if err := db.do(ctx, &wire.Request{Op: wire.OpNewToken, Name: tenant}, &resp, false); err != nil {
		return "", err
	}
	if resp.Token == "" {
		return "", fmt.Errorf("%w: new-token answer without a token", ErrInternal)
	}
	return resp.Token, nil
}

// ClusterStatus describes the cluster as seen by the node the DB sends
// leader requests to, normally the leader.
func (db *DB) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var resp wire.Response
	if err := db.do(ctx, &wire.Request{Op: wire.OpClusterStatus}, &resp, true); err != nil {
		return nil, err
	}
	if resp.Cluster == nil {
		return nil, fmt.Errorf("%w: cluster-status answer without a status", ErrInternal)
	}
	cl := resp.Cluster
	st := &ClusterStatus{
		NodeID: cl.NodeID, LeaderID: cl.LeaderID, Term: cl.Term,
		AppliedIndex: cl.AppliedIndex, CommitIndex: cl.CommitIndex,
		Members: make([]Member, len(cl.Members)),
	}
	for i, m := range cl.Members {
		st.Members[i] = Member{ID: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HTTPAddr: m.HTTPAddr, Suffrage: m.Suffrage, Leader: m.Leader}
	}
	return st, nil
}

// RemoveNode removes the node with the given ID from the cluster. It needs
// an operator token.
func (db *DB) RemoveNode(ctx context.Context, id string) error {
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpClusterRemove, Name: id}, &resp, false)
}

// JoinNode adds a node to the cluster as a voter: id is its node ID,
// raftAddr its raft address, clientAddr and httpAddr where it serves clients
// and HTTP (either may be empty). Any member accepts the request and
// forwards it to the leader. It needs an operator token.
func (db *DB) JoinNode(ctx context.Context, id, raftAddr, clientAddr, httpAddr string) error {
	var resp wire.Response
	req := wire.Request{Op: wire.OpClusterJoin, Name: id, Addr: raftAddr, Addr2: clientAddr, Addr3: httpAddr}
	return db.do(ctx, &req, &resp, false)
}

// wire converts cfg; zero fields stay unset so the server applies defaults.
func (cfg *TenantConfig) wire() *wire.TenantConfig {
	if cfg == nil {
		return nil
	}
	opt := func(v uint64) *uint64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	return &wire.TenantConfig{
		MaxBytes:      opt(cfg.MaxBytes),
		MaxKeys:       opt(cfg.MaxKeys),
		OpsPerSec:     opt(cfg.OpsPerSec),
		Burst:         opt(cfg.Burst),
		MaxConcurrent: opt(cfg.MaxConcurrent),
		MaxWatches:    opt(cfg.MaxWatches),
		Labels:        maps.Clone(cfg.Labels),
	}
}

func tenantInfoOf(t *wire.TenantInfo) *TenantInfo {
	return &TenantInfo{
		ID: t.ID, Name: t.Name, State: t.State, CreatedAt: t.CreatedAt,
		Limits: Limits(t.Limits),
		Labels: t.Labels,
		Usage:  Usage(t.Usage),
	}
}
