package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft"
)

// What a connection is told before it has authenticated. An attacker may
// send any token to any node, so these answers must not tell one bad token
// from another (an unknown token ID from a known one with a wrong secret, a
// malformed token from either), nor one node from another, nor carry
// anything of the node's internals: no raft index, no address, no count.
// Every bad token gets helloDenied on every node; a node that cannot judge
// tokens now (it has not been ready, as /readyz says, since it started:
// it has not caught up with a leader yet; or it is installing a snapshot,
// or cannot reach the leader to judge one it refuses) gets helloNotReady for every token, good or bad. Only a token
// the leader accepted may learn more (errValidElsewhere: the leader's
// address).
var (
	helloDenied   = wire.Response{Code: wire.CodePermissionDenied, Msg: "invalid token"}
	helloNotReady = wire.Response{Code: wire.CodeUnavailable, Msg: "node not ready to authenticate: try again or another node"}
)

var (
	// errNotReady: this node cannot judge tokens now (see helloNotReady).
	errNotReady = errors.New("tenantkv: node not ready to authenticate")
	// errValidElsewhere: the leader accepted a token that this node has
	// not applied yet; the client had better go to the leader.
	errValidElsewhere = fmt.Errorf("tenantkv: token not replicated here yet: %w", raft.ErrNotLeader)
)

// helloRefusal is the answer to a hello that failed with err (from
// servable or authenticate), with the request's ID. The cause is logged,
// never sent.
func (c *conn) helloRefusal(id uint64, err error) *wire.Response {
	var resp wire.Response
	switch {
	case errors.Is(err, ErrPermissionDenied):
		resp = helloDenied
	case errors.Is(err, errValidElsewhere):
		resp = *c.srv.errorResponse(raft.ErrNotLeader)
	default:
		c.logger.Debug("hello refused: node not ready", "error", err)
		resp = helloNotReady
	}
	resp.ID = id
	return &resp
}

// askLeaderTimeout bounds a follower's question to the leader about a
// token it refuses.
const askLeaderTimeout = 5 * time.Second

// maxLeaderAsks bounds the questions about tokens one node has in flight
// to the leader, so that a flood of bad hellos on a follower costs the
// leader at most that many connections; past it a hello that needs one is
// answered errNotReady, whatever its token.
const maxLeaderAsks = 32

// leaderAsks counts a node's questions to the leader in flight. The zero
// value is ready; it is safe for concurrent use.
type leaderAsks struct {
	once sync.Once
	sem  chan struct{}
}

func (a *leaderAsks) acquire() bool {
	a.once.Do(func() { a.sem = make(chan struct{}, maxLeaderAsks) })
	select {
	case a.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (a *leaderAsks) release() { <-a.sem }

// askLeader asks the leader whether it accepts a token that this follower
// refuses, with a hello of its own over the client protocol marked Stale
// (judge on your own state, ask nobody). It returns true if the leader
// accepts it, false if it refuses it, and an error if it cannot tell (no
// leader known, not reachable, not the leader any more).
func (s *Server) askLeader(ctx context.Context, secret string) (bool, error) {
	addr := s.leaderClientAddr()
	if addr == "" || addr == s.Addr() {
		return false, raft.ErrNotLeader
	}
	if !s.asks.acquire() {
		return false, fmt.Errorf("%d questions to the leader in flight", maxLeaderAsks)
	}
	defer s.asks.release()
	ctx, cancel := context.WithTimeout(ctx, askLeaderTimeout)
	defer cancel()
	nc, err := s.dialPeer(ctx, addr)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	buf, err := wire.AppendRequestFrame(nil, &wire.Request{ID: 1, Op: wire.OpHello, Version: wire.ProtocolVersion, Token: secret, Stale: true})
	if err != nil {
		return false, err
	}
	if _, err := nc.Write(buf); err != nil {
		return false, err
	}
	body, err := wire.NewFrameReader(nc).Read(wire.DefaultMaxFrame)
	if err != nil {
		return false, err
	}
	var resp wire.Response
	if err := wire.DecodeResponse(body, &resp); err != nil {
		return false, err
	}
	switch resp.Code {
	case wire.CodeOK:
		return true, nil
	case wire.CodePermissionDenied:
		return false, nil
	}
	return false, fmt.Errorf("leader %s: %s: %s", addr, resp.Code, resp.Msg)
}
