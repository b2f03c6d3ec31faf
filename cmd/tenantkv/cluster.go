package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/tenantkv/tenantkv/client"
)

// clusterStatus prints the leader, the cluster format and the members as
// the leader sees them (with the highest log format each member's build
// knows, when the leader has asked: docs/OPERATIONS.md, Upgrades), or with
// --json the status object.
func clusterStatus(ctx context.Context, x *cli, _ []string) error {
	return x.withDB(ctx, func(ctx context.Context, db *client.DB) error {
		st, err := db.ClusterStatus(ctx)
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
		return tw.Flush()
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
