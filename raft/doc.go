// Package raft replicates tenantkv's state with hashicorp/raft and is the
// only package that imports it: it is the adapter between the raft library
// and tenantkv's state machine (package fsm).
//
// # Commands and the state machine
//
// What travels through the log is defined by package command (every entry
// type and its bytes); what an entry does when applied by package fsm (the
// deterministic state machine). This package carries entries between them:
// Propose encodes a command, replicates it and returns the state machine's
// result; nodeFSM hands committed entries to an fsm.Machine.
//
// # Node
//
// A Node wires the state machine to raft: the log and stable store (raft-boltdb), the
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
// Node methods are safe for concurrent use. The Node does not own the
// store: the caller opens it before NewNode and closes it after Shutdown.
// Values returned by the read helpers are copies owned by the caller.
//
// See DESIGN.md in this directory for why it is built this way, and for the
// hashicorp/raft bugs it works around.
package raft
