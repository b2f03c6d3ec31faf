// Package raft replicates tenantkv's state with hashicorp/raft and is the
// only package that imports it.
//
// # Commands
//
// Every change to the replicated state is a Command: TenantWrite,
// CreateTenant, UpdateTenant, DeleteTenant, PutToken, DeleteToken,
// SetMember and RemoveMember. A command is encoded once, by EncodeCommand,
// into a versioned envelope (version byte, type byte, msgpack body) that
// becomes one raft log entry. Callers build commands as plain structs and
// never see msgpack.
//
// # Applying
//
// The FSM applies committed entries to a store.Store. It re-checks every
// command against its own state at apply time (the tenant exists under that
// ID and name, its state allows writes, keys and values are valid), so a
// stale or forged command is refused identically on every replica and
// writes nothing. Each raft batch becomes one Pebble batch that also records
// the index of its last entry, which makes replays after a restart skip what
// was already applied. A storage error stops the node: it cannot be
// reported to raft, and applying later entries would make the replica
// diverge.
//
// # Node
//
// A Node wires the FSM to raft: the log and stable store (raft-boltdb), the
// snapshot store, the TCP transport (mutual TLS with Config.PeerTLS: only
// peers with a certificate of the cluster CA are accepted or dialled, see
// peertls.go), membership and leadership. Propose
// replicates a command and reports its fate honestly: success, a definite
// failure, or ErrCommitUnknown when the command may or may not take effect.
// ReadBarrier makes the next local reads linearizable (read index confirmed
// by a quorum, batched across callers); stale reads need nothing from raft.
//
// # Membership
//
// A joining node is added with AddNonvoter: it receives the log (or the
// leader's snapshot) without counting in the quorum, and the leader
// promotes it to voter once its log keeps pace with the leader's (promote.go;
// DESIGN.md, "Joins"). WaitPromoted lets the joiner wait for that.
//
// # Errors
//
// Sentinels are defined once, in errors.go, and matched with errors.Is. A
// *NotLeaderError (errors.Is ErrNotLeader) carries the leader's identity and,
// when it published one, its client address.
//
// # Concurrency and ownership
//
// Node and FSM methods are safe for concurrent use. The Node does not own the
// store: the caller opens it before NewNode and closes it after Shutdown.
// Values returned by the read helpers are copies owned by the caller.
//
// See DESIGN.md in this directory for why it is built this way, and for the
// hashicorp/raft bugs it works around.
package raft
