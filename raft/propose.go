package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	hraft "github.com/hashicorp/raft"
)

// Propose replicates cmd and waits until this node has applied it.
//
// On success the returned Result describes the effect. Otherwise the Result
// is nil and the error says what is known about the command's fate:
//
//   - errors.Is(err, ErrCommitUnknown): the command was handed to raft and
//     may or may not take effect (leadership lost after the entry may have
//     been appended, ctx ended while waiting, the node shut down). Such an
//     error wraps no other sentinel, so it cannot be mistaken for one.
//   - any other error: the command definitely had no effect. That covers
//     commands refused at apply time (ErrTenantNotFound, ErrTenantExists,
//     keyspace.ErrInvalidKey, ...), which were committed to the log but
//     changed nothing on any replica; ErrNotLeader (a *NotLeaderError with
//     the leader's identity), also for a leadership transfer in progress;
//     validation errors; fsm.ErrFormatNotEnabled (the command's type is
//     of a log format the cluster has not enabled yet);
//     ErrCommandTooLarge; ErrShutdown; and a ctx that
//     ended before raft accepted the entry (wrapping ctx's error).
//
// Proposals made concurrently share log writes and disk syncs (group
// commit, up to Config.MaxAppendEntries entries at a time), and tenant data
// commands made concurrently share log entries (batcher.go).
func (n *Node) Propose(ctx context.Context, cmd command.Command) (*fsm.Result, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", command.ErrBadCommand)
	}
	// This release's write limits hold before raft, and before the
	// per-op checks; apply keeps the earlier releases' rule
	// (appliedTxnOverhead).
	if err := command.CheckProposedSize(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	if err := n.checkFormat(cmd); err != nil {
		return nil, err
	}
	data, err := command.Encode(cmd)
	if err != nil {
		return nil, err
	}
	if command.Batchable(cmd) && len(data) <= command.MaxBatchBytes {
		if err := n.checkPropose(ctx, data); err != nil {
			return nil, err
		}
		return n.proposeBatched(ctx, cmd, data)
	}
	return n.proposeData(ctx, data)
}

// checkFormat refuses, before raft, what the state machine would refuse or
// stop on (raft/fsm/format.go): a command of a type the cluster format has
// not enabled, and a SetFormat beyond this build, which would stop every
// replica of it. The apply-time gate stays the authority: this node's view
// of the cluster format may lag.
func (n *Node) checkFormat(cmd command.Command) error {
	if c, ok := cmd.(*command.SetFormat); ok && command.Format(c.Version) > command.MaxFormat {
		return fmt.Errorf("%w: cluster format %d is beyond this build (formats up to %d)",
			command.ErrBadCommand, c.Version, command.MaxFormat)
	}
	if !command.Gated(cmd.Type()) {
		return nil
	}
	if need, cur := command.FormatOf(cmd.Type()), n.fsm.ClusterFormat(); need > cur {
		return fmt.Errorf("%w: %T needs cluster format %d, the cluster is at %d (it rises once every member runs a build that knows it)",
			fsm.ErrFormatNotEnabled, cmd, need, cur)
	}
	return nil
}

// checkPropose makes the checks that fail a proposal before raft sees it.
func (n *Node) checkPropose(ctx context.Context, data []byte) error {
	if len(data) > command.MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", command.ErrCommandTooLarge, len(data), command.MaxSize)
	}
	if err := n.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("raft: propose: %w", err)
	}
	if n.raft.State() != hraft.Leader {
		return n.notLeader("")
	}
	return nil
}

func (n *Node) proposeData(ctx context.Context, data []byte) (*fsm.Result, error) {
	if err := n.checkPropose(ctx, data); err != nil {
		return nil, err
	}
	// The timeout bounds only how long raft may take to accept the entry
	// (ErrEnqueueTimeout is a definite failure). Waiting for the commit is
	// bounded by ctx below.
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, fmt.Errorf("raft: propose: %w", context.DeadlineExceeded)
		}
	}
	var fut hraft.ApplyFuture
	done := make(chan struct{})
	go func() {
		fut = n.raft.Apply(data, timeout)
		_ = fut.Error()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrCommitUnknown, ctx.Err())
	case <-n.closing:
		return nil, fmt.Errorf("%w: %v", ErrCommitUnknown, ErrShutdown)
	}
	if err := fut.Error(); err != nil {
		return nil, n.mapRaftError(err)
	}
	res, ok := fut.Response().(*fsm.Result)
	if !ok || res == nil {
		return nil, fmt.Errorf("%w: unexpected FSM response %T", ErrCommitUnknown, fut.Response())
	}
	if err := resultError(res); err != nil {
		return nil, err
	}
	return res, nil
}

// mapRaftError turns an error of a raft future into this package's
// vocabulary, keeping the distinction between "definitely not applied" and
// "unknown".
func (n *Node) mapRaftError(err error) error {
	switch {
	case errors.Is(err, hraft.ErrNotLeader):
		// Raft answers ErrNotLeader only before appending the entry.
		return n.notLeader("")
	case errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		// In raft v1.7.3 the leader loop refuses new entries with this
		// error before appending them (raft.go, applyCh case), so it is a
		// definite failure; the client retries against the new leader.
		return n.notLeader("leadership transfer in progress")
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("raft: not accepted before the deadline: %w", context.DeadlineExceeded)
	case errors.Is(err, hraft.ErrAbortedByRestore):
		// Documented as failed: a restored snapshot replaced the state.
		return fmt.Errorf("raft: aborted by snapshot restore: %w", err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		// Also returned for entries already committed but not yet applied
		// when raft stopped: the outcome is unknown.
		return fmt.Errorf("%w: %v", ErrCommitUnknown, ErrShutdown)
	case errors.Is(err, hraft.ErrLeadershipLost):
		return fmt.Errorf("%w: leadership lost", ErrCommitUnknown)
	default:
		return fmt.Errorf("%w: %v", ErrCommitUnknown, err)
	}
}

// waitFuture waits for a raft future, ctx or shutdown. An error of the
// future is mapped like a proposal's.
func (n *Node) waitFuture(ctx context.Context, f hraft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return n.mapRaftError(err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrCommitUnknown, ctx.Err())
	case <-n.closing:
		return fmt.Errorf("%w: %v", ErrCommitUnknown, ErrShutdown)
	}
}

// waitPlain waits for a raft future that commits nothing (configuration
// reads, leadership transfer): ctx's end and shutdown are reported as such.
func (n *Node) waitPlain(ctx context.Context, f hraft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipLost):
			return n.notLeader("")
		case errors.Is(err, hraft.ErrRaftShutdown):
			return ErrShutdown
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.closing:
		return ErrShutdown
	}
}

// timeoutFrom converts ctx's deadline into raft's enqueue timeout (0 = none).
func timeoutFrom(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Nanosecond
	}
	return 0
}
