package server

import (
	"context"
	"sync"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/raft/command"
)

// Raising the cluster format (raft/fsm/format.go, docs/OPERATIONS.md,
// Upgrades). The leader asks every server of the raft configuration,
// voters and non-voters, which log format its build knows, over the client
// protocol and before any hello (OpFormat): asking through the log would
// take an entry type the older members do not know. Once every member
// knows a format above the cluster's, the leader proposes SetFormat. A
// member that cannot be asked (no client address published yet, down,
// unreachable) holds the format where it is, as does one of a release
// before the gate, which answers OpFormat with an error (format 1).

const (
	// formatCheckInterval is how often a leader below this build's
	// MaxFormat asks the members.
	formatCheckInterval = 3 * time.Second
	// formatProbeTimeout bounds one question, dial included.
	formatProbeTimeout = 2 * time.Second
	// maxFormatProbes bounds the questions in flight at once.
	maxFormatProbes = 8
)

// formatAnswer is the answer to OpFormat. It says nothing but the build's
// constant, the same on every node of a build, as answers before
// authentication must (hello.go).
func (s *Server) formatAnswer(id uint64) *wire.Response {
	f := s.ownMaxFormat()
	if f == command.Format1 {
		// What a release before OpFormat answers (a test hook only).
		return &wire.Response{ID: id, Code: wire.CodeBadRequest, Msg: "first request must be hello"}
	}
	return &wire.Response{ID: id, MaxFormat: uint32(f)}
}

// ownMaxFormat is the format this node says its build knows.
func (s *Server) ownMaxFormat() command.Format {
	if s.cfg.testFormat != nil {
		if f := s.cfg.testFormat(); f != 0 {
			return f
		}
	}
	return command.MaxFormat
}

// memberFormats remembers what each member last answered, for cluster
// status.
type memberFormats struct {
	mu   sync.Mutex
	byID map[string]command.Format
}

func (m *memberFormats) set(got map[string]command.Format) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byID = got
}

func (m *memberFormats) get(id string) command.Format {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id]
}

// formatLoop raises the cluster format while this node leads.
func (s *Server) formatLoop() {
	defer s.wg.Done()
	every := s.cfg.formatInterval
	if every == 0 {
		every = formatCheckInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var waitingOn string // the member last logged as holding the format back
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.node.Done():
			return
		case <-t.C:
		}
		if !s.node.IsLeader() || s.node.FSM().ClusterFormat() >= s.ownMaxFormat() {
			continue
		}
		s.raiseFormat(s.ctx, &waitingOn)
	}
}

// raiseFormat asks the members and proposes the highest format all of
// them know, if it is above the cluster's.
func (s *Server) raiseFormat(ctx context.Context, waitingOn *string) {
	ctx, cancel := context.WithTimeout(ctx, 2*formatProbeTimeout)
	defer cancel()
	members, err := s.node.Members(ctx)
	if err != nil {
		s.logger.Debug("cluster format: list members", "error", err)
		return
	}
	got := s.probeFormats(ctx, members)
	s.formats.set(got)
	cur := s.node.FSM().ClusterFormat()
	target, holder := s.ownMaxFormat(), ""
	for _, m := range members {
		if f := got[m.ID]; f < target {
			target, holder = f, m.ID
		}
	}
	if target <= cur {
		if holder != *waitingOn {
			s.logger.Info("cluster format: not raised yet: a member runs a build that does not know a higher format, or cannot be asked",
				"cluster_format", cur, "member", holder, "member_format", got[holder])
			*waitingOn = holder
		}
		return
	}
	if _, err := s.node.Propose(ctx, &command.SetFormat{Version: uint32(target)}); err != nil {
		s.logger.Warn("cluster format: propose", "from", cur, "to", target, "error", err)
		return
	}
	*waitingOn = ""
	s.logger.Info("cluster format raised: every member runs a build that knows it; a node of an older build can no longer rejoin",
		"from", cur, "to", target, "members", len(members))
}

// probeFormats asks every member which format its build knows: 0 for one
// that cannot be asked.
func (s *Server) probeFormats(ctx context.Context, members []raft.Member) map[string]command.Format {
	out := make(map[string]command.Format, len(members))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFormatProbes)
	for _, m := range members {
		if m.ID == s.cfg.NodeID || m.ClientAddr == "" {
			f := command.Format(0) // no address: not ready
			if m.ID == s.cfg.NodeID {
				f = s.ownMaxFormat()
			}
			mu.Lock() // the probes started earlier write out too
			out[m.ID] = f
			mu.Unlock()
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f, err := s.probeFormat(ctx, m.ClientAddr)
			if err != nil {
				s.logger.Debug("cluster format: ask member", "member", m.ID, "addr", m.ClientAddr, "error", err)
			}
			mu.Lock()
			out[m.ID] = f
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// probeFormat asks the node at addr which format its build knows. A node
// that answers with an error predates OpFormat: format 1.
func (s *Server) probeFormat(ctx context.Context, addr string) (command.Format, error) {
	ctx, cancel := context.WithTimeout(ctx, formatProbeTimeout)
	defer cancel()
	nc, err := s.dialPeer(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	buf, err := wire.AppendRequestFrame(nil, &wire.Request{ID: 1, Op: wire.OpFormat})
	if err != nil {
		return 0, err
	}
	if _, err := nc.Write(buf); err != nil {
		return 0, err
	}
	body, err := wire.NewFrameReader(nc).Read(wire.DefaultMaxFrame)
	if err != nil {
		return 0, err
	}
	var resp wire.Response
	if err := wire.DecodeResponse(body, &resp); err != nil {
		return 0, err
	}
	if resp.Code != wire.CodeOK || resp.MaxFormat == 0 {
		return command.Format1, nil
	}
	return command.Format(resp.MaxFormat), nil
}
