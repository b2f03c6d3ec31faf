package raft

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/raft/command"
)

// Propose refuses, before raft, a SetFormat beyond this build (it would
// stop every replica of it); a SetFormat within it raises the cluster
// format, and a lower one changes nothing.
func TestProposeSetFormat(t *testing.T) {
	c := newCluster(t, 1, inmemTransport, clusterOptions{})
	n := c.nodes[0].node
	require.Equal(t, command.Format1, n.FSM().ClusterFormat())
	before := n.raft.LastIndex()
	_, err := n.Propose(t.Context(), &command.SetFormat{Version: uint32(command.MaxFormat) + 1})
	require.ErrorIs(t, err, command.ErrBadCommand)
	require.Equal(t, before, n.raft.LastIndex(), "nothing reached the log")

	_, err = n.Propose(t.Context(), &command.SetFormat{Version: uint32(command.MaxFormat)})
	require.NoError(t, err)
	require.Equal(t, command.MaxFormat, n.FSM().ClusterFormat())
	_, err = n.Propose(t.Context(), &command.SetFormat{Version: 1})
	require.NoError(t, err)
	require.Equal(t, command.MaxFormat, n.FSM().ClusterFormat())
	require.NoError(t, n.Err())
}
