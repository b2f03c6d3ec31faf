package main

// End-to-end tests of tenants on a three-node cluster of real processes:
// states, revoked tokens and exact quotas checked through every node's
// client address, usage identical on every replica after a leader change
// and after a restart from a snapshot, and a noisy neighbour. Assertions go
// through the binary's client commands; the Go client only adds load and
// opens the connections the CLI cannot keep (stale reads on one node).
// Helpers of their own are at the end of this file; the shared ones are in
// e2e_helpers_test.go and e2e_tenant_test.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
)

// TestE2EClusterTenants checks, through each of three nodes in turn, that
// tenant states, token revocation and storage quotas hold whichever node a
// client talks to, and that a tenant flooding far above its rate limit does
// not cost another tenant a single request.
func TestE2EClusterTenants(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tc := startTrio(t)

	t.Run("states", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		op.ok("tenant", "create", "st")
		op.ok("--tenant", "st", "put", "k", "v")
		tok := strings.TrimSpace(op.ok("tenant", "token", "st"))
		leader, followers := tc.roles(t)

		// read-only, set through a follower: on every node reads work and
		// every kind of write is refused, with the operator token and with
		// the tenant's own.
		if out := tc.cli(t, followers[0]).ok("tenant", "set", "st", "--state", "read-only"); !strings.HasPrefix(out, "updated tenant st: state suspended,") {
			t.Errorf("tenant set --state read-only: %q", out)
		}
		const readOnly = "tenantkv: tenant is read-only"
		for _, n := range tc.nodes {
			c := tc.cli(t, n)
			if out := c.ok("--tenant", "st", "get", "k"); out != "v\n" {
				t.Errorf("read-only tenant, get through %s: %q", n.name, out)
			}
			if out := c.ok("--tenant", "st", "scan"); out != "k\tv\n" {
				t.Errorf("read-only tenant, scan through %s: %q", n.name, out)
			}
			if r := c.as(tok, "get", "k"); r.code != 0 || r.stdout != "v\n" {
				t.Errorf("read-only tenant, get with its token through %s: %v", n.name, r)
			}
			refused(t, c.run("", "--tenant", "st", "put", "k", "w"), n, readOnly)
			refused(t, c.run("", "--tenant", "st", "put", "new", "w"), n, readOnly)
			refused(t, c.run("", "--tenant", "st", "del", "k"), n, readOnly)
			refusedTxn(t, c.run("set k w\n", "--tenant", "st", "txn"), n, readOnly)
			refused(t, c.as(tok, "put", "k", "w"), n, readOnly)
		}

		// locked, set through the other follower: everything is refused on
		// every node, reads and watches too.
		if out := tc.cli(t, followers[1]).ok("tenant", "set", "st", "--state", "locked"); !strings.HasPrefix(out, "updated tenant st: state locked,") {
			t.Errorf("tenant set --state locked: %q", out)
		}
		const locked = "tenantkv: tenant is locked"
		for _, n := range tc.nodes {
			c := tc.cli(t, n)
			refused(t, c.run("", "--tenant", "st", "get", "k"), n, locked)
			refused(t, c.run("", "--tenant", "st", "scan"), n, locked)
			refused(t, c.run("", "--tenant", "st", "put", "k", "w"), n, locked)
			refused(t, c.run("", "--tenant", "st", "del", "k"), n, locked)
			refusedTxn(t, c.run("get k\n", "--tenant", "st", "txn"), n, locked)
			refused(t, c.run("", "--tenant", "st", "--timeout", "20s", "watch", "k"), n, locked)
			refused(t, c.as(tok, "get", "k"), n, locked)
			refused(t, c.as(tok, "put", "k", "w"), n, locked)
		}

		// active again, set through the leader: reads and writes work on
		// every node, and nothing was written while they were refused.
		tc.cli(t, leader).ok("tenant", "set", "st", "--state", "active")
		for _, n := range tc.nodes {
			c := tc.cli(t, n)
			c.ok("--tenant", "st", "put", "from-"+n.name, "yes")
			if r := c.as(tok, "put", "token-"+n.name, "yes"); r.code != 0 {
				t.Errorf("active again, put with the token through %s: %v", n.name, r)
			}
		}
		want := "from-n1\tyes\nfrom-n2\tyes\nfrom-n3\tyes\nk\tv\ntoken-n1\tyes\ntoken-n2\tyes\ntoken-n3\tyes\n"
		for _, n := range tc.nodes {
			if out := tc.cli(t, n).ok("--tenant", "st", "scan"); out != want {
				t.Errorf("scan through %s after reactivation:\n%q\nwant\n%q", n.name, out, want)
			}
		}
	})

	t.Run("revoked token", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		op.ok("tenant", "create", "rv")
		op.ok("--tenant", "rv", "put", "k", "v")
		var made newTokenJSON
		if err := json.Unmarshal([]byte(op.ok("tenant", "token", "rv", "--json")), &made); err != nil {
			t.Fatal(err)
		}
		keep := strings.TrimSpace(op.ok("tenant", "token", "rv"))
		for _, n := range tc.nodes {
			if r := tc.cli(t, n).as(made.Token, "get", "k"); r.code != 0 || r.stdout != "v\n" {
				t.Fatalf("token through %s before the revocation: %v", n.name, r)
			}
		}
		// Connections opened before the revocation, one on each node,
		// reading that node's own state (stale reads are served where they
		// arrive): revocation must reach open connections too.
		stale := map[string]*client.Tenant{}
		for _, n := range tc.nodes {
			db := openTokenDB(t, made.Token, n.addr)
			stale[n.name] = db.Tenant("").WithStaleReads()
			eventually(t, fmt.Sprintf("a stale read of rv/k on %s", n.name), failoverTimeout, func() error {
				_, err := stale[n.name].Get(t.Context(), []byte("k"))
				return err
			})
		}

		_, followers := tc.roles(t)
		if out := tc.cli(t, followers[0]).ok("tenant", "revoke", made.ID); out != "revoked token "+made.ID+"\n" {
			t.Errorf("tenant revoke %s: %q", made.ID, out)
		}
		// Reads and writes through every node are refused at once: no
		// retry, no wait (a follower that has not applied the revocation
		// yet sends them to the leader, which refuses the token).
		const denied = "tenantkv: permission denied: invalid token"
		for _, n := range tc.nodes {
			c := tc.cli(t, n)
			for _, args := range [][]string{{"get", "k"}, {"scan"}, {"put", "k", "w"}, {"del", "k"}} {
				refused(t, c.as(made.Token, args...), n, denied)
			}
		}
		// What a node answers from its own state (a tenant's own `tenant
		// show`, stale reads on a connection opened before the revocation)
		// is refused as soon as that node has applied the revocation.
		for _, n := range tc.nodes {
			eventually(t, fmt.Sprintf("%s refusing the revoked token on an open connection", n.name), 10*time.Second, func() error {
				_, err := stale[n.name].Get(t.Context(), []byte("k"))
				if errors.Is(err, client.ErrPermissionDenied) {
					return nil
				}
				return fmt.Errorf("stale get with the revoked token: %v", err)
			})
			refused(t, tc.cli(t, n).as(made.Token, "tenant", "show", "rv"), n, denied)
		}
		// Only that token: the tenant's other token works everywhere.
		for _, n := range tc.nodes {
			if r := tc.cli(t, n).as(keep, "get", "k"); r.code != 0 || r.stdout != "v\n" {
				t.Errorf("the tenant's other token through %s: %v", n.name, r)
			}
		}
		if out := op.ok("tenant", "tokens", "rv"); strings.Contains(out, made.ID) {
			t.Errorf("tenant tokens still lists the revoked token:\n%s", out)
		}
		op.fails(1, "tenantkv: token not found", "tenant", "revoke", made.ID)
	})

	t.Run("quota", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		_, followers := tc.roles(t)
		tc.cli(t, followers[0]).ok("tenant", "create", "qt", "--max-keys", "3", "--max-bytes", "30")
		tok := strings.TrimSpace(op.ok("tenant", "token", "qt"))
		via := func(i int) *clusterCLI { return tc.cli(t, tc.nodes[i%len(tc.nodes)]) }
		// Logical bytes are len(key) + len(value).
		via(0).ok("--tenant", "qt", "put", "k1", "12345678") // 10 bytes, 1 key
		via(1).ok("--tenant", "qt", "put", "k2", "12345678") // 20, 2
		via(2).ok("--tenant", "qt", "put", "k3", "1234567")  // 29, 3
		via(0).ok("--tenant", "qt", "put", "k3", "12345678") // 30: exactly the byte limit
		// A write that would cross a limit is refused through every node,
		// and changes nothing.
		for i, n := range tc.nodes {
			c := tc.cli(t, n)
			refused(t, c.run("", "--tenant", "qt", "put", "k3", "123456789"), n,
				`tenantkv: quota exceeded: tenant "qt" would store 31 bytes, limit 30`)
			refused(t, c.run("", "--tenant", "qt", "put", "x", ""), n,
				`tenantkv: quota exceeded: tenant "qt" would store 31 bytes, limit 30`)
			if i == 0 {
				// A transaction that crosses is refused as a whole: its first
				// write, which alone would fit, is not applied either.
				refusedTxn(t, c.run("set k1 1234567\nset k2 123456789\nset k4 1\n", "--tenant", "qt", "txn"), n,
					"tenantkv: quota exceeded")
			}
		}
		checkScan := func(want string) {
			t.Helper()
			for _, n := range tc.nodes {
				if out := tc.cli(t, n).ok("--tenant", "qt", "scan"); out != want {
					t.Errorf("scan through %s:\n%q\nwant\n%q", n.name, out, want)
				}
			}
		}
		checkScan("k1\t12345678\nk2\t12345678\nk3\t12345678\n")
		// A smaller write that fits is accepted: 29 bytes.
		via(1).ok("--tenant", "qt", "put", "k2", "1234567")
		// One byte of room, but no key of room: refused by the key limit.
		refused(t, via(2).run("", "--tenant", "qt", "put", "x", ""), tc.nodes[2],
			`tenantkv: quota exceeded: tenant "qt" would store 4 keys, limit 3`)
		// A delete frees room, through any node: then a new key one byte
		// too large is refused, and one that fills the room exactly is
		// accepted.
		via(2).ok("--tenant", "qt", "del", "k1") // 19 bytes, 2 keys
		refused(t, via(0).run("", "--tenant", "qt", "put", "x", "12345678901"), tc.nodes[0],
			`tenantkv: quota exceeded: tenant "qt" would store 31 bytes, limit 30`)
		via(1).ok("--tenant", "qt", "put", "x", "1234567890") // 30, 3
		checkScan("k2\t1234567\nk3\t12345678\nx\t1234567890\n")
		// Every replica counts exactly that: 3 keys and 30 bytes.
		tc.waitUsage(t, tc.nodes, map[string]tenantUsage{"qt": {token: tok, keys: 3, bytes: 30}})
		tj := op.showJSON("qt")
		if tj.Headroom.Keys == nil || *tj.Headroom.Keys != 0 || tj.Headroom.LogicalBytes == nil || *tj.Headroom.LogicalBytes != 0 {
			t.Errorf("headroom: keys %v, bytes %v; want 0 and 0", ptrString(tj.Headroom.Keys), ptrString(tj.Headroom.LogicalBytes))
		}
	})

	t.Run("noisy neighbour", func(t *testing.T) {
		op := tc.cli(t, tc.nodes...)
		op.ok("tenant", "create", "noisy", "--ops-per-sec", "5", "--burst", "5")
		op.ok("tenant", "create", "calm")
		noisyTok := strings.TrimSpace(op.ok("tenant", "token", "noisy"))
		calmTok := strings.TrimSpace(op.ok("tenant", "token", "calm"))
		eps := tc.addrs()

		// The flood: 32 goroutines sending requests back to back, each
		// with a client of its own, as 32 instances of an application
		// would. (A client paces a tenant to its limit once refused, so
		// one shared client would only send about 5 a second; 32 send
		// about 32 times the limit, more before they are first refused.)
		// It goes on until the nodes have refused floodTarget requests,
		// and at least as long as the other tenant works.
		const floodTarget = 300
		var limited, accepted atomic.Int64
		var floodErrs sync.Map // error text -> *atomic.Int64, errors other than rate limited
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		defer func() {
			stop()
			wg.Wait()
		}()
		for i := range 32 {
			tn := openTokenDB(t, noisyTok, eps...).Tenant("")
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Appendf(nil, "flood/%d", i)
				for n := 0; ctx.Err() == nil; n++ {
					var err error
					if n%2 == 0 {
						err = tn.Set(ctx, key, []byte("x"))
					} else {
						_, err = tn.Get(ctx, key)
					}
					switch {
					case err == nil, errors.Is(err, client.ErrNotFound):
						accepted.Add(1)
					case errors.Is(err, client.ErrRateLimited):
						limited.Add(1)
					case ctx.Err() != nil:
					default:
						v, _ := floodErrs.LoadOrStore(err.Error(), new(atomic.Int64))
						v.(*atomic.Int64).Add(1)
					}
				}
			}()
		}
		eventually(t, "the flooding tenant being rate limited", failoverTimeout, func() error {
			if limited.Load() == 0 {
				return errors.New("no request refused yet")
			}
			return nil
		})

		// Meanwhile the other tenant works normally, through the Go client
		// and the CLI on every node: every request succeeds.
		calm := openTokenDB(t, calmTok, eps...).Tenant("")
		deadline := time.Now().Add(2 * failoverTimeout)
		n := 0
		for ; n < 60 || limited.Load() < floodTarget; n++ {
			if time.Now().After(deadline) {
				t.Fatalf("the nodes refused only %d flood requests in %v", limited.Load(), 2*failoverTimeout)
			}
			// A deadline only so that a request that hangs fails the test
			// with its name: no time is asserted.
			ctx, cancel := context.WithTimeout(t.Context(), failoverTimeout)
			k, v := fmt.Appendf(nil, "k%05d", n), fmt.Appendf(nil, "value %d", n)
			if err := calm.Set(ctx, k, v); err != nil {
				t.Errorf("calm tenant, set %s during the flood: %v", k, err)
			}
			if got, err := calm.Get(ctx, k); err != nil || string(got) != string(v) {
				t.Errorf("calm tenant, get %s during the flood: %q, %v", k, got, err)
			}
			cancel()
		}
		count := 0
		for _, err := range calm.Range(t.Context(), client.KeyRange{}, nil) {
			if err != nil {
				t.Errorf("calm tenant, range during the flood: %v", err)
				break
			}
			count++
		}
		if count != n {
			t.Errorf("calm tenant, range during the flood: %d pairs, want %d", count, n)
		}
		for _, nd := range tc.nodes {
			c := tc.cli(t, nd)
			if r := c.as(calmTok, "put", "cli-"+nd.name, "ok"); r.code != 0 || r.stderr != "" {
				t.Errorf("calm tenant, CLI put through %s during the flood: %v", nd.name, r)
			}
			if r := c.as(calmTok, "get", "cli-"+nd.name); r.code != 0 || r.stdout != "ok\n" {
				t.Errorf("calm tenant, CLI get through %s during the flood: %v", nd.name, r)
			}
		}
		stop()
		wg.Wait()

		t.Logf("flood: %d requests accepted, %d rate limited, while the calm tenant made %d puts and %d gets",
			accepted.Load(), limited.Load(), n+len(tc.nodes), n+len(tc.nodes))
		floodErrs.Range(func(k, v any) bool {
			t.Errorf("the flooding tenant got %d× an error other than rate limited: %s", v.(*atomic.Int64).Load(), k)
			return true
		})
		// The leader, which served every request of both (none was a stale
		// read), counted the same: the calm tenant was never throttled and
		// had no error; the flooder was throttled at least as often as it
		// was told so.
		calmInfo, noisyInfo := op.showJSON("calm"), op.showJSON("noisy")
		if calmInfo.Usage.Throttled != 0 || calmInfo.Usage.Errors != 0 {
			t.Errorf("calm tenant's usage after the flood: %+v; want nothing throttled, no errors", calmInfo.Usage)
		}
		if noisyInfo.Usage.Throttled < uint64(limited.Load()) {
			t.Errorf("flooding tenant's usage: %d throttled; the flood was refused %d times", noisyInfo.Usage.Throttled, limited.Load())
		}
	})
}

// TestE2EClusterTenantUsage checks that every replica counts a tenant's
// keys and logical bytes exactly alike after a leader is killed and comes
// back, after a follower that was down while snapshots were taken catches
// up, and after a node restarts from its own snapshot.
func TestE2EClusterTenantUsage(t *testing.T) {
	skipShort(t)
	t.Parallel()
	// Snapshots every 64 entries, checked every 100-200ms.
	tc := startTrio(t, "--snapshot-threshold", "64", "--snapshot-interval", "100ms", "--trailing-logs", "16")
	op := tc.cli(t, tc.nodes...)
	op.ok("tenant", "create", "alpha")
	op.ok("tenant", "create", "beta", "--max-keys", "1000")
	m := &usageModel{t: t, tokens: map[string]string{}, kvs: map[string]map[string]string{}}
	for _, name := range []string{"alpha", "beta"} {
		m.tokens[name] = strings.TrimSpace(op.ok("tenant", "token", name))
		m.kvs[name] = map[string]string{}
	}
	db := op.openClient()

	// Sets of varied sizes, overwrites longer and shorter, deletes of
	// present and missing keys, a range delete and a batch.
	for i := range 120 {
		m.set(db, "alpha", fmt.Sprintf("a/%03d", i), strings.Repeat("v", i%37))
	}
	for i := range 30 {
		m.set(db, "beta", fmt.Sprintf("b/%03d", i), strings.Repeat("w", 100+i))
	}
	for i := 0; i < 120; i += 6 {
		m.set(db, "alpha", fmt.Sprintf("a/%03d", i), strings.Repeat("o", (i*7)%53))
	}
	for i := 0; i < 120; i += 11 {
		m.del(db, "alpha", fmt.Sprintf("a/%03d", i))
	}
	m.del(db, "alpha", "missing")
	m.delRange(db, "alpha", "a/050", "a/070")
	m.batch(db, "beta", map[string]string{"b/100": "x", "b/101": "yy", "b/000": "z"}, []string{"b/001", "b/002", "nope"})
	tc.waitUsage(t, tc.nodes, m.want())

	// Leader change: kill the leader, write through the survivors once
	// they have elected another, bring the old leader back.
	leader, _ := tc.roles(t)
	leader.kill()
	survivors := slices.DeleteFunc(slices.Clone(tc.nodes), func(n *nodeProc) bool { return n == leader })
	newLeader := tc.waitLeader(t, survivors, leader.id)
	t.Logf("killed leader %s; %s leads", leader.name, newLeader)
	sdb := tc.cli(t, survivors...).openClient()
	for i := range 40 {
		m.set(sdb, "alpha", fmt.Sprintf("c/%03d", i), strings.Repeat("n", 3*i))
	}
	for i := range 10 {
		m.del(sdb, "beta", fmt.Sprintf("b/%03d", 10+i))
	}
	tc.waitUsage(t, survivors, m.want())
	tc.restart(t, leader)
	tc.waitUsage(t, tc.nodes, m.want())

	// Snapshots: stop follower g; the leader and follower f go on and
	// each take a snapshot past what g has, keeping only 16 log entries
	// after it (--trailing-logs); g comes back, too far behind for the
	// log, installs the leader's snapshot and catches up.
	leader, followers := tc.roles(t)
	f, g := followers[0], followers[1]
	g.kill()
	from := tc.appliedIndex(t, f)
	fdb := tc.cli(t, leader, f).openClient()
	for i := range 100 {
		m.set(fdb, "alpha", fmt.Sprintf("d/%03d", i), strings.Repeat("s", i))
	}
	eventually(t, fmt.Sprintf("snapshots on %s and %s past index %d", leader.name, f.name, from), failoverTimeout, func() error {
		for _, n := range []*nodeProc{leader, f} {
			if idx := newestSnapshot(t, n.dataDir); idx <= from {
				return fmt.Errorf("%s: newest snapshot at index %d", n.name, idx)
			}
		}
		return nil
	})
	t.Logf("snapshots past index %d while %s was down: %s at %d, %s at %d",
		from, g.name, leader.name, newestSnapshot(t, leader.dataDir), f.name, newestSnapshot(t, f.dataDir))
	g = tc.restart(t, g)
	tc.waitUsage(t, tc.nodes, m.want())
	if line := logLine(g.stderr.String(), "Installed remote snapshot"); line == "" {
		t.Errorf("%s caught up without installing the leader's snapshot:\n%s", g.name, lastLines(g.stderr.String(), 20))
	}

	// Restart from a snapshot: f loses its store (kill -9, store
	// directory removed, raft log and snapshots kept); on start it
	// restores its own newest snapshot, then replays the log entries
	// after it. (A node whose store is intact restores nothing: its store
	// is durable and already holds the snapshot's state.)
	for i := range 10 {
		m.set(fdb, "beta", fmt.Sprintf("e/%03d", i), strings.Repeat("t", 7*i))
	}
	m.del(fdb, "alpha", "d/050")
	snap := newestSnapshot(t, f.dataDir)
	f.kill()
	if err := os.RemoveAll(filepath.Join(f.dataDir, "store")); err != nil {
		t.Fatal(err)
	}
	f = tc.restart(t, f)
	if line := logLine(f.stderr.String(), "restoring newest snapshot into the store on start"); line == "" {
		t.Errorf("%s did not restore its snapshot (index %d) on start; its log:\n%s", f.name, snap, tail(f.stderr.String(), 3000))
	} else {
		t.Logf("%s restarted without its store (newest snapshot at index %d): %s", f.name, snap, line)
	}
	tc.waitUsage(t, tc.nodes, m.want())
	for _, n := range tc.nodes {
		for name, kvs := range m.kvs {
			tc.checkData(t, n, m.tokens[name], kvs)
		}
	}
}

// trio is a three-node cluster of `tenantkv serve` processes, n1
// bootstrapped, n2 and n3 joined to it.
type trio struct {
	nodes     []*nodeProc // n1, n2, n3; restart replaces an entry
	tokenFile string      // the operator token
}

func startTrio(t *testing.T, extra ...string) *trio {
	t.Helper()
	dir := t.TempDir()
	// waitUsage reads the per-tenant series of /metrics.
	extra = append([]string{"--metrics-tenant-labels"}, extra...)
	n1 := startNode(t, filepath.Join(dir, "n1"), "n1", extra...)
	tc := &trio{tokenFile: filepath.Join(n1.dataDir, "operator.token")}
	tc.nodes = append(tc.nodes, n1)
	for _, id := range []string{"n2", "n3"} {
		args := append([]string{"--join", n1.addr, "--token-file", tc.tokenFile}, extra...)
		tc.nodes = append(tc.nodes, startNode(t, filepath.Join(dir, id), id, args...))
	}
	return tc
}

func (tc *trio) addrs() []string {
	var a []string
	for _, n := range tc.nodes {
		a = append(a, n.addr)
	}
	return a
}

// cli returns a CLI with the operator token on the client addresses of ns.
func (tc *trio) cli(t *testing.T, ns ...*nodeProc) *clusterCLI {
	c := &clusterCLI{t: t, tokenFile: tc.tokenFile}
	for _, n := range ns {
		c.endpoints = append(c.endpoints, n.addr)
	}
	return c
}

// roles returns the leader and the two followers, once the nodes agree on
// a leader.
func (tc *trio) roles(t *testing.T) (leader *nodeProc, followers []*nodeProc) {
	t.Helper()
	id := tc.waitLeader(t, tc.nodes, "")
	for _, n := range tc.nodes {
		if n.id == id {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	if leader == nil || len(followers) != 2 {
		t.Fatalf("leader %q is not one of the nodes", id)
	}
	return leader, followers
}

// waitLeader polls every node of ns until all name the same leader, not
// notID, among ns, and returns its ID.
func (tc *trio) waitLeader(t *testing.T, ns []*nodeProc, notID string) string {
	t.Helper()
	tok, err := os.ReadFile(tc.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var leader string
	eventually(t, "a leader all nodes agree on", failoverTimeout, func() error {
		leader = ""
		for _, n := range ns {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			st, err := nodeStatus(ctx, n.addr, strings.TrimSpace(string(tok)))
			cancel()
			switch {
			case err != nil:
				return fmt.Errorf("%s: %v", n.name, err)
			case st.NodeID != n.id:
				return fmt.Errorf("asked %s, %s answered", n.name, st.NodeID)
			case st.LeaderID == "" || st.LeaderID == notID:
				return fmt.Errorf("%s names leader %q", n.name, st.LeaderID)
			case leader != "" && st.LeaderID != leader:
				return fmt.Errorf("%s names leader %s, another node %s", n.name, st.LeaderID, leader)
			case !slices.ContainsFunc(ns, func(m *nodeProc) bool { return m.id == st.LeaderID }):
				return fmt.Errorf("%s names leader %s, not a running node", n.name, st.LeaderID)
			}
			leader = st.LeaderID
		}
		return nil
	})
	return leader
}

// nodeStatus asks the node at addr, and only it, for the cluster status.
func nodeStatus(ctx context.Context, addr, token string) (*client.ClusterStatus, error) {
	db, err := client.Open(ctx, []string{addr}, &client.Options{Token: token})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.ClusterStatus(ctx)
}

// restart starts a stopped node again with the same command line (its
// data directory and addresses), waits until it is ready and puts the new
// process in its place.
func (tc *trio) restart(t *testing.T, old *nodeProc) *nodeProc {
	t.Helper()
	old.kill()
	line := strings.TrimPrefix(old.cmd.Args[len(old.cmd.Args)-1], "exec ")
	for attempt := 1; ; attempt++ {
		p := launch(t, old.name, old.cmd.Dir, old.cmd.Env, line)
		p.dataDir = old.dataDir
		err := p.waitReady(t.Context())
		if err == nil {
			if p.id != old.id || p.addr != old.addr {
				t.Fatalf("restarted %s is node %s on %s, was %s on %s", old.name, p.id, p.addr, old.id, old.addr)
			}
			for i, n := range tc.nodes {
				if n == old {
					tc.nodes[i] = p
				}
			}
			return p
		}
		// Its addresses were free when it stopped, but another process may
		// have bound one since. The node must keep its addresses (the
		// others know its raft address), so all it can do is try again.
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			t.Fatalf("restart %s on its own addresses: %v", old.name, err)
		}
		t.Logf("restart %s: an address is in use, retrying", old.name)
	}
}

// tenantUsage is a tenant's expected storage usage, and a token of the
// tenant with which each node is asked for its own view.
type tenantUsage struct {
	token       string
	keys, bytes uint64
}

// waitUsage polls the nodes on until each reports, from its own state, the
// wanted usage of each tenant: in `tenant show NAME --json` run with the
// tenant's token against that node alone (a tenant token's show is
// answered from the local state machine, not forwarded to the leader), and
// in the tenantkv_tenant_keys and tenantkv_tenant_logical_bytes gauges of
// that node's /metrics.
func (tc *trio) waitUsage(t *testing.T, on []*nodeProc, want map[string]tenantUsage) {
	t.Helper()
	names := slices.Sorted(maps.Keys(want))
	// A stale read on each node makes it count a request of the tenant,
	// so that its /metrics has the tenant's gauges.
	for _, n := range on {
		for _, name := range names {
			db := openTokenDB(t, want[name].token, n.addr)
			eventually(t, fmt.Sprintf("a stale read of %s on %s", name, n.name), failoverTimeout, func() error {
				_, err := db.Tenant("").WithStaleReads().Get(t.Context(), []byte("any"))
				if err == nil || errors.Is(err, client.ErrNotFound) {
					return nil
				}
				return err
			})
			db.Close()
		}
	}
	eventually(t, "the same usage on every node", failoverTimeout, func() error {
		var diffs []string
		for _, n := range on {
			metrics, err := scrapeMetrics(t.Context(), n.httpAddr)
			if err != nil {
				return fmt.Errorf("%s: %v", n.name, err)
			}
			for _, name := range names {
				w := want[name]
				r := tkv(t, "", []string{"TENANTKV_ENDPOINTS=" + n.addr, "TENANTKV_TOKEN=" + w.token}, "", "tenant", "show", name, "--json")
				var tj tenantJSON
				if r.code != 0 {
					diffs = append(diffs, fmt.Sprintf("%s: tenant show %s: %v", n.name, name, r))
				} else if err := json.Unmarshal([]byte(r.stdout), &tj); err != nil {
					return fmt.Errorf("%s: tenant show %s --json: %v: %q", n.name, name, err, r.stdout)
				} else if tj.Usage.Keys != w.keys || tj.Usage.LogicalBytes != w.bytes {
					diffs = append(diffs, fmt.Sprintf("%s: tenant show %s: %d keys, %d bytes", n.name, name, tj.Usage.Keys, tj.Usage.LogicalBytes))
				}
				mk, okk := metrics[`tenantkv_tenant_keys{tenant="`+name+`"}`]
				mb, okb := metrics[`tenantkv_tenant_logical_bytes{tenant="`+name+`"}`]
				if !okk || !okb || mk != float64(w.keys) || mb != float64(w.bytes) {
					diffs = append(diffs, fmt.Sprintf("%s: /metrics of %s: keys %v (present %v), logical bytes %v (present %v)", n.name, name, mk, okk, mb, okb))
				}
			}
		}
		if len(diffs) > 0 {
			return fmt.Errorf("want %s; got\n\t%s", formatWant(want), strings.Join(diffs, "\n\t"))
		}
		return nil
	})
}

func formatWant(want map[string]tenantUsage) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		parts = append(parts, fmt.Sprintf("%s: %d keys, %d bytes", name, want[name].keys, want[name].bytes))
	}
	return strings.Join(parts, "; ")
}

// checkData checks, with stale reads served by node n alone, that the
// token's tenant holds exactly kvs there.
func (tc *trio) checkData(t *testing.T, n *nodeProc, token string, kvs map[string]string) {
	t.Helper()
	db := openTokenDB(t, token, n.addr)
	got := map[string]string{}
	for kv, err := range db.Tenant("").Range(t.Context(), client.KeyRange{}, &client.RangeOptions{Stale: true}) {
		if err != nil {
			t.Fatalf("range on %s: %v", n.name, err)
		}
		got[string(kv.Key)] = string(kv.Value)
	}
	if len(got) != len(kvs) {
		t.Errorf("%s holds %d keys of the tenant, want %d", n.name, len(got), len(kvs))
	}
	for k, v := range kvs {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: key %q = %q (present %v), want %q", n.name, k, g, ok, v)
		}
	}
}

// appliedIndex is the node's tenantkv_applied_index from its /metrics.
func (tc *trio) appliedIndex(t *testing.T, n *nodeProc) uint64 {
	t.Helper()
	m, err := scrapeMetrics(t.Context(), n.httpAddr)
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.name, err)
	}
	v, ok := m["tenantkv_applied_index"]
	if !ok {
		t.Fatalf("%s /metrics has no tenantkv_applied_index", n.name)
	}
	return uint64(v)
}

// newestSnapshot returns the index of the newest complete raft snapshot in
// a node's data directory, 0 if there is none.
func newestSnapshot(t *testing.T, dataDir string) uint64 {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var newest uint64
	for _, path := range metas {
		if strings.HasSuffix(filepath.Dir(path), ".tmp") {
			continue // being written
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue // removed by a newer snapshot meanwhile
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(b, &meta); err != nil {
			continue
		}
		newest = max(newest, meta.Index)
	}
	return newest
}

// scrapeMetrics reads a node's /metrics: each sample by its series, as
// written ("name{label=\"value\"}").
func scrapeMetrics(ctx context.Context, httpAddr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// openTokenDB opens a Go client with token on endpoints, closed when the
// test ends.
func openTokenDB(t *testing.T, token string, endpoints ...string) *client.DB {
	t.Helper()
	var db *client.DB
	eventually(t, fmt.Sprintf("a connection to %v", endpoints), failoverTimeout, func() error {
		var err error
		db, err = client.Open(t.Context(), endpoints, &client.Options{Token: token})
		return err
	})
	t.Cleanup(func() { db.Close() })
	return db
}

// eventually calls f until it returns nil, failing the test with f's last
// error when within has passed.
func eventually(t *testing.T, what string, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still failing after %v: %v", what, within, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		case <-tick.C:
		}
	}
}

// refused checks that a CLI invocation through node n failed with exit
// status 1 and exactly the one line msg on stderr.
func refused(t *testing.T, r result, n *nodeProc, msg string) {
	t.Helper()
	if r.code != 1 || r.stdout != "" || r.stderr != msg+"\n" {
		t.Errorf("through %s: %v; want exit 1 and stderr %q", n.name, r, msg+"\n")
	}
}

// refusedTxn checks that a `txn` through node n failed with exit status 1
// and one line on stderr that gives the reason msg. The line may say more
// (which line of the script failed, the tenant's name).
func refusedTxn(t *testing.T, r result, n *nodeProc, msg string) {
	t.Helper()
	reason := strings.TrimPrefix(msg, "tenantkv: ")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "tenantkv: ") || !strings.Contains(r.stderr, reason) ||
		strings.Count(r.stderr, "\n") != 1 || strings.Count(r.stderr, "tenantkv: ") != 1 {
		t.Errorf("txn through %s: %v; want exit 1 and one line giving %q", n.name, r, reason)
	}
}

// logLine returns the first line of log that contains s, or "".
func logLine(log, s string) string {
	for l := range strings.Lines(log) {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func ptrString(p *int64) string {
	if p == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*p, 10)
}

// usageModel applies writes through the Go client, retrying each until it
// succeeds (a leader may be changing), and keeps what each tenant must then
// hold. Every write is idempotent, so a retry after an unknown outcome
// leaves the same state.
type usageModel struct {
	t      *testing.T
	tokens map[string]string
	kvs    map[string]map[string]string
}

func (m *usageModel) do(what string, f func(ctx context.Context) error) {
	m.t.Helper()
	eventually(m.t, what, failoverTimeout, func() error {
		ctx, cancel := context.WithTimeout(m.t.Context(), 5*time.Second)
		defer cancel()
		return f(ctx)
	})
}

func (m *usageModel) set(db *client.DB, tenant, k, v string) {
	m.t.Helper()
	m.do("set "+k, func(ctx context.Context) error { return db.Tenant(tenant).Set(ctx, []byte(k), []byte(v)) })
	m.kvs[tenant][k] = v
}

func (m *usageModel) del(db *client.DB, tenant, k string) {
	m.t.Helper()
	m.do("delete "+k, func(ctx context.Context) error { return db.Tenant(tenant).Delete(ctx, []byte(k)) })
	delete(m.kvs[tenant], k)
}

func (m *usageModel) delRange(db *client.DB, tenant, begin, end string) {
	m.t.Helper()
	m.do("delete range "+begin+" "+end, func(ctx context.Context) error {
		return db.Tenant(tenant).DeleteRange(ctx, client.KeyRange{Begin: []byte(begin), End: []byte(end)})
	})
	for k := range m.kvs[tenant] {
		if k >= begin && k < end {
			delete(m.kvs[tenant], k)
		}
	}
}

func (m *usageModel) batch(db *client.DB, tenant string, sets map[string]string, dels []string) {
	m.t.Helper()
	m.do("batch", func(ctx context.Context) error {
		b := db.Tenant(tenant).NewBatch()
		for k, v := range sets {
			b.Set([]byte(k), []byte(v))
		}
		for _, k := range dels {
			b.Delete([]byte(k))
		}
		return b.Commit(ctx)
	})
	for k, v := range sets {
		m.kvs[tenant][k] = v
	}
	for _, k := range dels {
		delete(m.kvs[tenant], k)
	}
}

// want is every tenant's usage as the model computes it: its keys, and
// len(key) + len(value) summed over them.
func (m *usageModel) want() map[string]tenantUsage {
	out := map[string]tenantUsage{}
	for name, kvs := range m.kvs {
		u := tenantUsage{token: m.tokens[name], keys: uint64(len(kvs))}
		for k, v := range kvs {
			u.bytes += uint64(len(k) + len(v))
		}
		out[name] = u
	}
	return out
}

// lastLines returns the last n lines of log.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
