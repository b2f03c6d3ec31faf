package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

var clusterStatusCommand = &command{
	path:    "cluster status",
	summary: "show the leader and each member's health, indexes and version",
	long: `Asks the leader (any node sends the request on to it) for the members: their
addresses and suffrage, then how the leader sees each one: HEALTH is
"healthy" (it answered the leader within one raft heartbeat timeout and its
log is at most that far behind), "lagging" (it answers but its log is further
behind) or "unreachable" (no answer for a heartbeat timeout: a node that was
killed or cut off shows so within two); LAST-CONTACT is how long ago it last
answered. TERM, APPLIED and COMMIT are the member's own figures, which the
leader asks every member for (a member it cannot ask shows "-"), MATCH the
last log index the leader saw it hold and LAG the entries it lacks of the
leader's log. With no leader known, the node asked answers with what it
knows of itself.
`,
	setup: noFlags(clusterStatus),
}

var clusterHealthCommand = &command{
	path:    "cluster health",
	summary: "exit 0 if a quorum of voters is healthy, 1 otherwise, with one line saying why",
	long: `Asks the leader how it sees the voters: a voter is healthy when it answered the
leader within one raft heartbeat timeout and its log is at most that far
behind (the leader itself is). Exits 0 when a majority of the voters is
healthy, 1 otherwise (no leader known, too few healthy voters, no node
reachable), printing one line: the count and every voter that is not
healthy. With --json, prints the verdict and the members as one object (and
still exits 1 when not healthy).
`,
	setup: noFlags(clusterHealth),
}

var clusterAddCommand = &command{
	path:    "cluster add",
	args:    "NODE-ID RAFT-ADDR [--non-voter]",
	summary: "add a node as a non-voter, promoted once caught up (--non-voter: until cluster promote)",
	long: `Adds node NODE-ID, whose raft port is RAFT-ADDR, to the cluster's
configuration as a non-voter: it receives the log (or a snapshot) but neither
votes nor counts in the quorum, so copying the data takes nothing from the
cluster's availability. Then start the node with --join (its join finds it
added and publishes its client address). Without --non-voter the leader
promotes it to voter once its log keeps pace with the leader's, as it does a
node that joins by itself. With --non-voter it stays a non-voter (a standby),
whoever leads, until 'tenantkv cluster promote NODE-ID'; the node is ready
once caught up. --non-voter needs cluster format 3 (cluster status shows the
format; the leader raises it once every member runs this release). A member
added again keeps its suffrage; a voter cannot be made a non-voter.
`,
	minArgs: 2, maxArgs: 2,
	setup: setupClusterAdd,
}

var clusterPromoteCommand = &command{
	path:    "cluster promote",
	args:    "NODE-ID",
	summary: "make a non-voter a voter, once it has caught up",
	long: `Makes non-voter NODE-ID a voter, if its log keeps pace with the leader's (the
rule the leader's own promotions follow). A node that has not caught up is
refused with how far behind it is, and nothing changes: wait until cluster
status shows it healthy. Promoting a voter changes nothing.
`,
	minArgs: 1, maxArgs: 1,
	setup: noFlags(clusterPromote),
}

var clusterTransferLeaderCommand = &command{
	path:    "cluster transfer-leader",
	args:    "[NODE-ID]",
	summary: "hand leadership to a voter (without NODE-ID: the most caught-up one)",
	long: `Asks the leader to hand leadership to voter NODE-ID, or without it to the most
caught-up voter the leader can reach, and waits until it has (for a restart
or a removal of the leader's node without an election timeout of
unavailability). A non-voter, or a voter the leader cannot reach, is refused.
Writes sent meanwhile are retried by clients as for any change of leader.
`,
	maxArgs: 1,
	setup:   noFlags(clusterTransferLeader),
}

// leaderView asks for the leader's view with every member's own figures.
var leaderView = &client.StatusOptions{Leader: true, Reports: true}

// clusterStatus prints the leader, the cluster format and the members as
// the leader sees them (with the highest log format each member's build
// knows, when the leader has asked: docs/OPERATIONS.md, Upgrades), then
// each member's health and figures, or with --json the status object.
func clusterStatus(ctx context.Context, x *cli, _ []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		st, err := db.ClusterStatusWith(ctx, leaderView)
		if err != nil {
			return err
		}
		if x.g.json {
			return writeJSON(x.stdout, newClusterJSON(st))
		}
		leader := st.LeaderID
		if leader == "" {
			leader = "none"
		}
		format := max(st.Format, 1) // a node before formats is at format 1
		fmt.Fprintf(x.stdout, "leader %s, term %d, commit index %d, applied index %d, cluster format %d (as seen by %s)\n",
			leader, st.Term, st.CommitIndex, st.AppliedIndex, format, st.NodeID)
		tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tSUFFRAGE\tCLIENT\tRAFT\tHTTP\tMAX-FORMAT")
		for _, m := range st.Members {
			role := "follower"
			if m.Leader {
				role = "leader"
			}
			maxFormat := "-" // not known to the answering node
			if m.MaxFormat != 0 {
				maxFormat = strconv.FormatUint(uint64(m.MaxFormat), 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, role, strings.ToLower(m.Suffrage),
				orDash(m.ClientAddr), orDash(m.RaftAddr), orDash(m.HTTPAddr), maxFormat)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(x.stdout)
		switch {
		case st.LeaderID == st.NodeID:
			fmt.Fprintf(x.stdout, "health as seen by the leader %s (heartbeat timeout %v):\n", st.NodeID, st.HeartbeatTimeout)
		case st.LeaderID == "":
			fmt.Fprintf(x.stdout, "no leader known: %s knows only its own figures\n", st.NodeID)
		default:
			fmt.Fprintf(x.stdout, "%s does not lead and could not send the request on: it knows only its own figures\n", st.NodeID)
		}
		tw = tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tHEALTH\tLAST-CONTACT\tTERM\tAPPLIED\tCOMMIT\tMATCH\tLAG\tPROMOTION\tVERSION")
		for _, m := range st.Members {
			reported := func(v uint64) string {
				if !m.Reported {
					return "-"
				}
				return strconv.FormatUint(v, 10)
			}
			tracked := func(v uint64) string {
				if !m.Tracked {
					return "-"
				}
				return strconv.FormatUint(v, 10)
			}
			term := "-"
			if m.Term != 0 {
				term = strconv.FormatUint(m.Term, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, healthWord(m), lastContact(m), term,
				reported(m.AppliedIndex), reported(m.CommitIndex), tracked(m.MatchIndex), tracked(m.Lag),
				promotion(m), orDash(m.Version))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.ReportError != "" {
				fmt.Fprintf(x.stdout, "%s: no figures of its own: %s\n", m.ID, m.ReportError)
			}
		}
		return nil
	})
}

// healthWord is how the leader sees m, or "-" when it is not the leader's
// view.
func healthWord(m client.Member) string {
	switch {
	case !m.Tracked:
		return "-"
	case m.Healthy:
		return "healthy"
	case m.Reachable:
		return "lagging"
	}
	return "unreachable"
}

// lastContact is how long ago m answered the leader.
func lastContact(m client.Member) string {
	switch {
	case !m.Tracked || m.Leader:
		return "-"
	case m.LastContact < 0:
		return "never"
	}
	return m.LastContact.Round(time.Millisecond).String()
}

// promotion says what awaits a non-voter: the leader's own promotion
// ("auto") or an operator's ("held").
func promotion(m client.Member) string {
	switch {
	case strings.EqualFold(m.Suffrage, "voter"):
		return "-"
	case m.Held:
		return "held"
	}
	return "auto"
}

// clusterHealth exits 0 (nil) when a quorum of voters is healthy as the
// leader sees it, and fails with the reason otherwise.
func clusterHealth(ctx context.Context, x *cli, _ []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		st, err := db.ClusterStatusWith(ctx, &client.StatusOptions{Leader: true})
		if err != nil {
			return fmt.Errorf("not healthy: %w", err)
		}
		h := st.Health()
		if x.g.json {
			out := healthJSON{
				Healthy: h.Healthy, Reason: h.Reason, LeaderID: st.LeaderID, NodeID: st.NodeID,
				Voters: h.Voters, HealthyVoters: h.HealthyVoters, Quorum: h.Quorum,
				Members: newClusterJSON(st).Members,
			}
			if err := writeJSON(x.stdout, out); err != nil {
				return err
			}
		} else if h.Healthy {
			fmt.Fprintf(x.stdout, "healthy: %s\n", h.Reason)
		}
		if !h.Healthy {
			return errors.New("not healthy: " + h.Reason)
		}
		return nil
	})
}

func setupClusterAdd(fs *flag.FlagSet, _ func(string) string) runFunc {
	var nonvoter bool
	fs.BoolVar(&nonvoter, "non-voter", false, "keep the node a non-voter until 'cluster promote' (default: promoted once caught up)")
	return func(ctx context.Context, x *cli, args []string) error {
		return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
			if err := db.AddNode(ctx, args[0], args[1], &client.AddNodeOptions{KeepNonvoter: nonvoter}); err != nil {
				return err
			}
			if nonvoter {
				fmt.Fprintf(x.stdout, "added node %s at %s as a non-voter, held until 'cluster promote %s'; start it with --join\n", args[0], args[1], args[0])
			} else {
				fmt.Fprintf(x.stdout, "added node %s at %s as a non-voter, promoted to voter once caught up; start it with --join\n", args[0], args[1])
			}
			return nil
		})
	}
}

// clusterPromote makes a caught-up non-voter a voter.
func clusterPromote(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		if err := db.PromoteNode(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "node %s is a voter\n", args[0])
		return nil
	})
}

// clusterTransferLeader hands leadership over and says to whom.
func clusterTransferLeader(ctx context.Context, x *cli, args []string) error {
	to := ""
	if len(args) > 0 {
		to = args[0]
	}
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		leader, err := db.TransferLeader(ctx, to)
		if err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "leadership transferred to %s\n", leader)
		return nil
	})
}

// clusterRemove removes a node from the cluster's configuration. The node's
// process is not stopped; stop it afterwards.
func clusterRemove(ctx context.Context, x *cli, args []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		if err := db.RemoveNode(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "removed node %s\n", args[0])
		return nil
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// memberJSON is one member in cluster status --json. The fields before
// Held are those of earlier releases, unchanged; a figure the answer does
// not hold is null.
type memberJSON struct {
	ID         string `json:"id"`
	RaftAddr   string `json:"raft_addr"`
	ClientAddr string `json:"client_addr"`
	HTTPAddr   string `json:"http_addr"`
	Suffrage   string `json:"suffrage"`
	Leader     bool   `json:"leader"`
	MaxFormat  uint32 `json:"max_format,omitempty"`
	Held       bool   `json:"held"`
	// The leader's view: null when the answering node does not lead.
	Health        *string `json:"health"` // healthy, lagging or unreachable
	Reachable     *bool   `json:"reachable"`
	Healthy       *bool   `json:"healthy"`
	LastContactMS *int64  `json:"last_contact_ms"` // -1: never
	MatchIndex    *uint64 `json:"match_index"`
	Lag           *uint64 `json:"lag"`
	BehindMS      *int64  `json:"behind_ms"` // -1: further than the leader remembers
	Error         string  `json:"error,omitempty"`
	// The member's own figures: null when it could not be asked.
	Term         *uint64 `json:"term"`
	AppliedIndex *uint64 `json:"applied_index"`
	CommitIndex  *uint64 `json:"commit_index"`
	Version      *string `json:"version"`
	ReportError  string  `json:"report_error,omitempty"`
}

type clusterJSON struct {
	NodeID       string       `json:"node_id"`
	LeaderID     string       `json:"leader_id"`
	Term         uint64       `json:"term"`
	AppliedIndex uint64       `json:"applied_index"`
	CommitIndex  uint64       `json:"commit_index"`
	Format       uint32       `json:"cluster_format,omitempty"`
	Members      []memberJSON `json:"members"`
	Version      string       `json:"version,omitempty"`
	// HeartbeatTimeoutMS is the answering node's raft heartbeat timeout,
	// the unit of reachable and healthy.
	HeartbeatTimeoutMS int64 `json:"heartbeat_timeout_ms,omitempty"`
}

// healthJSON is cluster health --json.
type healthJSON struct {
	Healthy       bool         `json:"healthy"`
	Reason        string       `json:"reason"`
	LeaderID      string       `json:"leader_id"`
	NodeID        string       `json:"node_id"`
	Voters        int          `json:"voters"`
	HealthyVoters int          `json:"healthy_voters"`
	Quorum        int          `json:"quorum"`
	Members       []memberJSON `json:"members"`
}

func ptr[T any](v T) *T { return &v }

func newClusterJSON(st *client.ClusterStatus) clusterJSON {
	out := clusterJSON{
		NodeID: st.NodeID, LeaderID: st.LeaderID, Term: st.Term,
		AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex, Format: st.Format,
		Members: make([]memberJSON, len(st.Members)),
		Version: st.Version, HeartbeatTimeoutMS: st.HeartbeatTimeout.Milliseconds(),
	}
	for i, m := range st.Members {
		j := memberJSON{
			ID: m.ID, RaftAddr: m.RaftAddr, ClientAddr: m.ClientAddr, HTTPAddr: m.HTTPAddr,
			Suffrage: strings.ToLower(m.Suffrage), Leader: m.Leader, MaxFormat: m.MaxFormat, Held: m.Held,
			Error: m.Error, ReportError: m.ReportError,
		}
		if m.Tracked {
			j.Health, j.Reachable, j.Healthy = ptr(healthWord(m)), ptr(m.Reachable), ptr(m.Healthy)
			j.LastContactMS, j.MatchIndex, j.Lag = ptr(msOrNever(m.LastContact)), ptr(m.MatchIndex), ptr(m.Lag)
			j.BehindMS = ptr(msOrNever(m.Behind))
		}
		if m.Term != 0 {
			j.Term = ptr(m.Term)
		}
		if m.Reported {
			j.AppliedIndex, j.CommitIndex, j.Version = ptr(m.AppliedIndex), ptr(m.CommitIndex), ptr(m.Version)
		}
		out.Members[i] = j
	}
	return out
}

// msOrNever is d in milliseconds, -1 staying -1.
func msOrNever(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}
