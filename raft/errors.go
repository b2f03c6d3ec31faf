package raft

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Each is defined once here and matched with
// errors.Is. Errors about keys, values, ranges, names and IDs come from
// package keyspace (keyspace.ErrInvalidKey and friends) and are not redefined.
var (
	// ErrTenantExists is returned by CreateTenant and by a rename when the
	// name is already taken.
	ErrTenantExists = errors.New("tenantkv: tenant already exists")
	// ErrTenantNotFound is returned when a command names a tenant that does
	// not exist, or whose name no longer matches (renamed or deleted and
	// re-created under another ID).
	ErrTenantNotFound = errors.New("tenantkv: tenant not found")
	// ErrTenantReadOnly is returned by a write to a read-only tenant.
	ErrTenantReadOnly = errors.New("tenantkv: tenant is read-only")
	// ErrTenantLocked is returned by a write to a locked tenant.
	ErrTenantLocked = errors.New("tenantkv: tenant is locked")
	// ErrTokenNotFound is returned by DeleteToken and Token for a missing
	// token ID.
	ErrTokenNotFound = errors.New("tenantkv: token not found")
	// ErrMemberNotFound is returned by MemberInfo for a node without
	// replicated metadata.
	ErrMemberNotFound = errors.New("tenantkv: member not found")
	// ErrUnknownCommand is the result of a log entry whose envelope version
	// or command type this build does not know. Nothing is applied for it.
	ErrUnknownCommand = errors.New("tenantkv: unknown command")
	// ErrBadCommand is the result of a log entry whose body does not decode
	// or whose fields are malformed. Nothing is applied for it.
	ErrBadCommand = errors.New("tenantkv: malformed command")
	// ErrCommandTooLarge is returned by Propose for a command whose encoding
	// exceeds MaxCommandSize. Nothing was proposed.
	ErrCommandTooLarge = errors.New("tenantkv: command too large")
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
	// ErrRestoring is returned by the read helpers while the node installs
	// a snapshot: its store is then partly restored and its tenant catalog
	// not yet reloaded, so it can answer for no tenant. Another node can.
	ErrRestoring = errors.New("tenantkv: node is restoring a snapshot")
	// ErrPeerNotVerified is returned by CheckPeer when the node at a raft
	// address does not complete a mutual TLS handshake with a certificate
	// of the cluster CA for that address.
	ErrPeerNotVerified = errors.New("tenantkv: peer has no certificate of the cluster CA")
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

// fatalError marks an error of the local store (I/O, corruption) met while
// applying. It is not a property of the command, so it must never become a
// command's result: the FSM stops instead.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return "raft: fatal apply error: " + e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(format string, args ...any) error {
	return &fatalError{err: fmt.Errorf(format, args...)}
}
