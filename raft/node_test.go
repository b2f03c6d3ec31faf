package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/keyspace"
	"github.com/tenantkv/tenantkv/store"
)

func TestConfigValidate(t *testing.T) {
	st, err := store.Open("", &store.Options{InMemory: true})
	require.NoError(t, err)
	defer st.Close()
	good := Config{ID: "n1", Dir: t.TempDir(), RaftAddr: "127.0.0.1:0", Store: st}
	require.NoError(t, good.Validate())
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no id", func(c *Config) { c.ID = "" }, "empty ID"},
		{"no dir", func(c *Config) { c.Dir = "" }, "empty Dir"},
		{"no store", func(c *Config) { c.Store = nil }, "exactly one of Store and StoreDir"},
		{"two stores", func(c *Config) { c.StoreDir = t.TempDir() }, "exactly one of Store and StoreDir"},
		{"bad store options", func(c *Config) { c.StoreOptions = &store.Options{CacheSize: -1} }, "negative cache size"},
		{"no address", func(c *Config) { c.RaftAddr = "" }, "RaftAddr"},
		{"too many entries", func(c *Config) { c.MaxAppendEntries = 5000 }, "MaxAppendEntries"},
		{"lease above heartbeat", func(c *Config) {
			c.HeartbeatTimeout = 50 * time.Millisecond
			c.LeaderLeaseTimeout = time.Second
		}, "LeaderLeaseTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mut(&c)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestSingleNodeLifecycle(t *testing.T) {
	c := newCluster(t, 1, builtinTCP, clusterOptions{publish: true})
	n := c.nodes[0]
	require.True(t, strings.HasPrefix(n.node.RaftAddr(), "127.0.0.1:"))
	require.NotEqual(t, "127.0.0.1:0", n.node.RaftAddr())
	id, addr := n.node.Leader()
	require.Equal(t, "n0", id)
	require.Equal(t, n.node.RaftAddr(), addr)

	tid := c.createTenant("solo")
	c.mustPropose(put(tid, "solo", "k", "v"))
	require.NoError(t, n.node.ReadBarrier(t.Context()))
	got, err := n.get(tid, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(got))

	members, err := n.node.Members(t.Context())
	require.NoError(t, err)
	require.Equal(t, []Member{{ID: "n0", RaftAddr: n.addr, Suffrage: "Voter", IsLeader: true, ClientAddr: "client-of-n0"}}, members)
	require.Equal(t, fmt.Sprint(n.node.AppliedIndex()), n.node.Stats()["fsm_applied_index"])

	// Restart on the same port, from the same directories.
	c.kill(n)
	c.restart(n)
	c.waitLeader()
	got, err = n.get(tid, "k")
	require.NoError(t, err)
	require.Equal(t, "v", string(got))
	require.Empty(t, n.node.restoredOnStart)

	require.NoError(t, n.node.Shutdown())
	require.NoError(t, n.node.Shutdown(), "Shutdown is idempotent")
	_, err = n.node.Propose(t.Context(), put(tid, "solo", "k", "v"))
	require.ErrorIs(t, err, ErrShutdown)
	require.ErrorIs(t, n.node.ReadBarrier(t.Context()), ErrShutdown)
	select {
	case <-n.node.Done():
	default:
		t.Fatal("Done not closed after Shutdown")
	}
	require.NoError(t, n.store.Close())
	n.node, n.store = nil, nil
}

func TestProposeDefiniteFailures(t *testing.T) {
	c := newCluster(t, 1, inmemTransport, clusterOptions{})
	n := c.nodes[0].node
	before := n.raft.LastIndex()

	_, err := n.Propose(t.Context(), &command.TenantWrite{TenantID: 1, TenantName: "x", Ops: []command.Op{{Kind: command.OpSet}}})
	require.ErrorIs(t, err, keyspace.ErrInvalidKey)
	_, err = n.Propose(t.Context(), nil)
	require.ErrorIs(t, err, command.ErrBadCommand)
	ops := make([]command.Op, 150)
	for i := range ops {
		ops[i] = command.Op{Kind: command.OpSet, Key: []byte(fmt.Sprint(i)), Value: make([]byte, keyspace.MaxValueSize)}
	}
	_, err = n.Propose(t.Context(), &command.TenantWrite{TenantID: 1, TenantName: "x", Ops: ops})
	require.ErrorIs(t, err, command.ErrTxTooLarge) // a write's own limit, checked before the command's
	_, err = n.Propose(t.Context(), &command.TenantWrite{TenantID: 1, TenantName: "x", Ops: make([]command.Op, command.MaxMutations+1)})
	require.ErrorIs(t, err, command.ErrTxTooLarge)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = n.Propose(ctx, &command.CreateTenant{Name: "x"})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, ErrCommitUnknown)
	require.Equal(t, before, n.raft.LastIndex(), "nothing reached the log")

	// Refused at apply time: committed to the log, no effect, plain error.
	_, err = n.Propose(t.Context(), put(99, "ghost", "k", "v"))
	require.ErrorIs(t, err, fsm.ErrTenantNotFound)
	require.NotErrorIs(t, err, ErrCommitUnknown)
}

// TestNodeOwnsStore runs a node that opens its store from StoreDir: its
// Store view reads what raft applied, and Close closes the store (a second
// open of the directory would otherwise fail on Pebble's lock).
func TestNodeOwnsStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	_, trans := hraft.NewInmemTransport("")
	n, err := NewNode(Config{
		ID: "n1", Dir: t.TempDir(), StoreDir: dir, Bootstrap: true, Transport: trans,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, Logger: testLogger(),
	})
	require.NoError(t, err)
	defer n.Close()
	require.Eventually(t, func() bool { return n.leader.readyTerm() != 0 }, 10*time.Second, time.Millisecond)
	r, err := n.Propose(t.Context(), &command.CreateTenant{Name: "owned"})
	require.NoError(t, err)
	_, err = n.Propose(t.Context(), put(r.TenantID, "owned", "k", "v"))
	require.NoError(t, err)
	view, err := n.Store().Tenant(r.TenantID)
	require.NoError(t, err)
	got, err := view.Get([]byte("k"))
	require.NoError(t, err)
	require.Equal(t, "v", string(got))
	applied, err := n.Store().AppliedIndex()
	require.NoError(t, err)
	require.Equal(t, n.AppliedIndex(), applied)
	require.NoError(t, n.FlushStore())

	require.NoError(t, n.Close())
	require.NoError(t, n.Close(), "Close is idempotent")
	st, err := store.Open(dir, nil)
	require.NoError(t, err, "the node closed its store")
	defer st.Close()
	v, err := st.Tenant(r.TenantID)
	require.NoError(t, err)
	got, err = v.Get([]byte("k"))
	require.NoError(t, err)
	require.Equal(t, "v", string(got))
}

func TestFatalStorageErrorStopsNode(t *testing.T) {
	var onFatal atomic.Pointer[error]
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	_, trans := hraft.NewInmemTransport("")
	n, err := NewNode(Config{
		ID: "n1", Dir: t.TempDir(), Store: st, Bootstrap: true, Transport: trans,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, Logger: testLogger(),
		OnFatal: func(err error) { onFatal.Store(&err) },
	})
	require.NoError(t, err)
	defer n.Shutdown()
	require.Eventually(t, func() bool { return n.leader.readyTerm() != 0 }, 10*time.Second, time.Millisecond)
	_, err = n.Propose(t.Context(), &command.CreateTenant{Name: "before"})
	require.NoError(t, err)

	injected := errors.New("injected: EIO")
	n.fsm.FailCommits(injected)
	_, err = n.Propose(t.Context(), &command.CreateTenant{Name: "after"})
	require.ErrorIs(t, err, ErrCommitUnknown, "the entry is committed in raft but not applied here")

	select {
	case <-n.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("node did not stop after a storage failure")
	}
	require.ErrorIs(t, n.Err(), injected)
	require.Eventually(t, func() bool { return onFatal.Load() != nil }, 5*time.Second, time.Millisecond)
	require.ErrorIs(t, *onFatal.Load(), injected)
	_, err = n.Propose(t.Context(), &command.CreateTenant{Name: "later"})
	require.ErrorIs(t, err, ErrShutdown)
	require.ErrorIs(t, n.ReadBarrier(t.Context()), ErrShutdown)
	_, err = n.FSM().LookupTenant("after")
	require.ErrorIs(t, err, fsm.ErrTenantNotFound)
}

func TestReadBarrierBatchesRounds(t *testing.T) {
	c := newCluster(t, 3, inmemTransport, clusterOptions{})
	l := c.waitLeader()
	tid := c.createTenant("r")
	const readers = 200
	roundsBefore := l.node.reads.rounds.Load()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%10 == 0 {
				_, _ = l.node.Propose(t.Context(), put(tid, "r", fmt.Sprint(i), "v"))
			}
			if err := l.node.ReadBarrier(t.Context()); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	rounds := l.node.reads.rounds.Load() - roundsBefore
	require.Less(t, rounds, int64(readers/2), "concurrent barriers should share quorum rounds")
	t.Logf("%d barriers, %d quorum rounds", readers, rounds)
}

// TestReadBarrierSeesEveryAcknowledgedWrite checks, from one client's
// point of view, that a read after a barrier returns the latest
// acknowledged write, across a leadership transfer.
func TestReadBarrierSeesEveryAcknowledgedWrite(t *testing.T) {
	c := newCluster(t, 3, tcpTransport, clusterOptions{})
	tid := c.createTenant("lin")
	for i := range 30 {
		v := fmt.Sprint(i)
		c.mustPropose(put(tid, "lin", "k", v))
		if i == 15 {
			l := c.waitLeader()
			err := l.node.TransferLeadership(t.Context())
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool {
			l := c.waitLeader()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if err := l.node.ReadBarrier(ctx); err != nil {
				return false
			}
			got, err := l.get(tid, "k")
			require.NoError(t, err)
			require.Equal(t, v, string(got), "stale read after barrier on %s", l.id)
			return true
		}, 10*time.Second, time.Millisecond)
	}
}

func TestMembership(t *testing.T) {
	c := newCluster(t, 3, inmemTransport, clusterOptions{publish: true})
	l := c.waitLeader()
	f := c.followers()[0]
	// Idempotent add.
	require.NoError(t, l.node.AddVoter(t.Context(), f.id, f.addr))
	// Only the leader changes membership.
	var nle *NotLeaderError
	require.ErrorAs(t, f.node.AddVoter(t.Context(), "x", "y"), &nle)
	require.Equal(t, l.id, nle.LeaderID)
	require.ErrorIs(t, f.node.RemoveServer(t.Context(), "x"), ErrNotLeader)
	require.ErrorIs(t, f.node.TransferLeadership(t.Context()), ErrNotLeader)

	members, err := f.node.Members(t.Context())
	require.NoError(t, err)
	require.Len(t, members, 3)
	leaders := 0
	for _, m := range members {
		require.Equal(t, "Voter", m.Suffrage)
		if m.IsLeader {
			leaders++
			require.Equal(t, l.id, m.ID)
			require.Equal(t, "client-of-"+l.id, m.ClientAddr)
		}
	}
	require.Equal(t, 1, leaders)

	// Follower metadata is published by whoever adds it (the server does
	// this on join).
	c.mustPropose(&command.SetMember{NodeID: f.id, ClientAddr: "client-of-" + f.id})
	require.NoError(t, l.node.RemoveServer(t.Context(), "unknown")) // idempotent
	require.NoError(t, l.node.RemoveServer(t.Context(), f.id))
	c.kill(f)
	c.waitConverged()
	infos, err := l.node.FSM().MemberInfos()
	require.NoError(t, err)
	require.NotContains(t, infos, f.id)
	members, err = l.node.Members(t.Context())
	require.NoError(t, err)
	require.Len(t, members, 2)

	// Leadership transfer moves the leader and the new one publishes itself.
	require.NoError(t, l.node.TransferLeadership(t.Context()))
	nl := c.waitLeader()
	require.NotEqual(t, l.id, nl.id)
	require.Eventually(t, func() bool {
		m, err := l.node.FSM().MemberInfo(nl.id)
		return err == nil && m.ClientAddr == "client-of-"+nl.id
	}, 10*time.Second, time.Millisecond)
}

func TestNewNodeRefusesForeignStore(t *testing.T) {
	c := newCluster(t, 1, inmemTransport, clusterOptions{})
	n := c.nodes[0]
	c.createTenant("a")
	c.kill(n)
	st, err := store.Open(filepath.Join(n.dir, "store"), nil)
	require.NoError(t, err)
	defer st.Close()
	_, trans := hraft.NewInmemTransport("")
	_, err = NewNode(Config{ID: "fresh", Dir: t.TempDir(), Store: st, Transport: trans, Bootstrap: true})
	require.ErrorContains(t, err, "holds no raft state")
}

// TestRestoreOnStart covers the three ways a node can find its store when
// it starts next to snapshots: up to date (no restore), behind the newest
// snapshot, and holding a partial restore (both restore).
func TestRestoreOnStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, storeDir string)
		restore bool
	}{
		{"store-up-to-date", func(*testing.T, string) {}, false},
		{"store-behind-snapshot", func(t *testing.T, dir string) {
			// The store lost everything (replaced by an empty one): raft
			// must restore, or entries up to the snapshot would be lost.
			require.NoError(t, removeAll(dir))
		}, true},
		{"store-restore-incomplete", func(t *testing.T, dir string) {
			st, err := store.Open(dir, nil)
			require.NoError(t, err)
			defer st.Close()
			var buf bytes.Buffer
			sn := st.NewSnapshot()
			_, err = sn.WriteTo(&buf)
			require.NoError(t, err)
			require.NoError(t, sn.Close())
			require.Error(t, st.Restore(bytes.NewReader(buf.Bytes()[:buf.Len()/2])))
			incomplete, err := st.RestoreIncomplete()
			require.NoError(t, err)
			require.True(t, incomplete)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, inmemTransport, clusterOptions{trailingLogs: 1000})
			n := c.nodes[0]
			tid := c.createTenant("a")
			for i := range 20 {
				c.mustPropose(put(tid, "a", fmt.Sprint(i), "v"))
			}
			require.NoError(t, n.node.raft.Snapshot().Error())
			for i := range 5 { // after the snapshot: replayed from the log
				c.mustPropose(put(tid, "a", fmt.Sprint("post-", i), "v"))
			}
			want, err := n.store.Checksum()
			require.NoError(t, err)
			c.kill(n)
			tc.damage(t, filepath.Join(n.dir, "store"))
			c.restart(n)
			c.waitLeader()
			require.Equal(t, tc.restore, n.node.restoredOnStart != "", "reason: %q", n.node.restoredOnStart)
			require.NoError(t, n.node.ReadBarrier(t.Context()))
			got, err := n.store.Checksum()
			require.NoError(t, err)
			require.Equal(t, want, got)
			incomplete, err := n.store.RestoreIncomplete()
			require.NoError(t, err)
			require.False(t, incomplete)
		})
	}
}

// TestRestoreOnStartIgnoresInvisibleEntries checks the decision itself:
// entries the FSM never sees (no-ops, barriers) between the store's applied
// index and the snapshot do not force a restore; a command does.
func TestRestoreOnStartIgnoresInvisibleEntries(t *testing.T) {
	st, err := store.Open("", &store.Options{InMemory: true})
	require.NoError(t, err)
	defer st.Close()
	b := st.NewBatch()
	require.NoError(t, b.Commit(3, true)) // applied index 3
	snaps := hraft.NewInmemSnapshotStore()
	_, trans := hraft.NewInmemTransport("")
	sink, err := snaps.Create(hraft.SnapshotVersionMax, 5, 1, hraft.Configuration{}, 1, trans)
	require.NoError(t, err)
	require.NoError(t, sink.Close())

	logs := hraft.NewInmemStore()
	require.NoError(t, logs.StoreLogs([]*hraft.Log{
		{Index: 4, Term: 1, Type: hraft.LogNoop},
		{Index: 5, Term: 1, Type: hraft.LogBarrier},
	}))
	reason, err := restoreOnStart(st, snaps, logs)
	require.NoError(t, err)
	require.Empty(t, reason)

	require.NoError(t, logs.StoreLogs([]*hraft.Log{{Index: 5, Term: 1, Type: hraft.LogCommand}}))
	reason, err = restoreOnStart(st, snaps, logs)
	require.NoError(t, err)
	require.Contains(t, reason, "behind")

	require.NoError(t, logs.DeleteRange(4, 5))
	reason, err = restoreOnStart(st, snaps, logs)
	require.NoError(t, err)
	require.Contains(t, reason, "not in the log")
}

// TestBuiltinTCPTransport runs a 3-node cluster over the transport NewNode
// builds from RaftAddr, kills the leader and restarts it on its port.
func TestBuiltinTCPTransport(t *testing.T) {
	c := newCluster(t, 3, builtinTCP, clusterOptions{})
	tid := c.createTenant("tcp")
	var acks ackLog
	writeMany(t, c, &acks, tid, "tcp", "a", 30, 4)
	old := c.waitLeader()
	c.kill(old)
	writeMany(t, c, &acks, tid, "tcp", "b", 30, 4)
	c.restart(old)
	c.waitConverged()
	for _, n := range c.live() {
		acks.verify(t, n, tid)
	}
}

func removeAll(dir string) error { return os.RemoveAll(dir) }

func TestRepairLogAfterRestore(t *testing.T) {
	logger := testLogger()
	entries := func(from, to, term uint64) []*hraft.Log {
		var out []*hraft.Log
		for i := from; i <= to; i++ {
			out = append(out, &hraft.Log{Index: i, Term: term, Type: hraft.LogCommand})
		}
		return out
	}
	t.Run("log holds the snapshot's entry", func(t *testing.T) {
		s := &repairingLogStore{LogStore: hraft.NewInmemStore()}
		require.NoError(t, s.StoreLogs(entries(1, 20, 3)))
		require.NoError(t, s.repairAfterRestore(10, 3, logger))
		first, _ := s.FirstIndex()
		require.Equal(t, uint64(1), first, "nothing discarded")
	})
	for _, tc := range []struct {
		name string
		logs []*hraft.Log
	}{
		{"conflicting term", entries(5, 20, 2)},
		{"gap at the snapshot index", entries(15, 20, 2)},
		{"log ends before the snapshot", entries(1, 5, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &repairingLogStore{LogStore: hraft.NewInmemStore()}
			require.NoError(t, s.StoreLogs(tc.logs))
			last, _ := s.LastIndex()
			require.NoError(t, s.repairAfterRestore(10, 3, logger))
			var l hraft.Log
			require.NoError(t, s.GetLog(10, &l))
			require.Equal(t, hraft.Log{Index: 10, Term: 3, Type: hraft.LogNoop}, l)
			require.ErrorIs(t, s.GetLog(9, &l), hraft.ErrLogNotFound, "entries before the snapshot are discarded")
			if last > 10 {
				require.NoError(t, s.GetLog(last, &l), "the suffix is left for raft's conflict check")
			}
			// Raft's compaction right after the install keeps the marker;
			// later compactions delete it.
			require.NoError(t, s.DeleteRange(1, 10))
			require.NoError(t, s.GetLog(10, &l))
			require.NoError(t, s.DeleteRange(1, 10))
			require.ErrorIs(t, s.GetLog(10, &l), hraft.ErrLogNotFound)
		})
	}
}
