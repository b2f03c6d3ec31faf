package raft

import (
	"fmt"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestLeaderCommitObserve(t *testing.T) {
	var c leaderCommit
	for _, step := range []struct {
		term, index   uint64
		wantT, wantIx uint64
	}{
		{2, 10, 2, 10},
		{2, 8, 2, 10},  // a late request of the same term
		{1, 50, 2, 10}, // a deposed leader's
		{2, 12, 2, 12},
		{3, 5, 3, 5}, // a new leader's, even if lower
	} {
		c.observe(step.term, step.index)
		term, index, _ := c.get()
		require.Equal(t, [2]uint64{step.wantT, step.wantIx}, [2]uint64{term, index}, "after (%d, %d)", step.term, step.index)
	}
}

// TestCommitTransportRecords sends an AppendEntries through a wrapped
// in-memory transport and checks that raft's consumer gets it and that the
// leader's commit index was recorded.
func TestCommitTransportRecords(t *testing.T) {
	addrA, a := hraft.NewInmemTransport("a")
	addrB, b := hraft.NewInmemTransport("b")
	a.Connect(addrB, b)
	b.Connect(addrA, a)
	var seen leaderCommit
	wrapped := wrapLeaderCommit(b, &seen)
	t.Cleanup(func() { require.NoError(t, wrapped.(hraft.WithClose).Close()) })
	go func() {
		rpc := <-wrapped.Consumer()
		rpc.Respond(&hraft.AppendEntriesResponse{Term: 7, Success: true}, nil)
	}()
	var resp hraft.AppendEntriesResponse
	req := &hraft.AppendEntriesRequest{RPCHeader: hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax}, Term: 7, LeaderCommitIndex: 42}
	require.NoError(t, a.AppendEntries("b", addrB, req, &resp))
	require.True(t, resp.Success)
	term, index, _ := seen.get()
	require.Equal(t, [2]uint64{7, 42}, [2]uint64{term, index})
	_, preVote := wrapped.(hraft.WithPreVote)
	_, innerPreVote := hraft.Transport(b).(hraft.WithPreVote)
	require.Equal(t, innerPreVote, preVote, "pre-vote support must be kept")
}

// TestCaughtUpWithLeaderAfterRestart restarts a follower that missed many
// entries, with the leader sending one entry per append: the follower
// must not report itself caught up before it applied every entry the
// leader had committed before the restart, although it knows the leader
// from the first append on and its own commit index follows its log one
// entry at a time.
func TestCaughtUpWithLeaderAfterRestart(t *testing.T) {
	c := newCluster(t, 3, inmemTransport, clusterOptions{maxAppendEntries: 1})
	tid := c.createTenant("ready")
	f := c.followers()[0]
	require.Eventually(t, f.node.CaughtUpWithLeader, 10*time.Second, time.Millisecond)
	c.kill(f)
	for i := range 300 {
		c.mustPropose(put(tid, "ready", fmt.Sprintf("k%03d", i), "v"))
	}
	target := c.waitLeader().node.AppliedIndex()
	c.restart(f)
	require.Eventually(t, f.node.CaughtUpWithLeader, 30*time.Second, time.Millisecond)
	// Read after the answer: the applied index only grows.
	require.GreaterOrEqual(t, f.node.AppliedIndex(), target, "caught up before applying what was committed before the restart")
	// It stays so while a leader is known.
	require.True(t, f.node.CaughtUpWithLeader())
}

// TestNotCaughtUpWithoutLeader: a node that knows no leader is never
// caught up, even after it was.
func TestNotCaughtUpWithoutLeader(t *testing.T) {
	c := newCluster(t, 3, inmemTransport, clusterOptions{})
	f := c.followers()[0]
	require.Eventually(t, f.node.CaughtUpWithLeader, 10*time.Second, time.Millisecond)
	c.partition(f)
	require.Eventually(t, func() bool { id, _ := f.node.Leader(); return id == "" }, 20*time.Second, 5*time.Millisecond)
	require.False(t, f.node.CaughtUpWithLeader())
	c.heal()
	require.Eventually(t, f.node.CaughtUpWithLeader, 20*time.Second, 5*time.Millisecond)
}
