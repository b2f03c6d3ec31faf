package proof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// The attacks of hardening issue 18, item 1 ("quadratic apply") and the bulk
// work of item 6: one tenant's expensive writes, imports and delete-ranges
// must not hold every other tenant's requests. A victim tenant runs
// linearizable gets and writes at a fixed rate (latency measured from when
// each request was due, so a stall counts for every request it delays)
// while an attacker does the most expensive thing the limits allow.

// victimP99Bound is the seed's p99 target for the victim.
const victimP99Bound = 100 * time.Millisecond

// normalBound is the victim's p99 bound in the normal run (make test runs
// with the race detector, under which the victim's p99 on two shared cores
// is about 200 ms with no attack at all). The 100 ms bound holds under
// TENANTKV_ATTACK_FULL=1, to be run without the race detector.
const normalBound = time.Second

// p99Bound is the victim's p99 bound of this run.
func p99Bound() time.Duration {
	if attackFull() {
		return victimP99Bound
	}
	return normalBound
}

// attackFull reports whether the bulk attacks run at the full size
// (200,000 keys): TENANTKV_ATTACK_FULL=1. The normal run uses 50,000 keys
// to stay within make test's budget on two cores.
func attackFull() bool { return os.Getenv("TENANTKV_ATTACK_FULL") == "1" }

// victim issues linearizable sets and gets of one tenant at a fixed rate,
// each request on its own (as many independent clients would), and records
// each latency. A stall of the apply loop delays every request due during
// it, so it shows in the percentiles in proportion to its length.
type victim struct {
	db   *client.DB
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	lat  []time.Duration
	errs []error
}

const (
	victimInterval = 2500 * time.Microsecond // 400 requests a second
	victimInFlight = 512                     // more in flight is a failure
)

func startVictim(db *client.DB) *victim {
	v := &victim{db: db, stop: make(chan struct{})}
	tn := db.Tenant("")
	sem := make(chan struct{}, victimInFlight)
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		start := time.Now()
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * victimInterval)
			if d := time.Until(due); d > 0 {
				select {
				case <-v.stop:
					return
				case <-time.After(d):
				}
			}
			select {
			case <-v.stop:
				return
			case sem <- struct{}{}:
			}
			v.wg.Add(1)
			go func() {
				defer v.wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				k := fmt.Appendf(nil, "v/%d", i%100)
				var err error
				if i%2 == 0 {
					err = tn.Set(ctx, k, fmt.Appendf(nil, "%d", i))
				} else {
					_, err = tn.Get(ctx, k)
					if errors.Is(err, client.ErrNotFound) {
						err = nil
					}
				}
				d := time.Since(due)
				v.mu.Lock()
				v.lat = append(v.lat, d)
				if err != nil {
					v.errs = append(v.errs, err)
				}
				v.mu.Unlock()
			}()
		}
	}()
	return v
}

// finish stops the victim and returns its p99 and maximum; it fails t on
// any error.
func (v *victim) finish(t *testing.T, what string) (p99, worst time.Duration) {
	t.Helper()
	close(v.stop)
	v.wg.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, err := range v.errs {
		if i == 3 {
			break
		}
		t.Errorf("%s: victim request failed: %v", what, err)
	}
	if len(v.lat) < 20 {
		t.Fatalf("%s: victim made only %d requests", what, len(v.lat))
	}
	slices.Sort(v.lat)
	p50 := v.lat[len(v.lat)/2]
	p99 = v.lat[len(v.lat)*99/100]
	worst = v.lat[len(v.lat)-1]
	t.Logf("%s: victim %d requests, p50 %v, p99 %v, max %v", what, len(v.lat),
		p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), worst.Round(time.Millisecond))
	return p99, worst
}

// newAttackCluster is newCluster with raft's default timing. It runs raft with its default timing (1 s heartbeat timeout), as a node
// does in production: the test is about the apply loop, not elections, and
// with the harness's 200 ms timeouts three in-process nodes on two shared
// cores lose their leader under any heavy load.
func newAttackCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return newClusterTuned(t, n, server.RaftTuning{})
}

// attackSetup creates tenants victim and attacker and returns a client of
// the victim and the attacker's token.
func attackSetup(t *testing.T, c *cluster) (*client.DB, string) {
	t.Helper()
	ctx := t.Context()
	for _, n := range []string{"victim", "attacker"} {
		if _, err := c.admin.CreateTenant(ctx, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	vt, err := c.admin.NewTenantToken(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	at, err := c.admin.NewTenantToken(ctx, "attacker")
	if err != nil {
		t.Fatal(err)
	}
	db, err := client.Open(ctx, c.endpoints(), &client.Options{Token: vt, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Tenant("").Set(ctx, []byte("warm"), []byte("up")); err != nil {
		t.Fatal(err)
	}
	return db, at
}

// attackMutations is the most expensive write the limits allow: half
// distinct sets, half delete-ranges covering none of them, interleaved, so
// that every delete-range is later than some sets and earlier than others.
// round makes each write's keys new.
func attackMutations(rng *rand.Rand, round int) []wire.Mutation {
	n := wire.MaxMutations
	muts := make([]wire.Mutation, 0, n)
	for i := 0; len(muts) < n; i++ {
		k := fmt.Appendf(nil, "a/%08d/%06d/k", round, i)
		muts = append(muts, wire.Mutation{Kind: wire.MutSet, Key: k, Value: []byte{byte(rng.Uint32())}})
		// [k+"x", k+"y") holds no key this write sets.
		muts = append(muts, wire.Mutation{Kind: wire.MutDeleteRange,
			Key: append(bytes.Clone(k), 'x'), End: append(bytes.Clone(k), 'y')})
	}
	return muts
}

// attackWrites sends expensive writes from several connections, as
// TenantWrite (op 15) and as TxnCommit (op 17), until stop. It returns the
// number of writes sent and the bytes they carried.
func attackWrites(ctx context.Context, t *testing.T, addr, token string, seed uint64, stop <-chan struct{}) (func() (int64, int64), *sync.WaitGroup) {
	var sent, size atomic.Int64
	var round atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			rc, _, err := loginRaw(ctx, addr, token)
			if err != nil {
				t.Errorf("attacker %d: %v", w, err)
				return
			}
			defer rc.Close()
			rc.timeout = 5 * time.Minute
			for {
				select {
				case <-stop:
					return
				default:
				}
				muts := attackMutations(rng, int(round.Add(1)))
				req := &wire.Request{Op: wire.OpBatch, Muts: muts}
				if w == 2 {
					// A commit: read version first, then the same mutations.
					resp, _, err := rc.call(&wire.Request{Op: wire.OpReadVersion})
					if err != nil {
						t.Errorf("attacker %d: read version: %v", w, err)
						return
					}
					req = &wire.Request{Op: wire.OpCommit, ReadVersion: resp.DataVersion, Muts: muts}
				}
				resp, body, err := rc.call(req)
				if err != nil {
					t.Errorf("attacker %d: %v", w, err)
					return
				}
				if resp.Code != wire.CodeOK {
					t.Errorf("attacker %d: the largest allowed write was refused: %s: %s", w, resp.Code, resp.Msg)
					return
				}
				sent.Add(1)
				size.Add(int64(len(body)))
				for i := range muts {
					size.Add(int64(len(muts[i].Key) + len(muts[i].Value) + len(muts[i].End)))
				}
			}
		}()
	}
	return func() (int64, int64) { return sent.Load(), size.Load() }, &wg
}

// TestAttackApplyCost: an attacker's most expensive allowed writes (many
// distinct sets and non-covering delete-ranges, as batches and as commits,
// several at once) keep the victim's p99 under 100 ms on one node and on
// three; a node that joins afterwards catches up in time proportional to
// what was written.
//
// The normal run checks one node against normalBound, which the quadratic
// apply (victim p99 5 to 7 s) fails by far; TENANTKV_ATTACK_FULL=1 runs
// one and three nodes against 100 ms.
func TestAttackApplyCost(t *testing.T) {
	sizes, bound := []int{1}, p99Bound()
	if attackFull() {
		sizes = []int{1, 3}
	}
	for _, nodes := range sizes {
		t.Run(fmt.Sprintf("%d-nodes", nodes), func(t *testing.T) {
			seed := testSeed(t)
			c := newAttackCluster(t, nodes)
			ctx := t.Context()
			vdb, atok := attackSetup(t, c)
			leader, err := c.waitLeader(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The victim alone first: the machine's own figure.
			v := startVictim(vdb)
			pause(ctx, 2*time.Second)
			v.finish(t, "no attack (baseline)")
			v = startVictim(vdb)
			stop := make(chan struct{})
			counts, wg := attackWrites(ctx, t, leader.listen, atok, seed, stop)
			dur := 6 * time.Second
			if raceEnabled {
				dur = 4 * time.Second
			}
			pause(ctx, dur)
			p99, _ := v.finish(t, "expensive writes")
			close(stop)
			wg.Wait()
			writes, size := counts()
			t.Logf("attacker: %d writes of %d mutations, %d KiB", writes, wire.MaxMutations, size>>10)
			if writes < 2 {
				t.Errorf("the attacker completed only %d writes in %v", writes, dur)
			}
			if p99 > bound {
				t.Errorf("victim p99 %v under expensive writes, want < %v", p99, bound)
			}
			if nodes == 1 && !t.Failed() {
				joinAfter(t, c, size)
			}
		})
	}
}

// joinAfter adds a node to c and checks that it reaches the leader's
// applied index in time proportional to the bytes written (a generous
// 1 MB/s, and at least 60 s).
func joinAfter(t *testing.T, c *cluster, written int64) {
	t.Helper()
	ctx := t.Context()
	st, err := c.status(ctx, c.nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	target := st.AppliedIndex
	nd := &testNode{idx: len(c.nodes), id: c.nodes[0].id[:len(c.nodes[0].id)-1] + strconv.Itoa(len(c.nodes)+1),
		dir: filepath.Join(filepath.Dir(c.nodes[0].dir), fmt.Sprintf("n%d", len(c.nodes)+1))}
	p, err := c.net.Listen(nd.id)
	if err != nil {
		t.Fatal(err)
	}
	nd.proxy = p
	c.nodes = append(c.nodes, nd)
	bound := max(60*time.Second, time.Duration(written/(1<<20))*time.Second)
	start := time.Now()
	jctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := c.firstStart(jctx, nd); err != nil {
		t.Fatalf("join after the attack: %v", err)
	}
	err = poll(jctx, func() error {
		st, err := c.status(jctx, nd)
		if err != nil {
			return err
		}
		if st.AppliedIndex < target {
			return fmt.Errorf("joiner applied %d of %d", st.AppliedIndex, target)
		}
		return nil
	})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("a node joining after %d KiB of expensive writes did not catch up within %v: %v", written>>10, bound, err)
	}
	t.Logf("a node joining after %d KiB of expensive writes caught up to index %d in %v (bound %v)",
		written>>10, target, took.Round(time.Millisecond), bound)
}

// TestAttackBulkWork: the victim's p99 stays under 100 ms while another
// tenant imports 200,000 keys, and while that tenant deletes them with one
// delete-range (TENANTKV_ATTACK_FULL=1; the normal run is a smoke test
// with 50,000 keys and normalBound, which the old code passed too).
func TestAttackBulkWork(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	keys := 50_000
	if attackFull() {
		keys = 200_000
	}
	c := newAttackCluster(t, 1)
	ctx := t.Context()
	vdb, atok := attackSetup(t, c)

	// An export file of keys records, made locally.
	var file bytes.Buffer
	ew, err := client.NewExportWriter(&file, &client.ExportHeader{Name: "bulk", State: client.StateActive})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 100)
	for i := range keys {
		for j := range val {
			val[j] = byte('a' + rng.IntN(26))
		}
		if err := ew.Add(fmt.Appendf(nil, "bulk/%08d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}

	v := startVictim(vdb)
	pause(ctx, 200*time.Millisecond)
	start := time.Now()
	if _, err := c.admin.ImportTenant(ctx, "bulk", bytes.NewReader(file.Bytes()), func(client.Progress) {}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	pause(ctx, 200*time.Millisecond)
	p99, _ := v.finish(t, fmt.Sprintf("import of %d keys", keys))
	t.Logf("import of %d keys took %v", keys, took.Round(time.Millisecond))
	if p99 > p99Bound() {
		t.Errorf("victim p99 %v during an import of %d keys, want < %v", p99, keys, p99Bound())
	}

	// One delete-range over all of them, by the importing tenant itself.
	btok, err := c.admin.NewTenantToken(ctx, "bulk")
	if err != nil {
		t.Fatal(err)
	}
	_ = atok
	bdb, err := client.Open(ctx, c.endpoints(), &client.Options{Token: btok})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	v = startVictim(vdb)
	pause(ctx, 300*time.Millisecond)
	start = time.Now()
	if err := bdb.Tenant("").DeleteRange(ctx, client.KeyRange{}); err != nil {
		t.Fatal(err)
	}
	took = time.Since(start)
	pause(ctx, 300*time.Millisecond)
	p99, _ = v.finish(t, fmt.Sprintf("delete-range over %d keys", keys))
	t.Logf("delete-range over %d keys took %v", keys, took.Round(time.Millisecond))
	if p99 > p99Bound() {
		t.Errorf("victim p99 %v during a delete-range over %d keys, want < %v", p99, keys, p99Bound())
	}
	info, err := c.admin.TenantInfo(ctx, "bulk")
	if err != nil {
		t.Fatal(err)
	}
	if info.Usage.Keys != 0 || info.Usage.LogicalBytes != 0 {
		t.Errorf("after the delete-range the tenant's usage is %d keys, %d bytes; want 0", info.Usage.Keys, info.Usage.LogicalBytes)
	}
}

// TestAttackFillsAsTheStoreGrows imports the same 200,000 keys (50,000 in
// the normal run) into three new tenants in a row and reports each
// import's time: issue 18 measured 1.5 s, 7 s, 23 s (here before the fix:
// 3.0 s, 6.7 s, 7.4 s). The third may take at most 1.5 times the first
// (and 1 s more, for noise on shared machines; five times in the normal
// run).
func TestAttackFillsAsTheStoreGrows(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 9))
	keys := 50_000
	if attackFull() {
		keys = 200_000
	}
	c := newAttackCluster(t, 1)
	ctx := t.Context()
	var file bytes.Buffer
	ew, err := client.NewExportWriter(&file, &client.ExportHeader{Name: "fill", State: client.StateActive})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 100)
	for i := range keys {
		for j := range val {
			val[j] = byte('a' + rng.IntN(26))
		}
		if err := ew.Add(fmt.Appendf(nil, "fill/%08d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	var took []time.Duration
	for i := range 3 {
		start := time.Now()
		if _, err := c.admin.ImportTenant(ctx, fmt.Sprintf("fill-%d", i), bytes.NewReader(file.Bytes()), func(client.Progress) {}); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		t.Logf("fill %d of %d keys: %v", i+1, keys, took[i].Round(time.Millisecond))
	}
	slack := took[0] / 2
	if !attackFull() {
		slack = 4 * took[0] // small fills under the race detector are noisy
	}
	if took[2] > took[0]+slack+time.Second {
		t.Errorf("fills slow down as the store grows: %v", took)
	}
}

// TestAttackWriteLimits: a write of more than wire.MaxMutations mutations,
// even empty ones (the 16 MiB frame of mutations without key,
// value or end counted zero bytes), is refused before raft with code 27,
// as a batch and as a commit, and the node keeps serving.
func TestAttackWriteLimits(t *testing.T) {
	c := newAttackCluster(t, 1)
	ctx := t.Context()
	vdb, atok := attackSetup(t, c)
	rc, _, err := loginRaw(ctx, c.nodes[0].listen, atok)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	empty := make([]wire.Mutation, wire.MaxMutations+1)
	for i := range empty {
		empty[i] = wire.Mutation{Kind: wire.MutDelete, Key: []byte{'k'}}
	}
	for _, req := range []*wire.Request{
		{Op: wire.OpBatch, Muts: empty},
		{Op: wire.OpCommit, Muts: empty},
	} {
		resp, _, err := rc.call(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != wire.CodeTxTooLarge {
			t.Errorf("op %d with %d mutations: code %d (%s), want %d", req.Op, len(req.Muts), resp.Code, resp.Msg, wire.CodeTxTooLarge)
		}
		t.Logf("op %d with %d mutations: %s", req.Op, len(req.Muts), resp.Msg)
	}
	resp, _, err := rc.call(&wire.Request{Op: wire.OpBatch, Muts: empty[:wire.MaxMutations]})
	if err != nil || resp.Code != wire.CodeOK {
		t.Fatalf("a batch of exactly %d mutations: %v %v %s", wire.MaxMutations, err, resp.Code, resp.Msg)
	}
	if err := vdb.Tenant("").Set(ctx, []byte("after"), []byte("ok")); err != nil {
		t.Fatalf("the node stopped serving: %v", err)
	}
}
