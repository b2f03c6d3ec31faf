package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	hraft "github.com/hashicorp/raft"
)

// Member describes one server of the raft configuration.
type Member struct {
	ID       string
	RaftAddr string
	// Suffrage is "Voter", or "Nonvoter" for a node that joined and is
	// catching up (the leader promotes it once it has).
	Suffrage string
	IsLeader bool
	// ClientAddr and HTTPAddr come from the replicated member metadata
	// (SetMember); empty if the node never published any.
	ClientAddr string
	HTTPAddr   string
	// Held reports whether the member is a non-voter held by an operator
	// (AddNonvoterHold): the leader does not promote it on its own.
	Held bool
	// Progress is the leader's view of the member, from the answers to
	// its AppendEntries requests. It is set only when the node listing
	// the members leads, and never for the leader itself.
	Progress *PeerProgress
}

// AddVoter adds node id, reachable for raft at raftAddr, as a voter at
// once. Only the leader can; others return a *NotLeaderError. Adding a node
// that is already a voter at the same address succeeds without a
// configuration change; a known ID with a new address is updated. The new
// node catches up from the log or a snapshot on its own, and counts in the
// quorum while it does: a node that joins a cluster holding data must be
// added with AddNonvoter instead, which the leader promotes once it caught
// up.
func (n *Node) AddVoter(ctx context.Context, id, raftAddr string) error {
	return n.addServer(ctx, id, raftAddr, hraft.Voter, nil)
}

// AddNonvoter adds node id, reachable for raft at raftAddr, as a
// non-voter: it receives the log (or the leader's snapshot) but does not
// count in elections or in the quorum, so a node that needs long to catch
// up takes nothing from the cluster's availability. The leader promotes it
// to voter once its log has kept pace with the leader's for a moment
// (promote.go); whichever node leads then does it, so a leader
// change does not lose the promotion. Only the leader can add; others
// return a *NotLeaderError. A node already in the configuration keeps its
// suffrage (a voter stays a voter) and takes the new address, if any.
// Joining "through any member" is the server's job: it forwards the request
// to the leader.
func (n *Node) AddNonvoter(ctx context.Context, id, raftAddr string) error {
	return n.addServer(ctx, id, raftAddr, hraft.Nonvoter, nil)
}

// AddNonvoterHold is AddNonvoter for an operator's `cluster add`. With
// hold, the node is held: the leader, this one or any later one, does not
// promote it on its own, and it stays a non-voter (a standby, say) until
// Promote; the mark is replicated (command.HoldNonvoter) and set before
// the node is added, so that no promotion round can see it unheld. A held
// node waits only to catch up, not to be promoted (WaitPromoted). Holding
// a node that is a voter already is ErrMemberRefused: a voter is never
// demoted; holding needs the cluster format 3 (ErrMemberRefused before).
// Without hold, a hold the node had is released, and it is promoted once
// caught up like a node that joins.
func (n *Node) AddNonvoterHold(ctx context.Context, id, raftAddr string, hold bool) error {
	return n.addServer(ctx, id, raftAddr, hraft.Nonvoter, &hold)
}

// addServer adds id at raftAddr with suffrage, unless the configuration
// already has it at that address: as a voter, for a voter; with any
// suffrage, for a non-voter (a voter is never demoted). A non-nil hold
// sets (true) or releases (false) the node's hold mark first.
func (n *Node) addServer(ctx context.Context, id, raftAddr string, suffrage hraft.ServerSuffrage, hold *bool) error {
	what := "voter"
	if suffrage == hraft.Nonvoter {
		what = "non-voter"
	}
	if id == "" || raftAddr == "" {
		return fmt.Errorf("%w: add %s needs an id and an address", command.ErrBadCommand, what)
	}
	if err := n.checkLeading(); err != nil {
		return err
	}
	n.membership.Lock()
	defer n.membership.Unlock()
	conf, err := n.configuration(ctx)
	if err != nil {
		return err
	}
	if hold != nil {
		// Before the change: a held node is never seen unheld by a
		// promotion round (they take the membership lock too, and read
		// the mark from this node's state, where Propose applied it).
		if err := n.setHold(ctx, conf, id, *hold); err != nil {
			return err
		}
	}
	for _, s := range conf.Servers {
		if string(s.ID) == id && string(s.Address) == raftAddr && (suffrage == hraft.Nonvoter || s.Suffrage == hraft.Voter) {
			return nil
		}
	}
	f := n.raft.AddVoter
	if suffrage == hraft.Nonvoter {
		f = n.raft.AddNonvoter
	}
	if err := n.waitFuture(ctx, f(hraft.ServerID(id), hraft.ServerAddress(raftAddr), 0, timeoutFrom(ctx))); err != nil {
		return fmt.Errorf("raft: add %s %s at %s: %w", what, id, raftAddr, err)
	}
	return nil
}

// RemoveServer removes node id from the configuration and then deletes its
// member metadata. Only the leader can. Removing an unknown ID succeeds. A
// leader may remove itself: it steps down once the change commits, and its
// metadata is then left for a later removal (it is harmless: Members lists
// only configured servers).
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: remove server needs an id", command.ErrBadCommand)
	}
	if err := n.checkLeading(); err != nil {
		return err
	}
	n.membership.Lock()
	conf, err := n.configuration(ctx)
	if err != nil {
		n.membership.Unlock()
		return err
	}
	present := false
	for _, s := range conf.Servers {
		present = present || string(s.ID) == id
	}
	if present {
		f := n.raft.RemoveServer(hraft.ServerID(id), 0, timeoutFrom(ctx))
		if err := n.waitFuture(ctx, f); err != nil {
			n.membership.Unlock()
			return fmt.Errorf("raft: remove server %s: %w", id, err)
		}
	}
	n.membership.Unlock()
	if id == n.cfg.ID {
		return nil
	}
	if _, err := n.Propose(ctx, &command.RemoveMember{NodeID: id}); err != nil {
		return fmt.Errorf("raft: remove metadata of %s: %w", id, err)
	}
	// A node added again later under the same ID must not inherit a hold.
	if held, err := n.fsm.NonvoterHeld(id); err != nil || held {
		if err == nil {
			_, err = n.Propose(ctx, &command.HoldNonvoter{NodeID: id})
		}
		if err != nil {
			return fmt.Errorf("raft: release hold of removed %s: %w", id, err)
		}
	}
	return nil
}

// configuration returns the latest raft configuration (possibly not yet
// committed).
func (n *Node) configuration(ctx context.Context) (hraft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := n.waitPlain(ctx, f); err != nil {
		return hraft.Configuration{}, fmt.Errorf("raft: get configuration: %w", err)
	}
	return f.Configuration(), nil
}

// Members lists the servers of the latest configuration known to this node,
// joined with their replicated metadata. It works on any node; on a
// follower the answer may be stale.
func (n *Node) Members(ctx context.Context) ([]Member, error) {
	if err := n.checkOpen(); err != nil {
		return nil, err
	}
	conf, err := n.configuration(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := n.fsm.MemberInfos()
	if err != nil {
		return nil, err
	}
	leaderID, _ := n.Leader()
	leading := n.IsLeader()
	out := make([]Member, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		m := Member{
			ID: string(s.ID), RaftAddr: string(s.Address),
			Suffrage: s.Suffrage.String(), IsLeader: string(s.ID) == leaderID,
		}
		if info, ok := infos[m.ID]; ok {
			m.ClientAddr, m.HTTPAddr = info.ClientAddr, info.HTTPAddr
		}
		if s.Suffrage != hraft.Voter {
			if m.Held, err = n.fsm.NonvoterHeld(m.ID); err != nil {
				return nil, err
			}
		}
		if leading && m.ID != n.cfg.ID {
			p := n.progress.status(s.ID)
			m.Progress = &p
		}
		out = append(out, m)
	}
	return out, nil
}

// HeartbeatTimeout is the node's raft heartbeat timeout: a follower that
// has not answered the leader for that long shows unreachable
// (PeerProgress).
func (n *Node) HeartbeatTimeout() time.Duration { return n.heartbeat }

// LeaderContact returns how long ago this node last heard from its leader:
// 0 on the leader, -1 on a node that has not heard from one since it
// started.
func (n *Node) LeaderContact() time.Duration {
	if n.IsLeader() {
		return 0
	}
	last := n.raft.LastContact()
	if last.IsZero() {
		return -1
	}
	return time.Since(last)
}

// setHold proposes id's hold mark, if it changes: hold true refuses a node
// that is a voter in conf, and a cluster whose format does not allow the
// mark yet. The caller holds n.membership.
func (n *Node) setHold(ctx context.Context, conf hraft.Configuration, id string, hold bool) error {
	held, err := n.fsm.NonvoterHeld(id)
	if err != nil || held == hold {
		return err
	}
	if hold {
		for _, s := range conf.Servers {
			if string(s.ID) == id && s.Suffrage == hraft.Voter {
				return fmt.Errorf("%w: %s is a voter; a voter is never made a non-voter again (remove it first)", ErrMemberRefused, id)
			}
		}
	}
	_, err = n.Propose(ctx, &command.HoldNonvoter{NodeID: id, Hold: hold})
	if errors.Is(err, fsm.ErrFormatNotEnabled) {
		return fmt.Errorf("%w: holding a non-voter needs cluster format %d, and the cluster is at format %d; the leader raises it once every member runs a release that knows it (cluster status shows the format)",
			ErrMemberRefused, command.Format3, n.fsm.ClusterFormat())
	}
	if err != nil {
		return fmt.Errorf("raft: hold mark of %s: %w", id, err)
	}
	return nil
}

// Promote makes non-voter id a voter, held or not, if the leader sees it
// caught up (PeerProgress.CaughtUp: reachable, its log at most one
// heartbeat timeout behind; what cluster status calls healthy): otherwise
// it is ErrMemberRefused, with how far behind the node is, and nothing
// changes. The leader's own promotions ask more (a run of caught-up
// answers, half the delay: DESIGN.md, "Joins"), as nobody watches them;
// an operator asking has looked. Promoting a voter succeeds without a change; an
// ID that is not in the configuration is fsm.ErrMemberNotFound. Only the
// leader can; others return a *NotLeaderError. It releases the node's hold
// once the node is a voter.
func (n *Node) Promote(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: promote needs a node id", command.ErrBadCommand)
	}
	if err := n.checkLeading(); err != nil {
		return err
	}
	n.membership.Lock()
	defer n.membership.Unlock()
	conf, err := n.configuration(ctx)
	if err != nil {
		return err
	}
	var srv *hraft.Server
	for i := range conf.Servers {
		if string(conf.Servers[i].ID) == id {
			srv = &conf.Servers[i]
		}
	}
	switch {
	case srv == nil:
		return fmt.Errorf("%w: %q is not in the configuration", fsm.ErrMemberNotFound, id)
	case srv.Suffrage != hraft.Voter:
		if p := n.progress.status(srv.ID); !p.CaughtUp {
			return fmt.Errorf("%w: %s has not caught up with the leader (%s); promote it once cluster status shows it healthy",
				ErrMemberRefused, id, describeProgress(p))
		}
		f := n.raft.AddVoter(srv.ID, srv.Address, 0, timeoutFrom(ctx))
		if err := n.waitFuture(ctx, f); err != nil {
			return fmt.Errorf("raft: promote %s: %w", id, err)
		}
		n.logger.Info("raft: promoted non-voter to voter on request", "id", id, "address", srv.Address)
	}
	return n.setHold(ctx, conf, id, false)
}

// moreCaughtUp reports whether follower a is further than b: a longer
// log, or as long and less behind in time.
func moreCaughtUp(a, b PeerProgress) bool {
	if a.MatchIndex != b.MatchIndex {
		return a.MatchIndex > b.MatchIndex
	}
	return a.Behind >= 0 && (b.Behind < 0 || a.Behind < b.Behind)
}

// describeProgress says in words how far behind a follower is, for errors.
func describeProgress(p PeerProgress) string {
	switch {
	case p.LastContact < 0:
		msg := "it has not answered the leader"
		if p.LastError != "" {
			msg += ": " + p.LastError
		}
		return msg
	case !p.Reachable:
		return fmt.Sprintf("its last answer came %v ago", p.LastContact.Round(time.Millisecond))
	case p.Behind < 0:
		return fmt.Sprintf("its log is at index %d, behind every recent request", p.MatchIndex)
	}
	return fmt.Sprintf("its log is at index %d, %v behind", p.MatchIndex, p.Behind.Round(time.Millisecond))
}

// TransferLeadershipTo hands leadership to voter id and waits for the
// transfer; with an empty id, to the most caught-up voter the leader can
// reach (the highest log index in its last answer, then the least behind),
// rather than raft's own choice, which may fall on a voter that stopped
// answering. It returns the ID of the node leadership went to. A target
// that is not a voter, is this node, or is not reachable from the leader
// is ErrMemberRefused; an unknown ID fsm.ErrMemberNotFound. Only the
// leader can; others return a *NotLeaderError. Proposals made during the
// transfer fail with ErrNotLeader.
func (n *Node) TransferLeadershipTo(ctx context.Context, id string) (string, error) {
	if err := n.checkLeading(); err != nil {
		return "", err
	}
	conf, err := n.configuration(ctx)
	if err != nil {
		return "", err
	}
	var target *hraft.Server
	var best PeerProgress
	for i := range conf.Servers {
		s := &conf.Servers[i]
		if s.ID == hraft.ServerID(n.cfg.ID) || s.Suffrage != hraft.Voter {
			if string(s.ID) == id {
				if s.ID == hraft.ServerID(n.cfg.ID) {
					return "", fmt.Errorf("%w: %s leads already", ErrMemberRefused, id)
				}
				return "", fmt.Errorf("%w: %s is a non-voter; only a voter can lead (promote it first)", ErrMemberRefused, id)
			}
			continue
		}
		p := n.progress.status(s.ID)
		if id != "" {
			if string(s.ID) == id {
				if !p.Reachable {
					return "", fmt.Errorf("%w: %s cannot take over: the leader cannot reach it (%s)", ErrMemberRefused, id, describeProgress(p))
				}
				target = s
			}
			continue
		}
		if p.Reachable && (target == nil || moreCaughtUp(p, best)) {
			target, best = s, p
		}
	}
	if target == nil {
		if id != "" {
			return "", fmt.Errorf("%w: %q is not in the configuration", fsm.ErrMemberNotFound, id)
		}
		return "", fmt.Errorf("%w: no other voter is reachable from the leader", ErrMemberRefused)
	}
	if err := n.waitPlain(ctx, n.raft.LeadershipTransferToServer(target.ID, target.Address)); err != nil {
		return "", fmt.Errorf("raft: transfer leadership to %s: %w", target.ID, err)
	}
	n.logger.Info("raft: leadership transferred on request", "to", target.ID)
	return string(target.ID), nil
}

// TransferLeadership asks the leader to hand leadership to the most
// up-to-date follower and waits for the transfer. Only the leader can.
// Proposals made during the transfer fail with ErrNotLeader.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if err := n.checkLeading(); err != nil {
		return err
	}
	if err := n.waitPlain(ctx, n.raft.LeadershipTransfer()); err != nil {
		return fmt.Errorf("raft: transfer leadership: %w", err)
	}
	return nil
}

// checkLeading is what every change of the configuration asks first: an
// open node (ErrShutdown otherwise) that leads (a *NotLeaderError).
func (n *Node) checkLeading() error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.notLeader("")
	}
	return nil
}
