package command

// TypeHoldNonvoter is the type of HoldNonvoter entries (format 3).
const TypeHoldNonvoter Type = 14

// HoldNonvoter marks non-voter NodeID as one the leader must not promote
// on its own (Hold true), or clears the mark (Hold false). An operator
// holds a node with `tenantkv cluster add --non-voter` and releases it
// with `cluster promote`; a node that joins is not held, and the leader
// promotes it once it has caught up. The mark is replicated state, so that
// every later leader keeps it: a leader change must not turn a standby
// into a voter and change the quorum behind the operator's back. It says
// nothing about the raft configuration itself: a mark of a node that is a
// voter, or not a member, has no effect.
type HoldNonvoter struct {
	NodeID string `msgpack:"id"`
	Hold   bool   `msgpack:"h"`
}

func (*HoldNonvoter) Type() Type { return TypeHoldNonvoter }

func (c *HoldNonvoter) Validate() error { return validateNodeID(c.NodeID) }
