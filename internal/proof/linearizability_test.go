package proof

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// linConfig is one linearizability run.
type linConfig struct {
	name     string
	nodes    int
	tenants  int
	keys     int           // per tenant
	workers  int           // concurrent clients, each with its own DB
	duration time.Duration // of the nemesis phase
	faults   []fault       // the nemesis picks among these
	seed     uint64
	raft     *server.RaftTuning // nil: testRaft
}

// opTimeout bounds one client operation. A write that times out after being
// sent is of unknown outcome; a read that times out is dropped.
const opTimeout = 2 * time.Second

// fault is one kind of failure the nemesis injects. run injects it, waits
// a while and undoes it (heals the network, restarts the nodes).
type fault struct {
	name string
	run  func(ctx context.Context, n *nemesis) error
}

// linTarget is what a linearizability run drives: an in-process cluster or
// a cluster of processes.
type linTarget interface {
	endpoints() []string
	operator() *client.DB
	operatorToken() string
	// waitWritable polls until the cluster acknowledges a write.
	waitWritable(ctx context.Context, tenant string) error
	// heal undoes every fault: the network is whole and every node runs.
	heal(ctx context.Context) error
	// verify reports what the target itself saw go wrong during the run.
	verify(t testing.TB, name string)
}

// nemesis injects faults into a cluster: c for in-process nodes, p for
// processes.
type nemesis struct {
	c   *cluster
	p   *procCluster
	rng *rand.Rand
	log []string
}

func (n *nemesis) note(format string, args ...any) {
	n.log = append(n.log, fmt.Sprintf("%s "+format, append([]any{time.Now().Format("15:04:05.000")}, args...)...))
}

// between returns a random duration in [lo, hi).
func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

func (n *nemesis) pick(nodes []*testNode) *testNode {
	if len(nodes) == 0 {
		return nil
	}
	return nodes[n.rng.IntN(len(nodes))]
}

func (n *nemesis) others(of *testNode) []*testNode {
	var out []*testNode
	for _, nd := range n.c.nodes {
		if nd != of {
			out = append(out, nd)
		}
	}
	return out
}

func (n *nemesis) killRestart(ctx context.Context, victims ...*testNode) error {
	for _, v := range victims {
		if n.c.kill(v) {
			totals.Crashes.Add(1)
		}
	}
	pause(ctx, n.between(200*time.Millisecond, 1500*time.Millisecond))
	for _, v := range victims {
		if err := n.c.restart(context.Background(), v); err != nil {
			return fmt.Errorf("restart %s: %w", v.id, err)
		}
	}
	return nil
}

func (n *nemesis) leaderOrAny(ctx context.Context) *testNode {
	if l := n.c.leader(ctx); l != nil {
		return l
	}
	return n.pick(n.c.running())
}

// The faults of in-process clusters.
var (
	faultKillFollower = fault{"kill-follower", func(ctx context.Context, n *nemesis) error {
		l := n.leaderOrAny(ctx)
		v := n.pick(n.others(l))
		n.note("kill follower %s (leader %s)", v.id, l.id)
		return n.killRestart(ctx, v)
	}}
	faultKillLeader = fault{"kill-leader", func(ctx context.Context, n *nemesis) error {
		l := n.leaderOrAny(ctx)
		n.note("kill leader %s", l.id)
		return n.killRestart(ctx, l)
	}}
	faultKillMajority = fault{"kill-majority", func(ctx context.Context, n *nemesis) error {
		keep := n.pick(n.c.nodes)
		victims := n.others(keep)
		n.note("kill all but %s", keep.id)
		return n.killRestart(ctx, victims...)
	}}
	faultRestartAll = fault{"restart-all", func(ctx context.Context, n *nemesis) error {
		n.note("kill every node")
		return n.killRestart(ctx, n.c.nodes...)
	}}
	faultIsolateLeader = fault{"isolate-leader", func(ctx context.Context, n *nemesis) error {
		l := n.leaderOrAny(ctx)
		n.note("isolate leader %s", l.id)
		n.c.net.Isolate(l.id)
		defer n.c.net.Heal()
		// The others must elect one of them: if they do not, the proxies
		// cut nothing and every network fault of the run is a no-op.
		start := time.Now()
		err := poll(ctx, func() error {
			for _, o := range n.others(l) {
				if o.server() == nil {
					continue
				}
				if st, err := n.c.status(ctx, o); err == nil && st.LeaderID != "" && st.LeaderID != l.id {
					return nil
				}
			}
			return errors.New("no new leader")
		})
		if err != nil {
			return fmt.Errorf("the majority did not elect a new leader while %s was cut off: %w", l.id, err)
		}
		n.note("new leader elected after %v", time.Since(start).Round(time.Millisecond))
		pause(ctx, n.between(200*time.Millisecond, 2*time.Second))
		return nil
	}}
	faultIsolateFollower = fault{"isolate-follower", func(ctx context.Context, n *nemesis) error {
		l := n.leaderOrAny(ctx)
		v := n.pick(n.others(l))
		n.note("isolate follower %s", v.id)
		n.c.net.Isolate(v.id)
		pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
		n.c.net.Heal()
		return nil
	}}
	faultLeaderMute = fault{"leader-mute", func(ctx context.Context, n *nemesis) error {
		// The leader hears everybody but nobody hears it.
		l := n.leaderOrAny(ctx)
		n.note("cut every link from leader %s (one way)", l.id)
		for _, o := range n.others(l) {
			n.c.net.Cut(l.id, o.id)
		}
		pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
		n.c.net.Heal()
		return nil
	}}
	faultLeaderDeaf = fault{"leader-deaf", func(ctx context.Context, n *nemesis) error {
		// Nobody reaches the leader, the leader reaches everybody.
		l := n.leaderOrAny(ctx)
		n.note("cut every link to leader %s (one way)", l.id)
		for _, o := range n.others(l) {
			n.c.net.Cut(o.id, l.id)
		}
		pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
		n.c.net.Heal()
		return nil
	}}
	faultBridge = fault{"bridge", func(ctx context.Context, n *nemesis) error {
		// Two nodes cannot talk; the third talks to both.
		if len(n.c.nodes) < 3 {
			return nil
		}
		p := n.rng.Perm(len(n.c.nodes))
		a, b := n.c.nodes[p[0]], n.c.nodes[p[1]]
		n.note("cut %s <-> %s, the others bridge", a.id, b.id)
		n.c.net.Partition([]string{a.id}, []string{b.id})
		pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
		n.c.net.Heal()
		return nil
	}}
	faultSlowNode = fault{"slow-node", func(ctx context.Context, n *nemesis) error {
		v := n.pick(n.c.nodes)
		d := n.between(20*time.Millisecond, 300*time.Millisecond)
		n.note("delay every link of %s by %v", v.id, d)
		for _, o := range n.others(v) {
			n.c.net.SetDelay(v.id, o.id, d)
			n.c.net.SetDelay(o.id, v.id, d)
		}
		pause(ctx, n.between(time.Second, 3*time.Second))
		n.c.net.Heal()
		return nil
	}}
	faultIsolateRestart = fault{"isolate-then-kill", func(ctx context.Context, n *nemesis) error {
		// A deposed leader is killed while cut off, and comes back after
		// the others moved on.
		l := n.leaderOrAny(ctx)
		n.note("isolate leader %s, then kill it", l.id)
		n.c.net.Isolate(l.id)
		pause(ctx, n.between(300*time.Millisecond, 1500*time.Millisecond))
		if n.c.kill(l) {
			totals.Crashes.Add(1)
		}
		n.c.net.Heal()
		pause(ctx, n.between(200*time.Millisecond, time.Second))
		return n.c.restart(context.Background(), l)
	}}
)

var allFaults = []fault{faultKillFollower, faultKillLeader, faultKillMajority, faultRestartAll, faultIsolateLeader,
	faultIsolateFollower, faultLeaderMute, faultLeaderDeaf, faultBridge, faultSlowNode, faultIsolateRestart, faultSplit}

// linResult is what a run did.
type linResult struct {
	counts historyCounts
	check  checkResult
	faults int
	errs   map[string]int // unexpected client errors, by message
}

// runInProcess runs cfg on a fresh in-process cluster.
func runInProcess(t testing.TB, cfg linConfig) linResult {
	t.Helper()
	tuning := testRaft
	if cfg.raft != nil {
		tuning = *cfg.raft
	}
	c := newClusterTuned(t, cfg.nodes, tuning)
	return runLinearizability(t, cfg, c, &nemesis{c: c})
}

// runLinearizability runs cfg on tg: clients while the nemesis injects
// faults, then a check of every key's history.
func runLinearizability(t testing.TB, cfg linConfig, tg linTarget, n *nemesis) linResult {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(cfg.seed, 0x9e3779b97f4a7c15))
	n.rng = rng
	t.Logf("%s: seed %d, %d nodes, %d tenants × %d keys, %d clients, %v of faults among %s",
		cfg.name, cfg.seed, cfg.nodes, cfg.tenants, cfg.keys, cfg.workers, cfg.duration, faultNames(cfg.faults))

	tenants := make([]string, cfg.tenants)
	tokens := make([]string, cfg.tenants)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("lin-%d", i)
		if _, err := tg.operator().CreateTenant(ctx, tenants[i], nil); err != nil {
			t.Fatal(err)
		}
		tok, err := tg.operator().NewTenantToken(ctx, tenants[i])
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok
		waitTokenEverywhere(t, tg.endpoints(), tok)
	}

	rec := newRecorder()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var errMu sync.Mutex
	errs := map[string]int{}     // failures no fault explains
	expected := map[string]int{} // failures of availability
	for w := range cfg.workers {
		ti := w % cfg.tenants
		wrng := rand.New(rand.NewPCG(cfg.seed, uint64(w)+1))
		db, err := client.Open(ctx, tg.endpoints(), &client.Options{Token: tokens[ti], DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer db.Close()
			tn := db.Tenant("")
			cid := rec.newClient()
			seen := map[string]*string{} // the last value this worker saw per key (nil: absent)
			for seq := 0; !stop.Load(); seq++ {
				k := fmt.Sprintf("k%d", wrng.IntN(cfg.keys))
				key := tenants[ti] + "/" + k
				var in kvInput
				switch r := wrng.IntN(100); {
				case r < 40:
					in.Kind = opGet
				case r < 65:
					in = kvInput{Kind: opSet, Value: fmt.Sprintf("w%d.%d", w, seq)}
				case r < 75:
					in.Kind = opDelete
				default:
					// Swap from what this worker last saw, so that swaps
					// race each other and often win.
					in = kvInput{Kind: opCAS, Value: fmt.Sprintf("w%d.%d", w, seq), Delete: wrng.IntN(5) == 0}
					if v, ok := seen[k]; !ok || v == nil {
						in.Absent = true
					} else {
						in.Expect = *v
					}
				}
				opCtx, cancel := context.WithTimeout(ctx, opTimeout)
				call := rec.now()
				var out kvOutput
				var err error
				switch in.Kind {
				case opGet:
					var v []byte
					v, err = tn.Get(opCtx, []byte(k))
					if err == nil {
						out = kvOutput{Found: true, Value: string(v)}
					} else if errors.Is(err, client.ErrNotFound) {
						err = nil
					}
				case opSet:
					err = tn.Set(opCtx, []byte(k), []byte(in.Value))
				case opDelete:
					err = tn.Delete(opCtx, []byte(k))
				case opCAS:
					var old, nv []byte
					if !in.Absent {
						old = []byte(in.Expect)
					}
					if !in.Delete {
						nv = []byte(in.Value)
					}
					out.Swapped, err = tn.CompareAndSwap(opCtx, []byte(k), old, nv)
				}
				ret := rec.now()
				cancel()
				switch {
				case err != nil:
				case in.Kind == opGet && out.Found:
					seen[k] = &out.Value
				case in.Kind == opGet, in.Kind == opDelete, in.Kind == opCAS && out.Swapped && in.Delete:
					seen[k] = nil
				case in.Kind == opSet, in.Kind == opCAS && out.Swapped:
					v := in.Value
					seen[k] = &v
				}
				switch {
				case err == nil:
					rec.add(key, cid, in, out, call, ret)
				case in.Kind != opGet && errors.Is(err, client.ErrCommitUnknown):
					rec.add(key, cid, in, kvOutput{Unknown: true}, call, ret)
					cid = rec.newClient() // this operation never returns
				default:
					rec.addFailed(key, cid, in, call, ret)
					errMu.Lock()
					if expectedFailure(err) {
						expected[errorClass(err)]++
					} else {
						errs[errorClass(err)]++
					}
					errMu.Unlock()
				}
			}
		}()
	}

	// Pinned readers: one per node, sending linearizable gets by hand to
	// that node only, whether it leads or not. A follower or a deposed
	// leader must refuse them (not leader); one that answers from its own
	// state shows up as a stale read. (The client library follows the
	// leader, so its reads rarely reach a follower.)
	for i, addr := range tg.endpoints() {
		prng := rand.New(rand.NewPCG(cfg.seed, uint64(1000+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pinnedReader(rec, &stop, addr, tg.operatorToken(), tenants, cfg.keys, prng)
		}()
	}

	// The nemesis.
	faults := 0
	deadline := time.Now().Add(cfg.duration)
	var nemesisErr error
	for time.Now().Before(deadline) && len(cfg.faults) > 0 {
		f := cfg.faults[rng.IntN(len(cfg.faults))]
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f.run(fctx, n)
		cancel()
		faults++
		totals.Faults.Add(1)
		if err != nil {
			nemesisErr = fmt.Errorf("fault %s: %w", f.name, err)
			break
		}
		// Heal completely and wait until writes go through again.
		if err := tg.heal(ctx); err != nil {
			nemesisErr = fmt.Errorf("healing after %s: %w", f.name, err)
			break
		}
		if err := tg.waitWritable(ctx, tenants[0]); err != nil {
			n.note("cluster not writable %v after healing %s: %v", recoverTimeout, f.name, err)
			nemesisErr = fmt.Errorf("cluster did not take writes within %v after %s was healed: %w", recoverTimeout, f.name, err)
			break
		}
		n.note("healed %s", f.name)
		pause(ctx, n.between(100*time.Millisecond, 700*time.Millisecond))
	}
	if len(cfg.faults) == 0 {
		pause(ctx, cfg.duration)
	}
	stop.Store(true)
	wg.Wait()

	// Final reads of every key, on a healed cluster: every acknowledged
	// write must still be there.
	if nemesisErr == nil {
		for ti, tn := range tenants {
			db, err := client.Open(ctx, tg.endpoints(), &client.Options{Token: tokens[ti]})
			if err != nil {
				t.Fatal(err)
			}
			cid := rec.newClient()
			for k := range cfg.keys {
				key := fmt.Sprintf("k%d", k)
				opCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				call := rec.now()
				v, err := db.Tenant("").Get(opCtx, []byte(key))
				ret := rec.now()
				cancel()
				switch {
				case err == nil:
					rec.add(tn+"/"+key, cid, kvInput{Kind: opGet}, kvOutput{Found: true, Value: string(v)}, call, ret)
				case errors.Is(err, client.ErrNotFound):
					rec.add(tn+"/"+key, cid, kvInput{Kind: opGet}, kvOutput{}, call, ret)
				default:
					t.Errorf("final read of %s/%s on a healed cluster: %v", tn, key, err)
				}
			}
			db.Close()
		}
	}

	counts := rec.counts()
	res := linResult{counts: counts, faults: faults, errs: errs}
	res.check = rec.check(cfg.name)
	res.check.report(t, cfg.name, counts)
	totals.Runs.Add(1)
	totals.Histories.Add(int64(res.check.Keys))
	totals.Unchecked.Add(int64(len(res.check.Unchecked)))
	totals.Operations.Add(int64(res.check.Operations))
	totals.Violations.Add(int64(len(res.check.Illegal)))
	t.Logf("%s: %d faults injected", cfg.name, faults)
	tg.verify(t, cfg.name)
	if len(errs) > 0 {
		// No fault explains these: a valid token refused, an internal
		// error, a bad request.
		t.Errorf("%s: client operations failed with errors no fault explains: %v", cfg.name, errs)
	}
	if testing.Verbose() && len(expected) > 0 {
		t.Logf("%s: client operations that failed for want of a leader: %v", cfg.name, expected)
	}
	if nemesisErr != nil || len(res.check.Illegal) > 0 || t.Failed() || testing.Verbose() {
		t.Logf("%s: nemesis log:\n  %s", cfg.name, strings.Join(n.log, "\n  "))
	}
	if nemesisErr != nil {
		totals.Violations.Add(1)
		t.Errorf("%s: %v", cfg.name, nemesisErr)
	}
	if counts.Writes == 0 || counts.Reads == 0 {
		t.Errorf("%s: no successful reads or writes (%+v): the run proves nothing", cfg.name, counts)
	}
	return res
}

// pinnedReader sends gets to the node at addr only, until stop, and records
// them; refusals and failures are left out like any failed read.
func pinnedReader(rec *recorder, stop *atomic.Bool, addr, token string, tenants []string, keys int, rng *rand.Rand) {
	cid := rec.newClient()
	var rc *rawConn
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	for !stop.Load() {
		pause(context.Background(), time.Duration(2+rng.IntN(8))*time.Millisecond) // leave room for the writers
		if rc == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, _, err := loginRaw(ctx, addr, token)
			cancel()
			if err != nil {
				pause(context.Background(), 100*time.Millisecond)
				continue
			}
			rc = c
		}
		tn, k := tenants[rng.IntN(len(tenants))], fmt.Sprintf("k%d", rng.IntN(keys))
		rc.timeout = opTimeout
		call := rec.now()
		resp, _, err := rc.call(&wire.Request{Op: wire.OpGet, Tenant: tn, Key: []byte(k)})
		ret := rec.now()
		switch {
		case err != nil:
			rc.Close()
			rc = nil
			rec.addFailed(tn+"/"+k, cid, kvInput{Kind: opGet}, call, ret)
		case resp.Code == wire.CodeOK:
			rec.add(tn+"/"+k, cid, kvInput{Kind: opGet}, kvOutput{Found: true, Value: string(resp.Value)}, call, ret)
		case resp.Code == wire.CodeNotFound:
			rec.add(tn+"/"+k, cid, kvInput{Kind: opGet}, kvOutput{}, call, ret)
		default:
			rec.addFailed(tn+"/"+k, cid, kvInput{Kind: opGet}, call, ret)
		}
	}
}

// expectedFailure reports whether a failed operation failed the way faults
// make operations fail: its deadline ended while no leader answered.
func expectedFailure(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnavailable) ||
		errors.Is(err, client.ErrNotLeader)
}

// errorClass shortens an error to its kind, for tallies.
func errorClass(err error) string {
	s := err.Error()
	if i := strings.Index(s, " (last error"); i > 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func (c *cluster) operator() *client.DB { return c.admin }

func (c *cluster) operatorToken() string { return c.token }

func (c *cluster) heal(ctx context.Context) error {
	c.net.Heal()
	for _, nd := range c.nodes {
		if err := c.restart(ctx, nd); err != nil {
			return fmt.Errorf("restart %s: %w", nd.id, err)
		}
	}
	return nil
}

func (c *cluster) verify(t testing.TB, name string) {
	t.Helper()
	t.Logf("%s: raft connections through the proxies: %d identified, %d refused or cut", name, c.net.Identified.Load(), c.net.Refused.Load())
	if u := c.net.Unidentified.Load(); u > 0 {
		t.Errorf("%s: %d raft connections were forwarded without knowing their sender: the network faults were not exact", name, u)
	}
}

func faultNames(fs []fault) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.name)
	}
	return strings.Join(names, ", ")
}

// TestLinearizabilityUnderFaults runs concurrent clients doing get, set,
// delete and compare-and-swap on a few keys of three tenants of a three-node in-process cluster,
// while a nemesis kills and restarts nodes (the leader among them), cuts the
// leader or a follower off, cuts links one way and slows them down; then it
// checks every key's history with porcupine.
func TestLinearizabilityUnderFaults(t *testing.T) {
	runInProcess(t, linConfig{
		name: "lin-short", nodes: 3, tenants: 3, keys: 4, workers: 9,
		duration: 20 * time.Second, faults: allFaults, seed: testSeed(t),
	})
}

// faultSplit partitions the cluster into two random groups, a minority and
// a majority (with three nodes, one against two).
var faultSplit = fault{"split", func(ctx context.Context, n *nemesis) error {
	p := n.rng.Perm(len(n.c.nodes))
	k := 1 + n.rng.IntN((len(p)-1)/2) // the minority: 1 .. (n-1)/2 nodes
	var minority, majority []string
	for i, j := range p {
		if i < k {
			minority = append(minority, n.c.nodes[j].id)
		} else {
			majority = append(majority, n.c.nodes[j].id)
		}
	}
	n.note("partition %v | %v", minority, majority)
	n.c.net.Partition(minority, majority)
	pause(ctx, n.between(500*time.Millisecond, 3*time.Second))
	n.c.net.Heal()
	return nil
}}
