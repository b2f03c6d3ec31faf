package raft

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/raft/command"
)

func testProposal(tenant keyspace.TenantID, cost int) *proposal {
	return &proposal{ctx: context.Background(), data: []byte{1}, done: make(chan proposalOutcome, 1), tenant: tenant, cost: cost}
}

// TestFairQueue checks how the batcher composes entries: a heavy proposal
// goes alone, heavy and light entries alternate, tenants take turns, and a
// heavy entry is followed by a pause while light proposals are sent.
func TestFairQueue(t *testing.T) {
	q := newFairQueue()
	heavy := heavyCost + 1
	for range 3 {
		q.push(testProposal(1, heavy)) // the attacker
	}
	q.push(testProposal(2, heavy)) // another heavy tenant
	for range 5 {
		q.push(testProposal(3, 10)) // a victim
	}
	now := time.Unix(1000, 0)
	b, isHeavy, _ := q.next(now)
	require.False(t, isHeavy, "light proposals go first")
	require.Len(t, b, 5)
	b, isHeavy, _ = q.next(now)
	require.True(t, isHeavy)
	require.Len(t, b, 1)
	require.Equal(t, keyspace.TenantID(1), b[0].tenant)
	// The heavy entry took 10 ms; a victim proposal arrives and is sent:
	// the next heavy one must wait heavyPause×10 ms from the end.
	q.heavyDone(now, now.Add(10*time.Millisecond))
	now = now.Add(10 * time.Millisecond)
	q.push(testProposal(3, 10))
	b, isHeavy, _ = q.next(now)
	require.False(t, isHeavy)
	require.Len(t, b, 1)
	b, _, wait := q.next(now.Add(5 * time.Millisecond))
	require.Empty(t, b)
	require.Equal(t, heavyPause*10*time.Millisecond-5*time.Millisecond, wait)
	// After the pause, tenants take turns: tenant 2 before tenant 1's second.
	b, isHeavy, _ = q.next(now.Add(heavyPause * 10 * time.Millisecond))
	require.True(t, isHeavy)
	require.Equal(t, keyspace.TenantID(2), b[0].tenant)
	// With nobody else sending, heavy entries follow each other at once.
	q.heavyDone(now, now.Add(40*time.Millisecond))
	b, isHeavy, _ = q.next(now.Add(40 * time.Millisecond))
	require.True(t, isHeavy)
	require.Equal(t, keyspace.TenantID(1), b[0].tenant)
	require.False(t, q.empty())
	b, _, _ = q.next(now.Add(40 * time.Millisecond))
	require.Len(t, b, 1)
	require.True(t, q.empty())
}

// TestFairQueueShares checks that a light entry takes each tenant's share
// in turn: one tenant's thousand proposals do not fill the entry ahead of
// another's two.
func TestFairQueueShares(t *testing.T) {
	q := newFairQueue()
	for range 1000 {
		q.push(testProposal(1, 10))
	}
	q.push(testProposal(2, 10))
	q.push(testProposal(2, 10))
	b, _, _ := q.next(time.Unix(1000, 0))
	require.Len(t, b, command.MaxBatchCommands)
	n2 := 0
	for _, p := range b {
		if p.tenant == 2 {
			n2++
		}
	}
	require.Equal(t, 2, n2)
}

// TestApplyRefusesOversizedWrites: a log entry carrying more than
// MaxMutations mutations, or empty mutations beyond 10 MB with their
// overhead, is refused at apply time (a forged entry never reached
// Propose), identically on every replica, and changes nothing.
