package wire

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ProtocolVersion is the version a client announces in its hello.
const ProtocolVersion = 1

// Op is a request operation. Values are stable: they cross the network.
type Op uint8

// Operations. Never renumber; add new ones at the end.
const (
	OpHello Op = 1
	OpPing  Op = 2
	// OpFormat asks a node, before any hello, for the highest raft log
	// format its build knows (Response.MaxFormat); the node answers and
	// closes the connection. A node of a release before it answers that
	// the first request must be a hello: it knows format 1 only.
	OpFormat        Op = 3
	OpGet           Op = 10
	OpSet           Op = 11
	OpDelete        Op = 12
	OpDeleteRange   Op = 13
	OpScan          Op = 14
	OpBatch         Op = 15
	OpCreateTenant  Op = 30
	OpDeleteTenant  Op = 31
	OpListTenants   Op = 32
	OpGetTenant     Op = 33
	OpUpdateTenant  Op = 34
	OpNewToken      Op = 35
	OpListTokens    Op = 36
	OpRevokeToken   Op = 37
	OpExportTenant  Op = 38
	OpClusterStatus Op = 50
	OpClusterRemove Op = 51
	OpClusterJoin   Op = 52
	// OpClusterAdd adds node Name at raft address Addr as a non-voter;
	// with FlagNonvoter it stays one until OpClusterPromote.
	OpClusterAdd Op = 53
	// OpClusterPromote makes non-voter Name a voter, once caught up.
	OpClusterPromote Op = 54
	// OpClusterTransferLeader hands leadership to voter Name, or with an
	// empty Name to the most caught-up one; the answer's Cluster.LeaderID
	// names the new leader.
	OpClusterTransferLeader Op = 55

	// Transactions and watches (docs/TRANSACTIONS.md).
	OpReadVersion    Op = 16
	OpCommit         Op = 17
	OpCompareAndSwap Op = 18
	OpWatch          Op = 19
)

// OpSnapshotSave streams a backup of the whole replicated state from the
// leader, one chunk per request (docs/PROTOCOL.md).
const OpSnapshotSave Op = 56

// OpTenantAudit reads a tenant's audit trail: Name, Limit, ReadVersion
// the seq to continue after, Cursor the earliest time (RFC 3339), or with
// State "verify" checks its chain (docs/PROTOCOL.md). A tenant token may
// read its own tenant's trail only.
const OpTenantAudit Op = 40

// OpAuditRefusals reports to the leader, from the follower that refused
// them, the requests of the hello's tenant token that named another
// tenant: Limit is how many since the last report (docs/PROTOCOL.md).
const OpAuditRefusals Op = 41

// OpTenantLifecycle applies a lifecycle action to tenant Name: State is
// the action (activate, suspend, cancel, restore), TTL a cancellation's
// retention (docs/PROTOCOL.md).
const OpTenantLifecycle Op = 39

var opNames = map[Op]string{
	OpHello: "hello", OpPing: "ping", OpFormat: "format", OpGet: "get", OpSet: "set", OpDelete: "delete",
	OpDeleteRange: "delete-range", OpScan: "scan", OpCreateTenant: "create-tenant",
	OpDeleteTenant: "delete-tenant", OpListTenants: "list-tenants", OpGetTenant: "get-tenant",
	OpUpdateTenant: "update-tenant", OpNewToken: "new-token", OpListTokens: "list-tokens",
	OpRevokeToken: "revoke-token", OpBatch: "batch", OpExportTenant: "export-tenant", OpClusterStatus: "cluster-status",
	OpClusterRemove: "cluster-remove", OpClusterJoin: "cluster-join", OpClusterAdd: "cluster-add",
	OpClusterPromote: "cluster-promote", OpClusterTransferLeader: "cluster-transfer-leader",
	OpReadVersion: "read-version", OpCommit: "commit", OpCompareAndSwap: "compare-and-swap", OpWatch: "watch",
	OpSnapshotSave: "snapshot-save", OpTenantLifecycle: "tenant-lifecycle",
	OpTenantAudit: "tenant-audit", OpAuditRefusals: "audit-refusals",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Known reports whether o is an operation of this protocol version.
func (o Op) Known() bool { _, ok := opNames[o]; return ok }

// Request is every client-to-server message. Fields an operation does not
// use are left empty and cost nothing on the wire.
type Request struct {
	ID     uint64 `msgpack:"i"`
	Op     Op     `msgpack:"o"`
	Tenant string `msgpack:"t,omitempty"` // tenant name for data operations

	Key     []byte `msgpack:"k,omitempty"`
	Value   []byte `msgpack:"v,omitempty"`
	End     []byte `msgpack:"e,omitempty"`
	Limit   int    `msgpack:"l,omitempty"`
	Reverse bool   `msgpack:"r,omitempty"`
	Stale   bool   `msgpack:"s,omitempty"` // serve from local state, possibly stale

	// Batch: mutations applied atomically, in order, in one raft entry.
	Muts []Mutation `msgpack:"mu,omitempty"`
	// Export: the cursor of an export in progress ("" starts one).
	Cursor string `msgpack:"cur,omitempty"`

	// Hello.
	Version int    `msgpack:"ver,omitempty"`
	Token   string `msgpack:"tok,omitempty"`

	// Administration.
	Name     string        `msgpack:"n,omitempty"`   // tenant name or node ID
	NewName  string        `msgpack:"nn,omitempty"`  // rename
	Config   *TenantConfig `msgpack:"cfg,omitempty"` // create/update tenant
	State    string        `msgpack:"st,omitempty"`  // list filter, new state or lifecycle action
	After    string        `msgpack:"aft,omitempty"` // paging cursor for lists
	ReadOnly bool          `msgpack:"ro,omitempty"`  // new token
	TTL      time.Duration `msgpack:"ttl,omitempty"` // new token; a cancellation's retention
	Addr     string        `msgpack:"a,omitempty"`   // join: raft address
	Addr2    string        `msgpack:"a2,omitempty"`  // join: client address
	Addr3    string        `msgpack:"a3,omitempty"`  // join: HTTP address

	// Transactions and watches. ReadVersion is a commit's read version
	// or the version a watch resumes after; TenantID the tenant ID that
	// version belongs to (0: whatever the name resolves to).
	ReadVersion uint64        `msgpack:"rv,omitempty"`
	TenantID    uint64        `msgpack:"ti,omitempty"`
	Reads       []KeyRange    `msgpack:"rr,omitempty"` // read conflict ranges of a commit
	TxnID       []byte        `msgpack:"tx,omitempty"` // makes a commit idempotent
	Expect      []byte        `msgpack:"x,omitempty"`  // compare-and-swap: the expected value
	Flags       uint8         `msgpack:"fl,omitempty"` // FlagExpectAbsent, FlagDelete
	Wait        time.Duration `msgpack:"wt,omitempty"` // watch: longest wait for a change
}

// Flags of a compare-and-swap request.
const (
	// FlagExpectAbsent: swap only if the key is missing (Expect unused).
	FlagExpectAbsent uint8 = 1
	// FlagDelete: the swap deletes the key (Value unused).
	FlagDelete uint8 = 2
)

// Flags of a cluster-status request (OpClusterStatus).
const (
	// FlagStatusLeader asks for the leader's view: a node that is not the
	// leader and knows one answers CodeNotLeader with its address, which
	// the client follows. Without a leader known, the node answers itself.
	FlagStatusLeader uint8 = 1
	// FlagStatusReports asks the leader to add each member's own report
	// (applied and commit index, term, version), which it asks every
	// member for over the client protocol, with the caller's token, each
	// question bounded in time.
	FlagStatusReports uint8 = 2
)

// FlagNonvoter, in a cluster-add request (OpClusterAdd), keeps the node a
// non-voter until promoted (OpClusterPromote); without it the leader
// promotes the node once it has caught up, as it does a node that joins.
const FlagNonvoter uint8 = 1

// KeyRange is a half-open range of keys [Start, End); an empty End is the
// end of the tenant's keys.
type KeyRange struct {
	Start []byte `msgpack:"s,omitempty"`
	End   []byte `msgpack:"e,omitempty"`
}

// Event is one change delivered by a watch. Kind is MutSet, MutDelete or
// MutDeleteRange; a delete-range covers [Key, End), End empty meaning the
// end of the watched range.
type Event struct {
	Version uint64 `msgpack:"dv"`
	Kind    uint8  `msgpack:"k"`
	Key     []byte `msgpack:"key,omitempty"`
	Value   []byte `msgpack:"v,omitempty"`
	End     []byte `msgpack:"e,omitempty"`
}

// TenantConfig is the mutable configuration of a tenant. Nil pointers mean
// "unchanged" in an update and "default" in a create.
//
// Labels cannot tell "unchanged" from "none" on their own: an empty map is
// not sent at all. In an update, ReplaceLabels set means that Labels, even
// absent or empty, replaces all of the tenant's labels (so an empty set
// clears them); without it, a non-empty Labels replaces them and an absent
// one leaves them unchanged, as before ReplaceLabels existed.
type TenantConfig struct {
	MaxBytes      *uint64           `msgpack:"mb,omitempty"`
	MaxKeys       *uint64           `msgpack:"mk,omitempty"`
	OpsPerSec     *uint64           `msgpack:"ops,omitempty"`
	Burst         *uint64           `msgpack:"burst,omitempty"`
	MaxConcurrent *uint64           `msgpack:"mc,omitempty"`
	MaxWatches    *uint64           `msgpack:"mw,omitempty"`
	Labels        map[string]string `msgpack:"lbl,omitempty"`
	ReplaceLabels bool              `msgpack:"rl,omitempty"`

	MaxConnections *uint64 `msgpack:"mcn,omitempty"`

	// Trial, on create only, starts the tenant in trial for that long.
	Trial time.Duration `msgpack:"trial,omitempty"`
}

// LabelsUpdate returns the labels an update sets, and whether it sets any:
// a non-nil map (possibly empty) replaces all labels; ok false leaves them
// unchanged. c may be nil.
func (c *TenantConfig) LabelsUpdate() (labels map[string]string, ok bool) {
	switch {
	case c == nil:
		return nil, false
	case c.ReplaceLabels && c.Labels == nil:
		return map[string]string{}, true
	case c.ReplaceLabels || c.Labels != nil:
		return c.Labels, true
	}
	return nil, false
}

// Mutation kinds of a batch.
const (
	MutSet         uint8 = 1
	MutDelete      uint8 = 2
	MutDeleteRange uint8 = 3
	// Atomic operations, only in a commit. Add, Min and Max take an 8-byte
	// little-endian int64 in Value; CompareAndClear deletes Key if its
	// value equals Value.
	MutAdd             uint8 = 4
	MutMin             uint8 = 5
	MutMax             uint8 = 6
	MutCompareAndClear uint8 = 7
)

// Mutation is one write of a batch. DeleteRange uses Key as the start.
type Mutation struct {
	Kind  uint8  `msgpack:"k"`
	Key   []byte `msgpack:"key,omitempty"`
	Value []byte `msgpack:"v,omitempty"`
	End   []byte `msgpack:"e,omitempty"`
}

// KV is a key and its value.
type KV struct {
	Key   []byte `msgpack:"k"`
	Value []byte `msgpack:"v"`
	// Version is the tenant version at which the key last changed.
	Version uint64 `msgpack:"dv,omitempty"`
}

// TenantInfo describes a tenant to an operator (or to the tenant itself).
type TenantInfo struct {
	ID        uint64            `msgpack:"id"`
	Name      string            `msgpack:"n"`
	State     string            `msgpack:"st"`
	CreatedAt time.Time         `msgpack:"c"`
	Limits    Limits            `msgpack:"lim"`
	Labels    map[string]string `msgpack:"lbl,omitempty"`
	Usage     Usage             `msgpack:"u"`
	// TrialEnds is set in state trial, PurgeAt in state cancelled.
	TrialEnds time.Time `msgpack:"te,omitempty"`
	PurgeAt   time.Time `msgpack:"pa,omitempty"`
}

// Limits are a tenant's limits; zero means unlimited.
type Limits struct {
	MaxBytes      uint64 `msgpack:"mb,omitempty"`
	MaxKeys       uint64 `msgpack:"mk,omitempty"`
	OpsPerSec     uint64 `msgpack:"ops,omitempty"`
	Burst         uint64 `msgpack:"burst,omitempty"`
	MaxConcurrent uint64 `msgpack:"mc,omitempty"`
	MaxWatches    uint64 `msgpack:"mw,omitempty"`

	MaxConnections uint64 `msgpack:"mcn,omitempty"`
}

// Usage is what a tenant uses and has done.
type Usage struct {
	LogicalBytes uint64 `msgpack:"lb"`
	Keys         uint64 `msgpack:"k"`
	DiskBytes    uint64 `msgpack:"db,omitempty"`
	Reads        uint64 `msgpack:"r,omitempty"`
	Writes       uint64 `msgpack:"w,omitempty"`
	BytesRead    uint64 `msgpack:"br,omitempty"`
	BytesWritten uint64 `msgpack:"bw,omitempty"`
	Throttled    uint64 `msgpack:"th,omitempty"`
	Errors       uint64 `msgpack:"e,omitempty"`
}

// TokenInfo describes a token, never its secret.
type TokenInfo struct {
	ID        string    `msgpack:"id"`
	Tenant    string    `msgpack:"t,omitempty"` // empty for operator tokens
	ReadOnly  bool      `msgpack:"ro,omitempty"`
	CreatedAt time.Time `msgpack:"c"`
	ExpiresAt time.Time `msgpack:"x,omitempty"`
}

// Member is one node of the cluster.
type Member struct {
	ID         string `msgpack:"id"`
	RaftAddr   string `msgpack:"ra"`
	ClientAddr string `msgpack:"ca,omitempty"`
	HTTPAddr   string `msgpack:"ha,omitempty"`
	Suffrage   string `msgpack:"s"`
	Leader     bool   `msgpack:"l,omitempty"`
	// MaxFormat is the highest log format the member's build said it
	// knows when the leader last asked (OpFormat); 0: not known.
	MaxFormat uint32 `msgpack:"mf,omitempty"`
	// Held: a non-voter added with FlagNonvoter, which the leader does not
	// promote on its own.
	Held bool `msgpack:"hd,omitempty"`

	// The leader's view of the member's raft: Tracked is set when the
	// answering node leads, and the fields up to Error are then filled.
	Tracked bool `msgpack:"tr,omitempty"`
	// Reachable: the member answered the leader within one heartbeat
	// timeout (always true for the leader itself).
	Reachable bool `msgpack:"re,omitempty"`
	// Healthy: reachable, and its log at most one heartbeat timeout behind
	// the leader's.
	Healthy bool `msgpack:"he,omitempty"`
	// LastContact is how long ago the member last answered the leader; -1:
	// not since the leader started.
	LastContact time.Duration `msgpack:"lc,omitempty"`
	// MatchIndex is the member's last log index in its last answer, Lag
	// the leader's last index minus it (entries the member lacks), Behind
	// how far behind in time it was (-1: further than the leader
	// remembers).
	MatchIndex uint64        `msgpack:"mi,omitempty"`
	Lag        uint64        `msgpack:"lg,omitempty"`
	Behind     time.Duration `msgpack:"bh,omitempty"`
	// Error is why the leader's last request to the member failed.
	Error string `msgpack:"er,omitempty"`

	// The member's own figures: its term (from the leader's view when no
	// report came), and with a report (FlagStatusReports, or for the
	// answering node itself) its applied and commit index and its build's
	// version. ReportError is why the report is missing.
	Term         uint64 `msgpack:"t,omitempty"`
	Reported     bool   `msgpack:"rp,omitempty"`
	AppliedIndex uint64 `msgpack:"ai,omitempty"`
	CommitIndex  uint64 `msgpack:"ci,omitempty"`
	Version      string `msgpack:"v,omitempty"`
	ReportError  string `msgpack:"rpe,omitempty"`
}

// ClusterStatus is the answer to OpClusterStatus.
type ClusterStatus struct {
	NodeID       string   `msgpack:"n"`
	LeaderID     string   `msgpack:"l"`
	Term         uint64   `msgpack:"t"`
	AppliedIndex uint64   `msgpack:"a"`
	CommitIndex  uint64   `msgpack:"c"`
	Members      []Member `msgpack:"m"`
	// Format is the cluster's raft log format as the answering node has
	// applied it; 0 from a node that predates formats (format 1).
	Format uint32 `msgpack:"f,omitempty"`
	// Version is the answering node's build version; HeartbeatTimeout its
	// raft heartbeat timeout, the unit of Reachable and Healthy. Both are
	// empty from a node that predates them.
	Version          string        `msgpack:"v,omitempty"`
	HeartbeatTimeout time.Duration `msgpack:"hb,omitempty"`
	// LeaderContact is how long ago the answering node last heard from
	// its leader: 0 on the leader, -1 when it has not since it started.
	LeaderContact time.Duration `msgpack:"lct,omitempty"`
}

// SnapshotInfo describes a backup being streamed (OpSnapshotSave). Every
// answer carries it; Records and Checksum are set in the last one only
// (More unset), once the whole state was read.
type SnapshotInfo struct {
	// NodeID is the node that took the backup, the leader then.
	NodeID string `msgpack:"n"`
	// AppliedIndex is the raft index of the state, Term that entry's term,
	// Format the cluster format at it.
	AppliedIndex uint64 `msgpack:"a"`
	Term         uint64 `msgpack:"t"`
	Format       uint32 `msgpack:"f"`
	// EstimatedBytes is about how large the stream will be (for progress
	// bars; 0: unknown).
	EstimatedBytes uint64 `msgpack:"e,omitempty"`
	// Records and Checksum: the stream's record count and the store
	// checksum of the state (what a store restored from it has).
	Records  uint64 `msgpack:"r,omitempty"`
	Checksum uint64 `msgpack:"c,omitempty"`
}

// Response is every server-to-client message. ID echoes the request's.
type Response struct {
	ID   uint64 `msgpack:"i"`
	Code Code   `msgpack:"c,omitempty"`
	Msg  string `msgpack:"m,omitempty"`

	Value []byte `msgpack:"v,omitempty"`
	KVs   []KV   `msgpack:"kv,omitempty"`
	More  bool   `msgpack:"mo,omitempty"`

	// Redirects and throttling.
	Leader     string        `msgpack:"ld,omitempty"` // client address of the leader
	RetryAfter time.Duration `msgpack:"ra,omitempty"`

	// Hello.
	Version  int    `msgpack:"ver,omitempty"`
	NodeID   string `msgpack:"nid,omitempty"`
	Operator bool   `msgpack:"op,omitempty"`
	// IdleTimeout is how long the node keeps an authenticated connection
	// that sends nothing; the client pings well within it. Zero: no
	// timeout, or a node that predates it.
	IdleTimeout time.Duration `msgpack:"it,omitempty"`
	// MaxFormat answers OpFormat: the highest raft log format the node's
	// build knows.
	MaxFormat uint32 `msgpack:"mf,omitempty"`

	// Administration.
	Tenant  *TenantInfo    `msgpack:"t,omitempty"`
	Tenants []TenantInfo   `msgpack:"ts,omitempty"`
	Token   string         `msgpack:"tok,omitempty"` // a new secret, shown once
	Tokens  []TokenInfo    `msgpack:"tks,omitempty"`
	TokenID string         `msgpack:"tid,omitempty"`
	Cluster *ClusterStatus `msgpack:"cl,omitempty"`
	Next    string         `msgpack:"nx,omitempty"` // paging cursor

	// Versions: a get's key version, a read version, a commit's or a
	// swap's version, the version a watch answer is complete up to.
	DataVersion uint64  `msgpack:"dv,omitempty"`
	TenantID    uint64  `msgpack:"ti,omitempty"` // the tenant ID DataVersion belongs to
	Events      []Event `msgpack:"ev,omitempty"` // watch
	Swapped     bool    `msgpack:"sw,omitempty"` // compare-and-swap

	// A refusal by the tenant's rate limit carries the limit itself, so
	// that the client library can pace the tenant's requests to it.
	RateLimit uint64 `msgpack:"rl,omitempty"` // operations per second
	RateBurst uint64 `msgpack:"rb,omitempty"`

	// Snapshot describes the backup a snapshot-save answer carries a chunk
	// of (in Value).
	Snapshot *SnapshotInfo `msgpack:"sn,omitempty"`

	// Audit is a page of a tenant's audit trail, Verdict the check of its
	// chain (OpTenantAudit).
	Audit   []AuditEvent  `msgpack:"au,omitempty"`
	Verdict *AuditVerdict `msgpack:"av,omitempty"`
}

// AuditEvent is one event of a tenant's audit trail (docs/OPERATIONS.md,
// Audit trail).
type AuditEvent struct {
	Seq    uint64    `msgpack:"s"`
	At     time.Time `msgpack:"at"`
	Actor  string    `msgpack:"a"`
	Kind   string    `msgpack:"k"`
	Before string    `msgpack:"b,omitempty"`
	After  string    `msgpack:"af,omitempty"`
	Prev   []byte    `msgpack:"p"`
	Hash   []byte    `msgpack:"h"`
}

// AuditVerdict is the check of a tenant's audit trail on the node that
// answered.
type AuditVerdict struct {
	OK     bool   `msgpack:"ok,omitempty"`
	Events uint64 `msgpack:"n"`
	First  uint64 `msgpack:"f"`
	Last   uint64 `msgpack:"l"`
	BadSeq uint64 `msgpack:"bad,omitempty"`
	Reason string `msgpack:"why,omitempty"`
}

var encPool = sync.Pool{New: func() any {
	buf := new(bytes.Buffer)
	enc := msgpack.NewEncoder(buf)
	return &encoder{buf: buf, enc: enc}
}}

type encoder struct {
	buf *bytes.Buffer
	enc *msgpack.Encoder
}

func appendMsg(dst []byte, v any) ([]byte, error) {
	e := encPool.Get().(*encoder)
	e.buf.Reset()
	err := e.enc.Encode(v)
	if err == nil {
		dst = append(dst, e.buf.Bytes()...)
	}
	if e.buf.Cap() > 1<<20 {
		e.buf = new(bytes.Buffer)
		e.enc.Reset(e.buf)
	}
	encPool.Put(e)
	return dst, err
}

// AppendRequest appends the encoding of req to dst.
func AppendRequest(dst []byte, req *Request) ([]byte, error) {
	if fastRequest(req) {
		return appendRequestFast(dst, req), nil
	}
	return appendMsg(dst, req)
}

// AppendResponse appends the encoding of resp to dst.
func AppendResponse(dst []byte, resp *Response) ([]byte, error) {
	if fastResponse(resp) {
		return appendResponseFast(dst, resp), nil
	}
	return appendMsg(dst, resp)
}

// AppendRequestFrame appends a whole frame (header and body) holding req.
func AppendRequestFrame(dst []byte, req *Request) ([]byte, error) {
	start := len(dst)
	dst, err := AppendRequest(AppendFrameHeader(dst), req)
	if err != nil {
		return dst[:start], err
	}
	return dst, FinishFrame(dst, start)
}

// AppendResponseFrame appends a whole frame (header and body) holding resp.
func AppendResponseFrame(dst []byte, resp *Response) ([]byte, error) {
	start := len(dst)
	dst, err := AppendResponse(AppendFrameHeader(dst), resp)
	if err != nil {
		return dst[:start], err
	}
	return dst, FinishFrame(dst, start)
}

// DecodeRequest decodes a request body. The decoded byte slices do not alias
// b. It allocates about DecodeCost(b) bytes (decode.go).
func DecodeRequest(b []byte, req *Request) error {
	*req = Request{}
	if err := unmarshalRequest(b, req); err != nil {
		return fmt.Errorf("wire: decode request: %w", err)
	}
	return nil
}

// DecodeResponse decodes a response body. The decoded byte slices do not alias b.
func DecodeResponse(b []byte, resp *Response) error {
	*resp = Response{}
	if err := unmarshal(b, resp); err != nil {
		return fmt.Errorf("wire: decode response: %w", err)
	}
	return nil
}

// unmarshal is msgpack.Unmarshal with its panics turned into errors:
// msgpack v5.4.1 panics on some malformed input (a nil decoded into a
// time.Time field), and no input from the network may crash a node.
//
// checkBody runs first: recover cannot catch what it refuses (a stack
// overflow, an allocation the size of a forged length header).
func unmarshal(b []byte, v any) (err error) {
	if err := checkBody(b); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("msgpack: %v", r)
		}
	}()
	return msgpack.Unmarshal(b, v)
}

// Limits on one write (a batch, op 15, or a commit, op 17), as every server
// enforces them before the write reaches raft and the state machine again
// when it applies it. They mirror package raft's MaxMutations and
// TxnOverhead.
const (
	// MaxMutations is the most mutations one write may carry; more is
	// refused with CodeTxTooLarge.
	MaxMutations = 5_000
	// MutationOverhead is what each mutation (and each read range of a
	// commit) counts against the 10 MB limit on top of its key, value and
	// range end, so that a write of empty mutations is not free.
	MutationOverhead = 64
)
