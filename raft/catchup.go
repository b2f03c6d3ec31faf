package raft

import "context"

// CatchUp waits until the local FSM has applied every entry this node knows
// to be committed. On a follower that is the leader's commit index as of the
// last heartbeat, so a change acknowledged just before (a new token, say) is
// visible afterwards. It is not a linearizable barrier: use ReadBarrier on
// the leader for that.
func (n *Node) CatchUp(ctx context.Context) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	return n.waitApplied(ctx, n.raft.CommitIndex())
}
