package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft"
)

// leaderClientAddr returns the client address of the current leader, or "".
func (s *Server) leaderClientAddr() string {
	id, _ := s.node.Leader()
	if id == "" {
		return ""
	}
	if id == s.cfg.NodeID {
		return s.Addr()
	}
	m, err := s.node.FSM().MemberInfo(id)
	if err != nil {
		return ""
	}
	return m.ClientAddr
}

// clusterStatus is this node's own view, as a request without flags gets.
func (s *Server) clusterStatus(ctx context.Context) (*wire.Response, error) {
	return s.clusterStatusFor(ctx, &principal{}, &wire.Request{Op: wire.OpClusterStatus})
}

// clusterStatusFor answers OpClusterStatus from p: the members as this node sees
// them, with, when it leads, its view of each one's raft (reachability,
// last contact, log index and lag: raft.Member.Progress), and this node's
// own figures. FlagStatusLeader sends the caller to the leader;
// FlagStatusReports, on the leader, adds each member's own figures, which
// it asks every member for with the caller's token (askReports).
func (s *Server) clusterStatusFor(ctx context.Context, p *principal, req *wire.Request) (*wire.Response, error) {
	if req.Flags&wire.FlagStatusLeader != 0 && !s.node.IsLeader() && s.leaderClientAddr() != "" {
		return nil, raft.ErrNotLeader // errorResponse names the leader
	}
	members, err := s.node.Members(ctx)
	if err != nil {
		return nil, err
	}
	leader, _ := s.node.Leader()
	st := &wire.ClusterStatus{
		NodeID:           s.cfg.NodeID,
		LeaderID:         leader,
		AppliedIndex:     s.node.AppliedIndex(),
		Format:           uint32(s.node.FSM().ClusterFormat()),
		Version:          s.version(),
		HeartbeatTimeout: s.node.HeartbeatTimeout(),
		LeaderContact:    s.node.LeaderContact(),
	}
	stats := s.node.Stats()
	st.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	st.CommitIndex, _ = strconv.ParseUint(stats["commit_index"], 10, 64)
	lastIndex, _ := strconv.ParseUint(stats["last_log_index"], 10, 64)
	leading := s.node.IsLeader()
	var reports map[string]memberReport
	if leading && req.Flags&wire.FlagStatusReports != 0 {
		reports = s.askReports(ctx, members, p.secret)
	}
	for _, m := range members {
		w := wire.Member{
			ID: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr,
			Suffrage: m.Suffrage, Leader: m.IsLeader, MaxFormat: uint32(s.memberMaxFormat(m.ID)), Held: m.Held,
		}
		switch {
		case m.ID == s.cfg.NodeID:
			w.Reported, w.Term, w.AppliedIndex, w.CommitIndex, w.Version = true, st.Term, st.AppliedIndex, st.CommitIndex, st.Version
			if leading {
				w.Tracked, w.Reachable, w.Healthy, w.MatchIndex = true, true, true, lastIndex
			}
		case m.Progress != nil:
			pr := m.Progress
			w.Tracked, w.Reachable, w.Healthy = true, pr.Reachable, pr.CaughtUp
			w.LastContact, w.MatchIndex, w.Behind, w.Error, w.Term = pr.LastContact, pr.MatchIndex, pr.Behind, pr.LastError, pr.Term
			if lastIndex > pr.MatchIndex {
				w.Lag = lastIndex - pr.MatchIndex
			}
		}
		if r, ok := reports[m.ID]; ok {
			if r.err != nil {
				w.ReportError = r.err.Error()
			} else {
				w.Reported, w.Term, w.AppliedIndex, w.CommitIndex, w.Version = true, r.Term, r.AppliedIndex, r.CommitIndex, r.Version
			}
		}
		st.Members = append(st.Members, w)
	}
	return &wire.Response{Cluster: st}, nil
}

// version is what this node says its build is.
func (s *Server) version() string {
	if s.cfg.Version != "" {
		return s.cfg.Version
	}
	return buildVersion()
}

// buildVersion is the module version and VCS revision of the build.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
			v += " " + kv.Value[:12]
		}
		if kv.Key == "vcs.modified" && kv.Value == "true" {
			v += "+dirty"
		}
	}
	return v
}

// Member reports (FlagStatusReports). A member's applied index, commit
// index, term and version are its own: the leader's raft sees only its log.
// So the leader asks each member over the client protocol, authenticated
// with the operator token of the status request (as a follower forwards a
// hello to the leader, hello.go), for its own cluster status, without
// flags: a node answers that from its own state, never asking anyone, so
// questions do not chain. Nothing new is answered before authentication.

const (
	// reportTimeout bounds one member's report, dial included: an
	// unreachable member delays the status by at most this.
	reportTimeout = time.Second
	// maxReportAsks bounds the questions in flight at once.
	maxReportAsks = 8
	// maxVersionLen bounds a version string taken from a member.
	maxVersionLen = 128
)

// memberReport is what a member said of itself, or why it did not.
type memberReport struct {
	Term, AppliedIndex, CommitIndex uint64
	Version                         string
	err                             error
}

// askReports asks every member but this node, with the operator token
// secret, for its own figures.
func (s *Server) askReports(ctx context.Context, members []raft.Member, secret string) map[string]memberReport {
	out := make(map[string]memberReport, len(members))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxReportAsks)
	for _, m := range members {
		if m.ID == s.cfg.NodeID {
			continue
		}
		// Under mu: the asks started for earlier members write out too.
		var why error
		switch {
		case m.ClientAddr == "":
			why = errors.New("no client address published yet")
		case secret == "":
			why = errors.New("no operator token to ask with")
		}
		if why != nil {
			mu.Lock()
			out[m.ID] = memberReport{err: why}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r := s.askReport(ctx, m, secret)
			mu.Lock()
			out[m.ID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// askReport asks member m for its own figures.
func (s *Server) askReport(ctx context.Context, m raft.Member, secret string) memberReport {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	resp, err := s.callPeerWith(ctx, m.ClientAddr, secret, &wire.Request{Op: wire.OpClusterStatus})
	switch {
	case err != nil:
		return memberReport{err: fmt.Errorf("ask %s: %w", m.ClientAddr, err)}
	case resp.Code != wire.CodeOK:
		return memberReport{err: fmt.Errorf("ask %s: %s: %s", m.ClientAddr, resp.Code, resp.Msg)}
	case resp.Cluster == nil:
		return memberReport{err: fmt.Errorf("ask %s: an answer without a status", m.ClientAddr)}
	case resp.Cluster.NodeID != m.ID:
		return memberReport{err: fmt.Errorf("ask %s: node %q answered", m.ClientAddr, resp.Cluster.NodeID)}
	}
	cl := resp.Cluster
	v := cl.Version
	if len(v) > maxVersionLen {
		v = v[:maxVersionLen]
	}
	return memberReport{Term: cl.Term, AppliedIndex: cl.AppliedIndex, CommitIndex: cl.CommitIndex, Version: v}
}

// memberMaxFormat is the log format node id said its build knows when
// this node, as leader, last asked (format.go); 0 when not known.
func (s *Server) memberMaxFormat(id string) command.Format {
	if id == s.cfg.NodeID {
		return s.ownMaxFormat()
	}
	return s.formats.get(id)
}

// join adds a node to the cluster as a non-voter; the leader promotes it
// to voter once it has caught up (raft.Node.AddNonvoter), so a joiner that
// installs a large snapshot never holds up the quorum. Joins are admitted
// while earlier joiners still catch up: non-voters do not count in the
// quorum, and promotions happen one configuration change at a time. Only
// the leader can add; a follower answers not-leader with the leader's
// address and the joining node follows it.
func (s *Server) join(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	if req.Name == "" || req.Addr == "" {
		return nil, fmt.Errorf("%w: join needs a node id and a raft address", ErrBadRequest)
	}
	// With peer TLS, only an address served by a holder of a cluster
	// certificate may join (peers.go).
	if err := s.node.CheckPeer(ctx, req.Addr); err != nil {
		s.logger.Warn("join refused: the joining node's raft address presents no certificate of the cluster CA",
			"joiner", req.Name, "raft", req.Addr, "error", err)
		return nil, fmt.Errorf("%w: join of %s: %w", ErrPermissionDenied, req.Name, err)
	}
	if err := s.node.AddNonvoter(ctx, req.Name, req.Addr); err != nil {
		return nil, err
	}
	if _, err := s.node.Propose(ctx, &command.SetMember{NodeID: req.Name, ClientAddr: req.Addr2, HTTPAddr: req.Addr3}); err != nil {
		return nil, err
	}
	return &wire.Response{}, nil
}

// addNode adds a node as a non-voter (OpClusterAdd): held, with
// FlagNonvoter, until OpClusterPromote; otherwise promoted by the leader
// once caught up, like a node that joins. The node need not run yet: it is
// started afterwards with --join, and its join finds it added. Unlike a
// join, the raft address is not checked for a cluster certificate here
// (the node may not be up); with peer TLS the raft transport refuses any
// peer without one all the same, and the node's own join checks it.
func (s *Server) addNode(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	if req.Name == "" || req.Addr == "" {
		return nil, fmt.Errorf("%w: cluster add needs a node id and a raft address", ErrBadRequest)
	}
	if _, _, err := net.SplitHostPort(req.Addr); err != nil {
		return nil, fmt.Errorf("%w: raft address %q: %v", ErrBadRequest, req.Addr, err)
	}
	if err := s.node.AddNonvoterHold(ctx, req.Name, req.Addr, req.Flags&wire.FlagNonvoter != 0); err != nil {
		return nil, err
	}
	return &wire.Response{}, nil
}

// promoteNode makes a non-voter a voter (OpClusterPromote), if it has
// caught up (raft.Node.Promote).
func (s *Server) promoteNode(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	if req.Name == "" {
		return nil, fmt.Errorf("%w: node id required", ErrBadRequest)
	}
	if err := s.node.Promote(ctx, req.Name); err != nil {
		return nil, err
	}
	return &wire.Response{}, nil
}

// transferLeader hands leadership to the voter named, or to the most
// caught-up one (OpClusterTransferLeader), and answers who leads now.
func (s *Server) transferLeader(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	to, err := s.node.TransferLeadershipTo(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	return &wire.Response{Cluster: &wire.ClusterStatus{NodeID: s.cfg.NodeID, LeaderID: to}}, nil
}

// removeNode removes a node from the cluster. Only the leader can; a
// follower answers not-leader. An ID that is neither in the configuration
// nor left in the member metadata (a leader that removed itself leaves its
// metadata for a later removal) is fsm.ErrMemberNotFound, so that a typo
// does not pass for a removal.
func (s *Server) removeNode(ctx context.Context, req *wire.Request) (*wire.Response, error) {
	if req.Name == "" {
		return nil, fmt.Errorf("%w: node id required", ErrBadRequest)
	}
	if s.node.IsLeader() {
		// A follower's configuration may be stale: it answers not-leader
		// below, and the leader decides.
		known, err := s.isMember(ctx, req.Name)
		if err != nil {
			return nil, err
		}
		if !known {
			return nil, fmt.Errorf("%w: %s", fsm.ErrMemberNotFound, req.Name)
		}
	}
	if err := s.node.RemoveServer(ctx, req.Name); err != nil {
		return nil, err
	}
	return &wire.Response{}, nil
}

// isMember reports whether node id is in the latest raft configuration or
// has member metadata.
func (s *Server) isMember(ctx context.Context, id string) (bool, error) {
	members, err := s.node.Members(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if m.ID == id {
			return true, nil
		}
	}
	_, err = s.node.FSM().MemberInfo(id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fsm.ErrMemberNotFound):
		return false, nil
	}
	return false, err
}

// joinCluster asks the members in cfg.Join, following redirects to the
// leader, to add this node, retrying until ctx ends. A join whose answer
// was lost may have added the node all the same (the leader died after
// adding it, before publishing its metadata): the node's own raft then
// hears from the cluster, and the retries go first to the leader it knows
// of, since the members of cfg.Join may be down for good. A node that
// leads has joined (it publishes its own metadata as leader).
func (s *Server) joinCluster(ctx context.Context) error {
	if s.cfg.JoinToken == "" {
		return errors.New("server: joining a cluster needs an operator token (--token or --token-file)")
	}
	req := &wire.Request{Op: wire.OpClusterJoin, Name: s.cfg.NodeID, Addr: s.RaftAddr(), Addr2: s.Addr(), Addr3: s.HTTPAddr()}
	targets := append([]string(nil), s.cfg.Join...)
	backoff := 50 * time.Millisecond
	var lastErr error
	for attempt := 0; ; attempt++ {
		addr := targets[attempt%len(targets)]
		resp, err := s.callPeer(ctx, addr, req)
		switch {
		case isTLSMismatch(err):
			// Retrying cannot help: the member's certificate is not
			// trusted, or the member does not speak TLS.
			return fmt.Errorf("server: join %s over TLS: %w", addr, err)
		case err != nil:
			lastErr = err
		case resp.Code == wire.CodeOK:
			s.logger.Info("joined cluster", "via", addr)
			return nil
		case resp.Code == wire.CodeNotLeader && resp.Leader != "":
			targets = append([]string{resp.Leader}, s.cfg.Join...)
			attempt = -1
			lastErr = fmt.Errorf("redirected to %s", resp.Leader)
			continue
		case resp.Code == wire.CodePermissionDenied:
			return fmt.Errorf("server: join %s: permission denied (is the token an operator token? with peer TLS, is this node's certificate from the cluster CA and for its raft address? the member's log says why)", addr)
		default:
			lastErr = fmt.Errorf("%s: %s", resp.Code, resp.Msg)
		}
		if hint := s.leaderClientAddr(); hint == s.Addr() {
			s.logger.Info("joined cluster: this node was added and leads", "last_join_error", lastErr)
			return nil
		} else if hint != "" && hint != targets[0] {
			// This node is in the configuration: the leader's raft
			// reached it. Ask that leader, then cfg.Join again.
			targets = append([]string{hint}, s.cfg.Join...)
			attempt = -1
		}
		s.logger.Info("join: retrying", "via", addr, "in", backoff, "error", lastErr)
		select {
		case <-ctx.Done():
			return fmt.Errorf("server: join cluster via %v: %w (last error: %v)", s.cfg.Join, ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

// isTLSMismatch reports whether err is a TLS failure that no retry can
// mend: the member's certificate does not verify, or the member answered
// the handshake with something other than TLS. (A member that refuses this
// node's certificate answers with an alert that the crypto/tls package
// exports no type for; the join retries and logs it.)
func isTLSMismatch(err error) bool {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	return errors.As(err, &verify) || errors.As(err, &record)
}

// callPeer sends one request to another node over the client protocol,
// authenticated with the join token.
func (s *Server) callPeer(ctx context.Context, addr string, req *wire.Request) (*wire.Response, error) {
	return s.callPeerWith(ctx, addr, s.cfg.JoinToken, req)
}

// callPeerWith sends one request to another node over the client
// protocol, authenticated with token. A refused hello is its answer.
func (s *Server) callPeerWith(ctx context.Context, addr, token string, req *wire.Request) (*wire.Response, error) {
	nc, err := s.dialPeer(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	} else {
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	}
	fr := wire.NewFrameReader(nc)
	call := func(r *wire.Request) (*wire.Response, error) {
		buf, err := wire.AppendRequestFrame(nil, r)
		if err != nil {
			return nil, err
		}
		if _, err := nc.Write(buf); err != nil {
			return nil, err
		}
		body, err := fr.Read(wire.DefaultMaxFrame)
		if err != nil {
			return nil, err
		}
		var resp wire.Response
		return &resp, wire.DecodeResponse(body, &resp)
	}
	hello, err := call(&wire.Request{ID: 1, Op: wire.OpHello, Version: wire.ProtocolVersion, Token: token})
	if err != nil {
		return nil, err
	}
	if hello.Code != wire.CodeOK {
		return hello, nil
	}
	r := *req
	r.ID = 2
	return call(&r)
}

// dialPeer opens a connection to another node's client port: over TLS with
// the cluster CA when peer TLS is configured (the server name is taken
// from addr), plain otherwise. ctx bounds the dial and the handshake; a
// context without a deadline gets 5 seconds.
func (s *Server) dialPeer(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if s.peerTLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: s.peerTLS}
		return td.DialContext(ctx, "tcp", addr)
	}
	return d.DialContext(ctx, "tcp", addr)
}
