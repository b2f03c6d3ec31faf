package raft

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/internal/latency"
	"github.com/tenantkv/tenantkv/raft/fsm"
)

// # Forcing a new cluster (Config.ForceNewCluster, serve --force-new-cluster)
//
// A cluster that lost a quorum of its voters for good cannot elect a
// leader, and raft offers no way out but to rewrite a survivor's
// configuration offline: hashicorp/raft's RecoverCluster (etcd's
// --force-new-cluster). It applies every entry of the survivor's log to its
// state machine, committed or not, takes a snapshot whose configuration is
// the one given, and deletes the log, so that nothing in it can bring the
// old configuration back. The node then starts as the only voter of a
// cluster holding its data, and others join it as usual.
//
// What is lost: writes the old cluster committed on other voters only
// (acknowledged to clients, never reached this node's log); what is gained:
// entries in this node's log that the old cluster never committed become
// committed. Pick the survivor with the highest last index.
//
// The state machine is durable on its own (raft/DESIGN.md), so the
// recovery does not restore the newest snapshot into it unless the store
// needs it (restoreOnStart's rule); it applies the entries after the
// store's applied index, and moves the applied index over the entries
// raft's recovery does not hand it (configuration changes, no-ops) so that
// the store is not "behind" the new snapshot on the next start.
//
// It is a one-shot: a file in the raft directory records it, a start
// without the flag is a normal start, and a start with the flag again is a
// no-op while the configuration is still this node alone, and refused once
// others have joined (forcing again would remove them).

// forcedFile, in the raft directory, records a forced new cluster.
const forcedFile = "force-new-cluster.done"

// recoveryFSM is the FSM hashicorp/raft's RecoverCluster drives: the
// machine, restored from the snapshot only if the store needs it.
type recoveryFSM struct {
	m       *fsm.Machine
	restore bool   // the store is partial or behind the newest snapshot
	last    uint64 // the log's last index
	// snaps are the snapshots handed to RecoverCluster, which never
	// releases them (hashicorp/raft v1.7.3): released after it returns.
	snaps []fsmSnapshot
}

func (r *recoveryFSM) Apply(l *hraft.Log) any {
	return r.m.ApplyBatch([]fsm.Entry{{Index: l.Index, Command: true, Data: l.Data}})[0]
}

func (r *recoveryFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if !r.restore {
		return nil // the store already holds at least the snapshot's state
	}
	return r.m.Restore(rc)
}

func (r *recoveryFSM) Snapshot() (hraft.FSMSnapshot, error) {
	if applied := r.m.AppliedIndex(); applied < r.last {
		// Entries after the last command that raft's recovery skips: as a
		// configuration entry would, this only moves the applied index.
		r.m.ApplyBatch([]fsm.Entry{{Index: r.last}})
	}
	s, err := r.m.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("raft: %w: %v", ErrShutdown, err)
	}
	// Not a snapshot of the running node: its duration is not reported.
	snap := fsmSnapshot{s: s, took: new(latency.Histogram)}
	r.snaps = append(r.snaps, snap)
	return snap, nil
}

// release releases the snapshots RecoverCluster took.
func (r *recoveryFSM) release() {
	for _, s := range r.snaps {
		s.Release()
	}
	r.snaps = nil
}

// forceNewCluster rewrites the node's raft configuration to this node
// alone, before raft starts (see above). stable is raft.db as raft uses it.
func (n *Node) forceNewCluster(rc *hraft.Config, hasState bool, stable hraft.StableStore) error {
	dir := n.cfg.Dir
	if !hasState {
		return fmt.Errorf("raft: --force-new-cluster: %s holds no raft state: there is nothing to recover (a new node bootstraps without the flag)", dir)
	}
	self := hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(n.cfg.ID), Address: n.trans.LocalAddr()}
	old, err := latestConfiguration(n.snaps, n.logs)
	if err != nil {
		return fmt.Errorf("raft: --force-new-cluster: %w", err)
	}
	alone := len(old.Servers) == 1 && old.Servers[0].ID == self.ID && old.Servers[0].Suffrage == hraft.Voter
	forced, err := os.ReadFile(filepath.Join(dir, forcedFile))
	switch {
	case err == nil && alone:
		n.logger.Warn("raft: --force-new-cluster: this node was already forced into a new cluster and is still its only member; nothing to do. Remove the flag: once others join, a start with it is refused",
			"forced", strings.TrimSpace(string(forced)))
		return nil
	case err == nil:
		return fmt.Errorf("raft: --force-new-cluster: this node was already forced into a new cluster (%s) and has other members since (%s); "+
			"forcing again would remove them: start without the flag (to force again after another loss of quorum, delete %s first)",
			strings.TrimSpace(string(forced)), describeServers(old), filepath.Join(dir, forcedFile))
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("raft: --force-new-cluster: %w", err)
	}

	first, err := n.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("raft: --force-new-cluster: first log index: %w", err)
	}
	last, err := n.logs.LastIndex()
	if err != nil {
		return fmt.Errorf("raft: --force-new-cluster: last log index: %w", err)
	}
	reason, err := restoreOnStart(n.store, n.snaps, n.logs)
	if err != nil {
		return err
	}
	n.logger.Warn("raft: --force-new-cluster: REWRITING THIS NODE'S RAFT CONFIGURATION: it starts as the only voter of a new cluster holding its data",
		"old_members", describeServers(old), "new_member", describeServers(hraft.Configuration{Servers: []hraft.Server{self}}))
	n.logger.Warn("raft: --force-new-cluster: every entry of this node's log becomes committed, also those the old cluster never committed; writes the old cluster committed on other nodes only are lost",
		"log_first", first, "log_last", last, "store_applied", n.fsm.AppliedIndex())
	n.logger.Warn("raft: --force-new-cluster: the old members must not come back with their data: wipe their data directories and join them to this node")

	start := time.Now()
	rec := &recoveryFSM{m: n.fsm, restore: reason != "", last: last}
	conf := *rc
	err = hraft.RecoverCluster(&conf, rec, n.logs, stable, n.snaps, n.trans, hraft.Configuration{Servers: []hraft.Server{self}})
	rec.release()
	if err != nil {
		if ferr := n.Err(); ferr != nil {
			err = ferr
		}
		return fmt.Errorf("raft: --force-new-cluster: %w", err)
	}
	if err := n.Err(); err != nil {
		return fmt.Errorf("raft: --force-new-cluster: %w", err)
	}
	record := fmt.Sprintf("%s index %d by node %s\n", time.Now().UTC().Format(time.RFC3339), n.fsm.AppliedIndex(), n.cfg.ID)
	if err := writeSynced(filepath.Join(dir, forcedFile), []byte(record)); err != nil {
		return fmt.Errorf("raft: --force-new-cluster: record it: %w", err)
	}
	n.logger.Warn("raft: --force-new-cluster: done; the node now starts as a one-node cluster. Remove the flag: it is needed once, and a start with it is refused once others join",
		"applied_index", n.fsm.AppliedIndex(), "restored_snapshot", reason != "", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// latestConfiguration reads the configuration raft would start with: the
// newest snapshot's, replaced by each configuration entry of the log after
// it.
func latestConfiguration(snaps hraft.SnapshotStore, logs hraft.LogStore) (hraft.Configuration, error) {
	var conf hraft.Configuration
	var from uint64
	metas, err := snaps.List()
	if err != nil {
		return conf, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 {
		conf, from = metas[0].Configuration, metas[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return conf, fmt.Errorf("first log index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return conf, fmt.Errorf("last log index: %w", err)
	}
	for i := max(from+1, first); first != 0 && i <= last; i++ {
		var l hraft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return conf, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type != hraft.LogConfiguration {
			continue
		}
		if conf, err = decodeConfiguration(l.Data); err != nil {
			return conf, fmt.Errorf("log entry %d: %w", i, err)
		}
	}
	return conf, nil
}

// decodeConfiguration is hraft.DecodeConfiguration, which panics on bytes
// it cannot decode, with the panic turned into an error: no input from
// disk may crash the node.
func decodeConfiguration(b []byte) (conf hraft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode configuration: %v", r)
		}
	}()
	return hraft.DecodeConfiguration(b), nil
}

// describeServers renders a configuration as "id@addr (suffrage), ...".
func describeServers(c hraft.Configuration) string {
	if len(c.Servers) == 0 {
		return "none"
	}
	parts := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		parts[i] = fmt.Sprintf("%s@%s (%s)", s.ID, s.Address, s.Suffrage)
	}
	return strings.Join(parts, ", ")
}
