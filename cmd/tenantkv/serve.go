package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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
It prints one line on stdout when it is ready, logs to stderr, and shuts down
gracefully on SIGINT or SIGTERM. Every flag can also be given in the
environment as TENANTKV_<FLAG>, such as TENANTKV_DATA or TENANTKV_NODE_ID.
`,
	maxArgs: 0,
	setup:   setupServe,
}

// envName is the environment variable of a serve flag: TENANTKV_ and the
// flag's name in upper case with '-' as '_'.
func envName(flagName string) string {
	return "TENANTKV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func setupServe(fs *flag.FlagSet, env func(string) string) runFunc {
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, envOr(env, envName(name), def), usage)
	}
	var cfg server.Config
	var join, logLevel string
	str(&cfg.DataDir, "data", "./data", "`DIR` holding the store, the raft log and the node ID")
	str(&cfg.NodeID, "node-id", "", "node `ID`; empty: the one saved in the data directory, or a new random one")
	str(&cfg.ListenAddr, "listen", "127.0.0.1:7400", "`ADDR` (host:port) clients connect to")
	str(&cfg.RaftAddr, "raft", "127.0.0.1:7401", "`ADDR` (host:port) peers replicate over")
	str(&cfg.HTTPAddr, "http", "127.0.0.1:7402", "`ADDR` (host:port) of /healthz, /readyz and /metrics; - disables it")
	str(&join, "join", "", "join the cluster of these members: comma-separated client `ADDR`s")
	str(&cfg.TLSCertFile, "tls-cert", "", "TLS certificate `FILE` of the client address")
	str(&cfg.TLSKeyFile, "tls-key", "", "TLS key `FILE` of the client address")
	str(&cfg.TLSCAFile, "tls-ca", "", "CA `FILE`: require client certificates signed by it")
	str(&logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")

	return func(ctx context.Context, x *cli, _ []string) error {
		var level slog.Level
		if err := level.UnmarshalText([]byte(logLevel)); err != nil {
			return usagef(x.cmd, "--log-level: %q is not one of debug, info, warn, error", logLevel)
		}
		if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
			return usagef(x.cmd, "--tls-cert and --tls-key go together")
		}
		cfg.Join = splitList(join)
		if len(cfg.Join) > 0 {
			// Only a node with an empty data directory uses it, to ask the
			// members to add it; a missing token is reported by the server
			// when it is needed.
			tok, err := resolveToken(&x.g, x.set, x.env)
			if err != nil {
				return err
			}
			cfg.JoinToken = tok
		}
		cfg.Logger = slog.New(slog.NewTextHandler(x.stderr, &slog.HandlerOptions{Level: level}))

		srv, err := server.Start(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted while starting: %w", err)
			}
			return err
		}
		fmt.Fprintf(x.stdout, "tenantkv: node %s ready: clients on %s, raft on %s, http on %s, data in %s, %s\n",
			srv.NodeID(), srv.Addr(), srv.RaftAddr(), orDash(srv.HTTPAddr()), cfg.DataDir,
			operatorTokenNote(cfg.DataDir))
		select {
		case <-ctx.Done():
			cfg.Logger.Info("shutting down", "cause", context.Cause(ctx))
		case <-srv.Done():
			// The store failed: stop rather than serve from a node that
			// can no longer apply the log.
			srv.Close()
			return fmt.Errorf("node stopped: %w", srv.Err())
		}
		if err := srv.Close(); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		cfg.Logger.Info("stopped")
		return nil
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
