package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft"
	"github.com/tenantkv/tenantkv/server"
)

// startClusterNode starts a node of a real cluster over TCP on loopback:
// the first one bootstraps (join nil), the others join it with token.
func startClusterNode(t *testing.T, cfg server.Config, join []string, token string) *server.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr, cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	cfg.HTTPAddr, cfg.Raft = "-", fastRaft
	cfg.Join, cfg.JoinToken = join, token
	s, err := server.Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// hello sends one hello with token to addr and returns the answer.
func hello(t *testing.T, addr, token string) *wire.Response {
	t.Helper()
	return dialRaw(t, addr).call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: token})
}

// TestHelloJudgedLikeReadiness: a follower restarts behind its leader,
// which revoked a tenant token meanwhile. Its raft log takes no new entry
// until the test lets it (a LogFaults gate), so it hears the leader's
// heartbeats and has applied all its own log holds, but not what the
// leader had committed. Such a node is not ready, and it must judge no
// token: every hello, good, revoked or malformed, gets the same "not
// ready" answer (before the hello used readiness's judgement, it accepted
// the revoked token there, from state older than the revocation). Once
// the gate opens and it says ready, it judges again: the operator token
// is accepted, the revoked one refused.
func TestHelloJudgedLikeReadiness(t *testing.T) {
	dirs := map[*server.Server]string{}
	d1 := t.TempDir()
	n1 := startClusterNode(t, server.Config{DataDir: d1}, nil, "")
	dirs[n1] = d1
	tok, err := os.ReadFile(filepath.Join(d1, server.OperatorTokenFile))
	require.NoError(t, err)
	op := strings.TrimSpace(string(tok))
	nodes := []*server.Server{n1}
	for range 2 {
		d := t.TempDir()
		s := startClusterNode(t, server.Config{DataDir: d}, []string{n1.Addr()}, op)
		dirs[s] = d
		nodes = append(nodes, s)
	}
	for _, s := range nodes {
		require.Empty(t, s.Readiness(), "node %s after Start", s.NodeID())
	}

	// onLeader sends req to the leader, found through the live nodes, and
	// sends it again while the answer is that leadership moved (fast raft
	// timings on a loaded machine); every request here may be repeated.
	live := nodes
	var leader *server.Server
	onLeader := func(req *wire.Request) *wire.Response {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			leader = nil
			for _, s := range live {
				st := login(t, s.Addr(), op).call(&wire.Request{Op: wire.OpClusterStatus})
				for _, l := range live {
					if st.Cluster != nil && l.NodeID() == st.Cluster.LeaderID {
						leader = l
					}
				}
			}
			if leader != nil {
				r := *req
				resp := login(t, leader.Addr(), op).call(&r)
				switch resp.Code {
				case wire.CodeNotLeader, wire.CodeUnavailable, wire.CodeCommitUnknown:
				default:
					return resp
				}
			}
			require.True(t, time.Now().Before(deadline), "no leader took %s", req.Op)
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.Equal(t, wire.CodeOK, onLeader(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"}).Code)
	tt := onLeader(&wire.Request{Op: wire.OpNewToken, Name: "acme"})
	require.Equal(t, wire.CodeOK, tt.Code, tt.Msg)
	var f *server.Server
	for _, s := range nodes {
		if s != leader {
			f = s
		}
	}
	require.Eventually(t, func() bool { return hello(t, f.Addr(), tt.Token).Code == wire.CodeOK },
		30*time.Second, 20*time.Millisecond, "the follower accepts the token")

	// The follower stops; the token is revoked and writes go on.
	cfg := server.Config{DataDir: dirs[f], ListenAddr: f.Addr(), RaftAddr: f.RaftAddr()}
	require.NoError(t, f.Close())
	live = nil
	for _, s := range nodes {
		if s != f {
			live = append(live, s)
		}
	}
	// A revocation repeated after an unknown outcome may find it done.
	resp := onLeader(&wire.Request{Op: wire.OpRevokeToken, Name: tt.TokenID})
	require.Contains(t, []wire.Code{wire.CodeOK, wire.CodeNotFound}, resp.Code, resp.Msg)
	for i := range 50 {
		resp := onLeader(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte{byte(i)}, Value: []byte("v")})
		require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	}

	// It restarts with a raft log that stores nothing new until release.
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	cfg.LogFaults = func(lo raft.LogOp) error {
		if lo.Kind == raft.LogOpStore && !lo.Done {
			<-gate
		}
		return nil
	}
	r := startClusterNode(t, cfg, nil, "")
	t.Cleanup(release) // before r.Close, which waits for raft
	require.Eventually(t, func() bool { return r.Readiness() == "catching up with the leader" },
		30*time.Second, 5*time.Millisecond, "the restarted node hears its leader")

	// Each hello waits a moment (helloReadyWait) for the node, which knows
	// its leader, to catch up, and is then refused.
	for round := range 2 {
		refused := map[string]*wire.Response{
			"revoked":  hello(t, r.Addr(), tt.Token),
			"operator": hello(t, r.Addr(), op),
			"garbage":  hello(t, r.Addr(), "tkv_0123456789abcdef_nope"),
		}
		require.Equal(t, "catching up with the leader", r.Readiness(), "round %d: the gate is closed", round)
		for name, resp := range refused {
			require.Equal(t, wire.CodeUnavailable, resp.Code, "round %d: %s token on a node that is not ready: %s", round, name, resp.Msg)
			require.Equal(t, refused["operator"].Msg, resp.Msg, "round %d: every token gets the same answer", round)
		}
	}

	release()
	require.Eventually(t, func() bool { return r.Readiness() == "" }, 30*time.Second, 5*time.Millisecond,
		"ready once its log takes the leader's entries")
	require.Equal(t, wire.CodeOK, hello(t, r.Addr(), op).Code, "a ready node judges tokens")
	resp = hello(t, r.Addr(), tt.Token)
	require.Equal(t, wire.CodePermissionDenied, resp.Code, "the revoked token, once ready: %s", resp.Msg)
}
