package raft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantkv/tenantkv/internal/testcluster"

	"github.com/tenantkv/tenantkv/raft/command"
	"github.com/tenantkv/tenantkv/raft/fsm"

	hraft "github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/store"
)

// The crash test runs a single-node server in a child process (this test
// binary, re-executed), kills it with SIGKILL in the middle of a stream of
// writes, and checks after every crash that
//
//   - every write the child acknowledged is in the recovered store, and
//   - the recovered store equals the result of applying the raft log once,
//     entry by entry, to an empty store: nothing lost, nothing applied
//     twice. The workload creates and deletes tenants, which allocates a
//     fresh ID each time it is applied, so a replayed entry would show.
//
// SIGKILL loses what the process had not handed to the kernel; it does not
// simulate power loss (unsynced data in the page cache survives). Power loss
// below the store is covered by the store's CrashableMem tests.

const (
	crashDirEnv   = "TENANTKV_CRASH_CHILD_DIR"
	crashCycleEnv = "TENANTKV_CRASH_CHILD_CYCLE"
	crashCycles   = "TENANTKV_CRASH_CYCLES"
	crashLogEnv   = "TENANTKV_CRASH_CHILD_LOG"
)

func crashNodeConfig(dir, logKind string, st *store.Store) Config {
	_, trans := hraft.NewInmemTransport("n1")
	return Config{
		ID: "n1", Dir: filepath.Join(dir, "raft"), RaftLog: logKind, Store: st, Bootstrap: true, Transport: trans,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		// No snapshots: the final check replays the whole log.
		SnapshotThreshold: 1 << 40, SnapshotInterval: time.Hour, TrailingLogs: 1 << 40,
		Logger: testLogger(),
	}
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short")
	}
	cycles := 25
	if v := os.Getenv(crashCycles); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		cycles = n
	}
	seed := uint64(testcluster.Seed(t))
	t.Logf("seed %d, %d cycles per raft log", seed, cycles)
	for _, kind := range []string{RaftLogPebble, RaftLogBolt} {
		t.Run(kind, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			dir := t.TempDir()
			acked := map[string]string{}
			for cycle := range cycles {
				killAfter := rng.IntN(120) // acknowledged writes before the kill; 0 = right after start
				n := runCrashChild(t, dir, kind, cycle, killAfter, acked)
				verifyCrashedStore(t, dir, kind, acked)
				if testing.Verbose() {
					t.Logf("cycle %d: killed after %d acks; %d acknowledged in all", cycle, n, len(acked))
				}
			}
		})
	}
}

// runCrashChild starts the child, lets it acknowledge killAfter writes, and
// kills it with SIGKILL. It adds the acknowledged writes to acked.
func runCrashChild(t *testing.T, dir, logKind string, cycle, killAfter int, acked map[string]string) int {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashCycleEnv+"="+strconv.Itoa(cycle), crashLogEnv+"="+logKind)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	ready, n := false, 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "READY":
			ready = true
		case strings.HasPrefix(line, "ACK "):
			f := strings.Fields(line)
			require.Len(t, f, 3, "bad line %q", line)
			acked[f[1]] = f[2]
			n++
		default:
			continue
		}
		if ready && n >= killAfter {
			break
		}
	}
	require.True(t, ready, "child never got ready: %s", stderr.String())
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	return n
}

// verifyCrashedStore restarts the node in this process, checks the
// acknowledged writes, then replays the raft log into an empty store and
// compares.
func verifyCrashedStore(t *testing.T, dir, logKind string, acked map[string]string) {
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	require.NoError(t, err)
	defer st.Close()
	n, err := NewNode(crashNodeConfig(dir, logKind, st))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.Eventually(t, func() bool { return n.ReadBarrier(ctx) == nil }, 20*time.Second, time.Millisecond)
	if len(acked) > 0 {
		ledger, err := n.FSM().LookupTenant("ledger")
		require.NoError(t, err)
		view, err := st.Tenant(ledger.ID)
		require.NoError(t, err)
		for k, want := range acked {
			got, err := view.Get([]byte(k))
			require.NoError(t, err, "acknowledged write %q lost", k)
			require.Equal(t, want, string(got))
		}
	}
	require.NoError(t, n.Shutdown())
	got, err := st.Checksum()
	require.NoError(t, err)
	require.Equal(t, replayLog(t, filepath.Join(dir, "raft"), logKind), got,
		"recovered store differs from one applying the log exactly once")
}

// replayLog applies every entry of the raft log in dir once to a fresh
// in-memory store and returns its checksum. logKind "" means dir's own.
func replayLog(t *testing.T, dir, logKind string) uint64 {
	logKind, err := resolveLogKind(dir, logKind)
	require.NoError(t, err)
	logs, closeLogs, err := openRaftStores(dir, logKind, testLogger())
	require.NoError(t, err)
	defer closeLogs()
	first, err := logs.FirstIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(1), first, "log was compacted; the crash test needs all of it")
	last, err := logs.LastIndex()
	require.NoError(t, err)

	st, err := store.Open("", &store.Options{InMemory: true})
	require.NoError(t, err)
	defer st.Close()
	m, err := fsm.New(st, nil, func(err error) { t.Errorf("replay: %v", err) })
	require.NoError(t, err)
	adapter := nodeFSM{m: m}
	var batch []*hraft.Log
	for i := first; i <= last; i++ {
		l := new(hraft.Log)
		require.NoError(t, logs.GetLog(i, l))
		if l.Type == hraft.LogCommand || l.Type == hraft.LogConfiguration {
			batch = append(batch, l)
		}
		if len(batch) == 64 || i == last {
			adapter.ApplyBatch(batch)
			batch = batch[:0]
		}
	}
	sum, err := st.Checksum()
	require.NoError(t, err)
	return sum
}

// TestCrashChild is the child process of TestCrashRecovery. It does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestCrashRecovery")
	}
	cycle := os.Getenv(crashCycleEnv)
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		crashChildFail(err)
	}
	n, err := NewNode(crashNodeConfig(dir, os.Getenv(crashLogEnv), st))
	if err != nil {
		crashChildFail(err)
	}
	// Bounded: the parent kills it long before.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n.ReadBarrier(ctx) != nil {
		if ctx.Err() != nil {
			crashChildFail(ctx.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ledger, err := n.FSM().LookupTenant("ledger")
	if errors.Is(err, fsm.ErrTenantNotFound) {
		_, err = n.Propose(ctx, &command.CreateTenant{Name: "ledger"})
		if err == nil {
			ledger, err = n.FSM().LookupTenant("ledger")
		}
	}
	if err != nil {
		crashChildFail(err)
	}
	fmt.Println("READY")

	var out sync.Mutex
	var seq atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := seq.Add(1)
				if i%5 == 0 {
					// Churn: create and delete a tenant. Each create
					// allocates an ID; applied twice it would allocate two.
					name := fmt.Sprintf("churn-%s-%d-%d", cycle, g, i)
					res, err := n.Propose(ctx, &command.CreateTenant{Name: name})
					if err != nil {
						crashChildFail(err)
					}
					if _, err := n.Propose(ctx, &command.DeleteTenant{ID: res.TenantID}); err != nil {
						crashChildFail(err)
					}
				}
				k, v := fmt.Sprintf("c%s-g%d-%d", cycle, g, i), strconv.FormatInt(i, 10)
				w := &command.TenantWrite{TenantID: ledger.ID, TenantName: "ledger", Ops: []command.Op{
					{Kind: command.OpSet, Key: []byte(k), Value: []byte(v)},
					{Kind: command.OpSet, Key: []byte("last-" + strconv.Itoa(g)), Value: []byte(v)},
				}}
				if _, err := n.Propose(ctx, w); err != nil {
					crashChildFail(err)
				}
				out.Lock()
				fmt.Printf("ACK %s %s\n", k, v)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
	crashChildFail(errors.New("not killed within 30s"))
}

func crashChildFail(err error) {
	fmt.Fprintln(os.Stderr, "crash child:", err)
	os.Exit(3)
}
