package raft

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/store"
)

// Config configures a Node. Zero durations and counts mean defaults. It is
// copied by NewNode; later changes have no effect.
type Config struct {
	// ID is this node's raft server ID, unique and stable for its life.
	ID string
	// Dir holds the raft log, the stable store (raft.db) and snapshots.
	Dir string
	// RaftLog names the store of the raft log: RaftLogBolt (in raft.db)
	// or RaftLogPebble (a Pebble instance of its own under Dir/log). Empty
	// means the one Dir was made with, or DefaultRaftLog for a new Dir; a
	// value that contradicts Dir's log fails NewNode (logkind.go).
	RaftLog string
	// RaftAddr is the TCP address to listen on for raft traffic, such as
	// "10.0.0.5:7000" or "127.0.0.1:0" (the bound address is then reported
	// by Node.RaftAddr). Ignored when Transport is set.
	RaftAddr string
	// AdvertiseAddr is the raft address other nodes dial, when it differs
	// from the bound one (binding 0.0.0.0). Ignored when Transport is set.
	AdvertiseAddr string
	// PeerTLS, if set, makes the raft transport mutual TLS (peertls.go):
	// only peers with a certificate of its CA are accepted and dialled.
	// Ignored when Transport is set. Without it the transport is plain TCP,
	// which anyone who can reach RaftAddr can forge raft messages on; the
	// caller decides where that is acceptable (package server allows it on
	// loopback addresses only, unless told otherwise).
	PeerTLS *PeerTLS
	// StoreDir is where the Node opens the state machine's store, with
	// StoreOptions; Close closes it. The store is then the Node's alone:
	// the state machine writes it, and everyone else reads it through
	// Node.Store, a read-only view.
	StoreDir     string
	StoreOptions *store.Options
	// Store, instead of StoreDir, is a store the caller opened and keeps
	// (tests that look at it after the node is gone). The Node never
	// closes it. Exactly one of Store and StoreDir is set.
	Store *store.Store
	// Bootstrap makes a node without raft state form a new single-node
	// cluster. A node that already has state ignores it.
	Bootstrap bool
	// ForceNewCluster rewrites the configuration of a node that has raft
	// state to this node alone before it starts, keeping its data: the
	// way out for a survivor of a cluster that lost its quorum for good
	// (recover.go). It is a one-shot; see recover.go for what a second
	// start with it does.
	ForceNewCluster bool
	// Transport replaces the TCP transport (tests pass raft's in-memory
	// transport). The Node takes ownership and closes it on Shutdown.
	Transport hraft.Transport
	// ClientAddr and HTTPAddr, if set, are published as this node's member
	// metadata (SetMember) whenever it becomes leader; followers are
	// published by whoever adds them.
	ClientAddr string
	HTTPAddr   string
	// Logger receives raft's and this package's logs; nil discards them.
	Logger *slog.Logger
	// OnFatal, if set, is called once, from its own goroutine, after the
	// node stopped itself because its storage failed: the store, while
	// applying, or any write to the raft log and stable store (raft.db).
	// It is not called when NewNode fails; NewNode returns the error.
	OnFatal func(error)
	// LogFaults is a test hook; production code leaves it nil. When set,
	// every operation on the raft log and stable store (raft.db) is first
	// offered to it (and every write once more after it succeeded, see
	// LogOp.Done), and an error it returns fails that operation as a
	// failing disk would: a failed write stops the node, like one of
	// raft.db itself. Reads served by the log cache are not offered. It is
	// called from raft's goroutines and must be safe for concurrent use.
	LogFaults func(op LogOp) error

	// Tunables. See hashicorp/raft's Config for their meaning.
	HeartbeatTimeout   time.Duration // default 1s
	ElectionTimeout    time.Duration // default 1s
	LeaderLeaseTimeout time.Duration // default 500ms
	CommitTimeout      time.Duration // default 10ms
	SnapshotInterval   time.Duration // default 2m
	SnapshotThreshold  uint64        // default 8192 entries
	TrailingLogs       uint64        // default 10240 entries
	MaxAppendEntries   int           // default 512, at most 1024
}

// Defaults for Config's tunables.
const (
	DefaultMaxAppendEntries = 512
	DefaultCommitTimeout    = 10 * time.Millisecond
	snapshotsRetained       = 2
	logCacheSize            = 1024
	tcpMaxPool              = 3
	tcpTimeout              = 10 * time.Second
)

// Validate reports whether the configuration can start a node.
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("raft: nil config")
	}
	if c.ID == "" {
		return errors.New("raft: config: empty ID")
	}
	if c.Dir == "" {
		return errors.New("raft: config: empty Dir")
	}
	if err := ValidRaftLog(c.RaftLog); err != nil {
		return err
	}
	if (c.Store == nil) == (c.StoreDir == "") {
		return errors.New("raft: config: need exactly one of Store and StoreDir")
	}
	if err := c.StoreOptions.Validate(); err != nil {
		return fmt.Errorf("raft: config: %w", err)
	}
	if c.Transport == nil && c.RaftAddr == "" {
		return errors.New("raft: config: need RaftAddr or Transport")
	}
	if c.PeerTLS != nil {
		if err := c.PeerTLS.validate(); err != nil {
			return err
		}
	}
	if c.MaxAppendEntries < 0 || c.MaxAppendEntries > 1024 {
		return fmt.Errorf("raft: config: MaxAppendEntries %d out of [0, 1024]", c.MaxAppendEntries)
	}
	if err := validateMemberAddrs(c.ClientAddr, c.HTTPAddr); err != nil {
		return err
	}
	if err := hraft.ValidateConfig(c.raftConfig(nil)); err != nil {
		return fmt.Errorf("raft: config: %w", err)
	}
	return nil
}

func validateMemberAddrs(addrs ...string) error {
	for _, a := range addrs {
		if len(a) > command.MaxMemberAddr {
			return fmt.Errorf("raft: config: address of %d bytes", len(a))
		}
	}
	return nil
}

// raftConfig builds the hashicorp/raft configuration.
func (c *Config) raftConfig(logger *slog.Logger) *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.ID)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rc.Logger = newHCLogAdapter(logger, "raft")
	rc.NoSnapshotRestoreOnStart = true
	rc.CommitTimeout = DefaultCommitTimeout
	rc.MaxAppendEntries = DefaultMaxAppendEntries
	rc.SnapshotInterval = 2 * time.Minute
	setIf(&rc.HeartbeatTimeout, c.HeartbeatTimeout)
	setIf(&rc.ElectionTimeout, c.ElectionTimeout)
	setIf(&rc.LeaderLeaseTimeout, c.LeaderLeaseTimeout)
	setIf(&rc.CommitTimeout, c.CommitTimeout)
	setIf(&rc.SnapshotInterval, c.SnapshotInterval)
	setIf(&rc.SnapshotThreshold, c.SnapshotThreshold)
	setIf(&rc.TrailingLogs, c.TrailingLogs)
	setIf(&rc.MaxAppendEntries, c.MaxAppendEntries)
	return rc
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// Node is one member of a tenantkv raft cluster: the raft instance, its log
// and snapshot stores, its transport, and the FSM applying to the store.
// All methods are safe for concurrent use. Methods taking a ctx return
// promptly when it ends.
type Node struct {
	cfg       Config
	logger    *slog.Logger
	heartbeat time.Duration // effective raft timeouts
	election  time.Duration
	raft      *hraft.Raft
	fsm       *fsm.Machine
	store     *store.Store
	reader    *store.ReadOnly // what Store hands out
	ownsStore bool            // opened from StoreDir: Close closes it
	trans     hraft.Transport
	logKind   string             // RaftLogBolt or RaftLogPebble (logkind.go)
	closeLogs func() error       // closes the log and the stable store
	logs      *repairingLogStore // over a cache over failStopLogStore over the log; what raft uses
	snaps     *snapshotTracker
	meters    nodeMeters // for Metrics (metrics.go)

	// peerStream is the transport's TLS stream layer; nil without PeerTLS.
	peerStream *tlsStreamLayer

	// restoredOnStart records whether NewNode had raft restore the newest
	// snapshot into the store, and why.
	restoredOnStart string

	leader    leaderState
	reads     readQueue
	proposals chan *proposal // to the batcher (batcher.go)
	slots     tenantSlots    // per-tenant bound on queued proposals (fairqueue.go)
	inflight  chan struct{}  // batch entries handed to raft and not yet done

	// progress is what this node, as leader, saw of each follower's log;
	// membership serialises this node's configuration changes (promote.go).
	progress   *progressTracker
	membership sync.Mutex
	commits    leaderCommit // the leader's commit index, as it told this node (leadercommit.go)

	observer *hraft.Observer
	obsCh    chan hraft.Observation
	closing  chan struct{}
	wg       sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
	// closeStore closes an owned store once, after Shutdown (Close).
	closeStore    sync.Once
	closeStoreErr error
	done          chan struct{}
	fatalOnce     sync.Once
	fatalErr      atomic.Pointer[error]
	// started is closed when NewNode returns; startErr, set before, is
	// its error. A storage failure while NewNode runs waits for it.
	started  chan struct{}
	startErr error
}

// NewNode opens the raft state in cfg.Dir and starts the node. It fails if
// the store already holds applied state while raft has none (a store that
// belongs to another cluster or a wiped raft directory): replaying a fresh
// log onto it would skip entries.
func NewNode(cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.ID)
	n := &Node{
		cfg:     cfg,
		logger:  logger,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		started: make(chan struct{}),
		obsCh:   make(chan hraft.Observation, 64),

		proposals: make(chan *proposal, proposalQueue),
		inflight:  make(chan struct{}, maxInFlightEntries),
	}
	n.leader.init()
	n.reads.init()

	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
		n.startErr = err
		close(n.started)
	}()

	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("raft: create %s: %w", cfg.Dir, err)
	}
	n.store = cfg.Store
	if n.store == nil {
		if n.store, err = store.Open(cfg.StoreDir, cfg.StoreOptions); err != nil {
			return nil, err
		}
		n.ownsStore = true
		closers = append(closers, func() { _ = n.store.Close() })
	}
	n.reader = n.store.ReadOnly()
	if n.fsm, err = fsm.New(n.store, logger, n.fatal); err != nil {
		return nil, err
	}
	kind, err := resolveLogKind(cfg.Dir, cfg.RaftLog)
	if err != nil {
		return nil, err
	}
	n.logKind = kind
	stores, closeStores, err := openRaftStores(cfg.Dir, kind, logger)
	if err != nil {
		return nil, err
	}
	n.closeLogs = closeStores
	closers = append(closers, func() { _ = closeStores() })
	// raft's log and stable store (with the test hook's faults), stopping
	// the node at any failed write (logguard.go).
	disk := stores
	if cfg.LogFaults != nil {
		disk = &faultyLogStore{inner: stores, hook: cfg.LogFaults}
	}
	durable := &failStopLogStore{inner: disk, stop: n.fatal}
	cache, err := hraft.NewLogCache(logCacheSize, n.meters.wrapLog(durable, stores))
	if err != nil {
		return nil, fmt.Errorf("raft: log cache: %w", err)
	}
	n.logs = &repairingLogStore{LogStore: cache}
	hlog := newHCLogAdapter(logger, "raft")
	files, err := hraft.NewFileSnapshotStoreWithLogger(cfg.Dir, snapshotsRetained, hlog.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raft: open snapshot store in %s: %w", cfg.Dir, err)
	}
	n.snaps = &snapshotTracker{SnapshotStore: files}
	n.trans = cfg.Transport
	if n.trans == nil {
		if n.trans, n.peerStream, err = newTCPTransport(cfg.RaftAddr, cfg.AdvertiseAddr, cfg.PeerTLS, logger, hlog.Named("transport")); err != nil {
			return nil, err
		}
	}
	closers = append(closers, func() { closeTransport(n.trans) })

	hasState, err := hraft.HasExistingState(n.logs, durable, n.snaps)
	if err != nil {
		return nil, fmt.Errorf("raft: check existing state: %w", err)
	}
	if !hasState && n.fsm.AppliedIndex() > 0 {
		return nil, fmt.Errorf("raft: store has applied index %d but %s holds no raft state; refusing to replay a new log onto it", n.fsm.AppliedIndex(), cfg.Dir)
	}
	rc := cfg.raftConfig(logger)
	n.heartbeat, n.election = rc.HeartbeatTimeout, rc.ElectionTimeout
	if cfg.ForceNewCluster {
		if err := n.forceNewCluster(rc, hasState, durable); err != nil { // recover.go
			return nil, err
		}
	}
	reason, err := restoreOnStart(n.store, n.snaps, n.logs)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		rc.NoSnapshotRestoreOnStart = false
		n.restoredOnStart = reason
		logger.Info("raft: restoring newest snapshot into the store on start", "reason", reason)
	}

	// The leader promotes joined non-voters once their logs caught up; it
	// sees how far they are in the answers to its AppendEntries.
	n.progress = newProgressTracker(n.heartbeat)
	n.trans = wrapProgress(n.trans, n.progress)
	n.trans = wrapLeaderCommit(n.trans, &n.commits)
	n.raft, err = hraft.NewRaft(rc, nodeFSM{m: n.fsm, n: n}, n.logs, durable, n.snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("raft: start: %w", err)
	}
	lastIndex := n.raft.LastIndex
	n.progress.lastIndex.Store(&lastIndex)
	closers = append(closers, func() { _ = n.raft.Shutdown().Error() })
	n.meters.watch(n.raft)

	if cfg.Bootstrap && !hasState {
		conf := hraft.Configuration{Servers: []hraft.Server{{
			Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.ID), Address: n.trans.LocalAddr(),
		}}}
		if err := n.raft.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
			if ferr := n.Err(); ferr != nil {
				err = ferr // raft.db's error, not raft's text of it
			}
			return nil, fmt.Errorf("raft: bootstrap: %w", err)
		}
	}

	// A storage failure while starting (raft's start writes raft.db, and
	// its goroutines run already) fails NewNode; one from here on stops
	// the running node.
	if err := n.Err(); err != nil {
		return nil, fmt.Errorf("raft: start: %w", err)
	}

	n.observer = hraft.NewObserver(n.obsCh, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.RaftState, hraft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(n.observer)
	n.wg.Add(4)
	go n.watchLeadership()
	go n.runPromotions()
	go n.serveReads()
	go n.runBatcher()
	return n, nil
}

// newTCPTransport listens on bind for raft traffic: over mutual TLS with
// peer (the stream layer is returned too), else plain TCP.
func newTCPTransport(bind, advertise string, peer *PeerTLS, slogger *slog.Logger, logger hclog.Logger) (hraft.Transport, *tlsStreamLayer, error) {
	var adv net.Addr
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			return nil, nil, fmt.Errorf("raft: advertise address %q: %w", advertise, err)
		}
		adv = a
	}
	if peer != nil {
		return newTLSTransport(bind, adv, peer, slogger, logger)
	}
	t, err := hraft.NewTCPTransportWithLogger(bind, adv, tcpMaxPool, tcpTimeout, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("raft: listen on %s: %w", bind, err)
	}
	return t, nil, nil
}

func closeTransport(t hraft.Transport) {
	if c, ok := t.(hraft.WithClose); ok {
		_ = c.Close()
	}
}

// restoreOnStart decides whether raft must restore the newest snapshot into
// the store when starting, and says why ("" means no). Normally it must not:
// the store is durable on its own and already holds at least the snapshot's
// state, because Persist syncs the store before the snapshot is kept. It
// must when the store holds a partial restore, or when the store is behind
// the snapshot: raft would otherwise replay only the entries after the
// snapshot and the ones in between would be missing. Entries the FSM never
// sees (no-ops, barriers) may sit between the store's applied index and the
// snapshot index; they do not count.
func restoreOnStart(st *store.Store, snaps hraft.SnapshotStore, logs hraft.LogStore) (string, error) {
	incomplete, err := st.RestoreIncomplete()
	if err != nil {
		return "", fmt.Errorf("raft: check restore marker: %w", err)
	}
	metas, err := snaps.List()
	if err != nil {
		return "", fmt.Errorf("raft: list snapshots: %w", err)
	}
	if incomplete {
		if len(metas) == 0 {
			return "", errors.New("raft: store holds an incomplete restore and there is no snapshot to restore from; wipe the node's store and raft directory and rejoin")
		}
		return "store holds an incomplete restore", nil
	}
	if len(metas) == 0 {
		return "", nil
	}
	applied, err := st.AppliedIndex()
	if err != nil {
		return "", fmt.Errorf("raft: read applied index: %w", err)
	}
	snapIndex := metas[0].Index
	for i := applied + 1; i <= snapIndex; i++ {
		var l hraft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return fmt.Sprintf("store applied index %d is behind snapshot index %d and entry %d is not in the log", applied, snapIndex, i), nil
		}
		if l.Type == hraft.LogCommand || l.Type == hraft.LogConfiguration {
			return fmt.Sprintf("store applied index %d is behind snapshot index %d", applied, snapIndex), nil
		}
	}
	return "", nil
}

// fatal is the storage-failure callback of the FSM and of raft.db's
// wrapper (failStopLogStore); it may be called many times. It runs on
// raft's goroutines, so it only records the first error and shuts down
// from elsewhere, once NewNode has returned (if NewNode failed, it has
// cleaned up and returned the error itself).
func (n *Node) fatal(err error) {
	n.fatalOnce.Do(func() {
		n.fatalErr.Store(&err)
		n.logger.Error("raft: node stopping after storage failure", "error", err)
		go func() {
			<-n.started
			if n.startErr != nil {
				return
			}
			_ = n.Shutdown()
			if n.cfg.OnFatal != nil {
				n.cfg.OnFatal(err)
			}
		}()
	})
}

// Err returns the storage error that stopped the node, or nil.
func (n *Node) Err() error {
	if p := n.fatalErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Done is closed when the node has shut down, by Shutdown or after a
// storage failure (see Err).
func (n *Node) Done() <-chan struct{} { return n.done }

// checkOpen returns ErrShutdown once shutdown has begun.
func (n *Node) checkOpen() error {
	select {
	case <-n.closing:
		if err := n.Err(); err != nil {
			return fmt.Errorf("%w: %v", ErrShutdown, err)
		}
		return ErrShutdown
	default:
		return nil
	}
}

// Shutdown stops raft, closes the transport and the log store, and wakes
// every waiter with ErrShutdown. It does not close the store (Close
// does). It is
// idempotent; every call returns the first call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		close(n.closing)
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft: shutdown: %w", err))
		}
		n.raft.DeregisterObserver(n.observer)
		n.wg.Wait()
		n.fsm.Stop()
		closeTransport(n.trans)
		if err := n.closeLogs(); err != nil {
			errs = append(errs, fmt.Errorf("raft: close log store: %w", err))
		}
		n.shutdownErr = errors.Join(errs...)
		close(n.done)
	})
	<-n.done
	return n.shutdownErr
}

// ID returns the node's raft server ID.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr returns the raft address this node is reachable at (with the
// actual port when configured with port 0).
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// Close shuts the node down (Shutdown) and then closes the store it opened
// from Config.StoreDir; a store passed as Config.Store is left open. A
// storage failure shuts the node down but leaves the store open, so that
// readers holding Store's view keep working until Close. Close is
// idempotent; every call returns the first call's result.
func (n *Node) Close() error {
	err := n.Shutdown()
	if n.ownsStore {
		n.closeStore.Do(func() { n.closeStoreErr = n.store.Close() })
		err = errors.Join(err, n.closeStoreErr)
	}
	return err
}

// FSM returns the node's state machine, for its read helpers.
func (n *Node) FSM() *fsm.Machine { return n.fsm }

// Store returns a read-only view of the node's store. Writes reach the
// store only through the state machine, as raft applies the log.
func (n *Node) Store() *store.ReadOnly { return n.reader }

// FlushStore flushes the store's memtables to disk. It changes no data,
// only where it sits: benchmarks settle a node with it before measuring.
func (n *Node) FlushStore() error { return n.store.Flush() }

// AppliedIndex returns the index of the last entry applied to the store.
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// IsLeader reports whether this node believes it is the leader. The belief
// may be stale; ReadBarrier confirms it with a quorum.
func (n *Node) IsLeader() bool { return n.raft.State() == hraft.Leader }

// Leader returns the ID and raft address of the leader this node knows of,
// or empty strings during an election.
func (n *Node) Leader() (id, raftAddr string) {
	addr, sid := n.raft.LeaderWithID()
	return string(sid), string(addr)
}

// Stats returns raft's statistics plus the FSM's applied index, for
// diagnostics. Keys and formats follow hashicorp/raft and may change.
func (n *Node) Stats() map[string]string {
	s := n.raft.Stats()
	s["fsm_applied_index"] = fmt.Sprint(n.fsm.AppliedIndex())
	fs := n.fsm.Stats()
	s["fsm_restores"] = fmt.Sprint(fs.Restores)
	s["fsm_batches"] = fmt.Sprint(fs.Batches)
	s["fsm_entries"] = fmt.Sprint(fs.Entries)
	s["leader_ready_term"] = fmt.Sprint(n.leader.readyTerm())
	s["read_rounds"] = fmt.Sprint(n.reads.rounds.Load())
	s["peers_refused"] = fmt.Sprint(n.PeersRefused())
	return s
}

// notLeader builds the error for an operation that needs the leader.
func (n *Node) notLeader(reason string) error {
	e := &NotLeaderError{Reason: reason}
	e.LeaderID, e.LeaderRaftAddr = n.Leader()
	if e.LeaderID != "" {
		if m, err := n.fsm.MemberInfo(e.LeaderID); err == nil {
			e.LeaderClientAddr = m.ClientAddr
		}
	}
	return e
}
