package raft

import (
	"context"
	"fmt"

	"github.com/tenantkv/tenantkv/raft/command"

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
	return n.addServer(ctx, id, raftAddr, hraft.Voter)
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
	return n.addServer(ctx, id, raftAddr, hraft.Nonvoter)
}

// addServer adds id at raftAddr with suffrage, unless the configuration
// already has it at that address: as a voter, for a voter; with any
// suffrage, for a non-voter (a voter is never demoted).
func (n *Node) addServer(ctx context.Context, id, raftAddr string, suffrage hraft.ServerSuffrage) error {
	what := "voter"
	if suffrage == hraft.Nonvoter {
		what = "non-voter"
	}
	if id == "" || raftAddr == "" {
		return fmt.Errorf("%w: add %s needs an id and an address", command.ErrBadCommand, what)
	}
	if err := n.checkOpen(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.notLeader("")
	}
	n.membership.Lock()
	defer n.membership.Unlock()
	conf, err := n.configuration(ctx)
	if err != nil {
		return err
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
	if err := n.checkOpen(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.notLeader("")
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
	out := make([]Member, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		m := Member{
			ID: string(s.ID), RaftAddr: string(s.Address),
			Suffrage: s.Suffrage.String(), IsLeader: string(s.ID) == leaderID,
		}
		if info, ok := infos[m.ID]; ok {
			m.ClientAddr, m.HTTPAddr = info.ClientAddr, info.HTTPAddr
		}
		out = append(out, m)
	}
	return out, nil
}

// TransferLeadership asks the leader to hand leadership to the most
// up-to-date follower and waits for the transfer. Only the leader can.
// Proposals made during the transfer fail with ErrNotLeader.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if err := n.checkOpen(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return n.notLeader("")
	}
	if err := n.waitPlain(ctx, n.raft.LeadershipTransfer()); err != nil {
		return fmt.Errorf("raft: transfer leadership: %w", err)
	}
	return nil
}
