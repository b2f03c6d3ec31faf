package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/testcluster"
	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

// startWith starts n (a builtinTCP node of c) from its directories with
// its configuration changed by edit, and returns NewNode's error.
func startWith(c *testCluster, n *testNode, edit func(*Config)) error {
	st, err := store.Open(filepath.Join(n.dir, "store"), nil)
	require.NoError(c.t, err)
	c.mu.Lock()
	n.store = st
	c.mu.Unlock()
	cfg := c.config(n, false)
	cfg.RaftAddr = n.addr
	if edit != nil {
		edit(&cfg)
	}
	node, err := NewNode(cfg)
	if err != nil {
		require.NoError(c.t, st.Close())
		c.mu.Lock()
		n.store = nil
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	n.node = node
	n.addr = node.RaftAddr()
	c.mu.Unlock()
	return nil
}

// putAcked sets k to v until a proposal of it is acknowledged: a put
// whose commit is unknown (leadership moved under load) is sent again,
// which only sets the same value once more.
func putAcked(c *testCluster, tid keyspace.TenantID, k, v string, among ...*testNode) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		_, err := c.propose(put(tid, "acme", k, v), among...)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrCommitUnknown) || attempt == 5 {
			require.NoError(c.t, err)
		}
	}
}

func memberIDs(t *testing.T, n *Node) []string {
	t.Helper()
	ms, err := n.Members(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID+"/"+m.Suffrage)
	}
	return ids
}

func wantData(t *testing.T, n *testNode, id keyspace.TenantID, kvs map[string]string) {
	t.Helper()
	for k, v := range kvs {
		got, err := n.get(id, k)
		require.NoError(t, err, "key %s on %s", k, n.id)
		require.Equal(t, v, string(got), "key %s on %s", k, n.id)
	}
}

// A backup is taken on the leader only, holds every write acknowledged
// before it and none after, and a raft directory and store restored from
// it start a one-node cluster with exactly that state, which takes writes
// and hands the state to a node that joins it.
func TestBackupRestoresAsANewCluster(t *testing.T) {
	c := newCluster(t, 3, builtinTCP, clusterOptions{})
	tid := c.createTenant("acme")
	acked := map[string]string{}
	for i := range 30 {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i)
		putAcked(c, tid, k, v)
		acked[k] = v
	}
	for _, f := range c.followers() {
		_, err := f.node.Backup(t.Context())
		require.ErrorIs(t, err, ErrNotLeader, "a follower takes no backup")
	}
	l := c.waitLeader()
	b, err := l.node.Backup(t.Context())
	require.NoError(t, err)
	c.mustPropose(put(tid, "acme", "after", "x"))
	require.GreaterOrEqual(t, b.AppliedIndex(), uint64(31))
	require.Equal(t, l.node.raft.CurrentTerm(), b.Term, "the applied entry is of the leader's term (its no-op came first)")
	st, err := b.NewStream()
	require.NoError(t, err)
	var stream bytes.Buffer
	_, err = io.Copy(&stream, st)
	require.NoError(t, err)
	sum, err := st.Checksum()
	require.NoError(t, err)
	st.Close()
	b.Close()

	// Restore: the raft directory and the store, from the same stream.
	dir := t.TempDir()
	addr := testcluster.MustFreePorts(t, 1)[0]
	target := RestoreTarget{Dir: filepath.Join(dir, "raft"), StoreDir: filepath.Join(dir, "store"), ID: "r0", RaftAddr: addr,
		Index: b.AppliedIndex(), Term: b.Term}
	got, err := RestoreNode(target, bytes.NewReader(stream.Bytes()))
	require.NoError(t, err)
	require.Equal(t, RestoredState{AppliedIndex: b.AppliedIndex(), Checksum: sum}, got)
	_, err = RestoreNode(target, bytes.NewReader(stream.Bytes()))
	require.ErrorContains(t, err, "is not empty")
	other := t.TempDir()
	_, err = RestoreNode(RestoreTarget{Dir: filepath.Join(other, "raft"), StoreDir: filepath.Join(other, "store"), ID: "r0", RaftAddr: addr,
		Index: b.AppliedIndex(), Term: b.Term}, bytes.NewReader(stream.Bytes()[:stream.Len()-1]))
	require.ErrorIs(t, err, store.ErrCorruptStream, "a truncated stream")

	r := &testCluster{t: t, kind: builtinTCP, base: t.TempDir()}
	t.Cleanup(r.shutdown)
	rn := &testNode{c: r, id: "r0", dir: dir, addr: addr}
	r.nodes = append(r.nodes, rn)
	require.NoError(t, startWith(r, rn, nil))
	r.waitLeader()
	require.Empty(t, rn.node.restoredOnStart, "the store is at the snapshot: nothing to restore")
	require.Equal(t, []string{"r0/Voter"}, memberIDs(t, rn.node))
	require.Greater(t, rn.node.raft.CurrentTerm(), b.Term, "the first election is of a later term than the backup's")
	wantData(t, rn, tid, acked)
	_, err = rn.get(tid, "after")
	require.ErrorIs(t, err, store.ErrNotFound)
	r.mustPropose(put(tid, "acme", "new", "y"))
	acked["new"] = "y"

	// A node that joins gets the state through the restored snapshot.
	j := r.addNode()
	r.join(j)
	r.waitConverged()
	wantData(t, j, tid, acked)
}

// A survivor of a cluster that lost two of three nodes starts with
// ForceNewCluster as the only voter of a cluster holding its data; the
// flag is a one-shot.
func TestForceNewCluster(t *testing.T) {
	c := newCluster(t, 3, builtinTCP, clusterOptions{snapshotThreshold: 20, trailingLogs: 10, snapshotInterval: 100 * time.Millisecond})
	tid := c.createTenant("acme")
	acked := map[string]string{}
	for i := range 60 { // past a snapshot, and entries after it
		k := fmt.Sprintf("k%02d", i)
		putAcked(c, tid, k, k)
		acked[k] = k
	}
	c.waitConverged()
	survivor := c.followers()[0]
	require.Eventually(t, func() bool {
		metas, err := survivor.node.snaps.List()
		return err == nil && len(metas) > 0
	}, 20*time.Second, 20*time.Millisecond, "a snapshot on the survivor")
	for _, n := range c.live() {
		c.kill(n)
	}

	// Without the flag the survivor cannot elect itself.
	require.NoError(t, startWith(c, survivor, nil))
	alone := survivor.node // the condition may run once more after Never returned
	require.Never(t, func() bool { return alone.IsLeader() }, 5*testcluster.ElectionTimeout, 20*time.Millisecond)
	c.kill(survivor)

	require.NoError(t, startWith(c, survivor, func(cfg *Config) { cfg.ForceNewCluster = true }))
	c.waitLeader(survivor)
	require.Equal(t, []string{survivor.id + "/Voter"}, memberIDs(t, survivor.node))
	require.Empty(t, survivor.node.restoredOnStart, "the durable store needs no restore")
	wantData(t, survivor, tid, acked)
	c.mustPropose(put(tid, "acme", "after", "x"), survivor)
	acked["after"] = "x"
	_, err := os.Stat(filepath.Join(survivor.dir, "raft", forcedFile))
	require.NoError(t, err)
	c.kill(survivor)

	// A normal start: the same one-node cluster.
	require.NoError(t, startWith(c, survivor, nil))
	c.waitLeader(survivor)
	wantData(t, survivor, tid, acked)
	c.kill(survivor)
	// The flag again while alone: nothing to do.
	require.NoError(t, startWith(c, survivor, func(cfg *Config) { cfg.ForceNewCluster = true }))
	c.waitLeader(survivor)
	wantData(t, survivor, tid, acked)

	// Once another node joined, the flag is refused.
	j := c.addNode()
	c.start(j, false)
	require.Eventually(t, func() bool { return survivor.node.AddVoter(t.Context(), j.id, j.addr) == nil }, 20*time.Second, 20*time.Millisecond)
	c.waitConverged()
	c.kill(survivor)
	err = startWith(c, survivor, func(cfg *Config) { cfg.ForceNewCluster = true })
	require.ErrorContains(t, err, "already forced into a new cluster")
	require.ErrorContains(t, err, j.id)
	require.NoError(t, startWith(c, survivor, nil))
	c.waitLeader(survivor, j)
	wantData(t, j, tid, acked)
}

// ForceNewCluster on a directory without raft state is refused.
func TestForceNewClusterNeedsState(t *testing.T) {
	dir := t.TempDir()
	_, err := NewNode(Config{ID: "x", Dir: filepath.Join(dir, "raft"), StoreDir: filepath.Join(dir, "store"),
		RaftAddr: "127.0.0.1:0", ForceNewCluster: true, Logger: testLogger()})
	require.ErrorContains(t, err, "holds no raft state")
}

// latestConfiguration follows configuration entries past the snapshot,
// and a configuration entry that does not decode is an error, not a panic.
func TestLatestConfiguration(t *testing.T) {
	logs := hraft.NewInmemStore()
	snaps := hraft.NewInmemSnapshotStore()
	conf := hraft.Configuration{Servers: []hraft.Server{{ID: "a", Address: "x", Suffrage: hraft.Voter}}}
	require.NoError(t, logs.StoreLogs([]*hraft.Log{
		{Index: 1, Term: 1, Type: hraft.LogConfiguration, Data: hraft.EncodeConfiguration(conf)},
		{Index: 2, Term: 1, Type: hraft.LogCommand},
	}))
	got, err := latestConfiguration(snaps, logs)
	require.NoError(t, err)
	require.Equal(t, conf, got)
	require.NoError(t, logs.StoreLog(&hraft.Log{Index: 3, Term: 1, Type: hraft.LogConfiguration, Data: []byte{0xc1}}))
	_, err = latestConfiguration(snaps, logs)
	require.ErrorContains(t, err, "log entry 3")
}

// A survivor whose store is gone (or behind its newest snapshot) is
// restored from the snapshot during the recovery, then given the log after
// it; it starts without another restore.
func TestForceNewClusterRestoresALostStore(t *testing.T) {
	c := newCluster(t, 3, builtinTCP, clusterOptions{snapshotThreshold: 20, trailingLogs: 10, snapshotInterval: 100 * time.Millisecond})
	tid := c.createTenant("acme")
	acked := map[string]string{}
	for i := range 50 {
		k := fmt.Sprintf("k%02d", i)
		putAcked(c, tid, k, k)
		acked[k] = k
	}
	c.waitConverged()
	survivor := c.followers()[0]
	require.Eventually(t, func() bool {
		metas, err := survivor.node.snaps.List()
		return err == nil && len(metas) > 0
	}, 20*time.Second, 20*time.Millisecond, "a snapshot on the survivor")
	for _, n := range c.live() {
		c.kill(n)
	}
	require.NoError(t, os.RemoveAll(filepath.Join(survivor.dir, "store")))
	require.NoError(t, startWith(c, survivor, func(cfg *Config) { cfg.ForceNewCluster = true }))
	c.waitLeader(survivor)
	require.Empty(t, survivor.node.restoredOnStart)
	require.Equal(t, int64(1), survivor.node.FSM().Stats().Restores, "restored once, by the recovery")
	wantData(t, survivor, tid, acked)
	c.mustPropose(put(tid, "acme", "after", "x"), survivor)
}
