package main

// End-to-end tests: they build the real binary once, start real
// `tenantkv serve` processes on free ports of 127.0.0.1 with their data in
// temporary directories, and drive them with the binary's client commands.
// They are skipped with -short. Helpers are in e2e_helpers_test.go.

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/testcluster"
)

// binPath is the tenantkv binary built by TestMain, "" with -short.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if !testing.Short() {
		// Built once, the way this test binary was (internal/testcluster).
		var err error
		if binPath, err = testcluster.BuildBinary(); err != nil {
			fmt.Fprintf(os.Stderr, "building tenantkv for the end-to-end tests: %v\n", err)
			return 1
		}
		defer testcluster.RemoveBinary()
	}
	return m.Run()
}

func skipShort(t *testing.T) {
	t.Helper()
	testcluster.Short(t)
}

// TestE2ESingleNode drives one node through every data and tenant command.
func TestE2ESingleNode(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dataDir := t.TempDir()
	n := startNode(t, dataDir, "solo")
	c := &clusterCLI{t: t, endpoints: []string{n.addr}, tokenFile: filepath.Join(dataDir, "operator.token")}

	if st, err := os.Stat(c.tokenFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("operator token file: %v, %v; want mode 0600", st, err)
	}
	if !strings.Contains(readyLine(n.stdout.String()), "operator token in "+c.tokenFile) {
		t.Errorf("ready line does not say where the operator token is: %q", readyLine(n.stdout.String()))
	}

	t.Run("tenants", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		if out := c.ok("tenant", "create", "acme"); !strings.HasPrefix(out, "created tenant acme (id ") {
			t.Errorf("tenant create acme: %q", out)
		}
		c.ok("tenant", "create", "beta")
		c.fails(1, "tenantkv: tenant already exists", "tenant", "create", "acme")
		c.fails(1, "tenantkv: invalid tenant name", "tenant", "create", "Not_A_Name")

		out := c.ok("tenant", "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
			!strings.HasPrefix(lines[1], "acme ") || !strings.HasPrefix(lines[2], "beta ") {
			t.Errorf("tenant list:\n%s", out)
		}
		var list []tenantJSON
		if err := json.Unmarshal([]byte(c.ok("tenant", "list", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].Name != "acme" || list[1].Name != "beta" ||
			list[0].ID == 0 || list[1].ID <= list[0].ID || list[0].State != "active" {
			t.Errorf("tenant list --json: %+v", list)
		}

		out = c.ok("tenant", "show", "acme")
		for _, want := range []string{"name:", "acme", "id:", fmt.Sprint(list[0].ID), "state:", "active", "limits:", "keys:"} {
			if !strings.Contains(out, want) {
				t.Errorf("tenant show acme: %q missing in\n%s", want, out)
			}
		}
		var one tenantJSON
		if err := json.Unmarshal([]byte(c.ok("--json", "tenant", "show", "acme")), &one); err != nil {
			t.Fatal(err)
		}
		if one.Name != "acme" || one.ID != list[0].ID || one.CreatedAt.IsZero() {
			t.Errorf("tenant show --json: %+v", one)
		}
		c.fails(1, "tenantkv: tenant not found", "tenant", "show", "nobody")
	})

	t.Run("data", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		for _, kv := range [][2]string{{"a", "1"}, {"user/1", "alice"}, {"user/2", "bob"}, {"user/3", "carol"}, {"z", "26"}} {
			c.ok("--tenant", "acme", "put", kv[0], kv[1])
		}
		if out := c.ok("--tenant", "acme", "get", "user/2"); out != "bob\n" {
			t.Errorf("get user/2: %q", out)
		}
		if out := c.ok("get", "user/1", "--tenant", "acme"); out != "alice\n" {
			t.Errorf("get with --tenant after the key: %q", out)
		}
		c.fails(1, "tenantkv: not found", "--tenant", "acme", "get", "missing")
		if r := c.run("", "--tenant", "acme", "get", "missing"); r.stderr != "tenantkv: not found\n" {
			t.Errorf("get missing: stderr %q, want exactly %q", r.stderr, "tenantkv: not found\n")
		}
		// The same key of another tenant is another key.
		c.fails(1, "tenantkv: not found", "--tenant", "beta", "get", "user/2")

		scans := []struct {
			args []string
			want string
		}{
			{nil, "a\t1\nuser/1\talice\nuser/2\tbob\nuser/3\tcarol\nz\t26\n"},
			{[]string{"--prefix", "user/"}, "user/1\talice\nuser/2\tbob\nuser/3\tcarol\n"},
			{[]string{"--start", "user/2", "--end", "z"}, "user/2\tbob\nuser/3\tcarol\n"},
			{[]string{"--start", "user/2"}, "user/2\tbob\nuser/3\tcarol\nz\t26\n"},
			{[]string{"--end", "user/2"}, "a\t1\nuser/1\talice\n"},
			{[]string{"--prefix", "user/", "--limit", "2"}, "user/1\talice\nuser/2\tbob\n"},
			{[]string{"--prefix", "user/", "--reverse"}, "user/3\tcarol\nuser/2\tbob\nuser/1\talice\n"},
			{[]string{"--reverse", "--limit", "1"}, "z\t26\n"},
			{[]string{"--prefix", "nothing/"}, ""},
		}
		for _, s := range scans {
			args := append([]string{"scan", "--tenant", "acme"}, s.args...)
			if out := c.ok(args...); out != s.want {
				t.Errorf("tenantkv %q:\n%q\nwant\n%q", args, out, s.want)
			}
		}

		var kvs []map[string]string
		if err := json.Unmarshal([]byte(c.ok("scan", "--prefix", "user/", "--limit", "2", "--json", "--tenant", "acme")), &kvs); err != nil {
			t.Fatal(err)
		}
		if len(kvs) != 2 || kvs[0]["key"] != "user/1" || kvs[0]["value"] != "alice" || kvs[1]["key"] != "user/2" {
			t.Errorf("scan --json: %v", kvs)
		}
		if out := c.ok("scan", "--prefix", "nothing/", "--json", "--tenant", "acme"); out != "[]\n" {
			t.Errorf("empty scan --json: %q", out)
		}
		var kv map[string]string
		if err := json.Unmarshal([]byte(c.ok("get", "user/3", "--json", "--tenant", "acme")), &kv); err != nil {
			t.Fatal(err)
		}
		if kv["key"] != "user/3" || kv["value"] != "carol" {
			t.Errorf("get --json: %v", kv)
		}

		// put KEY - reads the value from stdin, byte for byte.
		stdinValue := "line 1\nline 2 \x00 \xff\n"
		if r := c.run(stdinValue, "--tenant", "acme", "put", "blob", "-"); r.code != 0 {
			t.Fatalf("put blob -: %v", r)
		}
		if out := c.ok("--tenant", "acme", "get", "blob"); out != stdinValue+"\n" {
			t.Errorf("get blob: %q, want %q", out, stdinValue+"\n")
		}
		kv = nil
		if err := json.Unmarshal([]byte(c.ok("--tenant", "acme", "get", "blob", "--json")), &kv); err != nil {
			t.Fatal(err)
		}
		if _, ok := kv["value"]; ok || kv["key"] != "blob" || kv["value_base64"] != base64.StdEncoding.EncodeToString([]byte(stdinValue)) {
			t.Errorf("get --json of a non-UTF-8 value: %v", kv)
		}

		c.ok("--tenant", "acme", "del", "user/2")
		c.fails(1, "tenantkv: not found", "--tenant", "acme", "get", "user/2")
		c.ok("--tenant", "acme", "del", "user/2") // deleting a missing key succeeds
		c.fails(1, "tenantkv: tenant not found", "--tenant", "nobody", "get", "a")
	})

	t.Run("usage errors", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.fails(2, "tenantkv: unknown command", "frobnicate")
		c.fails(2, "tenantkv: get: missing argument", "--tenant", "acme", "get")
		c.fails(2, "tenantkv: unknown flag --frob", "--tenant", "acme", "get", "a", "--frob")
		c.fails(2, "tenantkv: no tenant given", "get", "a")
		if r := c.run("", "put", "k"); !strings.Contains(r.stderr, "usage: tenantkv put KEY VALUE") {
			t.Errorf("usage error without a usage line: %v", r)
		}
	})

	t.Run("tenant token", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		tok := c.ok("tenant", "token", "acme")
		if strings.Count(tok, "\n") != 1 || len(strings.TrimSpace(tok)) < 16 {
			t.Fatalf("tenant token printed %q, want one token line", tok)
		}
		tok = strings.TrimSpace(tok)
		as := func(args ...string) result {
			return tkv(t, "", []string{"TENANTKV_ENDPOINTS=" + n.addr, "TENANTKV_TOKEN=" + tok}, "", args...)
		}
		// Its own tenant, with and without --tenant.
		if r := as("get", "a"); r.code != 0 || r.stdout != "1\n" {
			t.Errorf("tenant token, get without --tenant: %v", r)
		}
		if r := as("--tenant", "acme", "put", "from-token", "yes"); r.code != 0 {
			t.Errorf("tenant token, put: %v", r)
		}
		if r := tkv(t, "", []string{"TENANTKV_ENDPOINTS=" + n.addr}, "", "--token", tok, "scan", "--prefix", "from-"); r.code != 0 || r.stdout != "from-token\tyes\n" {
			t.Errorf("tenant token from --token, scan: %v", r)
		}
		// Another tenant, existing or not, and administration are out of reach.
		for _, args := range [][]string{
			{"--tenant", "beta", "get", "a"},
			{"--tenant", "beta", "put", "a", "b"},
			{"--tenant", "beta", "scan"},
			{"--tenant", "no-such-tenant", "get", "a"},
			{"--tenant", "no-such-tenant", "put", "a", "b"},
			{"tenant", "list"},
			{"tenant", "create", "gamma"},
			{"tenant", "token", "beta"},
			{"cluster", "status"},
		} {
			r := as(args...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, "tenantkv: permission denied") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("tenant token, tenantkv %q: %v; want exit 1 and permission denied", args, r)
			}
		}
		if r := c.run("", "--tenant", "beta", "get", "a"); r.code != 1 || r.stderr != "tenantkv: not found\n" {
			t.Errorf("beta unchanged by the refused put: %v", r)
		}
	})

	t.Run("tenant delete", func(t *testing.T) {
		c := &clusterCLI{t: t, endpoints: c.endpoints, tokenFile: c.tokenFile}
		c.ok("--tenant", "beta", "put", "left", "behind")
		if out := c.ok("tenant", "delete", "beta"); out != "deleted tenant beta\n" {
			t.Errorf("tenant delete: %q", out)
		}
		c.fails(1, "tenantkv: tenant not found", "tenant", "show", "beta")
		c.fails(1, "tenantkv: tenant not found", "--tenant", "beta", "get", "left")
		c.fails(1, "tenantkv: tenant not found", "tenant", "delete", "beta")
		if out := c.ok("tenant", "list"); strings.Contains(out, "beta") {
			t.Errorf("deleted tenant still listed:\n%s", out)
		}
		// A new tenant of the same name starts empty.
		c.ok("tenant", "create", "beta")
		if out := c.ok("--tenant", "beta", "scan"); out != "" {
			t.Errorf("re-created tenant is not empty: %q", out)
		}
	})

	t.Run("sigterm", func(t *testing.T) {
		n.graceful(t)
	})
}

// TestE2ECluster runs three nodes, the second and third joined to the
// first: replication, cluster status, failover after the leader is killed,
// and removing the dead node.
func TestE2ECluster(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	n1 := startNode(t, filepath.Join(dir, "n1"), "n1")
	tokenFile := filepath.Join(n1.dataDir, "operator.token")
	n2 := startNode(t, filepath.Join(dir, "n2"), "n2", "--join", n1.addr, "--token-file", tokenFile)
	n3 := startNode(t, filepath.Join(dir, "n3"), "n3", "--join", n1.addr, "--token-file", tokenFile)
	nodes := map[string]*nodeProc{"n1": n1, "n2": n2, "n3": n3}
	for _, n := range []*nodeProc{n2, n3} {
		if !strings.Contains(readyLine(n.stdout.String()), "operator token in the data directory of the node that bootstrapped") {
			t.Errorf("%s ready line: %q", n.name, readyLine(n.stdout.String()))
		}
	}

	via := func(ns ...*nodeProc) *clusterCLI {
		c := &clusterCLI{t: t, tokenFile: tokenFile}
		for _, n := range ns {
			c.endpoints = append(c.endpoints, n.addr)
		}
		return c
	}
	via(n1).ok("tenant", "create", "acme")
	via(n1).ok("--tenant", "acme", "put", "hello", "world")
	// Node 3's endpoint answers, following the leader on its own.
	if out := via(n3).ok("--tenant", "acme", "get", "hello"); out != "world\n" {
		t.Errorf("get through node 3: %q", out)
	}
	via(n3).ok("--tenant", "acme", "put", "from", "n3")
	if out := via(n2).ok("--tenant", "acme", "scan"); out != "from\tn3\nhello\tworld\n" {
		t.Errorf("scan through node 2: %q", out)
	}

	// A tenant token works through every node until it is revoked; then
	// every node refuses it, on its own (a follower as soon as it has
	// applied the revocation).
	tok := strings.TrimSpace(via(n1).ok("tenant", "token", "acme"))
	for _, n := range []*nodeProc{n1, n2, n3} {
		if r := via(n).as(tok, "get", "hello"); r.code != 0 || r.stdout != "world\n" {
			t.Errorf("tenant token through %s: %v", n.name, r)
		}
	}
	if out := via(n3).ok("tenant", "revoke", tok); !strings.HasPrefix(out, "revoked token ") {
		t.Errorf("tenant revoke: %q", out)
	}
	for _, n := range []*nodeProc{n1, n2, n3} {
		waitRefused(t, via(n), tok, 5*time.Second)
	}

	st := via(n2).status()
	if got := memberIDs(st); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("cluster status members: %v", got)
	}
	if l := leaders(st); len(l) != 1 || l[0] != st.LeaderID {
		t.Fatalf("cluster status: leaders %v, leader_id %q", l, st.LeaderID)
	}
	for _, m := range st.Members {
		n := nodes[m.ID]
		if m.ClientAddr != n.addr || m.HTTPAddr != n.httpAddr || m.RaftAddr == "" || m.Suffrage != "voter" {
			t.Errorf("member %+v does not match node %s on %s (http %s)", m, n.name, n.addr, n.httpAddr)
		}
	}
	out := via(n1).ok("cluster", "status")
	members, _, _ := strings.Cut(out, "\n\n") // the member table, before the health one
	if strings.Count(members, " leader ") != 1 || strings.Count(members, " follower ") != 2 || !strings.HasPrefix(out, "leader "+st.LeaderID) {
		t.Errorf("cluster status:\n%s", out)
	}

	// Kill the leader: the client carries on with the survivors once they
	// have elected a new leader.
	dead := nodes[st.LeaderID]
	dead.kill()
	var survivors []*nodeProc
	for _, id := range []string{"n1", "n2", "n3"} {
		if nodes[id] != dead {
			survivors = append(survivors, nodes[id])
		}
	}
	all := via(n1, n2, n3)
	deadline := time.Now().Add(failoverTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		r := all.run("", "--tenant", "acme", "--timeout", "5s", "put", "after", "failover")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded within %v of killing leader %s: %v", failoverTimeout, dead.name, r)
		}
		t.Logf("write after killing leader %s: %v; retrying", dead.name, r)
		<-tick.C
	}
	if out := all.ok("--tenant", "acme", "scan"); out != "after\tfailover\nfrom\tn3\nhello\tworld\n" {
		t.Errorf("scan after failover: %q", out)
	}
	st = via(survivors...).status()
	if st.LeaderID == "" || st.LeaderID == dead.name || len(leaders(st)) != 1 {
		t.Errorf("cluster status after failover: leader %q (dead: %s), leaders %v", st.LeaderID, dead.name, leaders(st))
	}

	// Remove the dead node.
	if out := via(survivors...).ok("cluster", "remove", dead.name); out != "removed node "+dead.name+"\n" {
		t.Errorf("cluster remove: %q", out)
	}
	via(survivors...).fails(1, "tenantkv: member not found: "+dead.name, "cluster", "remove", dead.name)
	st = via(survivors...).status()
	want := []string{survivors[0].name, survivors[1].name}
	if got := memberIDs(st); !slices.Equal(got, want) {
		t.Errorf("members after cluster remove %s: %v, want %v", dead.name, got, want)
	}
	via(survivors[1]).ok("--tenant", "acme", "put", "two", "nodes")
	if out := via(survivors[0]).ok("--tenant", "acme", "get", "two"); out != "nodes\n" {
		t.Errorf("get after remove: %q", out)
	}
}
