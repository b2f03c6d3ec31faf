package raft

import (
	"sync"

	hraft "github.com/hashicorp/raft"
)

// A node is ready to serve once it holds what its leader had committed.
// Only the leader knows its commit index; a follower learns it from the
// AppendEntries requests the leader sends (LeaderCommitIndex), which
// hashicorp/raft does not expose: its follower caps its own commit index
// at the last entry it has, so a follower that restarted far behind sees a
// commit index that moves up one batch of entries at a time, and applying
// up to it says nothing about how far the leader is. The transport wrapper
// below reads the leader's figure off the requests as they arrive.

// leaderCommit is the highest commit index a leader announced to this node
// in the highest term it heard of, and whether this node has since caught
// up with one (a latch: see CaughtUpWithLeader). It is safe for concurrent
// use; the zero value is ready.
type leaderCommit struct {
	mu       sync.Mutex
	term     uint64
	index    uint64
	caughtUp bool
}

// observe records what an AppendEntries request of term said.
func (c *leaderCommit) observe(term, index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case term > c.term:
		c.term, c.index = term, index
	case term == c.term && index > c.index:
		c.index = index
	}
}

func (c *leaderCommit) get() (term, index uint64, caughtUp bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.term, c.index, c.caughtUp
}

func (c *leaderCommit) latch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caughtUp = true
}

// CaughtUpWithLeader reports whether this node has caught up with its
// leader since it started: as a follower, that a leader is known and the
// state machine has applied the commit index that leader announced in an
// AppendEntries request of the current term; as the leader, that an entry
// of its own term is applied (it may serve linearizable reads). Once true
// it stays true while a leader is known, so that a follower that trails by
// the entries in flight under load is not reported as not caught up; it is
// false whenever no leader is known.
func (n *Node) CaughtUpWithLeader() bool {
	if n.checkOpen() != nil {
		return false
	}
	if id, _ := n.Leader(); id == "" {
		return false
	}
	term, index, caughtUp := n.commits.get()
	switch {
	case caughtUp:
		return true
	case n.IsLeader():
		if n.leader.readyTerm() != n.raft.CurrentTerm() {
			return false
		}
	case term != n.raft.CurrentTerm() || n.fsm.AppliedIndex() < index:
		return false
	}
	n.commits.latch()
	return true
}

// wrapLeaderCommit returns t with the AppendEntries requests it receives
// shown to c, keeping the optional interfaces raft looks for (WithPreVote,
// WithClose). Requests pass through one more channel, unbuffered like the
// transport's own, so that raft's back-pressure on its peers is unchanged.
func wrapLeaderCommit(t hraft.Transport, c *leaderCommit) hraft.Transport {
	ct := &commitTransport{Transport: t, commits: c, out: make(chan hraft.RPC), stop: make(chan struct{})}
	if pv, ok := t.(hraft.WithPreVote); ok {
		return &commitPreVoteTransport{commitTransport: ct, preVote: pv}
	}
	return ct
}

// commitTransport is a transport whose incoming AppendEntries requests
// are recorded in commits on their way to raft.
type commitTransport struct {
	hraft.Transport
	commits *leaderCommit

	start    sync.Once
	out      chan hraft.RPC
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
}

// commitPreVoteTransport is a commitTransport over a transport that
// supports pre-vote.
type commitPreVoteTransport struct {
	*commitTransport
	preVote hraft.WithPreVote
}

var (
	_ hraft.WithClose   = (*commitTransport)(nil)
	_ hraft.WithPreVote = (*commitPreVoteTransport)(nil)
)

// Consumer returns the channel of incoming requests. Raft asks for it
// once, when it starts; the first call starts the goroutine that forwards
// the transport's requests, until Close.
func (t *commitTransport) Consumer() <-chan hraft.RPC {
	t.start.Do(func() { go t.forward(t.Transport.Consumer()) })
	return t.out
}

func (t *commitTransport) forward(in <-chan hraft.RPC) {
	for {
		var rpc hraft.RPC
		select {
		case rpc = <-in:
		case <-t.stop:
			return
		}
		// A heartbeat carries no commit index (0): it says nothing, and
		// must not stand for the leader's figure in its term. (Over TCP
		// raft takes heartbeats on a path of their own; the in-memory
		// transport sends them here.)
		if req, ok := rpc.Command.(*hraft.AppendEntriesRequest); ok && req.LeaderCommitIndex > 0 {
			t.commits.observe(req.Term, req.LeaderCommitIndex)
		}
		select {
		case t.out <- rpc:
		case <-t.stop:
			// Raft is gone; the transport, closed too, fails the
			// sender's wait for an answer.
			return
		}
	}
}

// Close stops forwarding and closes the underlying transport if it can be
// closed.
func (t *commitTransport) Close() error {
	t.stopOnce.Do(func() { close(t.stop) })
	if c, ok := t.Transport.(hraft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// RequestPreVote forwards to the underlying transport.
func (t *commitPreVoteTransport) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	return t.preVote.RequestPreVote(id, target, args, resp)
}
