package raft

import (
	"testing"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// TestRecordedLogTypes pins the hashicorp/raft log type numbers that the
// recorded log of raft/fsm/testdata/recorded stores with each entry.
func TestRecordedLogTypes(t *testing.T) {
	require.Equal(t, hraft.LogCommand, hraft.LogType(0))
	require.Equal(t, hraft.LogNoop, hraft.LogType(1))
	require.Equal(t, hraft.LogBarrier, hraft.LogType(4))
	require.Equal(t, hraft.LogConfiguration, hraft.LogType(5))
}
