package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"

	hraft "github.com/hashicorp/raft"
)

// leaderState tracks whether this node, as leader, may serve linearizable
// reads: only once an entry of its own term, one the FSM sees, has been
// committed and applied. Before that its commit index may trail entries
// committed by the previous leader.
type leaderState struct {
	mu    sync.Mutex
	term  uint64        // term whose mark is applied; 0 = not ready
	event chan struct{} // closed and replaced on every change
}

func (s *leaderState) init() { s.event = make(chan struct{}) }

func (s *leaderState) readyTerm() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term
}

// set records the ready term and wakes waiters (also when unchanged: the
// watcher calls it on every leadership event so waiters re-check).
func (s *leaderState) set(term uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.term = term
	close(s.event)
	s.event = make(chan struct{})
}

func (s *leaderState) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.event
}

// watchLeadership reacts to raft state changes. When this node becomes
// leader it commits a no-op command of its new term (the "mark"), then
// declares itself ready for linearizable reads and publishes its member
// metadata. It runs until shutdown.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	// A periodic check backs up the observer, which drops events when its
	// buffer is full.
	tick := time.NewTicker(n.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-n.closing:
			n.leader.set(0)
			return
		case <-n.obsCh:
		case <-tick.C:
		}
		n.checkLeadership()
	}
}

func (n *Node) checkLeadership() {
	if n.raft.State() != hraft.Leader {
		n.leader.set(0) // also wakes waiters, so they re-check the state
		return
	}
	term := n.raft.CurrentTerm()
	if n.leader.readyTerm() == term {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*n.election)
	defer cancel()
	go func() {
		select {
		case <-n.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	data, err := command.Encode(&command.Noop{})
	if err != nil {
		n.logger.Error("raft: encode leader mark", "error", err)
		return
	}
	if _, err := n.proposeData(ctx, data); err != nil {
		// Retried at the next event or tick while still leader.
		n.logger.Debug("raft: leader mark not committed", "term", term, "error", err)
		return
	}
	if n.raft.State() == hraft.Leader && n.raft.CurrentTerm() == term {
		n.leader.set(term)
		n.logger.Info("raft: leader ready", "term", term)
		n.publishSelf(ctx)
	}
}

// publishSelf proposes this node's member metadata if the replicated copy
// differs from the configuration.
func (n *Node) publishSelf(ctx context.Context) {
	if n.cfg.ClientAddr == "" && n.cfg.HTTPAddr == "" {
		return
	}
	want := command.SetMember{NodeID: n.cfg.ID, ClientAddr: n.cfg.ClientAddr, HTTPAddr: n.cfg.HTTPAddr}
	if have, err := n.fsm.MemberInfo(n.cfg.ID); err == nil && *have == want {
		return
	}
	if _, err := n.Propose(ctx, &want); err != nil {
		n.logger.Warn("raft: publish member metadata", "error", err)
	}
}

// readQueue batches linearizable reads. Callers join the round that has not
// started yet; one goroutine runs rounds back to back. A round started
// before a caller arrived proves nothing about leadership at its arrival, so
// a caller never joins a round already in flight.
type readQueue struct {
	mu   sync.Mutex
	next *readRound
	kick chan struct{} // capacity 1: a round is waiting to start
	// rounds counts quorum rounds run, for Stats and tests.
	rounds atomic.Int64
}

type readRound struct {
	done  chan struct{}
	index uint64 // read index: wait for the FSM to reach it
	err   error
}

func (q *readQueue) init() { q.kick = make(chan struct{}, 1) }

func (q *readQueue) join() *readRound {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.next == nil {
		q.next = &readRound{done: make(chan struct{})}
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return q.next
}

func (q *readQueue) take() *readRound {
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.next
	q.next = nil
	return r
}

func (n *Node) serveReads() {
	defer n.wg.Done()
	for {
		select {
		case <-n.closing:
			if r := n.reads.take(); r != nil {
				r.err = ErrShutdown
				close(r.done)
			}
			return
		case <-n.reads.kick:
		}
		if r := n.reads.take(); r != nil {
			n.reads.rounds.Add(1)
			r.index, r.err = n.readRound()
			close(r.done)
		}
	}
}

// readRound captures the commit index and confirms leadership with a quorum
// (read index, Raft thesis §6.4). The term check on both sides ensures the
// node was leader of the same term throughout, with its mark applied.
func (n *Node) readRound() (uint64, error) {
	term := n.raft.CurrentTerm()
	if n.raft.State() != hraft.Leader || n.leader.readyTerm() != term {
		return 0, n.notLeader("")
	}
	index := n.raft.CommitIndex()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := n.waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		if errors.Is(err, ErrCommitUnknown) && n.checkOpen() != nil {
			return 0, ErrShutdown
		}
		return 0, n.notLeader("leadership not confirmed")
	}
	if n.raft.CurrentTerm() != term {
		return 0, n.notLeader("term changed")
	}
	return index, nil
}

// ReadBarrier makes the local store linearizable for reads that start after
// it returns: it confirms with a quorum that this node is still the leader
// and waits until the local FSM has applied every entry committed before the
// call. Concurrent callers share one quorum round. On a follower it returns
// a *NotLeaderError (errors.Is ErrNotLeader). A new leader waits until it
// has committed an entry of its own term. Stale reads need no barrier.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if err := n.waitReady(ctx); err != nil {
		return err
	}
	r := n.reads.join()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("raft: read barrier: %w", ctx.Err())
	case <-n.closing:
		return ErrShutdown
	}
	if r.err != nil {
		return r.err
	}
	return n.waitApplied(ctx, r.index)
}

// waitReady waits until this leader has applied an entry of its term. It
// returns a *NotLeaderError as soon as the node is not the leader.
func (n *Node) waitReady(ctx context.Context) error {
	for {
		ch := n.leader.changed()
		if n.raft.State() != hraft.Leader {
			return n.notLeader("")
		}
		if n.leader.readyTerm() == n.raft.CurrentTerm() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("raft: wait for leader to be ready: %w", ctx.Err())
		case <-n.closing:
			return ErrShutdown
		}
	}
}

// WaitForLeader blocks until this node knows a leader (itself or another)
// and returns its ID and raft address.
func (n *Node) WaitForLeader(ctx context.Context) (id, raftAddr string, err error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, addr := n.Leader(); id != "" {
			return id, addr, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return "", "", fmt.Errorf("raft: wait for leader: %w", ctx.Err())
		case <-n.closing:
			return "", "", ErrShutdown
		}
	}
}
