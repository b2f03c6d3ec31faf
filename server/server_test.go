package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantkv/tenantkv/internal/wire"
	"github.com/tenantkv/tenantkv/server"
)

var fastRaft = server.RaftTuning{
	HeartbeatTimeout:   100 * time.Millisecond,
	ElectionTimeout:    100 * time.Millisecond,
	LeaderLeaseTimeout: 50 * time.Millisecond,
}

// startNode starts a single-node cluster in a temporary directory on
// loopback ports chosen by the kernel.
func startNode(t *testing.T) (*server.Server, string) {
	t.Helper()
	return startNodeWith(t, nil)
}

// startNodeWith is startNode with the configuration changed by mod.
func startNodeWith(t *testing.T, mod func(*server.Config)) (*server.Server, string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := server.Config{
		DataDir:    dir,
		ListenAddr: "127.0.0.1:0",
		RaftAddr:   "127.0.0.1:0",
		HTTPAddr:   "127.0.0.1:0",
		Raft:       fastRaft,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := server.Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, server.OperatorTokenFile))
	require.NoError(t, err)
	return s, strings.TrimSpace(string(tok))
}

// rawConn speaks the wire protocol by hand, one request at a time.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *wire.FrameReader
	id uint64
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, fr: wire.NewFrameReader(nc)}
}

func (c *rawConn) call(req *wire.Request) *wire.Response {
	c.t.Helper()
	c.id++
	req.ID = c.id
	buf, err := wire.AppendRequestFrame(nil, req)
	require.NoError(c.t, err)
	_, err = c.nc.Write(buf)
	require.NoError(c.t, err)
	return c.read()
}

func (c *rawConn) read() *wire.Response {
	c.t.Helper()
	body, err := c.fr.Read(wire.DefaultMaxFrame)
	require.NoError(c.t, err)
	var resp wire.Response
	require.NoError(c.t, wire.DecodeResponse(body, &resp))
	return &resp
}

func login(t *testing.T, addr, token string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	resp := c.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: token})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	return c
}

func TestServerBasics(t *testing.T) {
	s, op := startNode(t)
	c := login(t, s.Addr(), op)

	resp := c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, "acme", resp.Tenant.Name)

	resp = c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"})
	require.Equal(t, wire.CodeTenantExists, resp.Code)
	resp = c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "Bad_Name"})
	require.Equal(t, wire.CodeInvalidName, resp.Code)

	resp = c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte("k1"), Value: []byte("v1")})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	resp = c.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("k1")})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Equal(t, []byte("v1"), resp.Value)
	resp = c.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("nope")})
	require.Equal(t, wire.CodeNotFound, resp.Code)
	resp = c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte("empty")})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	resp = c.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("empty")})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Empty(t, resp.Value)

	for i := range 5 {
		resp = c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: fmt.Appendf(nil, "p/%d", i), Value: []byte("x")})
		require.Equal(t, wire.CodeOK, resp.Code)
	}
	resp = c.call(&wire.Request{Op: wire.OpScan, Tenant: "acme", Key: []byte("p/"), End: []byte("p0"), Limit: 3})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Len(t, resp.KVs, 3)
	require.True(t, resp.More)
	resp = c.call(&wire.Request{Op: wire.OpScan, Tenant: "acme", Key: []byte("p/"), End: []byte("p0"), Reverse: true})
	require.Len(t, resp.KVs, 5)
	require.False(t, resp.More)
	require.Equal(t, []byte("p/4"), resp.KVs[0].Key)

	resp = c.call(&wire.Request{Op: wire.OpDeleteRange, Tenant: "acme", Key: []byte("p/"), End: []byte("p0")})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	resp = c.call(&wire.Request{Op: wire.OpScan, Tenant: "acme", Key: []byte("p/"), End: []byte("p0")})
	require.Empty(t, resp.KVs)
	resp = c.call(&wire.Request{Op: wire.OpScan, Tenant: "acme", Key: []byte("b"), End: []byte("a")})
	require.Equal(t, wire.CodeInvalidRange, resp.Code)

	resp = c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: nil, Value: []byte("x")})
	require.Equal(t, wire.CodeInvalidKey, resp.Code)
	resp = c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: make([]byte, 10_001)})
	require.Equal(t, wire.CodeKeyTooLarge, resp.Code)
	resp = c.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte("k"), Value: make([]byte, 100_001)})
	require.Equal(t, wire.CodeValueTooLarge, resp.Code)
	resp = c.call(&wire.Request{Op: wire.OpGet, Tenant: "ghost", Key: []byte("k")})
	require.Equal(t, wire.CodeTenantNotFound, resp.Code)

	resp = c.call(&wire.Request{Op: wire.OpListTenants})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Len(t, resp.Tenants, 1)

	resp = c.call(&wire.Request{Op: wire.OpClusterStatus})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	require.Len(t, resp.Cluster.Members, 1)
	require.True(t, resp.Cluster.Members[0].Leader)
	require.Equal(t, s.Addr(), resp.Cluster.Members[0].ClientAddr)

	resp = c.call(&wire.Request{Op: wire.OpDeleteTenant, Name: "acme"})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	resp = c.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"})
	require.Equal(t, wire.CodeOK, resp.Code, resp.Msg)
	resp = c.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("k1")})
	require.Equal(t, wire.CodeNotFound, resp.Code, "a re-created tenant must not see old data")
}

func TestTenantTokenIsolation(t *testing.T) {
	s, op := startNode(t)
	admin := login(t, s.Addr(), op)
	for _, n := range []string{"alpha", "beta"} {
		require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpCreateTenant, Name: n}).Code)
	}
	require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpSet, Tenant: "alpha", Key: []byte("secret"), Value: []byte("a")}).Code)
	tok := admin.call(&wire.Request{Op: wire.OpNewToken, Name: "beta"})
	require.Equal(t, wire.CodeOK, tok.Code, tok.Msg)

	c := dialRaw(t, s.Addr())
	hello := c.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok.Token})
	require.Equal(t, wire.CodeOK, hello.Code)
	require.False(t, hello.Operator)
	require.Equal(t, "beta", hello.Tenant.Name)

	// Its own tenant, by name or implicitly.
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpSet, Tenant: "beta", Key: []byte("k"), Value: []byte("b")}).Code)
	got := c.call(&wire.Request{Op: wire.OpGet, Key: []byte("k")})
	require.Equal(t, []byte("b"), got.Value)

	// Every operation against an existing and a missing tenant looks the same.
	for _, other := range []string{"alpha", "no-such-tenant"} {
		for _, req := range []wire.Request{
			{Op: wire.OpGet, Tenant: other, Key: []byte("secret")},
			{Op: wire.OpSet, Tenant: other, Key: []byte("secret"), Value: []byte("x")},
			{Op: wire.OpDelete, Tenant: other, Key: []byte("secret")},
			{Op: wire.OpDeleteRange, Tenant: other},
			{Op: wire.OpScan, Tenant: other},
			{Op: wire.OpScan, Tenant: other, Stale: true},
			{Op: wire.OpGetTenant, Name: other},
			{Op: wire.OpDeleteTenant, Name: other},
			{Op: wire.OpNewToken, Name: other},
			{Op: wire.OpCreateTenant, Name: "gamma"},
			{Op: wire.OpListTenants},
			{Op: wire.OpClusterStatus},
		} {
			resp := c.call(&req)
			require.Equal(t, wire.CodePermissionDenied, resp.Code, "%s on %s", req.Op, other)
			require.Equal(t, "permission denied", resp.Msg)
		}
	}
	v := admin.call(&wire.Request{Op: wire.OpGet, Tenant: "alpha", Key: []byte("secret")})
	require.Equal(t, []byte("a"), v.Value)

	// Revocation takes effect on the open connection.
	require.Equal(t, wire.CodeOK, admin.call(&wire.Request{Op: wire.OpRevokeToken, Name: tok.TokenID}).Code)
	require.Equal(t, wire.CodePermissionDenied, c.call(&wire.Request{Op: wire.OpGet, Key: []byte("k")}).Code)
	// And a new connection cannot authenticate.
	c2 := dialRaw(t, s.Addr())
	require.Equal(t, wire.CodePermissionDenied, c2.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok.Token}).Code)
}

func TestBadTokens(t *testing.T) {
	s, op := startNode(t)
	for _, tok := range []string{"", "garbage", "tkv_0123456789abcdef_nope", op + "x", strings.ToUpper(op)} {
		c := dialRaw(t, s.Addr())
		resp := c.call(&wire.Request{Op: wire.OpHello, Version: wire.ProtocolVersion, Token: tok})
		require.Equal(t, wire.CodePermissionDenied, resp.Code, tok)
	}
	c := dialRaw(t, s.Addr())
	resp := c.call(&wire.Request{Op: wire.OpHello, Version: 99, Token: op})
	require.Equal(t, wire.CodeVersionMismatch, resp.Code)
	c = dialRaw(t, s.Addr())
	resp = c.call(&wire.Request{Op: wire.OpGet, Token: op})
	require.Equal(t, wire.CodeBadRequest, resp.Code)
}

// TestHostileInput sends garbage and checks the node answers or drops the
// offender and keeps serving everybody else.
func TestHostileInput(t *testing.T) {
	s, op := startNode(t)
	good := login(t, s.Addr(), op)
	require.Equal(t, wire.CodeOK, good.call(&wire.Request{Op: wire.OpCreateTenant, Name: "acme"}).Code)

	// A frame that claims 4 GiB, before and after hello.
	c := dialRaw(t, s.Addr())
	_, err := c.nc.Write([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	require.NoError(t, err)
	require.Equal(t, wire.CodeFrameTooLarge, c.read().Code)
	c = login(t, s.Addr(), op)
	_, err = c.nc.Write([]byte{0xFF, 0xFF, 0xFF, 0xF0, 1, 2, 3})
	require.NoError(t, err)
	require.Equal(t, wire.CodeFrameTooLarge, c.read().Code)

	// Bad msgpack inside a well-formed frame: answered, connection goes on.
	c = login(t, s.Addr(), op)
	for _, body := range [][]byte{{0xc1}, {0x81, 0xa1, 'i'}, []byte("hello world"), {0xde, 0xff, 0xff}} {
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		_, err = c.nc.Write(append(frame, body...))
		require.NoError(t, err)
		require.Equal(t, wire.CodeBadRequest, c.read().Code)
	}
	require.Equal(t, wire.CodeOK, c.call(&wire.Request{Op: wire.OpPing}).Code)
	// Unknown operation.
	require.Equal(t, wire.CodeUnknownOp, c.call(&wire.Request{Op: 200}).Code)

	// Half-written frames and abrupt disconnects.
	for range 20 {
		nc, err := net.Dial("tcp", s.Addr())
		require.NoError(t, err)
		_, _ = nc.Write([]byte{0, 0, 1, 0, 0x81})
		nc.Close()
	}
	// Garbage as the hello.
	nc, err := net.Dial("tcp", s.Addr())
	require.NoError(t, err)
	_, _ = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	nc.Close()

	// Many in flight on one connection, answered by ID.
	var wg sync.WaitGroup
	c = login(t, s.Addr(), op)
	var buf []byte
	for i := range 100 {
		buf, err = wire.AppendRequestFrame(buf, &wire.Request{ID: uint64(1000 + i), Op: wire.OpSet, Tenant: "acme", Key: fmt.Appendf(nil, "k%03d", i), Value: []byte("v")})
		require.NoError(t, err)
	}
	_, err = c.nc.Write(buf)
	require.NoError(t, err)
	seen := map[uint64]bool{}
	for range 100 {
		r := c.read()
		require.Equal(t, wire.CodeOK, r.Code, r.Msg)
		seen[r.ID] = true
	}
	require.Len(t, seen, 100)
	wg.Wait()

	// The well-behaved client never noticed.
	require.Equal(t, wire.CodeOK, good.call(&wire.Request{Op: wire.OpSet, Tenant: "acme", Key: []byte("still"), Value: []byte("here")}).Code)
	require.Equal(t, []byte("here"), good.call(&wire.Request{Op: wire.OpGet, Tenant: "acme", Key: []byte("still")}).Value)
}
