package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/testcluster"
)

// TestE2EClusterHealth runs three nodes through real processes: cluster
// status shows every member healthy with its own figures, cluster health
// exits 0; transfer-leader moves leadership to the most caught-up voter and
// to a named one; a node added with --non-voter before it starts is
// refused promotion until it has caught up, stays a non-voter while caught
// up, and becomes a voter on cluster promote; a follower killed with
// SIGKILL shows unreachable within two heartbeat timeouts while health
// still exits 0 with two of three voters, and a second one makes health
// exit 1.
func TestE2EClusterHealth(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	n1 := startNode(t, filepath.Join(dir, "n1"), "n1")
	tokenFile := filepath.Join(n1.dataDir, "operator.token")
	n2 := startNode(t, filepath.Join(dir, "n2"), "n2", "--join", n1.addr, "--token-file", tokenFile)
	n3 := startNode(t, filepath.Join(dir, "n3"), "n3", "--join", n1.addr, "--token-file", tokenFile)
	nodes := map[string]*nodeProc{"n1": n1, "n2": n2, "n3": n3}
	via := func(ns ...*nodeProc) *clusterCLI {
		c := &clusterCLI{t: t, tokenFile: tokenFile}
		for _, n := range ns {
			c.endpoints = append(c.endpoints, n.addr)
		}
		return c
	}
	all := via(n1, n2, n3)
	all.ok("tenant", "create", "acme")
	all.ok("--tenant", "acme", "put", "k", "v")

	// Every member healthy and reporting its own figures, asked through
	// a follower (which sends the request on to the leader). --non-voter
	// below needs the cluster format the leader raises on its own.
	var st clusterJSON
	waitFor(t, "every member healthy, cluster format 3", func() error {
		st = via(n3).status()
		if st.Format < 3 {
			return fmt.Errorf("cluster format %d", st.Format)
		}
		return allHealthy(st, "n1", "n2", "n3")
	})
	if st.NodeID != st.LeaderID || st.HeartbeatTimeoutMS != testcluster.HeartbeatTimeout.Milliseconds() || st.Version == "" {
		t.Errorf("status not from the leader, or without its heartbeat timeout or version: %+v", st)
	}
	out := via(n2).ok("cluster", "status")
	if !strings.HasPrefix(out, "leader "+st.LeaderID) || strings.Count(out, " healthy ") != 3 ||
		!strings.Contains(out, "health as seen by the leader "+st.LeaderID) {
		t.Errorf("cluster status:\n%s", out)
	}
	if out := all.ok("cluster", "health"); out != "healthy: 3 of 3 voters healthy, quorum 2\n" {
		t.Errorf("cluster health: %q", out)
	}

	// transfer-leader: to the most caught-up voter, then to a named one;
	// refused for an unknown node.
	old := st.LeaderID
	out = all.ok("cluster", "transfer-leader")
	to := strings.TrimSuffix(strings.TrimPrefix(out, "leadership transferred to "), "\n")
	if nodes[to] == nil || to == old {
		t.Fatalf("cluster transfer-leader: %q (leader was %s)", out, old)
	}
	waitFor(t, "the new leader in cluster status", func() error { return leaderIs(all.status(), to) })
	if out := all.ok("cluster", "transfer-leader", old); out != "leadership transferred to "+old+"\n" {
		t.Errorf("cluster transfer-leader %s: %q", old, out)
	}
	waitFor(t, "leadership back", func() error { return leaderIs(all.status(), old) })
	all.fails(1, "tenantkv: member not found", "cluster", "transfer-leader", "nobody")

	// A standby added before it starts: it cannot be promoted before it
	// has caught up; it is ready once caught up, and stays a non-voter
	// (several promotion rounds pass while the test polls) until promoted.
	n4 := startHeld(t, all, filepath.Join(dir, "n4"), "n4", n1.addr, tokenFile)
	waitFor(t, "n4 healthy", func() error { return allHealthy(all.status(), "n4") })
	for range 5 {
		st = all.status()
		if m := memberOf(st, "n4"); m.Suffrage != "nonvoter" || !m.Held {
			t.Fatalf("held n4: %+v", m)
		}
	}
	if out := all.ok("cluster", "status"); !strings.Contains(out, " held ") {
		t.Errorf("cluster status does not show n4 held:\n%s", out)
	}
	if out := all.ok("cluster", "promote", "n4"); out != "node n4 is a voter\n" {
		t.Errorf("cluster promote n4: %q", out)
	}
	if m := memberOf(all.status(), "n4"); m.Suffrage != "voter" || m.Held {
		t.Errorf("n4 after promote: %+v", m)
	}
	// Back to three voters for the kills below.
	all.ok("cluster", "remove", "n4")
	n4.kill()

	// SIGKILL a follower: unreachable within two heartbeat timeouts. An
	// answer to a request sent two heartbeat timeouts after the kill must
	// show it so; answers before may or may not.
	st = all.status()
	var dead, live *nodeProc
	for _, id := range []string{"n1", "n2", "n3"} {
		if id != st.LeaderID {
			if dead == nil {
				dead = nodes[id]
			} else {
				live = nodes[id]
			}
		}
	}
	leader := nodes[st.LeaderID]
	alive := via(leader, live)
	dead.kill()
	killed := time.Now()
	within := 2 * testcluster.HeartbeatTimeout
	for {
		sent := time.Now()
		st = alive.status()
		m := memberOf(st, dead.id)
		if m.Reachable != nil && !*m.Reachable {
			if *m.LastContactMS < testcluster.HeartbeatTimeout.Milliseconds() || m.Health == nil || *m.Health != "unreachable" {
				t.Errorf("killed %s: %+v", dead.id, m)
			}
			t.Logf("killed %s shown unreachable %v after the kill (last contact %dms ago)", dead.id, time.Since(killed), *m.LastContactMS)
			break
		}
		if sent.Sub(killed) >= within {
			t.Fatalf("killed %s still shown reachable %v after the kill: %+v", dead.id, sent.Sub(killed), m)
		}
	}
	if err := allHealthy(st, st.LeaderID, live.id); err != nil {
		t.Errorf("with %s killed: %v", dead.id, err)
	}
	out = alive.ok("cluster", "status")
	if !strings.Contains(out, " unreachable ") {
		t.Errorf("cluster status does not show %s unreachable:\n%s", dead.id, out)
	}
	t.Logf("cluster status with %s killed:\n%s", dead.id, out)
	out = alive.ok("cluster", "health")
	if !strings.HasPrefix(out, "healthy: 2 of 3 voters healthy, quorum 2: "+dead.id+" unreachable (last answer ") {
		t.Errorf("cluster health with %s killed: %q", dead.id, out)
	}

	// A second one: no quorum of healthy voters, whoever still answers.
	live.kill()
	waitFor(t, "cluster health to fail", func() error {
		r := via(leader).run("", "cluster", "health")
		first, _, _ := strings.Cut(r.stderr, "\n")
		switch {
		case r.code == 0:
			return errors.New(r.stdout)
		case r.code != 1 || !strings.HasPrefix(first, "tenantkv: not healthy: ") || strings.Count(r.stderr, "\n") != 1 || r.stdout != "":
			t.Fatalf("cluster health with two of three killed: %v", r)
		}
		t.Logf("cluster health: %s", first)
		return nil
	})
	r := via(leader).run("", "cluster", "health", "--json")
	var h healthJSON
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || r.code != 1 || h.Healthy || h.Reason == "" {
		t.Errorf("cluster health --json: %v (%v)", r, err)
	}
}

// startHeld adds node id to the cluster with cluster add --non-voter, and
// promote is refused while it has not started, then starts it with --join
// on the address it was added with; on a port taken meanwhile it adds the
// node again with new ports (the address changes) and starts it there.
func startHeld(t *testing.T, c *clusterCLI, dataDir, id, join, tokenFile string) *nodeProc {
	t.Helper()
	var p *nodeProc
	first := true
	err := testcluster.OnFreePorts(3, dataDir, func(ports []string) error {
		out := c.ok("cluster", "add", id, ports[1], "--non-voter")
		if !strings.HasPrefix(out, "added node "+id+" at "+ports[1]+" as a non-voter, held until") {
			t.Errorf("cluster add: %q", out)
		}
		if first {
			first = false
			st := c.status()
			if m := memberOf(st, id); m.Suffrage != "nonvoter" || !m.Held || m.Reachable == nil || *m.Reachable || *m.LastContactMS != -1 {
				t.Errorf("%s added, not started: %+v", id, m)
			}
			c.fails(1, "tenantkv: membership change refused: "+id+" has not caught up with the leader (it has not answered the leader",
				"cluster", "promote", id)
		}
		args := append([]string{binPath, "serve", "--data", dataDir, "--node-id", id,
			"--listen", ports[0], "--raft", ports[1], "--http", ports[2], "--join", join, "--token-file", tokenFile},
			testcluster.ServeFlags()...)
		p = launch(t, id, t.TempDir(), childEnv(), shellJoin(args))
		p.dataDir = dataDir
		return p.waitReady(t.Context())
	})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return p
}

// waitFor polls f until it returns nil, failing the test after
// failoverTimeout with what f last said.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), failoverTimeout)
	defer cancel()
	if err := testcluster.Poll(ctx, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func memberOf(st clusterJSON, id string) memberJSON {
	for _, m := range st.Members {
		if m.ID == id {
			return m
		}
	}
	return memberJSON{ID: id + " (not a member)"}
}

func leaderIs(st clusterJSON, id string) error {
	if st.LeaderID != id || st.NodeID != id {
		return fmt.Errorf("leader %s (answered by %s), want %s", st.LeaderID, st.NodeID, id)
	}
	return nil
}

// allHealthy checks that st, the leader's view, shows each of ids healthy
// with its own figures.
func allHealthy(st clusterJSON, ids ...string) error {
	if st.LeaderID == "" || st.NodeID != st.LeaderID {
		return fmt.Errorf("status of %s, leader %q", st.NodeID, st.LeaderID)
	}
	for _, id := range ids {
		m := memberOf(st, id)
		switch {
		case m.Healthy == nil || !*m.Healthy || !*m.Reachable || *m.Health != "healthy":
			return fmt.Errorf("%s not healthy: %+v", id, m)
		case m.AppliedIndex == nil || *m.AppliedIndex == 0 || m.CommitIndex == nil || *m.CommitIndex == 0 ||
			m.Term == nil || *m.Term == 0 || m.Version == nil || *m.Version == "":
			return fmt.Errorf("%s without its own figures: %+v (%s)", id, m, m.ReportError)
		case id != st.LeaderID && *m.MatchIndex == 0:
			return fmt.Errorf("%s without a match index: %+v", id, m)
		}
	}
	return nil
}
