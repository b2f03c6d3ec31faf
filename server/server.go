package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/store"
)

// Config configures a node. Zero fields take the defaults documented on
// each; Validate reports combinations that cannot work.
type Config struct {
	// NodeID names the node in the cluster. Empty means: the ID stored in
	// the data directory, or a new random one saved there.
	NodeID string
	// DataDir holds the store, the raft log and snapshots, the node ID and,
	// on the bootstrap node, operator.token. Default ./data.
	DataDir string
	// ListenAddr is the client address. Default 127.0.0.1:7400.
	ListenAddr string
	// RaftAddr is the address peers replicate over. Default 127.0.0.1:7401.
	RaftAddr string
	// RaftAdvertiseAddr, if set, is the raft address peers are told to dial
	// instead of RaftAddr (behind NAT, or a fault-injecting proxy in tests).
	RaftAdvertiseAddr string
	// HTTPAddr serves /healthz, /readyz and /metrics. Default
	// 127.0.0.1:7402; "-" disables it.
	HTTPAddr string
	// Debug serves /debug/pprof/* and POST /debug/flush on HTTPAddr too,
	// without authentication (serve --debug). Off, they are not found.
	Debug bool
	// MetricsTenantLabels makes /metrics serve the per-tenant series (each
	// tenant's name, requests, bytes and usage) to every scrape (serve
	// --metrics-tenant-labels). Off, only a scrape with an operator token
	// (Authorization: Bearer TOKEN) gets them.
	MetricsTenantLabels bool
	// LogFaults is a test hook handed to raft.Config.LogFaults (every
	// operation on the raft log is offered to it first); production code
	// leaves it nil.
	LogFaults func(op raft.LogOp) error
	// StoreFaults is a test hook handed to store.Options.Faults (every file
	// operation of the store is offered to it first); production code
	// leaves it nil.
	StoreFaults func(op store.FileOp, path string) error
	// ForceNewCluster starts a node that has data as the only voter of a
	// new cluster holding it (serve --force-new-cluster): the way out for
	// a survivor of a cluster that lost its quorum. See raft.Config.
	ForceNewCluster bool
	// Join lists client addresses of existing members. A node with an empty
	// data directory and no Join bootstraps a new single-node cluster.
	Join []string
	// JoinToken is an operator token, needed to join an existing cluster.
	JoinToken string
	// TLSCertFile and TLSKeyFile enable TLS on the client address;
	// TLSCAFile, if set, requires client certificates signed by that CA.
	// A node with TLS also dials the members in Join over TLS: it trusts
	// TLSCAFile (the system's roots without it) and presents its own
	// certificate when asked for one, so the certificate should allow
	// client authentication too when the members require it.
	TLSCertFile, TLSKeyFile, TLSCAFile string
	// HTTPTLSCertFile and HTTPTLSKeyFile serve HTTPAddr over TLS (both or
	// neither). A follower then forwards HTTP API requests to the leader
	// over TLS too, trusting TLSCAFile (the system's roots without it):
	// every node of a cluster serves its HTTP address the same way.
	HTTPTLSCertFile, HTTPTLSKeyFile string
	// PeerTLSCertFile and PeerTLSKeyFile are this node's certificate and
	// key for raft traffic, and PeerTLSCAFile the cluster CA: with them
	// (all three or none) every raft connection, snapshot transfers
	// included, is mutual TLS, accepted only from a certificate signed by
	// the cluster CA, and a join is admitted only for a raft address that
	// presents one (peers.go). The certificate must allow both serverAuth
	// and clientAuth and name the raft address peers dial (RaftAdvertiseAddr
	// or RaftAddr: an IP SAN for an IP, a DNS SAN for a host name).
	PeerTLSCertFile, PeerTLSKeyFile, PeerTLSCAFile string
	// InsecurePeers allows plain, unauthenticated raft on an address other
	// hosts can reach. Without peer TLS and without it, Start refuses a
	// RaftAddr or RaftAdvertiseAddr that is not loopback: anyone who can
	// reach an unauthenticated raft port can forge log entries, such as an
	// operator token of their choosing. It contradicts peer TLS.
	InsecurePeers bool
	// MaxFrame caps a request frame; 0 means wire.DefaultMaxFrame.
	MaxFrame int
	// MemoryBudget caps the bytes of requests and answers in flight on the
	// node, across all client connections: frame bodies being read and
	// decoded, what running requests reserve for their answers (a scan its
	// 4 MiB page), and answers queued or being written. When it is spent,
	// connections are not read until answers drain, which pushes back on
	// the clients through TCP. 0 means DefaultMemoryBudget.
	MemoryBudget int64
	// MaxConnMemory caps the same bytes for one connection: a client that
	// does not read its answers stops being read once it is reached, and a
	// request that would take more than this to decode is refused. 0 means
	// DefaultMaxConnMemory, or 4×MaxFrame if that is larger. It must be at
	// least 2×MaxFrame and at most MemoryBudget.
	MaxConnMemory int64
	// WriteTimeout closes a connection whose answers could not be written
	// for this long: a client that stopped reading. 0 means 30s.
	WriteTimeout time.Duration
	// MaxConnections caps the client connections of the node, before and
	// after authentication. Operator connections may exceed it by
	// OperatorConnReserve, so that an operator can always get in. 0 means
	// the file descriptor limit (RLIMIT_NOFILE) less a reserve for the
	// store, raft and peers (a quarter of it, between 128 and 4096), at
	// most DefaultMaxConnections.
	MaxConnections uint64
	// MaxConnectionsPerTenant caps the authenticated connections of one
	// tenant on the node; a tenant's max_connections limit overrides it.
	// Operator connections are not counted. 0 means a quarter of
	// MaxConnections.
	MaxConnectionsPerTenant uint64
	// IdleTimeout closes an authenticated connection that sent nothing for
	// this long and has no request in flight. The hello answer tells the
	// client, whose library pings well within it. 0 means 5m.
	IdleTimeout time.Duration
	// Version is the build's version, which cluster status shows for each
	// member (serve sets it to what `tenantkv version` prints). Empty
	// means the module version and VCS revision of the build.
	Version string
	// Raft tunes the replication layer; zero fields mean its defaults.
	Raft RaftTuning
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// AuditRetention is how long tenants' audit events are kept; the
	// leader drops older ones (audit.go). 0 means DefaultAuditRetention.
	AuditRetention time.Duration

	// Test hooks of the format gate (format.go), set by this package's
	// tests only: testFormat, if set and not 0, is the format the node
	// says its build knows (1: it answers OpFormat as a release before
	// the gate does), and formatInterval replaces formatCheckInterval.
	testFormat     func() command.Format
	formatInterval time.Duration
	// refusalInterval replaces the audit loop's minute (audit.go).
	refusalInterval time.Duration
}

// RaftTuning exposes the raft timing knobs. Zero fields mean the defaults
// of package raft, given on each; see hashicorp/raft's Config for their
// meaning.
type RaftTuning struct {
	// HeartbeatTimeout: how long a follower waits without hearing from the
	// leader before it stands for election. Default 1s.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: how long a candidate waits for votes; at least
	// HeartbeatTimeout. Default 1s.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: how long a leader stays one without reaching a
	// quorum; at most HeartbeatTimeout. Default 500ms, or half of a
	// shorter HeartbeatTimeout (at least 5ms).
	LeaderLeaseTimeout time.Duration
	// SnapshotInterval: how often raft checks whether to snapshot (at a
	// random moment between one and two intervals). Default 2m.
	SnapshotInterval time.Duration
	// SnapshotThreshold: the log entries since the last snapshot that make
	// a check take one. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs: the log entries kept after a snapshot, for followers
	// that fall behind. Default 10240.
	TrailingLogs uint64
	// Log names the raft log's store: raft.RaftLogPebble or
	// raft.RaftLogBolt. Empty keeps the data directory's own, and a new
	// one gets raft.DefaultRaftLog; naming the other one than the
	// directory's is refused at start.
	Log string
}

// Raft defaults that Validate and the lease derivation need; package raft
// applies the same.
const (
	defaultHeartbeatTimeout   = time.Second
	defaultElectionTimeout    = time.Second
	defaultLeaderLeaseTimeout = 500 * time.Millisecond
	minRaftTimeout            = 5 * time.Millisecond // hashicorp/raft's floor
)

// Validate checks the configuration.
func (c *Config) Validate() error {
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("server: TLS needs both a certificate and a key")
	}
	if (c.HTTPTLSCertFile == "") != (c.HTTPTLSKeyFile == "") {
		return errors.New("server: TLS on the HTTP address needs both a certificate and a key")
	}
	if c.TLSCAFile != "" && c.TLSCertFile == "" {
		return errors.New("server: a TLS CA needs a certificate and a key: without them the node serves no TLS")
	}
	if c.MaxFrame < 0 {
		return errors.New("server: negative MaxFrame")
	}
	if err := c.validatePeerTLS(); err != nil {
		return err
	}
	if err := c.validateConnLimits(); err != nil {
		return err
	}
	return c.Raft.validate()
}

func (r *RaftTuning) validate() error {
	if err := raft.ValidRaftLog(r.Log); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", r.HeartbeatTimeout}, {"ElectionTimeout", r.ElectionTimeout},
		{"LeaderLeaseTimeout", r.LeaderLeaseTimeout}, {"SnapshotInterval", r.SnapshotInterval},
	} {
		if d.v != 0 && d.v < minRaftTimeout {
			return fmt.Errorf("server: raft %s %v is below %v", d.name, d.v, minRaftTimeout)
		}
	}
	hb, el := r.heartbeat(), r.ElectionTimeout
	if el == 0 {
		el = defaultElectionTimeout
	}
	if el < hb {
		return fmt.Errorf("server: raft ElectionTimeout %v is shorter than HeartbeatTimeout %v", el, hb)
	}
	if r.LeaderLeaseTimeout > hb {
		return fmt.Errorf("server: raft LeaderLeaseTimeout %v is longer than HeartbeatTimeout %v", r.LeaderLeaseTimeout, hb)
	}
	return nil
}

func (r *RaftTuning) heartbeat() time.Duration {
	if r.HeartbeatTimeout == 0 {
		return defaultHeartbeatTimeout
	}
	return r.HeartbeatTimeout
}

// leaderLease is LeaderLeaseTimeout, or when zero the default cut down to
// fit a short HeartbeatTimeout (raft refuses a lease longer than it).
func (r *RaftTuning) leaderLease() time.Duration {
	if r.LeaderLeaseTimeout != 0 {
		return r.LeaderLeaseTimeout
	}
	return min(defaultLeaderLeaseTimeout, max(r.heartbeat()/2, minRaftTimeout))
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:7400"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:7401"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:7402"
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	if c.AuditRetention <= 0 {
		c.AuditRetention = DefaultAuditRetention
	}
	c.setConnDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a running node: the raft node (which owns the store), the
// client listener and the HTTP endpoints.
type Server struct {
	cfg    Config
	logger *slog.Logger
	// store is the node's read-only view of its store: every write goes
	// through raft, and the state machine alone commits it.
	store          *store.ReadOnly
	node           *raft.Node
	ln             net.Listener
	httpLn         net.Listener
	httpSrv        *http.Server
	maxFrame       int
	peerTLS        *tls.Config // dialling other members (joining); nil without TLS
	limits         limiter
	exports        exports
	caught         atomic.Bool // caughtUp succeeded once since start
	usage          *usageTracker
	requests       requestMeters        // latency by operation, answers by code (metrics_requests.go)
	registry       *prometheus.Registry // node-level series, served to every scrape
	tenantRegistry *prometheus.Registry // per-tenant series (metrics.go)
	watches        watchHub             // watch.go
	mem            *byteBudget          // MemoryBudget, shared by every connection
	connLimits     connLimits           // connlimits.go
	asks           leaderAsks           // questions to the leader about tokens (hello.go)
	formats        memberFormats        // what members said of their log formats (format.go)
	saves          snapshotSaves        // snapshot saves in progress (snapshot.go)
	refusals       refusalCounts        // refused cross-tenant attempts (audit.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	// started is set when Start returns: the node bootstrapped, or joined
	// and caught up (/readyz).
	started atomic.Bool
}

// testHooks adjust every node's configuration in test builds only (the
// tenantkvfaults build tag, faults_hooks.go); a release build has none.
var testHooks []func(*Config)

// OperatorTokenFile is the name of the file, in the data directory of the
// node that bootstrapped the cluster, that holds the first operator token.
const OperatorTokenFile = "operator.token"

// Start opens the data directory, binds the listeners, starts raft and either
// bootstraps a new cluster or joins an existing one, then serves clients in
// the background. It returns once the node is serving.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	for _, hook := range testHooks {
		hook(&cfg)
	}
	if err := checkPeerAddrs(ctx, &cfg); err != nil {
		return nil, err
	}
	peers, err := loadPeerTLS(&cfg)
	if err != nil {
		return nil, err
	}
	if err := makePrivate(cfg.DataDir); err != nil { // datadir.go
		return nil, err
	}
	id, err := loadNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	cfg.NodeID = id
	s := &Server{cfg: cfg, logger: cfg.Logger.With("node", id), maxFrame: cfg.MaxFrame, conns: map[net.Conn]struct{}{}}
	s.mem = newByteBudget(cfg.MemoryBudget)
	s.connLimits.byTenant = map[keyspace.TenantID]int{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	serverTLS, peerTLS, err := loadTLS(&cfg)
	if err != nil {
		return nil, err
	}
	s.peerTLS = peerTLS
	if s.ln, err = listen(cfg.ListenAddr, serverTLS); err != nil {
		return nil, err
	}
	if cfg.HTTPAddr != "-" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("server: listen http %s: %w", cfg.HTTPAddr, err)
		}
		if cfg.HTTPTLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.HTTPTLSCertFile, cfg.HTTPTLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("server: http tls: %w", err)
			}
			s.httpLn = tls.NewListener(s.httpLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}
	}
	// A data directory without a raft log is fresh: it bootstraps a new
	// cluster, or joins one when Join is set. The marker file makes a node
	// that died halfway through its bootstrap finish it on the next start.
	bootstrapMarker := filepath.Join(cfg.DataDir, "bootstrap-pending")
	raftDir := filepath.Join(cfg.DataDir, "raft")
	_, statErr := os.Stat(filepath.Join(raftDir, "raft.db"))
	fresh := errors.Is(statErr, os.ErrNotExist)
	if fresh && len(cfg.Join) == 0 {
		if err := os.WriteFile(bootstrapMarker, nil, 0o600); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	_, statErr = os.Stat(bootstrapMarker)
	bootstrap := statErr == nil
	s.node, err = raft.NewNode(raft.Config{
		ID:            cfg.NodeID,
		Dir:           raftDir,
		RaftAddr:      cfg.RaftAddr,
		AdvertiseAddr: cfg.RaftAdvertiseAddr,
		PeerTLS:       peers,
		ClientAddr:    s.Addr(),
		HTTPAddr:      s.HTTPAddr(),
		StoreDir:      filepath.Join(cfg.DataDir, "store"),
		StoreOptions:  &store.Options{Logger: s.logger, Faults: cfg.StoreFaults},
		Bootstrap:     bootstrap,
		Logger:        s.logger,
		OnFatal: func(err error) {
			if errors.Is(err, fsm.ErrNewerFormat) {
				s.logger.Error("node stopped: its raft log holds an entry of a newer release; upgrade this node (docs/OPERATIONS.md, Upgrades)", "error", err)
				return
			}
			s.logger.Error("node stopped: its storage (store or raft log) failed; it takes no more writes", "error", err)
		},
		HeartbeatTimeout:   cfg.Raft.HeartbeatTimeout,
		ElectionTimeout:    cfg.Raft.ElectionTimeout,
		LeaderLeaseTimeout: cfg.Raft.leaderLease(),
		SnapshotInterval:   cfg.Raft.SnapshotInterval,
		SnapshotThreshold:  cfg.Raft.SnapshotThreshold,
		TrailingLogs:       cfg.Raft.TrailingLogs,
		RaftLog:            cfg.Raft.Log,
		LogFaults:          cfg.LogFaults,
		ForceNewCluster:    cfg.ForceNewCluster,
	})
	if err != nil {
		return nil, err
	}
	s.store = s.node.Store()
	s.usage = newUsageTracker(s.tenantName, s.tenantUsageOf)
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(goCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), nodeCollector{s}, connCollector{s}, &s.requests)
	s.tenantRegistry = prometheus.NewRegistry()
	s.tenantRegistry.MustRegister(s.usage)
	s.wg.Add(5)
	go s.acceptLoop()
	go s.sweepExports()
	go s.formatLoop()    // format.go
	go s.lifecycleLoop() // lifecycle.go
	go s.auditLoop()     // audit.go
	if s.httpLn != nil {
		s.serveHTTP()
	}
	switch {
	case bootstrap:
		if err := s.finishBootstrap(ctx, bootstrapMarker); err != nil {
			return nil, err
		}
	case fresh:
		if err := s.joinCluster(ctx); err != nil {
			return nil, err
		}
	}
	// A node that joined (or restarted before its promotion) is ready only
	// once it has installed the leader's snapshot, caught up and been
	// promoted to voter; until then /readyz says so.
	if !bootstrap && (fresh || s.node.IsNonvoter()) {
		s.logger.Info("catching up as a non-voter; ready once promoted to voter")
		if err := s.node.WaitPromoted(ctx); err != nil {
			return nil, fmt.Errorf("server: catch up after joining: %w", err)
		}
	}
	s.started.Store(true)
	ok = true
	s.logger.Info("serving", "clients", s.Addr(), "raft", s.RaftAddr(), "http", s.HTTPAddr(), "data", cfg.DataDir)
	return s, nil
}

// loadTLS reads the node's certificate and CA. It returns the TLS
// configuration of the client address and the one the node dials other
// members with, both nil without a certificate.
func loadTLS(cfg *Config) (server, peer *tls.Config, err error) {
	if cfg.TLSCertFile == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("server: tls: %w", err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	// The node presents its certificate to members that ask for one, and
	// trusts the CA (or, without one, the system's roots).
	peer = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("server: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("server: tls ca: no certificates found in %s", cfg.TLSCAFile)
		}
		server.ClientCAs = pool
		server.ClientAuth = tls.RequireAndVerifyClientCert
		peer.RootCAs = pool
	}
	return server, peer, nil
}

// listen binds the client address, with TLS when tc is not nil.
func listen(addr string, tc *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen %s: %w", addr, err)
	}
	if tc == nil {
		return ln, nil
	}
	return tls.NewListener(ln, tc), nil
}

func loadNodeID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("server: data dir %s belongs to node %q, not %q", dir, have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("server: node id: %w", err)
	}
	if want == "" {
		var r [6]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", err
		}
		want = "node-" + hex.EncodeToString(r[:])
	}
	if err := os.WriteFile(path, []byte(want+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: node id: %w", err)
	}
	return want, nil
}

// finishBootstrap runs once on the node that created the cluster: it records
// its addresses and creates the first operator token. A marker file makes it
// run again if the node died halfway.
func (s *Server) finishBootstrap(ctx context.Context, marker string) error {
	if _, _, err := s.node.WaitForLeader(ctx); err != nil {
		return err
	}
	secret, id, hash, err := newToken()
	if err != nil {
		return err
	}
	rec := command.TokenRecord{ID: id, Hash: hash, CreatedAt: time.Now().UTC()}
	if _, err := s.node.Propose(ctx, &command.PutToken{Token: rec}); err != nil {
		return fmt.Errorf("server: create operator token: %w", err)
	}
	path := filepath.Join(s.cfg.DataDir, OperatorTokenFile)
	if err := writeFileSync(path, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("server: write operator token: %w", err)
	}
	s.logger.Info("bootstrapped a new cluster", "operator_token_file", path)
	return os.Remove(marker)
}

func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Addr returns the bound client address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RaftAddr returns the bound raft address.
func (s *Server) RaftAddr() string { return s.node.RaftAddr() }

// HTTPAddr returns the bound HTTP address, or "" when disabled.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Done is closed when the node stopped on its own after a fatal storage
// error; Err then tells why. The process should exit.
func (s *Server) Done() <-chan struct{} { return s.node.Done() }

// Err returns the fatal error that stopped the node, or nil.
func (s *Server) Err() error { return s.node.Err() }

// NodeID returns the node's ID.
func (s *Server) NodeID() string { return s.cfg.NodeID }

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err == nil && !s.admitConn(nc) {
			continue // refused: over MaxConnections and the operators' reserve
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logger.Warn("accept", "error", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(s.ctx, nc)
		}()
	}
}

// track records open connections so Close can end them.
func (s *Server) track(nc net.Conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
	} else {
		delete(s.conns, nc)
	}
}

// Close stops serving: it closes the listeners and connections, then the
// raft node, which closes the store. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	if s.ln != nil {
		s.ln.Close()
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.httpSrv.Shutdown(ctx)
		cancel()
	} else if s.httpLn != nil {
		s.httpLn.Close()
	}
	s.wg.Wait()
	var errs []error
	if s.node != nil {
		errs = append(errs, s.node.Close())
	}
	return errors.Join(errs...)
}

// tenantName returns the current name of tenant id, for metrics.
func (s *Server) tenantName(id keyspace.TenantID) (string, bool) {
	t, err := s.node.FSM().TenantByID(id)
	if err != nil {
		return "", false
	}
	return t.Name, true
}
