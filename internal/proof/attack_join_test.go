package proof

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// The attack of issue 18, item 6 (safe joins): two nodes join, one after the
// other, a node that holds tens of megabytes (TENANTKV_JOIN_ATTACK_MB, a few
// hundred for the full size), while a victim tenant reads and writes. A
// joiner that counted as a voter before it had installed the leader's
// snapshot took the quorum away until it had: every tenant's writes waited.

// Bounds of the attack. Without the race detector they are the issue's: a
// victim p99 under 100 ms and no stall near a second. The race detector
// makes every node several times slower (they all run in this one process,
// on a shared two-core machine), the snapshot restore most of all, so under
// it the bounds are looser; they are still far below what a join did
// before (19.9 s without a single write at 32 MB, p99 19.3 s).
var joinP99Bound, joinStallBound = func() (time.Duration, time.Duration) {
	if raceEnabled {
		return time.Second, 2 * time.Second
	}
	return 100 * time.Millisecond, time.Second
}()

// joinAttackMB is the size of the data the first node holds before the
// joins: TENANTKV_JOIN_ATTACK_MB, default 32 (16 under the race detector).
func joinAttackMB(t *testing.T) int {
	if v := os.Getenv("TENANTKV_JOIN_ATTACK_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("TENANTKV_JOIN_ATTACK_MB=%q: want a positive number of megabytes", v)
		}
		return n
	}
	if raceEnabled {
		return 16
	}
	return 32
}

// Raft timings of the attack: raft's defaults (heartbeat and election
// timeouts 1s, leader lease 500ms), which are what an operator runs; the
// test harness's 200 ms timings make a leader step down whenever one
// heartbeat answer is late on a loaded two-core machine, which is a
// different problem. The fill takes no snapshot; the restart that follows
// takes one soon and keeps few entries after it, so that a joiner must
// install it; the last restart takes none, so that no snapshot of the
// whole store competes with the victim while the nodes join.
var (
	joinNoSnapshots  = server.RaftTuning{SnapshotInterval: time.Hour, SnapshotThreshold: 1 << 40, TrailingLogs: 8}
	joinSnapshotSoon = server.RaftTuning{SnapshotInterval: 100 * time.Millisecond, SnapshotThreshold: 4, TrailingLogs: 8}
)

// addJoiner adds a node to c that joins the first node when started; it is
// not started.
func (c *cluster) addJoiner(t *testing.T) *testNode {
	t.Helper()
	prefix := strings.TrimSuffix(c.nodes[0].id, "-n1")
	nd := &testNode{idx: len(c.nodes), id: fmt.Sprintf("%s-n%d", prefix, len(c.nodes)+1),
		dir: filepath.Join(c.root, fmt.Sprintf("n%d", len(c.nodes)+1))}
	p, err := c.net.Listen(nd.id)
	if err != nil {
		t.Fatal(err)
	}
	nd.proxy = p
	c.nodes = append(c.nodes, nd)
	// Stop the node before its directory is removed (cleanups run last
	// registered first).
	t.Cleanup(func() { c.kill(nd) })
	return nd
}

// fillTenant writes mb megabytes of incompressible values into tenant, in
// batches of a few megabytes, and returns the number of keys.
func fillTenant(ctx context.Context, t *testing.T, tn *client.Tenant, mb int, rng *rand.Rand) int {
	t.Helper()
	const valueSize, perBatch = 64 << 10, 48
	keys := mb << 20 / valueSize
	val := make([]byte, valueSize)
	for i := 0; i < keys; {
		b := tn.NewBatch()
		for j := 0; j < perBatch && i < keys; j++ {
			for k := 0; k+8 <= len(val); k += 8 {
				v := rng.Uint64()
				val[k], val[k+1], val[k+2], val[k+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
				val[k+4], val[k+5], val[k+6], val[k+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
			}
			b.Set(fmt.Appendf(nil, "bulk/%08d", i), val)
			i++
		}
		opCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := b.Commit(opCtx)
		cancel()
		if err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
	return keys
}

// snapshotIndex returns the highest index of the snapshots kept in a node's
// data directory (hashicorp/raft names them term-index-time), or 0.
func snapshotIndex(dataDir string) uint64 {
	ents, _ := os.ReadDir(filepath.Join(dataDir, "raft", "snapshots"))
	var best uint64
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 3 {
			continue
		}
		if idx, err := strconv.ParseUint(parts[1], 10, 64); err == nil {
			best = max(best, idx)
		}
	}
	return best
}

// restartTuned stops nd and starts it again with the cluster's raft timing
// set to tuning.
func (c *cluster) restartTuned(ctx context.Context, t *testing.T, nd *testNode, tuning server.RaftTuning) {
	t.Helper()
	c.kill(nd)
	c.tuning = tuning
	if err := c.restart(ctx, nd); err != nil {
		t.Fatalf("restart %s: %v", nd.id, err)
	}
}

// bigSnapshotNode starts a one-node cluster whose node holds mb megabytes
// in tenant "bulk" and a snapshot of them, with the log compacted behind it,
// so that a joiner must install the snapshot. It then runs with timing
// that takes no further snapshot.
func bigSnapshotNode(ctx context.Context, t *testing.T, mb int, rng *rand.Rand) *cluster {
	t.Helper()
	c := newClusterTuned(t, 1, joinNoSnapshots)
	if _, err := c.admin.CreateTenant(ctx, "bulk", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	keys := fillTenant(ctx, t, c.admin.Tenant("bulk"), mb, rng)
	st, err := c.status(ctx, c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %d MB (%d keys) in %v; applied index %d", mb, keys, time.Since(start).Round(time.Millisecond), st.AppliedIndex)
	c.restartTuned(ctx, t, c.nodes[0], joinSnapshotSoon)
	snapCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := poll(snapCtx, func() error {
		if idx := snapshotIndex(c.nodes[0].dir); idx < st.AppliedIndex {
			return fmt.Errorf("newest snapshot at index %d, want %d", idx, st.AppliedIndex)
		}
		return nil
	}); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	c.restartTuned(ctx, t, c.nodes[0], joinNoSnapshots)
	if err := c.waitWritable(ctx, "bulk"); err != nil {
		t.Fatal(err)
	}
	return c
}

// openLoopVictim issues one operation every interval, alternately a write
// and a linearizable read of the victim tenant, whether or not the earlier
// ones have finished (an open loop: a stall delays every operation due in
// it, as it delays every request of a real application). An operation's
// latency runs from the moment it was due.
type openLoopVictim struct {
	stop chan struct{}
	done chan struct{}

	mu  sync.Mutex
	ops []victimOp
}

// victimOp is one operation of the victim.
type victimOp struct {
	due, end time.Time
	write    bool
	err      error
}

func startOpenLoopVictim(db *client.DB, interval time.Duration) *openLoopVictim {
	v := &openLoopVictim{stop: make(chan struct{}), done: make(chan struct{})}
	tn := db.Tenant("")
	sem := make(chan struct{}, 512) // bounds the operations in flight
	go func() {
		defer close(v.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		start := time.Now()
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * interval)
			t := time.NewTimer(time.Until(due))
			select {
			case <-v.stop:
				t.Stop()
				return
			case <-t.C:
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				key := fmt.Appendf(nil, "victim/%d", i/2%64)
				var err error
				write := i%2 == 0
				if write {
					err = tn.Set(ctx, key, fmt.Appendf(nil, "v%d", i))
				} else if _, err = tn.Get(ctx, key); errors.Is(err, client.ErrNotFound) {
					err = nil
				}
				op := victimOp{due: due, end: time.Now(), write: write, err: err}
				v.mu.Lock()
				v.ops = append(v.ops, op)
				v.mu.Unlock()
			}()
		}
	}()
	return v
}

// victimFigures are what the victim saw in a window of time.
type victimFigures struct {
	ops              int
	errs             []error
	p50, p99, maxLat time.Duration
	// longestNoWrite is the longest time between two successful writes:
	// while there is no quorum it grows.
	longestNoWrite time.Duration
}

func (f victimFigures) String() string {
	return fmt.Sprintf("%d ops, %d errors, p50 %v, p99 %v, max %v, longest time without a write %v",
		f.ops, len(f.errs), f.p50.Round(100*time.Microsecond), f.p99.Round(100*time.Microsecond),
		f.maxLat.Round(time.Millisecond), f.longestNoWrite.Round(time.Millisecond))
}

// finish stops the victim and waits for its operations.
func (v *openLoopVictim) finish() {
	close(v.stop)
	<-v.done
}

// figures summarises the operations due in [from, to).
func (v *openLoopVictim) figures(from, to time.Time) victimFigures {
	v.mu.Lock()
	defer v.mu.Unlock()
	var f victimFigures
	var lat []time.Duration
	var writes []time.Time
	for _, op := range v.ops {
		if op.due.Before(from) || !op.due.Before(to) {
			continue
		}
		lat = append(lat, op.end.Sub(op.due))
		switch {
		case op.err != nil:
			f.errs = append(f.errs, op.err)
		case op.write:
			writes = append(writes, op.end)
		}
	}
	f.ops = len(lat)
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		f.p50, f.p99, f.maxLat = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	slices.SortFunc(writes, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(writes); i++ {
		f.longestNoWrite = max(f.longestNoWrite, writes[i].Sub(writes[i-1]))
	}
	return f
}

// memberSuffrage returns node id's suffrage in st ("" if absent).
func memberSuffrage(st *wire.ClusterStatus, id string) string {
	for _, m := range st.Members {
		if m.ID == id {
			return strings.ToLower(m.Suffrage)
		}
	}
	return ""
}

// waitVoters polls nd until its configuration lists n members, all voters.
func (c *cluster) waitVoters(ctx context.Context, nd *testNode, n int) error {
	ctx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	return poll(ctx, func() error {
		st, err := c.status(ctx, nd)
		if err != nil {
			return err
		}
		if len(st.Members) != n {
			return fmt.Errorf("%d members, want %d", len(st.Members), n)
		}
		for _, m := range st.Members {
			if !strings.EqualFold(m.Suffrage, "voter") {
				return fmt.Errorf("member %s is a %s", m.ID, m.Suffrage)
			}
		}
		return nil
	})
}

// TestAttackJoinsUnderLoad joins two nodes, one after the other, to a node
// holding TENANTKV_JOIN_ATTACK_MB megabytes (default 32), while a victim
// tenant writes and reads linearizably every 5 ms. The victim's p99 must
// stay under 100 ms, its slowest operation and its longest time without a
// successful write far below the 3.7 s a join cost before (no moment
// without a quorum), and every operation must succeed.
func TestAttackJoinsUnderLoad(t *testing.T) {
	runJoinAttack(t, joinAttackMB(t), testSeed(t))
}

// runJoinAttack is TestAttackJoinsUnderLoad with mb megabytes on the first
// node; the soak runs it too.
func runJoinAttack(t *testing.T, mb int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 18))
	ctx := t.Context()
	t.Logf("two nodes join a node holding %d MB (TENANTKV_JOIN_ATTACK_MB sets it)", mb)
	c := bigSnapshotNode(ctx, t, mb, rng)
	if _, err := c.admin.CreateTenant(ctx, "victim", nil); err != nil {
		t.Fatal(err)
	}
	tok, err := c.admin.NewTenantToken(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	db, err := client.Open(ctx, c.endpoints(), &client.Options{Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Tenant("").Set(ctx, []byte("warm"), []byte("up")); err != nil {
		t.Fatal(err)
	}

	v := startOpenLoopVictim(db, 5*time.Millisecond)
	begin := time.Now()
	pause(ctx, time.Second) // a baseline before the joins
	joinStart := time.Now()
	var phases [][2]time.Time
	for range 2 {
		nd := c.addJoiner(t)
		start := time.Now()
		if err := c.firstStart(ctx, nd); err != nil {
			v.finish()
			t.Fatalf("join %s: %v", nd.id, err)
		}
		phases = append(phases, [2]time.Time{start, time.Now()})
		t.Logf("%s joined and said ready after %v", nd.id, time.Since(start).Round(time.Millisecond))
	}
	// Both joiners become voters; the victim keeps going meanwhile.
	err = c.waitVoters(ctx, c.nodes[0], 3)
	voters := time.Now()
	pause(ctx, time.Second) // the joins' aftermath counts too
	end := time.Now()
	v.finish()
	if err != nil {
		t.Fatalf("after the joins: %v", err)
	}
	base, f := v.figures(begin, joinStart), v.figures(joinStart, end)
	t.Logf("victim before the joins: %v", base)
	for i, ph := range phases {
		t.Logf("victim while joiner %d joined: %v", i+1, v.figures(ph[0], ph[1]))
	}
	t.Logf("victim from the first join to 1s after both were voters (%v, %v of it joining): %v",
		end.Sub(joinStart).Round(time.Millisecond), voters.Sub(joinStart).Round(time.Millisecond), f)
	for i, err := range f.errs {
		if i == 5 {
			t.Errorf("… and %d more", len(f.errs)-5)
			break
		}
		t.Errorf("victim operation failed: %v", err)
	}
	if f.p99 > joinP99Bound {
		t.Errorf("victim p99 %v during the joins, want under %v", f.p99, joinP99Bound)
	}
	if f.maxLat > joinStallBound || f.longestNoWrite > joinStallBound {
		t.Errorf("victim stalled during the joins: slowest operation %v, longest time without a successful write %v; want both under %v (a joiner counted as a voter before it caught up took the quorum away)",
			f.maxLat, f.longestNoWrite, joinStallBound)
	}
	// The joiners hold the data.
	for _, nd := range c.nodes[1:] {
		sdb, err := client.Open(ctx, []string{nd.listen}, &client.Options{Token: c.token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sdb.Tenant("bulk").WithStaleReads().Get(ctx, []byte("bulk/00000000"))
		sdb.Close()
		if err != nil {
			t.Errorf("stale read of the bulk data on %s: %v", nd.id, err)
		}
	}
}

// startAsync starts nd for the first time, on fresh ports, in the
// background; the channel receives Start's error (nil once the node said
// ready). cfg, if set, changes its configuration.
func (c *cluster) startAsync(ctx context.Context, nd *testNode, cfg func(*server.Config)) <-chan error {
	done := make(chan error, 1)
	ports, err := freePorts(2)
	if err != nil {
		done <- err
		return done
	}
	nd.listen, nd.raft = ports[0], ports[1]
	nd.proxy.SetTarget(nd.raft)
	conf := c.config(nd)
	if cfg != nil {
		cfg(&conf)
	}
	go func() {
		srv, err := server.Start(ctx, conf)
		if err == nil {
			nd.mu.Lock()
			nd.srv = srv
			nd.mu.Unlock()
		}
		done <- err
	}()
	return done
}

// waitSuffrage polls nd's status until it lists id with the given suffrage.
func (c *cluster) waitSuffrage(ctx context.Context, nd *testNode, id, suffrage string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	return poll(ctx, func() error {
		st, err := c.status(ctx, nd)
		if err != nil {
			return err
		}
		if s := memberSuffrage(st, id); s != suffrage {
			return fmt.Errorf("%s is %q on %s, want %q", id, s, nd.id, suffrage)
		}
		return nil
	})
}

// writeWithin reports whether the operator client acknowledges a write
// within d.
func (c *cluster) writeWithin(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return c.admin.Tenant("bulk").Set(ctx, []byte("probe"), []byte("during the join"))
}

// TestJoinerIsNonvoterUntilCaughtUp cuts a joiner's raft traffic so that it
// cannot catch up: it must be listed as a non-voter, the one-node cluster
// must keep its quorum (writes succeed), and the joiner must not say ready.
// Once healed it catches up, is promoted to voter, and only then says ready
// (server.Start returns, which is when serve prints its ready line), with
// everything written before it joined applied.
func TestJoinerIsNonvoterUntilCaughtUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 19))
	ctx := t.Context()
	c := newCluster(t, 1)
	if _, err := c.admin.CreateTenant(ctx, "bulk", nil); err != nil {
		t.Fatal(err)
	}
	fillTenant(ctx, t, c.admin.Tenant("bulk"), 2, rng)
	before, err := c.status(ctx, c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	nd := c.addJoiner(t)
	c.net.Isolate(nd.id)
	started := c.startAsync(ctx, nd, nil)
	if err := c.waitSuffrage(ctx, c.nodes[0], nd.id, "nonvoter", 30*time.Second); err != nil {
		t.Fatalf("a joiner that cannot catch up: %v", err)
	}
	if err := c.writeWithin(ctx, 5*time.Second); err != nil {
		t.Fatalf("write while the joiner cannot catch up (the quorum must not include it): %v", err)
	}
	select {
	case err := <-started:
		t.Fatalf("joiner said ready (Start returned %v) while it could not catch up", err)
	case <-time.After(time.Second):
	}
	if st, err := c.status(ctx, c.nodes[0]); err != nil || memberSuffrage(st, nd.id) != "nonvoter" {
		t.Fatalf("joiner promoted while it could not catch up: %v %v", st, err)
	}
	c.net.Heal()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("joiner: %v", err)
		}
	case <-time.After(startTimeout):
		t.Fatal("joiner did not say ready after the network healed")
	}
	st, err := c.status(ctx, nd)
	if err != nil {
		t.Fatal(err)
	}
	if memberSuffrage(st, nd.id) != "voter" {
		t.Errorf("joiner said ready as a %q, want a voter", memberSuffrage(st, nd.id))
	}
	if st.AppliedIndex < before.CommitIndex {
		t.Errorf("joiner said ready at applied index %d, before the index %d committed before it joined", st.AppliedIndex, before.CommitIndex)
	}
	if err := c.waitVoters(ctx, c.nodes[0], 2); err != nil {
		t.Fatal(err)
	}
}

// TestJoinPromotionSurvivesLeaderChange joins a fourth node to a three-node
// cluster while its raft traffic is cut, kills the leader while the joiner
// is still a non-voter, then heals: the new leader must promote it.
func TestJoinPromotionSurvivesLeaderChange(t *testing.T) {
	testSeed(t)
	ctx := t.Context()
	c := newCluster(t, 3)
	if _, err := c.admin.CreateTenant(ctx, "bulk", nil); err != nil {
		t.Fatal(err)
	}
	nd := c.addJoiner(t)
	c.net.Isolate(nd.id)
	started := c.startAsync(ctx, nd, nil)
	old, err := c.waitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.waitSuffrage(ctx, old, nd.id, "nonvoter", 30*time.Second); err != nil {
		t.Fatalf("a joiner that cannot catch up: %v", err)
	}
	t.Logf("killing leader %s while %s is a non-voter", old.id, nd.id)
	c.kill(old)
	var next *testNode
	leaderCtx, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	if err := poll(leaderCtx, func() error {
		if next = c.leader(ctx); next == nil || next == old || next == nd {
			return errors.New("no new leader among the voters")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s, err := c.status(ctx, next); err != nil || memberSuffrage(s, nd.id) != "nonvoter" {
		t.Fatalf("on the new leader %s the joiner is not a non-voter: %v %v", next.id, s, err)
	}
	c.net.Heal()
	if err := c.waitSuffrage(ctx, next, nd.id, "voter", recoverTimeout); err != nil {
		t.Fatalf("the new leader did not promote the joiner: %v", err)
	}
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("joiner: %v", err)
		}
	case <-time.After(startTimeout):
		t.Fatal("joiner did not say ready after its promotion")
	}
	if err := c.restart(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := c.waitVoters(ctx, next, 4); err != nil {
		t.Fatal(err)
	}
}

// TestJoinerReadyzOnlyWhenCaughtUp slows the joiner's raft traffic so that
// its catch-up takes seconds, and polls its /readyz throughout: it must not
// answer ready while the joiner has not applied what was committed before
// it joined, nor while it is not a voter.
func TestJoinerReadyzOnlyWhenCaughtUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 20))
	ctx := t.Context()
	c := newCluster(t, 1)
	if _, err := c.admin.CreateTenant(ctx, "bulk", nil); err != nil {
		t.Fatal(err)
	}
	fillTenant(ctx, t, c.admin.Tenant("bulk"), 4, rng)
	before, err := c.status(ctx, c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	nd := c.addJoiner(t)
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ports[0]
	c.net.SetDelay(c.nodes[0].id, nd.id, 20*time.Millisecond)
	started := c.startAsync(ctx, nd, func(cfg *server.Config) { cfg.HTTPAddr = httpAddr })
	hc := &http.Client{Timeout: 2 * time.Second}
	var answers, notReady int
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := hc.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			answers++
			if resp.StatusCode == http.StatusOK {
				st, err := nodeStatus(ctx, nd.listen, c.token)
				if err != nil {
					t.Fatalf("status of the joiner after it said ready: %v", err)
				}
				if st.AppliedIndex < before.CommitIndex || memberSuffrage(st, nd.id) != "voter" {
					t.Fatalf("/readyz said ready while the joiner was at applied index %d of %d, as a %q",
						st.AppliedIndex, before.CommitIndex, memberSuffrage(st, nd.id))
				}
				break
			}
			notReady++
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never said ready (%d answers)", answers)
		}
		pause(ctx, pollEvery)
	}
	c.net.Heal()
	if err := <-started; err != nil {
		t.Fatalf("joiner: %v", err)
	}
	t.Logf("/readyz answered not ready %d times while the joiner caught up", notReady)
	if notReady == 0 {
		t.Errorf("/readyz was never seen saying not ready: the catch-up was too quick to check anything")
	}
}

// TestJoinerProcessReadyLineAfterCatchUp runs the real binary: two
// `tenantkv serve --join` processes join one after the other, and each must
// print its ready line only once it has caught up (applied what was
// committed before it joined) and been promoted to voter; its /readyz must
// then answer 200. (Before, the second joiner said ready at once: two
// voters of three already made the quorum that committed its addition.)
func TestJoinerProcessReadyLineAfterCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the tenantkv binary")
	}
	rng := rand.New(rand.NewPCG(testSeed(t), 21))
	ctx := t.Context()
	pc := newProcCluster(t, 1)
	if _, err := pc.admin.CreateTenant(ctx, "bulk", nil); err != nil {
		t.Fatal(err)
	}
	fillTenant(ctx, t, pc.admin.Tenant("bulk"), 16, rng)
	before, err := nodeStatus(ctx, pc.Nodes[0].Listen, pc.Token)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		nd, err := pc.AddNode() // returns once the ready line is printed
		if err != nil {
			t.Fatal(err)
		}
		st, err := nodeStatus(ctx, nd.Listen, pc.Token)
		if err != nil {
			t.Fatalf("status of %s right after its ready line: %v", nd.ID, err)
		}
		if st.AppliedIndex < before.CommitIndex || memberSuffrage(st, nd.ID) != "voter" {
			t.Errorf("%s printed its ready line at applied index %d of %d, as a %q; want caught up, as a voter",
				nd.ID, st.AppliedIndex, before.CommitIndex, memberSuffrage(st, nd.ID))
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + nd.HTTP + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz of %s after its ready line: %s", nd.ID, resp.Status)
		}
	}
}

// soakJoinMB is the size of the soak's join attack: TENANTKV_JOIN_ATTACK_MB,
// default 64.
func soakJoinMB(t *testing.T) int {
	if os.Getenv("TENANTKV_JOIN_ATTACK_MB") != "" {
		return joinAttackMB(t)
	}
	return 64
}
