package raft

import (
	"context"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/stretchr/testify/require"
)

// member returns id's entry in what n lists, or fails the test.
func member(t *testing.T, n *Node, id string) Member {
	t.Helper()
	members, err := n.Members(t.Context())
	require.NoError(t, err)
	for _, m := range members {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("%s is not a member: %+v", id, members)
	return Member{}
}

// TestHeldNonvoterWaitsForPromote adds a held non-voter: refused before the
// cluster format allows the mark; then it catches up and is ready without
// being promoted, stays a non-voter across many promotion rounds and a
// leader change, is refused promotion while cut off, and becomes a voter
// on Promote, which releases the mark.
func TestHeldNonvoterWaitsForPromote(t *testing.T) {
	c := newCluster(t, 3, tcpTransport, clusterOptions{})
	l := c.waitLeader()
	c.createTenant("acme")
	j := c.addNode()
	c.start(j, false)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	err := l.node.AddNonvoterHold(ctx, j.id, j.addr, true)
	require.ErrorIs(t, err, ErrMemberRefused, "format 2 has no hold mark")
	require.Contains(t, err.Error(), "cluster format 3")
	members, err := l.node.Members(ctx)
	require.NoError(t, err)
	require.Len(t, members, 3, "nothing was added")

	c.mustPropose(&command.SetFormat{Version: uint32(command.Format3)})
	require.NoError(t, l.node.AddNonvoterHold(ctx, j.id, j.addr, true))
	require.NoError(t, j.node.WaitPromoted(ctx), "a held node is ready once caught up")
	require.True(t, j.node.IsNonvoter())
	m := member(t, l.node, j.id)
	require.True(t, m.Held)
	require.NotNil(t, m.Progress)

	// Caught up, and still a non-voter after many promotion rounds.
	require.Eventually(t, func() bool { return member(t, l.node, j.id).Progress.CaughtUp }, 10*time.Second, 10*time.Millisecond)
	until := time.Now().Add(4 * promoteStable(l.node.heartbeat))
	for time.Now().Before(until) {
		require.Equal(t, "Nonvoter", member(t, l.node, j.id).Suffrage, "a held node was promoted")
		<-time.After(10 * time.Millisecond)
	}

	// A non-voter cannot take over; the next leader keeps the hold.
	_, err = l.node.TransferLeadershipTo(ctx, j.id)
	require.ErrorIs(t, err, ErrMemberRefused)
	to, err := l.node.TransferLeadershipTo(ctx, "")
	require.NoError(t, err)
	require.NotEqual(t, l.id, to)
	l2 := c.waitLeader()
	require.Equal(t, to, l2.id)
	until = time.Now().Add(4 * promoteStable(l.node.heartbeat))
	for time.Now().Before(until) {
		require.Equal(t, "Nonvoter", member(t, l2.node, j.id).Suffrage, "the next leader promoted a held node")
		<-time.After(10 * time.Millisecond)
	}

	// Cut off from the leader, it is not caught up: refused, unchanged.
	c.cut(l2, j)
	require.Eventually(t, func() bool { return !member(t, l2.node, j.id).Progress.Reachable }, 10*time.Second, 10*time.Millisecond)
	err = l2.node.Promote(ctx, j.id)
	require.ErrorIs(t, err, ErrMemberRefused)
	require.Contains(t, err.Error(), "has not caught up")
	require.Equal(t, "Nonvoter", member(t, l2.node, j.id).Suffrage)
	require.ErrorIs(t, l2.node.Promote(ctx, "nobody"), fsm.ErrMemberNotFound)

	c.heal()
	require.Eventually(t, func() bool {
		err := l2.node.Promote(ctx, j.id)
		if err != nil {
			require.ErrorIs(t, err, ErrMemberRefused)
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	m = member(t, l2.node, j.id)
	require.Equal(t, "Voter", m.Suffrage)
	require.False(t, m.Held, "promotion releases the mark")
	require.NoError(t, l2.node.Promote(ctx, j.id), "promoting a voter changes nothing")
	held, err := l2.node.FSM().NonvoterHeld(j.id)
	require.NoError(t, err)
	require.False(t, held, "the mark is gone, not only hidden for a voter")
}

// TestPeerProgressShowsStoppedFollower stops a follower: the leader shows
// it unreachable (and the others reachable and caught up), refuses to
// hand it leadership, and hands leadership to the live voter when asked
// for the most caught-up one.
func TestPeerProgressShowsStoppedFollower(t *testing.T) {
	c := newCluster(t, 3, tcpTransport, clusterOptions{})
	l := c.waitLeader()
	c.createTenant("acme")
	fs := c.followers()
	dead, live := fs[0], fs[1]
	require.Eventually(t, func() bool {
		p := member(t, l.node, dead.id).Progress
		return p.Reachable && p.CaughtUp
	}, 10*time.Second, 10*time.Millisecond)
	require.Nil(t, member(t, l.node, l.id).Progress, "no progress for the leader itself")
	require.Zero(t, l.node.LeaderContact())
	require.Positive(t, live.node.LeaderContact())

	c.kill(dead)
	c.mustPropose(&command.Noop{})
	require.Eventually(t, func() bool { return !member(t, l.node, dead.id).Progress.Reachable }, 10*time.Second, 10*time.Millisecond)
	p := member(t, l.node, dead.id).Progress
	require.False(t, p.CaughtUp)
	require.GreaterOrEqual(t, p.LastContact, l.node.heartbeat)
	require.NotEmpty(t, p.LastError, "the transport's error is kept")
	p = member(t, l.node, live.id).Progress
	require.True(t, p.Reachable)
	require.Eventually(t, func() bool { return member(t, l.node, live.id).Progress.CaughtUp }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, l.node.raft.LastIndex(), member(t, l.node, live.id).Progress.MatchIndex)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := l.node.TransferLeadershipTo(ctx, dead.id)
	require.ErrorIs(t, err, ErrMemberRefused)
	_, err = l.node.TransferLeadershipTo(ctx, l.id)
	require.ErrorIs(t, err, ErrMemberRefused)
	_, err = l.node.TransferLeadershipTo(ctx, "nobody")
	require.ErrorIs(t, err, fsm.ErrMemberNotFound)
	to, err := l.node.TransferLeadershipTo(ctx, "")
	require.NoError(t, err)
	require.Equal(t, live.id, to)
	require.Equal(t, live.id, c.waitLeader().id)
}
