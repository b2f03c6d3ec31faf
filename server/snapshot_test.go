package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

// saveAll pulls a whole backup over c in chunks of at most limit bytes and
// returns the stream and the last answer's SnapshotInfo.
func saveAll(t *testing.T, c *rawConn, limit int) ([]byte, wire.SnapshotInfo, int) {
	t.Helper()
	var out bytes.Buffer
	req := &wire.Request{Op: wire.OpSnapshotSave, Limit: limit}
	var first *wire.SnapshotInfo
	chunks := 0
	for {
		resp := c.call(req)
		require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
		require.NotNil(t, resp.Snapshot)
		chunks++
		out.Write(resp.Value)
		if first == nil {
			first = resp.Snapshot
		}
		require.Equal(t, first.AppliedIndex, resp.Snapshot.AppliedIndex, "every chunk is of one backup")
		if !resp.More {
			return out.Bytes(), *resp.Snapshot, chunks
		}
		require.NotEmpty(t, resp.Next)
		require.LessOrEqual(t, len(resp.Value), limit)
		req = &wire.Request{Op: wire.OpSnapshotSave, Cursor: resp.Next, Limit: limit}
	}
}

func restoreOptions(dir string, info wire.SnapshotInfo, size int) server.RestoreOptions {
	return server.RestoreOptions{
		DataDir: dir, NodeID: "restored", RaftAddr: "127.0.0.1:7999",
		AppliedIndex: info.AppliedIndex, Term: info.Term, Format: info.Format, Checksum: info.Checksum, Size: uint64(size),
	}
}

// A backup taken over the protocol holds every acknowledged write; it
// verifies, restores into a data directory from which a node starts alone
// with that state (the old operator token works), and a damaged one is
// refused before anything is written.
func TestSnapshotSaveAndRestore(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"}).Code)
	big := bytes.Repeat([]byte("v"), 90_000)
	for i := range 60 { // about 5.4 MB: more than one largest chunk
		resp := c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: fmt.Appendf(nil, "k%02d", i), Value: big})
		require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	}
	tok := c.call(&wire.Request{Op: wire.OpNewToken, Name: "acme"})
	require.Equal(t, wire.CodeOK, tok.Code, tok.Msg)
	tc := login(t, s.Addr(), tok.Token)
	resp := tc.call(&wire.Request{Op: wire.OpSnapshotSave})
	require.Equal(t, wire.CodePermissionDenied, resp.Code, "a tenant token saves no snapshot")

	// The largest chunk is capped, whatever the request asks.
	resp = c.call(&wire.Request{Op: wire.OpSnapshotSave, Limit: 64 << 20})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, 4<<20, len(resp.Value))
	require.True(t, resp.More)
	stream, info, chunks := saveAll(t, c, 256<<10)
	require.Greater(t, chunks, 20)
	require.Equal(t, s.NodeID(), info.NodeID)
	require.NotZero(t, info.Records)
	require.NotZero(t, info.Term)
	require.NotZero(t, info.Format)
	require.NotZero(t, info.EstimatedBytes)
	resp = c.call(&wire.Request{Op: wire.OpSnapshotSave, Cursor: "0123"})
	require.Equal(t, wire.CodeInvalidArgument, resp.Code, "an unknown cursor")

	sum, err := server.VerifyBackup(bytes.NewReader(stream), restoreOptions("", info, len(stream)))
	require.NoError(t, err)
	require.Equal(t, info.Checksum, sum.Checksum)

	// Damaged: refused, nothing written.
	base := t.TempDir()
	bad := bytes.Clone(stream)
	bad[len(bad)/2] ^= 1
	for name, body := range map[string][]byte{"corrupt": bad, "truncated": stream[:len(stream)-1], "longer": append(bytes.Clone(stream), 0)} {
		_, err := server.VerifyBackup(bytes.NewReader(body), restoreOptions("", info, len(stream)))
		require.Error(t, err, name)
		dir := filepath.Join(base, name)
		require.Error(t, server.RestoreBackup(t.Context(), bytes.NewReader(body), restoreOptions(dir, info, len(stream))), name)
		_, err = os.Stat(dir)
		require.ErrorIs(t, err, os.ErrNotExist, "%s: the failed restore removed what it wrote", name)
	}
	wrong := info
	wrong.Checksum++
	_, err = server.VerifyBackup(bytes.NewReader(stream), restoreOptions("", wrong, len(stream)))
	require.ErrorContains(t, err, "store checksum")
	wrong = info
	wrong.Format = 99
	_, err = server.VerifyBackup(bytes.NewReader(stream), restoreOptions("", wrong, len(stream)))
	require.ErrorContains(t, err, "cluster format 99")

	// Restored: a new one-node cluster with the state.
	dir := filepath.Join(base, "restored")
	require.NoError(t, os.Mkdir(dir, 0o700)) // an empty directory is fine
	require.NoError(t, server.RestoreBackup(t.Context(), bytes.NewReader(stream), restoreOptions(dir, info, len(stream))))
	require.ErrorContains(t, server.RestoreBackup(t.Context(), bytes.NewReader(stream), restoreOptions(dir, info, len(stream))), "not empty")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	r, err := server.Start(ctx, server.Config{DataDir: dir, ListenAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:7999", HTTPAddr: "-", Raft: fastRaft})
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, "restored", r.NodeID())
	_, err = os.Stat(filepath.Join(dir, server.OperatorTokenFile))
	require.ErrorIs(t, err, os.ErrNotExist, "no new operator token: the backup's work")
	rc := loginEventually(t, r.Addr(), op)
	for i := range 60 {
		resp := rc.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: fmt.Appendf(nil, "k%02d", i)})
		require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
		require.Equal(t, big, resp.Value)
	}
	st := rc.call(&wire.Request{Op: wire.OpClusterStatus})
	require.Equal(t, wire.CodeOK, st.Code, st.Msg)
	require.Len(t, st.Cluster.Members, 1)
	require.Equal(t, "restored", st.Cluster.Members[0].ID)
	require.Equal(t, "127.0.0.1:7999", st.Cluster.Members[0].RaftAddr)
	require.Greater(t, st.Cluster.Term, info.Term)
	resp = rc.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte("new"), Value: []byte("x")})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	loginEventually(t, r.Addr(), tok.Token) // the tenant's token too
}

// loginEventually logs in once the node can judge tokens: a node just
// started may not have elected itself yet.
func loginEventually(t *testing.T, addr, token string) *rawConn {
	t.Helper()
	var c *rawConn
	require.Eventually(t, func() bool {
		c = dialRaw(t, addr)
		resp := c.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: token})
		if resp.Code != wire.CodeOK {
			c.nc.Close()
		}
		return resp.Code == wire.CodeOK
	}, 20*time.Second, 20*time.Millisecond)
	return c
}

// At most two saves are in progress on a node at once; a finished one
// frees its place.
func TestSnapshotSavesAreBounded(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)
	var cursors []string
	for range 2 {
		resp := c.call(&wire.Request{Op: wire.OpSnapshotSave, Limit: 1})
		require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
		require.True(t, resp.More)
		cursors = append(cursors, resp.Next)
	}
	resp := c.call(&wire.Request{Op: wire.OpSnapshotSave, Limit: 1})
	require.Equal(t, wire.CodeRateLimited, resp.Code, resp.Msg)
	for {
		resp := c.call(&wire.Request{Op: wire.OpSnapshotSave, Cursor: cursors[0], Limit: 1 << 20})
		require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
		if !resp.More {
			break
		}
	}
	resp = c.call(&wire.Request{Op: wire.OpSnapshotSave, Cursor: cursors[0]})
	require.Equal(t, wire.CodeInvalidArgument, resp.Code, "a finished save's cursor is gone")
	_, info, _ := saveAll(t, c, 1<<20)
	require.NotZero(t, info.Checksum)
}
