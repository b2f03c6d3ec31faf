package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft/command"
)

// formatNode starts a node on loopback ports chosen by the kernel, with a
// fast raft and a fast format loop; join is "" for the bootstrap node.
func formatNode(t *testing.T, join, token string, advertised *atomic.Uint32) *Server {
	t.Helper()
	return fastNode(t, join, token, func(cfg *Config) {
		if advertised != nil {
			cfg.testFormat = func() command.Format { return command.Format(advertised.Load()) }
		}
	})
}

// fastNode is formatNode with the configuration changed by mod.
func fastNode(t *testing.T, join, token string, mod func(*Config)) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg := Config{
		DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", HTTPAddr: "-",
		Raft: RaftTuning{
			HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
			LeaderLeaseTimeout: 50 * time.Millisecond,
		},
		formatInterval: 100 * time.Millisecond,
	}
	if join != "" {
		cfg.Join, cfg.JoinToken = []string{join}, token
	}
	mod(&cfg)
	s, err := Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// askFormat sends OpFormat to addr before any hello, as the leader does.
func askFormat(t *testing.T, addr string) *wire.Response {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	buf, err := wire.AppendRequestFrame(nil, &wire.Request{ID: 9, Op: wire.OpFormat})
	require.NoError(t, err)
	_, err = nc.Write(buf)
	require.NoError(t, err)
	fr := wire.NewFrameReader(nc)
	body, err := fr.Read(wire.DefaultMaxFrame)
	require.NoError(t, err)
	var resp wire.Response
	require.NoError(t, wire.DecodeResponse(body, &resp))
	_, err = fr.Read(wire.DefaultMaxFrame)
	require.Error(t, err, "the node closes the connection after the answer")
	return &resp
}

// A real three-node cluster over TCP in which one node answers as a
// release before the format gate: the cluster format stays 1, whichever
// node leads, until that node "is upgraded" (the hook is lifted); then the
// leader raises it to this build's MaxFormat on every node.
func TestClusterFormatWaitsForEveryMember(t *testing.T) {
	var old atomic.Uint32
	old.Store(uint32(command.Format1))
	n1 := formatNode(t, "", "", &old)
	tok, err := os.ReadFile(filepath.Join(n1.cfg.DataDir, OperatorTokenFile))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tok))
	n2 := formatNode(t, n1.Addr(), token, nil)
	n3 := formatNode(t, n1.Addr(), token, nil)
	nodes := []*Server{n1, n2, n3}

	// Every member a voter with its client address published.
	require.Eventually(t, func() bool {
		ms, err := n1.node.Members(t.Context())
		if err != nil || len(ms) != 3 {
			return false
		}
		for _, m := range ms {
			if m.Suffrage != "Voter" || m.ClientAddr == "" {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)

	// The old node answers the probe as an old release does; the others
	// with this build's format, to anyone, before authentication.
	require.Equal(t, wire.CodeBadRequest, askFormat(t, n1.Addr()).Code)
	resp := askFormat(t, n2.Addr())
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, uint32(command.MaxFormat), resp.MaxFormat)

	// Move leadership off the old node, so that a leader of this build
	// asks it over the network.
	require.NoError(t, n1.node.TransferLeadership(t.Context()))
	var leader *Server
	require.Eventually(t, func() bool {
		for _, s := range []*Server{n2, n3} {
			if s.node.IsLeader() {
				leader = s
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)
	// The leader has asked everyone, and learnt that n1 knows format 1
	// only: the format must not have moved.
	require.Eventually(t, func() bool {
		return leader.formats.get(n1.NodeID()) == command.Format1 &&
			leader.formats.get(otherThan(leader, n2, n3).NodeID()) == command.MaxFormat
	}, 30*time.Second, 20*time.Millisecond)
	time.Sleep(5 * leader.cfg.formatInterval) // a few more rounds
	for _, s := range nodes {
		require.Equal(t, command.Format1, s.node.FSM().ClusterFormat(), "node %s", s.NodeID())
	}
	st, err := leader.clusterStatus(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint32(command.Format1), st.Cluster.Format)
	for _, m := range st.Cluster.Members {
		want := uint32(command.MaxFormat)
		if m.ID == n1.NodeID() {
			want = 1
		}
		require.Equal(t, want, m.MaxFormat, "member %s in cluster status", m.ID)
	}

	// "Upgrade" n1: the leader raises the format, and every replica
	// applies it.
	old.Store(0)
	require.Eventually(t, func() bool {
		for _, s := range nodes {
			if s.node.FSM().ClusterFormat() != command.MaxFormat {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)
	st, err = n1.clusterStatus(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint32(command.MaxFormat), st.Cluster.Format, "any node shows the cluster format")
	for _, s := range nodes {
		require.NoError(t, s.Err(), "node %s", s.NodeID())
	}
}

// otherThan returns the one of a and b that is not s.
func otherThan(s, a, b *Server) *Server {
	if s == a {
		return b
	}
	return a
}
