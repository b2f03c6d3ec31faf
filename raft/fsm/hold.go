package fsm

import (
	"errors"
	"fmt"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/store"
)

// Held non-voters (command.HoldNonvoter, format 3). A held node's mark is
// the cluster metadata "hold/" + node ID, present (an empty value) while
// the node is held. The mark is all the state there is: the raft
// configuration says who is a non-voter, the mark only whether the leader
// may promote one on its own.

// holdKey is the key of node id's hold mark.
func holdKey(id string) keyspace.SystemKey { return keyspace.MetaKey("hold/" + id) }

// holdNonvoter sets or clears c.NodeID's mark. Both are idempotent.
func (a *applier) holdNonvoter(c *command.HoldNonvoter) error {
	if c.Hold {
		return a.set(holdKey(c.NodeID), []byte{})
	}
	return a.del(holdKey(c.NodeID))
}

// NonvoterHeld reports whether node id is held: an operator added it with
// `cluster add --non-voter`, and it has not been promoted since. The
// leader does not promote a held non-voter on its own.
func (f *Machine) NonvoterHeld(id string) (bool, error) {
	_, err := f.store.System().Get(holdKey(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("raft: read hold mark of %q: %w", id, err)
}
