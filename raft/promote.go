package raft

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
)

// A node joins as a non-voter and is promoted to voter by the leader once
// it has caught up (see DESIGN.md, "Joins: non-voter first"). The leader
// learns how far each follower's log is from its own by watching the
// answers to the AppendEntries requests it sends (heartbeats included):
// each carries the follower's last log index, which hashicorp/raft v1.7.3
// does not expose through its API.

// promoteStable is how long a non-voter must have been caught up, in every
// answer, before it is promoted: half the heartbeat timeout.
func promoteStable(heartbeat time.Duration) time.Duration {
	return max(heartbeat/2, 10*time.Millisecond)
}

// promoteMaxDelay is how far behind the leader, in time, a follower's log
// may be and still count as caught up: half the heartbeat timeout.
func promoteMaxDelay(heartbeat time.Duration) time.Duration {
	return max(heartbeat/2, 10*time.Millisecond)
}

// progressSamples is how many of the leader's recent requests to one
// follower are remembered (its last index when each left); at the
// heartbeat rate (every tenth to fifth of the heartbeat timeout) they span
// more than promoteMaxDelay.
const progressSamples = 32

// sendSample is the leader's last log index when a request left.
type sendSample struct {
	at   time.Time
	last uint64
}

// peerProgress is what the leader saw of one follower's log.
type peerProgress struct {
	sends [progressSamples]sendSample // a ring; zero at: unused
	next  int
	seen  time.Time // last answer
	// delay is how far behind in time the last answer showed the
	// follower's log: the age of the newest request whose leader index
	// the follower had reached; -1 when it had reached none of them.
	delay time.Duration
	// caughtUpSince is when the answers began to be caught up without a
	// break (no answer behind, no silence longer than the heartbeat
	// timeout); zero while the follower is behind.
	caughtUpSince time.Time
	// lastLog and term are the follower's last log index and term in its
	// last answer.
	lastLog, term uint64
	// lastErr is the error of the last request, if it failed (cleared by
	// the next answer), cut to maxPeerErrLen.
	lastErr string
}

// maxPeerErrLen bounds the transport error kept per follower.
const maxPeerErrLen = 200

// progressTracker records peerProgress per follower. Its size is bounded
// by the configuration (entries of servers that left are pruned) and by
// progressSamples per follower. It is safe for concurrent use.
type progressTracker struct {
	heartbeat time.Duration
	// lastIndex returns the local last log index; nil until raft runs.
	lastIndex atomic.Pointer[func() uint64]

	mu    sync.Mutex
	peers map[hraft.ServerID]*peerProgress
}

func newProgressTracker(heartbeat time.Duration) *progressTracker {
	return &progressTracker{heartbeat: heartbeat, peers: map[hraft.ServerID]*peerProgress{}}
}

func (p *progressTracker) peer(id hraft.ServerID) *peerProgress {
	pp := p.peers[id]
	if pp == nil {
		pp = &peerProgress{delay: -1}
		p.peers[id] = pp
	}
	return pp
}

// sending records that a request to follower id leaves now, while the
// leader's last log index is leaderLast.
func (p *progressTracker) sending(id hraft.ServerID, leaderLast uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peer(id)
	pp.sends[pp.next] = sendSample{at: time.Now(), last: leaderLast}
	pp.next = (pp.next + 1) % progressSamples
}

// observe records one AppendEntries answer of follower id to a request of
// term. The follower is caught up when its log holds everything the
// leader's held promoteMaxDelay ago or later: it keeps pace with the
// leader, within a fraction of the heartbeat timeout. Counting entries
// instead would say nothing: one entry may hold a batch of megabytes, and
// a joiner that must install a snapshot may be only a few entries behind.
func (p *progressTracker) observe(id hraft.ServerID, resp *hraft.AppendEntriesResponse, term uint64) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peer(id)
	gap := pp.seen.IsZero() || now.Sub(pp.seen) > p.heartbeat
	var reached time.Time
	for _, s := range pp.sends {
		if !s.at.IsZero() && s.last <= resp.LastLog && s.at.After(reached) {
			reached = s.at
		}
	}
	pp.delay = -1
	if !reached.IsZero() {
		pp.delay = now.Sub(reached)
	}
	caughtUp := !gap && resp.Success && resp.Term == term && pp.delay >= 0 && pp.delay <= promoteMaxDelay(p.heartbeat)
	switch {
	case !caughtUp:
		pp.caughtUpSince = time.Time{}
	case pp.caughtUpSince.IsZero():
		pp.caughtUpSince = now
	}
	pp.seen = now
	pp.lastLog, pp.term, pp.lastErr = resp.LastLog, resp.Term, ""
}

// failed records that a request to follower id failed with err: no answer
// came (the follower is down, unreachable, or too slow).
func (p *progressTracker) failed(id hraft.ServerID, err error) {
	msg := err.Error()
	if len(msg) > maxPeerErrLen {
		msg = msg[:maxPeerErrLen]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peer(id).lastErr = msg
}

// PeerProgress is what the leader saw of one follower in the answers to
// its AppendEntries requests (heartbeats included).
type PeerProgress struct {
	// Reachable reports whether the follower answered within the last
	// heartbeat timeout. The leader sends a heartbeat every tenth of it or
	// so, so a follower that stops answering (killed, cut off, stalled)
	// shows unreachable within one heartbeat timeout and a little.
	Reachable bool
	// LastContact is how long ago the follower's last answer came; -1 if
	// none came since this node started.
	LastContact time.Duration
	// MatchIndex and Term are the follower's last log index and its term
	// in its last answer.
	MatchIndex uint64
	Term       uint64
	// Behind is how far behind in time the last answer showed the
	// follower's log: the age of the newest request whose leader log the
	// follower held; -1 if it held none of the requests remembered.
	Behind time.Duration
	// CaughtUp reports whether the follower is reachable and its log at
	// most one heartbeat timeout behind the leader's.
	CaughtUp bool
	// LastError is the error of the last request to the follower if it
	// failed, for operators: the leader's transport's words.
	LastError string
}

// status returns what the tracker saw of follower id.
func (p *progressTracker) status(id hraft.ServerID) PeerProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peers[id]
	if pp == nil || pp.seen.IsZero() {
		out := PeerProgress{LastContact: -1, Behind: -1}
		if pp != nil {
			out.LastError = pp.lastErr
		}
		return out
	}
	age := time.Since(pp.seen)
	out := PeerProgress{
		Reachable: age <= p.heartbeat, LastContact: age,
		MatchIndex: pp.lastLog, Term: pp.term, Behind: pp.delay, LastError: pp.lastErr,
	}
	out.CaughtUp = out.Reachable && pp.delay >= 0 && pp.delay <= p.heartbeat
	return out
}

// caughtUp reports whether follower id has been caught up for at least
// stable and its last answer is recent, with how far behind in time that
// answer showed it (-1: further than the requests remembered).
func (p *progressTracker) caughtUp(id hraft.ServerID, stable time.Duration) (bool, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peers[id]
	if pp == nil {
		return false, -1
	}
	now := time.Now()
	ok := !pp.caughtUpSince.IsZero() && now.Sub(pp.seen) <= p.heartbeat && now.Sub(pp.caughtUpSince) >= stable
	return ok, pp.delay
}

// prune forgets followers that are not in conf.
func (p *progressTracker) prune(conf hraft.Configuration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.peers {
		keep := false
		for _, s := range conf.Servers {
			keep = keep || s.ID == id
		}
		if !keep {
			delete(p.peers, id)
		}
	}
}

// progressTransport is the node's transport with every AppendEntries answer
// shown to a progressTracker. Pipelined AppendEntries pass untouched: the
// heartbeats, sent beside the pipeline several times per heartbeat timeout,
// carry the follower's last log index too.
type progressTransport struct {
	hraft.Transport
	progress *progressTracker
}

// progressPreVoteTransport is a progressTransport over a transport that
// supports pre-vote, which it keeps offering to raft.
type progressPreVoteTransport struct {
	*progressTransport
	preVote hraft.WithPreVote
}

// wrapProgress returns t with its AppendEntries answers shown to p, keeping
// the optional interfaces raft looks for (WithPreVote, WithClose).
func wrapProgress(t hraft.Transport, p *progressTracker) hraft.Transport {
	pt := &progressTransport{Transport: t, progress: p}
	if pv, ok := t.(hraft.WithPreVote); ok {
		return &progressPreVoteTransport{progressTransport: pt, preVote: pv}
	}
	return pt
}

var (
	_ hraft.WithClose   = (*progressTransport)(nil)
	_ hraft.WithPreVote = (*progressPreVoteTransport)(nil)
)

// AppendEntries sends the request and records the follower's answer.
func (t *progressTransport) AppendEntries(id hraft.ServerID, target hraft.ServerAddress, args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) error {
	lastIndex := t.progress.lastIndex.Load()
	if lastIndex == nil {
		return t.Transport.AppendEntries(id, target, args, resp)
	}
	t.progress.sending(id, (*lastIndex)())
	err := t.Transport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.progress.observe(id, resp, args.Term)
	} else {
		t.progress.failed(id, err)
	}
	return err
}

// Close closes the underlying transport if it can be closed.
func (t *progressTransport) Close() error {
	if c, ok := t.Transport.(hraft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// RequestPreVote forwards to the underlying transport.
func (t *progressPreVoteTransport) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	return t.preVote.RequestPreVote(id, target, args, resp)
}

// runPromotions promotes caught-up non-voters while this node is the
// leader, one per configuration change. Every leader runs it, so a
// promotion pending when leadership moves is done by the next leader (from
// its own observations). It runs until shutdown.
func (n *Node) runPromotions() {
	defer n.wg.Done()
	tick := time.NewTicker(max(n.heartbeat/10, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-n.closing:
			return
		case <-tick.C:
		}
		n.promoteOne()
	}
}

// promoteOne promotes the first caught-up non-voter of the configuration
// that is not held, if this node is a leader whose term is established.
func (n *Node) promoteOne() {
	if n.raft.State() != hraft.Leader || n.leader.readyTerm() != n.raft.CurrentTerm() {
		return
	}
	n.membership.Lock()
	defer n.membership.Unlock()
	conf := n.raft.GetConfiguration().Configuration()
	n.progress.prune(conf)
	for _, s := range conf.Servers {
		if s.Suffrage == hraft.Voter || s.ID == hraft.ServerID(n.cfg.ID) {
			continue
		}
		// An operator's standby (cluster add --non-voter) waits for
		// Promote. The mark is applied here: this leader's term mark is.
		if held, err := n.fsm.NonvoterHeld(string(s.ID)); err != nil || held {
			continue
		}
		ok, delay := n.progress.caughtUp(s.ID, promoteStable(n.heartbeat))
		if !ok {
			continue
		}
		// hashicorp/raft v1.7.3 reports no configuration index through
		// GetConfiguration (its Index is 0), so prevIndex cannot guard
		// this change; the membership lock does instead: every change
		// this leader makes holds it from reading the configuration to
		// committing the change.
		ctx, cancel := context.WithTimeout(context.Background(), 4*n.election)
		err := n.waitFuture(ctx, n.raft.AddVoter(s.ID, s.Address, 0, 4*n.election))
		cancel()
		if err != nil {
			n.logger.Warn("raft: promote non-voter", "id", s.ID, "error", err)
			return
		}
		n.logger.Info("raft: promoted caught-up non-voter to voter", "id", s.ID, "address", s.Address, "behind", delay)
		return
	}
}

// IsVoter reports whether this node is a voter in the latest configuration
// it knows (which a follower may not have seen committed yet).
func (n *Node) IsVoter() bool { return n.suffrage() == "Voter" }

// IsNonvoter reports whether this node is a non-voter in the latest
// configuration it knows: it joined and the leader has not promoted it yet.
func (n *Node) IsNonvoter() bool { return n.suffrage() == "Nonvoter" }

// AwaitsPromotion reports whether this node is a non-voter that the leader
// will promote once it has caught up: one that joined, not one an operator
// holds as a non-voter (AddNonvoterHold), which serves as it is.
func (n *Node) AwaitsPromotion() bool {
	if !n.IsNonvoter() {
		return false
	}
	held, err := n.fsm.NonvoterHeld(n.cfg.ID)
	return err != nil || !held
}

// suffrage returns this node's suffrage in the latest configuration it
// knows, or "" if it is not in it.
func (n *Node) suffrage() string {
	for _, s := range n.raft.GetConfiguration().Configuration().Servers {
		if s.ID == hraft.ServerID(n.cfg.ID) {
			return s.Suffrage.String()
		}
	}
	return ""
}

// WaitPromoted blocks until this node is a voter in the configuration it
// holds and has applied every entry it knows to be committed: for a node
// that joined, that is after it installed the leader's snapshot, caught up
// and was promoted (the leader promotes only a node whose log keeps pace
// with its own). A non-voter held by an operator (AddNonvoterHold) is
// not promoted until asked: it waits only until it has applied its hold
// mark, and what was committed then. It logs its progress every few
// seconds while it waits, and returns early with ctx's error or
// ErrShutdown.
func (n *Node) WaitPromoted(ctx context.Context) error {
	tick := time.NewTicker(max(n.heartbeat/20, 5*time.Millisecond))
	defer tick.Stop()
	lastLog := time.Now()
	for {
		if err := n.checkOpen(); err != nil {
			return err
		}
		if n.IsVoter() {
			return n.CatchUp(ctx)
		}
		if held, err := n.fsm.NonvoterHeld(n.cfg.ID); err == nil && held && n.IsNonvoter() {
			return n.CatchUp(ctx)
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			n.logger.Info("raft: catching up as a non-voter", "applied_index", n.fsm.AppliedIndex(),
				"commit_index", n.raft.CommitIndex(), "last_index", n.raft.LastIndex())
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("raft: wait for promotion (applied index %d): %w", n.fsm.AppliedIndex(), ctx.Err())
		case <-n.closing:
			return ErrShutdown
		}
	}
}
