package client

import (
	"context"
	"fmt"
	"maps"
	"strings"
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

	// MaxConnections caps the tenant's connections on each node; zero
	// means the node's default (serve --max-connections-per-tenant).
	MaxConnections uint64

	// Trial, when not zero, creates the tenant in state "trial": it is
	// suspended when the trial ends, unless ActivateTenant is called
	// before. Zero creates an active tenant.
	Trial time.Duration
}

// Limits are a tenant's limits; zero means unlimited.
type Limits struct {
	MaxBytes      uint64
	MaxKeys       uint64
	OpsPerSec     uint64
	Burst         uint64
	MaxConcurrent uint64
	MaxWatches    uint64

	MaxConnections uint64 // connections on each node; zero: the node's default
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
	State     string // StateTrial, StateActive, StateSuspended, StateCancelled or StateLocked
	CreatedAt time.Time
	Limits    Limits
	Labels    map[string]string
	Usage     Usage
	// TrialEnds is when a trial tenant is suspended (zero in other
	// states); PurgeAt when a cancelled tenant is purged (zero in other
	// states).
	TrialEnds time.Time
	PurgeAt   time.Time
}

// ClusterStatus describes the cluster as the answering node sees it.
type ClusterStatus struct {
	NodeID       string // the node that answered
	LeaderID     string // "" when no leader is known
	Term         uint64
	AppliedIndex uint64
	CommitIndex  uint64
	// Format is the cluster's raft log format, which the leader raises once
	// every member runs a build that knows a higher one (docs/OPERATIONS.md,
	// Upgrades); 0 from a node that predates formats.
	Format  uint32
	Members []Member
	// Version is the answering node's build version, HeartbeatTimeout its
	// raft heartbeat timeout (the unit of Member.Reachable and Healthy),
	// LeaderContact how long ago it last heard from its leader (0 on the
	// leader, -1 never since it started). Zero from a node that predates
	// them.
	Version          string
	HeartbeatTimeout time.Duration
	LeaderContact    time.Duration
}

// Member is one node of the cluster.
type Member struct {
	ID         string
	RaftAddr   string
	ClientAddr string
	HTTPAddr   string
	Suffrage   string // "voter" or "nonvoter"
	Leader     bool
	// MaxFormat is the highest log format the member's build knows, as the
	// leader last learnt it; 0 when the answering node does not know.
	MaxFormat uint32
	// Held reports a non-voter added with AddNodeOptions.KeepNonvoter:
	// the leader does not promote it until PromoteNode.
	Held bool

	// Tracked is set when the answering node leads; the fields up to
	// Error are then its view of the member, from the member's answers
	// to its raft requests (heartbeats included).
	Tracked bool
	// Reachable: the member answered the leader within one heartbeat
	// timeout. Healthy: reachable, and its log at most one heartbeat
	// timeout behind the leader's. The leader is both.
	Reachable, Healthy bool
	// LastContact is how long ago the member last answered the leader;
	// -1 if it has not since the leader started.
	LastContact time.Duration
	// MatchIndex is the member's last log index as the leader last saw
	// it, Lag how many entries it lacks of the leader's log, Behind how
	// far behind in time its log was (-1: further than the leader
	// remembers).
	MatchIndex, Lag uint64
	Behind          time.Duration
	// Error is why the leader's last request to the member failed.
	Error string

	// Term is the member's raft term: from its own report when there is
	// one, else from its last answer to the leader.
	Term uint64
	// Reported is set when the member's own figures are here: always for
	// the answering node, and for the others when the leader asked them
	// (StatusOptions.Reports). ReportError says why a report is missing.
	Reported                  bool
	AppliedIndex, CommitIndex uint64
	Version                   string
	ReportError               string
}

// StatusOptions selects what ClusterStatusWith asks for.
type StatusOptions struct {
	// Leader asks for the leader's view: a node that knows a leader sends
	// the request there. Without a leader known, the node asked answers.
	Leader bool
	// Reports makes the leader ask every member for its own figures
	// (Member.Reported): one connection per member, each bounded to a
	// second, so a status takes up to a second longer while a member is
	// unreachable.
	Reports bool
}

// Health is the verdict on a cluster status: whether a quorum of voters is
// healthy (reachable from the leader, their logs at most one heartbeat
// timeout behind).
type Health struct {
	Healthy bool
	// Reason is one line: the count, and the members that are not healthy.
	Reason string
	// Voters is the number of voters, HealthyVoters how many of them are
	// healthy, Quorum how many must be.
	Voters, HealthyVoters, Quorum int
}

// Health judges st. Only the leader's view can say a quorum is healthy: a
// status answered by another node (no leader known, or a node of a release
// that predates member health) is not healthy, and Reason says why.
func (st *ClusterStatus) Health() Health {
	var h Health
	var sick []string
	for _, m := range st.Members {
		if !strings.EqualFold(m.Suffrage, "voter") { // the server says "Voter"
			continue
		}
		h.Voters++
		switch {
		case m.Healthy:
			h.HealthyVoters++
		case !m.Tracked:
		case !m.Reachable && m.LastContact < 0:
			sick = append(sick, m.ID+" unreachable (no answer since the leader started)")
		case !m.Reachable:
			sick = append(sick, fmt.Sprintf("%s unreachable (last answer %v ago)", m.ID, m.LastContact.Round(time.Millisecond)))
		default:
			sick = append(sick, fmt.Sprintf("%s lagging (%d entries behind)", m.ID, m.Lag))
		}
	}
	h.Quorum = h.Voters/2 + 1
	switch {
	case st.LeaderID == "":
		h.Reason = "no leader known (as seen by " + st.NodeID + ")"
		return h
	case st.LeaderID != st.NodeID:
		h.Reason = fmt.Sprintf("the status came from %s, not from the leader %s", st.NodeID, st.LeaderID)
		return h
	case st.HeartbeatTimeout == 0:
		h.Reason = "the leader " + st.LeaderID + " does not report member health (an older release)"
		return h
	}
	h.Healthy = h.HealthyVoters >= h.Quorum
	h.Reason = fmt.Sprintf("%d of %d voters healthy, quorum %d", h.HealthyVoters, h.Voters, h.Quorum)
	if !h.Healthy {
		h.Reason = "quorum not healthy: " + h.Reason
	}
	if len(sick) > 0 {
		h.Reason += ": " + strings.Join(sick, ", ")
	}
	return h
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

// TenantUpdate is a change to a tenant's state, limits or labels. Nil
// pointers, an empty State and a nil Labels map leave that part unchanged; a
// limit pointing at zero removes the limit. A nil *TenantUpdate changes
// nothing.
type TenantUpdate struct {
	// State is the new state: "active", "suspended" (reads allowed,
	// writes refused; "read-only" is its old name) or "locked" (everything
	// refused). Empty: unchanged. Trial and cancelled are entered only
	// with CreateTenant and CancelTenant (lifecycle.go).
	State string

	MaxBytes      *uint64 // logical bytes stored (keys + values)
	MaxKeys       *uint64 // keys stored
	OpsPerSec     *uint64 // sustained requests per second
	Burst         *uint64 // requests above OpsPerSec allowed in a burst
	MaxConcurrent *uint64 // requests in flight at once
	MaxWatches    *uint64 // watches open at once
	// MaxConnections caps the tenant's connections on each node; zero
	// means the node's default.
	MaxConnections *uint64

	// Labels, when not nil, replace all of the tenant's labels; a non-nil
	// empty map removes every label. To change one label and keep the
	// others, read them (TenantInfo), change the copy and write it back.
	// (Servers that predate clearing labels ignore an empty map.)
	Labels map[string]string
}

// Tenant states, as TenantInfo.State reports them and TenantUpdate.State and
// ListOptions.State take them (docs/OPERATIONS.md, Lifecycle).
const (
	StateTrial     = "trial"
	StateActive    = "active"
	StateSuspended = "suspended"
	StateCancelled = "cancelled"
	StateLocked    = "locked"
	// StateReadOnly is the old name of StateSuspended, still accepted;
	// servers report "suspended".
	StateReadOnly = "read-only"
)

func checkState(s string) error {
	switch s {
	case "", StateTrial, StateActive, StateSuspended, StateCancelled, StateLocked, StateReadOnly:
		return nil
	}
	return fmt.Errorf("%w: state %q is not one of %s, %s, %s, %s, %s", ErrInvalidArgument, s,
		StateTrial, StateActive, StateSuspended, StateCancelled, StateLocked)
}

// UpdateTenant changes the tenant's state, limits or labels in one replicated
// write and returns the tenant as it is afterwards. A state change takes
// effect at once on every node: requests already admitted may complete. It
// needs an operator token. An unknown name is an error matching
// ErrTenantNotFound; a bad state one matching ErrInvalidArgument.
func (db *DB) UpdateTenant(ctx context.Context, name string, u *TenantUpdate) (*TenantInfo, error) {
	req := wire.Request{Op: wire.OpUpdateTenant, Name: name}
	if u != nil {
		if err := checkState(u.State); err != nil {
			return nil, err
		}
		req.State = u.State
		if u.MaxBytes != nil || u.MaxKeys != nil || u.OpsPerSec != nil || u.Burst != nil ||
			u.MaxConcurrent != nil || u.MaxWatches != nil || u.MaxConnections != nil || u.Labels != nil {
			req.Config = &wire.TenantConfig{
				MaxBytes: u.MaxBytes, MaxKeys: u.MaxKeys, OpsPerSec: u.OpsPerSec, Burst: u.Burst,
				MaxConcurrent: u.MaxConcurrent, MaxWatches: u.MaxWatches, MaxConnections: u.MaxConnections,
				Labels: maps.Clone(u.Labels), ReplaceLabels: u.Labels != nil,
			}
		}
	}
	var resp wire.Response
	if err := db.do(ctx, &req, &resp, false); err != nil {
		return nil, err
	}
	if resp.Tenant == nil {
		return nil, fmt.Errorf("%w: update-tenant answer without a tenant", ErrInternal)
	}
	return tenantInfoOf(resp.Tenant), nil
}

// RenameTenant gives the tenant named old the name newName. The tenant keeps
// its ID, and so its keys; tokens bound to it keep working. It needs an
// operator token. A taken name is an error matching ErrTenantExists.
func (db *DB) RenameTenant(ctx context.Context, old, newName string) error {
	if newName == "" {
		return fmt.Errorf("%w: empty new name", ErrInvalidName)
	}
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpUpdateTenant, Name: old, NewName: newName}, &resp, false)
}

// TenantInfo describes one tenant: its state, limits, labels and usage. An
// operator token may name any tenant; a tenant token only its own, which an
// empty name also means. An unknown name is an error matching
// ErrTenantNotFound (for a tenant token, naming another tenant matches
// ErrPermissionDenied whether it exists or not).
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

// ListOptions select a page of tenants. A nil *ListOptions means the first
// page of every tenant, at the server's page size.
type ListOptions struct {
	// After is the cursor: only tenants whose name sorts after it are
	// listed. Empty: from the first tenant.
	After string
	// Limit is the most tenants in the page; zero means the server's page
	// size (1,000), which also caps larger values.
	Limit int
	// State, when not empty, lists only tenants in that state.
	State string
}

// ListTenantsPage returns one page of tenants in name order, and the cursor
// of the next page: pass it as ListOptions.After, and stop when it is
// empty. A page may be shorter than Limit, even empty, with more to come.
// It needs an operator token.
func (db *DB) ListTenantsPage(ctx context.Context, opts *ListOptions) ([]TenantInfo, string, error) {
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	if o.Limit < 0 {
		return nil, "", fmt.Errorf("%w: negative Limit %d", ErrInvalidArgument, o.Limit)
	}
	if err := checkState(o.State); err != nil {
		return nil, "", err
	}
	var resp wire.Response
	req := wire.Request{Op: wire.OpListTenants, After: o.After, Limit: o.Limit, State: o.State}
	if err := db.do(ctx, &req, &resp, true); err != nil {
		return nil, "", err
	}
	if resp.Next != "" && resp.Next <= o.After {
		return nil, "", fmt.Errorf("%w: list-tenants cursor %q does not advance past %q", ErrInternal, resp.Next, o.After)
	}
	out := make([]TenantInfo, len(resp.Tenants))
	for i := range resp.Tenants {
		out[i] = *tenantInfoOf(&resp.Tenants[i])
	}
	return out, resp.Next, nil
}

// ListTenants returns every tenant in name order, fetched page by page. It
// needs an operator token. Like Range, a list of several pages is not one
// snapshot.
func (db *DB) ListTenants(ctx context.Context) ([]TenantInfo, error) {
	return db.listAll(ctx, "")
}

// listAll pages through every tenant in state (any state if empty).
func (db *DB) listAll(ctx context.Context, state string) ([]TenantInfo, error) {
	var out []TenantInfo
	opts := ListOptions{State: state}
	for {
		page, next, err := db.ListTenantsPage(ctx, &opts)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		opts.After = next
	}
}

// NewTenantToken creates a read-write token for the tenant, without expiry,
// and returns its secret, which is shown only this once. It needs an
// operator token. Unlike NewToken, an empty tenant is an error matching
// ErrInvalidName, never an operator token.
func (db *DB) NewTenantToken(ctx context.Context, tenant string) (string, error) {
	if tenant == "" {
		return "", fmt.Errorf("%w: empty tenant name", ErrInvalidName)
	}
	secret, _, err := db.NewToken(ctx, tenant, nil)
	return secret, err
}

// ClusterStatus describes the cluster as seen by the node the DB sends
// leader requests to, normally the leader. It is ClusterStatusWith(ctx,
// nil): that node's own view, whether it leads or not.
func (db *DB) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	return db.ClusterStatusWith(ctx, nil)
}

// ClusterStatusWith describes the cluster as opts ask (nil: as the node
// the DB sends leader requests to sees it). It needs an operator token.
func (db *DB) ClusterStatusWith(ctx context.Context, opts *StatusOptions) (*ClusterStatus, error) {
	req := wire.Request{Op: wire.OpClusterStatus}
	if opts != nil && opts.Leader {
		req.Flags |= wire.FlagStatusLeader
	}
	if opts != nil && opts.Reports {
		req.Flags |= wire.FlagStatusReports
	}
	var resp wire.Response
	if err := db.do(ctx, &req, &resp, true); err != nil {
		return nil, err
	}
	if resp.Cluster == nil {
		return nil, fmt.Errorf("%w: cluster-status answer without a status", ErrInternal)
	}
	cl := resp.Cluster
	st := &ClusterStatus{
		NodeID: cl.NodeID, LeaderID: cl.LeaderID, Term: cl.Term,
		AppliedIndex: cl.AppliedIndex, CommitIndex: cl.CommitIndex, Format: cl.Format,
		Members: make([]Member, len(cl.Members)),
		Version: cl.Version, HeartbeatTimeout: cl.HeartbeatTimeout, LeaderContact: cl.LeaderContact,
	}
	for i, m := range cl.Members {
		st.Members[i] = Member{ID: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr,
			HTTPAddr: m.HTTPAddr, Suffrage: m.Suffrage, Leader: m.Leader, MaxFormat: m.MaxFormat, Held: m.Held,
			Tracked: m.Tracked, Reachable: m.Reachable, Healthy: m.Healthy, LastContact: m.LastContact,
			MatchIndex: m.MatchIndex, Lag: m.Lag, Behind: m.Behind, Error: m.Error,
			Term: m.Term, Reported: m.Reported, AppliedIndex: m.AppliedIndex, CommitIndex: m.CommitIndex,
			Version: m.Version, ReportError: m.ReportError}
	}
	return st, nil
}

// AddNodeOptions tunes AddNode.
type AddNodeOptions struct {
	// KeepNonvoter keeps the node a non-voter (a standby: it replicates
	// but neither votes nor counts in the quorum) until PromoteNode. The
	// cluster format must be 3 or higher (ErrInvalidArgument before).
	KeepNonvoter bool
}

// AddNode adds node id, reachable for raft at raftAddr, to the cluster as
// a non-voter, before or after the node starts (start it with --join: it
// finds itself added). Without opts.KeepNonvoter the leader promotes it
// to voter once it has caught up, as it does a node that joins. Adding a
// member again changes nothing but its address. A node that is a voter
// already cannot be kept a non-voter (ErrInvalidArgument). It needs an
// operator token; any member accepts it.
func (db *DB) AddNode(ctx context.Context, id, raftAddr string, opts *AddNodeOptions) error {
	req := wire.Request{Op: wire.OpClusterAdd, Name: id, Addr: raftAddr}
	if opts != nil && opts.KeepNonvoter {
		req.Flags = wire.FlagNonvoter
	}
	var resp wire.Response
	return db.do(ctx, &req, &resp, true)
}

// PromoteNode makes non-voter id a voter, if its log keeps pace with the
// leader's; a node that has not caught up is refused with an error
// matching ErrInvalidArgument that says how far behind it is, and nothing
// changes. Promoting a voter succeeds; an unknown ID matches ErrNotFound.
// It needs an operator token.
func (db *DB) PromoteNode(ctx context.Context, id string) error {
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpClusterPromote, Name: id}, &resp, true)
}

// TransferLeader hands leadership to voter id, or with an empty id to the
// most caught-up voter the leader can reach, and returns the new leader's
// ID. A target that is not a voter or that the leader cannot reach is
// refused (ErrInvalidArgument); an unknown ID matches ErrNotFound. It
// needs an operator token. Writes sent during the transfer are retried by
// the client as for any change of leader.
func (db *DB) TransferLeader(ctx context.Context, id string) (string, error) {
	var resp wire.Response
	if err := db.do(ctx, &wire.Request{Op: wire.OpClusterTransferLeader, Name: id}, &resp, false); err != nil {
		return "", err
	}
	if resp.Cluster == nil {
		return "", fmt.Errorf("%w: transfer-leader answer without a status", ErrInternal)
	}
	return resp.Cluster.LeaderID, nil
}

// RemoveNode removes the node with the given ID from the cluster. It needs
// an operator token. An ID the cluster does not know (neither a member nor
// one whose metadata is left) is an error matching ErrNotFound.
func (db *DB) RemoveNode(ctx context.Context, id string) error {
	var resp wire.Response
	return db.do(ctx, &wire.Request{Op: wire.OpClusterRemove, Name: id}, &resp, false)
}

// JoinNode adds a node to the cluster as a non-voter, which the leader
// promotes to voter once it has caught up: id is its node ID,
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

		MaxConnections: opt(cfg.MaxConnections),
		Trial:          cfg.Trial,
	}
}

func tenantInfoOf(t *wire.TenantInfo) *TenantInfo {
	return &TenantInfo{
		ID: t.ID, Name: t.Name, State: t.State, CreatedAt: t.CreatedAt,
		Limits:    Limits(t.Limits),
		Labels:    t.Labels,
		Usage:     Usage(t.Usage),
		TrialEnds: t.TrialEnds, PurgeAt: t.PurgeAt,
	}
}
