package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/testcluster"
)

// loadWriter writes keys prefix/000000, prefix/000001, ... one at a time
// until stopped, and remembers when each write was acknowledged.
type loadWriter struct {
	prefix string
	mu     sync.Mutex
	acked  []time.Time // acked[i]: when key i was acknowledged (zero: not)
	tried  int         // keys attempted
}

func (w *loadWriter) key(i int) string { return fmt.Sprintf("%s/%06d", w.prefix, i) }

func (w *loadWriter) run(ctx context.Context, tn *client.Tenant, value []byte) {
	for i := 0; ctx.Err() == nil; i++ {
		w.mu.Lock()
		w.tried = i + 1
		w.mu.Unlock()
		err := tn.Set(ctx, []byte(w.key(i)), value)
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, time.Now())
		} else {
			w.acked = append(w.acked, time.Time{})
		}
		w.mu.Unlock()
	}
}

// check checks, against the keys present, that every write acknowledged
// before `before` is there and that what is there is a prefix of the
// writer's sequence (a write may be missing only if it was not
// acknowledged), and returns how many acknowledged writes came before.
func (w *loadWriter) check(t *testing.T, present map[string]bool, before time.Time) int {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	n, last := 0, -1
	for i := range w.tried {
		if present[w.key(i)] {
			last = i
		}
	}
	for i := range w.tried {
		ackedBefore := i < len(w.acked) && !w.acked[i].IsZero() && w.acked[i].Before(before)
		if ackedBefore {
			n++
		}
		switch {
		case ackedBefore && !present[w.key(i)]:
			t.Errorf("%s was acknowledged before the save began and is missing", w.key(i))
		case i < last && !present[w.key(i)] && i < len(w.acked) && !w.acked[i].IsZero():
			t.Errorf("%s is missing while the later %s is there: not one instant", w.key(i), w.key(last))
		}
	}
	return n
}

// keysOf lists the keys of the token's tenant on node n (stale reads: that
// node alone).
func keysOf(t *testing.T, n *nodeProc, token string) map[string]bool {
	t.Helper()
	db := openTokenDB(t, token, n.addr)
	out := map[string]bool{}
	for kv, err := range db.Tenant("").Range(t.Context(), client.KeyRange{}, &client.RangeOptions{Stale: true}) {
		if err != nil {
			t.Fatalf("range on %s: %v", n.name, err)
		}
		out[string(kv.Key)] = true
	}
	return out
}

// startOn starts `tenantkv serve` on the given ports (client, raft, http)
// with its data in dataDir and waits until it is ready.
func startOn(t *testing.T, dataDir, id string, ports []string, extra ...string) *nodeProc {
	t.Helper()
	args := append([]string{binPath, "serve", "--data", dataDir, "--node-id", id,
		"--listen", ports[0], "--raft", ports[1], "--http", ports[2], "--log-level", "debug"}, testcluster.ServeFlags()...)
	p := launch(t, id, t.TempDir(), childEnv(), shellJoin(append(args, extra...)))
	p.dataDir = dataDir
	if err := p.waitReady(t.Context()); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return p
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestE2ESnapshot is the backup and restore drill through real processes: a
// save under write load on three nodes, verified, refused when damaged,
// restored into a new data directory, from which a node starts as a new
// one-node cluster with every write acknowledged before the save, the
// saved store checksum, the old cluster's tokens, and room for others to
// join.
func TestE2ESnapshot(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tc := startTrio(t)
	c := tc.cli(t, tc.nodes...)
	c.ok("tenant", "create", "acme")
	c.ok("tenant", "create", "gone")
	c.ok("tenant", "delete", "gone")
	token := strings.TrimSpace(c.ok("tenant", "token", "acme"))
	db := openTokenDB(t, token, tc.addrs()...)
	tn := db.Tenant("")
	// Some data first, so that the save takes a while.
	for i := range 40 {
		b := tn.NewBatch()
		for j := range 50 {
			b.Set(fmt.Appendf(nil, "base/%02d/%02d", i, j), bytes.Repeat([]byte{byte(j)}, 2000))
		}
		if err := b.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(t.Context())
	writers := make([]*loadWriter, 4)
	var wg sync.WaitGroup
	for i := range writers {
		writers[i] = &loadWriter{prefix: fmt.Sprintf("w%d", i)}
		wg.Add(1)
		go func() { defer wg.Done(); writers[i].run(ctx, tn, []byte("value")) }()
	}
	eventually(t, "writes under way", failoverTimeout, func() error {
		for _, w := range writers {
			w.mu.Lock()
			n := len(w.acked)
			w.mu.Unlock()
			if n < 20 {
				return fmt.Errorf("%s: %d writes", w.prefix, n)
			}
		}
		return nil
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.tkvsnap")
	saveStart := time.Now()
	var saved snapshotJSON
	if err := json.Unmarshal([]byte(c.ok("snapshot", "save", file, "--json")), &saved); err != nil {
		t.Fatal(err)
	}
	saveEnd := time.Now()
	stop()
	wg.Wait()
	t.Logf("saved %d bytes at index %d in %v under write load", saved.Bytes, saved.AppliedIndex, saveEnd.Sub(saveStart))
	if _, err := os.Stat(file + ".part"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.part left behind: %v", file, err)
	}
	if out := c.ok("snapshot", "verify", file); !strings.Contains(out, "is sound") || !strings.Contains(out, saved.Checksum) {
		t.Errorf("snapshot verify: %q", out)
	}

	// Damaged copies are refused before anything is written.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != saved.Bytes {
		t.Fatalf("file of %d bytes, save said %d", len(data), saved.Bytes)
	}
	corrupt := bytes.Clone(data)
	corrupt[len(corrupt)/2] ^= 0x20
	damaged := map[string][]byte{"corrupt": corrupt, "truncated": data[:len(data)-len(data)/3]}
	for name, b := range damaged {
		path := filepath.Join(dir, name+".tkvsnap")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r := c.run("", "snapshot", "verify", path)
		if r.code != 1 || !strings.Contains(r.stderr, "corrupt snapshot file") {
			t.Errorf("verify %s: %v", name, r)
		}
		fresh := filepath.Join(dir, name+"-fresh") // does not exist
		empty := filepath.Join(dir, name+"-empty") // exists, empty
		if err := os.Mkdir(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{fresh, empty} {
			r := c.run("", "snapshot", "restore", path, "--data", target, "--node-id", "r1")
			if r.code != 1 || !strings.Contains(r.stderr, "corrupt snapshot file") || r.stdout != "" {
				t.Errorf("restore %s into %s: %v", name, target, r)
			}
		}
		if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restore of a %s file created %s: %v", name, fresh, err)
		}
		if es := dirEntries(t, empty); len(es) != 0 {
			t.Errorf("restore of a %s file wrote %v into %s", name, es, empty)
		}
	}
	busy := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(busy, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	if r := c.run("", "snapshot", "restore", file, "--data", busy, "--node-id", "r1"); r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("restore into a non-empty directory: %v", r)
	}
	if es := dirEntries(t, busy); len(es) != 1 {
		t.Errorf("restore into a non-empty directory changed it: %v", es)
	}

	// The restore drill.
	ports := freePorts(t, 3)
	restored := filepath.Join(dir, "restored")
	var rj snapshotJSON
	if err := json.Unmarshal([]byte(c.ok("snapshot", "restore", file, "--data", restored, "--node-id", "r1", "--raft", ports[1], "--json")), &rj); err != nil {
		t.Fatal(err)
	}
	if rj.Checksum != saved.Checksum || rj.AppliedIndex != saved.AppliedIndex {
		t.Fatalf("restored %+v, saved %+v", rj, saved)
	}
	r := startOn(t, restored, "r1", ports)
	rc := &clusterCLI{t: t, endpoints: []string{r.addr}, tokenFile: tc.tokenFile} // the old cluster's operator token
	eventually(t, "the restored node leads", failoverTimeout, func() error {
		st := rc.status()
		if ids := memberIDs(st); len(ids) != 1 || ids[0] != "r1" || st.LeaderID != "r1" {
			return fmt.Errorf("members %v, leader %q", ids, st.LeaderID)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(restored, "operator.token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the restored node made an operator token of its own: %v", err)
	}
	present := keysOf(t, r, token) // the tenant token works too
	total := 0
	for _, w := range writers {
		total += w.check(t, present, saveStart)
	}
	if total == 0 {
		t.Fatal("no write was acknowledged before the save began")
	}
	for i := range 40 {
		for j := range 50 {
			if k := fmt.Sprintf("base/%02d/%02d", i, j); !present[k] {
				t.Fatalf("%s missing", k)
			}
		}
	}
	if out := rc.ok("tenant", "list"); !strings.Contains(out, "acme") || strings.Contains(out, "gone") {
		t.Errorf("tenant list on the restored node: %q", out)
	}
	t.Logf("restored node holds %d keys; %d writes were acknowledged before the save began", len(present), total)

	// It takes writes, and another node joins it.
	rc.ok("--tenant", "acme", "put", "after-restore", "yes")
	j := startNode(t, filepath.Join(dir, "joiner"), "r2", "--join", r.addr, "--token-file", tc.tokenFile)
	jc := &clusterCLI{t: t, endpoints: []string{j.addr}, tokenFile: tc.tokenFile}
	if got := keysOf(t, j, token); len(got) != len(present)+1 || !got["after-restore"] {
		t.Errorf("the joined node holds %d keys, want %d", len(got), len(present)+1)
	}
	if ids := memberIDs(jc.status()); strings.Join(ids, ",") != "r1,r2" {
		t.Errorf("members after the join: %v", ids)
	}
}

// TestE2EForceNewCluster kills two nodes of three and recovers the survivor
// with --force-new-cluster: it serves its data, reads and writes, as a
// one-node cluster, said so loudly, and the next start without the flag is
// a normal one.
func TestE2EForceNewCluster(t *testing.T) {
	skipShort(t)
	t.Parallel()
	tc := startTrio(t)
	c := tc.cli(t, tc.nodes...)
	c.ok("tenant", "create", "acme")
	token := strings.TrimSpace(c.ok("tenant", "token", "acme"))
	kvs := map[string]string{}
	for i := range 30 {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)
		c.ok("--tenant", "acme", "put", k, v)
		kvs[k] = v
	}
	leader, followers := tc.roles(t)
	eventually(t, "every node applied everything", failoverTimeout, func() error {
		want := tc.appliedIndex(t, leader)
		for _, f := range followers {
			if got := tc.appliedIndex(t, f); got < want {
				return fmt.Errorf("%s at %d, leader at %d", f.name, got, want)
			}
		}
		return nil
	})
	survivor := followers[0]
	leader.kill()
	followers[1].kill()
	sc := tc.cli(t, survivor)
	if r := sc.run("", "--tenant", "acme", "--timeout", "2s", "put", "k", "v"); r.code == 0 {
		t.Fatalf("a write without a quorum succeeded: %v", r)
	}

	survivor.kill()
	line := strings.TrimPrefix(survivor.cmd.Args[len(survivor.cmd.Args)-1], "exec ")
	p := launch(t, survivor.name, survivor.cmd.Dir, survivor.cmd.Env, line+" '--force-new-cluster'")
	p.dataDir = survivor.dataDir
	if err := p.waitReady(t.Context()); err != nil {
		t.Fatalf("start with --force-new-cluster: %v", err)
	}
	warns := 0
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "--force-new-cluster") {
			warns++
		}
	}
	if warns < 3 {
		t.Errorf("%d WARN lines about --force-new-cluster; its log:\n%s", warns, tail(p.stderr.String(), 3000))
	}
	sc.endpoints = []string{p.addr}
	st := sc.status()
	if ids := memberIDs(st); len(ids) != 1 || ids[0] != survivor.id || st.LeaderID != survivor.id {
		t.Fatalf("after --force-new-cluster: members %v, leader %q", ids, st.LeaderID)
	}
	tc.checkData(t, p, token, kvs)
	for i := range 5 {
		k := fmt.Sprintf("after%d", i)
		sc.ok("--tenant", "acme", "put", k, "x")
		kvs[k] = "x"
	}
	if out := sc.ok("--tenant", "acme", "get", "k07"); out != "v7\n" {
		t.Errorf("linearizable get after the recovery: %q", out)
	}

	// A normal start: the flag was needed once.
	p.graceful(t)
	q := launch(t, survivor.name, survivor.cmd.Dir, survivor.cmd.Env, line)
	q.dataDir = survivor.dataDir
	if err := q.waitReady(t.Context()); err != nil {
		t.Fatalf("restart without the flag: %v", err)
	}
	if strings.Contains(q.stderr.String(), "REWRITING") {
		t.Error("a start without the flag rewrote the configuration")
	}
	sc.endpoints = []string{q.addr}
	tc.checkData(t, q, token, kvs)
	sc.ok("--tenant", "acme", "put", "after-restart", "x")
}
