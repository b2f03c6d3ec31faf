package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/raft/command"
)

// A hold mark is refused until the cluster format enables it (format 3),
// then set and cleared idempotently, identically on every replica, and
// kept across a restart and in snapshots.
func TestHoldNonvoter(t *testing.T) {
	var sums []uint64
	for range 2 { // two replicas apply the same log
		h := newFSMHarness(t)
		before := h.checksum()
		r := h.apply(&command.HoldNonvoter{NodeID: "n4", Hold: true})[0]
		require.ErrorIs(t, r.Err, ErrFormatNotEnabled, "format 3 is not enabled yet")
		require.Equal(t, before, h.checksum())
		held, err := h.fsm.NonvoterHeld("n4")
		require.NoError(t, err)
		require.False(t, held)

		h.must(&command.SetFormat{Version: uint32(command.Format3)})
		for range 2 {
			h.must(&command.HoldNonvoter{NodeID: "n4", Hold: true})
			held, err = h.fsm.NonvoterHeld("n4")
			require.NoError(t, err)
			require.True(t, held)
		}
		held, err = h.fsm.NonvoterHeld("n5")
		require.NoError(t, err)
		require.False(t, held, "a mark is one node's")
		h.reopen()
		held, err = h.fsm.NonvoterHeld("n4")
		require.NoError(t, err)
		require.True(t, held, "the mark is in the store")
		held, err = h.fork().fsm.NonvoterHeld("n4")
		require.NoError(t, err)
		require.True(t, held, "and in snapshots")
		sums = append(sums, h.checksum())

		for range 2 {
			h.must(&command.HoldNonvoter{NodeID: "n4"})
			held, err = h.fsm.NonvoterHeld("n4")
			require.NoError(t, err)
			require.False(t, held)
		}
		r = h.apply(&command.HoldNonvoter{})[0]
		require.ErrorIs(t, r.Err, command.ErrBadCommand, "a node ID is needed")
	}
	require.Equal(t, sums[0], sums[1])
}
