package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/client"
	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/raft/command"
)

// refusalNode starts a fast node (fastNode) whose audit loop runs every
// 200 ms; join is "" for the bootstrap node.
func refusalNode(t *testing.T, join, token string) *Server {
	t.Helper()
	return fastNode(t, join, token, func(cfg *Config) { cfg.refusalInterval = 200 * time.Millisecond })
}

// TestRefusalsOnAFollowerReachTheTrail: a tenant token's requests that a
// follower refuses for naming another tenant are recorded in the caller's
// own trail, by the leader, from the follower's report; the other tenant's
// trail records nothing of them.
func TestRefusalsOnAFollowerReachTheTrail(t *testing.T) {
	n1 := refusalNode(t, "", "")
	tok, err := os.ReadFile(filepath.Join(n1.cfg.DataDir, OperatorTokenFile))
	require.NoError(t, err)
	operator := strings.TrimSpace(string(tok))
	n2 := refusalNode(t, n1.Addr(), operator)
	refusalNode(t, n1.Addr(), operator)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for n1.node.FSM().ClusterFormat() < command.Format4 || !n1.node.IsLeader() {
		require.NoError(t, ctx.Err(), "no leader at cluster format 4")
		time.Sleep(20 * time.Millisecond)
	}
	db, err := client.Open(ctx, []string{n1.Addr()}, &client.Options{Token: operator})
	require.NoError(t, err)
	defer db.Close()
	for _, name := range []string{"caller", "victim"} {
		_, err := db.CreateTenant(ctx, name, nil)
		require.NoError(t, err)
	}
	secret, err := db.NewTenantToken(ctx, "caller")
	require.NoError(t, err)
	for n2.node.FSM().AppliedIndex() < n1.node.FSM().AppliedIndex() {
		require.NoError(t, ctx.Err(), "the follower never caught up")
		time.Sleep(20 * time.Millisecond)
	}

	// On the follower, stale gets naming the other tenant: refused there.
	nc, err := net.Dial("tcp", n2.Addr())
	require.NoError(t, err)
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	fr := wire.NewFrameReader(nc)
	call := func(req *wire.Request) *wire.Response {
		buf, err := wire.AppendRequestFrame(nil, req)
		require.NoError(t, err)
		_, err = nc.Write(buf)
		require.NoError(t, err)
		body, err := fr.Read(wire.DefaultMaxFrame)
		require.NoError(t, err)
		var resp wire.Response
		require.NoError(t, wire.DecodeResponse(body, &resp))
		return &resp
	}
	hello := call(&wire.Request{ID: 1, Op: wire.OpHello, Version: wire.ProtocolVersion, Token: secret})
	require.Equal(t, wire.CodeOK, hello.Code, hello.Msg)
	for i := range 3 {
		resp := call(&wire.Request{ID: uint64(2 + i), Op: wire.OpGet, Tenant: "victim", Key: []byte("k"), Stale: true})
		require.Equal(t, wire.CodePermissionDenied, resp.Code, resp.Msg)
	}

	// The leader records them in the caller's trail.
	for {
		evs, err := db.TenantAudit(ctx, "caller", nil)
		require.NoError(t, err)
		var found *client.AuditEvent
		for i := range evs {
			if evs[i].Kind == "refused-cross-tenant" {
				found = &evs[i]
			}
		}
		if found != nil {
			require.Equal(t, "3 refused requests for other tenants in the last minute", found.After)
			require.NotContains(t, found.After, "victim")
			break
		}
		require.NoError(t, ctx.Err(), "the follower's refusals never reached the caller's trail")
		time.Sleep(50 * time.Millisecond)
	}
	evs, err := db.TenantAudit(ctx, "victim", nil)
	require.NoError(t, err)
	for _, ev := range evs {
		require.NotEqual(t, "refused-cross-tenant", ev.Kind, "the other tenant's trail")
	}

	// A report without a count is refused, and a follower takes none.
	resp := call(&wire.Request{ID: 9, Op: wire.OpAuditRefusals})
	require.Equal(t, wire.CodeBadRequest, resp.Code, resp.Msg)
	resp = call(&wire.Request{ID: 10, Op: wire.OpAuditRefusals, Limit: 5})
	require.NotEqual(t, wire.CodeOK, resp.Code, "a follower takes no report")
}
