package raft

import (
	"strings"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/tenantkv/tenantkv/internal/latency"
	"github.com/tenantkv/tenantkv/store/raftlog"
)

// Metrics are a node's raft figures at one moment, for /metrics. They are
// read from hashicorp/raft's atomic accessors and this package's own
// meters, not from hashicorp/raft's go-metrics emissions: those go to a
// process-wide sink, which would mix the nodes of one process (tests run
// several) and is package-level state this module keeps out of.
type Metrics struct {
	// State is "leader", "follower", "candidate" or "shutdown".
	State string
	// Term is the current term; CommitIndex the highest index known
	// committed; LastLogIndex the last index in the log (or of the last
	// snapshot); AppliedIndex the last index the state machine applied
	// to the store.
	Term, CommitIndex, LastLogIndex, AppliedIndex uint64
	// LeaderKnown is whether the node knows a leader (itself included).
	LeaderKnown bool
	// LastContact is, on a follower or candidate, how long ago a leader
	// (or a candidate it voted for) was last heard from; 0 on the leader,
	// as in hashicorp/raft's Stats. -1 when never.
	LastContact time.Duration
	// LeaderChanges counts the times this node saw a new leader (itself
	// included) since it started.
	LeaderChanges uint64
	// Voters is the number of voters in the latest configuration, this
	// node included if it is one.
	Voters int
	// VotersReachable is, on the leader, the number of voters that
	// answered it within PeerReachableWithin (itself counted); -1 on
	// other nodes, which do not know.
	VotersReachable int
	// Peers are, on the leader, every other member of the configuration
	// with what the leader saw of it; nil on other nodes.
	Peers []PeerMetrics
	// LogAppend is the latency of appends to the raft log (one synced
	// write each), LogEntriesAppended the entries they wrote.
	LogAppend          latency.Snapshot
	LogEntriesAppended uint64
	// Snapshot is the duration of snapshots persisted (the state machine
	// streamed into raft's snapshot store), Restore that of snapshots
	// restored into the store (installed from the leader, or at start).
	Snapshot, Restore latency.Snapshot
	// Log holds the figures of the raft log's Pebble (its WAL fsyncs are
	// the appends' fsyncs); nil when the log is in raft.db (RaftLogBolt)
	// or closed.
	Log *raftlog.Metrics
}

// PeerMetrics is what the leader saw of another member.
type PeerMetrics struct {
	ID    string
	Voter bool
	// LastContact is how long ago the member last answered one of the
	// leader's AppendEntries (heartbeats included); -1 when it has not
	// answered this node yet.
	LastContact time.Duration
	// Reachable is whether it answered within PeerReachableWithin.
	Reachable bool
}

// PeerReachableWithin is how recent a member's last answer to the leader
// must be for it to count as reachable in Metrics: two heartbeat timeouts.
// A leader sends heartbeats several times per heartbeat timeout, so a
// member that missed that many is down or cut off.
func (n *Node) PeerReachableWithin() time.Duration { return 2 * n.heartbeat }

// nodeMeters are the meters the node keeps for Metrics. The zero value is
// ready; all fields are safe for concurrent use.
type nodeMeters struct {
	appends       latency.Histogram
	entries       atomic.Uint64
	snapshots     latency.Histogram
	restores      latency.Histogram
	leaderChanges atomic.Uint64
	// log is the Pebble raft log, nil for the bolt one.
	log *pebbleLogStore
}

// wrapLog returns durable with its appends timed (logtimer.go), and notes
// which log stores holds, for its engine's figures.
func (m *nodeMeters) wrapLog(durable hraft.LogStore, stores raftStores) hraft.LogStore {
	if s, ok := stores.(splitStores); ok {
		m.log, _ = s.LogStore.(*pebbleLogStore)
	}
	return &timedLogStore{LogStore: durable, appends: &m.appends, entries: &m.entries}
}

// watch counts r's leader changes. The observer's filter counts and
// refuses every observation, so nothing is queued and no goroutine reads
// it: the count costs raft one atomic addition per leader change.
func (m *nodeMeters) watch(r *hraft.Raft) {
	r.RegisterObserver(hraft.NewObserver(nil, false, func(o *hraft.Observation) bool {
		if l, ok := o.Data.(hraft.LeaderObservation); ok && l.LeaderID != "" {
			m.leaderChanges.Add(1)
		}
		return false
	}))
}

// Metrics returns the node's raft figures. It takes no lock raft's main
// loop holds and does no I/O beyond reading the raft log's Pebble metrics;
// its cost grows with the number of members only. It is safe to call at
// any time, after Shutdown too.
func (n *Node) Metrics() Metrics {
	m := Metrics{
		State:              strings.ToLower(n.raft.State().String()),
		Term:               n.raft.CurrentTerm(),
		CommitIndex:        n.raft.CommitIndex(),
		LastLogIndex:       n.raft.LastIndex(),
		AppliedIndex:       n.fsm.AppliedIndex(),
		LastContact:        -1,
		LeaderChanges:      n.meters.leaderChanges.Load(),
		VotersReachable:    -1,
		LogAppend:          n.meters.appends.Snapshot(),
		LogEntriesAppended: n.meters.entries.Load(),
		Snapshot:           n.meters.snapshots.Snapshot(),
		Restore:            n.meters.restores.Snapshot(),
	}
	id, _ := n.Leader()
	m.LeaderKnown = id != ""
	if m.State == "leader" {
		m.LastContact = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		m.LastContact = max(time.Since(t), 0)
	}
	if n.meters.log != nil {
		if lm, err := n.meters.log.log.Metrics(); err == nil {
			m.Log = &lm
		}
	}
	f := n.raft.GetConfiguration() // answered at once from raft's copy
	if f.Error() != nil {
		return m
	}
	servers := f.Configuration().Servers
	for _, s := range servers {
		if s.Suffrage == hraft.Voter {
			m.Voters++
		}
	}
	if m.State != "leader" {
		return m
	}
	self := hraft.ServerID(n.cfg.ID)
	within := n.PeerReachableWithin()
	now := time.Now()
	m.VotersReachable = 0
	for _, s := range servers {
		voter := s.Suffrage == hraft.Voter
		if s.ID == self {
			if voter {
				m.VotersReachable++
			}
			continue
		}
		p := PeerMetrics{ID: string(s.ID), Voter: voter, LastContact: -1}
		if seen := n.progress.lastAnswer(s.ID); !seen.IsZero() {
			p.LastContact = max(now.Sub(seen), 0)
			p.Reachable = p.LastContact <= within
		}
		if voter && p.Reachable {
			m.VotersReachable++
		}
		m.Peers = append(m.Peers, p)
	}
	return m
}

// lastAnswer returns when follower id last answered one of this node's
// AppendEntries, zero if never (promote.go records the answers).
func (p *progressTracker) lastAnswer(id hraft.ServerID) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp := p.peers[id]; pp != nil {
		return pp.seen
	}
	return time.Time{}
}
