package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantkv/tenantkv/raft"
)

// The raft series of /metrics (docs/METRICS.md), from raft.Node.Metrics.
// Peers are labelled with their node IDs, never with anything of a tenant.

var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

var (
	raftStateDesc = prometheus.NewDesc("tenantkv_raft_state",
		"1 for the node's raft state (leader, follower, candidate, shutdown), 0 for the others.", []string{"state"}, nil)
	raftTermDesc = prometheus.NewDesc("tenantkv_raft_term",
		"The node's current raft term.", nil, nil)
	raftCommitDesc = prometheus.NewDesc("tenantkv_raft_commit_index",
		"The highest raft index this node knows to be committed.", nil, nil)
	raftLastLogDesc = prometheus.NewDesc("tenantkv_raft_last_log_index",
		"The last index in this node's raft log (or of its last snapshot).", nil, nil)
	raftLeaderKnownDesc = prometheus.NewDesc("tenantkv_raft_leader_known",
		"1 if the node knows a leader (itself included), 0 during an election or when cut off.", nil, nil)
	raftLastContactDesc = prometheus.NewDesc("tenantkv_raft_last_contact_seconds",
		"Seconds since a leader was last heard from (0 on the leader). Absent before the first contact.", nil, nil)
	raftLeaderChangesDesc = prometheus.NewDesc("tenantkv_raft_leader_changes_total",
		"New leaders this node has seen (itself included) since it started.", nil, nil)
	raftVotersDesc = prometheus.NewDesc("tenantkv_raft_voters",
		"Voters in the latest raft configuration.", nil, nil)
	raftVotersReachableDesc = prometheus.NewDesc("tenantkv_raft_voters_reachable",
		"On the leader only: voters (itself included) that answered it within two heartbeat timeouts.", nil, nil)
	raftPeerReachableDesc = prometheus.NewDesc("tenantkv_raft_peer_reachable",
		"On the leader only: 1 if the member answered it within two heartbeat timeouts, else 0.", []string{"peer"}, nil)
	raftPeerLastContactDesc = prometheus.NewDesc("tenantkv_raft_peer_last_contact_seconds",
		"On the leader only: seconds since the member last answered an AppendEntries (heartbeats included). Absent until it first answers.", []string{"peer"}, nil)
	raftAppendDesc = prometheus.NewDesc("tenantkv_raft_log_append_duration_seconds",
		"Latency of appends to the raft log, each one durable (synced) write.", nil, nil)
	raftAppendedDesc = prometheus.NewDesc("tenantkv_raft_log_appended_entries_total",
		"Entries appended to the raft log.", nil, nil)
	raftSnapshotDesc = prometheus.NewDesc("tenantkv_raft_snapshot_duration_seconds",
		"Time to persist a snapshot of the state machine into raft's snapshot store.", nil, nil)
	raftRestoreDesc = prometheus.NewDesc("tenantkv_raft_restore_duration_seconds",
		"Time to restore a snapshot into the store (installed from the leader, or at start).", nil, nil)
)

var raftDescs = []*prometheus.Desc{
	raftStateDesc, raftTermDesc, raftCommitDesc, raftLastLogDesc, raftLeaderKnownDesc,
	raftLastContactDesc, raftLeaderChangesDesc, raftVotersDesc, raftVotersReachableDesc,
	raftPeerReachableDesc, raftPeerLastContactDesc, raftAppendDesc, raftAppendedDesc,
	raftSnapshotDesc, raftRestoreDesc,
}

// collectRaft emits the raft series of m.
func collectRaft(ch chan<- prometheus.Metric, m *raft.Metrics) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, st := range raftStates {
		gauge(raftStateDesc, boolValue(m.State == st), st)
	}
	gauge(raftTermDesc, float64(m.Term))
	gauge(raftCommitDesc, float64(m.CommitIndex))
	gauge(raftLastLogDesc, float64(m.LastLogIndex))
	gauge(raftLeaderKnownDesc, boolValue(m.LeaderKnown))
	if m.LastContact >= 0 {
		gauge(raftLastContactDesc, m.LastContact.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(raftLeaderChangesDesc, prometheus.CounterValue, float64(m.LeaderChanges))
	gauge(raftVotersDesc, float64(m.Voters))
	if m.VotersReachable >= 0 {
		gauge(raftVotersReachableDesc, float64(m.VotersReachable))
	}
	for _, p := range m.Peers {
		gauge(raftPeerReachableDesc, boolValue(p.Reachable), p.ID)
		if p.LastContact >= 0 {
			gauge(raftPeerLastContactDesc, p.LastContact.Seconds(), p.ID)
		}
	}
	ch <- latencyHistogram(raftAppendDesc, m.LogAppend)
	ch <- prometheus.MustNewConstMetric(raftAppendedDesc, prometheus.CounterValue, float64(m.LogEntriesAppended))
	ch <- latencyHistogram(raftSnapshotDesc, m.Snapshot)
	ch <- latencyHistogram(raftRestoreDesc, m.Restore)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
