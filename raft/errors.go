package raft

import (
	"errors"
	"fmt"
)

// Errors of the node. Each is defined once here and matched with errors.Is.
// Errors about entries come from package command, errors of the state (a
// tenant not found, a conflict, a quota) from package fsm.
var (
	// ErrNotLeader is returned when an operation needs the leader and this
	// node is not it. The operation definitely did not take effect. A
	// *NotLeaderError carrying the leader's identity unwraps to it.
	ErrNotLeader = errors.New("tenantkv: not the leader")
	// ErrCommitUnknown is returned when a command was handed to raft but its
	// fate is unknown: leadership was lost after the entry may have been
	// appended, the caller's context ended while waiting, or the node shut
	// down. The command may or may not be applied, now or later. It is never
	// returned for a command that definitely failed.
	ErrCommitUnknown = errors.New("tenantkv: commit result unknown")
	// ErrShutdown is returned by a node that has been shut down, or that
	// stopped itself after a storage failure.
	ErrShutdown = errors.New("tenantkv: node is shut down")
	// ErrPeerNotVerified is returned by CheckPeer when the node at a raft
	// address does not complete a mutual TLS handshake with a certificate
	// of the cluster CA for that address.
	ErrPeerNotVerified = errors.New("tenantkv: peer has no certificate of the cluster CA")
	// ErrMemberRefused is returned by a membership operation that does
	// not fit the node it names (promoting a node that has not caught up,
	// handing leadership to a non-voter or to a node the leader cannot
	// reach, holding a voter as a non-voter) or the cluster (holding a
	// non-voter before the cluster format allows it). Nothing changed; the
	// error's text says why.
	ErrMemberRefused = errors.New("tenantkv: membership change refused")
)

// NotLeaderError is returned (wrapped or not) when this node is not the
// leader. It unwraps to ErrNotLeader. Its fields describe the leader this
// node knows of, and are empty when there is none (an election is running).
type NotLeaderError struct {
	// LeaderID is the raft server ID of the known leader.
	LeaderID string
	// LeaderRaftAddr is the leader's raft (peer) address.
	LeaderRaftAddr string
	// LeaderClientAddr is the leader's client address from the replicated
	// member metadata (SetMember), or empty if it never published one.
	LeaderClientAddr string
	// Reason says why, for logs; it may be empty.
	Reason string
}

func (e *NotLeaderError) Error() string {
	msg := ErrNotLeader.Error()
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	if e.LeaderID == "" {
		return msg + "; leader unknown"
	}
	return fmt.Sprintf("%s; leader is %s at %s", msg, e.LeaderID, e.leaderAddr())
}

func (e *NotLeaderError) leaderAddr() string {
	if e.LeaderClientAddr != "" {
		return e.LeaderClientAddr
	}
	return e.LeaderRaftAddr
}

// Unwrap returns ErrNotLeader.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
