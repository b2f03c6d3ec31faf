package server

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A node is ready when it can serve clients: it has finished starting (a
// joining node has caught up and been promoted to voter), it knows a
// leader, and it has caught up with that leader since it started, so that
// what it serves from its own state (stale reads, token checks) is not
// older than what the cluster had committed when it came up. A node that
// restarted is up (it listens, it answers "not ready") well before it is
// ready: until a leader is elected or reaches it, and until it has applied
// the entries it missed. `serve` prints its ready line and /readyz answers
// 200 only from then on.

// readyPoll is how often WaitReady looks again.
const readyPoll = 10 * time.Millisecond

// Readiness returns "" when the node is ready to serve, else why it is
// not, as /readyz says it (no raft index or address: the HTTP address
// needs no token). Once caught up with a leader the node stays so while a
// leader is known.
func (s *Server) Readiness() string {
	switch {
	case s.node.Err() != nil:
		// The cause (paths, indexes) is in the node's log, not here.
		return "node stopped: its storage failed (see its log)"
	case !s.started.Load():
		// Still in Start: a joining node waits there until it has caught
		// up and been promoted to voter.
		return "starting: catching up"
	case s.node.AwaitsPromotion(): // a held non-voter serves as it is
		return "catching up: non-voter, not yet promoted"
	}
	if id, _ := s.node.Leader(); id == "" {
		return "no leader"
	}
	if !s.node.CaughtUpWithLeader() {
		return readyCatchingUp
	}
	return ""
}

// readyCatchingUp is Readiness's reason while the node knows its leader
// and has not caught up with it yet.
const readyCatchingUp = "catching up with the leader"

// servable returns nil when this node may serve from its own state, and
// otherwise an error wrapping errNotReady with the reason: it may once it
// has been ready (Readiness is "") since it started. That is the one
// judgement a hello's verdict on a token and a stale read (caughtUp,
// handler.go) rest on, and the one the ready line and /readyz make, so a
// node that says ready judges tokens, and a node that has not been ready
// since it started (restarted behind its leader, still joining, awaiting
// promotion) judges none: its state may predate a revocation. Once
// reached it holds until the node stops, also while no leader is known,
// as for stale reads: a node of a cluster that lost its quorum still
// answers an operator's cluster status and cluster health, which the
// recovery needs, from state that was caught up. It depends on no token:
// every hello on a node that is not servable gets the same answer at the
// same cost.
func (s *Server) servable() error {
	if s.node.Err() != nil {
		return fmt.Errorf("%w: %s", errNotReady, s.Readiness())
	}
	if s.caught.Load() {
		return nil
	}
	if why := s.Readiness(); why != "" {
		return fmt.Errorf("%w: %s", errNotReady, why)
	}
	s.caught.Store(true)
	return nil
}

// helloReadyWait bounds how long a hello waits for a node that is
// catching up with a known leader to become servable, and helloReadyPoll
// is how often it looks meanwhile: a node that just joined or restarted
// near the leader catches up within a few of raft's commit timeouts, and
// its clients had better wait for it than go elsewhere. The wait depends
// on no token, and is bounded per hello like the hello itself.
const (
	helloReadyWait = time.Second
	helloReadyPoll = 20 * time.Millisecond
)

// waitServable is servable for a hello: while the node is catching up with
// a leader it knows, it waits for it, for at most helloReadyWait or until
// ctx ends; any other reason (no leader, still joining) is answered at
// once.
func (s *Server) waitServable(ctx context.Context) error {
	err := s.servable()
	if err == nil || s.Readiness() != readyCatchingUp {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, helloReadyWait)
	defer cancel()
	tick := time.NewTicker(helloReadyPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
		if err = s.servable(); err == nil || s.Readiness() != readyCatchingUp {
			return err
		}
	}
}

// WaitReady waits until the node is ready (Readiness is ""). It returns
// ctx's cause if ctx ends first, and the node's error if it stops first.
func (s *Server) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if s.Readiness() == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.Done():
			if err := s.Err(); err != nil {
				return err
			}
			return errors.New("server: closed before it was ready")
		case <-tick.C:
		}
	}
}
