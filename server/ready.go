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
		return "catching up with the leader"
	}
	return ""
}

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
