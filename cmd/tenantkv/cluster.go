package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/tenantkv/tenantkv/client"
)

// clusterStatus prints the leader and the members as the leader sees them,
// or with --json the status object.
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
		fmt.Fprintf(x.stdout, "leader %s, term %d, commit index %d, applied index %d (as seen by %s)\n",
			leader, st.Term, st.CommitIndex, st.AppliedIndex, st.NodeID)
		tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tSUFFRAGE\tCLIENT\tRAFT\tHTTP")
		for _, m := range st.Members {
			role := "follower"
			if m.Leader {
				role = "leader"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, role, strings.ToLower(m.Suffrage),
				orDash(m.ClientAddr), orDash(m.RaftAddr), orDash(m.HTTPAddr))
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
