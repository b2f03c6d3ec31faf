package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/stretchr/testify/require"
)

// TestTxnReplicasByteIdentical is the determinism acceptance test of
// transactions: a mixed workload of conflicting transactions, atomic ops,
// compare-and-swaps and plain writes runs against a 3-node cluster over
// TCP while the leader is restarted and a follower is taken down long
// enough to need a snapshot install. At the end every replica holds
// byte-identical data (checksum of tenants and system keyspace: versions
// and write history included), and the follower rebuilt from a snapshot
// then made the same conflict decisions as the others, or the checksums
// would differ.
func TestTxnReplicasByteIdentical(t *testing.T) {
	c := newCluster(t, 3, tcpTransport, clusterOptions{snapshotThreshold: 64, snapshotInterval: 100 * time.Millisecond, trailingLogs: 32})
	id := c.createTenant("acme")

	var conflicts, committed, unknown atomic.Int64
	// Proposer clocks advance 50ms per command, so that the write history
	// is pruned as it goes (a 10s window is 200 commands).
	var clock atomic.Int64
	clock.Store(time.Unix(1700000000, 0).UnixNano())
	workload := func(stop <-chan struct{}, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 3))
		key := func() []byte { return fmt.Appendf(nil, "k%02d", r.IntN(20)) }
		for {
			select {
			case <-stop:
				return
			default:
			}
			var cmd command.Command
			at := clock.Add(int64(50 * time.Millisecond))
			switch r.IntN(5) {
			case 0:
				cmd = &command.TenantWrite{TenantID: id, TenantName: "acme", At: at, Ops: []command.Op{{Kind: command.OpSet, Key: key(), Value: key()}}}
			case 1:
				cmd = &command.CompareAndSwap{TenantID: id, TenantName: "acme", Key: key(), Old: key(), New: key(), At: at}
			default:
				l := c.leaderOrNil()
				if l == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				node := c.nodeOf(l)
				if node == nil {
					continue
				}
				vi, err := node.FSM().TenantVersion(id)
				if err != nil {
					continue
				}
				// Reads a few versions back, so that conflicts happen.
				tx := &command.TxnCommit{TenantID: id, TenantName: "acme", At: at, TxnID: fmt.Appendf(nil, "%d-%d", seed, r.Uint64()),
					ReadVersion: vi.Version - min(vi.Version, uint64(r.IntN(4)))}
				for range 2 {
					k := key()
					tx.Reads = append(tx.Reads, command.KeyRange{Start: k, End: append(bytes.Clone(k), 0)})
				}
				tx.Ops = []command.Op{{Kind: command.OpAdd, Key: key(), Value: le(1)}, {Kind: command.OpSet, Key: key(), Value: key()}}
				if r.IntN(4) == 0 {
					s := key()
					tx.Ops = append(tx.Ops, command.Op{Kind: command.OpDeleteRange, Key: s, End: append(bytes.Clone(s), 0xff)})
				}
				cmd = tx
			}
			_, err := c.propose(cmd)
			switch {
			case err == nil:
				committed.Add(1)
			case errors.Is(err, fsm.ErrConflict):
				conflicts.Add(1)
			case errors.Is(err, ErrCommitUnknown):
				unknown.Add(1)
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); workload(stop, uint64(w)) }()
	}
	waitCommitted := func(n int64) {
		t.Helper()
		target := committed.Load() + n
		require.Eventually(t, func() bool { return committed.Load() >= target }, 30*time.Second, time.Millisecond)
	}

	waitCommitted(50)
	// The leader restarts.
	l := c.waitLeader()
	c.kill(l)
	waitCommitted(50)
	c.restart(l)

	// A follower misses so much that it needs a snapshot.
	f := c.followers()[0]
	restores := f.node.fsm.Stats().Restores
	behind := f.node.raft.LastIndex()
	c.kill(f)
	require.Eventually(t, func() bool {
		waitCommitted(20)
		l := c.waitLeader()
		node := c.nodeOf(l)
		if node == nil {
			return false
		}
		_ = node.raft.Snapshot().Error()
		first, err := node.logs.FirstIndex()
		return err == nil && first > behind+1
	}, 60*time.Second, time.Millisecond)
	c.restart(f)
	waitCommitted(50)

	close(stop)
	wg.Wait()
	c.waitConverged()
	require.Greater(t, f.node.fsm.Stats().Restores, restores, "the follower should have been rebuilt from a snapshot")

	// Every replica also reports the same version state.
	var infos []fsm.VersionInfo
	for _, n := range c.live() {
		vi, err := n.node.FSM().TenantVersion(id)
		require.NoError(t, err)
		infos = append(infos, vi)
	}
	for _, vi := range infos[1:] {
		require.Equal(t, infos[0], vi)
	}
	t.Logf("%d committed, %d conflicts, %d unknown; version %+v", committed.Load(), conflicts.Load(), unknown.Load(), infos[0])
	require.Positive(t, conflicts.Load())
	require.Positive(t, infos[0].Oldest, "the history should have been pruned")
}
func le(v int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(v)) }
