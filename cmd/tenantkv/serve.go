package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/server"
)

var serveCommand = &command{
	path:    "serve",
	args:    "[flags]",
	summary: "run a node: bootstrap a new cluster, or join one with --join",
	long: `A node whose data directory is empty bootstraps a new single-node cluster,
unless --join is given, and writes its first operator token to
DIR/operator.token (mode 0600). With --join, a node with an empty data
directory asks those members to add it, authenticated with an operator token
(--token, --token-file, TENANTKV_TOKEN, TENANTKV_TOKEN_FILE or
./data/operator.token). A node that has data rejoins its cluster on its own.
It prints one line on stdout when it is ready: once it knows a leader and
has caught up with it (a joining node: once it has caught up with the leader
and been promoted from non-voter to voter); until then it answers clients
"not ready" and /readyz 503 with the reason. It logs to stderr
(--log-format text or json), and shuts down
gracefully on SIGINT or SIGTERM, for at most --shutdown-timeout (then it exits
anyway, with status 1: the raft log replays on restart). The data directory
and its files are made private to the user (0700, 0600). /metrics names
tenants only with --metrics-tenant-labels or to a scrape with an operator
token (Authorization: Bearer TOKEN); /debug/* is served only with --debug.
Every flag can also be given in the
environment as TENANTKV_<FLAG>, such as TENANTKV_DATA or TENANTKV_NODE_ID.

TLS: --tls-cert FILE and --tls-key FILE (TENANTKV_TLS_CERT, TENANTKV_TLS_KEY)
serve clients over TLS; --tls-ca FILE (TENANTKV_TLS_CA) then requires client
certificates signed by that CA. A node with TLS dials the --join members over
TLS too: it trusts --tls-ca (the system's roots without it) and presents its
own certificate.

HTTP TLS: --http-tls-cert FILE and --http-tls-key FILE (TENANTKV_HTTP_TLS_CERT,
TENANTKV_HTTP_TLS_KEY) serve --http (the HTTP API, health and metrics) over
TLS; give every node of the cluster the same choice, since a follower forwards
HTTP API requests to the leader over TLS then (trusting --tls-ca, the system's
roots without it).

Peer TLS: --peer-tls-cert FILE, --peer-tls-key FILE and --peer-tls-ca FILE
(TENANTKV_PEER_TLS_CERT, TENANTKV_PEER_TLS_KEY, TENANTKV_PEER_TLS_CA) make
raft traffic, snapshot transfers included, mutual TLS: a raft connection is
accepted only from a certificate signed by the cluster CA, and a node joins
only if its raft address presents one. Without them raft is plain TCP, and a
node refuses a --raft or --raft-advertise address that is not loopback unless
--insecure-peers (TENANTKV_INSECURE_PEERS=true) is given: anyone who reaches
an unauthenticated raft port can forge log entries. See docs/OPERATIONS.md.

Memory and connections: --memory-budget bounds the bytes of requests and
answers in flight on the node, --max-conn-memory those of one connection;
--max-connections and --max-connections-per-tenant cap connections (a
tenant's max_connections limit overrides the latter), and --idle-timeout
closes authenticated connections that send nothing. docs/OPERATIONS.md
explains them.

Raft timing flags left out (or 0) take raft's defaults: heartbeat and election
timeouts 1s, snapshots checked every 2m and taken after 8192 new log entries.

Lost quorum: --force-new-cluster (TENANTKV_FORCE_NEW_CLUSTER=true) is the
last resort for a cluster that lost a majority of its voters for good (two
of three, three of five) and so can elect no leader. If the lost nodes can
come back, bring them back instead: that loses nothing. Otherwise stop every
survivor and start the one with the highest last log index once with the
flag and its usual data directory: it rewrites its raft configuration to
itself alone and starts as a one-node cluster holding its data, DROPPING
EVERY OTHER MEMBER. Writes the old cluster committed only on the lost nodes
are gone, and every entry of this node's log counts as committed. It says so
in several WARN lines naming the old and the new members. Remove the flag
afterwards: a start with it again does nothing while the node is alone and
is refused once others have joined. Wipe the other nodes' data directories
and --join them to it; never restart an old member with its old data. The
steps: "Recovering from a lost quorum" in docs/OPERATIONS.md.
`,
	maxArgs: 0,
	setup:   setupServe,
}

// envName is the environment variable of a serve flag: TENANTKV_ and the
// flag's name in upper case with '-' as '_'.
func envName(flagName string) string {
	return "TENANTKV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// serveFlags are serve's own flags. The TLS flags are global ones (flags.go):
// client commands have flags of the same names and environment variables.
type serveFlags struct {
	cfg            server.Config
	join, logLevel string
	logFormat      string // --log-format: text or json
	// shutdownTimeout bounds a graceful stop (--shutdown-timeout).
	shutdownTimeout time.Duration
	// envErrs are environment variables that do not parse, by flag name;
	// one is an error unless its flag is given on the command line.
	envErrs map[string]error
}

// register adds serve's flags to fs, taking defaults from env.
func (f *serveFlags) register(fs *flag.FlagSet, env func(string) string) {
	f.envErrs = map[string]error{}
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, envOr(env, envName(name), def), usage)
	}
	dur := func(p *time.Duration, name, usage string) {
		if v := env(envName(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				f.envErrs[name] = fmt.Errorf("%s: %q is not a duration such as 500ms or 2m", envName(name), v)
			}
			*p = d
		}
		fs.DurationVar(p, name, *p, usage)
	}
	count := func(p *uint64, name, usage string) {
		if v := env(envName(name)); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				f.envErrs[name] = fmt.Errorf("%s: %q is not a count", envName(name), v)
			}
			*p = n
		}
		fs.Uint64Var(p, name, *p, usage)
	}
	boolean := func(p *bool, name, usage string) {
		if v := env(envName(name)); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				f.envErrs[name] = fmt.Errorf("%s: %q is not true or false", envName(name), v)
			}
			*p = b
		}
		fs.BoolVar(p, name, *p, usage)
	}
	size := func(p *int64, name, usage string) {
		if v := env(envName(name)); v != "" {
			n, err := parseSize(v)
			if err != nil {
				f.envErrs[name] = fmt.Errorf("%s: %v", envName(name), err)
			}
			*p = n
		}
		fs.Func(name, usage, func(v string) error {
			n, err := parseSize(v)
			if err == nil {
				*p = n
			}
			return err
		})
	}
	cfg := &f.cfg
	str(&cfg.DataDir, "data", "./data", "`DIR` holding the store, the raft log and the node ID")
	str(&cfg.NodeID, "node-id", "", "node `ID`; empty: the one saved in the data directory, or a new random one")
	str(&cfg.ListenAddr, "listen", "127.0.0.1:7400", "`ADDR` (host:port) clients connect to")
	str(&cfg.RaftAddr, "raft", "127.0.0.1:7401", "`ADDR` (host:port) peers replicate over")
	str(&cfg.RaftAdvertiseAddr, "raft-advertise", "", "`ADDR` (host:port) peers are told to dial for raft, when it is not --raft (binding 0.0.0.0, NAT)")
	str(&cfg.HTTPAddr, "http", "127.0.0.1:7402", "`ADDR` (host:port) of the HTTP API (/v1/, docs/HTTP.md), /healthz, /readyz and /metrics; - disables it")
	str(&cfg.HTTPTLSCertFile, "http-tls-cert", "", "certificate `FILE` to serve --http over TLS, with --http-tls-key")
	str(&cfg.HTTPTLSKeyFile, "http-tls-key", "", "the key `FILE` of --http-tls-cert")
	str(&cfg.PeerTLSCertFile, "peer-tls-cert", "", "this node's certificate `FILE` for raft traffic: mutual TLS, with --peer-tls-key and --peer-tls-ca")
	str(&cfg.PeerTLSKeyFile, "peer-tls-key", "", "the key `FILE` of --peer-tls-cert")
	str(&cfg.PeerTLSCAFile, "peer-tls-ca", "", "the cluster CA `FILE`: raft connections are accepted only from certificates it signed")
	boolean(&cfg.InsecurePeers, "insecure-peers", "allow plain, unauthenticated raft on an address that is not loopback")
	boolean(&cfg.ForceNewCluster, "force-new-cluster", "start this node, which has data, as the only voter of a new cluster holding it: the recovery of a cluster that lost its quorum (docs/OPERATIONS.md); needed once")
	str(&f.join, "join", "", "join the cluster of these members: comma-separated client `ADDR`s")
	dur(&cfg.Raft.HeartbeatTimeout, "heartbeat-timeout", "a follower that hears nothing from the leader for `D` stands for election; 0: 1s")
	dur(&cfg.Raft.ElectionTimeout, "election-timeout", "a candidate waits `D` for votes, at least --heartbeat-timeout; 0: 1s")
	dur(&cfg.Raft.SnapshotInterval, "snapshot-interval", "check every `D` (randomly up to twice that) whether to snapshot; 0: 2m")
	count(&cfg.Raft.SnapshotThreshold, "snapshot-threshold", "snapshot when `N` log entries were written since the last one; 0: 8192")
	str(&cfg.Raft.Log, "raft-log", "", "store of the raft log: `KIND` pebble (one fdatasync per append) or bolt (raft.db); empty: the data directory's own, pebble for a new one")
	count(&cfg.Raft.TrailingLogs, "trailing-logs", "keep the last `N` log entries after a snapshot, for followers that lag; 0: 10240")
	size(&cfg.MemoryBudget, "memory-budget", "bytes of requests and answers in flight on the node, all connections together (such as 512MiB or 2GiB); when spent, clients are not read until answers drain; 0: 1GiB")
	size(&cfg.MaxConnMemory, "max-conn-memory", "the same for one connection: a client that does not read its answers stops being read at `SIZE`, and a request that would take more to decode is refused; 0: 64MiB")
	dur(&cfg.WriteTimeout, "write-timeout", "close a connection whose answers could not be written for `D` (a client that stopped reading); 0: 30s")
	count(&cfg.MaxConnections, "max-connections", "accept at most `N` client connections (operators get 64 more); 0: the file descriptor limit less a reserve for the store and peers, at most 10000")
	count(&cfg.MaxConnectionsPerTenant, "max-connections-per-tenant", "accept at most `N` connections of one tenant; a tenant's max_connections limit overrides it; 0: a quarter of --max-connections")
	dur(&cfg.AuditRetention, "audit-retention", "keep tenants' audit events for `D`, then drop them (docs/OPERATIONS.md, Audit trail); 0: 9600h, 400 days")
	dur(&cfg.IdleTimeout, "idle-timeout", "close an authenticated connection that sent nothing for `D` (the client library pings within it); 0: 5m")
	str(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	str(&f.logFormat, "log-format", logFormatText, "log `FORMAT` on stderr: text (key=value lines) or json (one object per line)")
	boolean(&cfg.Debug, "debug", "serve /debug/pprof/* and POST /debug/flush on --http, without authentication")
	boolean(&cfg.MetricsTenantLabels, "metrics-tenant-labels", "serve the per-tenant series of /metrics (tenant names, traffic, usage) to every scrape, not only to one with an operator token")
	f.shutdownTimeout = defaultShutdownTimeout
	dur(&f.shutdownTimeout, "shutdown-timeout", "on SIGTERM or SIGINT, stop gracefully for at most `D`, then exit anyway (the raft log replays on restart)")
}

// defaultShutdownTimeout bounds a graceful stop when --shutdown-timeout is
// not given.
const defaultShutdownTimeout = 10 * time.Second

// parseSize parses a byte count: digits, optionally followed by KiB, MiB or
// GiB (or K, M, G, also powers of 1024).
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 1073741824, 512MiB or 2GiB", v)
	}
	return n * mult, nil
}

// config returns the node's configuration from the flags and x's global
// flags, or a usage error.
func (f *serveFlags) config(x *cli) (server.Config, error) {
	cfg := f.cfg
	for _, name := range slices.Sorted(maps.Keys(f.envErrs)) {
		if !x.set[name] {
			return cfg, usagef(x.cmd, "%v", f.envErrs[name])
		}
	}
	if f.shutdownTimeout <= 0 {
		return cfg, usagef(x.cmd, "--shutdown-timeout: %v is not a positive duration", f.shutdownTimeout)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return cfg, usagef(x.cmd, "--log-level: %q is not one of debug, info, warn, error", f.logLevel)
	}
	logger, err := newLogger(x.stderr, f.logFormat, level)
	if err != nil {
		return cfg, usagef(x.cmd, "%v", err)
	}
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile = x.g.tlsCert, x.g.tlsKey, x.g.tlsCA
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return cfg, usagef(x.cmd, "%v", errTLSPair)
	}
	if cfg.TLSCAFile != "" && cfg.TLSCertFile == "" {
		return cfg, usagef(x.cmd, "--tls-ca needs --tls-cert and --tls-key: a node without a certificate serves no TLS")
	}
	if (cfg.HTTPTLSCertFile == "") != (cfg.HTTPTLSKeyFile == "") {
		return cfg, usagef(x.cmd, "--http-tls-cert and --http-tls-key go together")
	}
	if err := cfg.Validate(); err != nil {
		// Raft timings that raft would refuse: too short, or an election
		// timeout shorter than the heartbeat timeout.
		return cfg, usagef(x.cmd, "%v", err)
	}
	cfg.Join = splitList(f.join)
	if len(cfg.Join) > 0 {
		// Only a node with an empty data directory uses it, to ask the
		// members to add it; a missing token is reported by the server
		// when it is needed.
		tok, err := resolveToken(&x.g, x.set, x.env)
		if err != nil {
			return cfg, err
		}
		cfg.JoinToken = tok
	}
	cfg.Logger = logger
	cfg.Version = versionString() // shown by cluster status
	return cfg, nil
}

func setupServe(fs *flag.FlagSet, env func(string) string) runFunc {
	var f serveFlags
	f.register(fs, env)
	return func(ctx context.Context, x *cli, _ []string) error {
		cfg, err := f.config(x)
		if err != nil {
			return err
		}
		// Files the node creates are its user's alone (0600, directories
		// 0700); server.Start makes what already exists so.
		restrictUmask()
		srv, err := startWithin(ctx, cfg, f.shutdownTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted while starting: %w", err)
			}
			return err
		}
		// The node's own lines name it; so do this command's from here on.
		cfg.Logger = cfg.Logger.With("node", srv.NodeID())
		// Started is not ready: a node that restarted listens (and answers
		// "not ready") until a leader is known and it has caught up with
		// it. The ready line promises that it can serve.
		if why := srv.Readiness(); why != "" {
			cfg.Logger.Info("started; the ready line follows once a leader is known and this node has caught up with it", "waiting_for", why)
		}
		if srv.WaitReady(ctx) == nil {
			cfg.Logger.Info("ready")
			fmt.Fprintf(x.stdout, "tenantkv: node %s ready: clients on %s, raft on %s, http on %s, data in %s, %s\n",
				srv.NodeID(), srv.Addr(), srv.RaftAddr(), orDash(srv.HTTPAddr()), cfg.DataDir,
				operatorTokenNote(cfg.DataDir))
		}
		select {
		case <-ctx.Done():
			cfg.Logger.Info("shutting down", "cause", context.Cause(ctx), "timeout", f.shutdownTimeout)
		case <-srv.Done():
			// The store failed: stop rather than serve from a node that
			// can no longer apply the log.
			_ = closeWithin(srv, f.shutdownTimeout, cfg.Logger)
			return fmt.Errorf("node stopped: %w", srv.Err())
		}
		if err := closeWithin(srv, f.shutdownTimeout, cfg.Logger); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		cfg.Logger.Info("stopped")
		return nil
	}
}

// startWithin starts a node. A signal during the start (ctx ends) makes
// Start give up and clean up; if it has not returned d later (a snapshot
// restore or a replay that takes long), startWithin returns without it, so
// that the process exits: that is as safe as an exit after closeWithin
// gives up.
func startWithin(ctx context.Context, cfg server.Config, d time.Duration) (*server.Server, error) {
	type started struct {
		srv *server.Server
		err error
	}
	ch := make(chan started, 1)
	go func() {
		srv, err := server.Start(ctx, cfg)
		ch <- started{srv, err}
	}()
	select {
	case st := <-ch:
		return st.srv, st.err
	case <-ctx.Done():
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case st := <-ch:
		return st.srv, st.err
	case <-t.C:
		cfg.Logger.Error("start did not stop in time after the signal; exiting anyway (the raft log replays on restart)", "timeout", d)
		return nil, fmt.Errorf("%w: still starting %v later (--shutdown-timeout); exited anyway", context.Cause(ctx), d)
	}
}

// closeWithin closes srv, or gives up after d: an apply or a disk write
// that hangs (a huge write, a dying disk) would otherwise hold the process
// for as long. Exiting then is safe: every acknowledged write is in the
// raft log, which the node replays on restart, and Pebble and the raft log
// are crash-safe, so an exit mid-apply is no worse than a SIGKILL.
func closeWithin(srv *server.Server, d time.Duration, logger *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		logger.Error("shutdown did not finish in time; exiting anyway (the raft log replays on restart)", "timeout", d)
		return fmt.Errorf("not finished after %v (--shutdown-timeout): exited with work in flight, which the raft log replays on restart", d)
	}
}

// operatorTokenNote says where the operator token is.
func operatorTokenNote(dataDir string) string {
	path := filepath.Join(dataDir, server.OperatorTokenFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "operator token in the data directory of the node that bootstrapped the cluster"
	}
	return "operator token in " + path
}
