package raft

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	"github.com/stretchr/testify/require"
)

// Concurrent proposals share log entries, and each gets its own result.
func TestProposalsShareEntries(t *testing.T) {
	c := newCluster(t, 1, tcpTransport, clusterOptions{})
	tid := c.createTenant("b")
	leader := c.waitLeader()
	before := leader.node.raft.LastIndex()
	const writers, each = 64, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	versions := map[uint64]bool{}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var cmd command.Command = put(tid, "b", fmt.Sprintf("w%d-%d", w, i), "v")
				if i%5 == 4 { // some refused, in the same batches as the rest
					cmd = put(tid, "not-b", "x", "v")
				}
				res, err := leader.node.Propose(context.Background(), cmd)
				if i%5 == 4 {
					require.ErrorIs(t, err, fsm.ErrTenantNotFound)
					continue
				}
				require.NoError(t, err)
				mu.Lock()
				require.False(t, versions[res.Version], "version %d given twice", res.Version)
				versions[res.Version] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	written := writers * each * 4 / 5
	require.Len(t, versions, written)
	entries := leader.node.raft.LastIndex() - before
	t.Logf("%d proposals in %d log entries", writers*each, entries)
	require.Less(t, entries, uint64(writers*each), "no two proposals shared an entry")
	for w := range writers {
		_, err := leader.get(tid, fmt.Sprintf("w%d-%d", w, each-1-1))
		require.NoError(t, err)
	}
}
